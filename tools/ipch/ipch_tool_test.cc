// The ipch tool from outside: `ipch sweep` over objects planted with dead, live, reused and
// foreign owners side by side, and its answers to bad input.
//
// Planted names start with "sweeptest<our pid>-" and are swept with that --prefix: the start-up
// sweep of a test binary running in parallel (prefix "ipch-") never takes them first.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <mqueue.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <map>
#include <optional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "../../harness/selftest/run_binary.h"
#include "ipch/child_process.h"
#include "ipch/deadline.h"
#include "ipch/sweep.h"
#include "ipch/testing.h"

namespace {

using ipch::selftest::Ended;
using ipch::selftest::Has;
using nlohmann::json;

Ended Tool(const std::vector<std::string>& args) { return ipch::selftest::RunBinary(IPCH_TOOL, args); }

std::string Prefix() { return "sweeptest" + std::to_string(::getpid()) + "-"; }

bool Exists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

bool MqueueMounted() { return Exists("/dev/mqueue"); }

// A pid that no process has: a child's, once reaped.
pid_t DeadPid() {
  auto child = ipch::ChildProcess::Spawn([](ipch::ControlChannel&) { return ipch::Ok(); });
  if (!child.ok() || !child->Wait(ipch::Deadline::After(std::chrono::seconds(10))).ok()) return -1;
  return child->pid();
}

// The objects planted for one owner pid, in every place the sweep looks; removed at the end
// whatever the test did (as root, whoever owns them).
class Planted {
 public:
  Planted(pid_t owner, const std::string& what) : stem_(Prefix() + "ipch-" + std::to_string(owner) + "-" + what) {}
  ~Planted() {
    std::error_code ec;
    std::filesystem::remove_all(dir(), ec);
    ::shm_unlink(("/" + stem_).c_str());
    ::mq_unlink(("/" + stem_).c_str());
  }
  std::string dir() const { return std::filesystem::temp_directory_path().string() + "/" + stem_; }
  std::string shm() const { return "/dev/shm/" + stem_; }
  std::string mqueue() const { return "/dev/mqueue/" + stem_; }
  std::vector<std::string> paths() const {
    std::vector<std::string> p{dir(), shm()};
    if (MqueueMounted()) p.push_back(mqueue());
    return p;
  }
  // Made by the calling process: a scratch dir holding a file, a POSIX segment, a POSIX queue.
  ::testing::AssertionResult Make() const {
    std::error_code ec;
    std::filesystem::create_directories(std::filesystem::path(dir()) / "sub", ec);
    if (ec) return ::testing::AssertionFailure() << "mkdir " << dir() << ": " << ec.message();
    const int fd = ::shm_open(("/" + stem_).c_str(), O_CREAT | O_EXCL | O_RDWR, 0600);
    if (fd < 0) return ::testing::AssertionFailure() << "shm_open " << stem_ << ": " << std::strerror(errno);
    ::close(fd);
    if (MqueueMounted()) {
      const mqd_t q = ::mq_open(("/" + stem_).c_str(), O_CREAT | O_EXCL | O_RDWR, 0600, nullptr);
      if (q == static_cast<mqd_t>(-1)) return ::testing::AssertionFailure() << "mq_open: " << std::strerror(errno);
      ::mq_close(q);
    }
    return ::testing::AssertionSuccess();
  }

