// Fault group, setup under resource failure: each acquiring and each releasing call fails in turn
// while a connection is set up and torn down; nothing may be left behind or block the address.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <optional>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "fault_fixture.h"
#include "fixture.h"
#include "ipch/audit.h"
#include "ipch/fault.h"
#include "ipch/result.h"
#include "ipch/testing.h"
#include "ipch/transport.h"

namespace ipch::conformance {

// Calls that acquire something (descriptors, sockets, mappings, segments) and calls that release
// it. shmctl and msgctl do both (IPC_STAT checks, IPC_RMID removes) and count as releases.
inline constexpr uint64_t kAcquireCalls =
    fault::kSocket | fault::kSocketpair | fault::kBind | fault::kListen | fault::kAccept | fault::kConnect |
    fault::kOpen | fault::kPipe | fault::kMkfifo | fault::kMmap | fault::kFtruncate | fault::kShmOpen |
    fault::kMemfdCreate | fault::kShmget | fault::kShmat | fault::kMsgget | fault::kMqOpen;
inline constexpr uint64_t kReleaseCalls = fault::kClose | fault::kShutdown | fault::kMunmap | fault::kShmUnlink |
                                          fault::kShmdt | fault::kShmctl | fault::kMsgctl | fault::kMqUnlink;

// Whether a failed setup step reports the errno injected: the errno itself, or the contract's
// word for it where it has one (a taken address, a refusal, a removed object).
inline bool ReportsInjected(const Status& st, int err) {
  if (st.ok()) return false;
  if (st.error().code == std::error_code(err, std::system_category())) return true;
  switch (err) {
    case EADDRINUSE:
    case EEXIST:
      return st.Is(Errc::AlreadyExists);
    case EACCES:
    case EPERM:
      return st.Is(Errc::PermissionDenied);
    case EIDRM:
    case ECONNREFUSED:
    case ENOENT:
      return st.Is(Errc::PeerClosed);
    default:
      return false;
  }
}

// Listen, connect, accept and one round trip, then everything closed; under Enumerate, each
// call of `ops` fails in turn with `err`. Returns which step failed ("" if none) and how. Wrong
// bytes are a failure too (Corrupt), as this also runs where no assertion can be recorded (a
// forked child). A connect that times out learns nothing of the listener's trouble (a FIFO's
// or an HTTP server's acceptor out of descriptors does not answer): the listener's Accept is
// then asked, and must say it.
template <class T>
std::string SetUpAndTearDown(const std::string& address, const Bytes& msg, Status* st,
                             Clock::duration connect_bound = Scaled(SettleBound())) {
  auto l = T::Listen(address);
  if (!l.ok()) return *st = std::move(l).error(), "listen";
  auto c = T::Connect(l->address(), Deadline::After(connect_bound));
  if (!c.ok() && c.error().Is(Errc::Timeout)) {
    auto s = l->Accept(Deadline::After(ShortWait()));
    if (!s.ok()) return *st = std::move(s).error(), "accept, after the connect timed out";
  }
  if (!c.ok()) return *st = std::move(c).error(), "connect";
  auto s = l->Accept(Settle());
  if (!s.ok()) return *st = std::move(s).error(), "accept";
  // A transport may acquire as it exchanges (an HTTP client opens its message connections at
  // its first send and receive): a fault there is that call's to report, like a setup step's.
  Bytes got;
  if (*st = c->Send(msg, Settle()); !st->ok()) return "send";
  if (*st = s->Receive(got, Settle()); !st->ok()) return "receive";
  if (got != msg) return *st = MakeError(Errc::Corrupt, "the bytes received are not those sent"), "receive";
  if (*st = s->Send(msg, Settle()); !st->ok()) return "send back";
  if (*st = c->Receive(got, Settle()); !st->ok()) return "receive back";
  if (got != msg) return *st = MakeError(Errc::Corrupt, "the bytes received are not those sent"), "receive back";
  return "";
}

// What one step left behind while a listener lives on: the audit's difference since it began,
// and files in the test's scratch directory that were not there then (the listener's own were).
// Leaks() waits for the step's objects to settle, reports them, and removes them.
class StepAudit {
 public:
  StepAudit()
      : prefix_("ipch-" + std::to_string(::getpid()) + "-"),
        before_(audit::Take(prefix_)),
        files_(audit::LeftoverFiles(::ipch::testing::Current().scratch_dir)) {}
  std::vector<std::string> Leaks() const {
    const auto& scratch = ::ipch::testing::Current().scratch_dir;
    audit::Settled end;
    std::vector<std::string> leaks;
    for (const auto until = Deadline::After(audit::SettleBound());;) {
      end = audit::AwaitSettled(before_, prefix_, {});
      leaks = end.leaks;
      for (const auto& f : audit::LeftoverFiles(scratch)) {
        if (std::find(files_.begin(), files_.end(), f) == files_.end()) leaks.push_back("file left in scratch dir: " + f);
      }
      if (leaks.empty() || until.expired()) break;
      timespec pause{0, 1000000};
      ::nanosleep(&pause, nullptr);
    }
    audit::CleanUp(before_, end.after);
    return leaks;
  }

