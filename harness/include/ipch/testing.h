// Test support: the per-test context (unique token, seed, private scratch dir), matchers that
// assert a specific Errc, and checksummed message helpers.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "ipch/result.h"
#include "ipch/transport.h"

namespace ipch::testing {

struct TestContext {
  std::string token;                  // "ipch-<pid>-<n>": unique per test and process
  std::filesystem::path scratch_dir;  // 0700, audited for leftovers, removed after the test
  uint64_t seed = 0;                  // per-test seed, derived from IPCH_SEED and the test name
};

// Valid inside a test run by ipch_testing_main (the audit listener sets it up).
const TestContext& Current();
// A fresh token for a second endpoint in the same test.
std::string NewToken();
// Base seed: IPCH_SEED if set, else a fixed default so that runs are repeatable.
uint64_t BaseSeed();
std::mt19937_64 Rng();

// What the running test's audit accepts as left behind: objects whose leak line (as the audit
// words it, e.g. "sysv shm key=0 ") begins with `kind`, because the transport's documented orphan
// policy leaves them (`why`, said in the note that replaces the failure). They are removed all
// the same. Cleared when the test ends.
void AllowLeftovers(std::string kind, std::string why);

// The running test's fault-space census, in the text of ipch::fault::FormatCensus: set by the
// conformance fixture as the test ends, taken by the coverage map (docs/fault-model.md).
// Cleared when a test starts.
void SetCaseCensus(std::string text);

// What a battery binary says about each adapter it instantiates, for `--ipch_describe` (which
// `ipch list` and `ipch run` read): registered by IPCH_INSTANTIATE_CONFORMANCE.
struct AdapterInfo {
  std::string prefix;               // the instantiation's prefix ("Conformance")
  std::string name;                 // kName
  std::vector<std::string> caps;    // ipch::Cap names
  std::vector<std::string> hooks;   // the optional adapter hooks it provides (conformance/hooks.h)
};
void RegisterAdapter(AdapterInfo info);
// Every registered adapter as one JSON document: {"format": "ipch-describe-1", "adapters": [...]}.
std::string DescribeAdaptersJson();

// Registers the audit, replay-line and matrix listeners. Call after InitGoogleTest.
void InstallListeners();
// main's exit code from RUN_ALL_TESTS's `rc`: `rc` itself, or under a known-failures baseline
// (--ipch_known) 1 exactly when a case failed that the baseline does not list, or a listed one
// passed or was skipped.
int ExitCode(int rc);

// Crash isolation (docs/architecture.md): with --ipch_isolate or IPCH_ISOLATE=1, this process
// becomes a supervisor that runs each selected case in its own child (--ipch_jobs=N at a time,
// each killed after --ipch_case_timeout=SECONDS times SlowdownFactor(); --ipch_serial=PATTERNS
// names cases that must not run two at once). Removes the --ipch_* flags from argv. Returns the
// supervised run's exit status, or nullopt when this process runs the tests itself. Call
// before InitGoogleTest.
std::optional<int> RunIsolatedIfRequested(int& argc, char** argv);

// Returns a message of `size` bytes whose content encodes `seq` and a checksum; a receiver
// can check it with VerifyMessage without knowing anything else.
Bytes MakeMessage(uint64_t seq, std::size_t size, uint64_t salt);
::testing::AssertionResult VerifyMessage(const Bytes& msg, uint64_t expected_seq, std::size_t expected_size,
                                         uint64_t salt);

template <class T>
::testing::AssertionResult IsOk(const T& r) {
  if (r.ok()) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "expected OK, got " << r.error().ToString();
}

template <class T>
::testing::AssertionResult HasErrc(const T& r, Errc want) {
  if (r.ok()) return ::testing::AssertionFailure() << "expected " << ErrcName(want) << ", got OK";
  if (r.error().Is(want)) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "expected " << ErrcName(want) << ", got " << r.error().ToString();
}

}  // namespace ipch::testing

#define IPCH_ASSERT_OK(expr) ASSERT_TRUE(::ipch::testing::IsOk(expr))
#define IPCH_EXPECT_OK(expr) EXPECT_TRUE(::ipch::testing::IsOk(expr))
#define IPCH_ASSERT_ERRC(expr, code) ASSERT_TRUE(::ipch::testing::HasErrc((expr), ::ipch::Errc::code))
#define IPCH_EXPECT_ERRC(expr, code) EXPECT_TRUE(::ipch::testing::HasErrc((expr), ::ipch::Errc::code))
