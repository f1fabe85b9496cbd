// Proves crash isolation (harness/testing/supervisor.cc): runs crashing_cases.cc's binary with
// and without --ipch_isolate and asserts on its output, exit status, report and leftovers.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/msg.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "run_binary.h"

namespace {

using namespace ipch::selftest;

const std::string kCrashes = "Isolation/Crashes/fake.";
const std::string kCalm = "Isolation/Calm/fake.";

class ScratchDir {
 public:
  ScratchDir() {
    char tmpl[] = "/tmp/ipch-isolation-test-XXXXXX";
    path_ = ::mkdtemp(tmpl) ? tmpl : "";
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

Child Start(const std::vector<std::string>& args, const std::vector<std::string>& extra_env = {}) {
  return ipch::selftest::Start(IPCH_CRASHING_BIN, args, extra_env);
}

Ended RunBinary(const std::vector<std::string>& args, const std::vector<std::string>& extra_env = {}) {
  return Collect(Start(args, extra_env));
}

bool HasReplayLine(const std::string& output, const std::string& name) {
  std::istringstream in(output);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("[  REPLAY  ] IPCH_SEED=", 0) == 0 && Has(line, " --gtest_filter='" + name + "'")) return true;
  }
  return false;
}

std::string LineWith(const std::string& text, const std::string& needle) {
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (Has(line, needle)) return line;
  }
  return "";
}

std::string LineStartingWith(const std::string& text, const std::string& prefix) {
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(prefix, 0) == 0) return line;
  }
  return "";
}

// "left /ipch-123-1-left-by-crash, about to segfault" -> "/ipch-123-1-left-by-crash"
std::string LeftShmName(const std::string& output) {
  const std::string line = LineWith(output, ", about to segfault");
  const auto start = line.find("left /"), end = line.find(", about");
  return start == std::string::npos ? "" : line.substr(start + 5, end - start - 5);
}

// "left queue 42" -> 42, or -1.
int LeftQueue(const std::string& output) {
  const std::string line = LineWith(output, "left queue ");
  return line.empty() ? -1 : std::atoi(line.c_str() + line.find("left queue ") + 11);
}

bool QueueExists(int id) {
  msqid_ds ds{};
  return id >= 0 && ::msgctl(id, IPC_STAT, &ds) == 0;
}

bool ShmExists(const std::string& name) {
  struct stat st;
  return ::stat(("/dev/shm" + name).c_str(), &st) == 0;
}

// A FIFO the Hangs case writes its and its peer's pid into and holds open in both.
class PidFifo {
 public:
  explicit PidFifo(const std::string& path) : path_(path) {
    ::mkfifo(path.c_str(), 0600);
    fd_ = ::open(path.c_str(), O_RDONLY | O_NONBLOCK);  // before the writer: its open never blocks
  }
  // A broken supervisor leaves the peer running (nothing else kills it): do not leave it to the
  // machine once the test has failed for it.
  ~PidFifo() {
    pid_t self = 0, peer = 0;
    if (!eof_ && std::sscanf(text_.c_str(), "pids %d %d", &self, &peer) == 2 && peer > 0) ::kill(peer, SIGKILL);
    ::close(fd_);
  }
  std::string env() const { return "IPCH_SELFTEST_PIDS=" + path_; }
  // Waits for the "pids A B" line.
  bool WaitForPids(Clock::time_point deadline) {
    while (!Has(text_, "\n")) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, MsLeft(deadline)) <= 0) return false;
      char buf[256];
      const ssize_t n = ::read(fd_, buf, sizeof buf);
      if (n <= 0) return false;
      text_.append(buf, static_cast<size_t>(n));
    }
    return true;
  }
  // EOF: every process that held the write end (the case and its peer) is dead.
  bool WaitForEof(Clock::time_point deadline) { return eof_ = ReadToEof(fd_, text_, deadline); }
  const std::string& text() const { return text_; }

 private:
  std::string path_;
  int fd_ = -1;
  std::string text_;
  bool eof_ = false;
};

