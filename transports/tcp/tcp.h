// TCP over loopback (IPv4 or IPv6): ephemeral ports, length-prefixed messages, TCP_NODELAY.
// Addresses are "127.0.0.1:PORT" or "[::1]:PORT"; port 0 asks for an ephemeral port.
#pragma once

#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

#include "../stream/stream_connection.h"
#include "ipch/transport.h"

namespace ipch::tcp {

inline constexpr std::size_t kDefaultMaxMessage = 16u << 20;

struct Options {
  std::size_t max_message_size = kDefaultMaxMessage;
  // How long a dead link (a cable pulled, a peer's host or namespace gone without a FIN) may go
  // unnoticed: TCP_USER_TIMEOUT (data unacknowledged this long ends the connection), and
  // keepalive probes from a third of it on, a sixth apart, so that an idle connection finds out
  // too. Calls then fail: an idle receiver within this plus one probe interval (at least 1 s), a
  // blocked sender within twice this (the kernel looks at its next, backed-off retransmission).
  // A reader that stops reading for this long while we wait to send looks the same to the
  // kernel, and ends the connection too. Zero keeps the kernel's defaults: no keepalive, and
  // about 15 minutes of retransmissions. docs/architecture.md (tcp) says why 30 s.
  std::chrono::milliseconds dead_link_timeout{30000};
};

class Listener {
 public:
  Result<StreamConnection> Accept(Deadline d);
  const std::string& address() const { return address_; }
  std::vector<std::filesystem::path> resource_paths() const { return {}; }
  Status Close() {
    fd_.reset();
    return Ok();
  }
  int fd() const { return fd_.get(); }

 private:
  friend Result<Listener> Listen(const std::string&, const Options&);
  UniqueFd fd_;
  std::string address_;
  Options options_;
};

Result<Listener> Listen(const std::string& address, const Options& options);
Result<StreamConnection> Connect(const std::string& address, Deadline d, const Options& options);
inline Result<Listener> Listen(const std::string& address, std::size_t max_message_size = kDefaultMaxMessage) {
  Options o;
  o.max_message_size = max_message_size;
  return Listen(address, o);
}
inline Result<StreamConnection> Connect(const std::string& address, Deadline d,
                                        std::size_t max_message_size = kDefaultMaxMessage) {
  Options o;
  o.max_message_size = max_message_size;
  return Connect(address, d, o);
}

// Adapters: one per address family, so the battery runs over both.
template <bool kV6>
struct Adapter {
  static constexpr std::string_view kName = kV6 ? "tcp6" : "tcp";
  static constexpr Caps kCaps = Cap::Stream | Cap::CrossProcess | Cap::PeerDeathDetect | Cap::RawPeer | Cap::SyscallIo;
  using Connection = StreamConnection;
  using Listener = tcp::Listener;
  static std::string Address(const EndpointSpec&) { return kV6 ? "[::1]:0" : "127.0.0.1:0"; }
  static Result<Listener> Listen(const std::string& a) { return tcp::Listen(a); }
  static Result<Connection> Connect(const std::string& a, Deadline d) { return tcp::Connect(a, d); }
  // For hostile-peer tests: a plain connected socket to write arbitrary bytes into.
  static Result<UniqueFd> ConnectRaw(const std::string& a, Deadline d);
  // The wire format, for hostile-peer tests that write frames through ConnectRaw.
  static Bytes FrameHeader(uint32_t length, ByteView payload) { return StreamConnection::FrameHeader(length, payload); }
  // The address is a socket address the stream toxics proxy can stand in front of.
  static constexpr bool kSocketAddress = true;
};

}  // namespace ipch::tcp
