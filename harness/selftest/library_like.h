// Transports that behave like real IPC libraries in the ways the battery must be fair to: one
// that cannot tell a dead peer from a silent one, one that closes in a background thread, one
// that keeps a process-wide descriptor from its first use, one that writes on an I/O thread of
// its own, one whose listener takes a single peer, one that cannot go on in a forked child. Each comes as a correct
// variant, which must pass the cases that concern it, and a variant with the bug a library of that kind really has,
// which those cases must fail. All are the unix transport underneath, changed only where their kind differs. Driven by
// selftest_libraries_test.cc; not run directly by ctest.
#pragma once

#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "ipch/peer.h"
#include "ipch/transport.h"
#include "transports/stream/socket_util.h"
#include "transports/unix/unix.h"

namespace ipch::selftest {

// What waiting for something that never comes looks like: WouldBlock for an expired deadline,
// forever for Never, otherwise Timeout once the deadline has passed and `late` more.
inline Status NothingBefore(Deadline d, const char* what, Clock::duration late = {}) {
  if (d.expired()) return MakeError(Errc::WouldBlock, what);
  if (d.never()) {
    for (;;) std::this_thread::sleep_for(std::chrono::hours(1));
  }
  std::this_thread::sleep_until(d.at() + late);
  return MakeError(Errc::Timeout, what);
}

// ---- no PeerDeathDetect: a clean close says goodbye, a death says nothing --------------------
// Every message carries a leading byte: 1 for data, 0 for the goodbye Close sends. The end of
// the stream without a goodbye (the peer was killed) is, to this transport, silence: receives
// time out at their deadline, as a library over a connectionless medium would.
enum class Silence { kByDeadline, kOvershoots };

template <Silence S>
class QuietConnection {
 public:
  QuietConnection() = default;
  explicit QuietConnection(StreamConnection c) : inner_(std::move(c)) {}
  QuietConnection(QuietConnection&&) noexcept = default;
  QuietConnection& operator=(QuietConnection&& o) noexcept {
    if (this != &o) {
      (void)Close();
      inner_ = std::move(o.inner_);
      dead_ = o.dead_;
      bye_ = o.bye_;
    }
    return *this;
  }
  ~QuietConnection() { (void)Close(); }

  Status Send(ByteView msg, Deadline d) {
    if (msg.size() > max_message_size()) return MakeError(Errc::MessageTooLarge, "quiet: too large");
    Bytes framed(1, std::byte{1});
    framed.insert(framed.end(), msg.begin(), msg.end());
    Status st = inner_.Send(framed, d);
    if (!st.Is(Errc::PeerClosed)) return st;
    // Gone: after a goodbye that waits unread, the peer closed; otherwise it is silence.
    Bytes waiting;
    while (!bye_ && inner_.Receive(waiting, Deadline::Expired()).ok())
      bye_ = waiting.empty() || waiting[0] == std::byte{0};
    return bye_ ? MakeError(Errc::PeerClosed, "quiet: the peer said goodbye") : Silent(d);
  }
  Status Receive(Bytes& out, Deadline d) {
    if (bye_) return MakeError(Errc::PeerClosed, "quiet: the peer said goodbye");
    if (dead_) return Silent(d);
    Bytes got;
    Status st = inner_.Receive(got, d);
    if (st.Is(Errc::PeerClosed)) {
      dead_ = true;  // the stream ended without a goodbye: a death, which this kind cannot see
      return Silent(d);
    }
    if (!st.ok()) return st;
    if (got.empty() || got[0] == std::byte{0}) {
      bye_ = true;
      return MakeError(Errc::PeerClosed, "quiet: the peer said goodbye");
    }
    out.assign(got.begin() + 1, got.end());
    return Ok();
  }
  Status Close() {
    if (inner_.read_fd() >= 0 && !dead_ && !bye_) (void)inner_.Send(Bytes(1, std::byte{0}), Deadline::Expired());
    return inner_.Close();
  }
  std::size_t max_message_size() const { return inner_.max_message_size() - 1; }

 private:
  // What a silent peer looks like: nothing until the deadline. The planted bug gives up only
  // 3 s (scaled) after it, as a library that waits out a keepalive interval of its own would.
  static Status Silent(Deadline d) {
    const Clock::duration late = S == Silence::kOvershoots ? Scaled(std::chrono::seconds(3)) : Clock::duration{};
    return NothingBefore(d, "quiet: nothing from the peer", late);
  }

