#include "supervisor.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <set>
#include <sstream>

#include "baseline.h"
#include "case_process.h"
#include "case_record.h"
#include "ipch/audit.h"
#include "ipch/deadline.h"
#include "ipch/interrupt.h"
#include "ipch/raw_io.h"
#include "ipch/sweep.h"
#include "ipch/testing.h"
#include "junit.h"
#include "shared.h"
#include "fault_coverage.h"
#include "results.h"
#include "verdicts.h"

extern char** environ;

namespace ipch::testing {
namespace {

using WallClock = std::chrono::system_clock;

constexpr size_t kTailLines = 20;

bool StartsWith(const std::string& s, const char* p) { return s.rfind(p, 0) == 0; }
bool EndsWith(const std::string& s, const char* p) {
  const size_t n = std::strlen(p);
  return s.size() >= n && s.compare(s.size() - n, n, p) == 0;
}

long long MsSince(Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t).count();
}

// ---- Stop signals: the handler only writes the signal number into a pipe the loop polls.

int g_stop_write_fd = -1;

void OnStopSignal(int sig) {
  const int saved = errno;
  const unsigned char b = static_cast<unsigned char>(sig);
  (void)!::syscall(SYS_write, g_stop_write_fd, &b, 1);
  errno = saved;
}

class StopSignals {
 public:
  static constexpr int kSignals[] = {SIGINT, SIGTERM, SIGHUP};

  Status Install() {
    int fds[2];
    if (::syscall(SYS_pipe2, fds, O_CLOEXEC | O_NONBLOCK) != 0) return ErrnoError("pipe2 for signals");
    read_ = UniqueFd(fds[0]);
    write_ = UniqueFd(fds[1]);
    g_stop_write_fd = write_.get();
    struct sigaction sa {};
    sa.sa_handler = OnStopSignal;
    sa.sa_flags = SA_RESTART;  // a write to stdout must not fail half-way; ppoll returns anyway
    ::sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < std::size(kSignals); ++i) ::sigaction(kSignals[i], &sa, &previous_[i]);
    return Ok();
  }
  ~StopSignals() {
    if (!write_) return;
    for (size_t i = 0; i < std::size(kSignals); ++i) ::sigaction(kSignals[i], &previous_[i], nullptr);
    g_stop_write_fd = -1;
  }
  int fd() const { return read_.get(); }
  // The signal that arrived, or 0.
  int Take() {
    unsigned char b = 0;
    return RawRead(read_.get(), &b, 1) == 1 ? b : 0;
  }

 private:
  UniqueFd read_, write_;
  struct sigaction previous_[std::size(kSignals)]{};
};

// ---- Text.

std::string DeathText(int status) {
  if (!WIFSIGNALED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  const int sig = WTERMSIG(status);
  if (sig == SIGABRT) return "aborted (SIGABRT)";
  return "killed by signal " + std::to_string(sig) + " (" + SignalName(sig) + ")";
}

// What each child prints around its one test (banner, counts, the list of failures): the
// supervisor prints its own summary once instead. Per-test lines end with the time.
bool IsGtestFraming(const std::string& line) {
  static const char* const kPrefixes[] = {"[==========]",
                                          "[----------]",
                                          "[  PASSED  ]",
                                          "Note: Google Test filter = ",
                                          "Note: This is test shard ",
                                          "Note: Randomizing tests' orders with a seed of ",
                                          "Repeating all tests (iteration "};
  for (const char* p : kPrefixes) {
    if (StartsWith(line, p)) return true;
  }
  if ((StartsWith(line, "[  FAILED  ]") || StartsWith(line, "[  SKIPPED ]")) && !EndsWith(line, " ms)")) return true;
  if (StartsWith(line, "  YOU HAVE ") && line.find(" DISABLED TEST") != std::string::npos) return true;
  const auto digits = line.find_first_not_of(' ');
  const auto word = line.find(" FAILED TEST");
  return digits != std::string::npos && word != std::string::npos && word > digits &&
         line.find_first_not_of("0123456789", digits) == word && (EndsWith(line, " TEST") || EndsWith(line, " TESTS"));
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

// The child's output without the framing and without trailing blank lines; every line ends
// with a newline (a crash can cut the last one).
std::string WithoutFraming(const std::string& output) {
  std::string kept;
  for (const auto& line : Lines(output)) {
    if (!IsGtestFraming(line)) kept += line + "\n";
  }
  while (EndsWith(kept, "\n\n")) kept.pop_back();
  if (kept == "\n") kept.clear();
  return kept;
}

std::string LastLines(const std::string& text, size_t n) {
  const auto lines = Lines(text);
  std::string out;
  for (size_t i = lines.size() > n ? lines.size() - n : 0; i < lines.size(); ++i) out += lines[i] + "\n";
  return out;
}

std::string Indented(const std::string& text) {
  std::string out;
  for (const auto& line : Lines(text)) out += "  " + line + "\n";
  return out;
}

std::string Join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : ", ") + s;
  return out;
}

