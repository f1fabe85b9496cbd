// An ipch adapter for Boost.Interprocess message_queue (header-only, Debian libboost-dev 1.74).
// Written as a careful Boost user would write one, honest about what the library can and cannot
// do; what the battery then finds is the library's (known.txt, ../findings/README.md).
//
// Objects (all POSIX shared-memory objects, /dev/shm/<name>, mode 0600):
// - a listener owns the rendezvous queue <name>; a connector announces a connection by sending
//   its base name "<name>.<pid>.<n>" there;
// - a connection is three queues: <base>.up (client to server), <base>.dn (server to client) and
//   <base>.fin, where each end leaves one message when it closes. Accept opens the three and
//   removes their names: from then on they live exactly as long as either end maps them.
//
// What the adapter does that the library does not (each a few commented lines below):
// - liveness of a listener: message_queue records no owner, so the listener holds an exclusive
//   flock(2) on its rendezvous object, which the kernel drops when the process dies;
// - a close marker: the .fin queue (a full data queue has no room for one), looked at between
//   waits of at most kSlice;
// - explicit permissions(0600) (the default is 0644 whatever the umask: findings item 10);
// - removing the half-made object a failed create_only leaves (findings item 11).
//
// No PeerDeathDetect: a killed peer leaves no trace in a queue (and, killed inside a queue call,
// leaves its mutex locked: README.md). No SyscallIo: messages are memcpy'd into shared memory.
#pragma once

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <boost/date_time/posix_time/posix_time_types.hpp>
#include <boost/interprocess/ipc/message_queue.hpp>
#include <boost/interprocess/permissions.hpp>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <fstream>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "ipch/transport.h"

