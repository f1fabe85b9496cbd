// The reports of `ipch run`, made from the battery's results document (ipch-results-1,
// harness/testing/results.h): JUnit XML, CTRF JSON and one self-contained HTML page. Pure
// functions of the results, plus an atomic file write. Formats: docs/reports.md.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "ipch/result.h"

namespace ipch::tool {

struct CasePart {
  bool skipped = false;
  std::string location, message;
};

struct CaseResult {
  std::string suite, name, prefix, group, transport;
  std::string outcome;  // pass, fail, skip, known
  bool not_applicable = false;
  long long ms = 0, started_ms = 0;
  uint64_t test_seed = 0;
  std::string replay;  // IPCH_SEED=N BINARY --gtest_filter='CASE'
  std::vector<CasePart> parts;

  std::string full_name() const { return suite + "." + name; }
  // What the reports call it: the transport (or the suite, outside the battery's groups) and
  // "Group.Case" (or the case).
  std::string class_name() const { return transport.empty() ? suite : transport; }
  std::string case_name() const { return group.empty() ? name : group + "." + name; }
  // The failure text (every failed part, then the replay line) or the skip reasons.
  std::string Text() const;
  // The first line of Text(): a skip's reason, a failure's first message line.
  std::string Summary() const;
};

// Cases by outcome, as every report counts them (UNSUPPORTED and N/A apart; known failures are
// neither passed nor failed).
struct OutcomeCounts {
  int passed = 0, failed = 0, unsupported = 0, not_applicable = 0, known = 0;
  void Add(const CaseResult& c);
  int total() const { return passed + failed + unsupported + not_applicable + known; }
  int skipped() const { return unsupported + not_applicable + known; }
};

struct RunResults {
  std::string binary;
  uint64_t seed = 0;
  int jobs = 1;
  long long started_ms = 0, duration_ms = 0;
  nlohmann::json coverage;  // null when no case took a fault census
  std::vector<CaseResult> cases;
  int Count(const std::string& outcome) const;
};

// Reads an ipch-results-1 document; a malformed one is InvalidArgument naming what is wrong.
Result<RunResults> ParseResults(const std::string& text);
Result<RunResults> LoadResults(const std::string& path);

std::string JUnitXml(const RunResults& r);
std::string CtrfJson(const RunResults& r);
// `bench`: an `ipch bench --json` document for the charts, or null.
std::string Html(const RunResults& r, const nlohmann::json& bench);

// `s` as XML or HTML text (`attribute`: inside an attribute, where quotes, line breaks and tabs
// become references); characters XML 1.0 cannot hold are left out.
std::string MarkupEscape(const std::string& s, bool attribute);

// "" when `path` can take a report (its directory exists or can be made and is writable, and
// it is not a directory itself); otherwise why not.
std::string CheckReportPath(const std::string& path);
// Writes `text` to PATH.tmp.<pid> and renames it over PATH: a reader never sees half a report.
Status WriteAtomically(const std::string& path, const std::string& text);

}  // namespace ipch::tool
