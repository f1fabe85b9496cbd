// An ipch adapter for nng 1.5.2 (Debian's libnng-dev): one pair1 socket per end, over ipc:// or
// tcp://. Written as a user with an nng code base would write one, honest about what the library
// can and cannot do; what the battery then finds is the library's (see known.txt and
// ../findings/README.md).
//
// - pair1 is exclusive: a socket has one peer. A listener serves one connection at a time
//   (kMaxPeers = 1): its bound socket becomes the accepted connection, and once that one is
//   closed the listener binds the address again for the next peer.
// - Peer death: pipe notifications (NNG_PIPE_EV_REM_POST) report the peer's pipe going away,
//   after a close and a kill alike; nng reads a pipe to its end first, so what the peer sent
//   before is delivered before PeerClosed. A blocked call is woken by cancelling its aio.
// - A connection has one peer for its lifetime: nng would otherwise let a dialer reconnect, or a
//   bound socket take the next connector, behind the connection's back.
// - I/O is nng's: its own threads read and write (AsyncIo); a call waits on an nng_aio with a
//   timeout. nng cannot go on in a forked child ("not fork-reentrant safe", findings item 6):
//   cross-process peers are exec'd (kPeerMode).
#pragma once

#include <nng/nng.h>
#include <nng/protocol/pair1/pair.h>
#include <poll.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "ipch/peer.h"
#include "ipch/transport.h"

namespace nng_example {

using ipch::Bytes;
using ipch::ByteView;
using ipch::Deadline;
using ipch::Errc;
using ipch::MakeError;
using ipch::Result;
using ipch::Status;

inline constexpr std::size_t kMaxMessage = 1 << 20;
// NNG_OPT_RECVMAXSZ counts pair1's 4-byte hop-count header as part of the message.
inline constexpr std::size_t kPair1Header = 4;

inline ipch::Error NngError(int rv, const std::string& what) {
  const std::string ctx = what + ": " + nng_strerror(rv);
  if (rv & NNG_ESYSERR) return ipch::ErrnoError(ctx, rv & ~NNG_ESYSERR);
  static constexpr std::pair<int, Errc> kNamed[] = {
      {NNG_ECLOSED, Errc::Closed},
      {NNG_EADDRINUSE, Errc::AlreadyExists},
      {NNG_EEXIST, Errc::AlreadyExists},
      {NNG_ECONNREFUSED, Errc::PeerClosed},  // ipc: no socket file, too
      {NNG_ENOENT, Errc::PeerClosed},
      {NNG_ECONNRESET, Errc::PeerClosed},
      {NNG_ECONNSHUT, Errc::PeerClosed},
      {NNG_ECONNABORTED, Errc::PeerClosed},
      {NNG_EUNREACHABLE, Errc::PeerClosed},
      {NNG_ETIMEDOUT, Errc::Timeout},
      {NNG_EAGAIN, Errc::WouldBlock},
      {NNG_EMSGSIZE, Errc::MessageTooLarge},
      {NNG_EPERM, Errc::PermissionDenied},
      {NNG_EINVAL, Errc::InvalidArgument},
      {NNG_EADDRINVAL, Errc::InvalidArgument},
      {NNG_EPROTO, Errc::Corrupt},
  };
  for (const auto& [code, errc] : kNamed) {
    if (rv == code) return MakeError(errc, ctx);
  }
  // nng folds these errnos into codes of its own: give the errno back (ENOFILES is EMFILE or
  // ENFILE; nng does not say which).
  static constexpr std::pair<int, int> kErrnos[] = {
      {NNG_ENOMEM, ENOMEM}, {NNG_ENOFILES, EMFILE}, {NNG_ENOSPC, ENOSPC}, {NNG_EINTR, EINTR}};
  for (const auto& [code, err] : kErrnos) {
    if (rv == code) return ipch::ErrnoError(ctx, err);
  }
  return ipch::ErrnoError(ctx, EIO);
}

inline nng_duration MsUntil(const Deadline& d) {
  if (d.never()) return NNG_DURATION_INFINITE;
  return d.PollTimeoutMs();
}

// One end: a pair1 socket, its dialer or listener, and what its pipe notifications said. The
// notifications come on nng's threads with a pointer to this object, which outlives the socket.
class End {
 public:
  static Result<std::shared_ptr<End>> Open() {
    auto e = std::shared_ptr<End>(new End);
    if (int rv = nng_pair1_open(&e->sock_); rv != 0) return NngError(rv, "nng_pair1_open");
    e->open_ = true;
    int rv = nng_socket_set_size(e->sock_, NNG_OPT_RECVMAXSZ, kMaxMessage + kPair1Header);
    for (auto ev : {NNG_PIPE_EV_ADD_PRE, NNG_PIPE_EV_ADD_POST, NNG_PIPE_EV_REM_POST}) {
      if (rv == 0) rv = nng_pipe_notify(e->sock_, ev, &End::OnPipe, e.get());
    }
    if (rv == 0) rv = nng_aio_alloc(&e->send_aio_, nullptr, nullptr);
    if (rv == 0) rv = nng_aio_alloc(&e->recv_aio_, nullptr, nullptr);
    if (rv != 0) return NngError(rv, "nng socket setup");
    return e;
  }
  End(const End&) = delete;
  End& operator=(const End&) = delete;
  ~End() {
    Shut();
    if (send_aio_) nng_aio_free(send_aio_);
    if (recv_aio_) nng_aio_free(recv_aio_);
  }