namespace boost_mq_example {

namespace bip = boost::interprocess;
using ipch::Bytes;
using ipch::ByteView;
using ipch::Deadline;
using ipch::Errc;
using ipch::Error;
using ipch::MakeError;
using ipch::Result;
using ipch::Status;

inline constexpr std::size_t kMaxMessage = 64 * 1024;  // each queue slot holds one message of this size
inline constexpr std::size_t kSlots = 16;              // messages one direction holds unread
inline constexpr std::size_t kBacklog = 32;            // connection requests waiting for Accept
inline constexpr std::size_t kRequestSize = NAME_MAX;  // a request is a base name
inline constexpr auto kSlice = std::chrono::milliseconds(50);

// Converts the library's exception: its errno where it has one, else its error_code.
inline Error BoostError(const std::string& what, const bip::interprocess_exception& e) {
  const int native = e.get_native_error();
  const std::string ctx = what + ": " + e.what();
  if (e.get_error_code() == bip::already_exists_error || native == EEXIST) return MakeError(Errc::AlreadyExists, ctx);
  if (native != 0) return ipch::ErrnoError(ctx, native);
  switch (e.get_error_code()) {
    case bip::not_found_error:
      return ipch::ErrnoError(ctx, ENOENT);
    case bip::security_error:
      return MakeError(Errc::PermissionDenied, ctx);
    case bip::corrupted_error:
    case bip::size_error:  // a queue header announcing other sizes than the queue was made with
    case bip::lock_error:  // its process-shared mutex cannot be locked: the segment is not a queue's
      return MakeError(Errc::Corrupt, ctx);
    default:
      return ipch::ErrnoError(ctx, EIO);
  }
}

// The end of the next wait, in the library's clock (UTC): the deadline or a slice, whichever
// comes first; "now" for an expired deadline (the library then tries once without waiting).
inline boost::posix_time::ptime WaitEnd(const Deadline& d) {
  const auto now = boost::posix_time::microsec_clock::universal_time();
  if (d.expired()) return now;
  const auto r = std::min<ipch::Clock::duration>(d.remaining(), kSlice);
  return now + boost::posix_time::microseconds(std::chrono::duration_cast<std::chrono::microseconds>(r).count());
}

inline bip::permissions OwnerOnly() { return bip::permissions(0600); }

enum class Owner { kNone, kLive, kDead };
// Whether a live listener holds `name`: the listener keeps an exclusive flock(2) on its object
// (the kernel drops it with the process); a shared try-lock tells without disturbing others.
inline Result<Owner> OwnerOf(const std::string& name) {
  const int fd = ::shm_open(("/" + name).c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW, 0);
  if (fd < 0) return errno == ENOENT ? Result<Owner>(Owner::kNone) : ipch::ErrnoError("shm_open /" + name);
  int rc;
  while ((rc = ::flock(fd, LOCK_SH | LOCK_NB)) != 0 && errno == EINTR) {
  }
  const int err = errno;
  ::close(fd);
  if (rc == 0) return Owner::kDead;
  if (err == EWOULDBLOCK) return Owner::kLive;
  return ipch::ErrnoError("flock /dev/shm/" + name, err);
}

// Creates a queue, owner-only. A failed create_only leaves a half-made object behind (findings
// item 11): ours to remove, unless the name was taken or a live listener holds it.
inline Result<std::unique_ptr<bip::message_queue>> Create(const std::string& name, std::size_t slots,
                                                          std::size_t size) {
  try {
    return std::make_unique<bip::message_queue>(bip::create_only, name.c_str(), slots, size, OwnerOnly());
  } catch (const bip::interprocess_exception& e) {
    Error err = BoostError("message_queue create " + name, e);
    if (!err.Is(Errc::AlreadyExists)) {
      auto o = OwnerOf(name);
      if (o.ok() && *o == Owner::kDead) bip::message_queue::remove(name.c_str());
    }
    return err;
  }
}

inline Result<std::unique_ptr<bip::message_queue>> Open(const std::string& name) {
  try {
    return std::make_unique<bip::message_queue>(bip::open_only, name.c_str());
  } catch (const bip::interprocess_exception& e) {
    return BoostError("message_queue open " + name, e);
  }
}

inline void RemoveConnectionNames(const std::string& base) {
  for (const char* s : {".up", ".dn", ".fin"}) bip::message_queue::remove((base + s).c_str());
}

// Removes the connection queues left under a dead listener's name: connectors it never
// accepted (dead ones, and live ones no listener will ever serve now).
inline void SweepConnections(const std::string& name) {
  DIR* d = ::opendir("/dev/shm");
  if (!d) return;
  const std::string prefix = name + ".";
  while (dirent* e = ::readdir(d)) {
    if (std::string_view(e->d_name).substr(0, prefix.size()) == prefix) bip::message_queue::remove(e->d_name);
  }
  ::closedir(d);
}

// Removes the connection queues under a listener's name whose connector is dead (the pid is
// the name's second part): a connector killed before its request was taken leaves them, and
// once the listener closes nobody else would.
inline void SweepDeadConnectors(const std::string& name) {
  DIR* d = ::opendir("/dev/shm");
  if (!d) return;
  const std::string prefix = name + ".";
  std::vector<std::string> dead;
  while (dirent* e = ::readdir(d)) {
    const std::string n = e->d_name;
    if (n.compare(0, prefix.size(), prefix) != 0) continue;
    const long pid = std::strtol(n.c_str() + prefix.size(), nullptr, 10);
    if (pid > 0 && ::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) dead.push_back(n);
  }
  ::closedir(d);
  for (const auto& n : dead) bip::message_queue::remove(n.c_str());
}

inline bool ValidName(const std::string& n) {
  return !n.empty() && n.size() + 40 < NAME_MAX && n.find('/') == std::string::npos;
}

class Connection {
 public:
  Connection() = default;
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
    if (!s_ || s_->closed) return MakeError(Errc::Closed, "boost_mq send");
    if (msg.size() > kMaxMessage) return MakeError(Errc::MessageTooLarge, "boost_mq send: above the message limit");
    if (s_->corrupt) return MakeError(Errc::Corrupt, "boost_mq send: a queue of this connection is broken");
    static const char kEmpty = 0;
    const void* data = msg.empty() ? &kEmpty : static_cast<const void*>(msg.data());
    const bool probe = d.expired();
    try {
      for (;;) {
        if (PeerGone()) return MakeError(Errc::PeerClosed, "boost_mq send: the peer closed");
        if (s_->send->timed_send(data, msg.size(), 0, WaitEnd(d))) return ipch::Ok();
        if (s_->closed) return MakeError(Errc::Closed, "boost_mq send");
        if (d.expired()) return MakeError(probe ? Errc::WouldBlock : Errc::Timeout, "boost_mq send: queue full");
      }
    } catch (const bip::interprocess_exception& e) {
      return Failed(BoostError("boost_mq send", e));
    }
  }