 private:
  std::string stem_;
};

// The objects of a JSON report, by name.
std::map<std::string, json> ByName(const json& doc) {
  std::map<std::string, json> out;
  for (const auto& o : doc.at("objects")) out[o.at("name").get<std::string>()] = o;
  return out;
}

TEST(IpchSweep, ListsTheDeadOwnersObjectsAndKeepsTheLiveOnes) {
  const pid_t dead = DeadPid();
  ASSERT_GT(dead, 0);
  Planted gone(dead, "gone"), mine(::getpid(), "live");
  ASSERT_TRUE(gone.Make());
  ASSERT_TRUE(mine.Make());

  const Ended listed = Tool({"sweep", "--prefix", Prefix(), "--dry-run", "--json"});
  ASSERT_TRUE(WIFEXITED(listed.status) && WEXITSTATUS(listed.status) == 0) << listed.output;
  const json doc = json::parse(listed.output, nullptr, false);
  ASSERT_FALSE(doc.is_discarded()) << "not JSON:\n" << listed.output;
  EXPECT_EQ(doc.at("dry_run"), true);
  EXPECT_EQ(doc.at("sysv"), false) << "a narrower prefix leaves unnamed SysV segments out";
  const auto objects = ByName(doc);
  EXPECT_EQ(objects.size(), gone.paths().size()) << listed.output;
  for (const auto& p : gone.paths()) {
    ASSERT_TRUE(objects.count(p)) << p << " is not listed:\n" << listed.output;
    EXPECT_EQ(objects.at(p).at("owner_pid"), dead);
    EXPECT_EQ(objects.at(p).at("why"), "pid " + std::to_string(dead) + " does not exist");
    EXPECT_EQ(objects.at(p).at("removed"), false);
    EXPECT_TRUE(Exists(p)) << "--dry-run removed " << p;
  }
  EXPECT_EQ(objects.at(gone.dir()).at("kind"), "scratch dir");
  EXPECT_EQ(objects.at(gone.shm()).at("kind"), "posix shm");

  const Ended swept = Tool({"sweep", "--prefix", Prefix()});
  ASSERT_TRUE(WIFEXITED(swept.status) && WEXITSTATUS(swept.status) == 0) << swept.output;
  for (const auto& p : gone.paths()) {
    EXPECT_FALSE(Exists(p)) << p << " survived the sweep:\n" << swept.output;
    EXPECT_TRUE(Has(swept.output, "removed ")) << swept.output;
  }
  for (const auto& p : mine.paths()) EXPECT_TRUE(Exists(p)) << "a live owner's " << p << " was removed";
  EXPECT_TRUE(Has(swept.output, std::to_string(gone.paths().size()) + " removed")) << swept.output;
}

TEST(IpchSweep, APidReusedByALaterProcessIsJudgedByItsStartTime) {
  // The object is made first; then a process is started until one starts measurably later
  // (its start time is known to a clock tick) and the object is renamed to carry its pid.
  const std::string draft = "/dev/shm/" + Prefix() + "draft";
  const int fd = ::open(draft.c_str(), O_CREAT | O_EXCL | O_RDWR, 0600);
  ASSERT_GE(fd, 0);
  ::close(fd);
  struct statx sx {};
  ASSERT_EQ(::statx(AT_FDCWD, draft.c_str(), 0, STATX_BTIME, &sx), 0);
  if (!(sx.stx_mask & STATX_BTIME)) {
    ::unlink(draft.c_str());
    GTEST_SKIP() << "/dev/shm records no birth time here: a renamed object cannot stand for an older one";
  }
  const timespec made{static_cast<time_t>(sx.stx_btime.tv_sec), static_cast<long>(sx.stx_btime.tv_nsec)};
  const auto until = ipch::Deadline::After(ipch::Scaled(std::chrono::seconds(10)));
  std::optional<ipch::ChildProcess> later;
  while (!until.expired()) {
    auto c = ipch::ChildProcess::Spawn([](ipch::ControlChannel& ch) -> ipch::Status {
      (void)ch.WaitSignal(ipch::Deadline::Never());  // alive until killed
      return ipch::Ok();
    });
    ASSERT_TRUE(c.ok()) << c.error().ToString();
    if (ipch::sweep::JudgeOwner(c->pid(), made).dead) {
      later.emplace(std::move(*c));
      break;
    }
  }
  ASSERT_TRUE(later.has_value()) << "no process started measurably after the object within the bound";
  Planted reused(later->pid(), "reused"), live(later->pid(), "fresh");
  ASSERT_EQ(::rename(draft.c_str(), reused.shm().c_str()), 0);
  ASSERT_TRUE(live.Make());  // made now: its owner is that same, live, process

  const Ended swept = Tool({"sweep", "--prefix", Prefix(), "--json"});
  ASSERT_TRUE(WIFEXITED(swept.status) && WEXITSTATUS(swept.status) == 0) << swept.output;
  const json doc = json::parse(swept.output, nullptr, false);
  ASSERT_FALSE(doc.is_discarded()) << "not JSON:\n" << swept.output;
  const auto objects = ByName(doc);
  ASSERT_TRUE(objects.count(reused.shm())) << swept.output;
  EXPECT_TRUE(Has(objects.at(reused.shm()).at("why").get<std::string>(),
                  "pid " + std::to_string(later->pid()) + " was reused: the process with it started "))
      << swept.output;
  EXPECT_FALSE(Exists(reused.shm()));
  for (const auto& p : live.paths()) EXPECT_TRUE(Exists(p)) << "the live owner's " << p << " was removed";
  EXPECT_EQ(objects.size(), 1u) << swept.output;
}

TEST(IpchSweep, ObjectsOfAnotherUidAreNeverTouched) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to make objects as another uid";
  const pid_t dead = DeadPid();
  ASSERT_GT(dead, 0);
  Planted theirs(dead, "nobody");
  // Made by a child that became uid 65534 (nobody) first.
  auto maker = ipch::ChildProcess::Spawn([&](ipch::ControlChannel&) -> ipch::Status {
    if (::setresgid(65534, 65534, 65534) != 0 || ::setresuid(65534, 65534, 65534) != 0) {
      return ipch::ErrnoError("setresuid");
    }
    if (auto made = theirs.Make(); !made) return ipch::MakeError(ipch::Errc::InvalidArgument, made.message());
    return ipch::Ok();
  });
  ASSERT_TRUE(maker.ok());
  auto exit = maker->Wait(ipch::Deadline::After(ipch::Scaled(std::chrono::seconds(10))));
  ASSERT_TRUE(exit.ok() && exit->Success()) << maker->Describe();
  // The temp directory is sticky and world-writable; /dev/shm and /dev/mqueue too.
  for (const auto& p : theirs.paths()) ASSERT_TRUE(Exists(p)) << p;

