#include "transports/fifo/fifo.h"

#include <pthread.h>
#include <sys/uio.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <fstream>
#include <optional>
#include <random>
#include <thread>

#include "ipch/child_process.h"
#include "ipch/testing.h"
#include "transports/stream/socket_util.h"

namespace ipch::fifo {
namespace {

std::string Dir(const char* name = "f") { return (testing::Current().scratch_dir / name).string(); }

Status Write(int fd, const void* data, std::size_t n) {
  const ssize_t w = RetryEintr([&] { return ::write(fd, data, n); });
  if (w != static_cast<ssize_t>(n)) return ErrnoError("write");
  return Ok();
}

// Bytes straight into the listener's rendezvous FIFO, as a hostile local process could write.
Status WriteToRendezvous(const std::string& dir, const void* data, std::size_t n) {
  UniqueFd fd(::open((dir + "/listen").c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC));
  if (!fd) return ErrnoError("open listen");
  return Write(fd.get(), data, n);
}

// Waits (bounded) until the listener has dropped `n` requests.
::testing::AssertionResult RejectedReaches(const Listener& l, uint64_t n) {
  auto until = Deadline::After(Scaled(Millis(2000)));
  while (l.rejected_requests() < n && !until.expired()) std::this_thread::yield();
  if (l.rejected_requests() >= n) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "rejected " << l.rejected_requests() << " requests, expected " << n;
}

::testing::AssertionResult StillServes(Listener& l) {
  auto c = Connect(l.address(), Deadline::After(Scaled(Millis(2000))));
  if (!c.ok()) return ::testing::AssertionFailure() << "connect: " << c.error().ToString();
  auto s = l.Accept(Deadline::After(Scaled(Millis(2000))));
  if (!s.ok()) return ::testing::AssertionFailure() << "accept: " << s.error().ToString();
  if (!c->Send(AsBytes("ping"), Deadline::After(Scaled(Millis(2000)))).ok())
    return ::testing::AssertionFailure() << "send";
  Bytes got;
  Status st = s->Receive(got, Deadline::After(Scaled(Millis(2000))));
  if (!st.ok()) return ::testing::AssertionFailure() << "receive: " << st.error().ToString();
  if (got != Bytes(AsBytes("ping").begin(), AsBytes("ping").end())) return ::testing::AssertionFailure() << "payload";
  return ::testing::AssertionSuccess();
}

TEST(FifoRequest, RoundTripsAndRefusesEveryMalformedField) {
  unsigned char rec[kRequestSize];
  EncodeRequest(42, "c-42-0-abc", rec);
  auto name = ParseRequest(rec);
  IPCH_ASSERT_OK(name);
  EXPECT_EQ(*name, "c-42-0-abc");

  auto refused = [](void (*damage)(unsigned char*), const char* why) {
    unsigned char r[kRequestSize];
    EncodeRequest(1, "c-1-0-ff", r);
    damage(r);
    auto p = ParseRequest(r);
    EXPECT_TRUE(p.Is(Errc::Corrupt)) << why << ": " << (p.ok() ? "accepted " + *p : p.error().ToString());
  };
  refused([](unsigned char* r) { r[0] ^= 1; }, "magic");
  refused([](unsigned char* r) { r[4] = 2; }, "version");
  refused([](unsigned char* r) { std::memset(r + 16, 'a', kRequestSize - 16); }, "unterminated name");
  refused([](unsigned char* r) { r[40] = 'x'; }, "bytes after the name");
  refused([](unsigned char* r) { std::memcpy(r + 16, "../../etc", 10); }, "path in the name");
  refused([](unsigned char* r) { std::memcpy(r + 16, "c-a/b", 6); }, "slash in the name");
  refused([](unsigned char* r) { std::memcpy(r + 16, "x-1-0-ff", 9); }, "not a connection name");
  refused([](unsigned char* r) { std::memset(r + 16, 0, kRequestSize - 16); }, "empty name");
}

TEST(FifoRequest, RandomRecordsAreNeverAcceptedUnlessWellFormed) {
  std::mt19937_64 rng(testing::Current().seed);
  for (int i = 0; i < 20000; ++i) {
    unsigned char r[kRequestSize];
    EncodeRequest(static_cast<uint32_t>(rng()), "c-1-2-3", r);
    // Damage 1..4 bytes anywhere past the magic and version.
    for (int k = 1 + static_cast<int>(rng() % 4); k > 0; --k) r[8 + rng() % (kRequestSize - 8)] = rng() & 0xff;
    auto p = ParseRequest(r);
    if (!p.ok()) continue;
    for (char c : *p) ASSERT_TRUE((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-') << *p;
    ASSERT_EQ(p->compare(0, 2, "c-"), 0) << *p;
  }
}

TEST(Fifo, GarbageInTheRendezvousIsDroppedAndTheListenerServesOn) {
  auto l = Listen(Dir());
  IPCH_ASSERT_OK(l);
  unsigned char junk[3 * kRequestSize];
  std::mt19937_64 rng(testing::Current().seed);
  for (auto& b : junk) b = rng() & 0xff;
  junk[0] = 'I';  // a false start of a magic
  IPCH_ASSERT_OK(WriteToRendezvous(l->address(), junk, sizeof junk));
  EXPECT_TRUE(RejectedReaches(*l, 1));
  EXPECT_TRUE(StillServes(*l));
}

TEST(Fifo, ARequestNamingSomethingElseIsRefusedAndLeftAlone) {
  auto l = Listen(Dir());
  IPCH_ASSERT_OK(l);
  const std::string dir = l->address();
  // A regular file and a symlink under connection names: never opened as pipes, never removed.
  std::ofstream(dir + "/c-1-1-aa.up") << "precious";
  std::ofstream(dir + "/c-1-1-aa.dn") << "precious";
  ASSERT_EQ(::symlink("/etc/passwd", (dir + "/c-1-2-bb.up").c_str()), 0);
  ASSERT_EQ(::mkfifo((dir + "/c-1-2-bb.dn").c_str(), 0600), 0);
  for (const char* n : {"c-1-1-aa", "c-1-2-bb", "c-1-3-nonexistent"}) {
    unsigned char rec[kRequestSize];
    EncodeRequest(1, n, rec);
    IPCH_ASSERT_OK(WriteToRendezvous(dir, rec, sizeof rec));
  }
  EXPECT_TRUE(RejectedReaches(*l, 3));
  IPCH_EXPECT_ERRC(l->Accept(Deadline::After(Scaled(Millis(50)))), Timeout) << "a refused request was queued";
  std::ifstream in(dir + "/c-1-1-aa.up");
  std::string content;
  in >> content;
  EXPECT_EQ(content, "precious");
  struct stat st {};
  EXPECT_EQ(::lstat((dir + "/c-1-2-bb.up").c_str(), &st), 0);
  EXPECT_TRUE(S_ISLNK(st.st_mode));
  EXPECT_TRUE(StillServes(*l));
  for (const char* f : {"/c-1-1-aa.up", "/c-1-1-aa.dn", "/c-1-2-bb.up", "/c-1-2-bb.dn"}) ::unlink((dir + f).c_str());
}

TEST(Fifo, RefusesADirectoryOpenToOthers) {
  const std::string dir = Dir("open");
  ASSERT_EQ(::mkdir(dir.c_str(), 0700), 0);
  ASSERT_EQ(::chmod(dir.c_str(), 0750), 0);
  auto l = Listen(dir);
  IPCH_ASSERT_ERRC(l, PermissionDenied);
  EXPECT_NE(l.error().context.find("0750"), std::string::npos) << l.error().ToString();
  EXPECT_FALSE(std::filesystem::exists(dir + "/listen"));
  std::filesystem::remove(dir);
}

TEST(Fifo, RefusesToRemoveAListenEntryThatIsNotAFifo) {
  const std::string dir = Dir("taken");
  ASSERT_EQ(::mkdir(dir.c_str(), 0700), 0);
  std::ofstream(dir + "/listen") << "precious";
  IPCH_EXPECT_ERRC(Listen(dir), AlreadyExists);
  std::ifstream in(dir + "/listen");
  std::string content;
  in >> content;
  EXPECT_EQ(content, "precious");
  IPCH_EXPECT_ERRC(Connect(dir, Deadline::After(Scaled(Millis(500)))), Corrupt);
  std::filesystem::remove_all(dir);
}

TEST(Fifo, ADeadListenersDirectoryIsReclaimedWithItsLeftovers) {
  const std::string dir = Dir("stale");
  ASSERT_EQ(::mkdir(dir.c_str(), 0700), 0);
  // What a killed listener and a connector killed mid-connect leave: FIFOs nobody reads.
  for (const char* f : {"/listen", "/c-9-0-dead.up", "/c-9-0-dead.dn"}) ASSERT_EQ(::mkfifo((dir + f).c_str(), 0600), 0);
  IPCH_EXPECT_ERRC(Connect(dir, Deadline::After(Scaled(Millis(500)))), PeerClosed);
  {
    auto l = Listen(dir);
    IPCH_ASSERT_OK(l);
    EXPECT_FALSE(std::filesystem::exists(dir + "/c-9-0-dead.up"));
    EXPECT_TRUE(StillServes(*l));
  }
  EXPECT_FALSE(std::filesystem::exists(dir)) << "the reclaimed directory outlived its listener";
}

TEST(Fifo, ResourcesAreOwnerOnlyAndGoWithTheListener) {
  const std::string dir = Dir();
  {
    auto l = Listen(dir);
    IPCH_ASSERT_OK(l);
    auto c = Connect(dir, Deadline::After(Scaled(Millis(2000))));
    IPCH_ASSERT_OK(c);
    struct stat st {};
    ASSERT_EQ(::stat(dir.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0700u);
    ASSERT_EQ(::lstat((dir + "/listen").c_str(), &st), 0);
    EXPECT_TRUE(S_ISFIFO(st.st_mode));
    EXPECT_EQ(st.st_mode & 0777, 0600u);
    // A connected pair leaves no names behind: only `listen` is in the directory.
    EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir), std::filesystem::directory_iterator()), 1);
  }
  EXPECT_FALSE(std::filesystem::exists(dir));
}

TEST(Fifo, ConnectToAStoppedListenerTimesOutAndLeavesNothing) {
  // The acceptor of a listener in a stopped process never answers: Connect must give up by its
  // deadline and remove its FIFOs.
  const std::string dir = Dir();
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    auto l = Listen(dir);
    char b = l.ok() ? 'k' : 'e';
    (void)!::write(ready[1], &b, 1);
    ::raise(SIGSTOP);
    ::_exit(0);
  }
  ::close(ready[1]);
  char b = 0;
  ASSERT_EQ(RetryEintr([&] { return ::read(ready[0], &b, 1); }), 1);
  ::close(ready[0]);
  ASSERT_EQ(b, 'k');
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, WUNTRACED), child);  // stopped now
  IPCH_EXPECT_ERRC(Connect(dir, Deadline::After(Scaled(Millis(100)))), Timeout);
  std::vector<std::string> left;
  for (const auto& e : std::filesystem::directory_iterator(dir)) left.push_back(e.path().filename().string());
  EXPECT_EQ(left, std::vector<std::string>{"listen"});
  ::kill(child, SIGKILL);
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace ipch::fifo

