// A battery binary seen from the ipch tool: what it holds (its listing and --ipch_describe),
// and running it as a child that shares the terminal.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "ipch/result.h"

namespace ipch::tool {

struct AdapterDesc {
  std::string prefix, name;
  std::vector<std::string> caps, hooks;
};

struct Catalog {
  std::string binary;
  std::vector<std::string> transports;                      // in instantiation order
  std::vector<std::string> groups;                          // likewise
  std::map<std::string, std::map<std::string, int>> cases;  // transport -> group -> cases
  int other_cases = 0;                                      // cases outside Prefix/Group/transport suites
  int total = 0;
  std::vector<AdapterDesc> adapters;  // as --ipch_describe tells (empty for an older battery)
};

// The reference transports' battery of this build, or "" when it was not built.
std::string ReferenceBattery();

// Lists `binary`'s cases (--gtest_list_tests) and, with `describe`, its adapters
// (--ipch_describe, one more start of the binary). A binary that is missing, not executable or
// not a battery is InvalidArgument with the reason.
Result<Catalog> LoadCatalog(const std::string& binary, bool describe);

// Runs argv with `env` added to this environment, sharing stdin/stdout/stderr, and waits. A
// stop signal the tool gets from another process (kill) is passed on; one from the terminal
// reaches the child by itself. Returns the wait status.
Result<int> RunShared(const std::vector<std::string>& argv, const std::vector<std::string>& env);

// Runs argv to its end with its stdout and stderr appended to the file `log`; the wait status.
Result<int> RunLogged(const std::vector<std::string>& argv, const std::string& log);

// ':'-joined gtest positive patterns for the chosen transports and groups ("*" when both are
// empty).
std::string FilterFor(const std::vector<std::string>& transports, const std::vector<std::string>& groups);

// `name` among `valid`, or a message "unknown WHAT 'name' (WHATs: a, b, c)".
std::string CheckChoice(const std::string& what, const std::string& name, const std::vector<std::string>& valid);

}  // namespace ipch::tool