  const Ended swept = Tool({"sweep", "--prefix", Prefix(), "--json"});
  ASSERT_TRUE(WIFEXITED(swept.status) && WEXITSTATUS(swept.status) == 0) << swept.output;
  EXPECT_EQ(json::parse(swept.output, nullptr, false).value("found", -1), 0) << swept.output;
  for (const auto& p : theirs.paths()) EXPECT_TRUE(Exists(p)) << "another uid's " << p << " was removed";
}

TEST(IpchTool, BadInputGetsOneClearMessageAndStatus2) {
  struct Case {
    std::vector<std::string> args;
    std::string says;
  };
  const std::vector<Case> cases = {
      {{}, "A subcommand is required"},
      {{"sweeep"}, "sweeep"},
      {{"sweep", "--bogus"}, "--bogus"},
      {{"sweep", "--prefix", "a/b"}, "without '/'"},
      {{"sweep", "--prefix", ""}, "the prefix is empty"},
      {{"sweep", "--min-age", "-1"}, "--min-age"},
      {{"sweep", "--min-age", "soon"}, "--min-age"},
  };
  for (const auto& c : cases) {
    const Ended e = Tool(c.args);
    std::string shown;
    for (const auto& a : c.args) shown += " '" + a + "'";
    EXPECT_TRUE(WIFEXITED(e.status) && WEXITSTATUS(e.status) == 2) << "ipch" << shown << ":\n" << e.output;
    EXPECT_TRUE(Has(e.output, c.says)) << "ipch" << shown << ":\n" << e.output;
    EXPECT_TRUE(Has(e.output, "--help")) << "ipch" << shown << ":\n" << e.output;
  }
  const Ended help = Tool({"sweep", "--help"});
  EXPECT_TRUE(WIFEXITED(help.status) && WEXITSTATUS(help.status) == 0) << help.output;
  EXPECT_TRUE(Has(help.output, "--dry-run") && Has(help.output, "--json")) << help.output;
}

}  // namespace