  nng_socket sock() const { return sock_; }
  nng_listener* listener() { return &listener_; }
  bool paired() {
    std::lock_guard lock(mu_);
    return paired_;
  }
  // Waits until the peer's pipe is added, or gone, or `d` passes; true once paired.
  bool WaitPaired(const Deadline& d) {
    std::unique_lock lock(mu_);
    auto ready = [&] { return paired_ || gone_; };
    if (d.never()) {
      cv_.wait(lock, ready);
    } else {
      cv_.wait_until(lock, d.at(), ready);
    }
    return paired_ && !gone_;
  }
  bool gone() {
    std::lock_guard lock(mu_);
    return gone_;
  }
  bool closed() {
    std::lock_guard lock(mu_);
    return closed_;
  }

  Status Send(ByteView msg, const Deadline& d) {
    std::lock_guard one(send_mu_);  // one send at a time: the aio is this end's
    // An exclusive pair1 socket queues for a vanished peer as for a slow one: ask first.
    if (Status st = Usable("nng send", true); !st.ok()) return st;
    nng_msg* m = nullptr;
    if (int rv = nng_msg_alloc(&m, msg.size()); rv != 0) return NngError(rv, "nng_msg_alloc");
    if (!msg.empty()) std::memcpy(nng_msg_body(m), msg.data(), msg.size());
    if (d.expired()) {
      const int rv = nng_sendmsg(sock_, m, NNG_FLAG_NONBLOCK);
      if (rv == 0) return ipch::Ok();
      nng_msg_free(m);
      return Failed(rv, "nng send", true);
    }
    nng_aio_set_msg(send_aio_, m);
    nng_aio_set_timeout(send_aio_, MsUntil(d));
    nng_send_aio(sock_, send_aio_);
    if (gone()) nng_aio_cancel(send_aio_);  // gone before the aio started: OnPipe's cancel missed it
    nng_aio_wait(send_aio_);
    const int rv = nng_aio_result(send_aio_);
    if (rv == 0) return ipch::Ok();
    nng_msg_free(nng_aio_get_msg(send_aio_));  // a failed send leaves the message with us
    return Failed(rv, "nng send", false);
  }

  Status Receive(Bytes& out, const Deadline& d) {
    std::lock_guard one(recv_mu_);
    if (Status st = Usable("nng receive", false); !st.ok()) return st;
    for (bool first = true;; first = false) {
      nng_msg* m = nullptr;
      // What came before the peer went is delivered first; then PeerClosed.
      int rv = nng_recvmsg(sock_, &m, NNG_FLAG_NONBLOCK);
      if (rv == NNG_EAGAIN && gone()) return MakeError(Errc::PeerClosed, "nng receive: the peer is gone");
      if (rv == NNG_EAGAIN && !d.expired()) {
        nng_aio_set_timeout(recv_aio_, MsUntil(d));
        nng_recv_aio(sock_, recv_aio_);
        if (gone()) nng_aio_cancel(recv_aio_);
        nng_aio_wait(recv_aio_);
        rv = nng_aio_result(recv_aio_);
        if (rv == 0) m = nng_aio_get_msg(recv_aio_);
        if (rv == NNG_ECANCELED && !closed()) continue;  // the peer went: take what it left, then PeerClosed
      }
      if (rv != 0) return Failed(rv, "nng receive", first);
      const auto* p = static_cast<const std::byte*>(nng_msg_body(m));
      out.assign(p, p + nng_msg_len(m));
      nng_msg_free(m);
      return ipch::Ok();
    }
  }