std::string Count(size_t n, const char* what) { return std::to_string(n) + " " + what + (n == 1 ? "" : "s"); }

// ", where TypeParam = T" as gtest prints it after a test's name.
std::string ParamComment(const ListedCase& c) {
  std::string s;
  if (!c.type_param.empty()) s += ", where TypeParam = " + c.type_param;
  if (!c.value_param.empty()) s += std::string(s.empty() ? ", where " : " and ") + "GetParam() = " + c.value_param;
  return s;
}

// ---- Verdicts from the child's records and how its process ended.

Outcome OutcomeOfRecords(const std::vector<CaseRecord>& records) {
  bool passed = false;
  for (const auto& r : records) {
    if (r.outcome == Outcome::kFail) return Outcome::kFail;
    passed = passed || r.outcome == Outcome::kPass;
  }
  return passed || records.empty() ? Outcome::kPass : Outcome::kSkip;
}

const char* Done(Outcome o) { return o == Outcome::kPass ? "passed" : o == Outcome::kSkip ? "was skipped" : "failed"; }

// Why the process, not gtest, decides the verdict; "" when the records stand.
std::string ProcessCause(const std::vector<CaseRecord>& records, int status, bool timed_out, long long timeout_s) {
  const std::string after = records.empty() ? "" : std::string(Done(OutcomeOfRecords(records))) + ", then ";
  if (timed_out) {
    return records.empty() ? "hung: no result after " + std::to_string(timeout_s) + " s, killed"
                           : after + "hung: still running " + std::to_string(timeout_s) + " s after it started, killed";
  }
  if (records.empty()) return DeathText(status) + (WIFSIGNALED(status) ? "" : " without a result");
  if (WIFSIGNALED(status)) return after + DeathText(status);
  const int code = WEXITSTATUS(status);
  if (code == 0 || (code == 1 && OutcomeOfRecords(records) == Outcome::kFail)) return "";
  return after + DeathText(status);  // a sanitizer's exit code after the test, say
}

// What the dead case left: objects named with its pid are its own; others (another run's) are
// only reported, as a test binary's start-up sweep reports them.
// SysV objects carry no name: those the case's process tree (`tree`, taken as its group was
// killed) made or used last are its own too. A queue whose two ends both died is found only so.
std::vector<std::string> SweepAfterDeath(pid_t pid, const std::set<pid_t>& tree) {
  const std::string mark = "ipch-" + std::to_string(pid) + "-";
  std::vector<std::string> own, others;
  for (auto& r : audit::SweepDeadOwners()) (r.find(mark) != std::string::npos ? own : others).push_back(r);
  for (const auto& f : sweep::OwnedBy(pid, tree)) {
    if (f.kind.rfind("sysv", 0) == 0 && sweep::Remove(f).ok()) own.push_back(f.kind + " " + f.name);
  }
  PrintSweep(others);
  return own;
}

// ---- The live progress line: on a terminal, one line on stderr redrawn in place (cases done,
// failures, elapsed, ETA); everything else printed is written above it. IPCH_PROGRESS=live or
// =plain overrides the terminal test.

bool LiveProgressWanted() {
  if (const char* p = std::getenv("IPCH_PROGRESS"); p != nullptr && *p != '\0') return std::strcmp(p, "live") == 0;
  const char* term = std::getenv("TERM");
  return ::isatty(STDERR_FILENO) == 1 && term != nullptr && std::strcmp(term, "dumb") != 0;
}

std::string Duration(long long ms) {
  const long long s = ms / 1000;
  char buf[32];
  if (s >= 3600) {
    std::snprintf(buf, sizeof buf, "%lldh%02lldm", s / 3600, s / 60 % 60);
  } else if (s >= 60) {
    std::snprintf(buf, sizeof buf, "%lldm%02llds", s / 60, s % 60);
  } else {
    std::snprintf(buf, sizeof buf, "%llds", s);
  }
  return buf;
}

