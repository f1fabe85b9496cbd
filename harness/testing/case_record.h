// What an isolated child tells its supervisor about each finished test: one line per test on
// an inherited descriptor, so every complete record survives a crash right after it.
#pragma once

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "verdicts.h"

namespace ipch::testing {

// Set by the supervisor for its children: the child runs tests itself, never supervises, and
// reports each outcome on descriptor IPCH_RESULT_FD.
inline constexpr const char* kIsolatedChildEnv = "IPCH_ISOLATED_CHILD";
inline constexpr const char* kResultFdEnv = "IPCH_RESULT_FD";
inline constexpr int kResultFd = 3;  // where the supervisor puts it in the child

// One gtest result part that is not a success, as the XML report shows it.
struct ResultPart {
  bool skipped = false;
  std::string location;  // "file:line"; empty for what the supervisor adds (crash, hang)
  std::string message;
};

struct CaseRecord {
  std::string name;  // Suite.Case
  Outcome outcome = Outcome::kFail;
  long long ms = 0;
  std::vector<ResultPart> parts;
  std::string census;  // the case's fault-space census (ipch::fault::FormatCensus), "" if none
};

// One '\n'-terminated line.
std::string EncodeRecord(const CaseRecord& r);
// Takes the complete records off the front of `buf`; a partial last line stays for later.
std::vector<CaseRecord> TakeRecords(std::string& buf);

// In a supervised child: the result descriptor (>= 0), or -1. The first call reads and removes
// both variables, so processes the tests start do not mistake themselves for supervised ones.
struct ChildRole {
  bool supervised = false;
  int result_fd = -1;
};
const ChildRole& ThisChildRole();

// A listener that writes one record per finished test to `fd`.
::testing::TestEventListener* NewResultReporter(int fd);

}  // namespace ipch::testing
