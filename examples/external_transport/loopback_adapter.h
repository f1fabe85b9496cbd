// The user's own adapter ("loopback"): it reuses ipch's tcp framing under another name and with
// a smaller message limit, which is all an adapter is — a name, capabilities, and
// Listen/Connect/Address. The battery (pipe_pair_conformance.cc) and the session fuzzer
// (ipch_add_session_fuzzer in CMakeLists.txt) both take it from here.
#pragma once

#include "ipch/transport.h"
#include "transports/tcp/tcp.h"

namespace user {

inline constexpr std::size_t kMax = 256 * 1024;

struct Listener {
  ipch::tcp::Listener inner;
  ipch::Result<ipch::StreamConnection> Accept(ipch::Deadline d) { return inner.Accept(d); }
  std::string address() const { return inner.address(); }
  std::vector<std::filesystem::path> resource_paths() const { return {}; }
  ipch::Status Close() { return inner.Close(); }
};

struct LoopbackAdapter {
  static constexpr std::string_view kName = "user_loopback";
  static constexpr ipch::Caps kCaps =
      ipch::Cap::Stream | ipch::Cap::CrossProcess | ipch::Cap::PeerDeathDetect | ipch::Cap::SyscallIo;
  using Connection = ipch::StreamConnection;
  using Listener = user::Listener;
  static std::string Address(const ipch::EndpointSpec&) { return "127.0.0.1:0"; }
  static ipch::Result<Listener> Listen(const std::string& a) {
    auto l = ipch::tcp::Listen(a, kMax);
    if (!l.ok()) return std::move(l).error();
    return Listener{std::move(*l)};
  }
  static ipch::Result<Connection> Connect(const std::string& a, ipch::Deadline d) {
    return ipch::tcp::Connect(a, d, kMax);
  }
};
static_assert(ipch::Transport<LoopbackAdapter>);

}  // namespace user
