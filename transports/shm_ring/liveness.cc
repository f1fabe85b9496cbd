#include "liveness.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>

namespace ipch::shm {

Result<uint64_t> StartTime(pid_t pid) {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d/stat", static_cast<int>(pid));
  UniqueFd fd(::open(path, O_RDONLY | O_CLOEXEC));
  if (!fd) return ErrnoError(std::string("open ") + path);
  char buf[1024];
  ssize_t n = RetryEintr([&] { return ::read(fd.get(), buf, sizeof buf - 1); });
  if (n <= 0) return ErrnoError(std::string("read ") + path);
  buf[n] = '\0';
  // The command name (field 2) may contain spaces and parentheses: count from the last ')'.
  const char* p = std::strrchr(buf, ')');
  if (!p) return MakeError(Errc::Corrupt, std::string(path) + ": no ')'");
  int field = 2;
  for (++p; *p && field < 22; ++p) {
    if (*p == ' ') ++field;
  }
  if (field != 22) return MakeError(Errc::Corrupt, std::string(path) + ": too few fields");
  return std::strtoull(p, nullptr, 10);
}

ProcessIdentity Self() {
  static thread_local ProcessIdentity cached;  // re-derived when the pid changes (after fork)
  const auto pid = static_cast<uint32_t>(::getpid());
  if (cached.pid != pid) {
    auto st = StartTime(static_cast<pid_t>(pid));
    cached = {pid, st.ok() ? *st : 0};
  }
  return cached;
}

Result<PeerWatch> PeerWatch::Watch(const ProcessIdentity& who) {
  PeerWatch w;
  w.who_ = who;
  if (who.pid == 0 || who.pid > static_cast<uint32_t>(INT32_MAX)) return w;  // dead: no such process
  if (who.pid == Self().pid) {
    w.self_ = true;
    w.dead_ = false;
    return w;
  }
  w.pidfd_.reset(static_cast<int>(::syscall(SYS_pidfd_open, static_cast<pid_t>(who.pid), 0)));
  if (!w.pidfd_) return w;  // ESRCH: gone
  auto st = StartTime(static_cast<pid_t>(who.pid));
  if (!st.ok()) {
    const auto& code = st.error().code;
    if (code != std::error_code(ENOENT, std::system_category()) &&
        code != std::error_code(ESRCH, std::system_category())) {
      return std::move(st).error();  // could not look: not the same as dead
    }
    w.pidfd_.reset();
    return w;
  }
  if (*st != who.start_time) {
    w.pidfd_.reset();  // the pid was recycled: the process we were told about is dead
    return w;
  }
  w.dead_ = false;
  return w;
}

PeerWatch PeerWatch::Open(const ProcessIdentity& who) {
  auto w = Watch(who);
  if (w.ok()) return std::move(*w);
  PeerWatch dead;
  dead.who_ = who;
  return dead;
}

bool PeerWatch::Alive() const {
  if (dead_) return false;
  if (self_) return true;
  pollfd p{pidfd_.get(), POLLIN, 0};
  // A pidfd becomes readable when the process exits (a zombie counts as exited).
  int r = RetryEintr([&] { return ::poll(&p, 1, 0); });
  return r == 0;
}

}  // namespace ipch::shm
