// Conformance group PeerDeath: clean exit, SIGKILL at chosen points, SIGSTOP; the survivor gets
// PeerClosed within a bound (Cap::PeerDeathDetect; without it, a timeout by its own deadline),
// never a hang, a crash (SIGPIPE) or a truncated message.
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <iterator>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "fixture.h"
#include "hooks.h"
#include "ipch/child_process.h"
#include "ipch/deadline.h"
#include "ipch/fault.h"
#include "ipch/result.h"
#include "ipch/testing.h"
#include "ipch/transport.h"

namespace ipch::conformance {

// Which object a path names: its inode number and birth time (change time where the filesystem
// records no birth), since ext4 hands a freed inode number out again at once.
struct ObjectIdentity {
  uint64_t ino = 0;
  int64_t sec = 0;
  uint32_t nsec = 0;
  bool directory = false;
  bool operator==(const ObjectIdentity&) const = default;
};
inline std::optional<ObjectIdentity> IdentityOf(const std::string& path) {
  struct statx sx {};
  if (::statx(AT_FDCWD, path.c_str(), AT_SYMLINK_NOFOLLOW, STATX_INO | STATX_BTIME | STATX_CTIME | STATX_TYPE, &sx) !=
      0) {
    return std::nullopt;
  }
  const statx_timestamp& t = (sx.stx_mask & STATX_BTIME) ? sx.stx_btime : sx.stx_ctime;
  return ObjectIdentity{sx.stx_ino, t.tv_sec, t.tv_nsec, S_ISDIR(sx.stx_mode)};
}

template <class T>
class PeerDeath : public TransportTest<T> {
 protected:
  // Waits for a Receive on `c` to report PeerClosed; fails on a message, another error or a hang.
  template <class C>
  static ::testing::AssertionResult SeesPeerClosed(C& c) {
    return ReceiveEnds(c, DeathBound(), false);
  }
  // What the survivor of a killed peer is promised. With Cap::PeerDeathDetect: SeesPeerClosed.
  // Without it (a transport that cannot tell a dead peer from a silent one), the weaker promise:
  // the Receive ends by its own deadline with Timeout (or PeerClosed), no later than DeathBound
  // past it, and never delivers a message from the dead peer.
  template <class C>
  static ::testing::AssertionResult SurvivesDeadPeer(C& c) {
    if (T::kCaps.Has(Cap::PeerDeathDetect)) return SeesPeerClosed(c);
    return ReceiveEnds(c, ShortWait(), true);
  }
  // A Receive with deadline `wait` on `c`, whose peer is gone: PeerClosed (or, `quiet`, Timeout),
  // never a message, within `wait` (quiet: plus DeathBound).
  template <class C>
  static ::testing::AssertionResult ReceiveEnds(C& c, Clock::duration wait, bool quiet) {
    Bytes got;
    const auto t0 = Clock::now();
    Status st = c.Receive(got, Deadline::After(wait));
    const auto took = Clock::now() - t0;
    if (st.ok())
      return ::testing::AssertionFailure() << "received a " << got.size() << "-byte message from a dead peer";
    if (!quiet && !st.Is(Errc::PeerClosed))
      return ::testing::AssertionFailure() << "expected PeerClosed, got " << st.error().ToString();
    if (quiet && !st.Is(Errc::Timeout) && !st.Is(Errc::PeerClosed)) {
      return ::testing::AssertionFailure() << "without PeerDeathDetect a receive from a dead peer must time out (or "
                                           << "report PeerClosed), got " << st.error().ToString();
    }
    if (!quiet && took > wait) return ::testing::AssertionFailure() << "PeerClosed came too late";
    if (quiet && took > wait + DeathBound()) {
      return ::testing::AssertionFailure() << "a receive with a " << Seconds(wait) << " s deadline took "
                                           << Seconds(took) << " s to give up on a dead peer";
    }
    return ::testing::AssertionSuccess();
  }
  // After its peer was killed, `c` sends until DeathBound has passed or a send fails. With
  // Cap::PeerDeathDetect the sends end in PeerClosed; without it each send ends by its own
  // deadline, OK (buffered), Timeout or PeerClosed. Never SIGPIPE, never a hang.
  template <class C>
  static ::testing::AssertionResult SendsSurviveDeadPeer(C& c, uint64_t salt) {
    const bool detects = T::kCaps.Has(Cap::PeerDeathDetect);
    Status st;
    const auto until = Deadline::After(DeathBound());
    while (!until.expired()) {
      const Clock::duration wait = detects ? Scaled(SettleBound()) : ShortWait();
      const auto t0 = Clock::now();
      st = c.Send(MakeMessage(0, 4096, salt), Deadline::After(wait));
      if (const auto took = Clock::now() - t0; !detects && took > wait + DeathBound()) {
        return ::testing::AssertionFailure()
               << "a send with a " << Seconds(wait) << " s deadline took " << Seconds(took) << " s with a dead peer";
      }
      if (!st.ok() && (detects || !st.Is(Errc::Timeout))) break;
    }
    if (detects && !st.Is(Errc::PeerClosed)) {
      return ::testing::AssertionFailure()
             << "sending to a dead peer: expected PeerClosed, got "
             << (st.ok() ? "OK for " + Seconds(DeathBound()) + " s" : st.error().ToString());
    }
    if (!detects && !st.ok() && !st.Is(Errc::Timeout) && !st.Is(Errc::PeerClosed)) {
      return ::testing::AssertionFailure() << "without PeerDeathDetect a send to a dead peer may succeed, time out "
                                           << "or report PeerClosed; got " << st.error().ToString();
    }
    return ::testing::AssertionSuccess();
  }
  // A peer connected, accepted and parked, then killed: the survivor gets what SurvivesDeadPeer
  // promises; or, `survivor_closed_first`, the survivor's end is closed before the kill and
  // then the listener's, and the case's audit must find nothing left.
  void KillAParkedPeer(bool survivor_closed_first) {
    auto l = T::Listen(this->address_);
    IPCH_ASSERT_OK(l);
    auto peer = this->StartClient(l->address(), ParkedPeer());
    IPCH_ASSERT_OK(peer);
    auto s = l->Accept(Settle());
    IPCH_ASSERT_OK(s);
    IPCH_ASSERT_OK(peer->control().WaitSignal(Settle()));
    if (survivor_closed_first) {
      IPCH_ASSERT_OK(s->Close());
    }
    peer->Kill();
    if (survivor_closed_first) {
      IPCH_ASSERT_OK(l->Close());
    } else {
      EXPECT_TRUE(this->SurvivesDeadPeer(*s));
    }
  }
  // A Connect to an address whose listener was killed: PeerClosed; without Cap::PeerDeathDetect
  // also Timeout, or a connection that delivers nothing (an asynchronous connect that succeeds
  // before it reaches anyone).
  static ::testing::AssertionResult ConnectToDeadListenerFails(const std::string& address) {
    const bool detects = T::kCaps.Has(Cap::PeerDeathDetect);
    auto c = T::Connect(address, detects ? Settle() : Deadline::After(ShortWait()));
    if (c.Is(Errc::PeerClosed) || (!detects && c.Is(Errc::Timeout))) return ::testing::AssertionSuccess();
    if (c.ok() && !detects) return SurvivesDeadPeer(*c) << " (a connection to a dead listener)";
    return ::testing::AssertionFailure() << "connect to a killed listener: expected PeerClosed"
                                         << (detects ? "" : " or Timeout") << ", got "
                                         << (c.ok() ? std::string("a connection") : c.error().ToString());
  }
  // A child process that listens on this test's address, sends the listener's address over
  // the control channel, and stays parked until killed.
  Result<Peer> ListenerInChild() {
    return this->StartListener(this->address_, [](auto& l, ControlChannel& ch) -> Status {
      IPCH_RETURN_IF_ERROR(ch.SendString(l.address()));
      return ch.WaitSignal(Deadline::Never());
    });
  }

