// Socket addresses as text, shared by the socket transports and the stream proxy:
// "A.B.C.D:PORT", "[V6]:PORT", or a unix socket path ("/..." or "./...").
#pragma once

#include <sys/socket.h>

#include <string>

#include "ipch/result.h"

namespace ipch {

struct SocketAddress {
  sockaddr_storage storage{};
  socklen_t len = 0;
  int family = AF_INET;
  const sockaddr* get() const { return reinterpret_cast<const sockaddr*>(&storage); }
};

// HOST:PORT only (IPv4 dotted quad or bracketed IPv6). InvalidArgument names `what` and the reason.
Result<SocketAddress> ParseInetAddress(const std::string& text, const std::string& what);
// A path (contains '/') is a unix socket address; anything else is parsed as HOST:PORT.
Result<SocketAddress> ParseSocketAddress(const std::string& text, const std::string& what);
// The text form of a bound or peer address (inverse of ParseSocketAddress).
std::string FormatSocketAddress(const sockaddr_storage& ss, socklen_t len);

}  // namespace ipch
