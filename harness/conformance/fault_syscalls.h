// Fault group, syscall cases: EINTR, EAGAIN, short I/O, resets, a broken pipe, a hard read error
// and a refused connect injected under the transport, and a reset on each write in turn.
#pragma once

#include <gtest/gtest.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <string>
#include <system_error>

#include "fault_fixture.h"
#include "fixture.h"
#include "ipch/fault.h"
#include "ipch/result.h"
#include "ipch/testing.h"
#include "ipch/transport.h"

namespace ipch::conformance {

// Interrupted calls are retried, unseen: EINTR on the byte I/O and the waits of a socket or FIFO
// transport, and on the futex waits of a shared-memory ring (its only blocking calls).
TYPED_TEST_P(Fault, EintrEverywhereIsInvisible) {
  IPCH_REQUIRE_INTERPOSED_WAITS();
  this->EchoUnder(
      this->PlanOf(fault::kRead | fault::kWrite | fault::kPoll | fault::kFutex, fault::Kind::kErrno, EINTR, 0.3));
}

TYPED_TEST_P(Fault, ShortWritesAreCompleted) {
  IPCH_REQUIRE_CAP(SyscallIo);
  this->EchoUnder(this->PlanOf(fault::kWrite, fault::Kind::kShort, 0, 0.5));
}

TYPED_TEST_P(Fault, ShortReadsAreAssembled) {
  IPCH_REQUIRE_CAP(SyscallIo);
  this->EchoUnder(this->PlanOf(fault::kRead, fault::Kind::kShort, 0, 0.5));
}

// "Try again" is retried: EAGAIN from a read or write, and from a futex wait (the word changed
// before the wait began).
TYPED_TEST_P(Fault, EagainIsRetried) {
  IPCH_REQUIRE_INTERPOSED_WAITS();
  this->EchoUnder(this->PlanOf(fault::kRead | fault::kWrite | fault::kFutex, fault::Kind::kErrno, EAGAIN, 0.3));
}

// A wait that comes back early with nothing ready (a spurious futex wake-up; a poll, futex or
// POSIX queue wait that says it timed out before its deadline) is looked at again: the exchange
// loses nothing, and a receive that waits on an idle connection reports Timeout only once its
// deadline has really passed, however often its waits come back early.
TYPED_TEST_P(Fault, WaitsWokenEarlyAreWaitedAgain) {
  if (!this->Has(Cap::SyscallIo) && !this->Has(Cap::SharedMemory) && !this->Has(Cap::QueueIo)) {
    GTEST_SKIP() << "UNSUPPORTED: " << TypeParam::kName << " has none of SyscallIo, SharedMemory, QueueIo: "
                 << "its waits are not interposed calls";
  }
  constexpr uint64_t kTimedWaits = fault::kFutex | fault::kMqSend | fault::kMqReceive;
  fault::Plan plan = this->PlanOf(fault::kWaits, fault::Kind::kWake, 0, 0.3);
  plan.rules.push_back({kTimedWaits, fault::Kind::kErrno, ETIMEDOUT, 0, 0.2, 0});
  {
    IPCH_CONNECTED(p);
    {
      fault::Plan always = plan;
      for (auto& r : always.rules) r.probability = 1.0;
      fault::ScopedPlan armed(always);
      Bytes got;
      const auto wait = ShortWait();
      const auto start = Clock::now();
      const Status st = p.server.Receive(got, Deadline::After(wait));
      const auto took = Clock::now() - start;
      if (fault::InjectedCount() == 0) {
        GTEST_SKIP() << "UNSUPPORTED: " << TypeParam::kName << " waits in no poll, futex or POSIX queue call "
                     << "(a SysV queue's msgrcv has no timeout of its own to come early: its early return is "
                     << "EINTR, which EintrOnQueueCallsIsInvisible checks; a process-shared pthread condition "
                     << "variable waits in libc's own futex calls, which no interposer reaches)";
      }
      IPCH_EXPECT_ERRC(st, Timeout) << "faults: " << this->FaultLog();
      EXPECT_GE(took, wait) << "Timeout reported "
                            << std::chrono::duration_cast<std::chrono::milliseconds>(wait - took).count()
                            << " ms before the deadline, after " << fault::InjectedCount()
                            << " early wake-ups; faults: " << this->FaultLog();
    }
    EXPECT_TRUE(RoundTrip(p.client, p.server, MakeMessage(1, 100, this->Seed()))) << "the connection works after";
  }  // the listener closes: EchoUnder listens at the same address
  this->EchoUnder(plan);
}

TYPED_TEST_P(Fault, AcceptInterruptedIsRetried) {
  IPCH_REQUIRE_CAP(SyscallIo);
  auto l = TypeParam::Listen(this->address_);
  IPCH_ASSERT_OK(l);
  auto c = TypeParam::Connect(l->address(), Settle());
  IPCH_ASSERT_OK(c);
  fault::ScopedPlan armed(this->PlanOf(fault::kAccept | fault::kPoll, fault::Kind::kErrno, EINTR, 0.5));
  auto s = l->Accept(Settle());
  IPCH_ASSERT_OK(s);
  EXPECT_TRUE(RoundTrip(*c, *s, MakeMessage(1, 10, this->Seed())));
}

// Out of descriptors at accept(2) (EMFILE): the listener cannot take the waiting connection now.
// It says so with the errno kept (the contract has no word for it), or waits it out; either way
// the connection is not lost: the next Accept takes it, with the message its client sent.
TYPED_TEST_P(Fault, AcceptOutOfDescriptorsKeepsItsErrnoAndTheConnection) {
  IPCH_REQUIRE_CAP(SyscallIo);
  auto l = TypeParam::Listen(this->address_);
  IPCH_ASSERT_OK(l);
  auto c = TypeParam::Connect(l->address(), Settle());
  IPCH_ASSERT_OK(c);
  IPCH_ASSERT_OK(c->Send(MakeMessage(0, 100, this->Seed()), Settle()));
  std::optional<Result<typename TypeParam::Connection>> s;
  {
    fault::ScopedPlan armed(this->NthOf(fault::kAccept, EMFILE, 1));
    s.emplace(l->Accept(Settle()));
    if (fault::MatchedCalls(0) == 0) {
      GTEST_SKIP() << "UNSUPPORTED: " << TypeParam::kName << "'s Accept makes no accept(2) call (a FIFO has none; "
                   << "a library's own thread accepts as connections arrive)";
    }
    EXPECT_EQ(fault::InjectedCount(), 1u);
  }
  if (!s->ok()) {
    EXPECT_EQ(s->error().code, std::error_code(EMFILE, std::system_category()))
        << "accept out of descriptors: expected the errno kept (EMFILE), got " << s->error().ToString();
    s.emplace(l->Accept(Settle()));
    IPCH_ASSERT_OK(*s) << "the connection waiting when accept ran out of descriptors was lost";
  }
  Bytes got;
  IPCH_ASSERT_OK((*s)->Receive(got, Settle()));
  EXPECT_TRUE(VerifyMessage(got, 0, 100, this->Seed()));
}

TYPED_TEST_P(Fault, ResetOnSendIsPeerClosed) {
  IPCH_REQUIRE_CAP(SyscallIo);
  IPCH_CONNECTED(p);
  fault::ScopedPlan armed(this->NthOf(fault::kWrite, ECONNRESET, 1));
  auto send = [&] { return p.client.Send(AsBytes("x"), Settle()); };
  Status st = this->Surfaced(send(), send);
  if (fault::InjectedCount() == 0) {
    GTEST_SKIP() << "UNSUPPORTED: " << TypeParam::kName << " writes to descriptors that never fail with ECONNRESET "
                 << "(a FIFO has no connection to reset: its reader's death is EPIPE, BrokenPipeOnSendIsPeerClosed)";
  }
  IPCH_EXPECT_ERRC(st, PeerClosed) << this->AsyncNote();
  IPCH_EXPECT_ERRC(p.client.Send(AsBytes("x"), Settle()), PeerClosed) << "PeerClosed must stay";
}

TYPED_TEST_P(Fault, BrokenPipeOnSendIsPeerClosed) {
  IPCH_REQUIRE_CAP(SyscallIo);
  IPCH_CONNECTED(p);
  fault::ScopedPlan armed(this->NthOf(fault::kWrite, EPIPE, 1));
  auto send = [&] { return p.client.Send(AsBytes("x"), Settle()); };
  IPCH_EXPECT_ERRC(this->Surfaced(send(), send), PeerClosed) << this->AsyncNote();
  EXPECT_EQ(fault::InjectedCount(), 1u);
}

TYPED_TEST_P(Fault, ResetOnReceiveIsPeerClosed) {
  IPCH_REQUIRE_CAP(SyscallIo);
  IPCH_CONNECTED(p);
  Status st = this->ReceiveUnderReadFault(p, this->NthOf(fault::kRead, ECONNRESET, 1));
  if (fault::InjectedCount() == 0) {
    GTEST_SKIP() << "UNSUPPORTED: " << TypeParam::kName << " reads from descriptors that never fail with ECONNRESET "
                 << "(a FIFO has no connection to reset: its writer's death is an end of file, which PeerDeath checks)";
  }
  IPCH_EXPECT_ERRC(st, PeerClosed) << this->AsyncNote();
}

TYPED_TEST_P(Fault, HardReadErrorKeepsItsErrno) {
  IPCH_REQUIRE_CAP(SyscallIo);
  IPCH_CONNECTED(p);
  // recv(2) fails with ENOMEM when the kernel cannot allocate for it.
  Status st = this->ReceiveUnderReadFault(p, this->NthOf(fault::kRead, ENOMEM, 1));
  if (fault::InjectedCount() == 0) {
    GTEST_SKIP() << "UNSUPPORTED: " << TypeParam::kName << " reads from descriptors without hard read errors "
                 << "(a FIFO's read fails only with EINTR or EAGAIN, which EintrEverywhereIsInvisible and "
                 << "EagainIsRetried check)";
  }
  ASSERT_FALSE(st.ok()) << this->AsyncNote();
  // Nothing in Errc means "out of memory": the errno itself must come through, not a vague code.
  EXPECT_EQ(st.error().code, std::error_code(ENOMEM, std::system_category())) << st.error().ToString();
}

TYPED_TEST_P(Fault, ConnectRefusedIsPeerClosed) {
  IPCH_REQUIRE_CAP(SyscallIo);
  auto l = TypeParam::Listen(this->address_);
  IPCH_ASSERT_OK(l);
  {
    // Only for transports that connect through connect(2): count the calls first.
    fault::ScopedPlan counting(this->PlanOf(fault::kConnect, fault::Kind::kErrno, ECONNREFUSED, 0.0));
    auto probe = TypeParam::Connect(l->address(), Settle());
    IPCH_ASSERT_OK(probe);
    if (fault::MatchedCalls(0) == 0) {
      GTEST_SKIP() << "UNSUPPORTED: " << TypeParam::kName << " makes no connect(2) call";
    }
    IPCH_ASSERT_OK(l->Accept(Settle()));
  }
  fault::ScopedPlan armed(this->NthOf(fault::kConnect, ECONNREFUSED, 1));
  IPCH_EXPECT_ERRC(TypeParam::Connect(l->address(), Settle()), PeerClosed);
  EXPECT_EQ(fault::InjectedCount(), 1u);
}

// Systematic: the peer's disappearance (EPIPE, which sockets and FIFOs both give) lands on each
// write call of a three-message exchange in turn. Whichever send it hits reports PeerClosed (and
// stays so); every message sent before it arrives intact.
TYPED_TEST_P(Fault, EachWriteInTurnFailingIsPeerClosedAndLosesNothingBefore) {
  IPCH_REQUIRE_CAP(SyscallIo);
  const uint64_t salt = this->Seed();
  const uint64_t total = fault::Enumerate(fault::kWrite, EPIPE, [&](uint64_t n) {
    SCOPED_TRACE("EPIPE at write call " + std::to_string(n) + " of the exchange");
    auto p = [&] {
      fault::ScopedPause setup;  // a transport may write while connecting (fifo): not counted here
      return this->Connected();
    }();
    IPCH_ASSERT_OK(p);
    uint64_t sent = 0;
    Status st;
    for (uint64_t i = 0; i < 3 && st.ok(); ++i) {
      st = p->client.Send(MakeMessage(i, 200 + 700 * i, salt), Settle());
      if (st.ok()) ++sent;
    }
    const bool async = this->Has(Cap::AsyncIo);
    if (n == 0) {
      EXPECT_EQ(sent, 3u);
    } else {
      st = this->Surfaced(st, [&] { return p->client.Send(MakeMessage(9, 10, salt), Settle()); });
      EXPECT_EQ(fault::InjectedCount(), 1u) << this->FaultLog();
      IPCH_EXPECT_ERRC(st, PeerClosed) << this->AsyncNote();
      IPCH_EXPECT_ERRC(p->client.Send(MakeMessage(9, 10, salt), Settle()), PeerClosed) << "must stay failed";
    }
    // What arrives is every message sent before the failure, intact and in order (with AsyncIo,
    // a send that returned before its bytes were written may be among the lost: the error said so).
    Bytes got;
    for (uint64_t i = 0; i < sent; ++i) {
      Status r = p->server.Receive(got, async && n > 0 ? Deadline::After(ShortWait()) : Settle());
      if (async && n > 0 && (r.Is(Errc::PeerClosed) || r.Is(Errc::Timeout))) break;
      IPCH_ASSERT_OK(r);
      EXPECT_TRUE(VerifyMessage(got, i, 200 + 700 * i, salt)) << "message " << i;
    }
  });
  // A library's own I/O thread may write several queued messages in one call (AsyncIo).
  if (this->Has(Cap::AsyncIo)) {
    EXPECT_GE(total, 1u) << "the exchange's bytes go through write calls";
  } else {
    EXPECT_GE(total, 3u) << "each send is at least one write call";
  }
}

}  // namespace ipch::conformance