  // ---- a peer killed at its Nth call -----------------------------------------------------------
  // The scenario: the peer in a child connects (or listens and accepts), exchanges `count`
  // messages with the survivor here (it sends each, the other end echoes it), closes, and ends.
  // Its calls are counted by the interposer in one run that kills nowhere; then, for each kill
  // point, the scenario runs again with the peer SIGKILLed by the interposer at its Nth call,
  // before or after the call. Whatever N, the survivor gets only whole messages, in order, then
  // the peer's end (PeerClosed, or without PeerDeathDetect silence), never a hang; everything the
  // peer fully sent is delivered; the address can be listened on again; the audit, after the
  // case, finds nothing left.
  static std::size_t KillSize(int i, std::size_t max) {
    constexpr std::size_t kSizes[] = {64 * 1024, 10, 200 * 1024, 1000};
    return std::min(kSizes[static_cast<std::size_t>(i) % std::size(kSizes)], max);
  }
  // Every call, before and after it, when there are at most kEveryCallUpTo calls or
  // IPCH_KILL_EVERY_CALL is set (the heavy run); otherwise the first, the last and a sample
  // drawn from the case's seed, so that every run kills at kEveryCallUpTo calls of each kind.
  static constexpr uint64_t kEveryCallUpTo = 24;
  static bool EveryCall() {
    const char* every = std::getenv("IPCH_KILL_EVERY_CALL");
    return every != nullptr && *every != '\0' && *every != '0';
  }
  static std::vector<uint64_t> KillPoints(uint64_t total, uint64_t seed) {
    std::vector<uint64_t> points;
    if (total <= kEveryCallUpTo || EveryCall()) {
      for (uint64_t n = 1; n <= total; ++n) points.push_back(n);
      return points;
    }
    std::mt19937_64 rng(seed);
    std::vector<uint64_t> all;
    for (uint64_t n = 2; n < total; ++n) all.push_back(n);
    std::shuffle(all.begin(), all.end(), rng);
    points = {1, total};
    points.insert(points.end(), all.begin(), all.begin() + (kEveryCallUpTo - 2));
    std::sort(points.begin(), points.end());
    return points;
  }
  static fault::Plan KillPlan(uint64_t nth, fault::Kind kind) {
    // nth 0: a rule that never fires and only counts.
    return fault::Plan{{fault::Rule{fault::kAllOps, kind, 0, static_cast<uint32_t>(nth), 0.0, nth == 0 ? 0u : 1u}}, 0};
  }
  static bool Gone(Peer& p) { return p.process()->Wait(Deadline::Expired()).ok(); }
  // What the peer said on its control channel before it ended: a signal 's' for each message it
  // sent whole (its Send returned), and, had it run to its end, "calls=N".
  struct PeerReport {
    int sent = 0;
    std::optional<uint64_t> calls;
  };
  static PeerReport ReadReport(Peer& p) {
    PeerReport r;
    for (;;) {
      auto m = p.control().ReceiveString(Deadline::Expired());
      if (!m.ok()) return r;
      if (*m == "s") ++r.sent;
      if (m->rfind("calls=", 0) == 0) r.calls = std::strtoull(m->c_str() + 6, nullptr, 10);
    }
  }
  // The peer ends: killed by the interposer, or (a kill point its run never reached) by itself,
  // successfully. Anything else is its failure, said.
  static ::testing::AssertionResult PeerEndsKilledOrDone(Peer& p) {
    auto e = p.process()->Wait(Settle());
    if (!e.ok()) return ::testing::AssertionFailure() << "the peer did not end: " << p.process()->Describe();
    (void)p.Kill();  // reaped already: marks it judged
    if (e->Success() || (!e->exited && e->signal == SIGKILL)) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << "the peer failed: " << p.process()->Describe();
  }
  // A Receive on a connection whose peer may be alive (then its message comes, however slowly)
  // or dead (then PeerClosed within DeathBound; without PeerDeathDetect, silence): the message,
  // or the end as the status. A Timeout with the peer alive is waited past, up to Settle.
  template <class C>
  static Status ReceiveOrEnd(C& c, Peer& p, Bytes& got, ::testing::AssertionResult* verdict) {
    const auto until = Settle();
    for (;;) {
      Status st = c.Receive(got, Deadline::After(DeathBound()));
      if (!st.Is(Errc::Timeout)) return st;
      if (Gone(p)) {
        *verdict = SurvivesDeadPeer(c);
        return MakeError(Errc::PeerClosed, "the dead peer's end");
      }
      if (until.expired()) {
        *verdict = ::testing::AssertionFailure()
                   << "the peer is alive and sent nothing for " << Seconds(SettleBound()) << " s (scaled)";
        return st;
      }
    }
  }
  // How a call that met the peer's death may fail: PeerClosed, or without PeerDeathDetect a
  // Timeout by its own deadline.
  static ::testing::AssertionResult IsTheEnd(const Status& st, const char* what) {
    if (st.Is(Errc::PeerClosed) || (!T::kCaps.Has(Cap::PeerDeathDetect) && st.Is(Errc::Timeout))) {
      return ::testing::AssertionSuccess();
    }
    return ::testing::AssertionFailure() << what << " after the peer died: expected PeerClosed"
                                         << (T::kCaps.Has(Cap::PeerDeathDetect) ? "" : " or Timeout") << ", got "
                                         << st.error().ToString();
  }

