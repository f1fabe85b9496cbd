// The JUnit XML report of an isolated run, in the shape gtest writes (testsuites / testsuite /
// testcase, one <failure> or <skipped> per result part), so tools that read gtest's report
// read this one unchanged.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "case_record.h"
#include "ipch/result.h"

namespace ipch::testing {

struct CaseReport {
  std::string suite, name, type_param, value_param;  // the params as the listing shows them
  Outcome outcome = Outcome::kFail;
  long long ms = 0;
  std::chrono::system_clock::time_point started;
  std::vector<ResultPart> parts;  // failures (crash and hang causes among them) and skips
};

// `cases` in the order they were listed; suites appear in the order of their first case.
// Written to PATH.tmp, then renamed over PATH, so a reader never sees half a report.
Status WriteJUnit(const std::string& path, const std::vector<CaseReport>& cases,
                  std::chrono::system_clock::time_point started, long long total_ms);

}  // namespace ipch::testing