  Status Receive(Bytes& out, Deadline d) {
    if (!s_ || s_->closed) return MakeError(Errc::Closed, "boost_mq receive");
    if (s_->corrupt) return MakeError(Errc::Corrupt, "boost_mq receive: a queue of this connection is broken");
    const bool probe = d.expired();
    out.resize(kMaxMessage);  // the library refuses a buffer smaller than the queue's slots
    try {
      for (;;) {
        if (s_->peer_closed) break;
        // The peer's close marker is looked at before the queue: what it sent before closing
        // is in the queue by then, and is delivered first.
        const bool fin = PeerGone();
        bip::message_queue::size_type n = 0;
        unsigned prio = 0;
        if (s_->recv->timed_receive(out.data(), out.size(), n, prio, fin ? WaitEnd(Deadline::Expired()) : WaitEnd(d))) {
          out.resize(n);
          return ipch::Ok();
        }
        if (fin) break;
        if (s_->closed || d.expired()) {
          out.clear();
          if (s_->closed) return MakeError(Errc::Closed, "boost_mq receive");
          return MakeError(probe ? Errc::WouldBlock : Errc::Timeout, "boost_mq receive: nothing came");
        }
      }
    } catch (const bip::interprocess_exception& e) {
      out.clear();
      return Failed(BoostError("boost_mq receive", e));
    }
    out.clear();
    s_->peer_closed = true;
    return MakeError(Errc::PeerClosed, "boost_mq receive: the peer closed");
  }

  Status Close() {
    if (!s_ || s_->closed.exchange(true)) return ipch::Ok();
    try {
      (void)s_->fin->try_send("x", 1, 0);  // two slots: one for each end's marker
    } catch (const bip::interprocess_exception&) {
    }
    // A connector never accepted whose listener is gone: nobody else will remove its names.
    if (s_->connector) {
      auto o = OwnerOf(s_->listen_name);
      if (!o.ok() || *o != Owner::kLive) RemoveConnectionNames(s_->base);
    }
    return ipch::Ok();
  }
  std::size_t max_message_size() const { return kMaxMessage; }

  // For the SharedBytes hook: what a peer can write, both data queues' segments (found through
  // the library's own mappings, since their names are gone), mapped again side by side.
  std::span<std::byte> shared_bytes() const {
    if (!s_ || s_->base.empty()) return {};
    if (!s_->shared) MapShared();
    return {static_cast<std::byte*>(s_->shared), s_->shared_len};
  }

