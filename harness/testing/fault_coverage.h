// The fault-space coverage map: per transport, which interposed entry points its cases called,
// which faults (entry point x kind) were injected in cases that passed ("survived") or failed,
// and which entry points it called that no case ever faulted. Fed one finished case at a time,
// like VerdictMatrix, from the census the conformance fixture takes around each case.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "ipch/fault.h"
#include "ipch/result.h"
#include "verdicts.h"

namespace ipch::testing {

// The text of ipch::fault::FormatCensus back into entries; false on malformed text.
bool ParseCensus(std::string_view text, fault::Census* out);

class FaultCoverage {
 public:
  // A finished case of a Prefix/Group/transport suite and its census text (others are ignored).
  void Add(const std::string& suite, Outcome outcome, const std::string& census_text);
  bool empty() const { return transports_.empty(); }
  // The compact table printed at the end of a run ("" when empty).
  std::string Render() const;
  // The whole map as JSON (docs/fault-model.md, "Fault-space coverage").
  std::string Json() const;
  // Writes Json() to `path` through a temporary file and a rename.
  Status WriteJson(const std::string& path) const;

  struct Counts {
    uint64_t calls = 0;
    uint64_t survived[fault::kKinds] = {};  // injected in cases that passed
    uint64_t failed[fault::kKinds] = {};    // injected in cases that failed (or known failures)
    uint64_t Survived() const;
    uint64_t Failed() const;
  };
  // transport -> entry point -> counts, for tests.
  const std::map<std::string, Counts>* Of(const std::string& transport) const;

 private:
  std::vector<std::string> transports_;  // in the order first seen
  std::map<std::string, std::map<std::string, Counts>> map_;
};

// The coverage file for a gtest XML report path: "<report without .xml>.fault-coverage.json".
std::string CoveragePathFor(const std::string& xml_path);

}  // namespace ipch::testing
