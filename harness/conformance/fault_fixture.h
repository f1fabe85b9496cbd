// The Fault group's fixture, shared by its four parts: an echo exchange under a fault plan, plan
// helpers, the stream toxics proxy between the ends, and IPCH_REQUIRE_PROXY.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <initializer_list>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "fixture.h"
#include "hooks.h"
#include "ipch/fault.h"
#include "ipch/result.h"
#include "ipch/testing.h"
#include "ipch/toxics.h"
#include "ipch/transport.h"

namespace ipch::conformance {

// `auto p = this->ThroughProxy(text)`, asserted; UNSUPPORTED, with the reason, where no relay
// can stand between the ends (a byte stream with neither a socket address nor pipes).
#define IPCH_THROUGH_PROXY(p, text)                                                                  \
  auto p = this->ThroughProxy(text);                                                                 \
  if (!this->no_relay_.empty()) {                                                                    \
    GTEST_SKIP() << "UNSUPPORTED: " << this->no_relay_;                                              \
  }                                                                                                  \
  IPCH_ASSERT_OK(p)

// A Send (or any call giving a Status) on a thread of its own, joined by get() or at the end of
// scope: for a client whose Send waits for its peer's answer (an HTTP request) while the test
// looks at the other end. Joined, not waited through a future: the harness's own waits stay out
// of the transport's census.
class InBackground {
 public:
  template <class F>
  explicit InBackground(F f) : thread_([this, f = std::move(f)]() mutable { result_ = f(); }) {}
  ~InBackground() {
    if (thread_.joinable()) thread_.join();
  }
  InBackground(const InBackground&) = delete;
  InBackground& operator=(const InBackground&) = delete;
  Status get() {
    if (thread_.joinable()) thread_.join();
    return result_;
  }

 private:
  Status result_;
  std::thread thread_;
};

// fault: syscall faults injected under the transport. Retryable faults must be invisible;
// fatal ones must surface as the precise error. Armed before the peer forks, so both ends
// see faults. Each case checks that faults were really injected (no vacuous pass).
template <class T>
class Fault : public TransportTest<T> {
 protected:
  // Runs an echo exchange of varied sizes (up to 256 KiB, beyond socket buffers) under `plan`.
  //
  // A shared-memory ring waits only when its peer is slower than its spinning, which a fast
  // exchange may never be: for one, the plan's first matching call is always faulted and the
  // exchange begins with a receive on the idle connection (the echo peer sends nothing first),
  // whose waits pass the spinning and must end in Timeout at its deadline, faults or not.
  void EchoUnder(fault::Plan plan) {
    const bool ring = !T::kCaps.Has(Cap::SyscallIo) && !T::kCaps.Has(Cap::QueueIo);
    if (ring && !plan.rules.empty()) {
      fault::Rule first = plan.rules.front();
      first.every_nth = 1;
      first.max_fires = 1;
      plan.rules.insert(plan.rules.begin(), first);
    }
    auto l = T::Listen(this->address_);
    IPCH_ASSERT_OK(l);
    constexpr int kCount = 60;
    uint64_t injected = 0;
    {
      fault::ScopedPlan armed(plan);
      auto peer = this->StartClient(l->address(), EchoPeer(kCount));
      IPCH_ASSERT_OK(peer);
      auto s = l->Accept(Settle());
      IPCH_ASSERT_OK(s);
      if (ring) {
        Bytes idle;
        IPCH_ASSERT_ERRC(s->Receive(idle, Deadline::After(ShortWait())), Timeout)
            << "a receive on an idle connection; faults: " << FaultLog();
      }
      std::mt19937_64 rng(plan.seed);
      for (int i = 0; i < kCount; ++i) {
        std::size_t n = std::min<std::size_t>(i % 5 == 0 ? rng() % (256 * 1024) : rng() % 2000, s->max_message_size());
        ASSERT_TRUE(RoundTripVia(*s, MakeMessage(i, n, plan.seed))) << "message " << i << "; faults: " << FaultLog();
      }
      IPCH_ASSERT_PEER_OK(*peer);
      injected = fault::InjectedInTree();  // the peer's faults count too: its end is the transport's
    }
    // A shared-memory transport may wait where no interposer reaches (a process-shared pthread
    // condition variable waits in libc's own futex calls): then nothing here applies to it.
    // One with syscall or queue I/O always makes calls a plan matches.
    if (injected == 0 && ring) {
      GTEST_SKIP() << "UNSUPPORTED: " << T::kName << " made no call this plan faults (" << fault::FormatPlan(plan)
                   << "): its waits are not interposable futex or poll calls";
    }
    // A transport over sockets that keep message boundaries makes byte I/O calls, but none the
    // kernel could cut short: the engine declines the short transfers (and counts them).
    if (injected == 0 && fault::DeclinedShortTransfers() > 0) {
      GTEST_SKIP() << "N/A: " << T::kName
                   << ": its sockets keep message boundaries (SOCK_SEQPACKET or SOCK_DGRAM): the kernel sends and "
                      "delivers each message whole, never part of one";
    }
    EXPECT_GT(injected, 0u) << "no fault was injected: the fault engine is not in the call path";
  }

