// Fault group, call faults: each case is a class of fault (an interrupted call, "would block", a
// partial transfer, a hard error, the peer gone under a send or a receive, a refused or starved
// connection set-up) injected into whichever calls the transport's mechanism makes for it: the
// byte I/O, waits, accept and connect of a socket or FIFO (SyscallIo), the futex waits of a
// shared-memory ring (SharedMemory), the sends and receives of a message queue (QueueIo).
#pragma once

#include <gtest/gtest.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <system_error>
#include <utility>

#include "fault_fixture.h"
#include "fault_setup.h"
#include "fixture.h"
#include "ipch/audit.h"
#include "ipch/fault.h"
#include "ipch/result.h"
#include "ipch/testing.h"
#include "ipch/transport.h"

namespace ipch::conformance {

inline constexpr uint64_t kQueueSend = fault::kMsgsnd | fault::kMqSend;
inline constexpr uint64_t kQueueReceive = fault::kMsgrcv | fault::kMqReceive;
// Every call a transport moves its messages through or waits in.
inline constexpr uint64_t kMessageCalls =
    fault::kRead | fault::kWrite | fault::kPoll | fault::kFutex | kQueueSend | kQueueReceive;

// Transports whose messages go through calls the fault library interposes (byte I/O, queue
// calls, a ring's futex waits).
template <class T>
constexpr bool kInterposedIo =
    T::kCaps.Has(Cap::SyscallIo) || T::kCaps.Has(Cap::SharedMemory) || T::kCaps.Has(Cap::QueueIo);

// For the cases that fault the calls a transport moves its messages through and waits in.
#define IPCH_REQUIRE_INTERPOSED_IO()                                                                         \
  do {                                                                                                       \
    if (!::ipch::conformance::kInterposedIo<TypeParam>) {                                                    \
      GTEST_SKIP() << "UNSUPPORTED: " << TypeParam::kName << " has none of SyscallIo, SharedMemory, QueueIo: " \
                   << "its messages go through no interposed call";                                          \
    }                                                                                                        \
  } while (0)

// Why a transport without byte I/O has no call that can move part of a message ("" with it).
template <class T>
std::string NoPartialTransfer() {
  if (T::kCaps.Has(Cap::SyscallIo)) return "";
  if (T::kCaps.Has(Cap::QueueIo)) return "a queue call moves a whole message or none, never part of one";
  if (T::kCaps.Has(Cap::SharedMemory)) return "messages are copied in shared memory: no call moves part of one";
  return "";
}
#define IPCH_REQUIRE_PARTIAL_TRANSFER()                                                        \
  do {                                                                                         \
    if (const std::string why = NoPartialTransfer<TypeParam>(); !why.empty()) {                \
      IPCH_NOT_APPLICABLE(why);                                                                \
    }                                                                                          \
    IPCH_REQUIRE_CAP(SyscallIo);                                                               \
  } while (0)

// Interrupted calls are retried, unseen: EINTR on the byte I/O and waits of a socket or FIFO, on
// the futex waits of a shared-memory ring, on the sends and receives of a message queue.
TYPED_TEST_P(Fault, EintrEverywhereIsInvisible) {
  IPCH_REQUIRE_INTERPOSED_IO();
  this->EchoUnder(this->PlanOf(kMessageCalls, fault::Kind::kErrno, EINTR, 0.3));
}

TYPED_TEST_P(Fault, ShortWritesAreCompleted) {
  IPCH_REQUIRE_PARTIAL_TRANSFER();
  this->EchoUnder(this->PlanOf(fault::kWrite, fault::Kind::kShort, 0, 0.5));
}

TYPED_TEST_P(Fault, ShortReadsAreAssembled) {
  IPCH_REQUIRE_PARTIAL_TRANSFER();
  this->EchoUnder(this->PlanOf(fault::kRead, fault::Kind::kShort, 0, 0.5));
}

// "Try again" is retried or waited out, never an error: EAGAIN from a read or write, from a
// futex wait (the word changed before the wait began), from a queue send that does not wait (the
// queue is full) or a POSIX queue receive (empty), and msgrcv's ENOMSG (empty). The engine says
// it only where the call was asked not to wait, as the kernel does.
TYPED_TEST_P(Fault, EagainIsRetried) {
  IPCH_REQUIRE_INTERPOSED_IO();
  fault::Plan plan = this->PlanOf(fault::kRead | fault::kWrite | fault::kFutex | kQueueSend | fault::kMqReceive,
                                  fault::Kind::kErrno, EAGAIN, 0.3);
  plan.rules.push_back({fault::kMsgrcv, fault::Kind::kErrno, ENOMSG, 0, 0.3, 0});
  if (this->Has(Cap::QueueIo) && !this->EchoInjects(plan)) {
    IPCH_NOT_APPLICABLE("its queue calls all wait (a blocking queue, deadlines as the calls' timeouts): the kernel "
                        "never says a queue is full or empty to a call that waits");
  }
  this->EchoUnder(plan);
}

// A wait that comes back early with nothing ready (a spurious futex wake-up; a poll, futex or
// POSIX queue wait that says it timed out before its deadline) is looked at again: the exchange
// loses nothing, and a receive that waits on an idle connection reports Timeout only once its
// deadline has really passed, however often its waits come back early.
TYPED_TEST_P(Fault, WaitsWokenEarlyAreWaitedAgain) {
  IPCH_REQUIRE_INTERPOSED_IO();
  constexpr uint64_t kTimedWaits = fault::kFutex | fault::kMqSend | fault::kMqReceive;
  fault::Plan plan = this->PlanOf(fault::kWaits, fault::Kind::kWake, 0, 0.3);
  plan.rules.push_back({kTimedWaits, fault::Kind::kErrno, ETIMEDOUT, 0, 0.2, 0});
  {
    IPCH_CONNECTED(p);
    // Each end in turn waits on an idle connection with every wait coming back early; an end
    // whose waits no interposer reaches (a condition variable's) is passed over.
    int ends_faulted = 0;
    for (auto* end : {&p.server, &p.client}) {
      fault::Plan always = plan;
      // Every wait comes back at once, but not for ever: a receive that spins on spurious
      // wake-ups past its deadline (never looking at it) ends, late, after a million of them.
      for (auto& r : always.rules) r.probability = 1.0, r.max_fires = 1000000;
      fault::ScopedPlan armed(always);
      Bytes got;
      const auto wait = ShortWait();
      const auto start = Clock::now();
      const Status st = end->Receive(got, Deadline::After(wait));
      const auto took = Clock::now() - start;
      if (fault::InjectedCount() == 0) continue;
      ++ends_faulted;
      SCOPED_TRACE(end == &p.server ? "the accepted end" : "the connecting end");
      IPCH_EXPECT_ERRC(st, Timeout) << "faults: " << this->FaultLog();
      EXPECT_GE(took, wait) << "Timeout reported "
                            << std::chrono::duration_cast<std::chrono::milliseconds>(wait - took).count()
                            << " ms before the deadline, after " << fault::InjectedCount()
                            << " early wake-ups; faults: " << this->FaultLog();
      EXPECT_LE(took, wait + PromptBound())
          << "Timeout reported " << std::chrono::duration_cast<std::chrono::milliseconds>(took - wait).count()
          << " ms after the deadline, after " << fault::InjectedCount()
          << " early wake-ups: the deadline is not looked at after a wake-up that found nothing";
    }
    if (ends_faulted == 0 && this->Has(Cap::QueueIo)) {
      IPCH_NOT_APPLICABLE("its receive waits in msgrcv, which has no timeout of its own to come back early "
                          "(its early return is EINTR, which EintrEverywhereIsInvisible checks)");
    }
    if (ends_faulted == 0) {
      GTEST_SKIP() << "UNSUPPORTED: " << TypeParam::kName << " waits in no poll, futex or POSIX queue call "
                   << "(a process-shared pthread condition variable waits in libc's own futex calls, which "
                   << "no interposer reaches)";
    }
    EXPECT_TRUE(RoundTrip(p.client, p.server, MakeMessage(1, 100, this->Seed()))) << "the connection works after";
  }  // the listener closes: EchoUnder listens at the same address
  this->EchoUnder(plan);
}

// Whatever a listener waits in while it takes a connection (accept(2) and poll, the futex of a
// shared-memory rendezvous, a queue receive) is interrupted, and the connection is taken all the
// same. Armed before the connect: a library's own thread may accept as connections arrive. Where
// a connect only leaves an offer and the Accept finds it without waiting (a shared-memory
// rendezvous), the Accept runs first, its first wait is interrupted, and the connect comes once
// it waits again.
TYPED_TEST_P(Fault, AcceptInterruptedIsRetried) {
  IPCH_REQUIRE_INTERPOSED_IO();
  auto l = TypeParam::Listen(this->address_);
  IPCH_ASSERT_OK(l);
  constexpr uint64_t kWaits = fault::kAccept | fault::kPoll | fault::kFutex | kQueueReceive;
  // The first wait made is interrupted, whatever the draws; later ones one time in two.
  fault::Plan plan = this->NthOf(kWaits, EINTR, 1);
  plan.rules.push_back(this->PlanOf(kWaits, fault::Kind::kErrno, EINTR, 0.5).rules[0]);
  std::optional<Result<typename TypeParam::Connection>> c, s;
  {
    fault::ScopedPlan armed(plan);
    c.emplace(TypeParam::Connect(l->address(), Settle()));
    IPCH_ASSERT_OK(*c) << "faults: " << this->FaultLog();
    s.emplace(l->Accept(Settle()));
    IPCH_ASSERT_OK(*s) << "faults: " << this->FaultLog();
  }
  if (fault::InjectedInTree() == 0) {
    EXPECT_TRUE(RoundTrip(**c, **s, MakeMessage(0, 10, this->Seed())));
    c.reset();
    s.reset();
    fault::ScopedPlan armed(this->NthOf(kWaits, EINTR, 1));
    std::atomic<bool> returned{false};
    InBackground accepting([&] {
      s.emplace(l->Accept(Settle()));
      returned = true;
      return Ok();
    });
    // Until the Accept waits again, or gives up (its own deadline, Settle, ends this loop first).
    const Deadline waiting = Deadline::After(2 * Scaled(SettleBound()));
    while (fault::MatchedCalls(0) < 2 && !returned && !waiting.expired()) std::this_thread::yield();
    if (returned && fault::MatchedCalls(0) == 0 && !s->ok()) {
      // The Accept gave up waiting, in no call the plan matches (its wait was not interposed).
      GTEST_SKIP() << "UNSUPPORTED: " << TypeParam::kName << " made no interposed wait while connecting, with its "
                   << "Accept first or last (its lone Accept ended " << s->error().ToString()
                   << "): its rendezvous waits elsewhere";
    }
    c.emplace(TypeParam::Connect(l->address(), Settle()));
    IPCH_ASSERT_OK(accepting.get());
    IPCH_ASSERT_OK(*c) << "faults: " << this->FaultLog();
    IPCH_ASSERT_OK(*s) << "with its Accept first; " << fault::MatchedCalls(0)
                       << " calls matched; faults: " << this->FaultLog();
    if (fault::InjectedInTree() == 0) {
      GTEST_SKIP() << "UNSUPPORTED: " << TypeParam::kName << " made no interposed wait while connecting, with its "
                   << "Accept first or last (" << fault::MatchedCalls(0)
                   << " calls matched, none drawn): its rendezvous waits elsewhere";
    }
  }
  EXPECT_TRUE(RoundTrip(**c, **s, MakeMessage(1, 10, this->Seed())));
}

// Out of descriptors (or memory, or queue space) while the listener takes a waiting connection:
// the first call that acquires something for it fails with that call's typical errno (EMFILE for
// accept(2), open, shm_open, mq_open; ENOMEM for mmap and shmat; ENOSPC for msgget). The listener
// says so with the errno kept (the contract has no word for it), or waits it out; either way the
// connection is not lost: the next Accept takes it, with the message its client sent. Where the
// listener's own thread takes connections as they arrive (a FIFO acceptor, a library's I/O
// thread), the fault is its, armed before the connect for every thread but the connector's.
TYPED_TEST_P(Fault, AcceptOutOfDescriptorsKeepsItsErrnoAndTheConnection) {
  IPCH_REQUIRE_INTERPOSED_IO();
  auto l = TypeParam::Listen(this->address_);
  IPCH_ASSERT_OK(l);
  const Bytes msg = MakeMessage(0, 100, this->Seed());
  std::optional<Result<typename TypeParam::Connection>> c, s;
  int err = 0;
  auto faulted = [&](uint64_t ops, long thread, bool before_connect) {
    fault::Plan plan = this->NthOf(ops, fault::kTypicalErrno, 1);
    plan.rules[0].thread = thread;
    std::optional<fault::ScopedPlan> armed;
    if (before_connect) armed.emplace(plan);
    c.emplace(TypeParam::Connect(l->address(), Settle()));
    if (c->ok()) (void)(*c)->Send(msg, Settle());
    if (!before_connect) armed.emplace(plan);
    s.emplace(l->Accept(Settle()));
    err = fault::LastInjectedErrno();
    return fault::InjectedInTree() > 0;
  };
  // In the Accept itself, in this thread; or in the listener's own threads, as connections come.
  // With AsyncIo the listener's threads are asked first (a library that accepts as connections
  // arrive); an asynchronous transport whose threads only write still accepts in this one.
  auto in_accept = [&] { return faulted(kAcquireCalls, fault::ThisThread(), false); };
  auto in_its_threads = [&] {
    return faulted(this->Has(Cap::AsyncIo) ? uint64_t{fault::kAccept} : kAcquireCalls, -fault::ThisThread(), true);
  };
  const bool hit = this->Has(Cap::AsyncIo) ? in_its_threads() || in_accept() : in_accept() || in_its_threads();
  IPCH_ASSERT_OK(*c);
  if (!hit) {
    IPCH_NOT_APPLICABLE("taking a connection acquires nothing through an interposed call, in Accept or in a thread "
                        "of the listener's (the connector made what the connection needs): nothing can run out");
  }
  SCOPED_TRACE("faults: " + this->FaultLog());
  if (!s->ok()) {
    EXPECT_EQ(s->error().code, std::error_code(err, std::system_category()))
        << "accept out of resources: expected the errno kept (" << std::strerror(err) << "), got "
        << s->error().ToString();
    s.emplace(l->Accept(Settle()));
    IPCH_ASSERT_OK(*s) << "the connection waiting when accept ran out of resources was lost";
  }
  Bytes got;
  IPCH_ASSERT_OK((*s)->Receive(got, Settle()));
  EXPECT_TRUE(VerifyMessage(got, 0, 100, this->Seed()));
  EXPECT_TRUE(RoundTrip(**s, **c, MakeMessage(1, 100, this->Seed()))) << "the connection taken after works";
}

// The peer is gone under a send: a reset or a broken pipe on a socket's write, a broken pipe on a
// FIFO's, a SysV queue removed under msgsnd (EIDRM). PeerClosed, and it stays so.
TYPED_TEST_P(Fault, PeerGoneUnderSendIsPeerClosed) {
  IPCH_REQUIRE_INTERPOSED_IO();
  if (!this->Has(Cap::SyscallIo) && !this->Has(Cap::QueueIo)) {
    IPCH_NOT_APPLICABLE("its messages go through shared memory: no send call to fail (a dead peer is found by its "
                        "pid, PeerDeath)");
  }
  int tried = 0;
  for (const auto& [ops, err] : {std::pair{fault::kWrite, ECONNRESET}, std::pair{fault::kWrite, EPIPE},
                                 std::pair{fault::kMsgsnd, EIDRM}}) {
    SCOPED_TRACE(std::string(std::strerror(err)) + " on the send");
    if (this->Has(Cap::Reconnects) && ops == fault::kWrite) {
      // A broken connection is not the peer gone: the message gets through once, or PeerClosed.
      this->SendOverABrokenConnection(this->NthOf(ops, err, 1));
      ++tried;
      continue;
    }
    IPCH_CONNECTED(p);
    fault::ScopedPlan armed(this->NthOf(ops, err, 1));
    auto send = [&] { return p.client.Send(AsBytes("x"), Settle()); };
    Status st = this->Surfaced(send(), send);
    if (fault::InjectedCount() == 0) continue;  // a call this mechanism never makes, or an errno it cannot give
    ++tried;
    IPCH_EXPECT_ERRC(st, PeerClosed) << this->AsyncNote() << "; faults: " << this->FaultLog();
    IPCH_EXPECT_ERRC(p.client.Send(AsBytes("x"), Settle()), PeerClosed) << "PeerClosed must stay";
  }
  if (tried == 0) {
    IPCH_NOT_APPLICABLE("its sends never learn of a peer gone (a POSIX queue cannot vanish under an open "
                        "descriptor); its peer's death is found by pid (PeerDeath)");
  }
}

// The peer is gone under a receive: a reset on a socket's read, a SysV queue removed under
// msgrcv (EIDRM). PeerClosed, and it stays so.
TYPED_TEST_P(Fault, PeerGoneUnderReceiveIsPeerClosed) {
  IPCH_REQUIRE_INTERPOSED_IO();
  if (!this->Has(Cap::SyscallIo) && !this->Has(Cap::QueueIo)) {
    IPCH_NOT_APPLICABLE("its messages go through shared memory: no receive call to fail (a dead peer is found by "
                        "its pid, PeerDeath)");
  }
  if (this->Has(Cap::Reconnects)) {
    this->SendOverABrokenConnection(this->NthOf(fault::kRead, ECONNRESET, 1));
    return;
  }
  IPCH_CONNECTED(p);
  Status st;
  if (this->Has(Cap::SyscallIo)) {
    st = this->ReceiveUnderReadFault(p, this->NthOf(fault::kRead, ECONNRESET, 1));
  } else {
    fault::ScopedPlan armed(this->NthOf(fault::kMsgrcv, EIDRM, 1));
    Bytes got;
    st = p.server.Receive(got, Deadline::After(ShortWait()));
  }
  if (fault::InjectedCount() == 0) {
    IPCH_NOT_APPLICABLE("its receives never learn of a peer gone (a FIFO has no connection to reset: its writer's "
                        "death is an end of file; a POSIX queue cannot vanish under an open descriptor); "
                        "PeerDeath checks how it finds a dead peer");
  }
  IPCH_EXPECT_ERRC(st, PeerClosed) << this->AsyncNote() << "; faults: " << this->FaultLog();
  Bytes got;
  IPCH_EXPECT_ERRC(p.server.Receive(got, Settle()), PeerClosed) << "PeerClosed must stay";
}

// A hard error (nothing in Errc means "out of memory") keeps its errno: ENOMEM on a socket's
// read, or on a queue send, which then sent nothing of its message, and the connection goes on.
// A transport that reconnects takes a hard error as a broken connection underneath.
TYPED_TEST_P(Fault, HardIoErrorKeepsItsErrno) {
  IPCH_REQUIRE_INTERPOSED_IO();
  if (!this->Has(Cap::SyscallIo) && !this->Has(Cap::QueueIo)) {
    IPCH_NOT_APPLICABLE("its messages go through shared memory, and its waits (futex) fail only with EINTR, "
                        "EAGAIN or ETIMEDOUT: no call has a hard error to keep");
  }
  if (this->Has(Cap::Reconnects)) {
    this->SendOverABrokenConnection(this->NthOf(fault::kRead, ENOMEM, 1));
    return;
  }
  IPCH_CONNECTED(p);
  if (this->Has(Cap::QueueIo)) {
    {
      fault::ScopedPlan armed(this->NthOf(kQueueSend, ENOMEM, 1));
      Status st = p.client.Send(MakeMessage(1, 100, this->Seed()), Settle());
      ASSERT_FALSE(st.ok());
      EXPECT_EQ(st.error().code, std::error_code(ENOMEM, std::system_category())) << st.error().ToString();
      EXPECT_EQ(fault::InjectedCount(), 1u);
    }
    EXPECT_TRUE(RoundTrip(p.client, p.server, MakeMessage(2, 100, this->Seed())))
        << "nothing of the failed send arrives, and the connection goes on";
    return;
  }
  // recv(2) fails with ENOMEM when the kernel cannot allocate for it.
  Status st = this->ReceiveUnderReadFault(p, this->NthOf(fault::kRead, ENOMEM, 1));
  if (fault::InjectedCount() == 0) {
    IPCH_NOT_APPLICABLE("a FIFO's read fails only with EINTR or EAGAIN (EintrEverywhereIsInvisible, EagainIsRetried)");
  }
  ASSERT_FALSE(st.ok()) << this->AsyncNote();
  EXPECT_EQ(st.error().code, std::error_code(ENOMEM, std::system_category())) << st.error().ToString();
}

// Nobody is there any more when the connector looks for its listener: each call of Connect that
// looks something up (connect(2); open, shm_open, mq_open without O_CREAT; msgget, shmget
// without IPC_CREAT) fails in turn as if it were gone (ECONNREFUSED, ENOENT). The Connect
// fails, with PeerClosed or that errno kept, and leaves nothing behind; the turn that hits the
// listener's own object (every transport has one) says PeerClosed.
TYPED_TEST_P(Fault, ConnectRefusedIsPeerClosed) {
  IPCH_REQUIRE_INTERPOSED_IO();
  auto l = TypeParam::Listen(this->address_);
  IPCH_ASSERT_OK(l);
  const std::string address = l->address();
  int peer_closed = 0;
  uint64_t turns = 0;
  for (const auto& [ops, err] :
       {std::pair{uint64_t{fault::kConnect}, ECONNREFUSED},
        std::pair{fault::kOpen | fault::kShmOpen | fault::kMqOpen | fault::kMsgget | fault::kShmget, ENOENT}}) {
    fault::Plan plan = this->NthOf(ops, err, 1);
    plan.rules[0].lookup_only = true;
    // A look-up by name is the connector's own (its listener's threads here may look up too);
    // connect(2) may be made by a library's I/O thread on the connector's behalf.
    if (err == ENOENT) plan.rules[0].thread = fault::ThisThread();
    const uint64_t n = [&] {  // how many such calls one Connect makes
      fault::Plan count = plan;
      count.rules[0].every_nth = 0;
      fault::ScopedPlan counting(count);
      auto probe = TypeParam::Connect(address, Settle());
      const uint64_t calls = fault::MatchedCalls(0);
      fault::ScopedPause pause;
      if (probe.ok()) (void)l->Accept(Settle());
      return calls;
    }();
    for (uint64_t i = 1; i <= n; ++i) {
      SCOPED_TRACE(std::string(std::strerror(err)) + " at look-up " + std::to_string(i) + " of " + std::to_string(n));
      const StepAudit step;
      plan.rules[0].every_nth = static_cast<uint32_t>(i);
      Result<typename TypeParam::Connection> c = [&] {
        fault::ScopedPlan armed(plan);
        return TypeParam::Connect(address, Settle());
      }();
      ++turns;
      if (c.ok()) {
        (void)l->Accept(Deadline::After(ShortWait()));
        ADD_FAILURE() << "Connect succeeded though a look-up of its failed with " << std::strerror(err);
        continue;
      }
      peer_closed += c.Is(Errc::PeerClosed);
      EXPECT_TRUE(c.Is(Errc::PeerClosed) || c.error().code == std::error_code(err, std::system_category()))
          << "expected PeerClosed or the errno kept, got " << c.error().ToString();
      // The listener may have taken the connection its connector then gave up (a FIFO listener
      // opens what a request names at once): accepted and closed, it leaves nothing.
      while (l->Accept(Deadline::After(ShortWait())).ok()) {
      }
      const auto leaks = step.Leaks();
      EXPECT_TRUE(leaks.empty()) << "left behind: " << ::testing::PrintToString(leaks);
    }
  }
  if (turns == 0) {
    GTEST_SKIP() << "UNSUPPORTED: " << TypeParam::kName << "'s Connect looks nothing up through an interposed call";
  }
  EXPECT_GT(peer_closed, 0) << "no failed look-up of the listener was reported as PeerClosed";
  auto c = TypeParam::Connect(address, Settle());
  IPCH_ASSERT_OK(c) << "the listener serves after the failed connects";
  auto s = l->Accept(Settle());
  IPCH_ASSERT_OK(s);
  EXPECT_TRUE(RoundTrip(*c, *s, MakeMessage(1, 10, this->Seed()))) << "the listener serves after the failed connects";
}

// Systematic: the peer's disappearance (EPIPE, which sockets and FIFOs both give) lands on each
// write call of a three-message exchange in turn. Whichever send it hits reports PeerClosed (and
// stays so); every message sent before it arrives intact.
TYPED_TEST_P(Fault, EachWriteInTurnFailingIsPeerClosedAndLosesNothingBefore) {
  if (const std::string why = NoPartialTransfer<TypeParam>(); !why.empty()) {
    IPCH_NOT_APPLICABLE("no write call of a byte stream to fail; a queue's or shared memory's peer gone is "
                        "PeerGoneUnderSendIsPeerClosed's and PeerDeath's (a removed queue takes the messages in it "
                        "with it: none are left to deliver)");
  }
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
    if (this->Has(Cap::Reconnects)) {
      // A broken connection is not the peer gone: every message whose send succeeded arrives,
      // once and in order; a refused one (PeerClosed) at most once, after them.
      if (!st.ok()) {
        IPCH_EXPECT_ERRC(st, PeerClosed);
        IPCH_EXPECT_OK(p->client.Close());
      }
      Bytes got;
      for (uint64_t i = 0; i < sent; ++i) {
        IPCH_ASSERT_OK(p->server.Receive(got, Settle())) << "message " << i;
        EXPECT_TRUE(VerifyMessage(got, i, 200 + 700 * i, salt)) << "message " << i;
      }
      Status more = p->server.Receive(got, st.ok() ? Deadline::After(ShortWait()) : Settle());
      if (!st.ok() && more.ok()) {
        EXPECT_TRUE(VerifyMessage(got, sent, 200 + 700 * sent, salt)) << "the refused message, arrived";
        more = p->server.Receive(got, Settle());
      }
      if (st.ok()) {
        IPCH_EXPECT_ERRC(more, Timeout) << "a message arrived twice";
      } else {
        IPCH_EXPECT_ERRC(more, PeerClosed) << "after the sender closed";
      }
      return;
    }
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
