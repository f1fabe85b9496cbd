// The transport x group verdict matrix and the per-group progress line. Both are fed one
// finished case at a time, so a gtest listener (direct run) and the isolating supervisor
// (one process per case) print the same text.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace ipch::testing {

// kKnown: failed, as the known-failures baseline expects (baseline.h).
enum class Outcome { kPass, kFail, kSkip, kKnown };

// Verdicts of typed conformance suites named Prefix/Group/transport; other suites are ignored.
class VerdictMatrix {
 public:
  // `not_applicable`: a skip whose case cannot apply to the mechanism ("N/A: ..."), counted apart
  // from UNSUPPORTED (a capability or hook missing).
  void Add(const std::string& suite, Outcome outcome, bool not_applicable = false);
  // The table, or "" when no conformance suite was seen.
  std::string Render() const;

 private:
  struct Cell {
    int passed = 0, failed = 0, skipped = 0, known = 0, not_applicable = 0;
  };
  static std::string CellText(const Cell& c);
  std::vector<std::string> groups_;                           // in the order they first finished
  std::vector<std::string> transports_;                       // likewise
  std::map<std::string, std::map<std::string, Cell>> cells_;  // transport -> group -> counts
};

// A battery suite's name, Prefix/Group/transport, in its parts (the group is what lies between
// the first '/' and the last); nullopt for a suite of another shape. The matrix, the coverage
// map, the results document and the ipch tool all read suite names through this.
struct SuiteParts {
  std::string prefix, group, transport;
};
std::optional<SuiteParts> SplitSuite(const std::string& suite);

// Whether a skip's message says the case cannot apply (it begins "N/A: ").
bool IsNotApplicable(const std::string& skip_message);

// "[ipch] Conformance/Basic/tcp   12 passed ..." for a Prefix/Group/transport suite, "" otherwise.
std::string ProgressLine(const std::string& suite, int passed, int failed, int skipped, long long ms, int known = 0);

}  // namespace ipch::testing