 private:
  friend class Listener;
  void MapShared() const {
    const long page = ::sysconf(_SC_PAGESIZE);
    int fds[2] = {-1, -1};
    off_t sizes[2] = {0, 0};
    std::ifstream maps("/proc/self/maps");
    for (std::string line; std::getline(maps, line);) {
      for (int i = 0; i < 2; ++i) {
        const std::string path = "/dev/shm/" + s_->base + (i == 0 ? ".up" : ".dn") + " (deleted)";
        if (fds[i] >= 0 || line.size() < path.size() || line.compare(line.size() - path.size(), path.size(), path) != 0)
          continue;
        fds[i] = ::open(("/proc/self/map_files/" + line.substr(0, line.find(' '))).c_str(), O_RDWR | O_CLOEXEC);
        struct stat st {};
        if (fds[i] >= 0 && ::fstat(fds[i], &st) == 0) sizes[i] = st.st_size;
      }
    }
    const std::size_t first = (sizes[0] + page - 1) / page * page;
    void* at = fds[0] >= 0 && fds[1] >= 0
                   ? ::mmap(nullptr, first + sizes[1], PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
                   : MAP_FAILED;
    if (at != MAP_FAILED) {
      char* base = static_cast<char*>(at);
      const bool mapped =
          ::mmap(base, sizes[0], PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fds[0], 0) != MAP_FAILED &&
          ::mmap(base + first, sizes[1], PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fds[1], 0) != MAP_FAILED;
      s_->shared = at;
      s_->shared_len = first + sizes[1];
      if (!mapped) ::munmap(std::exchange(s_->shared, nullptr), std::exchange(s_->shared_len, 0));
    }
    for (int fd : fds) {
      if (fd >= 0) ::close(fd);
    }
  }
  friend Result<Connection> Connect(const std::string&, Deadline);
  struct State {
    std::unique_ptr<bip::message_queue> send, recv, fin;
    std::string listen_name, base;
    bool connector = false;
    std::atomic<bool> closed{false};
    std::atomic<bool> fin_seen{false};     // the peer's marker is there (what it sent may still wait)
    std::atomic<bool> peer_closed{false};  // a receive found the queue drained behind the marker
    std::atomic<bool> corrupt{false};      // a queue's shared state was found broken: stays failed
    // SharedBytes: both data queues' segments mapped again, side by side.
    void* shared = nullptr;
    std::size_t shared_len = 0;
    ~State() {
      if (shared) ::munmap(shared, shared_len);
    }
  };
  explicit Connection(std::unique_ptr<State> s) : s_(std::move(s)) {}
  Error Failed(Error e) {
    if (e.Is(Errc::Corrupt)) s_->corrupt = true;
    return e;
  }
  // The fin queue holds a marker of each end that closed; we have not (else we would not ask).
  bool PeerGone() {
    if (s_->fin_seen) return true;
    if (s_->fin->get_num_msg() == 0) return false;
    s_->fin_seen = true;
    return true;
  }
  std::unique_ptr<State> s_;
};

class Listener {
 public:
  Listener() = default;
  Listener(Listener&&) noexcept = default;
  Listener& operator=(Listener&& o) noexcept {
    if (this != &o) {
      (void)Close();
      s_ = std::move(o.s_);
    }
    return *this;
  }
  ~Listener() { (void)Close(); }

  static Result<Listener> Listen(const std::string& name) {
    if (!ValidName(name)) return MakeError(Errc::InvalidArgument, "boost_mq listen: bad name " + name);
    auto s = std::make_unique<State>();
    s->name = name;
    for (int attempt = 0;; ++attempt) {
      auto q = Create(name, kBacklog, kRequestSize);
      if (q.ok()) {
        s->q = std::move(*q);
        break;
      }
      if (!q.Is(Errc::AlreadyExists) || attempt >= 2) return std::move(q).error();
      // Taken: by a live listener, or left by a dead one (reclaimed, with its connections).
      auto o = OwnerOf(name);
      if (!o.ok()) return std::move(o).error();
      if (*o == Owner::kLive) return MakeError(Errc::AlreadyExists, "boost_mq listen " + name + ": a live listener");
      if (*o == Owner::kDead) {
        bip::message_queue::remove(name.c_str());
        SweepConnections(name);
      }
    }
    // The liveness lock (a concurrent Listen between create and lock could reclaim the name).
    s->lock_fd = ::shm_open(("/" + name).c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW, 0);
    int rc = -1;
    if (s->lock_fd >= 0) {
      while ((rc = ::flock(s->lock_fd, LOCK_EX)) != 0 && errno == EINTR) {
      }
    }
    if (rc != 0) {
      Error e = ipch::ErrnoError("boost_mq listen " + name + ": lock");
      s->q.reset();
      bip::message_queue::remove(name.c_str());
      if (s->lock_fd >= 0) ::close(std::exchange(s->lock_fd, -1));
      return e;
    }
    Listener l;
    l.s_ = std::move(s);
    return l;
  }