  // Whether any call of an in-process exchange (a round trip each way) is one `plan` could fault:
  // its rules, made never to fire, count the calls they match (a "would block" errno matches only
  // calls that do not wait).
  bool EchoInjects(fault::Plan plan) {
    for (auto& r : plan.rules) r.probability = 0.0, r.every_nth = 0;
    auto p = this->Connected();
    if (!p.ok()) return true;  // let the echo report it
    fault::ScopedPlan counting(plan);
    (void)RoundTrip(p->client, p->server, MakeMessage(1, 100, this->Seed()));
    (void)RoundTrip(p->server, p->client, MakeMessage(2, 100, this->Seed()));
    uint64_t matched = 0;
    for (std::size_t i = 0; i < plan.rules.size(); ++i) matched += fault::MatchedCalls(i);
    return matched > 0;
  }

  // With Cap::AsyncIo the transport's own threads do the I/O, so the error of a fault injected
  // under the watched call may come back from a later one: while `first` (the watched call's
  // result) is OK or a Timeout, `again` (the same kind of call) is repeated until it reports
  // something else or DeathBound has passed. Without AsyncIo the watched call must report it.
  template <class F>
  static Status Surfaced(Status first, F again) {
    if (!T::kCaps.Has(Cap::AsyncIo)) return first;
    const auto until = Deadline::After(DeathBound());
    while ((first.ok() || first.Is(Errc::Timeout)) && !until.expired()) first = again();
    return first;
  }
  // Receives under a read fault armed after the peer sent "x": without AsyncIo the fault hits
  // the receive's own read, whose error comes back; with it the transport's reader may have
  // taken "x" before, which may then arrive (once, intact) before the error does. So may it on
  // a socket that keeps what was queued when its peer went (a Unix socket reports the reset
  // once, ahead of the messages still queued): a transport that reads on hands "x" over, and
  // then the next receive must report the end.
  template <class C>
  static Status ReceiveUnderFault(C& c) {
    Bytes got;
    int delivered = 0;
    auto receive = [&]() -> Status {
      Status st = c.Receive(got, T::kCaps.Has(Cap::AsyncIo) ? Deadline::After(ShortWait()) : Settle());
      if (st.ok() && (got != Bytes{std::byte{'x'}} || ++delivered > 1)) {
        return MakeError(Errc::Corrupt, "received a message other than the x sent, or x twice");
      }
      return st;
    };
    Status st = Surfaced(receive(), receive);
    return st.ok() && fault::InjectedCount() > 0 ? Surfaced(receive(), receive) : st;
  }
  // The client sends "x" and the server receives under `plan` (a read fault). Without AsyncIo
  // the plan is armed after the send, so that the fault hits the receive's own read; with it,
  // before, so that the transport's reader thread reads "x" under it (armed after, that thread
  // may have read it already, and nothing would be faulted).
  template <class P>
  static Status ReceiveUnderReadFault(P& p, const fault::Plan& plan) {
    std::optional<fault::ScopedPlan> armed;
    if (T::kCaps.Has(Cap::AsyncIo)) armed.emplace(plan);
    IPCH_RETURN_IF_ERROR(p.client.Send(AsBytes("x"), Settle()));
    if (!armed) armed.emplace(plan);
    return ReceiveUnderFault(p.server);
  }
  // What a failing Surfaced check adds to its message.
  static const char* AsyncNote() {
    return T::kCaps.Has(Cap::AsyncIo) ? " (AsyncIo: the error may come from a later call within 2 s, scaled; none did)"
                                      : "";
  }