  // One run with the client in the child, killed by `plan`; the survivor is the server here.
  void RunClientKilledBy(const fault::Plan& plan, int count, PeerReport* report) {
    auto l = T::Listen(this->address_);
    IPCH_ASSERT_OK(l);
    const uint64_t salt = this->Seed();
    auto peer = this->template StartPeerUnder<PeerRole::kClient>(
        plan, l->address(), [count, salt](auto& c, ControlChannel& ch) -> Status {
          Bytes got;
          for (int i = 0; i < count; ++i) {
            const std::size_t n = KillSize(i, c.max_message_size());
            IPCH_RETURN_IF_ERROR(c.Send(MakeMessage(static_cast<uint64_t>(i), n, salt), Settle()));
            IPCH_RETURN_IF_ERROR(ch.Signal('s'));
            IPCH_RETURN_IF_ERROR(c.Receive(got, Settle()));
            IPCH_RETURN_IF_ERROR(Check(VerifyMessage(got, static_cast<uint64_t>(i), n, salt), "the echo"));
          }
          IPCH_RETURN_IF_ERROR(c.Close());
          return ch.SendString("calls=" + std::to_string(fault::MatchedCalls(0)));
        });
    IPCH_ASSERT_OK(peer);
    // Accept the peer's connection, unless it died before making one.
    std::optional<typename TransportTest<T>::Conn> s;
    const auto until = Settle();
    for (bool last = false; !s && !last;) {
      last = Gone(*peer);  // once it is gone, one more Accept takes a connection it left waiting
      auto a = l->Accept(Deadline::After(ShortWait()));
      if (a.ok()) {
        s.emplace(std::move(*a));
      } else if (!a.Is(Errc::Timeout) && !a.Is(Errc::WouldBlock) && !a.Is(Errc::PeerClosed)) {
        FAIL() << "accepting a connector that may have died: " << a.error().ToString();
      } else if (until.expired()) {
        FAIL() << "the peer is alive and never connected: " << peer->process()->Describe();
      }
    }
    int received = 0;
    if (s) {
      for (;;) {
        Bytes got;
        ::testing::AssertionResult verdict = ::testing::AssertionSuccess();
        Status st = ReceiveOrEnd(*s, *peer, got, &verdict);
        ASSERT_TRUE(verdict);
        if (!st.ok()) {
          ASSERT_TRUE(IsTheEnd(st, "receive"));
          break;
        }
        ASSERT_LT(received, count) << "a message the peer never sent";
        ASSERT_TRUE(VerifyMessage(got, static_cast<uint64_t>(received), KillSize(received, this->Max(*s)), salt))
            << "message " << received << " arrived torn or wrong";
        ++received;
        if (Status e = s->Send(got, Settle()); !e.ok()) {
          ASSERT_TRUE(IsTheEnd(e, "the echo's send"));
        }
      }
    }
    ASSERT_TRUE(PeerEndsKilledOrDone(*peer));
    *report = ReadReport(*peer);
    // A message whose Send returned was the transport's to deliver: with AsyncIo it may still
    // have been queued in the peer's own I/O thread, and then dies with it.
    if (!this->Has(Cap::AsyncIo)) {
      EXPECT_GE(received, report->sent) << "a message the peer sent whole before it was killed was lost";
    }
  }