class LiveLine {
 public:
  explicit LiveLine(bool enabled) : enabled_(enabled) {}
  bool enabled() const { return enabled_; }
  // Before anything else is written to stdout or stderr.
  void Clear() {
    if (!enabled_ || !shown_) return;
    std::fflush(stdout);
    std::fputs("\r\033[K", stderr);
    shown_ = false;
  }
  void Draw(size_t done, size_t total, size_t failed, long long elapsed_ms) {
    if (!enabled_) return;
    std::string line = "[ipch] " + std::to_string(done) + "/" + std::to_string(total) + " cases, " +
                       std::to_string(failed) + " failed, " + Duration(elapsed_ms) + " elapsed";
    if (done > 0 && done < total) {
      line += ", ETA " + Duration(elapsed_ms * static_cast<long long>(total - done) / static_cast<long long>(done));
    }
    if (shown_ && line == last_) return;  // redrawn only when it changes
    std::fflush(stdout);
    std::fprintf(stderr, "\r\033[K%s", line.c_str());
    std::fflush(stderr);
    shown_ = true;
    last_ = line;
  }

 private:
  bool enabled_;
  bool shown_ = false;
  std::string last_;
};

// ---- The supervisor.

struct Slot {
  size_t index;  // into the selected cases
  CaseProcess proc;
  Deadline deadline = Deadline::Never();
  Clock::time_point started;
  WallClock::time_point started_wall;
  bool timed_out = false;
};

struct SuiteProgress {
  int total = 0, done = 0, passed = 0, failed = 0, skipped = 0, known = 0;
  Clock::time_point first = Clock::time_point::max(), last = Clock::time_point::min();
};

class Supervisor {
 public:
  Supervisor(const IsolateOptions& o, const Invocation& inv)
      : opt_(o), inv_(inv), timeout_s_(static_cast<long long>(o.case_timeout_s) * SlowdownFactor()) {}
  int Run();

 private:
  Result<std::vector<ListedCase>> ListCases();
  std::vector<ListedCase> Select(std::vector<ListedCase> all) const;
  std::vector<std::string> ChildEnv(bool with_results) const;
  bool CanStart(size_t index) const;
  void StartWhatFits();
  int WaitForEvents();
  void FinishReaped();
  void Conclude(Slot& s);
  void Record(const CaseReport& r, const std::string& cause, Clock::time_point started);
  void DrawProgress() { live_.Draw(reports_.size(), cases_.size(), failed_.size(), MsSince(started_)); }
  int Interrupt(int sig);
  int Summarize();

  IsolateOptions opt_;
  Invocation inv_;
  long long timeout_s_;
  StopSignals stop_;
  int stopped_by_ = 0;  // a stop signal that came while listing
  std::vector<std::string> case_env_;
  std::vector<ListedCase> cases_;
  size_t next_ = 0;
  std::vector<std::unique_ptr<Slot>> running_;
  std::vector<CaseReport> reports_;
  std::vector<std::string> failed_;  // "name", or "name: cause" when the process decided
  std::vector<std::string> known_;   // failed as the known-failures baseline expects
  int passed_ = 0, skipped_ = 0;
  VerdictMatrix matrix_;
  FaultCoverage coverage_;
  std::map<std::string, SuiteProgress> suites_;
  Clock::time_point started_ = Clock::now();
  WallClock::time_point started_wall_ = WallClock::now();
  LiveLine live_{LiveProgressWanted()};
};

std::vector<std::string> Supervisor::ChildEnv(bool with_results) const {
  static const std::set<std::string> kDropped = {
      "IPCH_ISOLATE",    "GTEST_OUTPUT", "GTEST_TOTAL_SHARDS", "GTEST_SHARD_INDEX", "GTEST_SHARD_STATUS_FILE",
      kIsolatedChildEnv, kResultFdEnv};
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string kv = *e;
    if (!kDropped.count(kv.substr(0, kv.find('=')))) env.push_back(kv);
  }
  env.push_back(std::string(kIsolatedChildEnv) + "=1");
  if (with_results) env.push_back(std::string(kResultFdEnv) + "=" + std::to_string(kResultFd));
  return env;
}

