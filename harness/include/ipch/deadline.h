// Deadline for every blocking call, and the sanitizer slowdown factor for time bounds.
#pragma once

#include <chrono>
#include <climits>

namespace ipch {

using Clock = std::chrono::steady_clock;
using Millis = std::chrono::milliseconds;

class Deadline {
 public:
  static Deadline Never() { return Deadline(Clock::time_point::max()); }
  // Already expired: "do what you can without waiting".
  static Deadline Expired() { return Deadline(Clock::time_point::min()); }
  static Deadline After(Clock::duration d) { return Deadline(Clock::now() + d); }
  static Deadline At(Clock::time_point t) { return Deadline(t); }

  bool never() const { return at_ == Clock::time_point::max(); }
  bool expired() const { return !never() && Clock::now() >= at_; }
  Clock::time_point at() const { return at_; }
  Clock::duration remaining() const {
    if (never()) return Clock::duration::max();
    auto now = Clock::now();
    return now >= at_ ? Clock::duration::zero() : at_ - now;  // no overflow for Expired()
  }
  // Milliseconds for poll(2): -1 for never, rounded up so we never wake early and spin.
  int PollTimeoutMs() const {
    if (never()) return -1;
    auto r = remaining();
    auto ms = std::chrono::ceil<Millis>(r).count();
    return ms > INT_MAX ? INT_MAX : static_cast<int>(ms);
  }

 private:
  explicit Deadline(Clock::time_point at) : at_(at) {}
  Clock::time_point at_;
};

// Time bounds in tests and defaults are multiplied by this: 1 in plain builds, larger under
// sanitizers (compile-time IPCH_SLOWDOWN), overridable with the IPCH_SLOWDOWN environment variable.
int SlowdownFactor();
inline Clock::duration Scaled(Clock::duration d) { return d * SlowdownFactor(); }

}  // namespace ipch
