// The session fuzzer: a libFuzzer target over any ipch::Transport. Each input is decoded as a
// sequence of operations on a connected pair (both ends in this process) and faults:
//
//   send (either end; a size and the start of the content from the input, the rest a pattern),
//   receive (either end; waiting, or with a deadline about to pass or already passed),
//   send over the maximum, close either end, reconnect (same listener, or listening again at the
//   same address), invisible faults for every later call (EINTR, EAGAIN, short reads and writes,
//   early wake-ups: the fault engine, ipch/fault.h), a visible fault (an errno at the Nth call
//   of a class of calls, once), and a flipped bit in the shared segment (adapters with the
//   SharedBytes hook, harness/conformance/hooks.h).
//
// Each step is checked against a model of the contract (docs/new-transport.md): messages whole,
// in order, never lost, duplicated or damaged; the exact error (MessageTooLarge, PeerClosed,
// Closed, WouldBlock, Timeout); no call overrunning its deadline. After a visible fault a call
// may fail, and the message it carried may or may not arrive, but nothing else changes: what
// arrives is still the next message sent, or one whose send failed. After a flipped bit in
// shared memory (a hostile peer) only Corrupt, WouldBlock, PeerClosed, Timeout, Closed or a
// message within the maximum may come back. After the input, everything is closed and the
// resource audit (ipch/audit.h) must find no descriptor, name or kernel object left (child
// processes are not looked at: both ends are in this process, and the fuzzer's own helpers,
// such as llvm-symbolizer, are children too).
//
// IPCH_SESSION_TRACE=1 prints every input's operations and outcomes as they ran.
//
// On a violation the target prints the operations so far and what broke, then aborts: libFuzzer
// keeps the input, and `<target> <file>` (or the replay binary) replays it exactly. Nothing
// here is random: the input is the whole seed.
//
// Use: one file per adapter,
//   #include "ipch/fuzz_session.h"
//   #include "my_adapter.h"
//   IPCH_FUZZ_SESSION(my::Adapter)
// built with clang's -fsanitize=fuzzer (and address,undefined), linked with ipch::fault first
// (it interposes libc) and ipch::core; or with ipch_add_session_fuzzer() from the CMake package.
#pragma once

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <memory>
#include <iterator>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "ipch/audit.h"
#include "ipch/deadline.h"
#include "ipch/fault.h"
#include "ipch/result.h"
#include "ipch/temp_dir.h"
#include "ipch/transport.h"

namespace ipch::fuzzing {

// The input, read from the front; past its end every read gives 0.
class InputReader {
 public:
  InputReader(const uint8_t* data, std::size_t size) : p_(data), end_(data + size) {}
  bool empty() const { return p_ == end_; }
  uint8_t Byte() { return p_ == end_ ? 0 : *p_++; }
  uint16_t U16() { return static_cast<uint16_t>(Byte() | Byte() << 8); }
  // Up to n bytes as they are (fewer at the end of the input).
  std::size_t Take(std::size_t n, std::byte* out) {
    const std::size_t k = std::min<std::size_t>(n, static_cast<std::size_t>(end_ - p_));
    if (k == 0) return 0;  // memcpy's pointers must not be null, even for no bytes
    std::memcpy(out, p_, k);
    p_ += k;
    return k;
  }

