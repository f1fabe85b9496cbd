// Property group: a rapidcheck stateful model over any transport. Random sequences of commands
// run on a connected pair (both ends in this process) and are checked step by step against a
// model of the contract: two FIFO queues of messages in flight and which end has closed. The
// commands: Send from either end (sizes weighted to 0, 1, page and pipe boundaries, and random),
// Exchange (a message sent while the other end already waits for it: small, where it must
// arrive promptly, or large, up to the maximum), Send
// over the maximum (MessageTooLarge), Receive (waiting, with a deadline about to pass: Timeout,
// or already passed: WouldBlock), Close either end, Send to a closed peer (PeerClosed, or taken
// by a buffer), Reconnect (a new connection, on the same listener or on a new one at the same
// address: create-again), and InjectFault (from the fault engine, for every later call until
// the next one: EINTR, EAGAIN, short reads and writes, early wake-ups; all must be invisible).
// For a transport that crosses processes, half the sequences hold the client end in a peer
// process (property_end.h), which KillPeer kills (what it fully sent is still delivered, then
// PeerClosed; without PeerDeathDetect, silence), and StopPeer and ContPeer stop and continue (a
// stopped peer is not a dead one: receives time out, and it works again once continued).
// For a transport with a socket address, half the sequences join the ends through the stream
// toxics proxy, and three more commands act on the wire: Wire (new toxics that only slow or
// split the bytes: invisible), Stall (the next message held mid-frame: the receive times out,
// then the same message arrives whole) and Flip (one bit of the next message flipped, in its
// header or payload: Corrupt, never the message; the connection is then done with).
// After every sequence both ends and the listener are closed and the resource audit must find
// nothing left. A failure is shrunk to a minimal command list, printed with the seed and a line
// that replays it. Seeded: the case's seed unless RC_PARAMS names one.
#pragma once

#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/state.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <filesystem>
#include <optional>
#include <sstream>
#include <string>
#include <type_traits>

#include "fault_fixture.h"
#include "fault_syscalls.h"
#include "fixture.h"
#include "ipch/audit.h"
#include "ipch/fault.h"
#include "ipch/testing.h"
#include "ipch/toxics.h"
#include "ipch/transport.h"
#include "property_end.h"

namespace ipch::conformance {

namespace property {

// What a direction may hold unread: little enough that no transport's buffers fill (a SysV
// queue holds 16 KiB, a POSIX queue 10 messages by default), so a Send never waits for its peer
// to receive. Each message counts kPerMessage bytes more, for what its framing adds.
inline constexpr std::size_t kBudget = 8 * 1024;
inline constexpr std::size_t kPerMessage = 64;
inline constexpr std::size_t kMaxUnread = 8;

struct Model {
  std::array<std::deque<Bytes>, 2> queue;  // [0]: client -> server, [1]: server -> client
  std::array<bool, 2> closed{};            // each end closed by its owner
  std::size_t max = 0;                     // the connections' max_message_size
  bool faults = false;                     // a fault plan is armed
  bool remote = false;                     // the client end is held by a peer process
  bool killed = false;                     // ... which was killed (its end counts as closed)
  bool stopped = false;                    // ... which is stopped (SIGSTOP) now
  bool proxied = false;                    // the ends are joined through the toxics proxy
  bool slow_wire = false;                  // ... which splits the bytes into a few per write
  bool broken = false;                     // a damaged message was refused: the connection is done
  std::size_t Room(int dir) const {
    std::size_t n = 0;
    for (const auto& m : queue[dir]) n += m.size() + kPerMessage;
    if (queue[dir].size() >= kMaxUnread || n + kPerMessage >= kBudget) return 0;
    return kBudget - kPerMessage - n;
  }
  bool BothOpen() const { return !closed[0] && !closed[1]; }
  // The end is open and can run a call now (a stopped peer's cannot).
  bool Open(int side) const { return !closed[side] && !(side == 0 && stopped); }
  // ... and its connection still carries messages.
  bool Usable(int side) const { return Open(side) && !broken; }
};

inline const char* Side(int s) { return s == 0 ? "client" : "server"; }
// n zero bytes, kept for the next call: a message over the maximum is refused unread, and
// allocating and clearing megabytes for each refusal would cost more than the rest.
inline const Bytes& Zeros(std::size_t n) {
  static Bytes zeros;
  if (zeros.size() != n) Bytes(n).swap(zeros);
  return zeros;
}

// a == b, by memcmp: a vector of std::byte compares a byte at a time, which a sanitizer makes
// slow on messages of megabytes.
inline bool SameBytes(const Bytes& a, const Bytes& b) {
  return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size()) == 0);
}

// Fails the sequence with what `st` says unless it is OK.
inline void RequireOk(const Status& st, const std::string& what) {
  if (!st.ok()) RC_FAIL(what + ": " + st.error().ToString());
}
// Fails the sequence unless `ok(st)`: `st` is one of the outcomes allowed.
template <class F>
void RequireThat(const Status& st, F ok, const std::string& what) {
  if (!ok(st)) RC_FAIL(what + ": got " + (st.ok() ? std::string("OK") : st.error().ToString()));
}
template <Errc E>
bool Is(const Status& st) {
  return st.Is(E);
}