Result<std::vector<ListedCase>> Supervisor::ListCases() {
  SpawnSpec spec{{inv_.argv0}, ChildEnv(false), /*capture_stderr=*/false, /*result_pipe=*/false};
  spec.argv.insert(spec.argv.end(), inv_.pass_through.begin(), inv_.pass_through.end());
  if (!inv_.filter.empty()) spec.argv.push_back("--gtest_filter=" + inv_.filter);
  spec.argv.push_back("--gtest_list_tests");
  auto p = CaseProcess::Start(spec);
  if (!p.ok()) return std::move(p).error();
  const Deadline d = Deadline::After(std::chrono::seconds(timeout_s_));
  while (!p->reaped()) {
    pollfd fds[] = {{stop_.fd(), POLLIN, 0}, {p->output_fd(), POLLIN, 0}, {p->pid_fd(), POLLIN, 0}};
    const int n = RawPoll(fds, 3, d);
    if (n < 0) return ErrnoError("poll");
    if (n == 0) return MakeError(Errc::Timeout, "listing the tests took over " + std::to_string(timeout_s_) + " s");
    if (fds[0].revents && (stopped_by_ = stop_.Take()) != 0) {
      return MakeError(Errc::Closed, "stopped by " + SignalName(stopped_by_) + " while listing the tests");
    }
    if (fds[1].revents) p->ReadOutput();
    if (fds[2].revents) p->TryReap();
  }
  p->Drain();
  if (p->wait_status() != 0) {
    return MakeError(Errc::InvalidArgument,
                     "--gtest_list_tests " + DeathText(p->wait_status()) + ":\n" + LastLines(p->output(), kTailLines));
  }
  return ParseListing(p->output());
}

// Disabled cases are listed but not run; shards are chosen here, since the children (one case
// each) must not apply GTEST_SHARD_INDEX again.
std::vector<ListedCase> Supervisor::Select(std::vector<ListedCase> all) const {
  std::vector<ListedCase> out;
  const char* total_env = std::getenv("GTEST_TOTAL_SHARDS");
  const char* index_env = std::getenv("GTEST_SHARD_INDEX");
  const long total = total_env ? std::atol(total_env) : 1, index = index_env ? std::atol(index_env) : 0;
  const bool sharded = total > 1 && index >= 0 && index < total;
  if (const char* status = std::getenv("GTEST_SHARD_STATUS_FILE"); sharded && status) std::ofstream{status};
  long runnable = 0;
  for (auto& c : all) {
    if (!inv_.also_run_disabled && IsDisabled(c)) continue;
    if (!sharded || runnable++ % total == index) out.push_back(std::move(c));
  }
  return out;
}

bool Supervisor::CanStart(size_t index) const {
  if (running_.size() >= static_cast<size_t>(opt_.jobs)) return false;
  if (opt_.serial.empty() || !MatchesPatterns(cases_[index].full_name(), opt_.serial)) return true;
  for (const auto& s : running_) {
    if (MatchesPatterns(cases_[s->index].full_name(), opt_.serial)) return false;
  }
  return true;
}

void Supervisor::StartWhatFits() {
  while (next_ < cases_.size() && CanStart(next_)) {
    const ListedCase& c = cases_[next_];
    SpawnSpec spec{{inv_.argv0}, case_env_, /*capture_stderr=*/true, /*result_pipe=*/true};
    spec.argv.insert(spec.argv.end(), inv_.pass_through.begin(), inv_.pass_through.end());
    spec.argv.push_back("--gtest_filter=" + ExactFilter(c.full_name()));
    auto slot = std::make_unique<Slot>();
    slot->index = next_++;
    slot->started = Clock::now();
    slot->started_wall = WallClock::now();
    slot->deadline = Deadline::After(std::chrono::seconds(timeout_s_));
    auto p = CaseProcess::Start(spec);
    if (!p.ok()) {
      const std::string why = "could not start its process: " + p.error().ToString();
      CaseReport r{c.suite,        c.name, c.type_param,       c.value_param,
                   Outcome::kFail, 0,      slot->started_wall, {{false, "", why}}};
      live_.Clear();
      std::printf("%s: %s\n[  FAILED  ] %s%s (0 ms)\n", c.full_name().c_str(), why.c_str(), c.full_name().c_str(),
                  ParamComment(c).c_str());
      Record(r, why, slot->started);
      continue;
    }
    slot->proc = std::move(*p);
    running_.push_back(std::move(slot));
  }
}

