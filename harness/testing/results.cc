#include "results.h"

#include "ipch/atomic_file.h"
#include "json_text.h"
#include "shared.h"
#include "verdicts.h"

namespace ipch::testing {
namespace {

long long EpochMs(std::chrono::system_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

const char* OutcomeName(Outcome o) {
  switch (o) {
    case Outcome::kPass:
      return "pass";
    case Outcome::kFail:
      return "fail";
    case Outcome::kSkip:
      return "skip";
    case Outcome::kKnown:
      return "known";
  }
  return "fail";
}

// The replay line without its "[  REPLAY  ] " tag, its test-seed note and its newline.
std::string ReplayCommand(const std::string& full_name) {
  std::string line = ReplayLine(full_name);
  const std::string tag = "[  REPLAY  ] ";
  if (line.rfind(tag, 0) == 0) line.erase(0, tag.size());
  if (const size_t note = line.rfind("  (test seed "); note != std::string::npos) line.resize(note);
  while (!line.empty() && (line.back() == '\n' || line.back() == ' ')) line.pop_back();
  return line;
}

std::string CaseJson(const CaseReport& c) {
  const SuiteParts suite = SplitSuite(c.suite).value_or(SuiteParts{});  // all empty for another suite
  const std::string full = c.suite + "." + c.name;
  bool not_applicable = false;
  std::string parts;
  for (const auto& p : c.parts) {
    not_applicable = not_applicable || (p.skipped && IsNotApplicable(p.message));
    parts += std::string(parts.empty() ? "" : ", ") + "{\"skipped\": " + (p.skipped ? "true" : "false") +
             ", \"location\": " + JsonString(p.location) + ", \"message\": " + JsonString(p.message) + "}";
  }
  return "{\"suite\": " + JsonString(c.suite) + ", \"name\": " + JsonString(c.name) +
         ", \"prefix\": " + JsonString(suite.prefix) + ", \"group\": " + JsonString(suite.group) +
         ", \"transport\": " + JsonString(suite.transport) + ", \"type_param\": " + JsonString(c.type_param) +
         ", \"value_param\": " + JsonString(c.value_param) + ", \"outcome\": \"" + OutcomeName(c.outcome) +
         "\", \"not_applicable\": " + (not_applicable ? "true" : "false") + ", \"ms\": " + std::to_string(c.ms) +
         ", \"started_ms\": " + std::to_string(EpochMs(c.started)) +
         ", \"test_seed\": " + std::to_string(TestSeed(full)) + ", \"replay\": " + JsonString(ReplayCommand(full)) +
         ", \"parts\": [" + parts + "]}";
}

}  // namespace

std::string ResultsJson(const RunInfo& run, const std::vector<CaseReport>& cases) {
  std::string out = "{\"format\": \"ipch-results-1\", \"binary\": " + JsonString(run.binary) +
                    ", \"seed\": " + std::to_string(run.seed) + ", \"jobs\": " + std::to_string(run.jobs) +
                    ", \"started_ms\": " + std::to_string(EpochMs(run.started)) +
                    ", \"duration_ms\": " + std::to_string(run.duration_ms) +
                    ", \"coverage\": " + (run.coverage_json.empty() ? "null" : run.coverage_json) + ",\n\"cases\": [";
  for (size_t i = 0; i < cases.size(); ++i) out += std::string(i ? ",\n" : "\n") + CaseJson(cases[i]);
  return out + "\n]}\n";
}

Status WriteResults(const std::string& path, const RunInfo& run, const std::vector<CaseReport>& cases) {
  return WriteFileAtomically(path, ResultsJson(run, cases));
}

}  // namespace ipch::testing
