#include "ipch/testing.h"

#include <unistd.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "baseline.h"
#include "case_record.h"
#include "fault_coverage.h"
#include "ipch/audit.h"
#include "ipch/interrupt.h"
#include "ipch/temp_dir.h"
#include "json_text.h"
#include "shared.h"
#include "verdicts.h"

namespace ipch::testing {
namespace {

TestContext g_ctx;
int g_token_counter = 0;

uint64_t Fnv1a(const std::string& s) {
  uint64_t h = 1469598103934665603ULL;
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ULL;
  return h;
}

uint64_t Mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

std::string FullName(const ::testing::TestInfo& t) { return std::string(t.test_suite_name()) + "." + t.name(); }

std::string TokenPrefix() { return "ipch-" + std::to_string(::getpid()) + "-"; }

std::string g_census;  // SetCaseCensus

// The running test's AllowLeftovers: (kind, why).
std::vector<std::pair<std::string, std::string>> g_allowed;

// Sets up the per-test context and audits the test's resources when it ends. A leak is a
// failure of that test, naming the object; leftovers are then cleaned up so one leak does
// not cascade into the next test.
class AuditListener : public ::testing::EmptyTestEventListener {
 public:
  void OnTestStart(const ::testing::TestInfo& t) override {
    g_census.clear();
    g_ctx.token = NewToken();
    g_ctx.seed = TestSeed(FullName(t));
    auto dir = TempDir::Create(g_ctx.token + "-");
    if (dir.ok()) {
      scratch_ = std::move(*dir);
      g_ctx.scratch_dir = scratch_.path();
    } else {
      std::fprintf(stderr, "ipch: cannot create scratch dir: %s\n", dir.error().ToString().c_str());
      g_ctx.scratch_dir.clear();
    }
    before_ = audit::Take(TokenPrefix());
    SetRunning(FullName(t));
  }

  void OnTestEnd(const ::testing::TestInfo& t) override {
    const audit::Settled end = audit::AwaitSettled(before_, TokenPrefix(), g_ctx.scratch_dir);
    const auto& after = end.after;
    std::vector<std::string> leaks;
    std::map<std::string, int> allowed;  // why -> how many
    for (const auto& l : end.leaks) {
      const auto a = std::find_if(g_allowed.begin(), g_allowed.end(),
                                  [&](const auto& k) { return l.rfind("leaked " + k.first, 0) == 0; });
      if (a != g_allowed.end()) {
        ++allowed[a->second];
      } else {
        leaks.push_back(l);
      }
    }
    g_allowed.clear();
    for (const auto& [why, n] : allowed) {
      std::fprintf(stderr, "ipch: audit: %s left %d object(s) its orphan policy allows (%s); removed\n",
                   FullName(t).c_str(), n, why.c_str());
    }
    const long waited_ms = static_cast<long>(end.waited.count());
    if (!leaks.empty()) {
      std::ostringstream msg;
      msg << "resource audit: the test left " << leaks.size() << " object(s) behind (still there " << waited_ms
          << " ms after the test ended):";
      for (const auto& l : leaks) msg << "\n  " << l;
      ADD_FAILURE() << msg.str();
    } else if (waited_ms > 0 && allowed.empty()) {
      std::fprintf(stderr, "ipch: audit: %s released its last objects %ld ms after it ended\n", FullName(t).c_str(),
                   waited_ms);
    }
    audit::CleanUp(before_, after);
    scratch_ = TempDir();
    SetRunning("");
    if (t.result()->Failed()) {
      std::fputs(ReplayLine(FullName(t)).c_str(), stdout);
      std::fflush(stdout);
    }
  }