  StreamConnection inner_;
  bool dead_ = false;
  bool bye_ = false;
};

template <class C>
class ListenerOf {
 public:
  explicit ListenerOf(unix_sock::Listener l = {}) : inner_(std::move(l)) {}
  Result<C> Accept(Deadline d) {
    auto s = inner_.Accept(d);
    if (!s.ok()) return std::move(s).error();
    return C(std::move(*s));
  }
  std::string address() const { return inner_.address(); }
  std::vector<std::filesystem::path> resource_paths() const { return inner_.resource_paths(); }
  Status Close() { return inner_.Close(); }

 private:
  unix_sock::Listener inner_;
};

inline constexpr Caps kUnixCaps = unix_sock::Adapter::kCaps;
inline constexpr Caps kQuietCaps = Cap::Stream | Cap::CrossProcess | Cap::NamedResource | Cap::SyscallIo;

// The unix adapter's addressing around connection type C (with C(StreamConnection)) and
// listener type L (with L(unix_sock::Listener)); kQuiet leaves PeerDeathDetect (and RawPeer: the
// framing differs) out of the capabilities.
template <class C, const char* kLabel, bool kQuiet = false, class L = ListenerOf<C>>
struct UnixBased {
  static constexpr std::string_view kName = kLabel;
  static constexpr Caps kCaps = kQuiet ? kQuietCaps : kUnixCaps;
  using Connection = C;
  using Listener = L;
  static std::string Address(const EndpointSpec& s) { return unix_sock::Adapter::Address(s); }
  static Result<Listener> Listen(const std::string& a) {
    auto l = unix_sock::Listen(a);
    if (!l.ok()) return std::move(l).error();
    return Listener(std::move(*l));
  }
  static Result<Connection> Connect(const std::string& a, Deadline d) {
    auto c = unix_sock::Connect(a, d);
    if (!c.ok()) return std::move(c).error();
    return C(std::move(*c));
  }
};

inline constexpr char kQuiet[] = "quiet_death";
inline constexpr char kQuietOvershoots[] = "quiet_death_overshoots";
using QuietAdapter = UnixBased<QuietConnection<Silence::kByDeadline>, kQuiet, true>;
using QuietOvershootsAdapter = UnixBased<QuietConnection<Silence::kOvershoots>, kQuietOvershoots, true>;

// ---- closes in a background thread ------------------------------------------------------------
// Close returns at once; a reaper thread releases the descriptor `Delay` ms later, as nng's does.
template <int kDelayMs>
class ReapedConnection {
 public:
  ReapedConnection() = default;
  explicit ReapedConnection(StreamConnection c) : inner_(std::move(c)) {}
  ReapedConnection(ReapedConnection&&) noexcept = default;
  ReapedConnection& operator=(ReapedConnection&& o) noexcept {
    if (this != &o) {
      (void)Close();
      inner_ = std::move(o.inner_);
    }
    return *this;
  }
  ~ReapedConnection() { (void)Close(); }
  Status Send(ByteView m, Deadline d) { return inner_.Send(m, d); }
  Status Receive(Bytes& out, Deadline d) { return inner_.Receive(out, d); }
  Status Close() {
    if (inner_.read_fd() < 0) return inner_.Close();
    const int held = ::dup(inner_.read_fd());  // the reaper's reference: the socket stays open until it runs
    Status st = inner_.Close();
    if (held >= 0) {
      std::thread([held] {
        std::this_thread::sleep_for(Scaled(std::chrono::milliseconds(kDelayMs)));
        ::close(held);
      }).detach();
    }
    return st;
  }
  std::size_t max_message_size() const { return inner_.max_message_size(); }