std::string Slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// The JUnit file as python's XML parser reads it (so "well-formed" is an XML parser's verdict):
// ROOT tests failures / SUITE name tests failures skipped / CASE name result failures skips /
// MSG name tag repr(message).
std::string ParsedJUnit(const ScratchDir& dir, const std::string& xml) {
  const std::string script = dir / "junit.py";
  std::ofstream(script) << R"(import sys, xml.etree.ElementTree as E
r = E.parse(sys.argv[1]).getroot()
print('ROOT', r.tag, r.get('tests'), r.get('failures'))
for s in r.findall('testsuite'):
    print('SUITE', s.get('name'), s.get('tests'), s.get('failures'), s.get('skipped'))
    for c in s.findall('testcase'):
        name = s.get('name') + '.' + c.get('name')
        f, k = c.findall('failure'), c.findall('skipped')
        print('CASE', name, c.get('result'), len(f), len(k))
        for e in f + k:
            print('MSG', name, e.tag, repr(e.get('message')))
)";
  std::string out;
  if (FILE* p = ::popen(("python3 '" + script + "' '" + xml + "' 2>&1").c_str(), "r")) {
    char buf[4096];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
    const int st = ::pclose(p);
    if (st != 0) out += "\n[python3 exited with " + std::to_string(st) + "]";
  }
  return out;
}

class IsolationTest : public ::testing::Test {
 protected:
  ScratchDir dir_;
};