// Polls every running child's output, results and exit, and the stop signals, until one of
// them has news or the first case deadline passes. Returns the stop signal, 0, or -1 when
// poll itself failed.
int Supervisor::WaitForEvents() {
  std::vector<pollfd> fds{{stop_.fd(), POLLIN, 0}};
  Deadline first = Deadline::Never();
  for (const auto& s : running_) {
    fds.push_back({s->proc.output_fd(), POLLIN, 0});
    fds.push_back({s->proc.result_fd(), POLLIN, 0});
    fds.push_back({s->proc.pid_fd(), POLLIN, 0});
    if (s->deadline.at() < first.at()) first = s->deadline;
  }
  // The live line's elapsed time and ETA move once a second even while no case finishes.
  if (live_.enabled()) {
    const Deadline tick = Deadline::After(std::chrono::seconds(1));
    if (tick.at() < first.at()) first = tick;
  }
  if (RawPoll(fds.data(), fds.size(), first) < 0) {
    std::perror("ipch isolate: poll");
    return -1;
  }
  if (fds[0].revents != 0) {
    if (const int sig = stop_.Take()) return sig;
  }
  for (size_t i = 0; i < running_.size(); ++i) {
    Slot& s = *running_[i];
    const pollfd* f = &fds[1 + 3 * i];
    if (f[0].revents != 0) s.proc.ReadOutput();
    if (f[1].revents != 0) s.proc.ReadResults();
    if (f[2].revents != 0) s.proc.TryReap();
    if (!s.proc.reaped() && s.deadline.expired()) {
      s.timed_out = true;
      s.proc.KillAndReap();
    }
  }
  return 0;
}

void Supervisor::FinishReaped() {
  for (size_t i = 0; i < running_.size();) {
    if (!running_[i]->proc.reaped()) {
      ++i;
      continue;
    }
    running_[i]->proc.Drain();
    Conclude(*running_[i]);
    running_.erase(running_.begin() + static_cast<long>(i));
  }
}

// Decides the case's verdict, prints its block of output, records it.
void Supervisor::Conclude(Slot& s) {
  const ListedCase& c = cases_[s.index];
  const std::string name = c.full_name();
  const long long ms = MsSince(s.started);
  auto records = TakeRecords(s.proc.result_text());
  CaseReport r{c.suite, c.name, c.type_param, c.value_param, OutcomeOfRecords(records), ms, s.started_wall, {}};
  std::string census;
  for (auto& rec : records) {
    r.parts.insert(r.parts.end(), rec.parts.begin(), rec.parts.end());
    census += (census.empty() || rec.census.empty() ? "" : ";") + rec.census;
  }
  const std::string output = WithoutFraming(s.proc.output());
  std::string block = output;
  const std::string cause = ProcessCause(records, s.proc.wait_status(), s.timed_out, timeout_s_);
  if (!cause.empty()) {
    live_.Clear();
    const auto removed = SweepAfterDeath(s.proc.pid(), s.proc.tree());
    std::string text =
        cause + "\nlast output:\n" + (output.empty() ? "  (none)\n" : Indented(LastLines(output, kTailLines)));
    if (!removed.empty()) text += "left behind and removed: " + Join(removed) + "\n";
    text += ReplayLine(name);
    r.outcome = Outcome::kFail;
    r.parts.push_back({false, "", text});
    block += name + ": " + cause + "\n";
    if (!removed.empty()) block += "  left behind and removed: " + Join(removed) + "\n";
    block += ReplayLine(name) + "[  FAILED  ] " + name + ParamComment(c) + " (" + std::to_string(ms) + " ms)\n";
  }
  std::string why = cause;
  const Judged j = Judge(Baseline::FromEnvironment(), name, r.outcome);
  if (!j.note.empty()) {
    block += j.note;
    if (j.outcome == Outcome::kKnown) {
      // Reported as a skip with the reason (JUnit readers show it neither passed nor failed).
      for (auto& p : r.parts) p.skipped = true;
      r.parts.insert(r.parts.begin(), {true, "", j.note});
    } else if (j.outcome == Outcome::kFail) {
      r.parts.push_back({false, "", j.note});
      why = r.outcome == Outcome::kPass ? "passed, but the baseline lists it as a known failure"
                                        : "skipped, but the baseline lists it as a known failure";
    }
    r.outcome = j.outcome;
  }
  // A brief run (--gtest_brief) shows failures only: a skip's reason is in the reports.
  if (!(inv_.brief && (r.outcome == Outcome::kSkip || r.outcome == Outcome::kKnown)) || !cause.empty()) {
    live_.Clear();
    std::fwrite(block.data(), 1, block.size(), stdout);
    std::fflush(stdout);
  }
  coverage_.Add(r.suite, r.outcome, census);
  Record(r, why, s.started);
}