 private:
  const uint8_t* p_;
  const uint8_t* end_;
};

// What a direction may hold unread: little enough that no transport's buffers fill (a SysV queue
// holds 16 KiB by default, a POSIX queue 10 messages), so a send never waits for its receiver.
inline constexpr std::size_t kBudget = 8 * 1024;
inline constexpr std::size_t kPerMessage = 64;  // what framing may add to each message
inline constexpr std::size_t kMaxUnread = 8;
inline constexpr std::size_t kMaxOps = 64;         // operations per input
inline constexpr std::size_t kContentFromInput = 16;  // bytes of a message's content the input gives
inline constexpr int kMaxTimedWaits = 1;           // receives per input that wait for their deadline

// Calls whose faults the contract requires to be invisible (retried or waited again).
inline constexpr uint64_t kQuietCalls = fault::kRead | fault::kWrite | fault::kPoll | fault::kFutex | fault::kMsgsnd |
                                        fault::kMsgrcv | fault::kMqSend | fault::kMqReceive;
// The classes a visible fault picks from. Releasing calls (close, munmap, shmdt, shmctl, msgctl,
// the unlinks) are left out: when the kernel refuses to remove an object, it stays, and that is
// not the transport's leak.
inline constexpr uint64_t kVisibleClasses[] = {
    fault::kRead,
    fault::kWrite,
    fault::kPoll | fault::kFutex,
    fault::kAccept | fault::kConnect,
    fault::kSocket | fault::kSocketpair | fault::kBind | fault::kListen | fault::kShutdown,
    fault::kOpen | fault::kPipe | fault::kMkfifo,
    fault::kMmap | fault::kFtruncate | fault::kShmOpen | fault::kMemfdCreate,
    fault::kShmget | fault::kShmat,
    fault::kMsgget | fault::kMsgsnd | fault::kMsgrcv,
    fault::kMqOpen | fault::kMqSend | fault::kMqReceive,
};
// The errnos a visible fault picks from (kTypicalErrno: each call's own typical one). A rule
// faults only the calls that can really fail with its errno.
inline constexpr int kVisibleErrnos[] = {fault::kTypicalErrno, ECONNRESET, EPIPE, ENOMEM, EMFILE, EIO, EIDRM, ENOSPC};


template <Transport T>
class Session {
 public:
  using Conn = typename T::Connection;

  // One per process: a scratch directory for the adapters that want one, and the audit's
  // starting point.
  Session() {
    prefix_ = "ipch-" + std::to_string(::getpid()) + "-";
    auto dir = TempDir::Create(prefix_ + "fuzz-");
    if (!dir.ok()) Die("cannot make a scratch directory: " + dir.error().ToString());
    scratch_ = std::move(*dir);
    (void)audit::EnsureMqueueMounted();
    before_ = audit::Take(prefix_, audit::Scope::kWithoutChildren);
    trace_all_ = std::getenv("IPCH_SESSION_TRACE") != nullptr;
  }

  int Run(const uint8_t* data, std::size_t size) {
    // The fuzzer itself may open descriptors between inputs (libFuzzer's pipes to
    // llvm-symbolizer): the input is judged against the descriptors open as it starts.
    before_.fds = audit::OpenDescriptors();
    in_ = std::make_unique<InputReader>(data, size);
    trace_.clear();
    model_ = Model{};
    timed_waits_ = 0;
    spec_ = EndpointSpec{prefix_ + "fz" + std::to_string(++inputs_), scratch_.path()};
    address_ = T::Address(spec_);
    const Status connected = Reconnect(true);  // no fault is armed yet: this must work
    Step("connect", connected);
    if (!connected.ok()) Die("connect: " + Show(connected));
    for (std::size_t n = 0; n < kMaxOps && !in_->empty(); ++n) One();
    End();
    if (trace_all_) std::fprintf(stderr, "[ipch session fuzzer] %s\n", trace_.c_str());
    return 0;
  }

 private:
  struct Model {
    std::array<std::deque<Bytes>, 2> queue;     // [0]: client -> server, [1]: server -> client
    std::array<std::deque<bool>, 2> maybe;      // per queued message: its send failed (it may not arrive)
    std::array<bool, 2> closed{};               // each end closed by its owner
    bool connected = false;                     // both ends exist (a faulted reconnect may leave none)
    bool faulted = false;                       // a visible fault is armed, or fired on this pair
    bool scribbled = false;                     // the shared segment was written by a "hostile peer"
    std::size_t max = 0;
    std::size_t Room(int dir) const {
      std::size_t n = 0;
      for (const auto& m : queue[dir]) n += m.size() + kPerMessage;
      if (queue[dir].size() >= kMaxUnread || n + kPerMessage >= kBudget) return 0;
      return kBudget - kPerMessage - n;
    }
    bool Lax() const { return faulted || scribbled; }
  };

  static Clock::duration SettleWait() { return Scaled(std::chrono::seconds(5)); }
  static Clock::duration Grace() { return Scaled(std::chrono::seconds(2)); }
  // A message sent before its receive began arrives at once; only a lost wake-up takes this long.
  static Clock::duration Prompt() { return Scaled(std::chrono::seconds(1)); }

