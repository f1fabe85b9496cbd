// The text form of a toxics spec (grammar in ipch/toxics.h and docs/fault-model.md).
#include <cerrno>
#include <cfloat>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "ipch/toxics.h"

namespace ipch::toxics {
namespace {

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool Fail(std::string* error, const std::string& msg) {
  if (error) *error = msg;
  return false;
}

bool ParseUint(std::string_view s, uint64_t* out) {
  if (s.empty() || s.size() > 20 || s.find_first_not_of("0123456789") != std::string_view::npos) return false;
  std::string copy(s);
  errno = 0;
  unsigned long long v = std::strtoull(copy.c_str(), nullptr, 10);
  if (errno != 0) return false;
  *out = v;
  return true;
}

// <N>us | <N>ms | <N>s, at most an hour.
bool ParseDuration(std::string_view s, Clock::duration* out) {
  uint64_t n = 0;
  std::chrono::microseconds unit{};
  if (s.size() > 2 && s.substr(s.size() - 2) == "us") {
    unit = std::chrono::microseconds(1);
    s.remove_suffix(2);
  } else if (s.size() > 2 && s.substr(s.size() - 2) == "ms") {
    unit = std::chrono::milliseconds(1);
    s.remove_suffix(2);
  } else if (s.size() > 1 && s.back() == 's') {
    unit = std::chrono::seconds(1);
    s.remove_suffix(1);
  } else {
    return false;
  }
  if (!ParseUint(s, &n) || n > 3600ull * 1000 * 1000) return false;
  const auto total = unit * static_cast<int64_t>(n);
  if (total > std::chrono::hours(1)) return false;
  *out = total;
  return true;
}

std::string FormatDuration(Clock::duration d) {
  const auto us = std::chrono::duration_cast<std::chrono::microseconds>(d).count();
  if (us % 1000000 == 0) return std::to_string(us / 1000000) + "s";
  if (us % 1000 == 0) return std::to_string(us / 1000) + "ms";
  return std::to_string(us) + "us";
}

bool ParseProbability(std::string_view s, double* out) {
  if (s.empty() || s.size() > 40) return false;
  std::string copy(s);
  char* end = nullptr;
  errno = 0;
  double v = std::strtod(copy.c_str(), &end);
  // ERANGE with a result this small is an underflow (a subnormal, or 0): the nearest double, as
  // FormatSpec printed it. Only an overflow is out of range, and that is above 1 anyway.
  if ((errno != 0 && !(errno == ERANGE && std::fabs(v) <= DBL_MIN)) || end != copy.c_str() + copy.size() ||
      !(v >= 0.0 && v <= 1.0)) {
    return false;
  }
  *out = v;
  return true;
}

bool ParseToxic(std::string_view kv, Toxics* t, std::string* error) {
  const std::string where = "toxic '" + std::string(kv) + "'";
  const auto eq = kv.find('=');
  if (eq == std::string_view::npos) return Fail(error, where + ": expected key=value");
  const std::string_view key = Trim(kv.substr(0, eq)), value = Trim(kv.substr(eq + 1));
  auto duration = [&](Clock::duration* d) {
    return ParseDuration(value, d) || Fail(error, where + ": expected a duration like 250us, 5ms or 2s (at most 1 hour)");
  };
  auto count = [&](uint64_t* n, uint64_t max, const char* what) {
    uint64_t v = 0;
    if (!ParseUint(value, &v) || v > max) return Fail(error, where + ": expected " + what);
    *n = v;
    return true;
  };
  if (key == "latency") return duration(&t->latency);
  if (key == "jitter") return duration(&t->jitter);
  if (key == "slice_delay") return duration(&t->slice_delay);
  if (key == "stall_for") return duration(&t->stall_for);
  if (key == "rate") {
    if (!count(&t->rate, uint64_t{1} << 40, "bytes per second, 1 .. 2^40")) return false;
    return t->rate > 0 || Fail(error, where + ": a rate of 0 would never forward a byte; leave it out for no limit");
  }
  if (key == "slice") {
    uint64_t n = 0;
    if (!count(&n, 1u << 20, "a segment size, 1 .. 1048576 bytes")) return false;
    if (n == 0) return Fail(error, where + ": a segment size, 1 .. 1048576 bytes");
    t->slice = n;
    return true;
  }
  if (key == "close_after") return count(&t->close_after, kNever - 1, "a byte count");
  if (key == "reset_after") return count(&t->reset_after, kNever - 1, "a byte count");
  if (key == "stall_after") return count(&t->stall_after, kNever - 1, "a byte count");
  if (key == "flip_at") return count(&t->flip_at, kNever - 1, "a byte offset");
  if (key == "flip") {
    return ParseProbability(value, &t->flip) || Fail(error, where + ": expected a probability per byte, 0 .. 1");
  }
  return Fail(error, where + ": unknown toxic '" + std::string(key) +
                         "' (latency, jitter, rate, slice, slice_delay, close_after, reset_after, stall_after, "
                         "stall_for, flip, flip_at)");
}

std::string FormatToxics(const Toxics& t) {
  std::string s;
  auto add = [&](const std::string& kv) { s += (s.empty() ? "" : ",") + kv; };
  if (t.latency != Clock::duration{}) add("latency=" + FormatDuration(t.latency));
  if (t.jitter != Clock::duration{}) add("jitter=" + FormatDuration(t.jitter));
  if (t.rate) add("rate=" + std::to_string(t.rate));
  if (t.slice) add("slice=" + std::to_string(t.slice));
  if (t.slice_delay != Clock::duration{}) add("slice_delay=" + FormatDuration(t.slice_delay));
  if (t.close_after != kNever) add("close_after=" + std::to_string(t.close_after));
  if (t.reset_after != kNever) add("reset_after=" + std::to_string(t.reset_after));
  if (t.stall_after != kNever) add("stall_after=" + std::to_string(t.stall_after));
  if (t.stall_for != Clock::duration{}) add("stall_for=" + FormatDuration(t.stall_for));
  if (t.flip > 0.0) {
    char buf[40];
    std::snprintf(buf, sizeof buf, "%.17g", t.flip);
    add(std::string("flip=") + buf);
  }
  if (t.flip_at != kNever) add("flip_at=" + std::to_string(t.flip_at));
  return s;
}

}  // namespace

bool ParseSpec(std::string_view text, Spec* out, std::string* error) {
  Spec spec;
  bool any = false;
  std::string_view rest = text;
  while (!rest.empty()) {
    const auto semi = rest.find(';');
    const std::string_view part = Trim(rest.substr(0, semi));
    rest = semi == std::string_view::npos ? std::string_view{} : rest.substr(semi + 1);
    if (part.empty()) continue;
    if (part.substr(0, 5) == "seed=") {
      if (!ParseUint(Trim(part.substr(5)), &spec.seed)) return Fail(error, "'" + std::string(part) + "': expected seed=<number>");
      continue;
    }
    const auto colon = part.find(':');
    if (colon == std::string_view::npos) {
      return Fail(error, "'" + std::string(part) + "': expected up:, down: or both: followed by toxics");
    }
    const std::string_view dir = Trim(part.substr(0, colon));
    const bool up = dir == "up" || dir == "both", down = dir == "down" || dir == "both";
    if (!up && !down) return Fail(error, "'" + std::string(part) + "': direction must be up, down or both");
    std::string_view toxics = part.substr(colon + 1);
    if (Trim(toxics).empty()) return Fail(error, "'" + std::string(part) + "': no toxics after the direction");
    while (!toxics.empty()) {
      const auto comma = toxics.find(',');
      const std::string_view kv = Trim(toxics.substr(0, comma));
      toxics = comma == std::string_view::npos ? std::string_view{} : toxics.substr(comma + 1);
      if (up && !ParseToxic(kv, &spec.up, error)) return false;
      if (down && !ParseToxic(kv, &spec.down, error)) return false;
    }
    any = true;
  }
  if (!any && Trim(text).empty()) return Fail(error, "empty toxics spec");
  *out = spec;
  return true;
}

std::string FormatSpec(const Spec& spec) {
  std::string s = "seed=" + std::to_string(spec.seed);
  if (const auto up = FormatToxics(spec.up); !up.empty()) s += ";up:" + up;
  if (const auto down = FormatToxics(spec.down); !down.empty()) s += ";down:" + down;
  return s;
}

}  // namespace ipch::toxics