void Supervisor::Record(const CaseReport& r, const std::string& cause, Clock::time_point started) {
  const std::string name = r.suite + "." + r.name;
  if (r.outcome == Outcome::kFail) failed_.push_back(cause.empty() ? name : name + ": " + cause);
  if (r.outcome == Outcome::kKnown) known_.push_back(name);
  passed_ += r.outcome == Outcome::kPass;
  skipped_ += r.outcome == Outcome::kSkip;
  matrix_.Add(r.suite, r.outcome,
              std::any_of(r.parts.begin(), r.parts.end(),
                          [](const ResultPart& p) { return p.skipped && IsNotApplicable(p.message); }));
  SuiteProgress& p = suites_[r.suite];
  ++p.done;
  p.passed += r.outcome == Outcome::kPass;
  p.failed += r.outcome == Outcome::kFail;
  p.skipped += r.outcome == Outcome::kSkip;
  p.known += r.outcome == Outcome::kKnown;
  p.first = std::min(p.first, started);
  p.last = std::max(p.last, Clock::now());
  if (p.done == p.total) {
    live_.Clear();
    const long long span = std::chrono::duration_cast<std::chrono::milliseconds>(p.last - p.first).count();
    std::fputs(ProgressLine(r.suite, p.passed, p.failed, p.skipped, span, p.known).c_str(), stderr);
  }
  reports_.push_back(r);
  DrawProgress();
}

// `sig` is the stop signal, or -1 when the supervisor cannot go on (poll failed).
int Supervisor::Interrupt(int sig) {
  live_.Clear();
  const size_t stopped = running_.size();
  // Each running case gets the signal and cleans up after itself (ipch/interrupt.h): it knows
  // what it made, including SysV objects no name attributes. One that does not end in time is
  // killed with its process group, and the sweep takes what it left under its pid.
  const Deadline until = Deadline::After(Scaled(std::chrono::seconds(5)));
  for (auto& s : running_) {
    if (sig > 0) s->proc.StopAndReap(sig, until);
    s->proc.KillAndReap();
    s->proc.Drain();
    const std::string& out = s->proc.output();
    if (const auto at = out.find("ipch: interrupted"); at != std::string::npos) {
      std::fputs(out.substr(at).c_str(), stderr);  // its report and replay line
    }
    for (const auto& r : SweepAfterDeath(s->proc.pid(), s->proc.tree())) std::fprintf(stderr, "  left behind and removed: %s\n", r.c_str());
  }
  running_.clear();
  std::fflush(stdout);
  std::fprintf(stderr, "[ipch] stopped by %s: %zu running case(s) stopped; %zu of %zu finished\n",
               sig > 0 ? SignalName(sig).c_str() : "an error", stopped, reports_.size(), cases_.size());
  return sig > 0 ? 128 + sig : 1;
}