inline Bytes Payload(std::size_t n) {
  const uint64_t salt = *rc::gen::arbitrary<uint64_t>();
  return MakeMessage(salt, n, salt);
}

// A size in [0, room]: mostly small, often on a boundary, sometimes anywhere.
inline std::size_t SmallSize(std::size_t room) {
  std::vector<std::size_t> edges;
  for (std::size_t e : {std::size_t{0}, std::size_t{1}, std::size_t{2}, std::size_t{255}, std::size_t{256},
                        std::size_t{4095}, std::size_t{4096}, std::size_t{4097}}) {
    if (e <= room) edges.push_back(e);
  }
  return *rc::gen::weightedOneOf<std::size_t>({{4, rc::gen::inRange<std::size_t>(0, std::min<std::size_t>(room, 64) + 1)},
                                                {3, rc::gen::elementOf(edges)},
                                                {2, rc::gen::inRange<std::size_t>(0, room + 1)}});
}

// Listens to nothing: the case prints its own replay line (the seed and the count), so
// rapidcheck's own "reproduce=" line, which would not replay a run whose seed was set here, is
// never printed.
class QuietListener : public rc::detail::TestListener {
 public:
  void onTestCaseFinished(const rc::detail::CaseDescription&) override {}
  void onShrinkTried(const rc::detail::CaseDescription&, bool) override {}
  void onTestFinished(const rc::detail::TestMetadata&, const rc::detail::TestResult&) override {}
};

}  // namespace property

template <class T>
class Property : public TransportTest<T> {
 public:
  using Conn = typename T::Connection;
  using Lis = typename T::Listener;
  using Model = property::Model;

  // The real pair: the client end here, or held by a peer process (`remote`); joined directly,
  // or through the toxics proxy (`proxied`).
  struct World {
    std::string address;
    bool remote = false;
    bool proxied = false;
    std::optional<Lis> listener;
    std::unique_ptr<property::End> end[2];
    std::optional<fault::ScopedPlan> faults;
    toxics::Spec spec;                      // the wire's toxics now
    std::unique_ptr<toxics::Proxy> proxy;   // one per connection: its byte counts are this one's
    Status Connect(bool relisten) {
      if (relisten || !listener) {
        if (listener) IPCH_RETURN_IF_ERROR(listener->Close());
        listener.reset();
        auto l = T::Listen(address);
        if (!l.ok()) return std::move(l).error();
        listener.emplace(std::move(*l));
      }
      std::string to = listener->address();
      if (proxied) {
        if (proxy) proxy->Stop();
        proxy.reset();
        auto p = toxics::Proxy::Start(toxics::Proxy::FrontFor(to), to, spec);
        if (!p.ok()) return std::move(p).error();
        proxy = std::move(*p);
        to = proxy->address();
      }
      if (remote) {
        // A forked peer inherits the plan armed here; an exec'd one is given it.
        auto peer = Property::StartClient(
            to, [](auto& c, ControlChannel& ch) -> Status { return property::ServeEnd(c, ch); });
        if (!peer.ok()) return std::move(peer).error();
        auto s = listener->Accept(Settle());
        if (!s.ok()) return std::move(s).error();
        auto max = peer->control().ReceiveString(Settle());
        if (!max.ok()) return Error{max.error().code, "the peer process's connection: " + max.error().context};
        end[0] = std::make_unique<property::RemoteEnd>(std::move(*peer), std::stoull(*max));
        end[1] = std::make_unique<property::LocalEnd<Conn>>(std::move(*s));
        return Ok();
      }
      auto c = T::Connect(to, Settle());
      if (!c.ok()) return std::move(c).error();
      auto s = listener->Accept(Settle());
      if (!s.ok()) return std::move(s).error();
      end[0] = std::make_unique<property::LocalEnd<Conn>>(std::move(*c));
      end[1] = std::make_unique<property::LocalEnd<Conn>>(std::move(*s));
      return Ok();
    }
    property::RemoteEnd& Peer() { return dynamic_cast<property::RemoteEnd&>(*end[0]); }
    void CloseAll() {
      faults.reset();
      for (auto& e : end) {
        if (e) (void)e->Close();
        e.reset();  // a peer process ends, and is waited for
      }
      if (listener) (void)listener->Close();
      listener.reset();
      if (proxy) proxy->Stop();
      proxy.reset();
    }
    // The proxy's log, for a failure's message: " (proxy: [event] ...)", or "" before any.
    std::string Log() const {
      std::string s;
      if (proxy) {
        for (const auto& l : proxy->Log()) s += " [" + l + "]";
      }
      return s.empty() ? s : " (proxy:" + s + ")";
    }
  };
  using Cmd = rc::state::Command<Model, World>;

