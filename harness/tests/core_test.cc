#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <mutex>
#include <string>
#include <thread>

#include "ipch/child_process.h"
#include "ipch/deadline.h"
#include "ipch/peer.h"
#include "ipch/result.h"
#include "ipch/temp_dir.h"
#include "ipch/testing.h"
#include "ipch/unique_fd.h"

namespace ipch {
namespace {

TEST(Errc, NamesAndCategory) {
  std::error_code ec = Errc::PeerClosed;
  EXPECT_EQ(ec.category().name(), std::string("ipch"));
  EXPECT_EQ(ec.message(), "PeerClosed");
  EXPECT_EQ(MakeError(Errc::Corrupt, "frame 3").ToString(), "Corrupt (frame 3)");
  EXPECT_EQ(ErrnoError("read", EIO).code, std::error_code(EIO, std::system_category()));
  EXPECT_NE(ErrnoError("read", EIO).ToString().find("read"), std::string::npos);
}

TEST(Result, ValueAndError) {
  Result<int> ok = 5;
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(*ok, 5);
  Result<int> bad = MakeError(Errc::Timeout, "x");
  EXPECT_FALSE(bad.ok());
  EXPECT_TRUE(bad.Is(Errc::Timeout));
  EXPECT_FALSE(bad.Is(Errc::PeerClosed));
  Status s = MakeError(Errc::Closed, "");
  EXPECT_TRUE(s.Is(Errc::Closed));
  EXPECT_TRUE(Ok().ok());
}

Status ReturnsEarly(bool fail, int* reached) {
  IPCH_RETURN_IF_ERROR(fail ? Status(MakeError(Errc::Corrupt, "early")) : Ok());
  *reached = 1;
  return Ok();
}

TEST(Result, ReturnIfError) {
  int reached = 0;
  EXPECT_TRUE(ReturnsEarly(true, &reached).Is(Errc::Corrupt));
  EXPECT_EQ(reached, 0);
  IPCH_EXPECT_OK(ReturnsEarly(false, &reached));
  EXPECT_EQ(reached, 1);
}

TEST(Deadline, NeverExpiredAndPollTimeouts) {
  EXPECT_FALSE(Deadline::Never().expired());
  EXPECT_EQ(Deadline::Never().PollTimeoutMs(), -1);
  EXPECT_TRUE(Deadline::Expired().expired());
  EXPECT_EQ(Deadline::Expired().PollTimeoutMs(), 0);
  EXPECT_EQ(Deadline::Expired().remaining(), Clock::duration::zero());
  auto d = Deadline::After(std::chrono::seconds(5));
  EXPECT_FALSE(d.expired());
  EXPECT_GT(d.PollTimeoutMs(), 4000);
  EXPECT_LE(d.PollTimeoutMs(), 5000);
  // Sub-millisecond remainders round up, so poll never returns before the deadline.
  EXPECT_EQ(Deadline::After(std::chrono::microseconds(1500)).PollTimeoutMs(), 2);
}

TEST(UniqueFd, ClosesOnDestructionAndMove) {
  int raw;
  {
    UniqueFd fd(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    ASSERT_TRUE(fd.valid());
    raw = fd.get();
    UniqueFd moved = std::move(fd);
    EXPECT_FALSE(fd.valid());
    EXPECT_EQ(moved.get(), raw);
  }
  EXPECT_EQ(::fcntl(raw, F_GETFD), -1);
  EXPECT_EQ(errno, EBADF);
}

TEST(RetryEintr, RepeatsOnlyEintr) {
  int calls = 0;
  auto r = RetryEintr([&] {
    ++calls;
    errno = calls < 3 ? EINTR : 0;
    return calls < 3 ? -1 : 7;
  });
  EXPECT_EQ(r, 7);
  EXPECT_EQ(calls, 3);
  calls = 0;
  r = RetryEintr([&] {
    ++calls;
    errno = EIO;
    return -1;
  });
  EXPECT_EQ(r, -1);
  EXPECT_EQ(calls, 1);
}

TEST(TempDir, PrivateAndRemoved) {
  std::filesystem::path p;
  {
    auto d = TempDir::Create(testing::Current().token + "-t");
    IPCH_ASSERT_OK(d);
    p = d->path();
    struct stat st {};
    ASSERT_EQ(::stat(p.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0700u);
    std::filesystem::create_directories(p / "a/b");
  }
  EXPECT_FALSE(std::filesystem::exists(p));
}

TEST(ChildProcess, ReportsExitCodeAndError) {
  auto c = ChildProcess::Spawn([](ControlChannel&) -> Status { return MakeError(Errc::Corrupt, "from child"); });
  IPCH_ASSERT_OK(c);
  auto e = c->Wait(Deadline::After(std::chrono::seconds(10)));
  IPCH_ASSERT_OK(e);
  EXPECT_TRUE(e->exited);
  EXPECT_EQ(e->code, 1);
  EXPECT_NE(c->child_error().find("from child"), std::string::npos);
  EXPECT_NE(c->Describe().find("exited with code 1"), std::string::npos);
}

TEST(ChildProcess, WaitTimesOutThenKillReportsSignal) {
  auto c = ChildProcess::Spawn([](ControlChannel& ch) { return ch.WaitSignal(Deadline::Never()); });
  IPCH_ASSERT_OK(c);
  IPCH_EXPECT_ERRC(c->Wait(Deadline::After(Millis(50))), Timeout);
  ExitInfo e = c->Kill();
  EXPECT_FALSE(e.exited);
  EXPECT_EQ(e.signal, SIGKILL);
  EXPECT_NE(e.ToString().find("signal 9"), std::string::npos);
}

TEST(ChildProcess, ControlChannelCarriesStrings) {
  auto c = ChildProcess::Spawn([](ControlChannel& ch) -> Status {
    auto s = ch.ReceiveString(Deadline::After(std::chrono::seconds(10)));
    if (!s.ok()) return std::move(s).error();
    return ch.SendString(*s + "!");
  });
  IPCH_ASSERT_OK(c);
  IPCH_ASSERT_OK(c->control().SendString(std::string(100000, 'z')));
  auto back = c->control().ReceiveString(Deadline::After(std::chrono::seconds(10)));
  IPCH_ASSERT_OK(back);
  EXPECT_EQ(back->size(), 100001u);
  auto e = c->Wait(Deadline::After(std::chrono::seconds(10)));
  IPCH_ASSERT_OK(e);
  EXPECT_TRUE(e->Success());
}

TEST(ChildProcess, DestructorKillsAndReaps) {
  pid_t pid;
  {
    auto c = ChildProcess::Spawn([](ControlChannel& ch) { return ch.WaitSignal(Deadline::Never()); });
    IPCH_ASSERT_OK(c);
    pid = c->pid();
  }
  EXPECT_NE(::kill(pid, 0), 0) << "child " << pid << " survived its ChildProcess";
}

TEST(ChildProcess, ControlChannelSeesDeadChildAsPeerClosed) {
  auto c = ChildProcess::Spawn([](ControlChannel&) { return Ok(); });
  IPCH_ASSERT_OK(c);
  IPCH_EXPECT_ERRC(c->control().ReceiveString(Deadline::After(std::chrono::seconds(10))), PeerClosed);
}

TEST(ChildProcess, WaitUntilSleepingSeesBlockedChild) {
  auto c = ChildProcess::Spawn([](ControlChannel& ch) { return ch.WaitSignal(Deadline::Never()); });
  IPCH_ASSERT_OK(c);
  IPCH_EXPECT_OK(WaitUntilSleeping(c->pid(), Deadline::After(std::chrono::seconds(10))));
  c->Kill();
  IPCH_EXPECT_ERRC(WaitUntilSleeping(c->pid(), Deadline::After(Millis(10))), PeerClosed);
}

// Exec'd peers (ipch/peer.h): this program started again in a peer role, running a registered body.
Status EchoTwiceReversed(std::string_view payload, ControlChannel& ch) {
  for (int i = 0; i < 2; ++i) {
    auto s = ch.ReceiveString(Deadline::After(Scaled(std::chrono::seconds(10))));
    if (!s.ok()) return std::move(s).error();
    IPCH_RETURN_IF_ERROR(ch.SendString(std::string(payload) + ":" + std::string(s->rbegin(), s->rend())));
  }
  return Ok();
}
Status FailsWithPayload(std::string_view payload, ControlChannel&) {
  return MakeError(Errc::Corrupt, "exec'd body says " + std::string(payload));
}
Status ReportsPlanEnvironment(std::string_view, ControlChannel& ch) {
  const char* v = std::getenv("IPCH_CORE_TEST_MARK");
  return ch.SendString(v ? v : "(unset)");
}
const char* const kEchoBody = ipch::testing::RegisterExecBody("core_test.echo", &EchoTwiceReversed);
const char* const kFailBody = ipch::testing::RegisterExecBody("core_test.fail", &FailsWithPayload);
const char* const kEnvBody = ipch::testing::RegisterExecBody("core_test.env", &ReportsPlanEnvironment);

std::string CommandLineOf(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/cmdline");
  std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::replace(all.begin(), all.end(), '\0', ' ');
  return all;
}

TEST(ExecPeer, RunsTheRegisteredBodyInAFreshProgram) {
  auto p = ipch::testing::Peer::StartExec(kEchoBody, "pay", {});
  IPCH_ASSERT_OK(p);
  ASSERT_TRUE(p->is_process());
  IPCH_ASSERT_OK(p->control().SendString("abc"));
  auto r = p->control().ReceiveString(Deadline::After(Scaled(std::chrono::seconds(10))));
  IPCH_ASSERT_OK(r);
  EXPECT_EQ(*r, "pay:cba");
  // Not a fork of this process: its command line is the peer role's, whatever ours is.
  EXPECT_NE(CommandLineOf(p->pid()).find("--ipch_peer=core_test.echo --ipch_peer_fds="), std::string::npos)
      << CommandLineOf(p->pid());
  IPCH_ASSERT_OK(p->control().SendString("xy"));
  r = p->control().ReceiveString(Deadline::After(Scaled(std::chrono::seconds(10))));
  IPCH_ASSERT_OK(r);
  EXPECT_EQ(*r, "pay:yx");
  IPCH_EXPECT_OK(p->Join(Deadline::After(Scaled(std::chrono::seconds(10)))));
}

TEST(ExecPeer, ABodysErrorAndAnUnknownBodyComeBackFromJoin) {
  auto p = ipch::testing::Peer::StartExec(kFailBody, "42", {});
  IPCH_ASSERT_OK(p);
  Status st = p->Join(Deadline::After(Scaled(std::chrono::seconds(10))));
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().ToString().find("exec'd body says 42"), std::string::npos) << st.error().ToString();
  EXPECT_NE(st.error().ToString().find("exited with code 1"), std::string::npos) << st.error().ToString();

  auto q = ipch::testing::Peer::StartExec("core_test.no_such_body", "", {});
  IPCH_ASSERT_OK(q);
  st = q->Join(Deadline::After(Scaled(std::chrono::seconds(10))));
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().ToString().find("this program has no peer body core_test.no_such_body"), std::string::npos)
      << st.error().ToString();
}

TEST(ExecPeer, GetsTheEnvironmentItIsGivenAndIsKilledForReal) {
  ::setenv("IPCH_CORE_TEST_MARK", "old", 1);
  auto p = ipch::testing::Peer::StartExec(kEnvBody, "", {"IPCH_CORE_TEST_MARK=new"});
  ::unsetenv("IPCH_CORE_TEST_MARK");
  IPCH_ASSERT_OK(p);
  auto r = p->control().ReceiveString(Deadline::After(Scaled(std::chrono::seconds(10))));
  IPCH_ASSERT_OK(r);
  EXPECT_EQ(*r, "new") << "an entry given replaces the inherited one";
  auto parked = ipch::testing::Peer::StartExec(kEchoBody, "", {});
  IPCH_ASSERT_OK(parked);
  const ExitInfo e = parked->Kill();
  EXPECT_FALSE(e.exited);
  EXPECT_EQ(e.signal, SIGKILL);
  IPCH_EXPECT_OK(p->Join(Deadline::After(Scaled(std::chrono::seconds(10)))));
}

TEST(ExecPeer, PeerModeComesFromTheEnvironmentThenTheAdapterThenTheThreads) {
  using ipch::testing::ExecPeers;
  using ipch::testing::PeerMode;
  ::setenv("IPCH_PEER_MODE", "fork", 1);
  EXPECT_FALSE(ExecPeers(PeerMode::kExec));
  ::setenv("IPCH_PEER_MODE", "exec", 1);
  EXPECT_TRUE(ExecPeers(PeerMode::kFork));
  ::unsetenv("IPCH_PEER_MODE");
  EXPECT_TRUE(ExecPeers(PeerMode::kExec));
  EXPECT_FALSE(ExecPeers(PeerMode::kFork));
  // Alone (one thread; a sanitizer runtime may have its own, as TSan's does) a fork is safe.
  const int before = ThreadCount();
  EXPECT_EQ(ExecPeers(PeerMode::kAuto), before > 1) << before << " thread(s)";
  std::mutex mu;
  std::unique_lock lock(mu);
  std::thread other([&] { std::lock_guard l(mu); });
  EXPECT_GT(ThreadCount(), before);  // TSan starts a thread of its own with the first one
  EXPECT_TRUE(ExecPeers(PeerMode::kAuto)) << "another thread: exec";
  lock.unlock();
  other.join();
}

TEST(Testing, MessagesVerifyAndDetectDamage) {
  Bytes m = testing::MakeMessage(42, 100, 7);
  EXPECT_TRUE(testing::VerifyMessage(m, 42, 100, 7));
  EXPECT_FALSE(testing::VerifyMessage(m, 41, 100, 7));
  EXPECT_FALSE(testing::VerifyMessage(m, 42, 99, 7));
  m[60] ^= std::byte{1};
  EXPECT_FALSE(testing::VerifyMessage(m, 42, 100, 7));
}

}  // namespace
}  // namespace ipch