int Supervisor::Summarize() {
  live_.Clear();
  const long long total_ms = MsSince(started_);
  std::string s = "[==========] " + Count(reports_.size(), "test") + " from " + Count(suites_.size(), "test suite") +
                  " ran, each in its own process. (" + std::to_string(total_ms) + " ms total)\n";
  s += "[  PASSED  ] " + Count(static_cast<size_t>(passed_), "test") + ".\n";
  if (skipped_ > 0) s += "[  SKIPPED ] " + Count(static_cast<size_t>(skipped_), "test") + ".\n";
  if (!known_.empty()) {
    s += "[  KNOWN   ] " + Count(known_.size(), "test") + " failed as " + Baseline::FromEnvironment()->path() +
         " expects:\n";
    for (const auto& k : known_) s += "[  KNOWN   ] " + k + "\n";
  }
  if (!failed_.empty()) {
    s += "[  FAILED  ] " + Count(failed_.size(), "test") + ", listed below:\n";
    for (const auto& f : failed_) s += "[  FAILED  ] " + f + "\n";
    s += "\n" + std::to_string(failed_.size()) + " FAILED " + (failed_.size() == 1 ? "TEST" : "TESTS") + "\n";
  }
  s += matrix_.Render() + coverage_.Render();
  std::fwrite(s.data(), 1, s.size(), stdout);
  std::fflush(stdout);
  std::string other;
  const std::string xml = XmlReportPath(inv_, &other);
  if (!other.empty())
    std::fprintf(stderr, "ipch isolate: only xml reports are written; --gtest_output=%s ignored\n", other.c_str());
  // Sorted back into listing order: jobs finish out of order.
  std::map<std::string, size_t> order;
  for (size_t i = 0; i < cases_.size(); ++i) order[cases_[i].full_name()] = i;
  std::stable_sort(reports_.begin(), reports_.end(), [&](const CaseReport& a, const CaseReport& b) {
    return order[a.suite + "." + a.name] < order[b.suite + "." + b.name];
  });
  if (!opt_.results.empty()) {
    const RunInfo run{SelfExe(), BaseSeed(), opt_.jobs, started_wall_, total_ms, coverage_.empty() ? "" : coverage_.Json()};
    if (auto st = WriteResults(opt_.results, run, reports_); !st.ok()) {
      std::fprintf(stderr, "ipch isolate: the results were not written: %s\n", st.error().ToString().c_str());
      return 1;
    }
  }
  if (!xml.empty()) {
    if (auto st = WriteJUnit(xml, reports_, started_wall_, total_ms); !st.ok()) {
      std::fprintf(stderr, "ipch isolate: the XML report was not written: %s\n", st.error().ToString().c_str());
    }
    const Status st = coverage_.empty() ? Ok() : coverage_.WriteJson(CoveragePathFor(xml));
    if (!st.ok()) {
      std::fprintf(stderr, "ipch isolate: the fault coverage map was not written: %s\n", st.error().ToString().c_str());
    }
  }
  return failed_.empty() ? 0 : 1;
}

int Supervisor::Run() {
  if (auto st = stop_.Install(); !st.ok()) {
    std::fprintf(stderr, "ipch isolate: %s\n", st.error().ToString().c_str());
    return 1;
  }
  CheckBaselineOrExit();
  if (std::string why = audit::EnsureMqueueMounted(); !why.empty()) std::fprintf(stderr, "ipch: %s\n", why.c_str());
  PrintSweep(audit::SweepDeadOwners());
  auto listed = ListCases();
  if (!listed.ok()) {
    std::fprintf(stderr, "ipch isolate: %s\n", listed.error().ToString().c_str());
    return stopped_by_ != 0 ? 128 + stopped_by_ : 1;
  }
  cases_ = Select(std::move(*listed));
  case_env_ = ChildEnv(true);
  for (const auto& c : cases_) ++suites_[c.suite].total;
  if (!inv_.brief) {
    std::printf("[==========] Running %s from %s, each in its own process (%d at a time, %lld s each at most).\n",
                Count(cases_.size(), "test").c_str(), Count(suites_.size(), "test suite").c_str(), opt_.jobs,
                timeout_s_);
    std::fflush(stdout);
  }
  started_ = Clock::now();
  while (next_ < cases_.size() || !running_.empty()) {
    StartWhatFits();
    if (running_.empty()) continue;  // every start failed; those are reported
    if (const int sig = WaitForEvents()) return Interrupt(sig);
    FinishReaped();
    DrawProgress();  // the elapsed time and ETA move on a terminal's line (a no-op elsewhere)
  }
  return Summarize();
}

}  // namespace

int RunIsolated(const IsolateOptions& options, const Invocation& invocation) {
  return Supervisor(options, invocation).Run();
}

std::optional<int> RunIsolatedIfRequested(int& argc, char** argv) {
  auto options = TakeIsolateFlags(argc, argv);
  if (!options.ok()) {
    std::fprintf(stderr, "%s: %s\n", argc > 0 ? argv[0] : "test", options.error().context.c_str());
    return 2;
  }
  const Invocation invocation = ParseInvocation(argc, argv);
  if (options->describe) {
    std::fputs(DescribeAdaptersJson().c_str(), stdout);
    return 0;
  }
  if (!options->results.empty() && !options->enabled && !ThisChildRole().supervised) {
    std::fprintf(stderr, "%s: --ipch_results is written by an isolated run: add --ipch_isolate\n",
                 argc > 0 ? argv[0] : "test");
    return 2;
  }
  if (!options->enabled || ThisChildRole().supervised || invocation.runs_no_tests) return std::nullopt;
  return RunIsolated(*options, invocation);
}

}  // namespace ipch::testing
