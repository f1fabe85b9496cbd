// Ctrl-C, SIGTERM and SIGHUP in the middle of a battery run leave nothing behind
// (ipch/interrupt.h): the reference battery runs as a child, directly or isolated,
// and is interrupted at a seeded moment after its first case started; then it must have exited
// with 128+signal, said what it interrupted, and left no process, no named object (scratch
// directories, /dev/shm, /dev/mqueue) and no SysV object.
//
// The cases run one at a time (SERIAL): anything new on the machine is the battery's. This
// process is a child subreaper, so a peer the battery failed to stop becomes our child and is
// counted.
#include <dirent.h>
#include <gtest/gtest.h>
#include <sys/prctl.h>
#include <sys/stat.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

#include "ipch/deadline.h"
#include "ipch/interrupt.h"
#include "ipch/sweep.h"
#include "run_binary.h"

namespace {

using namespace ipch::selftest;

// Cases that make every kind of object (segments, queues, FIFOs, socket files) and fork peers.
const char kCases[] =
    "Conformance/PeerDeath/posix_shm.*:Conformance/PeerDeath/sysv_shm.*:Conformance/PeerDeath/sysv_mq.*:"
    "Conformance/PeerDeath/posix_mq.*:Conformance/PeerDeath/fifo.*:Conformance/PeerDeath/unix.*:"
    "Conformance/Concurrency/*";

// Entries of a directory whose name holds "ipch-".
void AddNamed(const std::string& dir, std::set<std::string>& out) {
  if (DIR* d = ::opendir(dir.c_str())) {
    while (dirent* e = ::readdir(d)) {
      if (std::strstr(e->d_name, "ipch-") != nullptr) out.insert(dir + "/" + e->d_name);
    }
    ::closedir(d);
  }
}

// SysV objects of our uid, as "<kind> id=<id>".
void AddSysv(std::set<std::string>& out) {
  for (const char* kind : {"shm", "msg", "sem"}) {
    const std::string id_col = std::string(kind == std::string("msg") ? "msq" : kind) + "id";
    for (auto& row : ipch::sweep::SysvTable(kind)) {
      if (std::stoul(row["uid"]) == ::geteuid()) out.insert(std::string(kind) + " id=" + row[id_col]);
    }
  }
}

std::set<std::string> Objects() {
  std::set<std::string> out;
  AddNamed(std::filesystem::temp_directory_path().string(), out);
  AddNamed("/dev/shm", out);
  AddNamed("/dev/mqueue", out);
  AddSysv(out);
  return out;
}

// Reaps what became our child (we are a subreaper) and returns what is still alive.
std::set<pid_t> LiveDescendants() {
  while (::waitpid(-1, nullptr, WNOHANG) > 0) {
  }
  std::set<pid_t> live;
  for (pid_t p : ipch::sweep::Descendants(::getpid())) {
    std::ifstream in("/proc/" + std::to_string(p) + "/stat");
    std::string line;
    if (std::getline(in, line) && line.find(") Z ") == std::string::npos) live.insert(p);
  }
  return live;
}

struct Interruption {
  bool isolated;
  int sig;
  bool to_group;  // as a terminal's Ctrl-C does: the whole foreground group gets it
};

class Interrupt : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { ::prctl(PR_SET_CHILD_SUBREAPER, 1); }