  [[noreturn]] void Die(const std::string& what) {
    std::fprintf(stderr, "\n[ipch session fuzzer] %s: %s\n  operations: %s\n", std::string(T::kName).c_str(),
                 what.c_str(), trace_.c_str());
    std::fflush(stderr);
    // Best effort, so that a run that keeps going after crashes (libFuzzer -fork) does not pile
    // up the dead pairs' objects: close what is open and remove what this input made.
    plans_.reset();
    for (auto& e : end_) {
      if (e) (void)e->Close();
      e.reset();
    }
    if (listener_) (void)listener_->Close();
    listener_.reset();
    audit::CleanUp(before_, audit::Take(prefix_, audit::Scope::kWithoutChildren));
    std::abort();
  }
  static std::string Show(const Status& st) { return st.ok() ? "OK" : st.error().ToString(); }
  void Step(const std::string& what, const Status& st) {
    trace_ += what + "=" + (st.ok() ? std::string("ok") : std::string(ErrcNameOf(st))) + " ";
  }
  static std::string ErrcNameOf(const Status& st) {
    const auto& c = st.error().code;
    if (c.category() == ErrcCategory()) return ErrcName(static_cast<Errc>(c.value()));
    return "errno " + std::to_string(c.value());
  }
  void Require(bool ok, const std::string& what, const Status& st) {
    if (!ok) Die(what + ": got " + Show(st));
  }

  // Runs a call with deadline `d` and fails if it overran it by more than the grace.
  template <class F>
  Status Timed(Deadline d, const char* what, F call) {
    const Status st = call(d);
    const auto bound = (d.at() == Clock::time_point::min() ? started_ : d.at()) + Grace();
    if (Clock::now() > bound) Die(std::string(what) + " overran its deadline by more than " + std::to_string(Grace() / Millis(1)) + " ms");
    return st;
  }
  Deadline Wait(Clock::duration d) {
    started_ = Clock::now();
    return Deadline::At(started_ + d);
  }
  Deadline Probe() {
    started_ = Clock::now();
    return Deadline::Expired();
  }

  // Closes what is open and connects a new pair (listening again first when asked or when
  // there is no listener). Under a visible fault this may fail: the session then has no pair
  // until a later reconnect works.
  Status Reconnect(bool relisten) {
    for (int s = 0; s < 2; ++s) {
      if (end_[s] && !model_.closed[s]) (void)end_[s]->Close();
      end_[s].reset();
    }
    model_.queue = {};
    model_.maybe = {};
    model_.closed = {};
    model_.connected = false;
    model_.scribbled = false;
    // A visible fault that fired before this pair was made cannot reach it (it fires once).
    model_.faulted = visible_ && fault::InjectedCount() == 0;
    if (relisten || !listener_) {
      if (listener_) (void)listener_->Close();
      listener_.reset();
      auto l = T::Listen(address_);
      if (!l.ok()) return std::move(l).error();
      listener_.emplace(std::move(*l));
    }
    auto c = T::Connect(listener_->address(), Wait(SettleWait()));
    if (!c.ok()) return std::move(c).error();
    auto s = listener_->Accept(Wait(SettleWait()));
    if (!s.ok()) {
      // The connector may be queued at the listener still (an accept that failed before taking
      // it), and its end is closed now: the contract lets a later Accept hand that dead
      // connection over (PeerClosed on it), which a new pair must not be. Listen again.
      (void)listener_->Close();
      listener_.reset();
      return std::move(s).error();
    }
    end_[0].emplace(std::move(*c));
    end_[1].emplace(std::move(*s));
    model_.max = end_[0]->max_message_size();
    if (end_[1]->max_message_size() != model_.max) Die("the two ends disagree on max_message_size");
    model_.connected = true;
    return Ok();
  }

  void One() {
    const uint8_t op = in_->Byte();
    const int side = op >> 7;
    switch (op % 8) {
      case 0:
      case 1:
        return Send(side);
      case 2:
      case 3:
        return Receive(side, op >> 4 & 3);
      case 4:
        return Close(side);
      case 5: {
        const bool relisten = op & 0x40;
        const Status st = Reconnect(relisten);
        Step(relisten ? "relisten" : "reconnect", st);
        if (!model_.faulted) Require(st.ok(), "reconnect", st);
        return;
      }
      case 6:
        return (op & 0x10) ? Flip() : Fault();
      case 7:
        return SendOversize(side);
    }
  }