TEST_F(IsolationTest, EveryCaseGetsItsVerdictAndCrashesDoNotStopTheRun) {
  PidFifo fifo(dir_ / "pids");
  const std::string xml = dir_ / "report.xml";
  const Ended r = RunBinary({"--ipch_isolate", "--ipch_jobs=2", "--ipch_case_timeout=2", "--gtest_output=xml:" + xml},
                            {fifo.env()});
  const std::string& out = r.output;

  ASSERT_TRUE(WIFEXITED(r.status)) << "the supervisor itself died: status " << r.status << "\n" << out;
  EXPECT_EQ(WEXITSTATUS(r.status), 1) << out;
  // The cause of each death, named.
  EXPECT_TRUE(Has(out, kCrashes + "Segfaults: killed by signal 11 (SIGSEGV)\n")) << out;
  EXPECT_TRUE(Has(out, kCrashes + "Aborts: aborted (SIGABRT)\n")) << out;
  EXPECT_TRUE(Has(out, kCrashes + "DiesOfSigpipe: killed by signal 13 (SIGPIPE)\n")) << out;
  EXPECT_TRUE(Has(out, kCrashes + "Hangs: hung: no result after ")) << out;
  EXPECT_TRUE(Has(LineWith(out, kCrashes + "Hangs: hung"), " s, killed")) << out;
  // What the crashed processes printed before they died is shown.
  EXPECT_TRUE(Has(out, "about to abort\n")) << out;
  EXPECT_TRUE(Has(out, "hanging in pause()")) << out;
  // Each crash has its replay line, as a failing test of a direct run has.
  for (const char* c : {"Segfaults", "Aborts", "DiesOfSigpipe", "Hangs"}) {
    EXPECT_TRUE(HasReplayLine(out, kCrashes + c)) << "no replay line for " << c << "\n" << out;
  }
  EXPECT_TRUE(HasReplayLine(out, kCalm + "FailsAnAssertion")) << out;
  // The cases after the crashes ran, with their own verdicts.
  EXPECT_TRUE(Has(out, "UNSUPPORTED: fake lacks capability Everything\n")) << out;
  EXPECT_TRUE(Has(out, "[       OK ] " + kCalm + "Passes")) << out;
  EXPECT_TRUE(Has(out, "a deliberate failure: <xml>")) << out;
  EXPECT_TRUE(Has(out, "[  FAILED  ] " + kCalm + "FailsAnAssertion, where TypeParam = ")) << out;
  // What the segfaulted case left is removed and named in its failure.
  const std::string shm = LeftShmName(out);
  ASSERT_FALSE(shm.empty()) << out;
  EXPECT_TRUE(Has(LineWith(out, "/dev/shm" + shm), "  left behind and removed: ")) << out;
  EXPECT_FALSE(ShmExists(shm)) << shm << " was left in /dev/shm";
  // The hang was killed with its whole process group: the peer, which nothing else kills, too.
  EXPECT_TRUE(fifo.WaitForEof(Clock::now() + std::chrono::seconds(30)))
      << "the hung case's peer outlived the run (" << fifo.text() << ")";
  // Progress per group, the summary and the matrix, computed by the supervisor.
  EXPECT_TRUE(Has(out, "[ipch] Isolation/Crashes/fake                     0 passed   4 failed   0 unsupported")) << out;
  EXPECT_TRUE(Has(out, "[ipch] Isolation/Calm/fake                        1 passed   1 failed   1 unsupported")) << out;
  EXPECT_TRUE(Has(out, "[==========] 7 tests from 2 test suites ran, each in its own process.")) << out;
  EXPECT_TRUE(Has(out, "[  PASSED  ] 1 test.\n[  SKIPPED ] 1 test.\n[  FAILED  ] 5 tests, listed below:\n")) << out;
  for (const char* c : {"Segfaults", "Aborts", "DiesOfSigpipe", "Hangs"}) {
    EXPECT_TRUE(Has(out, "[  FAILED  ] " + kCrashes + c + ": ")) << out;
  }
  EXPECT_TRUE(Has(out, "[  FAILED  ] " + kCalm + "FailsAnAssertion\n")) << out;
  EXPECT_TRUE(Has(out, "ipch verdicts")) << out;
  const std::string row = LineStartingWith(out, "fake      ");
  EXPECT_TRUE(Has(row, "FAIL 4/4") && Has(row, "FAIL 1/2") && row.size() >= 4 && row.substr(row.size() - 4) == "FAIL")
      << out;
  // Passing and skipped cases print nothing of gtest's per-process framing.
  EXPECT_FALSE(Has(out, "[==========] 1 test from 1 test suite ran.")) << out;

  EXPECT_FALSE(std::filesystem::exists(xml + ".tmp"));
  const std::string junit = ParsedJUnit(dir_, xml);
  EXPECT_TRUE(Has(junit, "ROOT testsuites 7 5\n")) << junit << "\n" << Slurp(xml);
  EXPECT_TRUE(Has(junit, "SUITE Isolation/Crashes/fake 4 4 0\n")) << junit;
  EXPECT_TRUE(Has(junit, "SUITE Isolation/Calm/fake 3 1 1\n")) << junit;
  for (const char* c : {"Segfaults", "Aborts", "DiesOfSigpipe", "Hangs"}) {
    EXPECT_TRUE(Has(junit, "CASE " + kCrashes + c + " completed 1 0\n")) << junit;
  }
  EXPECT_TRUE(Has(junit, "CASE " + kCalm + "Passes completed 0 0\n")) << junit;
  EXPECT_TRUE(Has(junit, "CASE " + kCalm + "SkipsUnsupported skipped 0 1\n")) << junit;
  EXPECT_TRUE(Has(junit, "CASE " + kCalm + "FailsAnAssertion completed 1 0\n")) << junit;
  const std::string segv = LineWith(junit, "MSG " + kCrashes + "Segfaults failure ");
  EXPECT_TRUE(Has(segv, "killed by signal 11 (SIGSEGV)") && Has(segv, "about to segfault") &&
              Has(segv, "left behind and removed: ") && Has(segv, "[  REPLAY  ]"))
      << junit;
  EXPECT_TRUE(Has(LineWith(junit, "MSG " + kCrashes + "Hangs failure "), "hung: no result after")) << junit;
  EXPECT_TRUE(Has(LineWith(junit, "MSG " + kCalm + "SkipsUnsupported skipped "),
                  "UNSUPPORTED: fake lacks capability Everything"))
      << junit;
  // Escaped, and the control character XML cannot carry dropped.
  EXPECT_TRUE(Has(LineWith(junit, "MSG " + kCalm + "FailsAnAssertion failure "),
                  "a deliberate failure: <xml> & \"quotes\" ]]> and  control"))
      << junit;
}

