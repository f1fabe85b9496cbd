// The text form of a fault plan, and arming from the environment at load time, so that forked
// and exec'd children (and binaries that only LD_PRELOAD the library) run under the same plan.
// Grammar and examples: docs/fault-model.md and ipch/fault.h.
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

#include "ipch/fault.h"

namespace ipch::fault {
namespace {

struct Named {
  const char* name;
  uint64_t value;
};

// Groups first: FormatPlan prints the first entry whose bits are all present, then the rest.
constexpr uint64_t kAll = kAllOps;
constexpr uint64_t kIo = kRead | kWrite | kPoll | kAccept | kConnect;
constexpr Named kOps[] = {
    {"all", kAll},
    {"io", kIo},
    {"sockets", kSocket | kSocketpair | kBind | kListen | kShutdown},
    {"files", kOpen | kClose | kPipe | kMkfifo},
    {"shm", kMmap | kMunmap | kFtruncate | kShmOpen | kShmUnlink | kMemfdCreate},
    {"sysv_shm", kShmget | kShmat | kShmdt | kShmctl},
    {"sysv_msg", kMsgget | kMsgsnd | kMsgrcv | kMsgctl},
    {"mq", kMqOpen | kMqSend | kMqReceive | kMqUnlink},
    {"read", kRead},
    {"write", kWrite},
    {"poll", kPoll},
    {"accept", kAccept},
    {"connect", kConnect},
    {"socket", kSocket},
    {"socketpair", kSocketpair},
    {"bind", kBind},
    {"listen", kListen},
    {"shutdown", kShutdown},
    {"open", kOpen},
    {"close", kClose},
    {"pipe", kPipe},
    {"mkfifo", kMkfifo},
    {"mmap", kMmap},
    {"munmap", kMunmap},
    {"ftruncate", kFtruncate},
    {"shm_open", kShmOpen},
    {"shm_unlink", kShmUnlink},
    {"memfd_create", kMemfdCreate},
    {"shmget", kShmget},
    {"shmat", kShmat},
    {"shmdt", kShmdt},
    {"shmctl", kShmctl},
    {"msgget", kMsgget},
    {"msgsnd", kMsgsnd},
    {"msgrcv", kMsgrcv},
    {"msgctl", kMsgctl},
    {"mq_open", kMqOpen},
    {"mq_send", kMqSend},
    {"mq_receive", kMqReceive},
    {"mq_unlink", kMqUnlink},
    {"futex", kFutex},
    {"futex_wake", kFutexWake},
};

#define IPCH_ERRNO(e) \
  { #e, e }
constexpr Named kErrnos[] = {
    IPCH_ERRNO(EINTR),        IPCH_ERRNO(EAGAIN),       IPCH_ERRNO(ECONNRESET),  IPCH_ERRNO(EPIPE),
    IPCH_ERRNO(ENOMEM),       IPCH_ERRNO(ENOSPC),       IPCH_ERRNO(EMFILE),      IPCH_ERRNO(ENFILE),
    IPCH_ERRNO(EACCES),       IPCH_ERRNO(EPERM),        IPCH_ERRNO(EIDRM),       IPCH_ERRNO(EIO),
    IPCH_ERRNO(ECONNREFUSED), IPCH_ERRNO(ETIMEDOUT),    IPCH_ERRNO(EBADF),       IPCH_ERRNO(EINVAL),
    IPCH_ERRNO(ENOBUFS),      IPCH_ERRNO(EMSGSIZE),     IPCH_ERRNO(ENOENT),      IPCH_ERRNO(EEXIST),
    IPCH_ERRNO(ENOTCONN),     IPCH_ERRNO(ECONNABORTED), IPCH_ERRNO(ENETUNREACH), IPCH_ERRNO(EHOSTUNREACH),
};
#undef IPCH_ERRNO

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool ParseUint(std::string_view s, uint64_t* out) {
  if (s.empty() || s.size() > 20) return false;
  std::string copy(s);
  char* end = nullptr;
  errno = 0;
  const int base = copy.size() > 2 && copy[0] == '0' && (copy[1] == 'x' || copy[1] == 'X') ? 16 : 10;
  unsigned long long v = std::strtoull(copy.c_str(), &end, base);
  if (errno != 0 || end != copy.c_str() + copy.size() || copy[0] == '-' || copy[0] == '+') return false;
  *out = v;
  return true;
}

bool Fail(std::string* error, const std::string& msg) {
  if (error) *error = msg;
  return false;
}

std::string Choices(const Named* table, std::size_t n) {
  std::string s;
  for (std::size_t i = 0; i < n; ++i) s += (i ? ", " : "") + std::string(table[i].name);
  return s;
}

bool ParseRule(std::string_view text, Rule* rule, std::string* error) {
  const std::string where = "rule '" + std::string(text) + "'";
  const auto colon = text.find(':');
  if (colon == std::string_view::npos) return Fail(error, where + ": expected <ops>:<effect>[,key=value...]");
  // Operations: op|op|...
  std::string_view ops = Trim(text.substr(0, colon));
  rule->ops = 0;
  while (!ops.empty()) {
    const auto bar = ops.find('|');
    const std::string_view op = Trim(ops.substr(0, bar));
    bool known = false;
    for (const auto& o : kOps) {
      if (op == o.name) {
        rule->ops |= o.value;
        known = true;
      }
    }
    if (!known) {
      return Fail(error, where + ": unknown operation '" + std::string(op) +
                             "' (one of: " + Choices(kOps, std::size(kOps)) + ")");
    }
    ops = bar == std::string_view::npos ? std::string_view() : ops.substr(bar + 1);
  }
  if (rule->ops == 0) return Fail(error, where + ": no operation before ':'");
  // Effect, then options.
  std::string_view rest = text.substr(colon + 1);
  const auto comma = rest.find(',');
  const std::string_view effect = Trim(rest.substr(0, comma));
  rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
  if (effect == "short") {
    rule->kind = Kind::kShort;
  } else if (effect == "wake") {
    rule->kind = Kind::kWake;
  } else if (effect == "kill") {
    rule->kind = Kind::kKill;
  } else if (effect == "kill_after") {
    rule->kind = Kind::kKillAfter;
  } else if (effect.rfind("delay=", 0) == 0) {
    std::string_view v = effect.substr(6);
    uint64_t unit = 0;
    if (v.size() > 2 && v.substr(v.size() - 2) == "ms") unit = 1000;
    if (v.size() > 2 && v.substr(v.size() - 2) == "us") unit = 1;
    uint64_t n = 0;
    if (unit == 0 || !ParseUint(v.substr(0, v.size() - 2), &n) || n == 0 || n * unit > 60000000) {
      return Fail(error, where + ": " + std::string(effect) + " is not a delay of 1us..60000ms (e.g. delay=5ms)");
    }
    rule->kind = Kind::kDelay;
    rule->delay_us = static_cast<uint32_t>(n * unit);
  } else if (effect == "typical") {
    rule->kind = Kind::kErrno;
    rule->err = kTypicalErrno;
  } else {
    rule->kind = Kind::kErrno;
    rule->err = 0;
    for (const auto& e : kErrnos) {
      if (effect == e.name) rule->err = static_cast<int>(e.value);
    }
    uint64_t n = 0;
    if (rule->err == 0 && ParseUint(effect, &n) && n > 0 && n < 4096) rule->err = static_cast<int>(n);
    if (rule->err == 0) {
      return Fail(error, where + ": unknown effect '" + std::string(effect) +
                             "' (short, wake, kill, kill_after, delay=N[ms|us], typical, an errno number, or one of: " +
                             Choices(kErrnos, std::size(kErrnos)) + ")");
    }
  }
  bool has_every = false, has_p = false;
  rule->every_nth = 1;
  rule->probability = 0.0;
  rule->max_fires = 0;
  while (!rest.empty()) {
    const auto next = rest.find(',');
    const std::string_view kv = Trim(rest.substr(0, next));
    rest = next == std::string_view::npos ? std::string_view() : rest.substr(next + 1);
    const auto eq = kv.find('=');
    const std::string_view key = Trim(kv.substr(0, eq));
    const std::string_view value = eq == std::string_view::npos ? std::string_view() : Trim(kv.substr(eq + 1));
    uint64_t n = 0;
    if (key == "every") {
      if (!ParseUint(value, &n) || n == 0 || n > UINT32_MAX)
        return Fail(error, where + ": every=" + std::string(value) + " is not a whole number in 1..4294967295");
      rule->every_nth = static_cast<uint32_t>(n);
      has_every = true;
    } else if (key == "p") {
      std::string copy(value);
      char* end = nullptr;
      const double p = copy.empty() ? -1 : std::strtod(copy.c_str(), &end);
      if (copy.empty() || end != copy.c_str() + copy.size() || !(p >= 0.0 && p <= 1.0))
        return Fail(error, where + ": p=" + std::string(value) + " is not a probability in [0, 1]");
      rule->probability = p;
      rule->every_nth = 0;
      has_p = true;
    } else if (key == "max") {
      if (!ParseUint(value, &n) || n == 0 || n > UINT32_MAX)
        return Fail(error, where + ": max=" + std::string(value) + " is not a whole number in 1..4294967295");
      rule->max_fires = static_cast<uint32_t>(n);
    } else if (key == "any_errno" && eq == std::string_view::npos) {
      rule->any_errno = true;
    } else if (key == "lookup" && eq == std::string_view::npos) {
      rule->lookup_only = true;
    } else {
      return Fail(error, where + ": unknown option '" + std::string(key) + "' (every, p, max, any_errno or lookup)");
    }
  }
  if (has_every && has_p) return Fail(error, where + ": give every=N or p=P, not both");
  if (rule->kind == Kind::kShort && (rule->ops & ~kByteIo) != 0)
    return Fail(error, where + ": short applies to read and write only; other calls take an errno");
  if (rule->kind == Kind::kWake && (rule->ops & ~kWaits) != 0)
    return Fail(error, where + ": wake applies to poll and futex only; other calls take an errno");
  return true;
}

}  // namespace

bool ParsePlan(std::string_view text, Plan* out, std::string* error) {
  Plan plan;
  std::string_view rest = text;
  bool any = false;
  while (!rest.empty()) {
    const auto semi = rest.find(';');
    const std::string_view part = Trim(rest.substr(0, semi));
    rest = semi == std::string_view::npos ? std::string_view() : rest.substr(semi + 1);
    if (part.empty()) continue;
    if (part.rfind("seed=", 0) == 0) {
      if (!ParseUint(Trim(part.substr(5)), &plan.seed))
        return Fail(error, "seed '" + std::string(part.substr(5)) + "' is not a whole number (decimal or 0x hex)");
      continue;
    }
    if (plan.rules.size() == kMaxPlanRules) {
      return Fail(error, "more than " + std::to_string(kMaxPlanRules) + " rules");
    }
    Rule r;
    if (!ParseRule(part, &r, error)) return false;
    plan.rules.push_back(r);
    any = true;
  }
  if (!any) return Fail(error, "a plan needs at least one rule, e.g. 'read|write:EINTR,every=3'");
  *out = std::move(plan);
  return true;
}

std::string FormatPlan(const Plan& plan) {
  std::string s = "seed=" + std::to_string(plan.seed);
  for (const Rule& r : plan.rules) {
    s += ';';
    bool first = true;
    uint64_t left = r.ops;
    for (const auto& o : kOps) {
      if (left != 0 && (left & o.value) == o.value) {
        s += (first ? "" : "|") + std::string(o.name);
        first = false;
        left &= ~o.value;
      }
    }
    s += ':';
    if (r.kind == Kind::kShort) {
      s += "short";
    } else if (r.kind == Kind::kWake) {
      s += "wake";
    } else if (r.kind == Kind::kKill || r.kind == Kind::kKillAfter) {
      s += r.kind == Kind::kKill ? "kill" : "kill_after";
    } else if (r.kind == Kind::kDelay) {
      s += r.delay_us % 1000 == 0 ? "delay=" + std::to_string(r.delay_us / 1000) + "ms"
                                  : "delay=" + std::to_string(r.delay_us) + "us";
    } else {
      std::string name = r.err == kTypicalErrno ? "typical" : std::to_string(r.err);
      for (const auto& e : kErrnos) {
        if (static_cast<int>(e.value) == r.err) name = e.name;
      }
      s += name;
    }
    if (r.every_nth > 0) {
      if (r.every_nth != 1) s += ",every=" + std::to_string(r.every_nth);
    } else {
      char p[32];
      std::snprintf(p, sizeof p, "%.17g", r.probability);
      s += std::string(",p=") + p;
    }
    if (r.max_fires > 0) s += ",max=" + std::to_string(r.max_fires);
    if (r.any_errno) s += ",any_errno";
    if (r.lookup_only) s += ",lookup";
  }
  return s;
}

std::string FormatCensus(const Census& c) {
  std::string s;
  for (const CensusEntry& e : c) {
    if (!s.empty()) s += ';';
    s += e.entry_point + "=" + std::to_string(e.calls);
    char sep = ':';
    for (std::size_t k = 0; k < kKinds; ++k) {
      if (e.faults[k] == 0) continue;
      s += sep;
      s += std::string(KindName(static_cast<Kind>(k))) + " " + std::to_string(e.faults[k]);
      sep = ',';
    }
  }
  return s;
}

namespace {

// At load: a plan in the environment arms this process. A plan that does not parse stops the
// process with the reason, rather than letting it run silently without its faults.
__attribute__((constructor)) void ArmFromEnvironment() {
  const char* text = std::getenv(kPlanEnv);
  if (text == nullptr || *text == '\0') return;
  Plan plan;
  std::string error;
  if (!ParsePlan(text, &plan, &error)) {
    const std::string msg = std::string("ipch fault: ") + kPlanEnv + ": " + error + "\n";
    (void)!::syscall(SYS_write, 2, msg.data(), msg.size());
    ::_exit(2);
  }
  ArmAttached(plan);
}

}  // namespace
}  // namespace ipch::fault