  static constexpr bool kFaultable = kInterposedIo<T>;
  static constexpr bool kCrossProcess = T::kCaps.Has(Cap::CrossProcess);
  // A listener with a peer limit gets a new one rather than a second connection.
  static constexpr bool kLimitedPeers = MaxPeers<T>() != SIZE_MAX;
  // The toxics proxy stands at a socket address between the ends.
  static constexpr bool kProxyable = kHasSocketAddress<T>;
  // Stall and Flip aim at the next message's bytes on the wire. A transport that reconnects puts
  // requests there, whose headers no checksum covers and whose Send waits for the answer: it
  // gets Wire only (the Fault group's toxics cases judge it with what it may answer).
  static constexpr bool kAimedToxics = kProxyable && !T::kCaps.Has(Cap::Reconnects);

  struct Send : Cmd {
    int side;
    Bytes payload;
    explicit Send(const Model& m) : side(*rc::gen::inRange(0, 2)) {
      RC_PRE(m.BothOpen() && m.Usable(side) && m.Room(side) > 0);
      payload = property::Payload(property::SmallSize(std::min(m.Room(side), m.max)));
    }
    void checkPreconditions(const Model& m) const override {
      RC_PRE(m.BothOpen() && m.Usable(side) && m.Room(side) > 0 && payload.size() <= m.Room(side));
    }
    void apply(Model& m) const override { m.queue[side].push_back(payload); }
    void run(const Model&, World& w) const override {
      property::RequireOk(w.end[side]->Send(payload, Settle()), "send");
    }
    void show(std::ostream& os) const override { os << "Send(" << property::Side(side) << ", " << payload.size() << " bytes)"; }
  };

  // A message sent while the other end waits for it (its Receive started first, on a thread of
  // its own): small, where it must arrive promptly once sent (a lost wake-up sleeps through it),
  // or too large for any buffer, up to the maximum.
  struct Exchange : Cmd {
    int side;
    std::size_t size;
    explicit Exchange(const Model& m) : side(*rc::gen::inRange(0, 2)) {
      checkPreconditions(m);
      const std::size_t mid = std::min<std::size_t>(m.max, 256 * 1024);
      const auto small = rc::gen::inRange<std::size_t>(0, std::min<std::size_t>(m.max, 4096) + 1);
      if (m.max <= property::kBudget || m.slow_wire) {
        size = *small;
      } else {
        size = *rc::gen::weightedOneOf<std::size_t>({{4, small},
                                                      {1, rc::gen::just(m.max)},
                                                      {1, rc::gen::just(m.max - 1)},
                                                      {3, rc::gen::inRange<std::size_t>(property::kBudget, mid + 1)}});
      }
    }
    void checkPreconditions(const Model& m) const override {
      RC_PRE(m.BothOpen() && !m.stopped && !m.broken && m.queue[side].empty());
      RC_PRE(!m.slow_wire || size <= 4096);  // a write every few bytes: a large one would take long
    }
    void apply(Model&) const override {}
    void run(const Model&, World& w) const override {
      const Bytes payload = MakeMessage(size, size, 7);
      Bytes got;
      Clock::time_point received_at{};
      // Each thread touches its own end only: on failure it closes it, so that the other
      // thread, blocked on the peer, stops waiting (PeerClosed) instead of waiting out Settle.
      InBackground receiving([&] {
        Status st = w.end[1 - side]->Receive(got, Settle());
        received_at = Clock::now();
        if (!st.ok()) (void)w.end[1 - side]->Close();
        return st;
      });
      const Status sent = w.end[side]->Send(payload, Settle());
      const auto sent_at = Clock::now();
      if (!sent.ok()) (void)w.end[side]->Close();
      const Status received = receiving.get();
      property::RequireOk(sent, "send");
      property::RequireOk(received, "receive");
      RC_ASSERT(property::SameBytes(got, payload));
      if (size <= 4096 && received_at - sent_at > PromptBound()) {
        RC_FAIL("a message of " + std::to_string(size) + " bytes arrived " + Seconds(received_at - sent_at) +
                " s after its Send returned, with the receiver waiting: a lost wake-up?");
      }
    }
    void show(std::ostream& os) const override { os << "Exchange(" << property::Side(side) << ", " << size << " bytes)"; }
  };

  struct SendOversize : Cmd {
    int side;
    explicit SendOversize(const Model& m) : side(*rc::gen::inRange(0, 2)) { checkPreconditions(m); }
    void checkPreconditions(const Model& m) const override { RC_PRE(m.Usable(side)); }
    void apply(Model&) const override {}  // nothing is sent
    // Once the peer has closed, the end may have learnt it already (PeerClosed is sticky).
    void run(const Model& m, World& w) const override {
      property::RequireThat(w.end[side]->Send(property::Zeros(w.end[side]->max_message_size() + 1), Settle()),
                   [&](const Status& st) {
                     return st.Is(Errc::MessageTooLarge) || (m.closed[1 - side] && st.Is(Errc::PeerClosed));
                   },
                   "send over the maximum (MessageTooLarge)");
    }
    void show(std::ostream& os) const override { os << "SendOversize(" << property::Side(side) << ")"; }
  };

