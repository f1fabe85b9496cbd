#include "ipch/testing.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <map>
#include <sstream>
#include <vector>

#include "ipch/audit.h"
#include "ipch/temp_dir.h"

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

// Sets up the per-test context and audits the test's resources when it ends. A leak is a
// failure of that test, naming the object; leftovers are then cleaned up so one leak does
// not cascade into the next test.
class AuditListener : public ::testing::EmptyTestEventListener {
 public:
  void OnTestStart(const ::testing::TestInfo& t) override {
    g_ctx.token = NewToken();
    g_ctx.seed = Mix(BaseSeed() ^ Fnv1a(FullName(t)));
    auto dir = TempDir::Create(g_ctx.token + "-");
    if (dir.ok()) {
      scratch_ = std::move(*dir);
      g_ctx.scratch_dir = scratch_.path();
    } else {
      std::fprintf(stderr, "ipch: cannot create scratch dir: %s\n", dir.error().ToString().c_str());
      g_ctx.scratch_dir.clear();
    }
    before_ = audit::Take(TokenPrefix());
  }

  void OnTestEnd(const ::testing::TestInfo& t) override {
    auto after = audit::Take(TokenPrefix());
    auto leaks = audit::Leaks(before_, after);
    if (!g_ctx.scratch_dir.empty()) {
      for (const auto& f : audit::LeftoverFiles(g_ctx.scratch_dir)) leaks.push_back("file left in scratch dir: " + f);
    }
    if (!leaks.empty()) {
      std::ostringstream msg;
      msg << "resource audit: the test left " << leaks.size() << " object(s) behind:";
      for (const auto& l : leaks) msg << "\n  " << l;
      ADD_FAILURE() << msg.str();
    }
    audit::CleanUp(before_, after);
    scratch_ = TempDir();
    if (t.result()->Failed()) {
      std::fprintf(stdout, "[  REPLAY  ] IPCH_SEED=%llu %s --gtest_filter='%s'  (test seed %llu)\n",
                   static_cast<unsigned long long>(BaseSeed()), SelfExe().c_str(), FullName(t).c_str(),
                   static_cast<unsigned long long>(g_ctx.seed));
      std::fflush(stdout);
    }
  }

 private:
  static std::string SelfExe() {
    char buf[4096];
    ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
    return n > 0 ? std::string(buf, static_cast<size_t>(n)) : "<test binary>";
  }
  TempDir scratch_;
  audit::Snapshot before_;
};

// Transport × group verdicts for typed conformance suites named Prefix/Group/transport.
class MatrixListener : public ::testing::EmptyTestEventListener {
 public:
  void OnTestEnd(const ::testing::TestInfo& t) override {
    std::string suite = t.test_suite_name();
    auto s1 = suite.find('/'), s2 = suite.rfind('/');
    if (s1 == std::string::npos || s1 == s2) return;
    std::string group = suite.substr(s1 + 1, s2 - s1 - 1), transport = suite.substr(s2 + 1);
    if (!groups_index_.count(group)) {
      groups_index_[group] = groups_.size();
      groups_.push_back(group);
    }
    if (!cells_.count(transport)) order_.push_back(transport);
    Cell& c = cells_[transport][group];
    if (t.result()->Skipped()) {
      ++c.skipped;
    } else if (t.result()->Failed()) {
      ++c.failed;
    } else {
      ++c.passed;
    }
  }

  // Progress: one line per finished group x transport.
  void OnTestSuiteEnd(const ::testing::TestSuite& suite) override {
    std::string name = suite.name();
    if (std::count(name.begin(), name.end(), '/') != 2) return;
    std::fprintf(stderr, "[ipch] %-40s %3d passed %3d failed %3d unsupported  %6lld ms\n", name.c_str(),
                 suite.successful_test_count(), suite.failed_test_count(), suite.skipped_test_count(),
                 static_cast<long long>(suite.elapsed_time()));
  }

  void OnTestProgramEnd(const ::testing::UnitTest&) override {
    if (order_.empty()) return;
    const int w = 15;
    std::ostringstream out;
    out << "\nipch verdicts (PASS n = all n cases passed; FAIL f/n; UNSUPPORTED = every case skipped)\n";
    out << Pad("transport", 10);
    for (const auto& g : groups_) out << Pad(g, w);
    out << Pad("verdict", 8) << "\n";
    for (const auto& tr : order_) {
      out << Pad(tr, 10);
      bool any_fail = false;
      for (const auto& g : groups_) {
        auto it = cells_[tr].find(g);
        std::string cell = "-";
        if (it != cells_[tr].end()) {
          const Cell& c = it->second;
          int ran = c.passed + c.failed;
          if (c.failed > 0) {
            cell = "FAIL " + std::to_string(c.failed) + "/" + std::to_string(ran);
            any_fail = true;
          } else if (ran == 0) {
            cell = "UNSUPPORTED";
          } else {
            cell = "PASS " + std::to_string(c.passed);
            if (c.skipped) cell += " +" + std::to_string(c.skipped) + "u";
          }
        }
        out << Pad(cell, w);
      }
      out << (any_fail ? "FAIL" : "PASS") << "\n";
    }
    out << "(+Nu: N cases UNSUPPORTED: a capability or adapter hook the case needs is missing; each skip names it)\n";
    std::cout << out.str() << std::flush;
  }

 private:
  struct Cell {
    int passed = 0, failed = 0, skipped = 0;
  };
  static std::string Pad(const std::string& s, size_t w) {
    return s.size() >= w ? s + " " : s + std::string(w - s.size(), ' ');
  }
  std::vector<std::string> groups_;
  std::map<std::string, size_t> groups_index_;
  std::vector<std::string> order_;
  std::map<std::string, std::map<std::string, Cell>> cells_;
};

}  // namespace

const TestContext& Current() { return g_ctx; }

std::string NewToken() { return TokenPrefix() + std::to_string(++g_token_counter); }

uint64_t BaseSeed() {
  static const uint64_t seed = [] {
    if (const char* s = std::getenv("IPCH_SEED")) return static_cast<uint64_t>(std::strtoull(s, nullptr, 10));
    return uint64_t{20261124};
  }();
  return seed;
}

std::mt19937_64 Rng() { return std::mt19937_64(g_ctx.seed); }

void InstallListeners() {
  std::string why = audit::EnsureMqueueMounted();
  if (!why.empty()) std::fprintf(stderr, "ipch: %s\n", why.c_str());
  for (const auto& r : audit::SweepDeadOwners()) {
    std::fprintf(stderr, "ipch: removed %s, left by a test process that died\n", r.c_str());
  }
  auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
  // gtest calls OnTestEnd in reverse order of appending: the audit (last) runs first, so its
  // failure is part of the result that the matrix and the default printer then report.
  listeners.Append(new MatrixListener);
  listeners.Append(new AuditListener);
}

Bytes MakeMessage(uint64_t seq, std::size_t size, uint64_t salt) {
  Bytes m(size);
  uint64_t x = Mix(seq ^ salt);
  for (std::size_t i = 0; i < size; ++i) {
    if (i % 8 == 0) x = Mix(x + i);
    m[i] = static_cast<std::byte>(x >> (8 * (i % 8)));
  }
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
  for (std::size_t i = 0; i < msg.size(); ++i) {
    if (msg[i] != want[i]) {
      return ::testing::AssertionFailure()
             << "message " << expected_seq << " corrupt at byte " << i << " of " << msg.size();
    }
  }
  return ::testing::AssertionSuccess();
}

}  // namespace ipch::testing
