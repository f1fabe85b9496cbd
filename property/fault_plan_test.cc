// Properties of fault plans (ipch/fault.h): every Plan the text form can say prints to a text
// that parses back to it, and the text is canonical; and a plan decides the same way each time
// it is armed ("decisions depend only on the seed and the per-rule call count",
// docs/fault-model.md). The engine's Decide and its seeded hash are private to the interposer,
// so decisions are observed as a caller sees them: a plan armed in this process over writes on
// a socketpair, each write's result (which failed, with which errno, how short a short write was)
// recorded, the plan armed again, the same writes made.
#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <bit>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "ipch/fault.h"
#include "ipch/unique_fd.h"

namespace ipch::fault {
namespace {

// The operations of one or a few entry points, a whole group, or any mix, within `allowed`.
uint64_t GenOps(uint64_t allowed) {
  const auto single = rc::gen::map(rc::gen::inRange(0, static_cast<int>(std::bit_width(kAllOps))),
                                   [](int b) { return uint64_t{1} << b; });
  const uint64_t bits = *rc::gen::weightedOneOf<uint64_t>(
      {{3, single},
       {2, rc::gen::map(rc::gen::container<std::vector<uint64_t>>(3, single),
                        [](const std::vector<uint64_t>& v) { return v[0] | v[1] | v[2]; })},
       {1, rc::gen::element(kAllOps, kByteIo, kWaits, kRead | kWrite | kPoll | kAccept | kConnect,
                            kMqOpen | kMqSend | kMqReceive | kMqUnlink, kShmget | kShmat | kShmdt | kShmctl | kFutex)},
       {2, rc::gen::arbitrary<uint64_t>()}});
  const uint64_t ops = bits & allowed;
  return ops != 0 ? ops : allowed & -allowed;  // a rule needs one operation at least
}

// A probability the text can say: 0, 1, or any double between, the tiniest included.
double GenProbability() {
  return *rc::gen::weightedOneOf<double>(
      {{1, rc::gen::just(0.0)},
       {1, rc::gen::just(1.0)},
       {3, rc::gen::map(rc::gen::inRange<uint64_t>(1, uint64_t{1} << 53),
                        [](uint64_t n) { return static_cast<double>(n) / static_cast<double>(uint64_t{1} << 53); })},
       {1, rc::gen::map(rc::gen::inRange(1, 1075), [](int e) { return std::ldexp(1.0, -e); })},
       {1, rc::gen::map(rc::gen::inRange<uint64_t>(1, uint64_t{1} << 52),
                        [](uint64_t m) { return std::ldexp(static_cast<double>(m), -1074); })}});
}

uint32_t GenCount() {
  return *rc::gen::weightedOneOf<uint32_t>({{3, rc::gen::inRange<uint32_t>(1, 100)},
                                            {1, rc::gen::just(UINT32_MAX)},
                                            {1, rc::gen::inRange<uint32_t>(1, UINT32_MAX)}});
}

// Every field the text form holds, in every combination ParsePlan accepts (Rule::thread is not
// in the text, so it stays 0).
Rule GenRule() {
  Rule r;
  // Drawn as its number, which a counterexample can show (KindName names it).
  r.kind = static_cast<Kind>(*rc::gen::inRange(0, static_cast<int>(kKinds)));
  r.ops = GenOps(r.kind == Kind::kShort ? kByteIo : r.kind == Kind::kWake ? kWaits : kAllOps);
  if (r.kind == Kind::kErrno) {
    r.err =
        *rc::gen::weightedOneOf<int>({{1, rc::gen::just(kTypicalErrno)},
                                      {2, rc::gen::element(EINTR, EAGAIN, ECONNRESET, EPIPE, ENOMEM, EIO, ENOTCONN)},
                                      {2, rc::gen::inRange(1, 4096)}});
  }
  if (r.kind == Kind::kDelay) {
    r.delay_us = *rc::gen::weightedOneOf<uint32_t>(
        {{2, rc::gen::inRange<uint32_t>(1, 60000001)},
         {2, rc::gen::map(rc::gen::inRange<uint32_t>(1, 60001), [](uint32_t ms) { return ms * 1000; })},
         {1, rc::gen::element<uint32_t>(1, 999, 1000, 1001, 60000000)}});
  }
  // every=N, or a probability (every_nth 0); never both, as the text says one or the other.
  r.every_nth = *rc::gen::weightedOneOf<uint32_t>(
      {{2, rc::gen::just<uint32_t>(1)}, {2, rc::gen::just<uint32_t>(0)}, {2, rc::gen::exec(GenCount)}});
  if (r.every_nth == 0) r.probability = GenProbability();
  r.max_fires = *rc::gen::weightedOneOf<uint32_t>({{2, rc::gen::just<uint32_t>(0)}, {1, rc::gen::exec(GenCount)}});
  r.any_errno = *rc::gen::arbitrary<bool>();
  r.lookup_only = *rc::gen::arbitrary<bool>();
  return r;
}

// The first field where `b` differs from `a`, with both values ("" when they are equal).
std::string Difference(const Rule& a, const Rule& b) {
  const auto field = [](const char* name, auto x, auto y) {
    return name + std::string(": ") + std::to_string(x) + " became " + std::to_string(y);
  };
  if (a.ops != b.ops) return field("ops", a.ops, b.ops);
  if (a.kind != b.kind) return std::string("kind: ") + KindName(a.kind) + " became " + KindName(b.kind);
  if (a.err != b.err) return field("err", a.err, b.err);
  if (a.every_nth != b.every_nth) return field("every_nth", a.every_nth, b.every_nth);
  if (a.probability != b.probability) {
    char x[32], y[32];
    std::snprintf(x, sizeof x, "%.17g", a.probability);
    std::snprintf(y, sizeof y, "%.17g", b.probability);
    return std::string("probability: ") + x + " became " + y;
  }
  if (a.max_fires != b.max_fires) return field("max_fires", a.max_fires, b.max_fires);
  if (a.delay_us != b.delay_us) return field("delay_us", a.delay_us, b.delay_us);
  if (a.any_errno != b.any_errno) return field("any_errno", a.any_errno, b.any_errno);
  if (a.lookup_only != b.lookup_only) return field("lookup_only", a.lookup_only, b.lookup_only);
  if (a.thread != b.thread) return field("thread", a.thread, b.thread);
  return "";
}

RC_GTEST_PROP(FaultPlanGrammar, EveryPlanPrintsToATextThatParsesBackToIt, ()) {
  Plan p;
  p.seed = *rc::gen::weightedOneOf<uint64_t>(
      {{1, rc::gen::just<uint64_t>(0)}, {1, rc::gen::just(UINT64_MAX)}, {3, rc::gen::arbitrary<uint64_t>()}});
  const auto n = *rc::gen::inRange<std::size_t>(1, kMaxPlanRules + 1);
  for (std::size_t i = 0; i < n; ++i) p.rules.push_back(GenRule());
  const std::string text = FormatPlan(p);
  Plan back;
  std::string error;
  if (!ParsePlan(text, &back, &error)) RC_FAIL("FormatPlan gave \"" + text + "\", which ParsePlan refuses: " + error);
  RC_ASSERT(back.seed == p.seed);
  RC_ASSERT(back.rules.size() == p.rules.size());
  for (std::size_t i = 0; i < p.rules.size(); ++i) {
    const std::string difference = Difference(p.rules[i], back.rules[i]);
    if (!difference.empty()) RC_FAIL("rule " + std::to_string(i) + " of \"" + text + "\": " + difference);
  }
  RC_ASSERT(FormatPlan(back) == text);
}

// One write as its caller sees it: the count written, or -1 and errno.
struct Written {
  ssize_t n = 0;
  int err = 0;
  bool operator==(const Written&) const = default;
};

// Makes writes of `sizes` bytes on a socketpair (at most a few KiB: none blocks) with `plan`
// armed. Nothing else happens while it is armed: no output, no assertion.
std::vector<Written> WriteUnder(const Plan& plan, const std::vector<std::size_t>& sizes) {
  int sv[2];
  RC_ASSERT(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
  const UniqueFd a(sv[0]), b(sv[1]);
  static const char kBuf[64] = {};
  std::vector<Written> out(sizes.size());
  {
    const ScopedPlan armed(plan);
    for (std::size_t i = 0; i < sizes.size(); ++i) {
      errno = 0;
      out[i].n = ::write(a.get(), kBuf, sizes[i]);
      out[i].err = out[i].n < 0 ? errno : 0;
    }
  }
  return out;
}

// A plan over writes this thread makes: errno rules with errnos a socket write can fail with
// (never EPIPE or ECONNRESET, which shut the socket down for every later call), short writes,
// every=N or a probability, a cap or none. Rule::thread keeps any other thread's calls out.
Plan GenWritePlan() {
  Plan p;
  p.seed = *rc::gen::arbitrary<uint64_t>();
  const auto n = *rc::gen::inRange<std::size_t>(1, 4);
  for (std::size_t i = 0; i < n; ++i) {
    Rule r;
    r.ops = kWrite | *rc::gen::element<uint64_t>(0, kRead, kConnect);
    r.kind = *rc::gen::element(0, 1) == 0 ? Kind::kErrno : Kind::kShort;
    if (r.kind == Kind::kErrno) r.err = *rc::gen::element(EINTR, ENOBUFS, ENOMEM);
    r.every_nth =
        *rc::gen::weightedOneOf<uint32_t>({{2, rc::gen::just<uint32_t>(0)}, {1, rc::gen::inRange<uint32_t>(1, 8)}});
    if (r.every_nth == 0) r.probability = *rc::gen::element(0.0, 0.1, 0.5, 0.9, 1.0);
    r.max_fires = *rc::gen::element<uint32_t>(0, 0, 1, 3);
    r.thread = ThisThread();
    p.rules.push_back(r);
  }
  return p;
}

std::string Show(const std::vector<Written>& w, std::size_t i) {
  return w[i].n < 0 ? "errno " + std::to_string(w[i].err) : std::to_string(w[i].n) + " bytes";
}

RC_GTEST_PROP(FaultPlanDecisions, ThePlanArmedAgainMakesTheSameDecisions, ()) {
  const Plan plan = GenWritePlan();
  const auto sizes =
      *rc::gen::nonEmpty(rc::gen::container<std::vector<std::size_t>>(rc::gen::inRange<std::size_t>(1, 65)));
  const std::vector<Written> first = WriteUnder(plan, sizes);
  RC_ASSERT(Active());  // the interposer is in the call path: the writes went through it
  const uint64_t injected = InjectedCount();
  const std::vector<Written> second = WriteUnder(plan, sizes);
  RC_LOG() << "plan: " << FormatPlan(plan) << "\n";
  for (std::size_t i = 0; i < sizes.size(); ++i) {
    if (!(first[i] == second[i])) {
      RC_FAIL("write " + std::to_string(i + 1) + " of " + std::to_string(sizes[i]) + " bytes: " + Show(first, i) +
              " the first time, " + Show(second, i) + " the second");
    }
  }
  RC_ASSERT(InjectedCount() == injected);
  // What a caller can see of each decision: a whole write, an errno the plan names, or a
  // short write of 1..n-1 bytes.
  for (std::size_t i = 0; i < sizes.size(); ++i) {
    const Written& w = first[i];
    if (w.n < 0) {
      RC_ASSERT(w.err == EINTR || w.err == ENOBUFS || w.err == ENOMEM);
    } else {
      RC_ASSERT(w.n >= 1 && static_cast<std::size_t>(w.n) <= sizes[i]);
    }
  }
}

// The counting half of a decision, which a caller can predict: a rule with every=N fails the
// writes N, 2N, 3N ... and stops after max fires; p=0 never fires, p=1 on every write.
RC_GTEST_PROP(FaultPlanDecisions, EveryNthAndCertainProbabilitiesFireOnThePredictedWrites, ()) {
  Rule r;
  r.ops = kWrite;
  r.kind = Kind::kErrno;
  r.err = EINTR;
  r.every_nth = *rc::gen::inRange<uint32_t>(0, 6);
  if (r.every_nth == 0) r.probability = *rc::gen::element(0.0, 1.0);
  r.max_fires = *rc::gen::element<uint32_t>(0, 1, 2, 5);
  r.thread = ThisThread();
  const Plan plan{{r}, *rc::gen::arbitrary<uint64_t>()};
  const auto calls = *rc::gen::inRange<std::size_t>(1, 40);
  const std::vector<Written> got = WriteUnder(plan, std::vector<std::size_t>(calls, 1));
  uint32_t fires = 0;
  for (std::size_t k = 1; k <= calls; ++k) {
    const bool due = r.every_nth > 0 ? k % r.every_nth == 0 : r.probability == 1.0;
    const bool fire = due && (r.max_fires == 0 || fires < r.max_fires);
    fires += fire ? 1 : 0;
    const Written want = fire ? Written{-1, EINTR} : Written{1, 0};
    if (!(got[k - 1] == want)) {
      RC_FAIL("write " + std::to_string(k) + " under \"" + FormatPlan(plan) + "\": " + Show(got, k - 1) + ", want " +
              (fire ? "EINTR" : "1 byte"));
    }
  }
  RC_ASSERT(InjectedCount() == fires);
}

}  // namespace
}  // namespace ipch::fault