 private:
  StreamConnection inner_;
};

inline constexpr char kReaper[] = "reaper";
inline constexpr char kSlowReaper[] = "slow_reaper";
using ReaperAdapter = UnixBased<ReapedConnection<20>, kReaper>;
// The bug: the reaper holds the descriptor for 2 s, far past any settling (a leak while it runs).
using SlowReaperAdapter = UnixBased<ReapedConnection<2000>, kSlowReaper>;

// ---- a process-wide descriptor from the first use ---------------------------------------------
// A library context (here an eventfd) created on first use and kept for the process's lifetime.
template <bool kWarmsUp>
struct GlobalContext {
  static void Touch() {
    static const int context = ::eventfd(0, EFD_CLOEXEC);
    (void)context;
  }
};

template <bool kWarmsUp>
class ContextConnection {
 public:
  ContextConnection() = default;
  explicit ContextConnection(StreamConnection c) : inner_(std::move(c)) {}
  Status Send(ByteView m, Deadline d) { return inner_.Send(m, d); }
  Status Receive(Bytes& out, Deadline d) { return inner_.Receive(out, d); }
  Status Close() { return inner_.Close(); }
  std::size_t max_message_size() const { return inner_.max_message_size(); }

 private:
  StreamConnection inner_;
};

template <bool kWarmsUp, const char* kLabel>
struct ContextAdapter : UnixBased<ContextConnection<kWarmsUp>, kLabel> {
  using Base = UnixBased<ContextConnection<kWarmsUp>, kLabel>;
  static auto Listen(const std::string& a) {
    GlobalContext<kWarmsUp>::Touch();
    return Base::Listen(a);
  }
  static auto Connect(const std::string& a, Deadline d) {
    GlobalContext<kWarmsUp>::Touch();
    return Base::Connect(a, d);
  }
};
inline constexpr char kWarm[] = "context_warmed_up";
inline constexpr char kCold[] = "context_on_first_use";
struct WarmContextAdapter : ContextAdapter<true, kWarm> {
  static void WarmUp() { GlobalContext<true>::Touch(); }
};
using ColdContextAdapter = ContextAdapter<false, kCold>;

// ---- sends on an I/O thread of its own ---------------------------------------------------------
// Send queues the message and returns; a writer thread writes it. A write's error is kept and
// reported by the next call, as a library with I/O threads does; the planted bug forgets it (every
// later send "succeeds", and its message goes nowhere).
enum class WriteError { kReported, kForgotten };

template <WriteError W>
class AsyncConnection {
 public:
  AsyncConnection() = default;
  explicit AsyncConnection(StreamConnection c) : s_(std::make_unique<State>()) {
    s_->inner = std::move(c);
    s_->writer = std::thread([s = s_.get()] { s->Write(); });
  }
  AsyncConnection(AsyncConnection&&) noexcept = default;
  AsyncConnection& operator=(AsyncConnection&& o) noexcept {
    if (this != &o) {
      (void)Close();
      s_ = std::move(o.s_);
    }
    return *this;
  }
  ~AsyncConnection() { (void)Close(); }

  Status Send(ByteView m, Deadline) {
    if (!s_) return MakeError(Errc::Closed, "async: closed");
    if (m.size() > s_->inner.max_message_size()) return MakeError(Errc::MessageTooLarge, "async: too large");
    std::lock_guard lock(s_->mu);
    if (s_->error) return *s_->error;
    s_->queue.emplace_back(m.begin(), m.end());
    s_->more.notify_all();
    return Ok();
  }
  Status Receive(Bytes& out, Deadline d) {
    if (!s_) return MakeError(Errc::Closed, "async: closed");
    {
      std::lock_guard lock(s_->mu);
      if (s_->error) return *s_->error;
    }
    return s_->inner.Receive(out, d);
  }
  // Lingers: what was queued is written first, as a library's close does.
  Status Close() {
    if (!s_) return Ok();
    {
      std::lock_guard lock(s_->mu);
      s_->closing = true;
      s_->more.notify_all();
    }
    s_->writer.join();
    Status st = s_->inner.Close();
    s_.reset();
    return st;
  }
  std::size_t max_message_size() const { return s_ ? s_->inner.max_message_size() : 0; }

 private:
  struct State {
    StreamConnection inner;
    std::thread writer;
    std::mutex mu;
    std::condition_variable more;
    std::deque<Bytes> queue;
    std::optional<Status> error;
    bool closing = false;

