// An ipch adapter for ZeroMQ (libzmq, C API): one PAIR socket per end, over ipc:// or tcp://.
// Written as a user with a ZeroMQ code base would write one, honest about what the library can
// and cannot do; what the battery then finds is the library's (see known_*.txt and
// ../findings/README.md).
//
// - ZeroMQ sockets are not thread-safe, and the contract lets one thread send while another
//   receives: every libzmq call on a socket is made under the connection's mutex, and a wait
//   polls the socket's notification descriptor (ZMQ_FD) outside it, in short slices, since
//   that descriptor is edge-triggered and another thread's call may take the edge.
// - Peer death: a socket monitor reports the peer's disconnection (ZMQ_EVENT_DISCONNECTED),
//   which covers a close and a kill alike; messages that came before it are delivered first.
// - Each connection has a context of its own: zmq_ctx_term is the only way to wait until a
//   socket's queued messages are written (within ZMQ_LINGER), and a peer that returns expects
//   what it sent to arrive.
// - A PAIR socket has one peer: a listener serves one connection at a time (kMaxPeers = 1).
//   Its bound socket becomes the accepted connection; once that one is closed, the listener
//   binds the address again for the next peer.
#pragma once

#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "ipch/transport.h"

namespace zmq_example {

using ipch::Bytes;
using ipch::ByteView;
using ipch::Deadline;
using ipch::Errc;
using ipch::MakeError;
using ipch::Result;
using ipch::Status;

inline constexpr std::size_t kMaxMessage = 1 << 20;

inline ipch::Error ZmqError(const std::string& what) {
  const int e = zmq_errno();
  if (e == ETERM || e == ENOTSOCK) return MakeError(Errc::Closed, what + ": " + zmq_strerror(e));
  return ipch::ErrnoError(what + " (" + zmq_strerror(e) + ")", e);
}

// One end: a context, its PAIR socket and the socket's monitor (a PAIR on inproc://).
class End {
 public:
  static Result<std::unique_ptr<End>> Make() {
    auto e = std::unique_ptr<End>(new End);
    e->ctx_ = zmq_ctx_new();
    if (e->ctx_ == nullptr) return ZmqError("zmq_ctx_new");
    e->sock_ = zmq_socket(e->ctx_, ZMQ_PAIR);
    if (e->sock_ == nullptr) return ZmqError("zmq_socket");
    const int64_t max = kMaxMessage;
    const int no_reconnect = -1;  // a dead peer's address must not be dialled again behind our back
    zmq_setsockopt(e->sock_, ZMQ_MAXMSGSIZE, &max, sizeof max);
    zmq_setsockopt(e->sock_, ZMQ_RECONNECT_IVL, &no_reconnect, sizeof no_reconnect);
    const std::string mon = "inproc://monitor";
    if (zmq_socket_monitor(e->sock_, mon.c_str(), ZMQ_EVENT_ALL) != 0) return ZmqError("zmq_socket_monitor");
    e->monitor_ = zmq_socket(e->ctx_, ZMQ_PAIR);
    if (e->monitor_ == nullptr || zmq_connect(e->monitor_, mon.c_str()) != 0) return ZmqError("monitor connect");
    size_t n = sizeof(int);
    zmq_getsockopt(e->sock_, ZMQ_FD, &e->fds_[0], &n);
    n = sizeof(int);
    zmq_getsockopt(e->monitor_, ZMQ_FD, &e->fds_[1], &n);
    return e;
  }
  End(const End&) = delete;
  End& operator=(const End&) = delete;
  ~End() { Close(); }

