// Cases that pass, skip, fail, crash and hang on purpose, built with the ipch gtest main;
// isolation_test.cc runs this binary with and without --ipch_isolate and asserts on what each
// run reports. Not registered with ctest itself: a direct run dies at the first crash.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/msg.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "ipch/testing.h"

namespace {

struct Fake {
  static constexpr const char* kName = "fake";
};

struct NameOfType {
  template <class T>
  static std::string GetName(int) {
    return T::kName;
  }
};

// A named object of this test, as a transport's endpoint would leave it when its process
// crashes: the supervisor's sweep must remove it and name it in the case's failure.
std::string LeaveSharedMemory() {
  const std::string name = "/" + ipch::testing::Current().token + "-left-by-crash";
  const int fd = ::shm_open(name.c_str(), O_CREAT | O_EXCL | O_RDWR, 0600);
  if (fd >= 0) ::close(fd);
  return name;
}

template <class T>
class Crashes : public ::testing::Test {};
TYPED_TEST_SUITE_P(Crashes);

// A SysV queue this process used last, as a message-queue connection leaves it when both of
// its ends die: no name carries its owner, its last sender does.
int LeaveQueue() {
  const int q = ::msgget(IPC_PRIVATE, IPC_CREAT | 0600);
  struct {
    long type;
    char text[4];
  } m{1, {'l', 'e', 'f', 't'}};
  if (q >= 0) ::msgsnd(q, &m, sizeof m.text, 0);
  return q;
}

TYPED_TEST_P(Crashes, Segfaults) {
  const std::string name = LeaveSharedMemory();
  std::printf("left queue %d\n", LeaveQueue());
  std::printf("left %s, about to segfault\n", name.c_str());
  std::fflush(stdout);
  std::signal(SIGSEGV, SIG_DFL);  // the plain signal death, not a sanitizer's report and exit
  std::raise(SIGSEGV);
}

TYPED_TEST_P(Crashes, Aborts) {
  std::printf("about to abort\n");
  std::fflush(stdout);
  std::abort();
}

TYPED_TEST_P(Crashes, DiesOfSigpipe) {
  std::signal(SIGPIPE, SIG_DFL);
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  ::close(fds[0]);
  const char byte = 'x';
  (void)!::write(fds[1], &byte, 1);
  ADD_FAILURE() << "a write to a pipe without reader returned instead of raising SIGPIPE";
}

// Blocks for ever, with a peer in its process group that nothing else would kill (no
// PR_SET_PDEATHSIG): only a kill of the whole group ends both. With IPCH_SELFTEST_PIDS naming
// a FIFO, writes "pids <self> <peer>" into it and keeps it open in both processes, so its
// reader sees EOF exactly when both are dead.
TYPED_TEST_P(Crashes, Hangs) {
  const char* path = std::getenv("IPCH_SELFTEST_PIDS");
  const int fd = path ? ::open(path, O_WRONLY) : -1;
  const pid_t peer = ::fork();
  if (peer == 0) {
    for (;;) ::pause();
  }
  if (fd >= 0) {
    const std::string line = "pids " + std::to_string(::getpid()) + " " + std::to_string(peer) + "\n";
    (void)!::write(fd, line.data(), line.size());
  }
  std::printf("hanging in pause(), peer %d\n", peer);
  std::fflush(stdout);
  for (;;) ::pause();
}

REGISTER_TYPED_TEST_SUITE_P(Crashes, Segfaults, Aborts, DiesOfSigpipe, Hangs);

template <class T>
class Calm : public ::testing::Test {};
TYPED_TEST_SUITE_P(Calm);

TYPED_TEST_P(Calm, Passes) { SUCCEED(); }

TYPED_TEST_P(Calm, SkipsUnsupported) { GTEST_SKIP() << "UNSUPPORTED: fake lacks capability Everything"; }

// The message carries what the XML report must escape: markup, quotes, a CDATA end and a
// control character XML cannot hold.
TYPED_TEST_P(Calm, FailsAnAssertion) {
  ADD_FAILURE() << "a deliberate failure: <xml> & \"quotes\" ]]> and \x01 control";
}

REGISTER_TYPED_TEST_SUITE_P(Calm, Passes, SkipsUnsupported, FailsAnAssertion);

// Crashes first: the Calm cases run after every crash.
INSTANTIATE_TYPED_TEST_SUITE_P(Isolation, Crashes, ::testing::Types<Fake>, NameOfType);
INSTANTIATE_TYPED_TEST_SUITE_P(Isolation, Calm, ::testing::Types<Fake>, NameOfType);

}  // namespace