    void Write() {
      std::unique_lock lock(mu);
      for (;;) {
        more.wait(lock, [&] { return closing || !queue.empty(); });
        if (queue.empty()) return;
        Bytes m = std::move(queue.front());
        queue.pop_front();
        lock.unlock();
        Status st = inner.Send(m, Deadline::After(Scaled(std::chrono::seconds(10))));
        lock.lock();
        if (!st.ok() && W == WriteError::kReported && !error) error = st;
      }
    }
  };
  std::unique_ptr<State> s_;
};

inline constexpr char kAsync[] = "async_io";
inline constexpr char kAsyncForgets[] = "async_io_forgets_errors";
template <WriteError W, const char* kLabel>
struct AsyncAdapter : UnixBased<AsyncConnection<W>, kLabel> {
  static constexpr Caps kCaps = kUnixCaps | Cap::AsyncIo;
};
using AsyncReportsAdapter = AsyncAdapter<WriteError::kReported, kAsync>;
using AsyncForgetsAdapter = AsyncAdapter<WriteError::kForgotten, kAsyncForgets>;

// ---- a listener that takes one peer at a time -------------------------------------------------
// Accept hands out one connection at a time; while it lives, further connectors wait in the
// socket's backlog (connected, in the kernel's eyes) until it is closed.
class Slot {
 public:
  bool Live() const { return live_.load(); }
  void Fill() { live_.store(true); }
  void Free() { live_.store(false); }

 private:
  std::atomic<bool> live_{false};  // an accepted connection is open
};

class SlotConnection {
 public:
  SlotConnection() = default;
  SlotConnection(StreamConnection c, std::shared_ptr<Slot> slot) : inner_(std::move(c)), slot_(std::move(slot)) {}
  SlotConnection(SlotConnection&&) noexcept = default;
  SlotConnection& operator=(SlotConnection&& o) noexcept {
    if (this != &o) {
      (void)Close();
      inner_ = std::move(o.inner_);
      slot_ = std::move(o.slot_);
    }
    return *this;
  }
  ~SlotConnection() { (void)Close(); }
  explicit SlotConnection(StreamConnection c) : inner_(std::move(c)) {}
  Status Send(ByteView m, Deadline d) { return inner_.Send(m, d); }
  Status Receive(Bytes& out, Deadline d) { return inner_.Receive(out, d); }
  Status Close() {
    if (slot_) std::exchange(slot_, nullptr)->Free();
    return inner_.Close();
  }
  std::size_t max_message_size() const { return inner_.max_message_size(); }

 private:
  StreamConnection inner_;
  std::shared_ptr<Slot> slot_;
};

enum class Extra { kWaitsInTheBacklog, kTakenAndIgnored };

template <Extra E>
class OnePeerListener {
 public:
  OnePeerListener() = default;
  explicit OnePeerListener(unix_sock::Listener l) : state_(std::make_unique<State>()) {
    state_->inner = std::move(l);
    if constexpr (E == Extra::kTakenAndIgnored) {
      // The bug: an I/O thread accepts every connector at once, as an exclusive-pair socket's
      // does; those after the first peer are kept connected and never read (their messages are
      // lost), whenever they come.
      state_->wake.reset(::eventfd(0, EFD_CLOEXEC));
      state_->io = std::thread([s = state_.get()] { s->Run(); });
    }
  }
  OnePeerListener(OnePeerListener&&) noexcept = default;
  OnePeerListener& operator=(OnePeerListener&&) noexcept = default;
  ~OnePeerListener() { (void)Close(); }

  Result<SlotConnection> Accept(Deadline d) {
    if (!state_) return MakeError(Errc::Closed, "one peer: closed");
    if (state_->slot->Live()) return NothingBefore(d, "one peer: the slot is taken").error();
    Result<StreamConnection> c = MakeError(Errc::Timeout, "one peer: nothing to accept");
    if constexpr (E == Extra::kTakenAndIgnored) {
      c = state_->Next(d);
    } else {
      c = state_->inner.Accept(d);
    }
    if (!c.ok()) return std::move(c).error();
    state_->slot->Fill();
    return SlotConnection(std::move(*c), state_->slot);
  }
  std::string address() const { return state_ ? state_->inner.address() : std::string(); }
  std::vector<std::filesystem::path> resource_paths() const {
    return state_ ? state_->inner.resource_paths() : std::vector<std::filesystem::path>{};
  }
  Status Close() {
    if (!state_) return Ok();
    if (state_->io.joinable()) {
      const uint64_t one = 1;
      (void)!::write(state_->wake.get(), &one, sizeof one);
      state_->io.join();
    }
    Status st = state_->inner.Close();
    state_.reset();
    return st;
  }