#include <sys/mman.h>
#include <sys/msg.h>
#include <sys/shm.h>

#include <algorithm>
#include <cstring>

#include "ipch/audit.h"
#include "ipch/sweep.h"

namespace ipch {
namespace {

TEST(Audit, SweepRemovesOnlyWhatDeadProcessesLeft) {
  auto child = ChildProcess::Spawn([](ControlChannel&) { return Ok(); });
  IPCH_ASSERT_OK(child);
  IPCH_ASSERT_OK(child->Wait(Deadline::After(std::chrono::seconds(10))));
  const std::string dead = "ipch-" + std::to_string(child->pid()) + "-7";
  const auto tmp = std::filesystem::temp_directory_path();
  std::filesystem::create_directories(tmp / (dead + "-dir") / "sub");
  int fd = ::shm_open(("/" + dead + "-shm").c_str(), O_CREAT | O_EXCL | O_RDWR, 0600);
  ASSERT_GE(fd, 0);
  ::close(fd);
  // Ours (alive) must survive the sweep.
  const auto mine = testing::Current().scratch_dir;
  // The effect is what is checked, not this call's list: a test binary starting in parallel
  // runs the same sweep at start-up and may take the leftovers first.
  (void)audit::SweepDeadOwners();
  EXPECT_FALSE(std::filesystem::exists(tmp / (dead + "-dir")));
  EXPECT_NE(::access(("/dev/shm/" + dead + "-shm").c_str(), F_OK), 0);
  EXPECT_TRUE(std::filesystem::exists(mine));
}

TEST(Audit, SweepRemovesOnlyIpchSysvSegmentsOfDeadCreators) {
  // A dead child creates two unattached segments: one starting with the IPCH magic, one not.
  int ids[2] = {-1, -1};
  int pipefd[2];
  ASSERT_EQ(::pipe(pipefd), 0);
  auto child = ChildProcess::Spawn([&](ControlChannel&) -> Status {
    for (int i = 0; i < 2; ++i) {
      int id = ::shmget(IPC_PRIVATE, 4096, IPC_CREAT | 0600);
      if (id < 0) return ErrnoError("shmget");
      void* p = ::shmat(id, nullptr, 0);
      if (p == reinterpret_cast<void*>(-1)) return ErrnoError("shmat");
      std::memcpy(p, i == 0 ? "IPCHCON1" : "OTHERAPP", 8);
      ::shmdt(p);
      if (::write(pipefd[1], &id, sizeof id) != sizeof id) return ErrnoError("write");
    }
    return Ok();
  });
  IPCH_ASSERT_OK(child);
  IPCH_ASSERT_OK(child->Wait(Deadline::After(std::chrono::seconds(10))));
  ASSERT_EQ(::read(pipefd[0], ids, sizeof ids), static_cast<ssize_t>(sizeof ids));
  ::close(pipefd[0]);
  ::close(pipefd[1]);
  shmid_ds fresh{};
  audit::SweepDeadOwners();
  EXPECT_EQ(::shmctl(ids[0], IPC_STAT, &fresh), 0) << "a segment used seconds ago must survive the start-up sweep";
  // Only our own sweep takes segments this young: the start-up sweeps of test binaries running in
  // parallel leave anything used in the last minute alone.
  auto removed = audit::SweepDeadOwners(std::chrono::seconds(0));
  shmid_ds ds{};
  EXPECT_NE(::shmctl(ids[0], IPC_STAT, &ds), 0) << "the dead creator's ipch segment is still there";
  EXPECT_EQ(::shmctl(ids[1], IPC_STAT, &ds), 0) << "a segment that is not ours was removed";
  ::shmctl(ids[1], IPC_RMID, nullptr);
  const std::string listed = "sysv shm id=" + std::to_string(ids[0]) + " ";
  EXPECT_NE(std::find_if(removed.begin(), removed.end(), [&](const std::string& r) { return r.rfind(listed, 0) == 0; }),
            removed.end());
}

TEST(Sweep, AnOwnerIsDeadWhenItsPidIsGoneOrStartedAfterTheObject) {
  timespec now{};
  ::clock_gettime(CLOCK_REALTIME, &now);
  const sweep::Owner alive = sweep::JudgeOwner(::getpid(), now);
  EXPECT_FALSE(alive.dead) << alive.why;
  EXPECT_EQ(alive.why, "pid " + std::to_string(::getpid()) + " is alive");
  // This process started after an object an hour old: the pid in its name was another's.
  const sweep::Owner reused = sweep::JudgeOwner(::getpid(), timespec{now.tv_sec - 3600, 0});
  EXPECT_TRUE(reused.dead);
  EXPECT_EQ(reused.why.rfind("pid " + std::to_string(::getpid()) + " was reused: the process with it started 3", 0), 0u)
      << reused.why;
  auto child = ChildProcess::Spawn([](ControlChannel&) { return Ok(); });
  IPCH_ASSERT_OK(child);
  IPCH_ASSERT_OK(child->Wait(Deadline::After(std::chrono::seconds(10))));
  const sweep::Owner gone = sweep::JudgeOwner(child->pid(), now);
  EXPECT_TRUE(gone.dead);
  EXPECT_EQ(gone.why, "pid " + std::to_string(child->pid()) + " does not exist");
}

TEST(Sweep, TheOwnerIsTheFirstIpchPidInTheLastComponent) {
  EXPECT_EQ(sweep::OwnerInName("/dev/shm/ipch-123-4-x"), 123);
  EXPECT_EQ(sweep::OwnerInName("/tmp/sweeptest9-ipch-77-dir"), 77);
  EXPECT_EQ(sweep::OwnerInName("/tmp/ipch-12/ipch-x-1"), 0) << "the directory part names no owner";
  EXPECT_EQ(sweep::OwnerInName("ipch-bench-raw"), 0);
  EXPECT_EQ(sweep::OwnerInName("ipch-0-1"), 0);
  EXPECT_EQ(sweep::OwnerInName("ipch-12"), 0) << "no '-' after the pid";
}

TEST(Sweep, OwnedByTakesTheQueuesAProcessTreeUsedLast) {
  // A child makes a private queue and sends through it: its last sender is that child.
  int pipefd[2];
  ASSERT_EQ(::pipe(pipefd), 0);
  auto child = ChildProcess::Spawn([&](ControlChannel& ch) -> Status {
    const int q = ::msgget(IPC_PRIVATE, IPC_CREAT | 0600);
    if (q < 0) return ErrnoError("msgget");
    struct {
      long type;
      char text[4];
    } m{1, {'p', 'i', 'n', 'g'}};
    if (::msgsnd(q, &m, sizeof m.text, 0) != 0) return ErrnoError("msgsnd");
    if (::write(pipefd[1], &q, sizeof q) != sizeof q) return ErrnoError("write");
    return ch.WaitSignal(Deadline::Never());  // alive until killed
  });
  IPCH_ASSERT_OK(child);
  int q = -1;
  ASSERT_EQ(::read(pipefd[0], &q, sizeof q), static_cast<ssize_t>(sizeof q));
  ::close(pipefd[0]);
  ::close(pipefd[1]);
  auto owned = [&](const std::set<pid_t>& tree) {
    for (const auto& f : sweep::OwnedBy(::getpid(), tree)) {
      if (f.kind == "sysv msg" && f.name.rfind("id=" + std::to_string(q) + " ", 0) == 0) return true;
    }
    return false;
  };
  EXPECT_FALSE(owned({::getpid()})) << "a queue only the child used is not ours alone";
  EXPECT_TRUE(owned({::getpid(), child->pid()}));
  EXPECT_TRUE(sweep::Descendants(::getpid()).count(child->pid()));
  child->Kill();
  const sweep::Found f{"sysv msg", "id=" + std::to_string(q) + " key=0x00000000", child->pid(), "test"};
  IPCH_EXPECT_OK(sweep::Remove(f));
  msqid_ds ds{};
  EXPECT_NE(::msgctl(q, IPC_STAT, &ds), 0) << "Remove left the queue";
  IPCH_EXPECT_OK(sweep::Remove(f)) << "a second Remove of what is gone is not an error";
}

}  // namespace
}  // namespace ipch

