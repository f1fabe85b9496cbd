#include "ipch/socket_address.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/un.h>

#include <cstring>

namespace ipch {

Result<SocketAddress> ParseInetAddress(const std::string& text, const std::string& what) {
  auto bad = [&](const char* why) { return MakeError(Errc::InvalidArgument, what + " address '" + text + "': " + why); };
  auto colon = text.rfind(':');
  if (colon == std::string::npos) return bad("expected HOST:PORT");
  std::string host = text.substr(0, colon), port_s = text.substr(colon + 1);
  if (port_s.empty() || port_s.size() > 5 || port_s.find_first_not_of("0123456789") != std::string::npos) {
    return bad("port must be a number 0-65535");
  }
  unsigned long port = std::stoul(port_s);
  if (port > 65535) return bad("port must be a number 0-65535");
  SocketAddress sa;
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

Result<SocketAddress> ParseSocketAddress(const std::string& text, const std::string& what) {
  if (text.find('/') == std::string::npos) return ParseInetAddress(text, what);
  SocketAddress sa;
  auto* un = reinterpret_cast<sockaddr_un*>(&sa.storage);
  if (text.size() >= sizeof un->sun_path) {
    return MakeError(Errc::InvalidArgument, what + " address '" + text + "': a unix socket path must be 1.." +
                                                std::to_string(sizeof un->sun_path - 1) + " bytes");
  }
  un->sun_family = AF_UNIX;
  std::memcpy(un->sun_path, text.c_str(), text.size() + 1);
  sa.len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + text.size() + 1);
  sa.family = AF_UNIX;
  return sa;
}

std::string FormatSocketAddress(const sockaddr_storage& ss, socklen_t len) {
  char buf[INET6_ADDRSTRLEN] = {};
  if (ss.ss_family == AF_UNIX) {
    const auto* un = reinterpret_cast<const sockaddr_un*>(&ss);
    std::size_t max = len > offsetof(sockaddr_un, sun_path) ? len - offsetof(sockaddr_un, sun_path) : 0;
    return std::string(un->sun_path, strnlen(un->sun_path, std::min(max, sizeof un->sun_path)));
  }
  if (ss.ss_family == AF_INET6) {
    const auto* a6 = reinterpret_cast<const sockaddr_in6*>(&ss);
    ::inet_ntop(AF_INET6, &a6->sin6_addr, buf, sizeof buf);
    return "[" + std::string(buf) + "]:" + std::to_string(ntohs(a6->sin6_port));
  }
  const auto* a4 = reinterpret_cast<const sockaddr_in*>(&ss);
  ::inet_ntop(AF_INET, &a4->sin_addr, buf, sizeof buf);
  return std::string(buf) + ":" + std::to_string(ntohs(a4->sin_port));
}

}  // namespace ipch