  Result<Connection> Accept(Deadline d) {
    if (!s_ || s_->closed) return MakeError(Errc::Closed, "boost_mq accept: listener closed");
    const bool probe = d.expired();
    char buf[kRequestSize];
    // A request this process was too short of memory or descriptors to take up before: first.
    while (!s_->pending.empty()) {
      auto c = Take(s_->pending.front());
      if (!c.ok() && !c.Is(Errc::PeerClosed)) return c;  // still short: it waits on
      s_->pending.pop_front();
      if (c.ok()) return c;
    }
    try {
      for (;;) {
        bip::message_queue::size_type n = 0;
        unsigned prio = 0;
        if (s_->q->timed_receive(buf, sizeof buf, n, prio, WaitEnd(d))) {
          auto c = Take(std::string(buf, n));
          if (c.ok()) return c;
          if (c.Is(Errc::PeerClosed)) continue;  // that connector is gone, or the request was not one of ours
          // Out of memory or descriptors here: say so, and keep the request for the next Accept
          // (its connector waits on).
          s_->pending.emplace_back(buf, n);
          return c;
        }
        if (d.expired()) return MakeError(probe ? Errc::WouldBlock : Errc::Timeout, "boost_mq accept: no connector");
      }
    } catch (const bip::interprocess_exception& e) {
      return BoostError("boost_mq accept", e);
    }
  }

  std::string address() const { return s_ ? s_->name : std::string(); }
  std::vector<std::filesystem::path> resource_paths() const {
    if (!s_) return {};
    return {"/dev/shm/" + s_->name};
  }

  Status Close() {
    const auto s = std::move(s_);
    if (!s || s->closed) return ipch::Ok();
    s->closed = true;
    // Connectors never accepted are refused: their server end closes at once (PeerClosed).
    char buf[kRequestSize];
    bip::message_queue::size_type n = 0;
    unsigned prio = 0;
    for (const auto& base : s->pending) {
      if (auto c = Take(base, s->name); c.ok()) (void)c->Close();
      RemoveConnectionNames(base);  // taken up or not
    }
    try {
      while (s->q->try_receive(buf, sizeof buf, n, prio)) {
        if (auto c = Take(std::string(buf, n), s->name); c.ok()) (void)c->Close();
      }
    } catch (const bip::interprocess_exception&) {
    }
    s->q.reset();
    bip::message_queue::remove(s->name.c_str());
    SweepDeadConnectors(s->name);
    ::close(s->lock_fd);
    return ipch::Ok();
  }

