// The machine-readable result of an isolated run (--ipch_results=FILE), from which `ipch run`
// writes its JUnit, CTRF and HTML reports. Format "ipch-results-1" (docs/reports.md).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "ipch/result.h"
#include "junit.h"

namespace ipch::testing {

struct RunInfo {
  std::string binary;  // the battery binary
  uint64_t seed = 0;   // IPCH_SEED of the run (BaseSeed)
  int jobs = 1;
  std::chrono::system_clock::time_point started;
  long long duration_ms = 0;
  std::string coverage_json;  // FaultCoverage::Json(), "" when no case took a census
};

// The document, cases in the order given.
std::string ResultsJson(const RunInfo& run, const std::vector<CaseReport>& cases);
// Written to PATH.tmp.<pid>, then renamed over PATH.
Status WriteResults(const std::string& path, const RunInfo& run, const std::vector<CaseReport>& cases);

}  // namespace ipch::testing
