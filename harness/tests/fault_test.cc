// Every interposed entry point, with a fault injected and seen by the caller; plus the
// plan semantics (every Nth, max fires, seeded determinism, scope to sockets and FIFOs).
#include "ipch/fault.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>

#include "ipch/testing.h"
#include "ipch/unique_fd.h"

namespace ipch::fault {
namespace {

struct SocketPair {
  UniqueFd a, b;
  SocketPair() {
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0) {
      a.reset(sv[0]);
      b.reset(sv[1]);
    }
  }
};

Plan Every(uint32_t ops, int err, uint32_t n = 1, uint32_t max_fires = 0) {
  return Plan{{Rule{ops, Kind::kErrno, err, n, 0.0, max_fires}}, 1};
}
Plan Short(uint32_t ops) { return Plan{{Rule{ops, Kind::kShort, 0, 1, 0.0, 0}}, 1}; }

// Runs `call` under a plan that fails every matching call with EPERM (never produced
// naturally by these calls) and checks the caller sees it.
template <class F>
void ExpectErrnoInjected(uint32_t ops, F call, const char* what) {
  ScopedPlan armed(Every(ops, EPERM));
  errno = 0;
  long r = call();
  EXPECT_EQ(r, -1) << what;
  EXPECT_EQ(errno, EPERM) << what;
  EXPECT_EQ(InjectedCount(), 1u) << what;
}

TEST(FaultEngine, ReadFamilyErrno) {
  SocketPair s;
  char buf[16];
  ExpectErrnoInjected(
      kRead, [&] { return ::read(s.a.get(), buf, sizeof buf); }, "read");
  ExpectErrnoInjected(
      kRead, [&] { return ::recv(s.a.get(), buf, sizeof buf, 0); }, "recv");
  ExpectErrnoInjected(
      kRead, [&] { return ::recvfrom(s.a.get(), buf, sizeof buf, 0, nullptr, nullptr); }, "recvfrom");
  iovec iov{buf, sizeof buf};
  ExpectErrnoInjected(
      kRead, [&] { return ::readv(s.a.get(), &iov, 1); }, "readv");
  msghdr mh{};
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  ExpectErrnoInjected(
      kRead, [&] { return ::recvmsg(s.a.get(), &mh, 0); }, "recvmsg");
}

TEST(FaultEngine, WriteFamilyErrno) {
  SocketPair s;
  char buf[16] = {};
  ExpectErrnoInjected(
      kWrite, [&] { return ::write(s.a.get(), buf, sizeof buf); }, "write");
  ExpectErrnoInjected(
      kWrite, [&] { return ::send(s.a.get(), buf, sizeof buf, 0); }, "send");
  ExpectErrnoInjected(
      kWrite, [&] { return ::sendto(s.a.get(), buf, sizeof buf, 0, nullptr, 0); }, "sendto");
  iovec iov{buf, sizeof buf};
  ExpectErrnoInjected(
      kWrite, [&] { return ::writev(s.a.get(), &iov, 1); }, "writev");
  msghdr mh{};
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  ExpectErrnoInjected(
      kWrite, [&] { return ::sendmsg(s.a.get(), &mh, 0); }, "sendmsg");
}

TEST(FaultEngine, PollAcceptConnectErrno) {
  SocketPair s;
  pollfd p{s.a.get(), POLLOUT, 0};
  ExpectErrnoInjected(
      kPoll, [&] { return ::poll(&p, 1, 0); }, "poll");
  timespec ts{0, 0};
  ExpectErrnoInjected(
      kPoll, [&] { return ::ppoll(&p, 1, &ts, nullptr); }, "ppoll");
  UniqueFd l(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  ExpectErrnoInjected(
      kAccept, [&] { return ::accept(l.get(), nullptr, nullptr); }, "accept");
  ExpectErrnoInjected(
      kAccept, [&] { return ::accept4(l.get(), nullptr, nullptr, 0); }, "accept4");
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  UniqueFd c(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  ExpectErrnoInjected(
      kConnect, [&] { return ::connect(c.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa); }, "connect");
}

TEST(FaultEngine, ShortWritesAndReadsAreShort) {
  SocketPair s;
  char out[100] = {}, in[100];
  {
    ScopedPlan armed(Short(kWrite));
    ssize_t w = ::write(s.a.get(), out, sizeof out);
    EXPECT_GE(w, 1);
    EXPECT_LT(w, 100);
    iovec iov[2] = {{out, 50}, {out + 50, 50}};
    ssize_t wv = ::writev(s.a.get(), iov, 2);
    EXPECT_GE(wv, 1);
    EXPECT_LT(wv, 100);
  }
  {
    ScopedPlan armed(Short(kRead));
    ssize_t r = ::read(s.b.get(), in, sizeof in);
    EXPECT_GE(r, 1);
    EXPECT_LT(r, 100);
  }
}

TEST(FaultEngine, EveryNthAndMaxFires) {
  SocketPair s;
  char c = 'x';
  ScopedPlan armed(Every(kWrite, EAGAIN, 3, 2));
  std::vector<int> failed;
  for (int i = 1; i <= 12; ++i) {
    if (::write(s.a.get(), &c, 1) < 0) failed.push_back(i);
  }
  EXPECT_EQ(failed, (std::vector<int>{3, 6}));
  EXPECT_EQ(InjectedCount(), 2u);
  auto log = InjectedLog();
  ASSERT_EQ(log.size(), 2u);
  EXPECT_EQ(log[0], "write #3 -> errno 11");
}

TEST(FaultEngine, SameSeedSameFaults) {
  auto run = [](uint64_t seed) {
    SocketPair s;
    char c = 'x';
    ScopedPlan armed(Plan{{Rule{kWrite, Kind::kErrno, EINTR, 0, 0.3, 0}}, seed});
    std::string pattern;
    for (int i = 0; i < 64; ++i) pattern += ::write(s.a.get(), &c, 1) < 0 ? 'F' : '.';
    return pattern;
  };
  EXPECT_EQ(run(11), run(11));
  EXPECT_NE(run(11), run(12));
  EXPECT_NE(run(11).find('F'), std::string::npos);
}

TEST(FaultEngine, RegularFilesAndDisarmedCallsAreUntouched) {
  auto path = testing::Current().scratch_dir / "f";
  UniqueFd f(::open(path.c_str(), O_CREAT | O_RDWR | O_CLOEXEC, 0600));
  ASSERT_TRUE(f.valid());
  {
    ScopedPlan armed(Every(kWrite | kRead, EIO));
    EXPECT_EQ(::write(f.get(), "abc", 3), 3) << "faults must only hit sockets and FIFOs";
  }
  SocketPair s;
  EXPECT_EQ(::write(s.a.get(), "abc", 3), 3) << "a disarmed plan must not inject";
  EXPECT_EQ(InjectedCount(), 0u);
  std::filesystem::remove(path);
}

TEST(FaultEngine, ForkedChildInheritsPlanWithFreshCounters) {
  SocketPair s;
  char c = 'x';
  ScopedPlan armed(Every(kWrite, EPIPE, 2));
  EXPECT_EQ(::write(s.a.get(), &c, 1), 1);  // parent: call 1 passes
  pid_t pid = ::fork();
  if (pid == 0) {
    // Child counts from 1 again: call 1 passes, call 2 fails.
    bool ok = ::write(s.a.get(), &c, 1) == 1 && ::write(s.a.get(), &c, 1) == -1 && errno == EPIPE;
    ::_exit(ok ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

}  // namespace
}  // namespace ipch::fault