 private:
  struct State {
    std::string name;
    std::unique_ptr<bip::message_queue> q;
    int lock_fd = -1;
    bool closed = false;
    std::deque<std::string> pending;  // requests taken off the queue, not yet taken up (Accept)
  };
  Result<Connection> Take(const std::string& base) { return Take(base, s_->name); }
  // Opens the queues a request names and removes their names (both ends have them now).
  static Result<Connection> Take(const std::string& base, const std::string& name) {
    const std::string prefix = name + ".";
    if (base.size() <= prefix.size() || base.size() + 5 > NAME_MAX || base.compare(0, prefix.size(), prefix) != 0 ||
        base.find_first_not_of("0123456789.", prefix.size()) != std::string::npos) {
      return MakeError(Errc::PeerClosed, "boost_mq accept: not a request of ours");
    }
    auto st = std::make_unique<Connection::State>();
    auto up = Open(base + ".up");
    auto dn = up.ok() ? Open(base + ".dn") : std::move(up).error();
    auto fin = dn.ok() ? Open(base + ".fin") : std::move(dn).error();
    const bool gone = !fin.ok() && fin.error().code == std::error_code(ENOENT, std::system_category());
    // Both ends have them now, or the connector is gone; a request we were too short of memory
    // or descriptors to take up keeps its names for the next try.
    if (fin.ok() || gone) RemoveConnectionNames(base);
    if (gone) return MakeError(Errc::PeerClosed, "boost_mq accept: the connector is gone");
    if (!fin.ok()) return std::move(fin).error();
    st->base = base;
    st->recv = std::move(*up);
    st->send = std::move(*dn);
    st->fin = std::move(*fin);
    return Connection(std::move(st));
  }
  std::unique_ptr<State> s_;
};

inline Result<Connection> Connect(const std::string& name, Deadline d) {
  if (!ValidName(name)) return MakeError(Errc::InvalidArgument, "boost_mq connect: bad name " + name);
  auto o = OwnerOf(name);
  if (!o.ok()) return std::move(o).error();
  if (*o != Owner::kLive) return MakeError(Errc::PeerClosed, "boost_mq connect " + name + ": no listener");
  auto lq = Open(name);
  if (!lq.ok()) {
    if (lq.error().code == std::error_code(ENOENT, std::system_category())) {
      return MakeError(Errc::PeerClosed, "boost_mq connect " + name + ": no listener");
    }
    return std::move(lq).error();
  }
  static std::atomic<unsigned> counter{0};
  auto st = std::make_unique<Connection::State>();
  st->listen_name = name;
  st->base = name + "." + std::to_string(::getpid()) + "." + std::to_string(counter++);
  st->connector = true;
  auto fail = [&](Error e) -> Result<Connection> {
    st->send.reset();
    st->recv.reset();
    st->fin.reset();
    RemoveConnectionNames(st->base);
    return e;
  };
  auto up = Create(st->base + ".up", kSlots, kMaxMessage);
  if (!up.ok()) return fail(std::move(up).error());
  st->send = std::move(*up);
  auto dn = Create(st->base + ".dn", kSlots, kMaxMessage);
  if (!dn.ok()) return fail(std::move(dn).error());
  st->recv = std::move(*dn);
  auto fin = Create(st->base + ".fin", 2, 1);
  if (!fin.ok()) return fail(std::move(fin).error());
  st->fin = std::move(*fin);
  const bool probe = d.expired();
  try {
    while (!(*lq)->timed_send(st->base.data(), st->base.size(), 0, WaitEnd(d))) {
      auto alive = OwnerOf(name);
      if (!alive.ok()) return fail(std::move(alive).error());
      if (*alive != Owner::kLive)
        return fail(MakeError(Errc::PeerClosed, "boost_mq connect " + name + ": listener gone"));
      if (d.expired()) {
        return fail(MakeError(probe ? Errc::WouldBlock : Errc::Timeout, "boost_mq connect " + name + ": backlog full"));
      }
    }
  } catch (const bip::interprocess_exception& e) {
    return fail(BoostError("boost_mq connect " + name, e));
  }
  return Connection(std::move(st));
}

struct Adapter {
  static constexpr std::string_view kName = "boost_mq";
  static constexpr ipch::Caps kCaps = ipch::Cap::CrossProcess | ipch::Cap::NamedResource | ipch::Cap::SharedMemory;
  using Connection = boost_mq_example::Connection;
  using Listener = boost_mq_example::Listener;
  // The token ("ipch-<pid>-<n>") is the name: the audit looks for /dev/shm/ipch-<pid>-*.
  static std::string Address(const ipch::EndpointSpec& s) { return s.token; }
  static Result<Listener> Listen(const std::string& a) { return Listener::Listen(a); }
  static Result<Connection> Connect(const std::string& a, Deadline d) { return boost_mq_example::Connect(a, d); }
  // A queue holds kSlots messages whatever their size.
  static std::size_t UnreadMessages() { return kSlots; }
  // The bytes a hostile peer can write: the connection's two data queues (shared memory).
  static std::span<std::byte> SharedBytes(const Connection& c) { return c.shared_bytes(); }
};

}  // namespace boost_mq_example
