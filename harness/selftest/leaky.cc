// Tests that leak on purpose, one kind of object each: audit_selftest_test.cc asserts that the
// audit fails each one, names the object, and removes it. Not run directly by ctest.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <sys/socket.h>

#include <fstream>

#include "ipch/child_process.h"
#include "ipch/testing.h"

TEST(AuditSelfTest, LeavesChildRunning) {
  auto c = ipch::ChildProcess::Spawn([](ipch::ControlChannel& ch) { return ch.WaitSignal(ipch::Deadline::Never()); });
  IPCH_ASSERT_OK(c);
  std::printf("leaked child pid %d\n", c->pid());
  std::fflush(stdout);
  new ipch::ChildProcess(std::move(*c));  // never destroyed: the child outlives the test
}

TEST(AuditSelfTest, LeavesFileInScratchDir) {
  std::ofstream(ipch::testing::Current().scratch_dir / "forgotten.sock") << "x";
}

TEST(AuditSelfTest, LeavesPosixShm) {
  std::string name = "/" + ipch::testing::Current().token + "-shm";
  int fd = ::shm_open(name.c_str(), O_CREAT | O_EXCL | O_RDWR, 0600);
  ASSERT_GE(fd, 0);
  ::close(fd);
  std::printf("leaked shm %s\n", name.c_str());
}

TEST(AuditSelfTest, LeavesSysvSegment) {
  int id = ::shmget(IPC_PRIVATE, 4096, IPC_CREAT | 0600);
  ASSERT_GE(id, 0);
  std::printf("leaked sysv shm id=%d\n", id);
}

TEST(AuditSelfTest, LeavesFd) {
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
}
