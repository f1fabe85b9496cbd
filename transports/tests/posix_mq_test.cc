#include "transports/posix_mq/posix_mq.h"

#include <fcntl.h>
#include <mqueue.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>

#include "ipch/testing.h"

namespace ipch::posix_mq {
namespace {

std::string Name() { return "/" + testing::Current().token; }

// A pid that certainly belongs to no process: a child that has exited and been reaped.
pid_t DeadPid() {
  const pid_t p = ::fork();
  if (p == 0) ::_exit(0);
  int status = 0;
  ::waitpid(p, &status, 0);
  return p;
}

void WriteRecord(const std::string& name, uint32_t pid, uint64_t start, std::size_t size = 32) {
  const int fd = ::shm_open((name + ".owner").c_str(), O_CREAT | O_EXCL | O_RDWR, 0600);
  ASSERT_GE(fd, 0) << std::strerror(errno);
  unsigned char b[64] = {};
  const uint32_t magic = 0x50435049, version = 1;
  std::memcpy(b, &magic, 4);
  std::memcpy(b + 4, &version, 4);
  std::memcpy(b + 8, &pid, 4);
  std::memcpy(b + 16, &start, 8);
  ASSERT_EQ(::pwrite(fd, b, size, 0), static_cast<ssize_t>(size));
  ::close(fd);
}

TEST(PosixMq, NamesAreValidated) {
  for (const char* bad : {"", "/", "noslash", "/a/b", "//x"}) {
    IPCH_EXPECT_ERRC(Listen(bad), InvalidArgument) << bad;
    IPCH_EXPECT_ERRC(Connect(bad, Deadline::Expired()), InvalidArgument) << bad;
  }
  IPCH_EXPECT_ERRC(Listen("/" + std::string(250, 'x')), InvalidArgument);
}

TEST(PosixMq, ADeadListenersRecordAndQueueAreReclaimed) {
  const std::string name = Name();
  WriteRecord(name, static_cast<uint32_t>(DeadPid()), 1);
  mq_attr a{};
  a.mq_maxmsg = 1;
  a.mq_msgsize = 16;
  const mqd_t stale = ::mq_open(name.c_str(), O_CREAT | O_EXCL | O_RDWR, 0600, &a);
  ASSERT_NE(stale, -1) << std::strerror(errno);
  ::mq_close(stale);
  IPCH_EXPECT_ERRC(Connect(name, Deadline::After(Scaled(Millis(200)))), PeerClosed);
  auto l = Listen(name);
  IPCH_ASSERT_OK(l);
  auto c = Connect(name, Deadline::After(Scaled(Millis(2000))));
  IPCH_ASSERT_OK(c);
  auto s = l->Accept(Deadline::After(Scaled(Millis(2000))));
  IPCH_ASSERT_OK(s);
  IPCH_ASSERT_OK(c->Send(AsBytes("after reclaim"), Deadline::After(Scaled(Millis(2000)))));
  Bytes got;
  IPCH_ASSERT_OK(s->Receive(got, Deadline::After(Scaled(Millis(2000)))));
  EXPECT_EQ(got.size(), 13u);
}

TEST(PosixMq, ARecordThatIsNotOursIsRefusedAndKept) {
  const std::string name = Name();
  WriteRecord(name, 1, 1, 20);  // a size we never write
  IPCH_EXPECT_ERRC(Listen(name), AlreadyExists);
  IPCH_EXPECT_ERRC(Connect(name, Deadline::After(Scaled(Millis(200)))), Corrupt);  // the contract's word for a malformed object at the address
  struct stat st {};
  EXPECT_EQ(::stat(("/dev/shm" + name + ".owner").c_str(), &st), 0) << "the refused record was removed";
  ::shm_unlink((name + ".owner").c_str());
}

TEST(PosixMq, ARecordOpenToOthersIsPermissionDenied) {
  const std::string name = Name();
  WriteRecord(name, static_cast<uint32_t>(::getpid()), 1);
  ASSERT_EQ(::chmod(("/dev/shm" + name + ".owner").c_str(), 0644), 0);
  IPCH_EXPECT_ERRC(Listen(name), PermissionDenied);
  IPCH_EXPECT_ERRC(Connect(name, Deadline::After(Scaled(Millis(200)))), PermissionDenied);
  ::shm_unlink((name + ".owner").c_str());
}

TEST(PosixMq, ALiveListenerKeepsItsName) {
  auto l = Listen(Name());
  IPCH_ASSERT_OK(l);
  auto again = Listen(Name());
  IPCH_ASSERT_ERRC(again, AlreadyExists);
  EXPECT_NE(again.error().context.find("live listener"), std::string::npos) << again.error().ToString();
}

}  // namespace
}  // namespace ipch::posix_mq