  static fault::Plan PlanOf(uint64_t ops, fault::Kind kind, int err, double p) {
    fault::Plan plan;
    plan.seed = ::ipch::testing::Current().seed;
    plan.rules.push_back({ops, kind, err, 0, p, 0});
    return plan;
  }
  static fault::Plan NthOf(uint64_t ops, int err, uint32_t nth) {
    fault::Plan plan;
    plan.seed = ::ipch::testing::Current().seed;
    plan.rules.push_back({ops, fault::Kind::kErrno, err, nth, 0.0, 1});
    return plan;
  }
  static std::string FaultLog() {
    std::string s;
    for (const auto& e : fault::InjectedLog()) s += e + "; ";
    return s;
  }

  // A listener, a stream toxics proxy in front of it, and a client connected through the proxy;
  // or, for a byte stream without a socket address, a client and a server whose pipes the proxy
  // is spliced into.
  struct Proxied {
    typename TransportTest<T>::Lis listener;
    std::shared_ptr<toxics::Proxy> proxy;
    typename TransportTest<T>::Conn client, server;
    std::string Describe() const {
      std::string s = "proxy log:";
      for (const auto& l : proxy->Log()) s += "\n  " + l;
      return s;
    }
  };
  // On failure, `no_relay_` says why when no relay could stand between the ends at all (the
  // case is then UNSUPPORTED: IPCH_THROUGH_PROXY); any other error is the transport's.
  Result<Proxied> ThroughProxy(const std::string& toxics_text) {
    toxics::Spec spec;
    std::string why;
    if (!toxics_text.empty() && !toxics::ParseSpec(toxics_text, &spec, &why)) {
      return MakeError(Errc::InvalidArgument, why);  // "": no toxics (a case arms events itself)
    }
    spec.seed = this->Seed();
    auto l = T::Listen(this->address_);
    if (!l.ok()) return std::move(l).error();
    if constexpr (kHasSocketAddress<T>) {
      auto proxy = toxics::Proxy::Start(toxics::Proxy::FrontFor(l->address()), l->address(), spec);
      if (!proxy.ok()) return std::move(proxy).error();
      auto c = T::Connect((*proxy)->address(), Settle());
      if (!c.ok()) return std::move(c).error();
      auto s = l->Accept(Settle());
      if (!s.ok()) return std::move(s).error();
      last_proxy_ = std::move(*proxy);
      return Proxied{std::move(*l), last_proxy_, std::move(*c), std::move(*s)};
    } else {
      const std::vector<int> before = toxics::Proxy::PipeWriteEnds();
      auto c = T::Connect(l->address(), Settle());
      if (!c.ok()) return std::move(c).error();
      auto s = l->Accept(Settle());
      if (!s.ok()) return std::move(s).error();
      auto ends = SplicePoints(before, *c, *s);
      if (!ends.ok()) return std::move(ends).error();
      auto proxy = toxics::Proxy::Splice(ends->first, ends->second, spec);
      if (!proxy.ok()) return std::move(proxy).error();
      last_proxy_ = std::move(*proxy);
      return Proxied{std::move(*l), last_proxy_, std::move(*c), std::move(*s)};
    }
  }
  // The pipes' write ends a new connection opened (those not open `before`) that its client and
  // its server write to: exactly two, told apart by a message from the client, which waits in
  // one of them until the server takes it.
  Result<std::pair<int, int>> SplicePoints(const std::vector<int>& before, typename TransportTest<T>::Conn& client,
                                           typename TransportTest<T>::Conn& server) {
    std::vector<int> ends;
    for (int fd : toxics::Proxy::PipeWriteEnds()) {
      if (!std::binary_search(before.begin(), before.end(), fd)) ends.push_back(fd);
    }
    auto none = [&](const std::string& why) {
      no_relay_ = std::string(T::kName) + ": no kSocketAddress hook for the stream toxics proxy to stand in front of, and " + why;
      return MakeError(Errc::InvalidArgument, no_relay_);
    };
    if (ends.size() != 2) {
      return none("the connection did not open one pipe each way to splice it into (new write-only pipe ends: " +
                  std::to_string(ends.size()) + ")");
    }
    const Bytes probe = MakeMessage(0, 64, this->Seed());
    if (auto st = client.Send(probe, Settle()); !st.ok()) return std::move(st).error();
    const bool in[2] = {toxics::Proxy::Buffered(ends[0]) > 0, toxics::Proxy::Buffered(ends[1]) > 0};
    Bytes got;
    if (auto st = server.Receive(got, Settle()); !st.ok()) return std::move(st).error();
    if (got != probe) return MakeError(Errc::Corrupt, "the probe message before splicing arrived damaged");
    if (in[0] == in[1]) return none("a message from the client waited in neither or both of its pipes");
    return in[0] ? std::pair{ends[0], ends[1]} : std::pair{ends[1], ends[0]};
  }
  std::string no_relay_;
  // With IPCH_PRINT_FAULTS set, prints what the test's proxy did, one "[ipch fault]" line per
  // event: running a case's REPLAY line twice gives the same lines (the self-test checks it).
  void TearDown() override {
    TransportTest<T>::TearDown();
    if (!last_proxy_) return;
    if (std::getenv("IPCH_PRINT_FAULTS")) {
      for (const auto& line : last_proxy_->Log()) std::printf("[ipch fault] %s\n", line.c_str());
      std::fflush(stdout);
    }
    last_proxy_->Stop();
    last_proxy_.reset();
  }
  std::shared_ptr<toxics::Proxy> last_proxy_;
  // `count` messages each way through `toxics_text`, sizes up to `max_size`: all intact, in order.
  void ExchangeThrough(const std::string& toxics_text, int count, std::size_t max_size) {
    SCOPED_TRACE("toxics " + toxics_text);
    IPCH_THROUGH_PROXY(p, toxics_text);
    std::mt19937_64 rng(this->Seed());
    for (int i = 0; i < count; ++i) {
      const std::size_t n = std::min<std::size_t>(rng() % (max_size + 1), Max(p->client));
      const Bytes msg = MakeMessage(static_cast<uint64_t>(i), n, this->Seed());
      ASSERT_TRUE(RoundTrip(p->client, p->server, msg, Path::kRelayed)) << "message " << i << " up; " << p->Describe();
      ASSERT_TRUE(RoundTrip(p->server, p->client, msg, Path::kRelayed))
          << "message " << i << " down; " << p->Describe();
    }
    const auto st = p->proxy->stats();
    EXPECT_GT(st.forwarded[0], 0u);
    EXPECT_GT(st.forwarded[1], 0u);
  }
  // What the transport puts on the wire besides a message's payload (a frame's header, an HTTP
  // request's head), measured: `msg` goes from client to server through the proxy, and the bytes
  // the proxy took for it, less its size, are the overhead. Exact for a stream's frames; for
  // HTTP within a few bytes (numbers in the head vary in length), hence kOverheadSlack.
  uint64_t WireOverhead(Proxied& p, const Bytes& msg) {
    const uint64_t before = p.proxy->Taken(toxics::Direction::kUp);
    EXPECT_TRUE(RoundTrip(p.client, p.server, msg, Path::kRelayed)) << p.Describe();
    const uint64_t took = p.proxy->Taken(toxics::Direction::kUp) - before;
    EXPECT_GE(took, msg.size()) << "the message went over the wire in fewer bytes than its payload";
    return took > msg.size() ? took - msg.size() : 0;
  }
  static constexpr uint64_t kOverheadSlack = 16;

