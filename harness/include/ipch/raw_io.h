// Raw system calls for the harness's own coordination (child control channels, the isolating
// supervisor's pipes): the fault engine interposes the libc symbols, and an injected fault
// must never hit the harness itself, only the code under test.
#pragma once

#include <poll.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <ctime>

#include "ipch/deadline.h"

namespace ipch {

inline ssize_t RawRead(int fd, void* buf, size_t n) {
  for (;;) {
    long r = ::syscall(SYS_read, fd, buf, n);
    if (r >= 0 || errno != EINTR) return r;
  }
}

// Writes all of [buf, buf+n) or fails; for pipes and files (sockets use sendto with
// MSG_NOSIGNAL instead, see child_process.cc).
inline bool RawWriteAll(int fd, const void* buf, size_t n) {
  const char* p = static_cast<const char*>(buf);
  while (n > 0) {
    long w = ::syscall(SYS_write, fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    p += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

// ppoll bounded by a deadline; EINTR restarts with the time that is left.
inline int RawPoll(pollfd* fds, nfds_t n, Deadline d) {
  for (;;) {
    struct timespec ts;
    struct timespec* tsp = nullptr;
    if (!d.never()) {
      auto rem = std::chrono::duration_cast<std::chrono::nanoseconds>(d.remaining()).count();
      ts.tv_sec = rem / 1000000000;
      ts.tv_nsec = rem % 1000000000;
      tsp = &ts;
    }
    long r = ::syscall(SYS_ppoll, fds, n, tsp, nullptr, 0);
    if (r >= 0 || errno != EINTR) return static_cast<int>(r);
  }
}

}  // namespace ipch