 private:
  struct State {
    unix_sock::Listener inner;
    std::shared_ptr<Slot> slot = std::make_shared<Slot>();
    UniqueFd wake;
    std::thread io;
    std::mutex mu;
    std::condition_variable ready;
    std::deque<StreamConnection> handed;  // accepted while the slot was free, for Accept
    std::vector<StreamConnection> ignored;
    bool paired = false;  // once one peer was handed out, every later connector is ignored

    void Run() {
      for (;;) {
        pollfd p[2] = {{inner.fd(), POLLIN, 0}, {wake.get(), POLLIN, 0}};
        if (::poll(p, 2, -1) < 0 && errno != EINTR) return;
        if (p[1].revents) return;
        if (!p[0].revents) continue;
        auto c = inner.Accept(Deadline::Expired());
        if (!c.ok()) continue;
        std::lock_guard lock(mu);
        if (!paired) {
          paired = true;
          handed.push_back(std::move(*c));
          ready.notify_all();
        } else {
          ignored.push_back(std::move(*c));
        }
      }
    }
    Result<StreamConnection> Next(Deadline d) {
      std::unique_lock lock(mu);
      const bool got = d.never() ? (ready.wait(lock, [&] { return !handed.empty(); }), true)
                                 : ready.wait_until(lock, d.at(), [&] { return !handed.empty(); });
      if (!got) return MakeError(d.expired() ? Errc::Timeout : Errc::WouldBlock, "one peer: nothing to accept");
      StreamConnection c = std::move(handed.front());
      handed.pop_front();
      return c;
    }
  };
  std::unique_ptr<State> state_;
};

template <Extra E, const char* kLabel>
struct OnePeerAdapter : UnixBased<SlotConnection, kLabel, false, OnePeerListener<E>> {
  static constexpr std::size_t kMaxPeers = 1;
};
inline constexpr char kOnePeer[] = "one_peer";
inline constexpr char kOnePeerIgnoresExtra[] = "one_peer_ignores_extra";
using OnePeerQueuesAdapter = OnePeerAdapter<Extra::kWaitsInTheBacklog, kOnePeer>;
using OnePeerIgnoresAdapter = OnePeerAdapter<Extra::kTakenAndIgnored, kOnePeerIgnoresExtra>;

// ---- cannot go on in a forked child ------------------------------------------------------------
// A library with an I/O thread from its first use that refuses to run in a forked copy of its
// process, as nng does ("not fork-reentrant safe"): a fork handler marks the child, and every
// later call there aborts. The battery must start its peers by exec for it (its thread makes
// PeerMode::kAuto choose exec); the variant whose adapter insists on fork shows what that costs.
struct ForkUnsafeLibrary {
  static void Use() {
    static const bool started = [] {
      ::pthread_atfork(nullptr, nullptr, [] { Forked().store(true); });
      std::thread([] {
        for (;;) std::this_thread::sleep_for(std::chrono::hours(1));  // the library's I/O thread
      }).detach();
      return true;
    }();
    (void)started;
    if (Forked().load()) {
      static const char kMessage[] = "fork_unsafe: not fork-reentrant safe\n";
      (void)!::write(STDERR_FILENO, kMessage, sizeof kMessage - 1);
      std::abort();
    }
  }
  static std::atomic<bool>& Forked() {
    static std::atomic<bool> forked{false};
    return forked;
  }
};

template <const char* kLabel>
struct ForkUnsafeBase : UnixBased<StreamConnection, kLabel> {
  using Base = UnixBased<StreamConnection, kLabel>;
  static void WarmUp() { ForkUnsafeLibrary::Use(); }
  static auto Listen(const std::string& a) {
    ForkUnsafeLibrary::Use();
    return Base::Listen(a);
  }
  static auto Connect(const std::string& a, Deadline d) {
    ForkUnsafeLibrary::Use();
    return Base::Connect(a, d);
  }
};
inline constexpr char kForkUnsafe[] = "fork_unsafe";
inline constexpr char kForkUnsafeForked[] = "fork_unsafe_forked";
using ForkUnsafeAdapter = ForkUnsafeBase<kForkUnsafe>;
// The adapter's mistake: it insists on forked peers for a library that cannot have them.
struct ForkUnsafeForkedAdapter : ForkUnsafeBase<kForkUnsafeForked> {
  static constexpr ::ipch::testing::PeerMode kPeerMode = ::ipch::testing::PeerMode::kFork;
};

}  // namespace ipch::selftest
