// The Fault group's fixture, shared by its four parts: an echo exchange under a fault plan, plan
// helpers, the stream toxics proxy between the ends, and IPCH_REQUIRE_PROXY.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <utility>

#include "fixture.h"
#include "hooks.h"
#include "ipch/fault.h"
#include "ipch/result.h"
#include "ipch/testing.h"
#include "ipch/toxics.h"
#include "ipch/transport.h"

namespace ipch::conformance {

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
    EXPECT_GT(injected, 0u) << "no fault was injected: the fault engine is not in the call path";
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
  // taken "x" before, which may then arrive (once, intact) before the error does.
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
    return Surfaced(receive(), receive);
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

  // A listener, a stream toxics proxy in front of it, and a client connected through the proxy.
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
  Result<Proxied> ThroughProxy(const std::string& toxics_text) {
    toxics::Spec spec;
    std::string why;
    if (!toxics::ParseSpec(toxics_text, &spec, &why)) return MakeError(Errc::InvalidArgument, why);
    spec.seed = this->Seed();
    auto l = T::Listen(this->address_);
    if (!l.ok()) return std::move(l).error();
    auto proxy = toxics::Proxy::Start(toxics::Proxy::FrontFor(l->address()), l->address(), spec);
    if (!proxy.ok()) return std::move(proxy).error();
    auto c = T::Connect((*proxy)->address(), Settle());
    if (!c.ok()) return std::move(c).error();
    auto s = l->Accept(Settle());
    if (!s.ok()) return std::move(s).error();
    last_proxy_ = std::move(*proxy);
    return Proxied{std::move(*l), last_proxy_, std::move(*c), std::move(*s)};
  }
  // With IPCH_PRINT_FAULTS set, prints what the test's proxy did, one "[ipch fault]" line per
  // event: running a case's REPLAY line twice gives the same lines (the self-test checks it).
  void TearDown() override {
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
    auto p = ThroughProxy(toxics_text);
    IPCH_ASSERT_OK(p);
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
  // The connection is cut by `toxic` (reset_after / close_after) `into` bytes into the third frame:
  // the two before it arrive intact, then PeerClosed, and it stays so; the sender learns too.
  void CutInThirdFrame(const std::string& toxic, const std::size_t (&sizes)[3], uint64_t into,
                       uint64_t toxics::Stats::*counter) {
    Bytes msgs[3];
    uint64_t cut = into;
    for (int i = 0; i < 3; ++i) {
      msgs[i] = MakeMessage(static_cast<uint64_t>(i), sizes[i], this->Seed());
      if (i < 2) cut += FrameOverhead<T>() + sizes[i];
    }
    auto p = this->ThroughProxy("up:" + toxic + "=" + std::to_string(cut));
    IPCH_ASSERT_OK(p);
    Bytes got;
    for (int i = 0; i < 3; ++i) IPCH_ASSERT_OK(p->client.Send(msgs[i], Settle()));
    for (int i = 0; i < 2; ++i) {
      IPCH_ASSERT_OK(p->server.Receive(got, Settle())) << p->Describe();
      EXPECT_EQ(got, msgs[i]) << "message " << i;
    }
    got.clear();
    IPCH_EXPECT_ERRC(p->server.Receive(got, Settle()), PeerClosed) << p->Describe();
    EXPECT_TRUE(got.empty()) << "a torn frame reached the caller";
    IPCH_EXPECT_ERRC(p->server.Receive(got, Settle()), PeerClosed) << "PeerClosed must stay";
    IPCH_EXPECT_ERRC(p->client.Receive(got, Settle()), PeerClosed) << "the sender's side is cut too";
    EXPECT_EQ(p->proxy->stats().*counter, 1u) << p->Describe();
  }
  using TransportTest<T>::Max;
};
TYPED_TEST_SUITE_P(Fault);

// For the cases that fault the calls a transport moves its messages through and waits in: byte
// I/O and poll (SyscallIo), or the futex waits of a shared-memory ring (SharedMemory).
#define IPCH_REQUIRE_INTERPOSED_WAITS()                                                                      \
  do {                                                                                                       \
    if (!TypeParam::kCaps.Has(::ipch::Cap::SyscallIo) && !TypeParam::kCaps.Has(::ipch::Cap::SharedMemory)) { \
      GTEST_SKIP() << "UNSUPPORTED: " << TypeParam::kName << " has neither SyscallIo nor SharedMemory: its " \
                   << "messages go through no interposed byte I/O or futex wait (a queue's calls are "       \
                   << "EintrOnQueueCallsIsInvisible's)";                                                     \
    }                                                                                                        \
  } while (0)

#define IPCH_REQUIRE_PROXY()                                                                 \
  do {                                                                                       \
    IPCH_REQUIRE_CAP(Stream);                                                                \
    IPCH_REQUIRE_HOOK(kHasSocketAddress<TypeParam>, "kSocketAddress (stream toxics proxy)"); \
  } while (0)

}  // namespace ipch::conformance
