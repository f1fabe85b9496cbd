// Peer-death detection for the shared-memory transports. A process is identified by its pid and
// its start time (field 22 of /proc/<pid>/stat, in clock ticks since boot), so a recycled pid is
// never mistaken for the original. A watch holds a pidfd opened *before* the start time is
// checked: if the check passes, the pidfd refers to the original process and stays bound to it,
// whatever happens to the pid afterwards.
#pragma once

#include <sys/types.h>

#include <cstdint>

#include "ipch/result.h"
#include "ipch/unique_fd.h"

namespace ipch::shm {

struct ProcessIdentity {
  uint32_t pid = 0;
  uint64_t start_time = 0;
};

// Our own identity (cached per process; recomputed after fork).
ProcessIdentity Self();
// The start time of `pid`, or an error (ESRCH when there is no such process).
Result<uint64_t> StartTime(pid_t pid);

class PeerWatch {
 public:
  PeerWatch() = default;
  // Dead (not an error) when the process is gone or the pid now belongs to someone else.
  static PeerWatch Open(const ProcessIdentity& who);
  // As Open, but a failure to check (out of memory or descriptors reading /proc) is an error
  // rather than a dead peer.
  static Result<PeerWatch> Watch(const ProcessIdentity& who);
  bool Alive() const;  // a process watching itself is always alive
  // The process watched, as it was given: to watch it again later without holding a descriptor.
  const ProcessIdentity& identity() const { return who_; }
  uint32_t pid() const { return who_.pid; }

 private:
  UniqueFd pidfd_;
  ProcessIdentity who_;
  bool self_ = false;
  bool dead_ = true;
};

}  // namespace ipch::shm