  // The receiving end's next message, or: PeerClosed once the peer has closed and everything it
  // sent is taken; with nothing in flight, Timeout for a deadline that passes while it waits and
  // WouldBlock for one already passed.
  struct Receive : Cmd {
    enum Wait { kSettle, kShort, kExpired } wait;
    int side;
    explicit Receive(const Model& m) : side(*rc::gen::inRange(0, 2)) {
      RC_PRE(m.Usable(side));
      const bool idle = m.queue[1 - side].empty() && !m.closed[1 - side];
      wait = idle ? *rc::gen::element(kShort, kExpired) : kSettle;
    }
    // Shrinking replays a command in other states: it must still be the one it was made for.
    void checkPreconditions(const Model& m) const override {
      RC_PRE(m.Usable(side));
      RC_PRE((wait != kSettle) == (m.queue[1 - side].empty() && !m.closed[1 - side]));
    }
    void apply(Model& m) const override {
      auto& q = m.queue[1 - side];
      if (!q.empty()) q.pop_front();
    }
    void run(const Model& m, World& w) const override {
      const auto& q = m.queue[1 - side];
      Bytes got;
      if (wait == kExpired) {
        property::RequireThat(w.end[side]->Receive(got, Deadline::Expired()), property::Is<Errc::WouldBlock>, "receive (WouldBlock)");
      } else if (wait == kShort) {
        // Timeout; or WouldBlock, when the millisecond had already passed as the call began (a
        // loaded machine) and the receive was a probe.
        property::RequireThat(w.end[side]->Receive(got, Deadline::After(Millis(1))),
                              [](const Status& st) { return st.Is(Errc::Timeout) || st.Is(Errc::WouldBlock); },
                              "receive (Timeout)");
      } else if (!q.empty()) {
        // Sent before this receive began: it must arrive, and promptly.
        const auto begin = Clock::now();
        property::RequireOk(w.end[side]->Receive(got, Settle()), "receive");
        RC_ASSERT(property::SameBytes(got, q.front()));
        if (Clock::now() - begin > PromptBound()) {
          RC_FAIL("a message sent before the receive began took " + Seconds(Clock::now() - begin) +
                  " s to arrive: a lost wake-up?");
        }
      } else if (!m.killed) {
        property::RequireThat(w.end[side]->Receive(got, Settle()), property::Is<Errc::PeerClosed>, "receive (PeerClosed)");
      } else if (Property::Has(Cap::PeerDeathDetect)) {
        property::RequireThat(w.end[side]->Receive(got, Deadline::After(DeathBound())), property::Is<Errc::PeerClosed>,
                              "receive from a killed peer (PeerClosed within the death bound)");
      } else {
        // A transport that cannot tell a dead peer from a silent one: its deadline, or PeerClosed.
        property::RequireThat(w.end[side]->Receive(got, Deadline::After(ShortWait())),
                              [](const Status& st) { return st.Is(Errc::Timeout) || st.Is(Errc::PeerClosed); },
                              "receive from a killed peer (Timeout or PeerClosed)");
      }
      if (wait != kSettle || q.empty()) RC_ASSERT(got.empty());
    }
    void show(std::ostream& os) const override {
      os << "Receive(" << property::Side(side) << (wait == kExpired ? ", expired" : wait == kShort ? ", 1 ms" : "")
         << ")";
    }
  };

  // Messages to the closed end die with it; what it sent before still arrives.
  struct Close : Cmd {
    int side;
    explicit Close(const Model& m) : side(*rc::gen::inRange(0, 2)) { checkPreconditions(m); }
    void checkPreconditions(const Model& m) const override { RC_PRE(m.Open(side)); }
    void apply(Model& m) const override {
      m.closed[side] = true;
      m.queue[1 - side].clear();
    }
    void run(const Model&, World& w) const override {
      property::RequireOk(w.end[side]->Close(), "close");
      Bytes got;
      property::RequireThat(w.end[side]->Receive(got, Deadline::Expired()), property::Is<Errc::Closed>, "receive after close (Closed)");
      property::RequireThat(w.end[side]->Send(Bytes{}, Deadline::Expired()), property::Is<Errc::Closed>, "send after close (Closed)");
    }
    void show(std::ostream& os) const override { os << "Close(" << property::Side(side) << ")"; }
  };