 private:
  TempDir scratch_;
  audit::Snapshot before_;
};

Outcome OutcomeOf(const ::testing::TestResult& r) {
  return r.Skipped() ? Outcome::kSkip : r.Failed() ? Outcome::kFail : Outcome::kPass;
}

// Progress lines and the transport × group verdicts of a direct run (VerdictMatrix).
// Under a known-failures baseline it also judges each case (Judge) and says why a verdict changed.
class MatrixListener : public ::testing::EmptyTestEventListener {
 public:
  void OnTestEnd(const ::testing::TestInfo& t) override {
    const std::string name = std::string(t.test_suite_name()) + "." + t.name();
    const Judged j = Judge(Baseline::FromEnvironment(), name, OutcomeOf(*t.result()));
    std::fputs(j.note.c_str(), stdout);
    bool not_applicable = false;
    for (int i = 0; i < t.result()->total_part_count(); ++i) {
      const auto& part = t.result()->GetTestPartResult(i);
      not_applicable = not_applicable || (part.skipped() && IsNotApplicable(part.message()));
    }
    matrix_.Add(t.test_suite_name(), j.outcome, not_applicable);
    coverage_.Add(t.test_suite_name(), j.outcome, CaseCensus());
    failed_ += j.outcome == Outcome::kFail;
    known_ += j.outcome == Outcome::kKnown;
    suite_[static_cast<int>(j.outcome)]++;
  }

  void OnTestSuiteStart(const ::testing::TestSuite&) override { suite_ = {}; }
  // Counted as judged: a known failure is not a failure, an unexpected pass is.
  void OnTestSuiteEnd(const ::testing::TestSuite& suite) override {
    std::fputs(ProgressLine(suite.name(), Count(Outcome::kPass), Count(Outcome::kFail), Count(Outcome::kSkip),
                            static_cast<long long>(suite.elapsed_time()), Count(Outcome::kKnown))
                   .c_str(),
               stderr);
  }

  void OnTestProgramEnd(const ::testing::UnitTest&) override {
    std::cout << matrix_.Render() << coverage_.Render();
    const std::string xml = ::testing::GTEST_FLAG(output);
    if (!coverage_.empty() && xml.rfind("xml:", 0) == 0 && xml.size() > 4 && xml.back() != '/') {
      if (auto st = coverage_.WriteJson(CoveragePathFor(xml.substr(4))); !st.ok()) {
        std::cerr << "ipch: the fault coverage map was not written: " << st.error().ToString() << "\n";
      }
    }
    if (const Baseline* b = Baseline::FromEnvironment()) {
      std::cout << "[  KNOWN   ] " << known_ << " known failure(s) of " << b->path() << "; " << failed_
                << " other failure(s) or unexpected pass(es)\n";
    }
    std::cout << std::flush;
  }
  int failed() const { return failed_; }