  // A size asked for: small, a boundary, anywhere, or the whole room.
  std::size_t Size(std::size_t room) {
    static constexpr std::size_t kEdges[] = {0, 1, 2, 255, 256, 4095, 4096, 4097};
    const uint8_t b = in_->Byte();
    std::size_t n = 0;
    switch (b >> 6) {
      case 0: n = b & 0x3f; break;
      case 1: n = kEdges[b & 7]; break;
      case 2: n = in_->U16(); break;
      case 3: n = room; break;
    }
    return n;
  }

  // A message of min(asked, room) bytes. The input gives the start of its content (as much as
  // was asked for, up to kContentFromInput, so the input's layout does not depend on the room).
  Bytes Content(std::size_t asked, std::size_t room) {
    Bytes b(std::max(std::min(asked, kContentFromInput), std::min(asked, room)));
    const std::size_t given = in_->Take(std::min(asked, kContentFromInput), b.data());
    b.resize(std::min(asked, room));
    const std::size_t n = b.size();
    const uint8_t salt = static_cast<uint8_t>(++sent_);
    for (std::size_t i = given; i < n; ++i) b[i] = std::byte(static_cast<uint8_t>(i * 31 + salt));
    return b;
  }

  void Send(int side) {
    const int peer = 1 - side;
    const std::size_t room = std::min(model_.Room(side), model_.max);
    Bytes msg = Content(Size(room), room);  // read whether or not the send is made: the input stays aligned
    if (!model_.connected) return;
    // A full direction (a send would wait for its receiver), or a closed peer whose messages to
    // this end are still unread (as in the Property group, such a send is left out).
    if (room == 0 && !model_.closed[side] && !model_.closed[peer]) return;
    if (model_.closed[peer] && !model_.queue[peer].empty() && !model_.closed[side]) return;
    const Deadline d = model_.scribbled ? Probe() : Wait(SettleWait());
    const Status st = Timed(d, "send", [&](Deadline dl) { return end_[side]->Send(msg, dl); });
    Step(std::string(side ? "S" : "C") + ".send(" + std::to_string(msg.size()) + ")", st);
    if (model_.closed[side]) return Require(st.Is(Errc::Closed), "send on a closed end (Closed)", st);
    if (model_.scribbled) {
      return Require(st.ok() || st.Is(Errc::Corrupt) || st.Is(Errc::WouldBlock) || st.Is(Errc::PeerClosed) ||
                         model_.faulted,
                     "send after the segment was scribbled on", st);
    }
    if (model_.closed[peer]) {
      return Require(st.ok() || st.Is(Errc::PeerClosed) || model_.faulted, "send to a closed peer (OK or PeerClosed)", st);
    }
    if (!st.ok() && !model_.faulted) Die("send: got " + Show(st));
    model_.queue[side].push_back(std::move(msg));
    model_.maybe[side].push_back(!st.ok());
  }

  void SendOversize(int side) {
    if (!model_.connected) return;
    if (zeros_.size() != model_.max + 1) Bytes(model_.max + 1).swap(zeros_);
    const Status st = Timed(Probe(), "send over the maximum", [&](Deadline dl) { return end_[side]->Send(zeros_, dl); });
    Step(std::string(side ? "S" : "C") + ".send(max+1)", st);
    if (model_.closed[side]) return Require(st.Is(Errc::Closed), "send on a closed end (Closed)", st);
    Require(st.Is(Errc::MessageTooLarge) || ((model_.closed[1 - side] || model_.Lax()) && st.Is(Errc::PeerClosed)) ||
                (model_.scribbled && st.Is(Errc::Corrupt)),
            "send over the maximum (MessageTooLarge)", st);
  }