  // Once the peer has closed (and sent nothing still unread), a Send may be taken by a buffer or
  // fail with PeerClosed; never another error, never a wait. A killed peer's survivor without
  // PeerDeathDetect may also wait out its deadline.
  struct SendToClosedPeer : Cmd {
    int side;
    explicit SendToClosedPeer(const Model& m) : side(*rc::gen::inRange(0, 2)) { checkPreconditions(m); }
    void checkPreconditions(const Model& m) const override {
      RC_PRE(m.Usable(side) && m.closed[1 - side] && m.queue[1 - side].empty());
    }
    void apply(Model&) const override {}
    void run(const Model& m, World& w) const override {
      const bool silent = m.killed && !Property::Has(Cap::PeerDeathDetect);
      property::RequireThat(w.end[side]->Send(MakeMessage(1, 100, 1), silent ? Deadline::After(ShortWait()) : Settle()),
                            [&](const Status& st) { return st.ok() || st.Is(Errc::PeerClosed) || (silent && st.Is(Errc::Timeout)); },
                            "send to a closed peer");
    }
    void show(std::ostream& os) const override { os << "SendToClosedPeer(" << property::Side(side) << ")"; }
  };

  // Both ends closed (those still open now), then a new connection: on the same listener, or on
  // a new one listening again at the same address.
  struct Reconnect : Cmd {
    bool relisten;
    explicit Reconnect(const Model& m) : relisten(kLimitedPeers || *rc::gen::arbitrary<bool>()) { checkPreconditions(m); }
    void checkPreconditions(const Model& m) const override {
      RC_PRE((m.closed[0] || m.closed[1] || m.broken) && !m.stopped);
    }
    void apply(Model& m) const override {
      m.queue[0].clear();
      m.queue[1].clear();
      m.closed = {};
      m.killed = false;
      m.broken = false;
    }
    void run(const Model& m, World& w) const override {
      for (int s = 0; s < 2; ++s) {
        if (!m.closed[s]) property::RequireOk(w.end[s]->Close(), "close");
      }
      property::RequireOk(w.Connect(relisten), "connect again");
    }
    void show(std::ostream& os) const override { os << "Reconnect(" << (relisten ? "listen again" : "same listener") << ")"; }
  };

  // A fault plan for every later call, replacing the one before (or none): faults the contract
  // requires to be invisible.
  struct InjectFault : Cmd {
    enum Kind { kNone, kEintr, kEagain, kShortIo, kEarlyWake } kind;
    uint64_t seed;
    explicit InjectFault(const Model& m) : seed(*rc::gen::arbitrary<uint64_t>()) {
      std::vector<Kind> kinds{kEintr, kEagain, kEarlyWake};
      if (NoPartialTransfer<T>().empty()) kinds.push_back(kShortIo);
      if (m.faults) kinds.push_back(kNone);
      kind = *rc::gen::elementOf(kinds);
      checkPreconditions(m);
    }
    // A peer process takes the plan too, and must be running to.
    void checkPreconditions(const Model& m) const override { RC_PRE(!m.stopped); }
    void apply(Model& m) const override { m.faults = kind != kNone; }
    fault::Plan Plan() const {
      fault::Plan plan;
      plan.seed = seed;
      switch (kind) {
        case kNone:
          break;
        case kEintr:
          plan.rules.push_back({kMessageCalls, fault::Kind::kErrno, EINTR, 0, 0.3, 0});
          break;
        case kEagain:
          plan.rules.push_back({fault::kRead | fault::kWrite | fault::kFutex | kQueueSend | fault::kMqReceive,
                                fault::Kind::kErrno, EAGAIN, 0, 0.3, 0});
          plan.rules.push_back({fault::kMsgrcv, fault::Kind::kErrno, ENOMSG, 0, 0.3, 0});
          break;
        case kShortIo:
          plan.rules.push_back({fault::kRead | fault::kWrite, fault::Kind::kShort, 0, 0, 0.5, 0});
          break;
        case kEarlyWake:
          plan.rules.push_back({fault::kWaits, fault::Kind::kWake, 0, 0, 0.3, 0});
          break;
      }
      return plan;
    }
    void run(const Model& m, World& w) const override {
      w.faults.reset();
      if (kind != kNone) w.faults.emplace(Plan());
      if (m.remote && !m.killed) property::RequireOk(w.Peer().Plan(kind == kNone ? "" : fault::FormatPlan(Plan())), "the peer's plan");
    }
    void show(std::ostream& os) const override {
      os << "InjectFault(" << (kind == kNone ? "none" : fault::FormatPlan(Plan())) << ")";
    }
  };

  // The peer process holding the client end is SIGKILLed: what it fully sent is still delivered,
  // what was sent to it is gone, and the Receive and SendToClosedPeer commands check the rest.
  struct KillPeer : Cmd {
    explicit KillPeer(const Model& m) { checkPreconditions(m); }
    void checkPreconditions(const Model& m) const override { RC_PRE(m.remote && !m.closed[0]); }
    void apply(Model& m) const override {
      m.closed[0] = true;
      m.killed = true;
      m.stopped = false;
      m.queue[1].clear();
    }
    void run(const Model&, World& w) const override { w.Peer().Kill(); }
    void show(std::ostream& os) const override { os << "KillPeer(client)"; }
  };