 private:
  VerdictMatrix matrix_;
  FaultCoverage coverage_;
  int Count(Outcome o) const { return suite_[static_cast<int>(o)]; }
  int failed_ = 0, known_ = 0;
  std::array<int, 4> suite_{};  // this suite's cases by judged Outcome
};
MatrixListener* g_matrix = nullptr;

}  // namespace

uint64_t TestSeed(const std::string& full_name) { return Mix(BaseSeed() ^ Fnv1a(full_name)); }

std::string SelfExe() {
  char buf[4096];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : "<test binary>";
}

std::vector<AdapterInfo>& Adapters() {
  static std::vector<AdapterInfo> adapters;
  return adapters;
}

void RegisterAdapter(AdapterInfo info) { Adapters().push_back(std::move(info)); }

std::string DescribeAdaptersJson() {
  const auto list = [](const std::vector<std::string>& v) {
    std::string out = "[";
    for (size_t i = 0; i < v.size(); ++i) out += (i ? ", " : "") + JsonString(v[i]);
    return out + "]";
  };
  std::string out = "{\"format\": \"ipch-describe-1\", \"binary\": " + JsonString(SelfExe()) + ", \"adapters\": [";
  for (size_t i = 0; i < Adapters().size(); ++i) {
    const AdapterInfo& a = Adapters()[i];
    out += std::string(i ? "," : "") + "\n  {\"prefix\": " + JsonString(a.prefix) + ", \"name\": " + JsonString(a.name) +
           ", \"caps\": " + list(a.caps) + ", \"hooks\": " + list(a.hooks) + "}";
  }
  return out + "\n]}\n";
}

const TestContext& Current() { return g_ctx; }
void AllowLeftovers(std::string kind, std::string why) { g_allowed.emplace_back(std::move(kind), std::move(why)); }

std::string NewToken() { return TokenPrefix() + std::to_string(++g_token_counter); }

uint64_t BaseSeed() {
  static const uint64_t seed = [] {
    if (const char* s = std::getenv("IPCH_SEED")) return static_cast<uint64_t>(std::strtoull(s, nullptr, 10));
    return uint64_t{20261124};
  }();
  return seed;
}

std::mt19937_64 Rng() { return std::mt19937_64(g_ctx.seed); }

std::string ReplayLine(const std::string& full_name) {
  char line[8192];
  std::snprintf(line, sizeof line, "[  REPLAY  ] IPCH_SEED=%llu %s --gtest_filter='%s'  (test seed %llu)\n",
                static_cast<unsigned long long>(BaseSeed()), SelfExe().c_str(), full_name.c_str(),
                static_cast<unsigned long long>(TestSeed(full_name)));
  return line;
}

void InstallListeners() {
  const ChildRole& role = ThisChildRole();
  std::string why = audit::EnsureMqueueMounted();
  // A supervised child leaves the mqueue note and the sweep to its supervisor, which does both
  // once and attributes what a crashed case left to that case.
  if (!why.empty() && !role.supervised) std::fprintf(stderr, "ipch: %s\n", why.c_str());
  if (!role.supervised) PrintSweep(audit::SweepDeadOwners());
  InstallInterruptCleanup();
  auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
  // gtest calls OnTestEnd in reverse order of appending: the audit (last) runs first, so its
  // failure is part of the result that the matrix (or the supervisor's record) and the default
  // printer then report. The supervisor prints progress and the matrix for its children.
  if (role.result_fd >= 0) listeners.Append(NewResultReporter(role.result_fd));
  if (!role.supervised) {
    CheckBaselineOrExit();
    g_matrix = new MatrixListener;
    listeners.Append(g_matrix);
  }
  listeners.Append(new AuditListener);
}

int ExitCode(int rc) {
  if (g_matrix == nullptr || Baseline::FromEnvironment() == nullptr) return rc;
  return g_matrix->failed() > 0 ? 1 : 0;
}

void SetCaseCensus(std::string text) { g_census = std::move(text); }
const std::string& CaseCensus() { return g_census; }

void PrintSweep(const std::vector<std::string>& removed) {
  for (const auto& r : removed) std::fprintf(stderr, "ipch: removed %s, left by a test process that died\n", r.c_str());
}

Bytes MakeMessage(uint64_t seq, std::size_t size, uint64_t salt) {
  Bytes m(size);
  uint64_t x = Mix(seq ^ salt);
  // Each block of 8 bytes is the next value of x in little-endian, written a block at a time
  // (a byte at a time costs 8 times more under a sanitizer, and messages reach megabytes).
  std::size_t i = 0;
  for (; i + 8 <= size; i += 8) {
    x = Mix(x + i);
    const uint64_t le = std::endian::native == std::endian::little ? x : __builtin_bswap64(x);
    std::memcpy(m.data() + i, &le, 8);
  }
  if (i < size) x = Mix(x + i);
  for (std::size_t j = 0; i + j < size; ++j) m[i + j] = static_cast<std::byte>(x >> (8 * j));
  // The first 8 bytes (when there is room) carry the sequence number in little-endian.
  for (std::size_t i = 0; i < 8 && i < size; ++i) m[i] = static_cast<std::byte>(seq >> (8 * i));
  return m;
}

::testing::AssertionResult VerifyMessage(const Bytes& msg, uint64_t expected_seq, std::size_t expected_size,
                                         uint64_t salt) {
  if (msg.size() != expected_size) {
    return ::testing::AssertionFailure() << "message " << expected_seq << ": size " << msg.size() << ", expected "
                                         << expected_size;
  }
  if (msg.size() >= 8) {
    uint64_t seq = 0;
    for (int i = 0; i < 8; ++i) seq |= static_cast<uint64_t>(msg[i]) << (8 * i);
    if (seq != expected_seq) {
      return ::testing::AssertionFailure()
             << "out of order or lost: got message " << seq << ", expected " << expected_seq;
    }
  }
  Bytes want = MakeMessage(expected_seq, expected_size, salt);
  if (msg.empty() || std::memcmp(msg.data(), want.data(), msg.size()) == 0) return ::testing::AssertionSuccess();
  for (std::size_t i = 0; i < msg.size(); ++i) {
    if (msg[i] != want[i]) {
      return ::testing::AssertionFailure()
             << "message " << expected_seq << " corrupt at byte " << i << " of " << msg.size();
    }
  }
  return ::testing::AssertionSuccess();
}

}  // namespace ipch::testing
