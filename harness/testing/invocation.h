// What the isolating supervisor needs from its command line and from gtest's test listing.
// Pure functions: no processes, no I/O.
#pragma once

#include <string>
#include <vector>

#include "ipch/result.h"

namespace ipch::testing {

struct IsolateOptions {
  bool enabled = false;      // --ipch_isolate or IPCH_ISOLATE=1
  int jobs = 1;              // --ipch_jobs=N: cases at once
  int case_timeout_s = 300;  // --ipch_case_timeout=S, before the slowdown factor
  std::string serial;        // --ipch_serial=PATTERNS: matching cases never run two at once
  std::string results;       // --ipch_results=FILE: every case's result as JSON (results.h)
  bool describe = false;     // --ipch_describe: print the instantiated adapters as JSON, run nothing
};

// Removes every --ipch_* flag from argv (in a direct run too); an unknown one or a bad value is
// InvalidArgument. IPCH_ISOLATE=1 in the environment enables isolation as the flag does.
Result<IsolateOptions> TakeIsolateFlags(int& argc, char** argv);

// The user's gtest flags, split into what the supervisor interprets and what it passes on.
struct Invocation {
  std::string argv0;
  std::vector<std::string> pass_through;  // to every child: all but filter, output, listing
  std::string filter;                     // --gtest_filter value; "" when not given
  std::string output;                     // --gtest_output (or GTEST_OUTPUT) value
  bool brief = false;
  bool also_run_disabled = false;
  bool runs_no_tests = false;  // --gtest_list_tests or a help flag: nothing to supervise
};
Invocation ParseInvocation(int argc, char** argv);
// The XML report path of `--gtest_output=xml[:PATH]`, "" when none; *other gets a JSON or
// unknown format, which isolated runs do not write.
std::string XmlReportPath(const Invocation& inv, std::string* other);

struct ListedCase {
  std::string suite, name, type_param, value_param;
  std::string full_name() const { return suite + "." + name; }
};
// Parses `--gtest_list_tests`: "Suite.  # TypeParam = T" lines, then "  Case  # GetParam() = V".
std::vector<ListedCase> ParseListing(const std::string& text);
// gtest's rule: a DISABLED_ suite or case name (or a DISABLED_ part after a '/').
bool IsDisabled(const ListedCase& c);
// `patterns`: ':'-separated globs with '*' and '?', as in --gtest_filter (positive only).
bool MatchesPatterns(const std::string& name, const std::string& patterns);
// A --gtest_filter that selects exactly `full_name`: '-' would start the negative patterns.
std::string ExactFilter(const std::string& full_name);

}  // namespace ipch::testing
