// The audit fails a test that leaks, names what it left and removes it: one deliberately leaking
// test per kind of object (leaky.cc).
#include <fstream>
#include <sstream>

#include "selftest_support.h"

namespace {

using namespace ipch::selftest;

// Runs one deliberately leaking test; the audit must fail it and name `what`.
std::string RunLeaky(const std::string& test, const std::string& what) {
  RunResult r = RunBattery(IPCH_LEAKY_BIN, "AuditSelfTest." + test);
  EXPECT_NE(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("resource audit: the test left"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find(what), std::string::npos) << r.output;
  return r.output;
}

std::string After(const std::string& s, const std::string& marker) {
  auto p = s.find(marker);
  if (p == std::string::npos) return "";
  auto e = s.find('\n', p);
  return s.substr(p + marker.size(), e - p - marker.size());
}

TEST(AuditSelfTest, ChildProcessLeakIsNamedAndKilled) {
  std::string out = RunLeaky("LeavesChildRunning", "child process left running");
  std::string pid = After(out, "leaked child pid ");
  ASSERT_FALSE(pid.empty()) << out;
  EXPECT_NE(::access(("/proc/" + pid).c_str(), F_OK), 0) << "leaked child " << pid << " still exists";
}

TEST(AuditSelfTest, ScratchFileLeakIsNamed) { RunLeaky("LeavesFileInScratchDir", "forgotten.sock"); }

TEST(AuditSelfTest, PosixShmLeakIsNamedAndUnlinked) {
  std::string out = RunLeaky("LeavesPosixShm", "leaked POSIX shm");
  std::string name = After(out, "leaked shm ");
  ASSERT_FALSE(name.empty()) << out;
  EXPECT_NE(::access(("/dev/shm" + name).c_str(), F_OK), 0) << name << " was not removed";
}

TEST(AuditSelfTest, SysvLeakIsNamedAndRemoved) {
  std::string out = RunLeaky("LeavesSysvSegment", "leaked sysv shm");
  std::string id = After(out, "leaked sysv shm id=");
  ASSERT_FALSE(id.empty()) << out;
  std::ifstream in("/proc/sysvipc/shm");
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    std::string key, shmid;
    ls >> key >> shmid;
    EXPECT_NE(shmid, id) << "segment " << id << " was not removed";
  }
}

TEST(AuditSelfTest, FdLeakIsNamed) { RunLeaky("LeavesFd", "leaked fd"); }

}  // namespace
