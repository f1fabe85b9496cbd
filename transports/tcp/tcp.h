// TCP over loopback (IPv4 or IPv6): ephemeral ports, length-prefixed messages, TCP_NODELAY.
// Addresses are "127.0.0.1:PORT" or "[::1]:PORT"; port 0 asks for an ephemeral port.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "../stream/stream_connection.h"
#include "ipch/transport.h"

namespace ipch::tcp {

inline constexpr std::size_t kDefaultMaxMessage = 16u << 20;

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
  friend Result<Listener> Listen(const std::string&, std::size_t);
  UniqueFd fd_;
  std::string address_;
  std::size_t max_ = kDefaultMaxMessage;
};

Result<Listener> Listen(const std::string& address, std::size_t max_message_size = kDefaultMaxMessage);
Result<StreamConnection> Connect(const std::string& address, Deadline d,
                                 std::size_t max_message_size = kDefaultMaxMessage);

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