  // The peer process is stopped (SIGSTOP) until ContPeer: meanwhile what it sent still arrives,
  // the survivor's receives time out (a stopped peer is not a dead one) and its sends are taken.
  struct StopPeer : Cmd {
    explicit StopPeer(const Model& m) { checkPreconditions(m); }
    void checkPreconditions(const Model& m) const override { RC_PRE(m.remote && !m.closed[0] && !m.stopped); }
    void apply(Model& m) const override { m.stopped = true; }
    void run(const Model&, World& w) const override { property::RequireOk(w.Peer().Stop(), "SIGSTOP the peer"); }
    void show(std::ostream& os) const override { os << "StopPeer(client)"; }
  };
  struct ContPeer : Cmd {
    explicit ContPeer(const Model& m) { checkPreconditions(m); }
    void checkPreconditions(const Model& m) const override { RC_PRE(m.stopped); }
    void apply(Model& m) const override { m.stopped = false; }
    void run(const Model&, World& w) const override { property::RequireOk(w.Peer().Continue(), "SIGCONT the peer"); }
    void show(std::ostream& os) const override { os << "ContPeer(client)"; }
  };

  // New toxics on the wire (a proxied pair) for the bytes read from now on, replacing those
  // before: latency with jitter, slices of a few bytes or of a few kilobytes, or none. Each only
  // slows or splits the stream, which must change nothing else.
  struct Wire : Cmd {
    enum Kind { kClean, kTinySlices, kSlices, kLatency, kSlicesAndLatency } kind;
    toxics::Spec spec;
    explicit Wire(const Model& m)
        : kind(*rc::gen::element(kClean, kTinySlices, kSlices, kLatency, kSlicesAndLatency)) {
      checkPreconditions(m);
      spec.seed = *rc::gen::arbitrary<uint64_t>();
      toxics::Toxics t;
      if (kind == kTinySlices) t.slice = *rc::gen::inRange<std::size_t>(1, 9);
      if (kind == kSlices || kind == kSlicesAndLatency) t.slice = *rc::gen::inRange<std::size_t>(256, 4097);
      if (kind == kLatency || kind == kSlicesAndLatency) {
        t.latency = std::chrono::microseconds(*rc::gen::inRange(0, 2001));
        t.jitter = std::chrono::microseconds(*rc::gen::inRange(0, 1001));
      }
      spec.up = spec.down = t;
    }
    void checkPreconditions(const Model& m) const override { RC_PRE(m.proxied); }
    void apply(Model& m) const override { m.slow_wire = kind == kTinySlices; }
    void run(const Model&, World& w) const override {
      w.spec = spec;
      w.proxy->Update(spec);
    }
    void show(std::ostream& os) const override {
      os << "Wire(" << (kind == kClean ? std::string("clean") : toxics::FormatSpec(spec)) << ")";
    }
  };

  // The next message from `side` (its receiver waiting for nothing else), aimed at `at` bytes
  // into what it puts on the wire (header or payload: `at` is below the payload's size). On a
  // wire of tiny slices, within the first kTinyReach bytes: each slice is a buffer of its own in
  // the receiver's socket, and a few hundred fill it, so the proxy could not reach a point
  // further on until the receiver reads.
  static constexpr std::size_t kTinyReach = 128;
  struct Aimed : Cmd {
    int side;
    Bytes payload;
    std::size_t at;
    explicit Aimed(const Model& m) : side(*rc::gen::inRange(0, 2)) {
      RC_PRE(m.proxied && m.BothOpen() && m.Usable(0) && m.Usable(1) && m.queue[side].empty() && m.Room(side) > 0);
      payload = property::Payload(*rc::gen::inRange<std::size_t>(1, std::min(m.Room(side), m.max) + 1));
      at = *rc::gen::inRange<std::size_t>(0, m.slow_wire ? std::min(payload.size(), kTinyReach) : payload.size());
    }
    void checkPreconditions(const Model& m) const override {
      RC_PRE(m.proxied && m.BothOpen() && m.Usable(0) && m.Usable(1) && m.queue[side].empty() &&
             payload.size() <= m.Room(side) && (!m.slow_wire || at < kTinyReach));
    }
    toxics::Direction Dir() const { return side == 0 ? toxics::Direction::kUp : toxics::Direction::kDown; }
    void Show(std::ostream& os, const char* what) const {
      os << what << "(" << property::Side(side) << ", " << payload.size() << " bytes, at " << at << ")";
    }
  };