  // A reconnecting transport's outcome for `msg`, whose bytes on the wire were cut or damaged, or
  // whose connection underneath failed, while `sent` was its Send's result: either the Send
  // succeeded (the transport got it through on a new connection) and `msg` arrives exactly once,
  // intact, with the connection working on; or the Send failed with one of `allowed`, and once
  // the sender closes (as an application would), the receiver gets `msg` at most once, intact (a
  // send that timed out or lost its answer may have got through), then PeerClosed. Never a torn
  // or doubled message.
  void ExpectOnceOrRefused(typename TransportTest<T>::Conn& client, typename TransportTest<T>::Conn& server,
                           const Bytes& msg, const Status& sent, std::initializer_list<Errc> allowed,
                           const std::string& context = "") {
    Bytes got;
    if (sent.ok()) {
      IPCH_ASSERT_OK(server.Receive(got, Settle())) << "the send succeeded; " << context;
      EXPECT_EQ(got, msg) << "the message the send got through arrived damaged";
      IPCH_EXPECT_ERRC(server.Receive(got, Deadline::After(ShortWait())), Timeout) << "a message arrived twice";
      EXPECT_TRUE(RoundTrip(client, server, MakeMessage(9, 100, this->Seed()), Path::kRelayed))
          << "the connection must work on after a recovered send";
      EXPECT_TRUE(RoundTrip(server, client, MakeMessage(10, 100, this->Seed()), Path::kRelayed))
          << "the connection must work on after a recovered send";
      return;
    }
    EXPECT_TRUE(std::any_of(allowed.begin(), allowed.end(), [&](Errc e) { return sent.Is(e); }))
        << "the send failed with " << sent.error().ToString() << "; " << context;
    IPCH_EXPECT_OK(client.Close());
    Status st = server.Receive(got, Settle());
    if (st.ok()) {
      EXPECT_EQ(got, msg) << "a damaged message reached the caller";
      st = server.Receive(got, Settle());
    }
    IPCH_EXPECT_ERRC(st, PeerClosed) << "after the sender closed; " << context;
  }
  void ExpectOnceOrRefused(Proxied& p, const Bytes& msg, const Status& sent, std::initializer_list<Errc> allowed) {
    ExpectOnceOrRefused(p.client, p.server, msg, sent, allowed, p.Describe());
  }