  // One run with the listener in the child, killed by `plan`; the survivor is the client here.
  void RunListenerKilledBy(const fault::Plan& plan, int count, PeerReport* report) {
    const uint64_t salt = this->Seed();
    auto peer = this->template StartPeerUnder<PeerRole::kListener>(
        plan, this->address_, [count, salt](auto& l, ControlChannel& ch) -> Status {
          IPCH_RETURN_IF_ERROR(ch.SendString(l.address()));
          auto s = l.Accept(Settle());
          if (!s.ok()) return std::move(s).error();
          Bytes got;
          for (int i = 0; i < count; ++i) {
            IPCH_RETURN_IF_ERROR(s->Receive(got, Settle()));
            IPCH_RETURN_IF_ERROR(Check(
                VerifyMessage(got, static_cast<uint64_t>(i), KillSize(i, s->max_message_size()), salt), "message"));
            IPCH_RETURN_IF_ERROR(s->Send(got, Settle()));
            IPCH_RETURN_IF_ERROR(ch.Signal('s'));
          }
          IPCH_RETURN_IF_ERROR(s->Close());
          IPCH_RETURN_IF_ERROR(l.Close());
          return ch.SendString("calls=" + std::to_string(fault::MatchedCalls(0)));
        });
    IPCH_ASSERT_OK(peer);
    auto addr = peer->control().ReceiveString(Settle());
    int received = 0;
    if (addr.ok()) {
      auto c = T::Connect(*addr, Settle());
      if (!c.ok()) {
        // A listener killed before it could take a connection: refused as a dead one is.
        ASSERT_TRUE(IsTheEnd(Status(c.error()), "connect"));
      } else {
        for (int i = 0; i < count; ++i) {
          const std::size_t n = KillSize(i, this->Max(*c));
          if (Status e = c->Send(MakeMessage(static_cast<uint64_t>(i), n, salt), Settle()); !e.ok()) {
            ASSERT_TRUE(IsTheEnd(e, "send"));
          }
          Bytes got;
          ::testing::AssertionResult verdict = ::testing::AssertionSuccess();
          Status st = ReceiveOrEnd(*c, *peer, got, &verdict);
          ASSERT_TRUE(verdict);
          if (!st.ok()) {
            ASSERT_TRUE(IsTheEnd(st, "receive"));
            break;
          }
          ASSERT_TRUE(VerifyMessage(got, static_cast<uint64_t>(i), n, salt))
              << "echo " << i << " arrived torn or wrong";
          ++received;
        }
      }
    } else {
      ASSERT_TRUE(addr.Is(Errc::PeerClosed)) << "the listener's address: " << addr.error().ToString();
    }
    ASSERT_TRUE(PeerEndsKilledOrDone(*peer));
    *report = ReadReport(*peer);
    if (!this->Has(Cap::AsyncIo)) {
      EXPECT_GE(received, report->sent) << "an echo the listener sent whole before it was killed was lost";
    }
    // The dead listener's name is reclaimed: a new Listen on it works and serves.
    auto again = this->Connected(addr.ok() ? *addr : this->address_);
    IPCH_ASSERT_OK(again) << "listening again after the listener was killed";
    EXPECT_TRUE(RoundTrip(again->client, again->server, MakeMessage(1, 10, salt)));
  }