  // The message stalls on the wire `at` bytes in: the receive times out holding part of it, and
  // once the wire moves again the same message arrives whole (a receiver that dropped the part
  // it had read loses the message or reads garbage).
  struct Stall : Aimed {
    using Aimed::Aimed;
    void apply(Model&) const override {}
    void run(const Model&, World& w) const override {
      const int side = this->side;
      const uint64_t stalls = w.proxy->stats().stalls;
      const uint64_t taken = w.proxy->Taken(this->Dir());
      w.proxy->ArmEvent(this->Dir(), this->at, toxics::Event::kStall);
      property::RequireOk(w.end[side]->Send(this->payload, Settle()), "send");
      if (!w.proxy->WaitFor([&](const toxics::Stats& s) { return s.stalls > stalls; }, Settle())) {
        const auto st = w.proxy->stats();
        RC_FAIL("the stall never began (armed " + std::to_string(this->at) + " bytes on from byte " +
                std::to_string(taken) + "; taken now " + std::to_string(w.proxy->Taken(this->Dir())) + ", forwarded " +
                std::to_string(st.forwarded[static_cast<int>(this->Dir())]) + ")" + w.Log());
      }
      Bytes got;
      const Status stalled = w.end[1 - side]->Receive(got, Deadline::After(ShortWait()));
      property::RequireThat(stalled, property::Is<Errc::Timeout>,
                            "receive while the message is stalled on the wire (Timeout)" + w.Log());
      RC_ASSERT(got.empty());
      w.proxy->Resume();
      const Status moved = w.end[1 - side]->Receive(got, Settle());
      property::RequireOk(moved, "receive once the wire moves again" + w.Log());
      if (!property::SameBytes(got, this->payload)) {
        RC_FAIL("the message stalled " + std::to_string(this->at) + " bytes in arrived as " +
                std::to_string(got.size()) + " other bytes: the part read before the timeout was lost or doubled");
      }
    }
    void show(std::ostream& os) const override { this->Show(os, "Stall"); }
  };

  // One bit of the message flips on the wire `at` bytes in: the receiver gets Corrupt and never
  // the message. The connection is then done with: only closing and connecting again are left.
  struct Flip : Aimed {
    using Aimed::Aimed;
    void apply(Model& m) const override { m.broken = true; }
    void run(const Model&, World& w) const override {
      const int side = this->side;
      const auto dir = static_cast<std::size_t>(this->Dir());
      const uint64_t flips = w.proxy->stats().flips[dir];
      w.proxy->ArmEvent(this->Dir(), this->at, toxics::Event::kFlip);
      property::RequireOk(w.end[side]->Send(this->payload, Settle()), "send");
      Bytes got;
      const Status st = w.end[1 - side]->Receive(got, Settle());
      property::RequireThat(st, property::Is<Errc::Corrupt>, "receive of a message damaged on the wire (Corrupt)" + w.Log());
      if (!got.empty()) RC_FAIL("a damaged message reached the caller" + w.Log());
      RC_ASSERT(w.proxy->stats().flips[dir] == flips + 1);
    }
    void show(std::ostream& os) const override { this->Show(os, "Flip"); }
  };

  // The commands this transport can take: those of every transport, and those of each kind it
  // has (CheckModel prints a line for each kind it lacks).
  template <class... C>
  struct List {};
  template <class... A, class... B, class... C, class... D>
  static auto Exec(List<A...>, List<B...>, List<C...>, List<D...>) {
    return rc::state::gen::execOneOfWithArgs<A..., B..., C..., D...>();
  }
  static auto Commands() {
    using Every = List<Send, Send, Send, Receive, Receive, Receive, Close, SendToClosedPeer, Reconnect, Exchange,
                       SendOversize>;
    using Faults = std::conditional_t<kFaultable, List<InjectFault>, List<>>;
    using Peers = std::conditional_t<kCrossProcess, List<KillPeer, StopPeer, ContPeer>, List<>>;
    using Wires = std::conditional_t<kAimedToxics, List<Wire, Stall, Flip>,
                                     std::conditional_t<kProxyable, List<Wire>, List<>>>;
    return Exec(Every{}, Faults{}, Peers{}, Wires{});
  }