 private:
  std::string prefix_;
  audit::Snapshot before_;
  std::vector<std::string> files_;
};

// Enumerate(ops, err) over SetUpAndTearDown: after each turn, with faults paused, calls
// check(n, failed_step, status, leaks) and then removes whatever the turn left behind.
template <class T, class Check>
uint64_t EnumerateSetUps(const std::string& address, uint64_t ops, int err, uint64_t salt, Check check) {
  const std::string prefix = "ipch-" + std::to_string(::getpid()) + "-";
  const auto& scratch = ::ipch::testing::Current().scratch_dir;
  const Bytes msg = MakeMessage(1, 100, salt);
  return fault::Enumerate(ops, err, [&](uint64_t n) {
    SCOPED_TRACE((err == fault::kTypicalErrno ? std::string("each call's typical errno") : std::strerror(err)) +
                 " at call " + std::to_string(n) + " of the kinds enumerated");
    audit::Snapshot before;
    {
      fault::ScopedPause pause;
      before = audit::Take(prefix);
    }
    Status st;
    const std::string failed = SetUpAndTearDown<T>(address, msg, &st);
    fault::ScopedPause pause;
    const audit::Settled end = audit::AwaitSettled(before, prefix, scratch);
    check(n, failed, st, end.leaks);
    audit::CleanUp(before, end.after);
    for (const auto& f : audit::LeftoverFiles(scratch)) std::filesystem::remove(scratch / f);
  });
}

// Every call that acquires a resource while a connection is set up and torn down (socket, bind,
// listen, connect, accept, open, mmap, ftruncate, shm_open, shmget, shmat, ...) fails in turn
// with its own typical failure (EMFILE for socket, ENOMEM for mmap, EADDRINUSE for listen: the
// first of fault::PossibleErrnos). The step it hits reports that errno (ReportsInjected), or the transport
// recovers and the connection works; either way nothing is left behind: no descriptor,
// /dev/shm entry, SysV object or socket file, checked after each turn.
TYPED_TEST_P(Fault, EachAcquiringCallFailingInTurnLeavesNothingBehind) {
  if (!this->Has(Cap::SyscallIo) && !this->Has(Cap::SharedMemory) && !this->Has(Cap::QueueIo)) {
    GTEST_SKIP() << "UNSUPPORTED: " << TypeParam::kName << " makes no interposable setup calls";
  }
  uint64_t failed_turns = 0;
  const uint64_t total = EnumerateSetUps<TypeParam>(
      this->address_, kAcquireCalls, fault::kTypicalErrno, this->Seed(),
      [&](uint64_t n, const std::string& failed, const Status& st, const std::vector<std::string>& leaks) {
        if (n == 0) {
          EXPECT_EQ(failed, "") << st.error().ToString();
        }
        if (!failed.empty()) {
          ++failed_turns;
          EXPECT_EQ(fault::InjectedCount(), 1u);
          EXPECT_TRUE(ReportsInjected(st, fault::LastInjectedErrno()))
              << failed << " failed with " << st.error().ToString() << "; faults: " << this->FaultLog();
        }
        EXPECT_TRUE(leaks.empty()) << "faults: " << this->FaultLog()
                                   << "; left behind: " << ::testing::PrintToString(leaks);
      });
  EXPECT_GE(total, 3u) << "listen, connect and accept acquire at least three things";
  EXPECT_GT(failed_turns, 0u) << "no acquiring call's failure was ever reported";
}

// Every call that releases something (shutdown, munmap, shm_unlink, shmctl, msgctl, mq_unlink)
// fails in turn, with its own typical failure (close of a socket or FIFO and shmdt of an attached
// segment never fail on Linux, so they are not among them). What a failed release holds cannot always be freed (an
// unlink that failed leaves the name), but it must never crash, hang or fail the connection, and it must never block
// the address: the next Listen there works (the orphan policy reclaims a name left behind).
TYPED_TEST_P(Fault, EachReleasingCallFailingInTurnNeverBlocksTheAddress) {
  if (!this->Has(Cap::SyscallIo) && !this->Has(Cap::SharedMemory) && !this->Has(Cap::QueueIo)) {
    GTEST_SKIP() << "UNSUPPORTED: " << TypeParam::kName << " makes no interposable release calls";
  }
  const uint64_t total = EnumerateSetUps<TypeParam>(
      this->address_, kReleaseCalls, fault::kTypicalErrno, this->Seed(),
      [&](uint64_t, const std::string& failed, const Status& st, const std::vector<std::string>&) {
        // shmctl and msgctl also check (IPC_STAT) while setting up: a step may fail, but only
        // with the errno injected, or, for accept, by waiting on: a listener refuses an offer
        // whose objects it cannot check (the connector learns PeerClosed), and none is left.
        if (!failed.empty() && !(failed == "accept" && st.Is(Errc::Timeout))) {
          EXPECT_TRUE(ReportsInjected(st, fault::LastInjectedErrno()))
              << failed << " failed with " << st.error().ToString() << "; faults " << this->FaultLog();
        }
        auto again = TypeParam::Listen(this->address_);
        IPCH_EXPECT_OK(again) << "the address is blocked after: " << this->FaultLog();
      });
  if (total == 0) {
    IPCH_NOT_APPLICABLE("setting a connection up and tearing it down, it releases only through close(2), which "
                        "never fails for a socket or FIFO on Linux");
  }
}

// Connection set-up that is slow or times out, as no proxy can make it: every call that sets up
// a connection (socket, connect, accept, open, shm_open, mq_open, msgget, mmap, ...) and every
// wait is delayed. A Connect and an Accept given time enough succeed and the connection works;
// one given too little ends in Timeout (or succeeds), never later than its deadline plus one
// delay (a delayed call cannot be cut short). And connect(2) timing out (ETIMEDOUT: the listener's
// host never answered) fails the Connect (Timeout, PeerClosed or that errno), leaving nothing.
TYPED_TEST_P(Fault, SlowOrTimedOutSetUpHonoursItsDeadline) {
  if (!this->Has(Cap::SyscallIo) && !this->Has(Cap::SharedMemory) && !this->Has(Cap::QueueIo)) {
    GTEST_SKIP() << "UNSUPPORTED: " << TypeParam::kName << " makes no interposable setup calls";
  }
  const auto delay = std::chrono::duration_cast<std::chrono::microseconds>(ShortWait() / 4);
  fault::Plan slow;
  slow.seed = this->Seed();
  slow.rules.push_back({kAcquireCalls | fault::kPoll | fault::kFutex, fault::Kind::kDelay, 0, 0, 1.0, 0,
                        static_cast<uint32_t>(delay.count())});
  auto l = TypeParam::Listen(this->address_);
  IPCH_ASSERT_OK(l);
  {
    SCOPED_TRACE("every set-up call delayed " + std::to_string(delay.count()) + " us, deadlines ample");
    std::optional<Result<typename TypeParam::Connection>> c, s;
    {
      fault::ScopedPlan armed(slow);
      c.emplace(TypeParam::Connect(l->address(), Settle()));
      IPCH_ASSERT_OK(*c);
      s.emplace(l->Accept(Settle()));
      IPCH_ASSERT_OK(*s);
      if (fault::InjectedInTree() == 0) {
        GTEST_SKIP() << "UNSUPPORTED: " << TypeParam::kName << " made no interposed set-up call or wait";
      }
    }
    EXPECT_TRUE(RoundTrip(**c, **s, MakeMessage(1, 100, this->Seed())));
  }
  {
    SCOPED_TRACE("every set-up call delayed " + std::to_string(delay.count()) + " us, deadlines short");
    const auto wait = ShortWait();
    fault::ScopedPlan armed(slow);
    const auto start = Clock::now();
    auto c = TypeParam::Connect(l->address(), Deadline::After(wait));
    const auto connect_took = Clock::now() - start;
    if (!c.ok()) {
      IPCH_EXPECT_ERRC(c, Timeout);
    }
    EXPECT_LE(connect_took, wait + delay + PromptBound()) << "Connect overran its deadline";
    const auto accept_start = Clock::now();
    auto s = l->Accept(Deadline::After(wait));
    const auto accept_took = Clock::now() - accept_start;
    if (!s.ok()) {
      IPCH_EXPECT_ERRC(s, Timeout);
    }
    EXPECT_LE(accept_took, wait + delay + PromptBound()) << "Accept overran its deadline";
  }
  // Whatever the short deadlines left half done is dropped: a clean connection works after.
  {
    auto c = TypeParam::Connect(l->address(), Settle());
    IPCH_ASSERT_OK(c);
    auto s = l->Accept(Settle());
    while (s.ok() && !RoundTrip(*c, *s, MakeMessage(2, 100, this->Seed()), Path::kRelayed)) s = l->Accept(Settle());
    IPCH_ASSERT_OK(s) << "the listener serves after connects that ran out of time";
  }
  const StepAudit step;
  fault::Plan timed_out = this->NthOf(fault::kConnect, ETIMEDOUT, 1);
  Result<typename TypeParam::Connection> c = [&] {
    fault::ScopedPlan armed(timed_out);
    return TypeParam::Connect(l->address(), Settle());
  }();
  if (fault::InjectedCount() == 0) return;  // no connect(2): the delays above are the case
  SCOPED_TRACE("connect(2) timed out (ETIMEDOUT)");
  ASSERT_FALSE(c.ok()) << "Connect succeeded though its connect(2) timed out";
  // Nobody answered in time: a Timeout, the listener taken for gone (PeerClosed), or the errno.
  EXPECT_TRUE(c.Is(Errc::Timeout) || c.Is(Errc::PeerClosed) ||
              c.error().code == std::error_code(ETIMEDOUT, std::system_category()))
      << "expected Timeout, PeerClosed or ETIMEDOUT kept, got " << c.error().ToString();
  const auto leaks = step.Leaks();
  EXPECT_TRUE(leaks.empty()) << "left behind: " << ::testing::PrintToString(leaks);
}

}  // namespace ipch::conformance
