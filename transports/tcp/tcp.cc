#include "tcp.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <algorithm>
#include <climits>
#include <cstring>

#include "../stream/socket_util.h"
#include "ipch/socket_address.h"

namespace ipch::tcp {
namespace {

Result<SocketAddress> Parse(const std::string& address) { return ParseInetAddress(address, "tcp"); }

// Bounds how long a dead link goes unnoticed (Options::dead_link_timeout). Data left
// unacknowledged for the timeout ends the connection (TCP_USER_TIMEOUT); an idle connection
// probes from a third of it on, a sixth of it apart, and the same timeout ends it once it has
// heard nothing for that long. Keepalive periods are whole seconds, at least 1.
Status SetDeadLinkTimeout(int fd, std::chrono::milliseconds timeout, const std::string& label) {
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

Result<StreamConnection> Wrap(UniqueFd fd, const Options& options, const std::string& label) {
  int one = 1;
  // Latency over batching: one message is one request; Nagle would hold small frames back.
  ::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  IPCH_RETURN_IF_ERROR(SetDeadLinkTimeout(fd.get(), options.dead_link_timeout, label));
  return StreamConnection(std::move(fd), UniqueFd(), options.max_message_size, /*is_socket=*/true, label);
}

}  // namespace

Result<Listener> Listen(const std::string& address, const Options& options) {
  auto sa = Parse(address);
  if (!sa.ok()) return std::move(sa).error();
  UniqueFd fd(::socket(sa->family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd) return ErrnoError("tcp listen " + address + ": socket");
  int one = 1;
  // Lets a restarted listener rebind while old connections sit in TIME_WAIT; Linux still
  // refuses a port that a live listener holds (EADDRINUSE).
  ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (sa->family == AF_INET6) ::setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  if (::bind(fd.get(), sa->get(), sa->len) != 0) {
    int err = errno;
    if (err == EADDRINUSE) return MakeError(Errc::AlreadyExists, "tcp listen " + address + ": address in use");
    if (err == EACCES) return MakeError(Errc::PermissionDenied, "tcp listen " + address + ": " + strerror(err));
    if (err == EADDRNOTAVAIL) return MakeError(Errc::InvalidArgument, "tcp listen " + address + ": address not local");
    return ErrnoError("tcp listen " + address + ": bind", err);
  }
  if (::listen(fd.get(), SOMAXCONN) != 0) return ErrnoError("tcp listen " + address + ": listen");
  sockaddr_storage bound{};
  socklen_t blen = sizeof bound;
  if (::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&bound), &blen) != 0) {
    return ErrnoError("tcp listen " + address + ": getsockname");
  }
  Listener l;
  l.fd_ = std::move(fd);
  l.address_ = FormatSocketAddress(bound, blen);
  l.options_ = options;
  return l;
}

Result<StreamConnection> Listener::Accept(Deadline d) {
  auto fd = AcceptWithDeadline(fd_.get(), d, "tcp accept " + address_);
  if (!fd.ok()) return std::move(fd).error();
  return Wrap(std::move(*fd), options_, "tcp " + address_ + " (server)");
}

Result<StreamConnection> Connect(const std::string& address, Deadline d, const Options& options) {
  auto sa = Parse(address);
  if (!sa.ok()) return std::move(sa).error();
  auto fd = ConnectWithDeadline(sa->family, sa->get(), sa->len, d, "tcp connect " + address);
  if (!fd.ok()) return std::move(fd).error();
  return Wrap(std::move(*fd), options, "tcp " + address + " (client)");
}

template <bool kV6>
Result<UniqueFd> Adapter<kV6>::ConnectRaw(const std::string& a, Deadline d) {
  auto sa = Parse(a);
  if (!sa.ok()) return std::move(sa).error();
  return ConnectWithDeadline(sa->family, sa->get(), sa->len, d, "tcp raw connect " + a);
}
template struct Adapter<false>;
template struct Adapter<true>;

}  // namespace ipch::tcp
