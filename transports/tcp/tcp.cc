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

Result<StreamConnection> Wrap(UniqueFd fd, const Options& options, const std::string& label) {
  int one = 1;
  // Latency over batching: one message is one request; Nagle would hold small frames back.
  ::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  IPCH_RETURN_IF_ERROR(SetTcpDeadLinkTimeout(fd.get(), options.dead_link_timeout, label));
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
