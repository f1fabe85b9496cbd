// Conformance group PeerDeath: clean exit, SIGKILL at chosen points, SIGSTOP; the survivor gets
// PeerClosed within a bound (Cap::PeerDeathDetect; without it, a timeout by its own deadline),
// never a hang, a crash (SIGPIPE) or a truncated message.
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "fixture.h"
#include "hooks.h"
#include "ipch/child_process.h"
#include "ipch/deadline.h"
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
  auto l = TypeParam::Listen(this->address_);
  IPCH_ASSERT_OK(l);
  auto peer = this->StartClient(l->address(), ParkedPeer());
  IPCH_ASSERT_OK(peer);
  auto s = l->Accept(Settle());
  IPCH_ASSERT_OK(s);
  IPCH_ASSERT_OK(peer->control().WaitSignal(Settle()));
  peer->Kill();
  EXPECT_TRUE(this->SurvivesDeadPeer(*s));
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

REGISTER_TYPED_TEST_SUITE_P(PeerDeath, NewListenerGetsNothingOfADeadGeneration, PeerThatExitedBeforeAcceptIsStillHeard,
                            PeerKilledMidPublish, OrphanedListenerIsReportedAndReclaimed, PeerExitsCleanlyAfterSending,
                            PeerKilledAfterConnect, PeerKilledBeforeAccept, ListenerKilledThenConnectIsPeerClosed,
                            PeerKilledMidMessage, PeerKilledWhileWeSend, StoppedPeerLosesNothing,
                            ListenerServesNewPeerAfterOneIsKilled);

}  // namespace ipch::conformance