  void Receive(int side, int wait) {
    if (!model_.connected) return;
    const int from = 1 - side;
    auto& q = model_.queue[from];
    auto& maybe = model_.maybe[from];
    Bytes got;
    if (model_.closed[side]) {
      const Status st = Timed(Probe(), "receive", [&](Deadline dl) { return end_[side]->Receive(got, dl); });
      Step(std::string(side ? "S" : "C") + ".recv", st);
      return Require(st.Is(Errc::Closed), "receive on a closed end (Closed)", st);
    }
    const bool definite = std::find(maybe.begin(), maybe.end(), false) != maybe.end();
    Deadline d = Probe();
    if (model_.scribbled) {
      d = Probe();
    } else if (definite || (q.empty() && model_.closed[from])) {
      d = Wait(model_.faulted ? Scaled(Millis(200)) : SettleWait());
    } else if (wait == 1 && timed_waits_ < kMaxTimedWaits) {
      ++timed_waits_;
      d = Wait(Millis(1));
    }
    const Status st = Timed(d, "receive", [&](Deadline dl) { return end_[side]->Receive(got, dl); });
    Step(std::string(side ? "S" : "C") + ".recv", st);
    if (st.ok() && got.size() > model_.max) Die("received " + std::to_string(got.size()) + " bytes, above the maximum");
    if (model_.scribbled) {
      Require(st.ok() || st.Is(Errc::Corrupt) || st.Is(Errc::WouldBlock) || st.Is(Errc::PeerClosed) ||
                  st.Is(Errc::Timeout) || model_.faulted,
              "receive after the segment was scribbled on", st);
      if (st.ok() && !q.empty()) {
        q.pop_front();
        maybe.pop_front();
      }
      return;
    }
    if (st.ok()) {
      // The next message, or one sent after messages whose sends failed (they may be gone).
      while (!q.empty() && !Same(q.front(), got) && maybe.front()) {
        q.pop_front();
        maybe.pop_front();
      }
      if (q.empty()) Die("received a message of " + std::to_string(got.size()) + " bytes that was never sent");
      if (!Same(q.front(), got)) {
        Die("received a message of " + std::to_string(got.size()) + " bytes, expected the next one sent (" +
            std::to_string(q.front().size()) + " bytes)");
      }
      // A message whose send failed, received, may instead be the next one sent with the same
      // bytes (the failed one lost): then that next one may not come.
      if (maybe.front()) {
        for (std::size_t i = 1; i < q.size(); ++i) {
          if (maybe[i]) continue;
          if (Same(q[i], got)) maybe[i] = true;
          break;
        }
      }
      q.pop_front();
      maybe.pop_front();
      if (!model_.Lax() && Clock::now() - started_ > Prompt()) {
        Die("a message sent before the receive began took " + std::to_string((Clock::now() - started_) / Millis(1)) +
            " ms to arrive: a lost wake-up?");
      }
      return;
    }
    if (model_.faulted) return;  // any error: the fault may have ended the connection
    if (!q.empty()) Die("a message sent before this receive did not arrive: " + Show(st));
    if (model_.closed[from]) return Require(st.Is(Errc::PeerClosed), "receive from a closed peer (PeerClosed)", st);
    if (d.at() == Clock::time_point::min()) return Require(st.Is(Errc::WouldBlock), "receive, nothing sent (WouldBlock)", st);
    Require(st.Is(Errc::Timeout) || st.Is(Errc::WouldBlock), "receive, nothing sent (Timeout)", st);
  }

  void Close(int side) {
    if (!model_.connected) return;
    const Status st = end_[side]->Close();
    Step(std::string(side ? "S" : "C") + ".close", st);
    Require(st.ok() || model_.faulted, "close", st);
    model_.closed[side] = true;
    model_.queue[1 - side].clear();  // messages to a closed end die with it
    model_.maybe[1 - side].clear();
  }

