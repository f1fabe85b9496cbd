// seqpacket: a message transport over Unix SOCK_SEQPACKET sockets, written from scratch to ipch's
// contract (ipch/transport.h). The kernel keeps message boundaries, so a message is one datagram:
// a 4-byte little-endian length, then the payload. The length tells an empty message from the
// end of the connection (a read of 0 bytes) and a cut datagram from a whole one.
#pragma once

#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "ipch/transport.h"  // the contract: Result, Status, Deadline, ByteView
#include "ipch/unique_fd.h"

namespace demo {

using ipch::Errc;
using ipch::MakeError;
using ipch::Status;

inline constexpr std::size_t kMaxMessage = 64 * 1024;

// Waits until `fd` is ready for `events`. An expired deadline is WouldBlock when nothing could be
// done at once (`first_try`), Timeout when it passed while waiting.
inline Status Wait(int fd, short events, ipch::Deadline d, bool first_try) {
  for (;; first_try = false) {
    if (d.expired()) return MakeError(first_try ? Errc::WouldBlock : Errc::Timeout, "seqpacket wait");
    pollfd p{fd, events, 0};
    const int n = ::poll(&p, 1, d.PollTimeoutMs());
    if (n > 0) return ipch::Ok();  // ready, or an error the next call reports
    if (n < 0 && errno != EINTR) return ipch::ErrnoError("seqpacket poll");
  }
}

inline bool PeerGone(int e) { return e == EPIPE || e == ECONNRESET || e == ECONNREFUSED || e == ENOENT; }
inline ipch::Result<sockaddr_un> SocketAddress(const std::string& path) {
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof a.sun_path) return MakeError(Errc::InvalidArgument, "bad path " + path);
  std::memcpy(a.sun_path, path.c_str(), path.size() + 1);
  return a;
}
inline ipch::UniqueFd NewSocket() {
  return ipch::UniqueFd(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
}

class Connection {
 public:
  Connection() = default;
  explicit Connection(ipch::UniqueFd fd) : fd_(std::move(fd)) {}
  Connection(Connection&& o) noexcept { *this = std::move(o); }
  Connection& operator=(Connection&& o) noexcept {
    fd_ = std::move(o.fd_);
    closed_ = o.closed_.load();
    failed_ = o.failed_.load();
    return *this;
  }
  std::size_t max_message_size() const { return kMaxMessage; }

  Status Send(ipch::ByteView message, ipch::Deadline d) {
    if (auto st = Check("send"); !st.ok()) return st;
    if (message.size() > kMaxMessage) return MakeError(Errc::MessageTooLarge, "seqpacket send");
    unsigned char header[4];
    for (int i = 0; i < 4; ++i) header[i] = static_cast<unsigned char>(message.size() >> (8 * i));
    iovec iov[2] = {{header, 4}, {const_cast<std::byte*>(message.data()), message.size()}};
    msghdr m{nullptr, 0, iov, 2, nullptr, 0, 0};
    for (bool first_try = true;;) {  // an interrupted call is not a try
      const ssize_t sent = ::sendmsg(fd_.get(), &m, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (sent == static_cast<ssize_t>(4 + message.size())) return ipch::Ok();
      if (sent >= 0) return Fail(Errc::Corrupt, "send: a datagram went out cut short");  // never on Linux
      if (errno == EINTR) continue;
      if (closed_) return MakeError(Errc::Closed, "seqpacket send: closed meanwhile");
      if (PeerGone(errno)) return Fail(Errc::PeerClosed, std::string("send: ") + std::strerror(errno));
      if (errno != EAGAIN) return ipch::ErrnoError("seqpacket send");
      if (auto st = Wait(fd_.get(), POLLOUT, d, std::exchange(first_try, false)); !st.ok()) return st;
    }
  }

  Status Receive(ipch::Bytes& out, ipch::Deadline d) {
    Status st = ReceiveInto(out, d);
    if (!st.ok()) out.clear();  // a failed receive hands over nothing
    return st;
  }

  // Shuts the socket down, waking a call blocked in another thread; the fd is closed with the object.
  Status Close() {
    if (!closed_.exchange(true)) ::shutdown(fd_.get(), SHUT_RDWR);
    return ipch::Ok();
  }

 private:
  Status ReceiveInto(ipch::Bytes& out, ipch::Deadline d) {
    if (auto st = Check("receive"); !st.ok()) return st;
    unsigned char h[4];
    out.resize(kMaxMessage + 1);  // a byte more than a message may have: MSG_TRUNC tells the rest
    iovec iov[2] = {{h, 4}, {out.data(), out.size()}};
    msghdr m{nullptr, 0, iov, 2, nullptr, 0, 0};
    for (bool first_try = true;;) {
      const ssize_t n = ::recvmsg(fd_.get(), &m, MSG_DONTWAIT | MSG_TRUNC);
      // A peer that died with our messages unread leaves ECONNRESET pending, which the next
      // recv reports once, ahead of what it sent before: read on, its messages first, then the end.
      if (n < 0 && (errno == EINTR || errno == ECONNRESET)) continue;
      if (n < 0 && errno == EAGAIN) {
        if (auto st = Wait(fd_.get(), POLLIN, d, std::exchange(first_try, false)); !st.ok()) return st;
        continue;
      }
      if (closed_) return MakeError(Errc::Closed, "seqpacket receive: closed meanwhile");
      if (n == 0) return Fail(Errc::PeerClosed, "receive: the peer closed");
      if (n < 0) return PeerGone(errno) ? Fail(Errc::PeerClosed, "receive") : ipch::ErrnoError("seqpacket receive");
      const size_t length = n < 4 ? 0 : h[0] | h[1] << 8 | h[2] << 16 | static_cast<size_t>(h[3]) << 24;
      if (n < 4 || length > kMaxMessage || length + 4 != static_cast<size_t>(n)) {
        return Fail(Errc::Corrupt, "receive: a datagram of " + std::to_string(n) + " bytes is not a message");
      }
      out.resize(length);
      return ipch::Ok();
    }
  }
  // PeerClosed and Corrupt stick: the socket is shut down and every later call says the same.
  Status Fail(Errc e, const std::string& why) {
    failed_ = static_cast<int>(e);
    ::shutdown(fd_.get(), SHUT_RDWR);
    return MakeError(e, "seqpacket " + why);
  }
  Status Check(const char* call) const {
    if (closed_) return MakeError(Errc::Closed, std::string("seqpacket ") + call + " after Close");
    if (const int e = failed_)
      return MakeError(static_cast<Errc>(e), std::string("seqpacket ") + call + " after a failure");
    return ipch::Ok();
  }

  ipch::UniqueFd fd_;
  std::atomic<bool> closed_{false};
  std::atomic<int> failed_{0};  // the sticky Errc, 0 for none
};

class Listener {
 public:
  Listener(ipch::UniqueFd fd, std::string path) : fd_(std::move(fd)), path_(std::move(path)) {}
  Listener(Listener&&) noexcept = default;
  Listener& operator=(Listener&&) noexcept = default;
  ~Listener() { (void)Close(); }
  std::string address() const { return path_; }
  std::vector<std::filesystem::path> resource_paths() const { return {path_}; }
  int fd() const { return fd_.get(); }

  ipch::Result<Connection> Accept(ipch::Deadline d) {
    if (fd_.get() < 0) return MakeError(Errc::Closed, "seqpacket accept after Close");
    for (bool first_try = true;;) {
      const int fd = ::accept4(fd_.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
      if (fd >= 0) return Connection(ipch::UniqueFd(fd));
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno != EAGAIN) return ipch::ErrnoError("seqpacket accept");
      if (auto st = Wait(fd_.get(), POLLIN, d, std::exchange(first_try, false)); !st.ok()) return std::move(st).error();
    }
  }
  Status Close() {  // closes the socket and removes its file
    if (fd_.get() >= 0) ::unlink(path_.c_str());
    fd_.reset();
    return ipch::Ok();
  }

 private:
  ipch::UniqueFd fd_;
  std::string path_;
};

// A socket file of ours that no listener answers on any more (its owner died): removed, true.
inline bool Stale(const std::string& path, const sockaddr_un& a) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0 || !S_ISSOCK(st.st_mode) || st.st_uid != ::geteuid()) return false;
  const ipch::UniqueFd probe = NewSocket();
  if (::connect(probe.get(), reinterpret_cast<const sockaddr*>(&a), sizeof a) == 0 || errno != ECONNREFUSED)
    return false;
  return ::unlink(path.c_str()) == 0;
}