  // For a transport that reconnects: `plan` breaks a connection underneath (a reset, a broken
  // pipe, a hard read error) while the client sends one message, armed before the send so that
  // the transport's own threads meet it too. The message arrives once, or the send is refused
  // with PeerClosed and the message arrives at most once (ExpectOnceOrRefused).
  void SendOverABrokenConnection(const fault::Plan& plan) {
    IPCH_CONNECTED(p);
    const Bytes msg = MakeMessage(1, 100, this->Seed());
    Status sent;
    {
      fault::ScopedPlan armed(plan);
      sent = p.client.Send(msg, Settle());
      ASSERT_GT(fault::InjectedInTree(), 0u) << "the plan (" << fault::FormatPlan(plan) << ") injected nothing";
    }
    ExpectOnceOrRefused(p.client, p.server, msg, sent, {Errc::PeerClosed}, "faults: " + FaultLog());
  }

  // The connection is cut (`event`: reset or close) inside the third message: the ones before it
  // arrive intact, then PeerClosed, and it stays so; the sender learns too. The first message
  // measures the wire's overhead, the second (as long) goes before the cut, which lands at a
  // seeded point of the third's bytes on the wire, header or payload. A reconnecting transport
  // may instead get the third through on a new connection (ExpectOnceOrRefused); for one, a
  // second round cuts the answer to the third before its first byte (a lost answer: the request
  // was taken, and one sent again must not deliver it twice).
  void CutInThirdMessage(toxics::Event event, const std::size_t (&sizes)[3], uint64_t toxics::Stats::*counter) {
    CutInThirdMessage(event, sizes, counter, toxics::Direction::kUp);
    if (this->Has(Cap::Reconnects) && !::testing::Test::HasFailure()) {
      TearDownProxy();
      CutInThirdMessage(event, sizes, counter, toxics::Direction::kDown);
    }
  }
  void CutInThirdMessage(toxics::Event event, const std::size_t (&sizes)[3], uint64_t toxics::Stats::*counter,
                         toxics::Direction dir) {
    Bytes msgs[3];
    for (int i = 0; i < 3; ++i) msgs[i] = MakeMessage(static_cast<uint64_t>(i), sizes[i], this->Seed());
    IPCH_THROUGH_PROXY(p, "");
    const bool reconnects = this->Has(Cap::Reconnects);
    const bool up = dir == toxics::Direction::kUp;
    const uint64_t overhead = WireOverhead(*p, msgs[0]);
    if (::testing::Test::HasFatalFailure()) return;
    uint64_t k = 0;
    if (up) {
      const uint64_t from = reconnects ? kOverheadSlack : 0;  // past the second's last byte, however long its head
      k = from + this->Seed() % (overhead + sizes[2] - from);
      p->proxy->ArmEvent(dir, overhead + sizes[1] + k, event);
    }
    IPCH_ASSERT_OK(p->client.Send(msgs[1], Settle()));
    if (!up) p->proxy->ArmEvent(dir, 0, event);  // the answer to the third request, before its first byte
    SCOPED_TRACE("cut " + std::to_string(k) + " bytes into the third message's " +
                 (up ? "bytes on the wire (overhead " + std::to_string(overhead) + " bytes)" : std::string("answer")));
    InBackground sending([&] { return p->client.Send(msgs[2], Settle()); });
    Bytes got;
    IPCH_ASSERT_OK(p->server.Receive(got, Settle())) << p->Describe();
    EXPECT_EQ(got, msgs[1]);
    const Status sent = sending.get();
    if (reconnects) {
      ExpectOnceOrRefused(*p, msgs[2], sent, {Errc::PeerClosed, Errc::Timeout});
    } else {
      got.clear();
      IPCH_EXPECT_ERRC(p->server.Receive(got, Settle()), PeerClosed) << p->Describe();
      EXPECT_TRUE(got.empty()) << "a torn frame reached the caller";
      IPCH_EXPECT_ERRC(p->server.Receive(got, Settle()), PeerClosed) << "PeerClosed must stay";
      IPCH_EXPECT_ERRC(p->client.Receive(got, Settle()), PeerClosed) << "the sender's side is cut too";
    }
    EXPECT_EQ(p->proxy->stats().*counter, 1u) << p->Describe();
  }
  void TearDownProxy() {
    if (last_proxy_) last_proxy_->Stop();
    last_proxy_.reset();
  }
  using TransportTest<T>::Max;
};
TYPED_TEST_SUITE_P(Fault);

// The toxics proxy stands between the ends of any transport whose address is a socket address
// that Connect accepts (a byte stream's, or HTTP's), and is spliced into the pipes of a byte
// stream without one (a FIFO pair). Between the ends of a ring or a queue there is no byte stream
// at all: N/A (what corresponds there, damaged records and messages, a peer stopped or killed
// mid-message, is Security's and PeerDeath's).
#define IPCH_REQUIRE_PROXY()                                                                                       \
  do {                                                                                                             \
    if (!kHasSocketAddress<TypeParam> && !TypeParam::kCaps.Has(::ipch::Cap::Stream) &&                            \
        (TypeParam::kCaps.Has(::ipch::Cap::SharedMemory) || TypeParam::kCaps.Has(::ipch::Cap::QueueIo))) {        \
      IPCH_NOT_APPLICABLE("no byte stream runs between the ends (a ring or a queue moves whole messages) for a " \
                          "relay to slice, slow, cut or flip; damaged records and messages are Security's, a peer " \
                          "stopped or killed mid-message PeerDeath's");                                            \
    }                                                                                                              \
    IPCH_REQUIRE_HOOK(kHasSocketAddress<TypeParam> || TypeParam::kCaps.Has(::ipch::Cap::Stream),                  \
                      "kSocketAddress (stream toxics proxy)");                                                     \
  } while (0)

}  // namespace ipch::conformance