namespace ipch::fifo {
namespace {

TEST(Fifo, CloseWakesAnAcceptWaitingInAnotherThread) {
  auto l = Listen(Dir());
  IPCH_ASSERT_OK(l);
  bool accepted = false;
  std::optional<Error> failed;
  std::atomic<pid_t> tid{0};
  std::thread waiter([&] {
    tid = ::gettid();
    auto r = l->Accept(Deadline::After(Scaled(Millis(10000))));
    accepted = r.ok();
    if (!r.ok()) failed = r.error();
  });
  // Close once the waiter sleeps inside Accept (its thread's /proc state says so); the time
  // bound fails if Close leaves it asleep until its deadline.
  while (tid.load() == 0) std::this_thread::yield();
  IPCH_ASSERT_OK(WaitUntilSleeping(tid.load(), Deadline::After(Scaled(Millis(5000)))));
  const auto t0 = Clock::now();
  IPCH_ASSERT_OK(l->Close());
  waiter.join();
  EXPECT_LT(Clock::now() - t0, Scaled(Millis(5000))) << "Close did not wake the waiting Accept";
  ASSERT_FALSE(accepted);
  ASSERT_TRUE(failed.has_value());
  EXPECT_TRUE(failed->Is(Errc::Closed)) << failed->ToString();
}

// A pipe write never raises SIGPIPE: the thread's SIGPIPE is blocked at its first write and
// stays blocked (no mask call per write), and after EPIPE the signal the kernel queued is taken
// off. Each thread fresh, so its mask starts as a new thread's.
struct PipeWriteSeen {
  ssize_t written = 0;
  int err = 0;
  bool blocked_after = false, pending_after = false;
};
PipeWriteSeen WriteToAPipeWithoutReader(bool caller_blocks_first) {
  PipeWriteSeen seen;
  std::thread([&] {
    sigset_t pipe_only, mask, pending;
    sigemptyset(&pipe_only);
    sigaddset(&pipe_only, SIGPIPE);
    pthread_sigmask(caller_blocks_first ? SIG_BLOCK : SIG_UNBLOCK, &pipe_only, nullptr);
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0) return;
    ::close(fds[0]);
    char byte = 1;
    iovec iov{&byte, 1};
    for (int i = 0; i < 3; ++i) {  // the second and third find the mask already set
      seen.written = WritevNoSigpipe(fds[1], &iov, 1);
      seen.err = errno;
    }
    ::close(fds[1]);
    pthread_sigmask(SIG_BLOCK, nullptr, &mask);
    sigpending(&pending);
    seen.blocked_after = sigismember(&mask, SIGPIPE) != 0;
    seen.pending_after = sigismember(&pending, SIGPIPE) != 0;
    const timespec zero{};
    while (::sigtimedwait(&pipe_only, nullptr, &zero) == SIGPIPE) {
    }
  }).join();
  return seen;
}

TEST(PipeWrite, AWriteWithoutReaderIsEpipeAndLeavesNoSignalPending) {
  const PipeWriteSeen seen = WriteToAPipeWithoutReader(false);
  EXPECT_EQ(seen.written, -1);
  EXPECT_EQ(seen.err, EPIPE) << std::strerror(seen.err);
  EXPECT_TRUE(seen.blocked_after) << "SIGPIPE stays blocked in a thread that wrote to a pipe";
  EXPECT_FALSE(seen.pending_after) << "the SIGPIPE of an EPIPE must be taken off";
}

TEST(PipeWrite, ACallerThatBlockedSigpipeItselfKeepsItsPendingSignal) {
  const PipeWriteSeen seen = WriteToAPipeWithoutReader(true);
  EXPECT_EQ(seen.err, EPIPE) << std::strerror(seen.err);
  EXPECT_TRUE(seen.blocked_after);
  EXPECT_TRUE(seen.pending_after) << "a signal of a caller who blocked it is the caller's";
}

}  // namespace
}  // namespace ipch::fifo