  // Closes the socket. Unless the peer is gone, first waits up to `linger` for the last message
  // to be written: nng 1.5 has no linger, and drops what its pipe has not written at close
  // (findings item 9). With no send buffer, the socket is writable again once it has.
  void Close(std::chrono::milliseconds linger) {
    {
      std::lock_guard lock(mu_);
      if (closed_ || !open_) return;
      closed_ = true;
    }
    int fd = -1;
    if (linger.count() > 0 && paired() && nng_socket_get_int(sock_, NNG_OPT_SENDFD, &fd) == 0) {
      // In 5 ms slices: a pipe that is going stops being writable before its REM_POST comes.
      const auto until = Deadline::After(linger);
      pollfd p{fd, POLLIN, 0};
      while (!gone() && !until.expired() && ::poll(&p, 1, std::min(5, until.PollTimeoutMs())) == 0) {
      }
    }
    Shut();
  }

 private:
  End() = default;
  void Shut() {
    {
      std::lock_guard lock(mu_);
      closed_ = true;
      if (!open_) return;
      open_ = false;
    }
    nng_close(sock_);  // aborts calls in progress (NNG_ECLOSED); its pipes' callbacks have run
  }
  Status Usable(const char* what, bool gone_fails) {
    std::lock_guard lock(mu_);
    if (closed_) return MakeError(Errc::Closed, what);
    if (gone_fails && gone_) return MakeError(Errc::PeerClosed, std::string(what) + ": the peer is gone");
    return ipch::Ok();
  }
  Status Failed(int rv, const char* what, bool first) {
    if (rv == NNG_EAGAIN || rv == NNG_ETIMEDOUT) {
      if (gone()) return MakeError(Errc::PeerClosed, std::string(what) + ": the peer is gone");
      return MakeError(first && rv == NNG_EAGAIN ? Errc::WouldBlock : Errc::Timeout, what);
    }
    if (rv == NNG_ECLOSED || closed()) return MakeError(Errc::Closed, what);
    if (rv == NNG_ECANCELED) return MakeError(Errc::PeerClosed, std::string(what) + ": the peer is gone");
    return NngError(rv, what);
  }

  static void OnPipe(nng_pipe p, nng_pipe_ev ev, void* arg) {
    auto* e = static_cast<End*>(arg);
    bool cancel = false, refuse = false;
    {
      std::lock_guard lock(e->mu_);
      if (ev == NNG_PIPE_EV_ADD_PRE) {
        // One peer per connection: refuse any later pipe (a dialer's reconnection, a bound
        // socket's next connector). Closed here, the socket never sees it.
        refuse = e->claimed_;
        if (!refuse) e->peer_ = nng_pipe_id(p);
        e->claimed_ = true;
      } else if (nng_pipe_id(p) == e->peer_) {
        if (ev == NNG_PIPE_EV_ADD_POST) e->paired_ = true;
        if (ev == NNG_PIPE_EV_REM_POST) cancel = e->gone_ = true;
      }
    }
    if (refuse) {
      nng_pipe_close(p);
      return;
    }
    e->cv_.notify_all();
    // nng's dialer redials a lost peer whatever NNG_OPT_RECONNMINT says (its back-off is random
    // below it): a new listener at the address would take the dead connection's dialer as its peer.
    if (cancel && nng_dialer_id(nng_pipe_dialer(p)) > 0) nng_dialer_close(nng_pipe_dialer(p));
    if (cancel) {  // wakes a call blocked on the vanished peer
      nng_aio_cancel(e->send_aio_);
      nng_aio_cancel(e->recv_aio_);
    }
  }