// Why isolation exists: run directly, the first crash takes the whole run with it.
TEST_F(IsolationTest, WithoutIsolationTheFirstCrashEndsTheRun) {
  const Ended r = RunBinary({"--gtest_filter=-*.Hangs"});
  if (const std::string shm = LeftShmName(r.output); !shm.empty()) ::shm_unlink(shm.c_str());
  if (const int q = LeftQueue(r.output); q >= 0) ::msgctl(q, IPC_RMID, nullptr);
  ASSERT_TRUE(WIFSIGNALED(r.status)) << "status " << r.status << "\n" << r.output;
  EXPECT_EQ(WTERMSIG(r.status), SIGSEGV) << r.output;
  EXPECT_TRUE(Has(r.output, "about to segfault")) << r.output;
  EXPECT_FALSE(Has(r.output, "about to abort")) << r.output;
  EXPECT_FALSE(Has(r.output, "ipch verdicts")) << r.output;
  EXPECT_FALSE(Has(r.output, "[  PASSED  ]")) << r.output;
}

TEST_F(IsolationTest, TheEnvironmentVariableSwitchesItOn) {
  const Ended r = RunBinary({"--gtest_brief=1", "--gtest_filter=*.Segfaults:*.Passes"}, {"IPCH_ISOLATE=1"});
  const std::string shm = LeftShmName(r.output);
  EXPECT_TRUE(!shm.empty() && !ShmExists(shm)) << shm << "\n" << r.output;
  // The queue its process sent on last: no name says whose it is, the dead case's tree does.
  const int q = LeftQueue(r.output);
  ASSERT_GE(q, 0) << r.output;
  EXPECT_FALSE(QueueExists(q)) << "the crashed case's SysV queue " << q << " was left\n" << r.output;
  if (QueueExists(q)) ::msgctl(q, IPC_RMID, nullptr);
  EXPECT_TRUE(Has(r.output, "left behind and removed: ") && Has(r.output, "sysv msg id=" + std::to_string(q) + " "))
      << r.output;
  ASSERT_TRUE(WIFEXITED(r.status)) << r.output;
  EXPECT_EQ(WEXITSTATUS(r.status), 1) << r.output;
  EXPECT_TRUE(Has(r.output, kCrashes + "Segfaults: killed by signal 11 (SIGSEGV)")) << r.output;
  EXPECT_TRUE(Has(r.output, "[  PASSED  ] 1 test.\n[  FAILED  ] 1 test, listed below:\n")) << r.output;
}

TEST_F(IsolationTest, AllPassingIsExitStatusZero) {
  const Ended r = RunBinary({"--ipch_isolate", "--gtest_filter=*.Passes:*.SkipsUnsupported"});
  EXPECT_TRUE(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0) << "status " << r.status << "\n" << r.output;
  EXPECT_TRUE(Has(r.output, "[  PASSED  ] 1 test.\n[  SKIPPED ] 1 test.\n")) << r.output;
  EXPECT_FALSE(Has(r.output, "FAILED")) << r.output;
}