// ---- the verdict matrix's N/A column and the fault coverage map ------------------------------

#include "../testing/fault_coverage.h"
#include "../testing/verdicts.h"

namespace {

using ipch::testing::FaultCoverage;
using ipch::testing::Outcome;

TEST(Verdicts, ACaseThatCannotApplyIsCountedApartFromUnsupported) {
  EXPECT_TRUE(ipch::testing::IsNotApplicable("N/A: fifo: a FIFO's read fails only with EINTR or EAGAIN"));
  EXPECT_FALSE(ipch::testing::IsNotApplicable("UNSUPPORTED: fifo has no kSocketAddress hook"));
  ipch::testing::VerdictMatrix m;
  m.Add("Conformance/Fault/fifo", Outcome::kPass);
  m.Add("Conformance/Fault/fifo", Outcome::kSkip);
  m.Add("Conformance/Fault/fifo", Outcome::kSkip, true);
  m.Add("Conformance/Fault/fifo", Outcome::kSkip, true);
  m.Add("Conformance/Basic/inmem", Outcome::kSkip, true);
  const std::string table = m.Render();
  EXPECT_NE(table.find("PASS 1 +1u +2n"), std::string::npos) << table;
  EXPECT_NE(table.find("N/A"), std::string::npos) << "every case of a cell N/A: " << table;
}

// Every reader of suite names (matrix, coverage map, results document, the ipch tool) splits
// them alike: a suite of another shape is none of the battery's.
TEST(Verdicts, BatterySuiteNamesSplitIntoPrefixGroupAndTransport) {
  const auto parts = ipch::testing::SplitSuite("Conformance/Fault/posix_mq");
  ASSERT_TRUE(parts.has_value());
  EXPECT_EQ(parts->prefix, "Conformance");
  EXPECT_EQ(parts->group, "Fault");
  EXPECT_EQ(parts->transport, "posix_mq");
  EXPECT_FALSE(ipch::testing::SplitSuite("IpchTool").has_value());
  EXPECT_FALSE(ipch::testing::SplitSuite("Values/Suite").has_value());
}

TEST(FaultCoverageMap, CensusTextRoundTripsAndBadTextIsRefused) {
  ipch::fault::Census c;
  ASSERT_TRUE(ipch::testing::ParseCensus("read=12:errno 3,short 1;write=9;futex_wake=4:kill_after 2", &c));
  ASSERT_EQ(c.size(), 3u);
  EXPECT_EQ(c[0].entry_point, "read");
  EXPECT_EQ(c[0].calls, 12u);
  EXPECT_EQ(c[0].faults[0], 3u);
  EXPECT_EQ(c[0].faults[1], 1u);
  EXPECT_EQ(c[1].Faulted(), 0u);
  EXPECT_EQ(c[2].faults[5], 2u);
  for (const char* bad : {"read", "read=x", "read=1:", "read=1:bogus 2", "read=1:errno", "=3"}) {
    EXPECT_FALSE(ipch::testing::ParseCensus(bad, &c)) << bad;
  }
}

// Faults injected in a passing case survived; in a failing one, they did not; a skipped case's
// calls count, its faults are judged neither way; non-conformance suites are left out.
TEST(FaultCoverageMap, SumsByTransportAndSplitsSurvivedFromFailed) {
  FaultCoverage m;
  m.Add("Conformance/Fault/tcp", Outcome::kPass, "read=10:errno 2;write=5;close=3");
  m.Add("Conformance/Fault/tcp", Outcome::kFail, "read=4:errno 1;accept=2:errno 1");
  m.Add("Conformance/Fault/tcp", Outcome::kSkip, "write=1:short 7");
  m.Add("Conformance/Basic/unix", Outcome::kPass, "poll=3");
  m.Add("FaultEngine", Outcome::kPass, "read=99:errno 99");
  const auto* tcp = m.Of("tcp");
  ASSERT_NE(tcp, nullptr);
  EXPECT_EQ(tcp->at("read").calls, 14u);
  EXPECT_EQ(tcp->at("read").Survived(), 2u);
  EXPECT_EQ(tcp->at("read").Failed(), 1u);
  EXPECT_EQ(tcp->at("write").calls, 6u);
  EXPECT_EQ(tcp->at("write").Survived() + tcp->at("write").Failed(), 0u) << "a skipped case's faults";
  EXPECT_EQ(tcp->at("accept").Failed(), 1u);
  const std::string table = m.Render();
  EXPECT_NE(table.find("accept close write"), std::string::npos) << "never faulted in a passing case: " << table;
  EXPECT_NE(table.find("faulted only in failing cases: accept"), std::string::npos) << table;
  EXPECT_NE(table.find("unix"), std::string::npos);
  const std::string json = m.Json();
  EXPECT_NE(json.find(R"({"name": "read", "calls": 14, "survived": {"errno": 2}, "failed": {"errno": 1}})"),
            std::string::npos)
      << json;
  EXPECT_NE(json.find(R"("never_faulted": ["accept", "close", "write"])"), std::string::npos) << json;
  EXPECT_EQ(ipch::testing::CoveragePathFor("build/report/conformance-default.xml"),
            "build/report/conformance-default.fault-coverage.json");
}

}  // namespace