  void* sock() const { return sock_; }
  // Reads the monitor's pending events (caller holds the lock): handshake done, peer gone.
  void Drain() {
    for (;;) {
      zmq_msg_t head, addr;
      zmq_msg_init(&head);
      if (zmq_msg_recv(&head, monitor_, ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&head);
        return;
      }
      uint16_t event = 0;
      uint32_t fd = 0;  // the event's value: the connection's descriptor for the events used here
      if (zmq_msg_size(&head) >= sizeof event + sizeof fd) {
        std::memcpy(&event, zmq_msg_data(&head), sizeof event);
        std::memcpy(&fd, static_cast<const char*>(zmq_msg_data(&head)) + sizeof event, sizeof fd);
      }
      zmq_msg_close(&head);
      zmq_msg_init(&addr);
      (void)zmq_msg_recv(&addr, monitor_, ZMQ_DONTWAIT);  // the second frame: the endpoint
      zmq_msg_close(&addr);
      // The handshake event carries no descriptor; the connection's own event before it does.
      if (event == ZMQ_EVENT_ACCEPTED || event == ZMQ_EVENT_CONNECTED) last_fd_ = fd;
      if (event == ZMQ_EVENT_HANDSHAKE_SUCCEEDED && !paired_) {
        paired_ = true;
        peer_fd_ = last_fd_;
      }
      // Only the peer's own connection counts: a bound PAIR also sees later connectors come and go.
      if (event == ZMQ_EVENT_DISCONNECTED && paired_ && fd == peer_fd_) gone_ = true;
      if ((event == ZMQ_EVENT_DISCONNECTED || event == ZMQ_EVENT_CLOSED) && connecting_ && !paired_) gone_ = true;
    }
  }
  bool paired() const { return paired_; }
  bool gone() const { return gone_; }
  void set_connecting() { connecting_ = true; }
  // Waits (without the lock) until the socket or its monitor may have news, or 5 ms pass.
  void WaitSlice(const Deadline& d) const {
    pollfd p[2] = {{fds_[0], POLLIN, 0}, {fds_[1], POLLIN, 0}};
    ::poll(p, 2, std::min(5, d.PollTimeoutMs()));
  }
  // Closes the socket; waits up to `linger_ms` for its queued messages to be written.
  void Close(int linger_ms = 0) {
    if (ctx_ == nullptr) return;
    if (sock_) {
      zmq_setsockopt(sock_, ZMQ_LINGER, &linger_ms, sizeof linger_ms);
      zmq_socket_monitor(sock_, nullptr, 0);
      zmq_close(sock_);
    }
    if (monitor_) zmq_close(monitor_);
    zmq_ctx_term(ctx_);
    ctx_ = sock_ = monitor_ = nullptr;
    // libzmq leaves the socket file of an ipc:// endpoint it bound (../findings, item 1): remove
    // it, if it is still ours (another binder may have replaced it since).
    struct stat st;
    if (!bound_path_.empty() && ::lstat(bound_path_.c_str(), &st) == 0 && st.st_ino == bound_ino_) {
      ::unlink(bound_path_.c_str());
    }
  }
  // Records the ipc:// socket file a bind just made, to remove it at Close.
  void Bound(const std::string& endpoint) {
    struct stat st;
    if (endpoint.rfind("ipc://", 0) == 0 && ::lstat(endpoint.c_str() + 6, &st) == 0) {
      bound_path_ = endpoint.substr(6);
      bound_ino_ = st.st_ino;
    }
  }

 private:
  End() = default;
  void* ctx_ = nullptr;
  void* sock_ = nullptr;
  void* monitor_ = nullptr;
  int fds_[2] = {-1, -1};  // ZMQ_FD of the socket and of the monitor: stable for their lifetime
  bool paired_ = false, gone_ = false, connecting_ = false;
  uint32_t peer_fd_ = 0, last_fd_ = 0;
  std::string bound_path_;  // an ipc:// socket file this end bound, and its inode
  ino_t bound_ino_ = 0;
};

// A listener's state, shared with the connection it accepted: that connection's close frees the
// one peer's place, and the address is bound again at once for the next peer.
struct ListenerState {
  std::mutex mu;
  std::string endpoint;
  std::unique_ptr<End> bound;  // bound, waiting for its peer
  bool busy = false;           // the accepted connection is open
  bool closed = false;