// SIGTERM to the supervisor: the running case and its peer die with it, status 128+15.
TEST_F(IsolationTest, SigtermKillsTheRunningCasesProcessGroup) {
  PidFifo fifo(dir_ / "pids");
  Child c = Start({"--ipch_isolate", "--ipch_case_timeout=600", "--gtest_filter=*.Hangs"}, {fifo.env()});
  ASSERT_GT(c.pid, 0);
  const bool running = fifo.WaitForPids(Clock::now() + kWatchdog);
  ::kill(c.pid, SIGTERM);
  const Ended r = Collect(c);
  ASSERT_TRUE(running) << r.output;
  ASSERT_TRUE(WIFEXITED(r.status)) << "status " << r.status << "\n" << r.output;
  EXPECT_EQ(WEXITSTATUS(r.status), 128 + SIGTERM) << r.output;
  EXPECT_TRUE(Has(r.output, "stopped by SIGTERM: 1 running case(s) stopped")) << r.output;
  // The case got the signal first, and cleaned up after itself before its group was killed.
  EXPECT_TRUE(Has(r.output, "ipch: interrupted by SIGTERM while running " + kCrashes + "Hangs: stopped 1 process(es)"))
      << r.output;
  EXPECT_TRUE(fifo.WaitForEof(Clock::now() + std::chrono::seconds(30)))
      << "the case or its peer outlived the supervisor (" << fifo.text() << ")";
}

// Cases matching --ipch_serial never run beside each other: Passes waits for the hung case's
// timeout although a job is free (without the pattern it runs at once, as the first test shows).
TEST_F(IsolationTest, SerialCasesNeverOverlap) {
  PidFifo fifo(dir_ / "pids");  // the timed-out case's peer must die with its group here too
  const Ended r = RunBinary({"--ipch_isolate", "--ipch_jobs=2", "--ipch_case_timeout=2",
                             "--ipch_serial=*.Hangs:*.Passes", "--gtest_filter=*.Hangs:*.Passes"},
                            {fifo.env()});
  EXPECT_TRUE(fifo.WaitForEof(Clock::now() + std::chrono::seconds(30))) << fifo.text();
  const auto hang = r.output.find(kCrashes + "Hangs: hung"), pass = r.output.find("[       OK ] " + kCalm + "Passes");
  ASSERT_NE(hang, std::string::npos) << r.output;
  ASSERT_NE(pass, std::string::npos) << r.output;
  EXPECT_LT(hang, pass) << r.output;
}

// ---- a known-failures baseline (--ipch_known, harness/testing/baseline.h) ----------------------

class KnownFailuresTest : public IsolationTest {
 protected:
  std::string Baseline(const std::string& text) {
    const std::string path = dir_ / "known.txt";
    std::ofstream(path) << text;
    return path;
  }
};

