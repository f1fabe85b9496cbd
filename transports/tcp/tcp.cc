#include "tcp.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <cstring>

#include "../stream/socket_util.h"

namespace ipch::tcp {
namespace {

struct SockAddr {
  sockaddr_storage storage{};
  socklen_t len = 0;
  int family = AF_INET;
  const sockaddr* get() const { return reinterpret_cast<const sockaddr*>(&storage); }
};

// Accepts "A.B.C.D:PORT" and "[V6]:PORT"; anything else is InvalidArgument.
Result<SockAddr> Parse(const std::string& address) {
  auto bad = [&](const char* why) { return MakeError(Errc::InvalidArgument, "tcp address '" + address + "': " + why); };
  auto colon = address.rfind(':');
  if (colon == std::string::npos) return bad("expected HOST:PORT");
  std::string host = address.substr(0, colon), port_s = address.substr(colon + 1);
  if (port_s.empty() || port_s.size() > 5 || port_s.find_first_not_of("0123456789") != std::string::npos) {
    return bad("port must be a number 0-65535");
  }
  unsigned long port = std::stoul(port_s);
  if (port > 65535) return bad("port must be a number 0-65535");
  SockAddr sa;
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    auto* a6 = reinterpret_cast<sockaddr_in6*>(&sa.storage);
    a6->sin6_family = AF_INET6;
    a6->sin6_port = htons(static_cast<uint16_t>(port));
    if (::inet_pton(AF_INET6, host.substr(1, host.size() - 2).c_str(), &a6->sin6_addr) != 1)
      return bad("bad IPv6 host");
    sa.len = sizeof(sockaddr_in6);
    sa.family = AF_INET6;
  } else {
    auto* a4 = reinterpret_cast<sockaddr_in*>(&sa.storage);
    a4->sin_family = AF_INET;
    a4->sin_port = htons(static_cast<uint16_t>(port));
    if (::inet_pton(AF_INET, host.c_str(), &a4->sin_addr) != 1) return bad("bad IPv4 host");
    sa.len = sizeof(sockaddr_in);
  }
  return sa;
}

std::string Format(const sockaddr_storage& ss) {
  char buf[INET6_ADDRSTRLEN] = {};
  if (ss.ss_family == AF_INET6) {
    const auto* a6 = reinterpret_cast<const sockaddr_in6*>(&ss);
    ::inet_ntop(AF_INET6, &a6->sin6_addr, buf, sizeof buf);
    return "[" + std::string(buf) + "]:" + std::to_string(ntohs(a6->sin6_port));
  }
  const auto* a4 = reinterpret_cast<const sockaddr_in*>(&ss);
  ::inet_ntop(AF_INET, &a4->sin_addr, buf, sizeof buf);
  return std::string(buf) + ":" + std::to_string(ntohs(a4->sin_port));
}

StreamConnection Wrap(UniqueFd fd, std::size_t max, const std::string& label) {
  int one = 1;
  // Latency over batching: one message is one request; Nagle would hold small frames back.
  ::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return StreamConnection(std::move(fd), UniqueFd(), max, /*is_socket=*/true, label);
}

}  // namespace

Result<Listener> Listen(const std::string& address, std::size_t max_message_size) {
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
  l.address_ = Format(bound);
  l.max_ = max_message_size;
  return l;
}

Result<StreamConnection> Listener::Accept(Deadline d) {
  auto fd = AcceptWithDeadline(fd_.get(), d, "tcp accept " + address_);
  if (!fd.ok()) return std::move(fd).error();
  return Wrap(std::move(*fd), max_, "tcp " + address_ + " (server)");
}

Result<StreamConnection> Connect(const std::string& address, Deadline d, std::size_t max_message_size) {
  auto sa = Parse(address);
  if (!sa.ok()) return std::move(sa).error();
  auto fd = ConnectWithDeadline(sa->family, sa->get(), sa->len, d, "tcp connect " + address);
  if (!fd.ok()) return std::move(fd).error();
  return Wrap(std::move(*fd), max_message_size, "tcp " + address + " (client)");
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
