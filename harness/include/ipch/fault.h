// In-process syscall fault injection. libipch_fault.so interposes libc's I/O entry points;
// a test arms a plan, runs the transport, and disarms. Faults apply only to sockets and
// FIFOs, and only while armed, so the harness's own file I/O is never disturbed.
// Forked children inherit the armed plan (and its counters, which reset per process).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace ipch::fault {

enum Op : uint32_t {
  kRead = 1u << 0,     // read, readv, recv, recvfrom, recvmsg (+ __*_chk)
  kWrite = 1u << 1,    // write, writev, send, sendto, sendmsg
  kPoll = 1u << 2,     // poll, ppoll
  kAccept = 1u << 3,   // accept, accept4
  kConnect = 1u << 4,  // connect
};

enum class Kind { kErrno, kShort };

struct Rule {
  uint32_t ops = 0;
  Kind kind = Kind::kErrno;
  int err = 0;               // for kErrno
  uint32_t every_nth = 0;    // fire on calls n, 2n, 3n ... (counted per rule) ; 0: use probability
  double probability = 0.0;  // per matching call, decided by the plan's seed
  uint32_t max_fires = 0;    // 0: unlimited
};

struct Plan {
  std::vector<Rule> rules;
  uint64_t seed = 0;
};

// Arms `plan` process-wide. Not reentrant with another armed plan.
void Arm(const Plan& plan);
void Disarm();
// Number of faults injected since the last Arm (in this process).
uint64_t InjectedCount();
// Human-readable log of the last injected faults ("write #3 -> EINTR"), newest last.
std::vector<std::string> InjectedLog();
// True if the interposer is actually in the call path (a self-check run by Arm's callers).
bool Active();

// Arms in the constructor, disarms in the destructor.
class ScopedPlan {
 public:
  explicit ScopedPlan(const Plan& p) { Arm(p); }
  ~ScopedPlan() { Disarm(); }
  ScopedPlan(const ScopedPlan&) = delete;
  ScopedPlan& operator=(const ScopedPlan&) = delete;
};

}  // namespace ipch::fault