// A listed failure is KNOWN and the run passes, whether the case fails an assertion or crashes,
// isolated or not; the JUnit report shows it skipped with the reason, not failed.
TEST_F(KnownFailuresTest, AListedFailureIsKnownAndTheRunPasses) {
  const std::string known =
      Baseline("# the fake transport's known failures\n" + kCalm + "FailsAnAssertion  fails on purpose (issue 7)\n\n" +
               kCrashes + "Seg*\tcrashes on purpose\n");
  const std::string xml = dir_ / "known.xml";
  const Ended iso = RunBinary({"--ipch_isolate", "--ipch_known=" + known, "--gtest_output=xml:" + xml,
                               "--gtest_filter=*.FailsAnAssertion:*.Segfaults:*.Passes"});
  ASSERT_TRUE(WIFEXITED(iso.status)) << iso.output;
  EXPECT_EQ(WEXITSTATUS(iso.status), 0) << iso.output;
  EXPECT_TRUE(
      Has(iso.output, "[  KNOWN   ] " + kCalm + "FailsAnAssertion: fails on purpose (issue 7) (" + known + ":2)"))
      << iso.output;
  EXPECT_TRUE(Has(iso.output, "[  KNOWN   ] " + kCrashes + "Segfaults: crashes on purpose (" + known + ":4)"))
      << iso.output;
  EXPECT_TRUE(Has(iso.output, "[  KNOWN   ] 2 tests failed as " + known + " expects:")) << iso.output;
  EXPECT_FALSE(Has(iso.output, "[  FAILED  ] 1 test, listed below")) << iso.output;
  EXPECT_TRUE(Has(iso.output, "PASS 1 +1k")) << "the matrix counts known failures apart:\n" << iso.output;
  const std::string parsed = ParsedJUnit(dir_, xml);
  EXPECT_TRUE(Has(parsed, "CASE Isolation/Calm/fake.FailsAnAssertion skipped 0 2")) << parsed;
  EXPECT_TRUE(Has(parsed, "ROOT testsuites 3 0")) << parsed;

  const Ended direct = RunBinary({"--ipch_known=" + known, "--gtest_filter=*.FailsAnAssertion:*.Passes"});
  ASSERT_TRUE(WIFEXITED(direct.status)) << direct.output;
  EXPECT_EQ(WEXITSTATUS(direct.status), 0) << direct.output;
  EXPECT_TRUE(Has(direct.output, "[  KNOWN   ] " + kCalm + "FailsAnAssertion: fails on purpose (issue 7)"))
      << direct.output;
  EXPECT_TRUE(Has(direct.output, "[  KNOWN   ] 1 known failure(s) of " + known + "; 0 other failure(s)"))
      << direct.output;
  EXPECT_TRUE(Has(direct.output, "  1 passed   0 failed   0 unsupported")) << "the progress line counts as judged:\n"
                                                                            << direct.output;
  EXPECT_TRUE(Has(direct.output, " ms  1 known")) << direct.output;
}

// An unlisted failure still fails the run; a listed case that passes or is skipped fails it too,
// so the baseline shrinks as the library is fixed.
TEST_F(KnownFailuresTest, AnUnexpectedFailurePassOrSkipFailsTheRun) {
  const std::string known = Baseline(kCalm + "Passes  was broken once\n" + kCalm + "SkipsUnsupported  broken too\n");
  for (const bool isolate : {true, false}) {
    std::vector<std::string> args{"--ipch_known=" + known, "--gtest_filter=*.Passes:*.SkipsUnsupported"};
    if (isolate) args.push_back("--ipch_isolate");
    const Ended r = RunBinary(args);
    ASSERT_TRUE(WIFEXITED(r.status)) << r.output;
    EXPECT_EQ(WEXITSTATUS(r.status), 1) << (isolate ? "isolated: " : "direct: ") << r.output;
    EXPECT_TRUE(Has(r.output, "[UNEXPECTED] " + kCalm + "Passes passed, but " + known +
                                  ":1 lists it as a known failure (was broken once): remove the entry"))
        << r.output;
    EXPECT_TRUE(Has(r.output, "[UNEXPECTED] " + kCalm + "SkipsUnsupported was skipped, but " + known + ":2"))
        << r.output;
  }
  const Ended other = RunBinary({"--ipch_isolate", "--ipch_known=" + known, "--gtest_filter=*.FailsAnAssertion"});
  EXPECT_TRUE(WIFEXITED(other.status) && WEXITSTATUS(other.status) == 1) << other.output;
  EXPECT_TRUE(Has(other.output, "[  FAILED  ] " + kCalm + "FailsAnAssertion")) << other.output;
}

