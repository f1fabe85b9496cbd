// Deliberately broken transports of other mechanisms than the stream sockets of broken.h: the
// real reference transport with one classic mistake planted around it, each caught by the
// battery's mechanism-specific cases (selftest_broken_test.cc says which).
#pragma once

#include <filesystem>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "ipch/transport.h"
#include "transports/fifo/fifo.h"
#include "transports/http/http.h"

namespace ipch::selftest {

// The fifo transport, except that Connect opens the rendezvous FIFO as if without O_NOFOLLOW:
// a `listen` that is a symlink leads it to whatever FIFO the link names. (Emulated from outside
// the transport: the link's target is hard-linked as `listen` into a private directory of the
// same name plus ".followed", which the real Connect is then given and which is removed after.)
struct FollowsSymlinksFifoAdapter : fifo::Adapter {
  static constexpr std::string_view kName = "fifo_follows_symlinks";
  static Result<Connection> Connect(const std::string& a, Deadline d) {
    namespace fs = std::filesystem;
    std::error_code ec;
    const fs::path listen = fs::path(a) / "listen";
    if (!fs::is_symlink(fs::symlink_status(listen, ec))) return fifo::Connect(a, d);
    const fs::path target = fs::canonical(listen, ec);  // the planted bug: the link is followed
    if (ec) return fifo::Connect(a, d);
    const fs::path followed = a + ".followed";
    fs::create_directory(followed, ec);
    fs::permissions(followed, fs::perms::owner_all, ec);
    fs::create_hard_link(target, followed / "listen", ec);
    auto c = fifo::Connect(followed.string(), d);
    fs::remove_all(followed, ec);
    return c;
  }
};

// The http transport, except that its client reports every 4xx answer to a send as one
// protocol error: a server's 413 (too large, nothing queued, the next send works) becomes the
// Corrupt that ends the connection's use.
class Vague413Connection {
 public:
  Vague413Connection() = default;
  explicit Vague413Connection(http::Connection c) : c_(std::move(c)) {}
  Status Send(ByteView msg, Deadline d) {
    Status st = c_.Send(msg, d);
    if (st.Is(Errc::MessageTooLarge) && msg.size() <= c_.max_message_size()) {  // the planted bug
      return MakeError(Errc::Corrupt, "http_vague_413: the server refused the request (4xx)");
    }
    return st;
  }
  Status Receive(Bytes& out, Deadline d) { return c_.Receive(out, d); }
  Status Close() { return c_.Close(); }
  std::size_t max_message_size() const { return c_.max_message_size(); }
  const http::Connection& inner() const { return c_; }

 private:
  http::Connection c_;
};

class Vague413Listener {
 public:
  Vague413Listener() = default;
  explicit Vague413Listener(http::Listener l) : l_(std::move(l)) {}
  Result<Vague413Connection> Accept(Deadline d) {
    auto c = l_.Accept(d);
    if (!c.ok()) return std::move(c).error();
    return Vague413Connection(std::move(*c));
  }
  std::string address() const { return l_.address(); }
  std::vector<std::filesystem::path> resource_paths() const { return l_.resource_paths(); }
  Status Close() { return l_.Close(); }

 private:
  http::Listener l_;
};

struct Vague413HttpAdapter {
  using Inner = http::Adapter;
  static constexpr std::string_view kName = "http_vague_413";
  static constexpr Caps kCaps = Inner::kCaps;
  using Connection = Vague413Connection;
  using Listener = Vague413Listener;
  static std::string Address(const EndpointSpec& s) { return Inner::Address(s); }
  static Result<Listener> Listen(const std::string& a) {
    auto l = Inner::Listen(a);
    if (!l.ok()) return std::move(l).error();
    return Listener(std::move(*l));
  }
  static Result<Connection> Connect(const std::string& a, Deadline d) {
    auto c = Inner::Connect(a, d);
    if (!c.ok()) return std::move(c).error();
    return Connection(std::move(*c));
  }
  static constexpr bool kSocketAddress = Inner::kSocketAddress;
  static constexpr bool kHttpWire = Inner::kHttpWire;
  static HttpCall HttpCallOf(std::string_view method, std::string_view target) {
    return Inner::HttpCallOf(method, target);
  }
  static HttpWireRequest HttpSendRequest(const Connection& client, uint64_t n, ByteView body) {
    return Inner::HttpSendRequest(client.inner(), n, body);
  }
  static HttpWireAnswer HttpReceiveAnswer(uint64_t n, ByteView body) { return Inner::HttpReceiveAnswer(n, body); }
};
static_assert(Transport<Vague413HttpAdapter>);

inline constexpr char kFifoFollowsSymlinks[] = "fifo_follows_symlinks";
inline constexpr char kHttpVague413[] = "http_vague_413";

}  // namespace ipch::selftest