  nng_socket sock_ = NNG_SOCKET_INITIALIZER;
  nng_listener listener_ = NNG_LISTENER_INITIALIZER;
  nng_aio* send_aio_ = nullptr;
  nng_aio* recv_aio_ = nullptr;
  std::mutex send_mu_, recv_mu_;
  std::mutex mu_;  // guards what follows
  std::condition_variable cv_;
  bool open_ = false, closed_ = false, claimed_ = false, paired_ = false, gone_ = false;
  int peer_ = -1;  // the pipe id of the peer
};

// A listener's state, shared with the connection it accepted: that connection's close frees the
// one peer's place, and the address is bound again at once for the next peer.
struct ListenerState {
  std::mutex mu;
  std::condition_variable freed;
  std::string url;  // tcp: with the port the first bind chose
  std::shared_ptr<End> bound;
  bool busy = false, closed = false;

  Status Rebind() {  // under mu
    auto e = End::Open();
    if (!e.ok()) return std::move(e).error();
    nng_listener* l = (*e)->listener();
    if (int rv = nng_listener_create(l, (*e)->sock(), url.c_str()); rv != 0) return NngError(rv, "nng listen " + url);
    // The ipc socket file is owner-only; nng's default is the umask's.
    if (url.rfind("ipc://", 0) == 0) {
      if (int rv = nng_listener_set_int(*l, NNG_OPT_IPC_PERMISSIONS, 0600); rv != 0) {
        return NngError(rv, "nng listen " + url + " (permissions)");
      }
    }
    if (int rv = nng_listener_start(*l, 0); rv != 0) return NngError(rv, "nng listen " + url);
    int port = 0;
    if (url.rfind("tcp://", 0) == 0 && url.ends_with(":0") &&
        nng_listener_get_int(*l, NNG_OPT_TCP_BOUND_PORT, &port) == 0) {
      url = url.substr(0, url.size() - 1) + std::to_string(port);
    }
    bound = std::move(*e);
    return ipch::Ok();
  }
  void Freed() {
    {
      std::lock_guard lock(mu);
      busy = false;
      if (!closed && !bound) (void)Rebind();  // failing, the next Accept tries again and reports it
    }
    freed.notify_all();
  }
};

inline std::chrono::milliseconds Linger() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(ipch::Scaled(std::chrono::seconds(2)));
}

class Connection {
 public:
  Connection() = default;
  explicit Connection(std::shared_ptr<End> end, std::shared_ptr<ListenerState> listener = nullptr)
      : end_(std::move(end)), listener_(std::move(listener)) {}
  Connection(Connection&&) noexcept = default;
  Connection& operator=(Connection&& o) noexcept {
    if (this != &o) {
      (void)Close();
      end_ = std::move(o.end_);
      listener_ = std::move(o.listener_);
    }
    return *this;
  }
  ~Connection() { (void)Close(); }

  Status Send(ByteView msg, Deadline d) {
    if (!end_) return MakeError(Errc::Closed, "nng send");
    if (msg.size() > kMaxMessage) return MakeError(Errc::MessageTooLarge, "nng send: above the message limit");
    return end_->Send(msg, d);
  }
  Status Receive(Bytes& out, Deadline d) {
    if (!end_) return MakeError(Errc::Closed, "nng receive");
    return end_->Receive(out, d);
  }
  Status Close() {
    if (!end_) return ipch::Ok();
    end_->Close(Linger());
    if (auto l = std::exchange(listener_, nullptr)) l->Freed();
    return ipch::Ok();
  }
  std::size_t max_message_size() const { return kMaxMessage; }

 private:
  std::shared_ptr<End> end_;  // kept after Close, so that later calls say Closed
  std::shared_ptr<ListenerState> listener_;
};