// A '~' entry is for a library's race: the case may fail (KNOWN) or pass (PASS, with a note),
// and the run passes either way; a skip still fails it, as the entry no longer applies.
TEST_F(KnownFailuresTest, ASometimesEntryMayPassOrFail) {
  const std::string known = Baseline("~" + kCalm + "Passes  races in the library\n~" + kCalm +
                                     "FailsAnAssertion  races too\n~" + kCalm + "SkipsUnsupported  stale\n");
  for (const bool isolate : {true, false}) {
    std::vector<std::string> args{"--ipch_known=" + known, "--gtest_filter=*.Passes:*.FailsAnAssertion"};
    if (isolate) args.push_back("--ipch_isolate");
    const Ended r = RunBinary(args);
    const std::string how = isolate ? "isolated: " : "direct: ";
    ASSERT_TRUE(WIFEXITED(r.status)) << how << r.output;
    EXPECT_EQ(WEXITSTATUS(r.status), 0) << how << r.output;
    EXPECT_TRUE(Has(r.output, "[  FLAKY   ] " + kCalm + "Passes passed this time; " + known +
                                  ":1 says it fails sometimes (races in the library)"))
        << how << r.output;
    EXPECT_TRUE(Has(r.output, "[  KNOWN   ] " + kCalm + "FailsAnAssertion: races too (" + known + ":2)"))
        << how << r.output;
    EXPECT_TRUE(Has(r.output, "PASS 1 +1k")) << how << r.output;
  }
  const Ended skip = RunBinary({"--ipch_isolate", "--ipch_known=" + known, "--gtest_filter=*.SkipsUnsupported"});
  EXPECT_TRUE(WIFEXITED(skip.status) && WEXITSTATUS(skip.status) == 1) << skip.output;
  EXPECT_TRUE(Has(skip.output, "[UNEXPECTED] " + kCalm + "SkipsUnsupported was skipped, but " + known + ":3"))
      << skip.output;
}

// A baseline that cannot be trusted stops the run before any case: unreadable, an entry without
// its reason, or one that matches no test of the program (stale, or misspelt).
TEST_F(KnownFailuresTest, ABadBaselineIsRefusedWithTheLine) {
  struct Bad {
    std::string text, says;
  };
  const std::vector<Bad> bad = {
      {"# fine\n" + kCalm + "Passes\n", ":2: '" + kCalm + "Passes' has no reason: write why the case fails after it"},
      {kCalm + "NoSuchCase  gone\n", ":1: '" + kCalm + "NoSuchCase' matches no test of this program"},
      {"~  nothing\n", ":1: '~' is one gtest name pattern"},
      {kCalm + "Passes:" + kCalm + "Hangs  two\n",
       ":1: '" + kCalm + "Passes:" + kCalm + "Hangs' is one gtest name pattern"},
  };
  for (const auto& b : bad) {
    const std::string path = Baseline(b.text);
    for (const bool isolate : {true, false}) {
      std::vector<std::string> args{"--ipch_known=" + path, "--gtest_filter=*.Passes"};
      if (isolate) args.push_back("--ipch_isolate");
      const Ended r = RunBinary(args);
      ASSERT_TRUE(WIFEXITED(r.status)) << r.output;
      EXPECT_EQ(WEXITSTATUS(r.status), 2) << r.output;
      EXPECT_TRUE(Has(r.output, "ipch: --ipch_known: " + path + b.says)) << r.output;
      EXPECT_FALSE(Has(r.output, "[ RUN      ]")) << "no case may run under a bad baseline:\n" << r.output;
    }
  }
  const Ended missing = RunBinary({"--ipch_known=" + (dir_ / "none.txt"), "--gtest_filter=*.Passes"});
  EXPECT_TRUE(WIFEXITED(missing.status) && WEXITSTATUS(missing.status) == 2) << missing.output;
  EXPECT_TRUE(Has(missing.output, "reading the known-failures baseline " + (dir_ / "none.txt"))) << missing.output;
}

TEST_F(IsolationTest, ABadFlagIsRefused) {
  const Ended r = RunBinary({"--ipch_isolate", "--ipch_jobs=0"});
  ASSERT_TRUE(WIFEXITED(r.status)) << r.output;
  EXPECT_EQ(WEXITSTATUS(r.status), 2) << r.output;
  EXPECT_TRUE(Has(r.output, "--ipch_jobs needs a whole number from 1 to 256, got '0'")) << r.output;
}

}  // namespace