  // One interrupted run; every failure names the seed that replays its moment.
  void Check(const Interruption& run, uint64_t seed) {
    std::mt19937_64 rng(seed);
    const int delay_ms = static_cast<int>(rng() % 1500) * ipch::SlowdownFactor();
    const std::string what = std::string(run.isolated ? "isolated" : "direct") + " run, " + ipch::SignalName(run.sig) +
                             (run.to_group ? " to its process group" : " to its pid") + " " +
                             std::to_string(delay_ms) + " ms after its first case started (IPCH_INTERRUPT_SEED=" +
                             std::to_string(seed) + ")";
    SCOPED_TRACE(what);
    const std::set<std::string> before = Objects();
    std::vector<std::string> args = {"--gtest_filter=" + std::string(kCases), "--gtest_color=no"};
    if (run.isolated) args.insert(args.end(), {"--ipch_isolate", "--ipch_jobs=2", "--ipch_serial=*posix_mq*"});
    Child c = Start(IPCH_BATTERY_BIN, args, {}, /*own_group=*/true);
    ASSERT_GT(c.pid, 0);

    // Wait for the first case to start (an event), then for the seeded moment.
    std::string out;
    const auto watchdog = Clock::now() + kWatchdog;
    while (!Has(out, "[ RUN      ]") && !Has(out, "[       OK ]") && Clock::now() < watchdog) {
      pollfd p{c.out, POLLIN, 0};
      if (::poll(&p, 1, MsLeft(watchdog)) <= 0) break;
      char buf[4096];
      const ssize_t n = ::read(c.out, buf, sizeof buf);
      if (n <= 0) break;
      out.append(buf, static_cast<size_t>(n));
    }
    const auto moment = Clock::now() + std::chrono::milliseconds(delay_ms);
    const bool at_eof = ReadToEof(c.out, out, moment);
    ::kill(run.to_group ? -c.pid : c.pid, run.sig);
    if (!at_eof) ReadToEof(c.out, out, Clock::now() + kWatchdog);
    ::close(c.out);
    int status = 0;
    ::waitpid(c.pid, &status, 0);

    ASSERT_FALSE(Has(out, "[  PASSED  ]") && !Has(out, "interrupted") && !Has(out, "stopped by"))
        << "the run ended before the interrupt: the cases are too short for the moment chosen\n"
        << out;
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 128 + run.sig)
        << "exit status " << (WIFEXITED(status) ? WEXITSTATUS(status) : -1) << ", signal "
        << (WIFSIGNALED(status) ? WTERMSIG(status) : 0) << "; expected exit " << 128 + run.sig << "\n"
        << out.substr(out.size() > 6000 ? out.size() - 6000 : 0);
    if (run.isolated) {
      EXPECT_TRUE(Has(out, "[ipch] stopped by " + ipch::SignalName(run.sig))) << out.substr(out.size() > 6000 ? out.size() - 6000 : 0);
    } else {
      EXPECT_TRUE(Has(out, "ipch: interrupted by " + ipch::SignalName(run.sig)))
          << out.substr(out.size() > 6000 ? out.size() - 6000 : 0);
      if (Has(out, " while running ")) {
        EXPECT_TRUE(Has(out, "[  REPLAY  ]")) << out;
      }
    }

    EXPECT_EQ(LiveDescendants(), std::set<pid_t>{}) << "processes left running";
    std::vector<std::string> left;
    for (const auto& o : Objects()) {
      if (!before.count(o)) left.push_back(o);
    }
    EXPECT_EQ(left, std::vector<std::string>{}) << "objects left behind\n"
                                                << out.substr(out.size() > 3000 ? out.size() - 3000 : 0);
    // Whatever a failing run left must not stay on the machine.
    for (pid_t p : LiveDescendants()) ::kill(p, SIGKILL);
    LiveDescendants();
    for (const auto& f : ipch::sweep::FindOrphans({"ipch-", true, std::chrono::seconds(0)})) (void)ipch::sweep::Remove(f);
  }
};

uint64_t BaseSeed() {
  const char* s = std::getenv("IPCH_INTERRUPT_SEED");
  return s ? std::strtoull(s, nullptr, 10) : 20261205;
}

// The runs: each signal, to the pid and (SIGINT, as from a terminal) to the whole group, direct
// and isolated. IPCH_INTERRUPT_ROUNDS repeats them with the next seeds.
TEST_F(Interrupt, LeavesNothingBehindInAnyMode) {
  const std::vector<Interruption> runs = {{false, SIGINT, true},  {false, SIGTERM, false}, {false, SIGHUP, false},
                                 {true, SIGINT, true},   {true, SIGTERM, false}};
  const char* r = std::getenv("IPCH_INTERRUPT_ROUNDS");
  const int rounds = r ? std::max(1, std::atoi(r)) : 1;
  uint64_t seed = BaseSeed();
  for (int round = 0; round < rounds; ++round) {
    for (const auto& run : runs) {
      Check(run, seed++);
      if (HasFatalFailure()) return;
    }
  }
}

}  // namespace
