#include "socket_util.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>

#include <algorithm>
#include <climits>
#include <cstdio>
#include <cstring>

namespace ipch {

bool IsNoPeer(int err) { return err == ECONNREFUSED || err == ENOENT || err == ECONNRESET || err == ECONNABORTED; }

Result<UniqueFd> AcceptWithDeadline(int listen_fd, Deadline d, const std::string& label) {
  if (listen_fd < 0) return MakeError(Errc::Closed, label + ": listener is closed");
  bool first = true;
  for (;;) {
    int fd = ::accept4(listen_fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) return UniqueFd(fd);
    if (errno == EINTR || errno == ECONNABORTED) continue;  // a client gave up while queued
    if (errno != EAGAIN && errno != EWOULDBLOCK) return ErrnoError(label + ": accept");
    if (d.expired()) {
      return MakeError(first ? Errc::WouldBlock : Errc::Timeout, label + ": no connection to accept");
    }
    first = false;
    pollfd pfd{listen_fd, POLLIN, 0};
    int r = ::poll(&pfd, 1, d.PollTimeoutMs());
    if (r < 0 && errno != EINTR) return ErrnoError(label + ": poll");
  }
}

Result<UniqueFd> ConnectWithDeadline(int family, const sockaddr* addr, socklen_t len, Deadline d,
                                     const std::string& label) {
  UniqueFd fd(::socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd) return ErrnoError(label + ": socket");
  if (::connect(fd.get(), addr, len) == 0) return fd;
  if (errno != EINPROGRESS && errno != EINTR && errno != EAGAIN) {
    int err = errno;
    if (IsNoPeer(err)) return MakeError(Errc::PeerClosed, label + ": connect: " + strerror(err));
    if (err == EACCES || err == EPERM) return MakeError(Errc::PermissionDenied, label + ": connect: " + strerror(err));
    return ErrnoError(label + ": connect", err);
  }
  // In progress (or interrupted, which on Linux continues asynchronously): wait for the result.
  // A poll may say "writable" while the connect is still in progress (a spurious readiness):
  // connected only once the socket has a peer, failed once SO_ERROR says so.
  for (;;) {
    pollfd pfd{fd.get(), POLLOUT, 0};
    int r = ::poll(&pfd, 1, d.PollTimeoutMs());
    if (r == 0 && d.expired()) return MakeError(Errc::Timeout, label + ": connect");
    if (r < 0 && errno != EINTR) return ErrnoError(label + ": poll");
    if (r <= 0) continue;
    int err = 0;
    socklen_t elen = sizeof err;
    if (::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &elen) != 0) return ErrnoError(label + ": SO_ERROR");
    if (err != 0) {
      if (IsNoPeer(err)) return MakeError(Errc::PeerClosed, label + ": connect: " + strerror(err));
      return ErrnoError(label + ": connect", err);
    }
    sockaddr_storage peer{};
    socklen_t plen = sizeof peer;
    if (::getpeername(fd.get(), reinterpret_cast<sockaddr*>(&peer), &plen) == 0) return fd;
    if (errno != ENOTCONN) return ErrnoError(label + ": getpeername");
    if (d.expired()) return MakeError(Errc::Timeout, label + ": connect");
  }
}

Result<bool> EnsurePrivateDir(const std::filesystem::path& dir, const std::string& label) {
  struct stat st {};
  if (::lstat(dir.c_str(), &st) != 0) {
    if (errno != ENOENT) return ErrnoError(label + ": stat " + dir.string());
    if (::mkdir(dir.c_str(), 0700) == 0) return true;
    if (errno != EEXIST) return ErrnoError(label + ": mkdir " + dir.string());
    if (::lstat(dir.c_str(), &st) != 0) return ErrnoError(label + ": stat " + dir.string());
  }
  if (!S_ISDIR(st.st_mode)) return MakeError(Errc::InvalidArgument, label + ": " + dir.string() + " is not a directory");
  if (st.st_uid != ::geteuid()) {
    return MakeError(Errc::PermissionDenied,
                     label + ": " + dir.string() + " is owned by uid " + std::to_string(st.st_uid) + ", not us");
  }
  if ((st.st_mode & 077) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", st.st_mode & 07777);
    return MakeError(Errc::PermissionDenied, label + ": " + dir.string() + " has mode " + mode +
                                                 "; the directory must not be open to group or others");
  }
  return false;
}

namespace {
// This thread's SIGPIPE: not looked at yet, blocked by us (a pending one after EPIPE is ours to
// take off), or blocked by the caller before we looked (its pending signals are its own).
enum class PipeSignal : unsigned char { kUnknown, kBlockedByUs, kBlockedByCaller };
thread_local PipeSignal t_pipe_signal = PipeSignal::kUnknown;
}  // namespace

ssize_t WritevNoSigpipe(int fd, const iovec* iov, int iovcnt) {
  sigset_t pipe_only;
  sigemptyset(&pipe_only);
  sigaddset(&pipe_only, SIGPIPE);
  if (t_pipe_signal == PipeSignal::kUnknown) {
    sigset_t old;
    if (pthread_sigmask(SIG_BLOCK, &pipe_only, &old) == 0) {
      t_pipe_signal = sigismember(&old, SIGPIPE) ? PipeSignal::kBlockedByCaller : PipeSignal::kBlockedByUs;
    }
  }
  const ssize_t w = ::writev(fd, iov, iovcnt);
  const int err = errno;
  sigset_t pending;
  if (w < 0 && err == EPIPE && t_pipe_signal == PipeSignal::kBlockedByUs && sigpending(&pending) == 0 &&
      sigismember(&pending, SIGPIPE)) {
    const timespec zero{};
    RetryEintr([&] { return ::sigtimedwait(&pipe_only, nullptr, &zero); });
  }
  errno = err;
  return w;
}

// Data left unacknowledged for the timeout ends the connection (TCP_USER_TIMEOUT); an idle connection
// probes from a third of it on, a sixth of it apart, and the same timeout ends it once it has
// heard nothing for that long. Keepalive periods are whole seconds, at least 1.
Status SetTcpDeadLinkTimeout(int fd, std::chrono::milliseconds timeout, const std::string& label) {
  if (timeout.count() <= 0) return Ok();
  const auto whole_seconds = [](std::chrono::milliseconds t) {
    return static_cast<int>(std::clamp<long long>(t.count() / 1000, 1, 32767));  // the kernel's range
  };
  const unsigned user_timeout = static_cast<unsigned>(std::min<long long>(timeout.count(), INT_MAX));
  const int idle = whole_seconds(timeout / 3);
  const int interval = whole_seconds(timeout / 6);
  // Linux consults the count only without a user timeout; it is set to agree with it.
  const int count = std::clamp(static_cast<int>((timeout.count() / 1000 - idle + interval - 1) / interval), 1, 127);
  const int one = 1;
  const struct {
    int level, name;
    const void* value;
    socklen_t len;
    const char* what;
  } opts[] = {
      {IPPROTO_TCP, TCP_USER_TIMEOUT, &user_timeout, sizeof user_timeout, "TCP_USER_TIMEOUT"},
      {SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one, "SO_KEEPALIVE"},
      {IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle, "TCP_KEEPIDLE"},
      {IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof interval, "TCP_KEEPINTVL"},
      {IPPROTO_TCP, TCP_KEEPCNT, &count, sizeof count, "TCP_KEEPCNT"},
  };
  for (const auto& o : opts) {
    if (::setsockopt(fd, o.level, o.name, o.value, o.len) != 0) {
      return ErrnoError(label + ": setsockopt " + o.what);
    }
  }
  return Ok();
}

}  // namespace ipch