inline ipch::Result<Listener> Listen(const std::string& path) {
  auto addr = SocketAddress(path);
  if (!addr.ok()) return std::move(addr).error();
  ipch::UniqueFd fd = NewSocket();
  if (fd.get() < 0) return ipch::ErrnoError("seqpacket socket");
  const mode_t old = ::umask(077);  // owner-only from its first moment
  const int rc = ::bind(fd.get(), reinterpret_cast<const sockaddr*>(&*addr), sizeof *addr), e = errno;
  ::umask(old);
  if (rc != 0 && e == EADDRINUSE && Stale(path, *addr)) return Listen(path);  // a dead owner's: again
  if (rc != 0 && e == EADDRINUSE) return MakeError(Errc::AlreadyExists, "seqpacket listen: " + path + " is taken");
  if (rc != 0) return ipch::ErrnoError("seqpacket bind " + path, e);
  Listener l(std::move(fd), path);  // from here its destructor removes the file
  if (::listen(l.fd(), 64) != 0) return ipch::ErrnoError("seqpacket listen");
  return l;
}

inline ipch::Result<Connection> Connect(const std::string& path, ipch::Deadline d) {
  auto addr = SocketAddress(path);
  if (!addr.ok()) return std::move(addr).error();
  ipch::UniqueFd fd = NewSocket();
  if (fd.get() < 0) return ipch::ErrnoError("seqpacket socket");
  // A full backlog fails a non-blocking connect (EAGAIN) and poll cannot wait for room: retried each ms.
  for (bool first_try = true;; first_try = false) {
    if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&*addr), sizeof *addr) == 0)
      return Connection(std::move(fd));
    if (PeerGone(errno)) return MakeError(Errc::PeerClosed, "seqpacket connect: no listener at " + path);
    if (errno != EAGAIN && errno != EINTR) return ipch::ErrnoError("seqpacket connect " + path);
    if (d.expired()) return MakeError(first_try ? Errc::WouldBlock : Errc::Timeout, "seqpacket connect: backlog full");
    ::poll(nullptr, 0, 1);
  }
}

}  // namespace demo
