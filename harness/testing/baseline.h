// A known-failures baseline (--ipch_known=FILE): the cases a transport is known to fail, each
// with its reason. Under it a listed case that fails is KNOWN (not PASS, not FAIL), one that
// passes or is skipped fails the run (the baseline must shrink when the library is fixed), and
// any other failure fails as always. Format (docs/new-transport.md):
//   # comment
//   <gtest name pattern, * and ? as in --gtest_filter>  <reason, required>
//   ~<pattern>  <reason>     a case that fails only sometimes (a race in the library): a failure
//                            is KNOWN, a pass stays a PASS (with a note), a skip still fails
#pragma once

#include <string>
#include <vector>

#include "ipch/result.h"
#include "verdicts.h"

namespace ipch::testing {

struct KnownFailure {
  std::string pattern;
  std::string reason;
  int line = 0;
  bool sometimes = false;  // written with a leading '~': it may pass
};

class Baseline {
 public:
  // InvalidArgument naming the file and line for a line without a reason or a bad pattern; the
  // errno when the file cannot be read.
  static Result<Baseline> Parse(const std::string& path, const std::string& text);
  static Result<Baseline> Load(const std::string& path);
  // The baseline named by IPCH_KNOWN (which --ipch_known sets), loaded once; null when none.
  // A baseline that cannot be loaded ends the program with its reason (exit 2).
  static const Baseline* FromEnvironment();

  const KnownFailure* Find(const std::string& full_name) const;
  // Entries that match none of `names` (every test the program has, run or not): stale.
  std::vector<const KnownFailure*> Unmatched(const std::vector<std::string>& names) const;
  const std::string& path() const { return path_; }
  std::string Where(const KnownFailure& k) const { return path_ + ":" + std::to_string(k.line); }

 private:
  std::string path_;
  std::vector<KnownFailure> entries_;
};

// A case's verdict under `b` (null: the raw outcome) and, when the baseline changed it, the line
// that says so ("[  KNOWN   ] ..." or "[UNEXPECTED] ...").
struct Judged {
  Outcome outcome;
  std::string note;
};
Judged Judge(const Baseline* b, const std::string& full_name, Outcome raw);

// Every test this program registered (gtest's registry, before any filter), as Suite.Case.
std::vector<std::string> RegisteredTests();
// Ends the program (exit 2) when the environment's baseline has entries no test matches.
void CheckBaselineOrExit();

}  // namespace ipch::testing