  // Invisible faults for every later call, or none; or one visible fault.
  void Fault() {
    const uint8_t kind = in_->Byte();
    const uint8_t param = in_->Byte();
    fault::Plan plan;
    plan.seed = param;
    const double p = (param % 4 + 1) / 8.0;
    switch (kind % 6) {
      case 0:
        plans_.reset();
        visible_ = false;
        Step("faults(none)", Ok());
        return;
      case 1:
        plan.rules.push_back({kQuietCalls, fault::Kind::kErrno, EINTR, 0, p, 0});
        break;
      case 2:
        plan.rules.push_back({fault::kRead | fault::kWrite | fault::kFutex | fault::kMsgsnd | fault::kMqSend |
                                  fault::kMqReceive,
                              fault::Kind::kErrno, EAGAIN, 0, p, 0});
        plan.rules.push_back({fault::kMsgrcv, fault::Kind::kErrno, ENOMSG, 0, p, 0});
        break;
      case 3:
        plan.rules.push_back({fault::kRead | fault::kWrite, fault::Kind::kShort, 0, 0, p, 0});
        break;
      case 4:
        plan.rules.push_back({fault::kPoll | fault::kFutex, fault::Kind::kWake, 0, 0, p, 0});
        break;
      case 5: {
        // Visible: one errno at the Nth call of a class (the invisible faults are off meanwhile).
        const uint64_t ops = kVisibleClasses[in_->Byte() % std::size(kVisibleClasses)];
        const int err = kVisibleErrnos[param % std::size(kVisibleErrnos)];
        plan.rules.push_back({ops, fault::Kind::kErrno, err, static_cast<uint32_t>(1 + (param >> 3) % 16), 0.0, 1});
        model_.faulted = true;
        break;
      }
    }
    visible_ = kind % 6 == 5;
    plans_.reset();
    plans_.emplace(plan);
    Step("faults(" + fault::FormatPlan(plan) + ")", Ok());
  }

  // One bit of the shared segment flipped, as a hostile peer would.
  void Flip() {
    const uint16_t at = in_->U16();
    const uint8_t bit = in_->Byte() & 7;
    if constexpr (kHasSharedBytes<T>) {
      if (!model_.connected || !end_[1]) return;
      auto bytes = T::SharedBytes(*end_[1]);
      if (bytes.empty()) return;
      bytes[at % bytes.size()] ^= std::byte(1u << bit);
      model_.scribbled = true;
      Step("flip(" + std::to_string(at % bytes.size()) + "," + std::to_string(bit) + ")", Ok());
    }
  }

  static bool Same(const Bytes& a, const Bytes& b) {
    return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size()) == 0);
  }

  // Everything closed, and nothing may be left.
  void End() {
    plans_.reset();
    visible_ = false;
    for (int s = 0; s < 2; ++s) {
      if (end_[s]) {
        const Status st = end_[s]->Close();
        if (!st.ok() && !model_.Lax()) Die("close at the end: " + Show(st));
      }
      end_[s].reset();
    }
    if (listener_) {
      const Status st = listener_->Close();
      if (!st.ok() && !model_.Lax()) Die("listener close at the end: " + Show(st));
    }
    listener_.reset();
    const auto settled = audit::AwaitSettled(before_, prefix_, scratch_.path(), audit::Scope::kWithoutChildren);
    if (!settled.leaks.empty()) {
      std::string s;
      for (const auto& l : settled.leaks) s += "\n    " + l;
      Die("left behind after everything was closed:" + s);
    }
  }

  std::string prefix_;
  TempDir scratch_;
  audit::Snapshot before_;
  uint64_t inputs_ = 0;
  uint64_t sent_ = 0;
  EndpointSpec spec_;
  std::string address_;
  std::unique_ptr<InputReader> in_;
  std::string trace_;
  Model model_;
  int timed_waits_ = 0;
  Clock::time_point started_{};
  std::optional<typename T::Listener> listener_;
  std::array<std::optional<Conn>, 2> end_;
  std::optional<fault::ScopedPlan> plans_;
  bool visible_ = false;  // the plan armed is a visible fault
  bool trace_all_ = false;  // IPCH_SESSION_TRACE: print every input's operations
  Bytes zeros_;
};

template <Transport T>
int FuzzSession(const uint8_t* data, std::size_t size) {
  static Session<T> session;
  return session.Run(data, size);
}

}  // namespace ipch::fuzzing

// The whole fuzz target for an adapter: IPCH_FUZZ_SESSION(my::Adapter)
#define IPCH_FUZZ_SESSION(...)                                                  \
  extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) { \
    return ::ipch::fuzzing::FuzzSession<__VA_ARGS__>(data, size);               \
  }