  Status Rebind() {  // under mu
    auto e = End::Make();
    if (!e.ok()) return std::move(e).error();
    if (zmq_bind((*e)->sock(), endpoint.c_str()) != 0) {
      if (zmq_errno() == EADDRINUSE) return MakeError(Errc::AlreadyExists, "zmq bind " + endpoint);
      return ZmqError("zmq bind " + endpoint);
    }
    char last[256];
    size_t n = sizeof last;
    if (zmq_getsockopt((*e)->sock(), ZMQ_LAST_ENDPOINT, last, &n) == 0) endpoint = last;  // tcp: the port chosen
    (*e)->Bound(endpoint);
    bound = std::move(*e);
    return ipch::Ok();
  }
  void Freed() {
    std::lock_guard lock(mu);
    busy = false;
    if (!closed && !bound) (void)Rebind();  // failing, the next Accept tries again and reports it
  }
};

class Connection {
 public:
  Connection() = default;
  explicit Connection(std::unique_ptr<End> end, std::shared_ptr<ListenerState> listener = nullptr)
      : s_(std::make_unique<State>()) {
    s_->end = std::move(end);
    s_->listener = std::move(listener);
  }
  Connection(Connection&&) noexcept = default;
  Connection& operator=(Connection&& o) noexcept {
    if (this != &o) {
      (void)Close();
      s_ = std::move(o.s_);
    }
    return *this;
  }
  ~Connection() { (void)Close(); }

  Status Send(ByteView msg, Deadline d) {
    if (msg.size() > kMaxMessage) return MakeError(Errc::MessageTooLarge, "zmq: above the message limit");
    // A PAIR socket queues for a vanished peer as for a slow one: ask the monitor first.
    return Loop(d, "zmq send", true,
                [&](End& e) -> int { return zmq_send(e.sock(), msg.data(), msg.size(), ZMQ_DONTWAIT); });
  }
  Status Receive(Bytes& out, Deadline d) {
    return Loop(d, "zmq receive", false, [&](End& e) -> int {
      zmq_msg_t m;
      zmq_msg_init(&m);
      const int rc = zmq_msg_recv(&m, e.sock(), ZMQ_DONTWAIT);
      if (rc >= 0) {
        const auto* p = static_cast<const std::byte*>(zmq_msg_data(&m));
        out.assign(p, p + zmq_msg_size(&m));
      }
      zmq_msg_close(&m);
      return rc;
    });
  }
  Status Close() {
    if (!s_) return ipch::Ok();
    std::unique_lock lock(s_->mu);
    if (s_->end) {
      s_->end->Drain();
      // What we sent is written before we return (within the linger), unless the peer is gone.
      const auto linger = std::chrono::duration_cast<std::chrono::milliseconds>(ipch::Scaled(std::chrono::seconds(2)));
      s_->end->Close(s_->end->gone() ? 0 : static_cast<int>(linger.count()));
      s_->end.reset();
      if (auto l = std::exchange(s_->listener, nullptr)) {
        lock.unlock();
        l->Freed();
      }
    }
    return ipch::Ok();
  }
  std::size_t max_message_size() const { return kMaxMessage; }

 private:
  struct State {
    std::mutex mu;
    std::unique_ptr<End> end;
    std::shared_ptr<ListenerState> listener;  // the listener that accepted us, if any
  };
  // Tries `op` until it succeeds, the peer is gone (for a receive: after what it sent was
  // taken; for a send, `gone_first`: at once), or `d` passes.
  template <class Op>
  Status Loop(const Deadline& d, const char* what, bool gone_first, Op op) {
    if (!s_) return MakeError(Errc::Closed, what);
    for (bool first = true;; first = false) {
      {
        std::lock_guard lock(s_->mu);
        if (!s_->end) return MakeError(Errc::Closed, what);
        s_->end->Drain();
        const bool gone = s_->end->gone();
        if (gone && gone_first) return MakeError(Errc::PeerClosed, std::string(what) + ": the peer disconnected");
        if (op(*s_->end) >= 0) return ipch::Ok();
        if (zmq_errno() != EAGAIN) return ZmqError(what);
        if (gone) {
          // A receive handles the socket's pending commands only now and then (libzmq throttles
          // them); ZMQ_EVENTS handles them all, among them the last messages' arrival, which
          // libzmq queued before it told the monitor of the disconnection.
          int events = 0;
          size_t n = sizeof events;
          zmq_getsockopt(s_->end->sock(), ZMQ_EVENTS, &events, &n);
          if (op(*s_->end) >= 0) return ipch::Ok();
          return MakeError(Errc::PeerClosed, std::string(what) + ": the peer disconnected");
        }
      }
      if (d.expired()) return MakeError(first ? Errc::WouldBlock : Errc::Timeout, what);
      s_->end->WaitSlice(d);
    }
  }
  std::unique_ptr<State> s_;
};

class Listener {
 public:
  Listener() = default;
  static Result<Listener> Bind(const std::string& endpoint) {
    Listener l;
    l.s_ = std::make_shared<ListenerState>();
    l.s_->endpoint = endpoint;
    if (Status st = l.s_->Rebind(); !st.ok()) return std::move(st).error();
    return l;
  }
  Listener(Listener&&) noexcept = default;
  Listener& operator=(Listener&& o) noexcept {
    if (this != &o) {
      (void)Close();
      s_ = std::move(o.s_);
    }
    return *this;
  }
  ~Listener() { (void)Close(); }