  // Runs the model: the case's seed and 200 sequences (IPCH_PROPERTY_SEQUENCES; fewer under a
  // sanitizer) unless RC_PARAMS says otherwise. On failure: the shrunk command list, then a line
  // that replays it.
  void CheckModel() {
    if constexpr (!kFaultable) {
      std::printf("[ipch] %s: UNSUPPORTED: %s has no interposed I/O (SyscallIo, QueueIo or SharedMemory): no InjectFault\n",
                  std::string(T::kName).c_str(), std::string(T::kName).c_str());
    }
    if constexpr (!kCrossProcess) {
      std::printf("[ipch] %s: UNSUPPORTED: %s lacks CrossProcess: no KillPeer, StopPeer or ContPeer\n",
                  std::string(T::kName).c_str(), std::string(T::kName).c_str());
    }
    // IPCH_PROPERTY_PEER_PROCESS=0 keeps both ends here (a run that looks at in-process faults
    // only, at a fraction of the cost of starting a peer process per sequence).
    const char* peers = std::getenv("IPCH_PROPERTY_PEER_PROCESS");
    const bool peer_process = kCrossProcess && !(peers != nullptr && std::string(peers) == "0");
    if constexpr (!kProxyable) {
      std::printf("[ipch] %s: UNSUPPORTED: %s has no kSocketAddress hook for the toxics proxy to stand at: no Wire, "
                  "Stall or Flip\n",
                  std::string(T::kName).c_str(), std::string(T::kName).c_str());
    } else if constexpr (!kAimedToxics) {
      std::printf("[ipch] %s: %s reconnects (a Send waits for its answer; no checksum covers its requests' headers): "
                  "no Stall or Flip (the Fault group's toxics cases judge those)\n",
                  std::string(T::kName).c_str(), std::string(T::kName).c_str());
    }
    if (kCrossProcess && !peer_process) {
      std::printf("[ipch] %s: no peer process (IPCH_PROPERTY_PEER_PROCESS=0): no KillPeer, StopPeer or ContPeer\n",
                  std::string(T::kName).c_str());
    }
    const char* rc_params = std::getenv("RC_PARAMS");
    const std::string given = rc_params ? rc_params : "";
    const char* n = std::getenv("IPCH_PROPERTY_SEQUENCES");
    // 200 by default; under a sanitizer, whose runs are that much slower and which looks for
    // memory errors and races rather than for rare sequences, 100 / its slowdown (at least 20).
    const int slowdown = SlowdownFactor();
    const int sequences = n && std::atoi(n) > 0 ? std::atoi(n) : slowdown == 1 ? 200 : std::max(20, 100 / slowdown);
    if (given.empty()) {
      // rapidcheck reads (and prints) its configuration once per process, at its first use:
      // let it read this case's, so that the seed it prints is the one used.
      const std::string mine = "seed=" + std::to_string(this->Seed()) + " max_success=" + std::to_string(sequences);
      ::setenv("RC_PARAMS", mine.c_str(), 0);
    }
    rc::detail::TestParams params = rc::detail::configuration().testParams;
    if (given.find("seed=") == std::string::npos) params.seed = this->Seed();
    if (given.find("max_success=") == std::string::npos) params.maxSuccess = sequences;
    std::printf("[ipch] %s: property seed=%llu, %d sequences\n", std::string(T::kName).c_str(),
                static_cast<unsigned long long>(params.seed), params.maxSuccess);
    const std::string prefix = "ipch-" + std::to_string(::getpid()) + "-";
    const std::string address = this->address_;
    const auto& scratch = ::ipch::testing::Current().scratch_dir;
    property::QuietListener listener;
    rc::detail::TestMetadata metadata;
    metadata.id = metadata.description = std::string(T::kName) + " follows the model";
    // What the first failing sequence said: rapidcheck describes a failure by running its shrunk
    // sequence once more, which for a failure that depends on timing may pass ("no exceptions
    // thrown"), and the reason would be lost.
    std::string first_failure;
    const auto result = rc::detail::checkTestable(
        [&] {
          try {
            RunSequence(prefix, address, scratch, peer_process);
          } catch (const rc::detail::CaseResult& r) {
            if (r.type == rc::detail::CaseResult::Type::Failure && first_failure.empty()) first_failure = r.description;
            throw;
          }
        },
        metadata, params, listener);
    if (result.template is<rc::detail::SuccessResult>()) return;
    std::ostringstream os;
    rc::detail::printResultMessage(result, os);
    if (os.str().find("no exceptions thrown") != std::string::npos && !first_failure.empty()) {
      os << "\nthe shrunk sequence passed when run again, so its failure depends on timing; the first failing "
            "sequence said: "
         << first_failure;
    }
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    std::error_code ec;
    const auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
    ADD_FAILURE() << os.str() << "\nreplay: RC_PARAMS=\"seed=" << params.seed << " max_success=" << params.maxSuccess
                  << "\" " << exe.string() << " --gtest_filter='" << info->test_suite_name() << "." << info->name()
                  << "'";
  }

  // One sequence: a new pair, the commands, then everything closed and audited.
  void RunSequence(const std::string& prefix, const std::string& address, const std::filesystem::path& scratch,
                   bool peer_process) {
    const audit::Snapshot before = audit::Take(prefix);
    World w;
    w.address = address;
    // Shown with the commands of a failure, and shrunk towards the simpler pair.
    if (peer_process) {
      w.remote = *rc::gen::element<std::string>("the client end here", "the client end in a peer process") !=
                 "the client end here";
    }
    if (kProxyable) {
      w.proxied = *rc::gen::element<std::string>("joined directly", "joined through the toxics proxy") !=
                  "joined directly";
      w.spec.seed = this->Seed();
    }
    property::RequireOk(w.Connect(true), "connect");
    Model initial;
    initial.remote = w.remote;
    initial.proxied = w.proxied;
    initial.max = w.end[0]->max_message_size();
    rc::state::check(initial, w, Commands());
    w.CloseAll();
    const auto settled = audit::AwaitSettled(before, prefix, scratch);
    std::string leaks;
    for (const auto& l : settled.leaks) leaks += " " + l;
    audit::CleanUp(before, settled.after);
    if (!leaks.empty()) RC_FAIL("the audit found, after the sequence:" + leaks);
  }
};
TYPED_TEST_SUITE_P(Property);

TYPED_TEST_P(Property, StatefulModel) { this->CheckModel(); }

REGISTER_TYPED_TEST_SUITE_P(Property, StatefulModel);

}  // namespace ipch::conformance