  // The whole enumeration for one role: count the peer's calls, then kill it at each point.
  template <PeerRole R>
  void KillAtEachCall(int count) {
    if constexpr (kHasKilledPeerLeftovers<T>) {
      if (!T::kKilledPeerLeaves.empty())
        ::ipch::testing::AllowLeftovers(std::string(T::kKilledPeerLeaves), std::string(T::kKilledPeerLeavesWhy));
    }
    auto run = [&](const fault::Plan& plan, PeerReport* report) {
      if constexpr (R == PeerRole::kClient) {
        RunClientKilledBy(plan, count, report);
      } else {
        RunListenerKilledBy(plan, count, report);
      }
    };
    PeerReport counted;
    {
      SCOPED_TRACE("the run that counts the peer's calls (nothing killed)");
      run(KillPlan(0, fault::Kind::kKill), &counted);
      if (this->HasFailure()) return;
    }
    ASSERT_TRUE(counted.calls.has_value()) << "the counting run's peer did not report its calls";
    ASSERT_GT(*counted.calls, 0u) << "the peer made no call the interposer saw: it is not in the call path";
    const auto points = KillPoints(*counted.calls, this->Seed());
    int killed = 0;
    for (const uint64_t n : points) {
      for (const fault::Kind kind : {fault::Kind::kKill, fault::Kind::kKillAfter}) {
        SCOPED_TRACE("the peer killed " + std::string(kind == fault::Kind::kKill ? "before" : "after") + " its call " +
                     std::to_string(n) + " of " + std::to_string(*counted.calls) +
                     " (IPCH_PRINT_FAULTS=1 names the call)");
        PeerReport report;
        run(KillPlan(n, kind), &report);
        if (this->HasFailure()) return;
        if (!report.calls) ++killed;
      }
    }
    // A kill point no run reached (a call count that varies with timing) is not a kill.
    EXPECT_GT(killed, 0) << "no kill point was reached in " << points.size() * 2 << " runs";
    ::testing::Test::RecordProperty("kill_points", std::to_string(killed));
    ::testing::Test::RecordProperty("peer_calls", std::to_string(*counted.calls));
  }
};
TYPED_TEST_SUITE_P(PeerDeath);

TYPED_TEST_P(PeerDeath, PeerExitsCleanlyAfterSending) {
  auto l = TypeParam::Listen(this->address_);
  IPCH_ASSERT_OK(l);
  const uint64_t salt = this->Seed();
  // The peer sends and returns without Close(): its exit (or destruction) must do the close.
  auto peer = this->StartClient(l->address(), [salt](auto& c, ControlChannel&) -> Status {
    for (uint64_t i = 0; i < 10; ++i) IPCH_RETURN_IF_ERROR(c.Send(MakeMessage(i, 100, salt), Settle()));
    return Ok();
  });
  IPCH_ASSERT_OK(peer);
  auto s = l->Accept(Settle());
  IPCH_ASSERT_OK(s);
  IPCH_ASSERT_PEER_OK(*peer);
  Bytes got;
  for (uint64_t i = 0; i < 10; ++i) {
    IPCH_ASSERT_OK(s->Receive(got, Settle()));
    EXPECT_TRUE(VerifyMessage(got, i, 100, salt));
  }
  EXPECT_TRUE(this->SeesPeerClosed(*s));
}

TYPED_TEST_P(PeerDeath, PeerThatExitedBeforeAcceptIsStillHeard) {
  auto l = TypeParam::Listen(this->address_);
  IPCH_ASSERT_OK(l);
  const uint64_t salt = this->Seed();
  auto peer = this->StartClient(l->address(), [salt](auto& c, ControlChannel&) -> Status {
    for (uint64_t i = 0; i < 3; ++i) IPCH_RETURN_IF_ERROR(c.Send(MakeMessage(i, 300, salt), Settle()));
    return Ok();
  });
  IPCH_ASSERT_OK(peer);
  // Gone (and its objects released) before we accept: like a socket in the backlog, what it
  // sent must still be delivered, then PeerClosed.
  IPCH_ASSERT_PEER_OK(*peer);
  auto s = l->Accept(Settle());
  IPCH_ASSERT_OK(s);
  Bytes got;
  for (uint64_t i = 0; i < 3; ++i) {
    IPCH_ASSERT_OK(s->Receive(got, Settle()));
    EXPECT_TRUE(VerifyMessage(got, i, 300, salt));
  }
  EXPECT_TRUE(this->SeesPeerClosed(*s));
}

TYPED_TEST_P(PeerDeath, PeerKilledAfterConnect) {
  IPCH_REQUIRE_CAP(CrossProcess);
  this->KillAParkedPeer(false);
}

// The survivor closed first, leaving what the two ends share for the last one to remove; then
// the peer was killed before its own close. The case's audit finds nothing left: the survivor's
// side removes what the dead peer never will (by the listener's close at the latest).
TYPED_TEST_P(PeerDeath, PeerKilledAfterTheSurvivorClosedLeavesNothing) {
  IPCH_REQUIRE_CAP(CrossProcess);
  this->KillAParkedPeer(true);
}

TYPED_TEST_P(PeerDeath, PeerKilledBeforeAccept) {
  IPCH_REQUIRE_CAP(CrossProcess);
  auto l = TypeParam::Listen(this->address_);
  IPCH_ASSERT_OK(l);
  auto peer = this->StartClient(l->address(), ParkedPeer());
  IPCH_ASSERT_OK(peer);
  IPCH_ASSERT_OK(peer->control().WaitSignal(Settle()));
  peer->Kill();
  // Either the dead connection is still accepted and reports PeerClosed, or accept says so
  // (without PeerDeathDetect, accept may also time out: nothing of the dead peer ever came).
  const bool detects = this->Has(Cap::PeerDeathDetect);
  auto s = l->Accept(detects ? Settle() : Deadline::After(ShortWait()));
  if (s.ok()) {
    EXPECT_TRUE(this->SurvivesDeadPeer(*s));
  } else if (!detects && s.Is(Errc::Timeout)) {
    SUCCEED();
  } else {
    IPCH_EXPECT_ERRC(s, PeerClosed);
  }
}

TYPED_TEST_P(PeerDeath, ListenerKilledThenConnectIsPeerClosed) {
  IPCH_REQUIRE_CAP(CrossProcess);
  auto peer = this->ListenerInChild();
  IPCH_ASSERT_OK(peer);
  auto addr = peer->control().ReceiveString(Settle());
  IPCH_ASSERT_OK(addr);
  peer->Kill();
  EXPECT_TRUE(this->ConnectToDeadListenerFails(*addr));
  // Create-again-works after a crash: the dead listener's name is reclaimed.
  auto again = this->Connected(*addr);
  IPCH_ASSERT_OK(again);
  EXPECT_TRUE(RoundTrip(again->client, again->server, MakeMessage(1, 10, this->Seed())));
}

TYPED_TEST_P(PeerDeath, PeerKilledMidMessage) {
  IPCH_REQUIRE_CAP(CrossProcess);
  auto l = TypeParam::Listen(this->address_);
  IPCH_ASSERT_OK(l);
  auto peer = this->StartClient(l->address(), [](auto& c, ControlChannel& ch) -> Status {
    Bytes big(c.max_message_size(), std::byte{0x42});
    IPCH_RETURN_IF_ERROR(ch.Signal());
    IPCH_RETURN_IF_ERROR(c.Send(big, Deadline::Never()));  // blocks mid-message: nobody reads yet
    IPCH_RETURN_IF_ERROR(ch.Signal('S'));                  // only reached if the buffers held the whole message
    return ch.WaitSignal(Deadline::Never());
  });
  IPCH_ASSERT_OK(peer);
  auto s = l->Accept(Settle());
  IPCH_ASSERT_OK(s);
  IPCH_ASSERT_OK(peer->control().WaitSignal(Settle()));
  // Kill it once it blocks: inside the send when the message exceeds the kernel's buffering.
  (void)WaitUntilSleeping(peer->pid(), Settle());
  peer->Kill();
  const bool send_completed = peer->control().WaitSignal(Deadline::Expired(), 'S').ok();
  // With Cap::AsyncIo a send returns once its message is queued for the transport's own I/O
  // thread: killed before that thread wrote it, the message is lost with the process (but never
  // torn), so the survivor sees it whole or not at all.
  if (send_completed && this->Has(Cap::AsyncIo)) {
    Bytes got;
    Status st = s->Receive(got, Deadline::After(DeathBound()));
    if (st.ok()) {
      EXPECT_EQ(got, Bytes(s->max_message_size(), std::byte{0x42}));
    } else {
      // Lost with its process: the survivor learns of the death (or, without PeerDeathDetect,
      // hears nothing), and never gets a torn message.
      const bool silence = !this->Has(Cap::PeerDeathDetect) && st.Is(Errc::Timeout);
      EXPECT_TRUE(st.Is(Errc::PeerClosed) || silence)
          << "the queued message never written must not come torn: " << st.error().ToString();
      return;
    }
  } else if (send_completed) {
    // The transport buffered the whole message before the kill: it must arrive intact.
    Bytes got;
    IPCH_ASSERT_OK(s->Receive(got, Settle()));
    EXPECT_EQ(got, Bytes(s->max_message_size(), std::byte{0x42}));
  }
  EXPECT_TRUE(this->SurvivesDeadPeer(*s))
      << (send_completed ? "after the completed message" : "a torn message must never be delivered");
}

TYPED_TEST_P(PeerDeath, PeerKilledWhileWeSend) {
  IPCH_REQUIRE_CAP(CrossProcess);
  auto l = TypeParam::Listen(this->address_);
  IPCH_ASSERT_OK(l);
  auto peer = this->StartClient(l->address(), [](auto& c, ControlChannel& ch) -> Status {
    IPCH_RETURN_IF_ERROR(ch.Signal());
    Bytes m;
    return c.Receive(m, Deadline::Never());  // blocked in receive until killed
  });
  IPCH_ASSERT_OK(peer);
  auto s = l->Accept(Settle());
  IPCH_ASSERT_OK(s);
  IPCH_ASSERT_OK(peer->control().WaitSignal(Settle()));
  peer->Kill();
  // Sending to a dead peer must report PeerClosed, not kill us with SIGPIPE.
  EXPECT_TRUE(this->SendsSurviveDeadPeer(*s, this->Seed()));
}

TYPED_TEST_P(PeerDeath, StoppedPeerLosesNothing) {
  IPCH_REQUIRE_CAP(CrossProcess);
  auto l = TypeParam::Listen(this->address_);
  IPCH_ASSERT_OK(l);
  const uint64_t salt = this->Seed();
  auto peer = this->StartClient(l->address(), [salt](auto& c, ControlChannel& ch) -> Status {
    IPCH_RETURN_IF_ERROR(c.Send(MakeMessage(0, 100, salt), Settle()));
    IPCH_RETURN_IF_ERROR(ch.Signal());
    IPCH_RETURN_IF_ERROR(ch.WaitSignal(Settle()));
    return c.Send(MakeMessage(1, 100, salt), Settle());
  });
  IPCH_ASSERT_OK(peer);
  auto s = l->Accept(Settle());
  IPCH_ASSERT_OK(s);
  IPCH_ASSERT_OK(peer->control().WaitSignal(Settle()));
  IPCH_ASSERT_OK(peer->process()->Stop());
  Bytes got;
  // With AsyncIo a send that returned may still be queued in the peer's own I/O thread, which
  // the stop froze with it: the first message may then come only once the peer resumes.
  const bool async = this->Has(Cap::AsyncIo);
  const Status first = s->Receive(got, async ? Deadline::After(ShortWait()) : Settle());
  // Either way the stopped peer's silence is a Timeout, and nothing is lost when it resumes.
  if (!(async && first.Is(Errc::Timeout))) {
    IPCH_ASSERT_OK(first);
    EXPECT_TRUE(VerifyMessage(got, 0, 100, salt));
    IPCH_EXPECT_ERRC(s->Receive(got, Deadline::After(ShortWait())), Timeout);
  }
  IPCH_ASSERT_OK(peer->control().Signal());
  IPCH_ASSERT_OK(peer->process()->Continue());
  if (!first.ok()) {
    IPCH_ASSERT_OK(s->Receive(got, Settle()));
    EXPECT_TRUE(VerifyMessage(got, 0, 100, salt));
  }
  IPCH_ASSERT_OK(s->Receive(got, Settle()));
  EXPECT_TRUE(VerifyMessage(got, 1, 100, salt));
  IPCH_ASSERT_PEER_OK(*peer);
}

TYPED_TEST_P(PeerDeath, ListenerServesNewPeerAfterOneIsKilled) {
  IPCH_REQUIRE_CAP(CrossProcess);
  auto l = TypeParam::Listen(this->address_);
  IPCH_ASSERT_OK(l);
  auto doomed = this->StartClient(l->address(), ParkedPeer());
  IPCH_ASSERT_OK(doomed);
  auto s1 = l->Accept(Settle());
  IPCH_ASSERT_OK(s1);
  IPCH_ASSERT_OK(doomed->control().WaitSignal(Settle()));
  doomed->Kill();
  EXPECT_TRUE(this->SurvivesDeadPeer(*s1));
  // A listener with a peer limit frees the dead peer's slot once its connection is closed.
  if (MaxPeers<TypeParam>() != SIZE_MAX) {
    IPCH_ASSERT_OK(s1->Close());
  }
  auto next = this->StartClient(l->address(), EchoPeer(1));
  IPCH_ASSERT_OK(next);
  auto s2 = l->Accept(Settle());
  IPCH_ASSERT_OK(s2);
  EXPECT_TRUE(RoundTripVia(*s2, MakeMessage(2, 20, this->Seed())));
  IPCH_ASSERT_PEER_OK(*next);
}

// Only shared memory separates copying a message from publishing it: a socket, pipe or queue
// write makes its bytes visible as it copies them (PeerKilledMidMessage covers those).
TYPED_TEST_P(PeerDeath, PeerKilledMidPublish) {
  IPCH_REQUIRE_CAP(CrossProcess);
  IPCH_REQUIRE_CAP(SharedMemory);
  IPCH_REQUIRE_HOOK(kHasMidPublishHook<TypeParam>, "SetMidPublishHook");
  if constexpr (kHasMidPublishHook<TypeParam>) {
    auto l = TypeParam::Listen(this->address_);
    IPCH_ASSERT_OK(l);
    const uint64_t salt = this->Seed();
    auto peer = this->StartClient(l->address(), [salt](auto& c, ControlChannel& ch) -> Status {
      IPCH_RETURN_IF_ERROR(c.Send(MakeMessage(0, 100, salt), Settle()));
      // The second send stops after copying its record and before publishing it, and is killed there.
      TypeParam::SetMidPublishHook([&ch] {
        (void)ch.Signal('P');
        for (;;) ::pause();
      });
      return c.Send(MakeMessage(1, 5000, salt), Settle());
    });
    IPCH_ASSERT_OK(peer);
    auto s = l->Accept(Settle());
    IPCH_ASSERT_OK(s);
    IPCH_ASSERT_OK(peer->control().WaitSignal(Settle(), 'P'));
    peer->Kill();
    Bytes got;
    IPCH_ASSERT_OK(s->Receive(got, Settle()));
    EXPECT_TRUE(VerifyMessage(got, 0, 100, salt)) << "the message published before the kill must arrive intact";
    EXPECT_TRUE(this->SurvivesDeadPeer(*s)) << "a record killed mid-publish must never be delivered";
  }
}

TYPED_TEST_P(PeerDeath, OrphanedListenerIsReportedAndReclaimed) {
  IPCH_REQUIRE_CAP(CrossProcess);
  auto peer = this->ListenerInChild();
  IPCH_ASSERT_OK(peer);
  auto addr = peer->control().ReceiveString(Settle());
  IPCH_ASSERT_OK(addr);
  // A connection waiting to be accepted when its listener is killed learns of it.
  auto pending = TypeParam::Connect(*addr, Settle());
  IPCH_ASSERT_OK(pending);
  IPCH_ASSERT_OK(pending->Send(MakeMessage(0, 64, this->Seed()), Settle()));
  peer->Kill();
  EXPECT_TRUE(this->SurvivesDeadPeer(*pending));
  IPCH_ASSERT_OK(pending->Close());
  // The killed creator's objects are reclaimed by the next Listen; the audit checks none is left.
  auto again = this->Connected(*addr);
  IPCH_ASSERT_OK(again);
  EXPECT_TRUE(RoundTrip(again->client, again->server, MakeMessage(1, 10, this->Seed())));
}

// Every party of a generation dies (its listener, and a connector whose messages wait unaccepted);
// a new Listen on the name gets none of it: not the pending connection, not a byte the dead
// connector sent, and not the dead listener's objects reused in place (checked by inode for the
// objects with paths; a directory that is the address itself may stay).
TYPED_TEST_P(PeerDeath, NewListenerGetsNothingOfADeadGeneration) {
  IPCH_REQUIRE_CAP(CrossProcess);
  auto old_listener = this->StartListener(this->address_, [](auto& l, ControlChannel& ch) -> Status {
    IPCH_RETURN_IF_ERROR(ch.SendString(l.address()));
    for (const auto& p : l.resource_paths()) IPCH_RETURN_IF_ERROR(ch.SendString(p.string()));
    IPCH_RETURN_IF_ERROR(ch.SendString(""));
    return ch.WaitSignal(Deadline::Never());
  });
  IPCH_ASSERT_OK(old_listener);
  auto addr = old_listener->control().ReceiveString(Settle());
  IPCH_ASSERT_OK(addr);
  std::vector<std::pair<std::string, ObjectIdentity>> old_objects;
  for (;;) {
    auto p = old_listener->control().ReceiveString(Settle());
    IPCH_ASSERT_OK(p);
    if (p->empty()) break;
    if (auto id = IdentityOf(*p); id && !id->directory) old_objects.emplace_back(*p, *id);
  }
  const uint64_t old_salt = ~this->Seed();
  auto old_client = this->StartClient(*addr, [old_salt](auto& c, ControlChannel& ch) -> Status {
    for (uint64_t i = 0; i < 3; ++i) IPCH_RETURN_IF_ERROR(c.Send(MakeMessage(100 + i, 200, old_salt), Settle()));
    IPCH_RETURN_IF_ERROR(ch.Signal('S'));
    return ch.WaitSignal(Deadline::Never());
  });
  IPCH_ASSERT_OK(old_client);
  IPCH_ASSERT_OK(old_client->control().WaitSignal(Settle(), 'S'));
  old_client->Kill();
  old_listener->Kill();

  auto l = TypeParam::Listen(*addr);
  IPCH_ASSERT_OK(l) << "a dead generation's name must be reclaimed";
  for (const auto& [path, id] : old_objects) {
    EXPECT_FALSE(IdentityOf(path) == id) << path << " is the dead listener's object, taken over in place";
  }
  auto c = TypeParam::Connect(l->address(), Settle());
  IPCH_ASSERT_OK(c);
  auto s = l->Accept(Settle());
  IPCH_ASSERT_OK(s);
  IPCH_ASSERT_OK(c->Send(MakeMessage(0, 200, this->Seed()), Settle()));
  Bytes got;
  IPCH_ASSERT_OK(s->Receive(got, Settle()));
  EXPECT_TRUE(VerifyMessage(got, 0, 200, this->Seed())) << "the new listener got the dead generation's data";
  IPCH_EXPECT_ERRC(s->Receive(got, Deadline::Expired()), WouldBlock);
  IPCH_EXPECT_ERRC(l->Accept(Deadline::Expired()), WouldBlock)
      << "the dead generation's pending connection was handed to the new listener";
}

// The peer killed at each of its calls in turn (the interposer SIGKILLs it there, before or after
// the call), as a client and as a listener; one message each way by default, four under
// IPCH_KILL_EVERY_CALL (the heavy run, which also kills at every call rather than a sample).
TYPED_TEST_P(PeerDeath, ClientKilledAtEachCallInTurn) {
  IPCH_REQUIRE_CAP(CrossProcess);
  this->template KillAtEachCall<PeerRole::kClient>(TestFixture::EveryCall() ? 4 : 1);
}

TYPED_TEST_P(PeerDeath, ListenerKilledAtEachCallInTurn) {
  IPCH_REQUIRE_CAP(CrossProcess);
  this->template KillAtEachCall<PeerRole::kListener>(TestFixture::EveryCall() ? 4 : 1);
}

REGISTER_TYPED_TEST_SUITE_P(PeerDeath, ClientKilledAtEachCallInTurn, ListenerKilledAtEachCallInTurn,
                            NewListenerGetsNothingOfADeadGeneration, PeerThatExitedBeforeAcceptIsStillHeard,
                            PeerKilledMidPublish, OrphanedListenerIsReportedAndReclaimed, PeerExitsCleanlyAfterSending,
                            PeerKilledAfterConnect, PeerKilledAfterTheSurvivorClosedLeavesNothing,
                            PeerKilledBeforeAccept, ListenerKilledThenConnectIsPeerClosed,
                            PeerKilledMidMessage, PeerKilledWhileWeSend, StoppedPeerLosesNothing,
                            ListenerServesNewPeerAfterOneIsKilled);

}  // namespace ipch::conformance