  Result<Connection> Accept(Deadline d) {
    if (!s_) return MakeError(Errc::Closed, "zmq accept");
    for (bool first = true;; first = false) {
      End* waiting = nullptr;
      {
        std::lock_guard lock(s_->mu);
        if (!s_->bound && !s_->busy) IPCH_RETURN_IF_ERROR(s_->Rebind());
        if (s_->bound) {
          s_->bound->Drain();
          if (s_->bound->paired()) {
            s_->busy = true;
            return Connection(std::move(s_->bound), s_);
          }
          waiting = s_->bound.get();  // only this thread replaces it while no connection is open
        }
      }
      if (d.expired()) return MakeError(first ? Errc::WouldBlock : Errc::Timeout, "zmq accept: no peer");
      if (waiting) {
        waiting->WaitSlice(d);
      } else {
        std::this_thread::sleep_for(std::chrono::milliseconds(5));  // the one peer's connection is open
      }
    }
  }
  std::string address() const { return s_ ? s_->endpoint : std::string(); }
  std::vector<std::filesystem::path> resource_paths() const {
    if (s_ && s_->endpoint.rfind("ipc://", 0) == 0) return {s_->endpoint.substr(6)};
    return {};
  }
  Status Close() {
    const auto s = std::exchange(s_, nullptr);
    if (!s) return ipch::Ok();
    std::lock_guard lock(s->mu);
    s->closed = true;
    s->bound.reset();
    return ipch::Ok();
  }

 private:
  std::shared_ptr<ListenerState> s_;
};

inline Result<Connection> Connect(const std::string& endpoint, Deadline d) {
  auto e = End::Make();
  if (!e.ok()) return std::move(e).error();
  (*e)->set_connecting();
  if (zmq_connect((*e)->sock(), endpoint.c_str()) != 0) return ZmqError("zmq connect " + endpoint);
  // Connected once the ZMTP handshake is done; the connect itself is asynchronous.
  for (bool first = true;; first = false) {
    (*e)->Drain();
    if ((*e)->paired()) return Connection(std::move(*e));
    if ((*e)->gone()) return MakeError(Errc::PeerClosed, "zmq connect " + endpoint + ": nobody listens");
    if (d.expired()) return MakeError(first ? Errc::WouldBlock : Errc::Timeout, "zmq connect " + endpoint);
    (*e)->WaitSlice(d);
  }
}

// The two adapters: the same code over ipc:// (a socket file in the test's scratch directory)
// and over tcp:// on loopback.
struct IpcAdapter {
  static constexpr std::string_view kName = "zmq_ipc";
  static constexpr ipch::Caps kCaps = ipch::Cap::CrossProcess | ipch::Cap::PeerDeathDetect | ipch::Cap::NamedResource |
                                      ipch::Cap::SyscallIo | ipch::Cap::AsyncIo;
  static constexpr std::size_t kMaxPeers = 1;
  using Connection = zmq_example::Connection;
  using Listener = zmq_example::Listener;
  static std::string Address(const ipch::EndpointSpec& s) {
    return "ipc://" + (s.scratch_dir / (s.token + ".zmq")).string();
  }
  static Result<Listener> Listen(const std::string& a) { return Listener::Bind(a); }
  static Result<Connection> Connect(const std::string& a, Deadline d) { return zmq_example::Connect(a, d); }
};

struct TcpAdapter : IpcAdapter {
  static constexpr std::string_view kName = "zmq_tcp";
  static constexpr ipch::Caps kCaps =
      ipch::Cap::CrossProcess | ipch::Cap::PeerDeathDetect | ipch::Cap::SyscallIo | ipch::Cap::AsyncIo;
  static std::string Address(const ipch::EndpointSpec&) { return "tcp://127.0.0.1:*"; }
};

}  // namespace zmq_example