class Listener {
 public:
  Listener() = default;
  static Result<Listener> Bind(const std::string& url) {
    Listener l;
    l.s_ = std::make_shared<ListenerState>();
    l.s_->url = url;
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
    if (!s_) return MakeError(Errc::Closed, "nng accept");
    for (bool first = true;; first = false) {
      std::shared_ptr<End> waiting;
      {
        std::unique_lock lock(s_->mu);
        if (s_->closed) return MakeError(Errc::Closed, "nng accept");
        // A bound socket whose one pipe went before it was added can take no other: bind anew.
        if (s_->bound && s_->bound->gone() && !s_->bound->paired()) s_->bound.reset();
        if (!s_->bound && !s_->busy) IPCH_RETURN_IF_ERROR(s_->Rebind());
        if (s_->bound && s_->bound->paired()) {
          s_->busy = true;
          return Connection(std::move(s_->bound), s_);
        }
        if (d.expired()) return MakeError(first ? Errc::WouldBlock : Errc::Timeout, "nng accept: no peer");
        if (!s_->bound) {  // the one peer's connection is open: wait until it is closed
          if (d.never()) {
            s_->freed.wait(lock);
          } else {
            s_->freed.wait_until(lock, d.at());
          }
          continue;
        }
        waiting = s_->bound;
      }
      (void)waiting->WaitPaired(d);
    }
  }
  std::string address() const { return s_ ? s_->url : std::string(); }
  std::vector<std::filesystem::path> resource_paths() const {
    if (s_ && s_->url.rfind("ipc://", 0) == 0) return {s_->url.substr(6)};
    return {};
  }
  Status Close() {
    const auto s = std::exchange(s_, nullptr);
    if (!s) return ipch::Ok();
    std::shared_ptr<End> bound;
    {
      std::lock_guard lock(s->mu);
      s->closed = true;
      bound = std::move(s->bound);
    }
    s->freed.notify_all();
    if (bound) bound->Close(std::chrono::milliseconds(0));
    return ipch::Ok();
  }

 private:
  std::shared_ptr<ListenerState> s_;
};

inline Result<Connection> Connect(const std::string& url, Deadline d) {
  auto e = End::Open();
  if (!e.ok()) return std::move(e).error();
  nng_dialer dialer;
  if (int rv = nng_dialer_create(&dialer, (*e)->sock(), url.c_str()); rv != 0) return NngError(rv, "nng dial " + url);
  // Blocking: returns the first attempt's result (a refusal, ECONNREFUSED), with no retry.
  if (int rv = nng_dialer_start(dialer, 0); rv != 0) {
    // Our socket is open: a closed connection here is the listener's end closing it during the
    // handshake (a listener that died as we dialled), not our Close.
    if (rv == NNG_ECLOSED)
      return MakeError(Errc::PeerClosed, "nng dial " + url + ": the listener closed the connection");
    return NngError(rv, "nng dial " + url);
  }
  if ((*e)->WaitPaired(d)) return Connection(std::move(*e));
  if ((*e)->gone()) return MakeError(Errc::PeerClosed, "nng dial " + url + ": the peer dropped the connection");
  return MakeError(Errc::Timeout, "nng dial " + url);
}

// The two adapters: the same code over ipc:// (a socket file in the test's scratch directory)
// and over tcp:// on loopback (port 0: the listener's bind picks one, and address() names it).
struct IpcAdapter {
  static constexpr std::string_view kName = "nng_ipc";
  static constexpr ipch::Caps kCaps = ipch::Cap::CrossProcess | ipch::Cap::PeerDeathDetect | ipch::Cap::NamedResource |
                                      ipch::Cap::SyscallIo | ipch::Cap::AsyncIo;
  static constexpr std::size_t kMaxPeers = 1;
  static constexpr ipch::testing::PeerMode kPeerMode = ipch::testing::PeerMode::kExec;
  using Connection = nng_example::Connection;
  using Listener = nng_example::Listener;
  // nng's threads and descriptors, started by its first socket, stay for the process's lifetime.
  static void WarmUp() {
    static std::once_flag once;
    std::call_once(once, [] {
      nng_socket s;
      if (nng_pair1_open(&s) == 0) nng_close(s);
    });
  }
  static std::string Address(const ipch::EndpointSpec& s) {
    return "ipc://" + (s.scratch_dir / (s.token + ".nng")).string();
  }
  static Result<Listener> Listen(const std::string& a) { return Listener::Bind(a); }
  static Result<Connection> Connect(const std::string& a, Deadline d) { return nng_example::Connect(a, d); }
};

struct TcpAdapter : IpcAdapter {
  static constexpr std::string_view kName = "nng_tcp";
  static constexpr ipch::Caps kCaps =
      ipch::Cap::CrossProcess | ipch::Cap::PeerDeathDetect | ipch::Cap::SyscallIo | ipch::Cap::AsyncIo;
  static std::string Address(const ipch::EndpointSpec&) { return "tcp://127.0.0.1:0"; }
};

}  // namespace nng_example
