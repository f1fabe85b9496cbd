// The ipch tool's command line: parsed into a Command without running anything, so the parser
// is tested and fuzzed on its own (fuzz/ipch_cli_fuzzer.cc).
#pragma once

#include <string>
#include <vector>

namespace ipch::cli {

// Exit status for bad input (an unknown verb or flag, a bad value).
inline constexpr int kBadInput = 2;

struct SweepArgs {
  std::string prefix = "ipch-";
  bool dry_run = false;
  bool json = false;
  bool no_sysv = false;
  long long min_age = 60;
};

struct Command {
  enum Verb { kSweep, kHelp, kBadInput } verb = kBadInput;
  SweepArgs sweep;
  // kHelp: the usage to print on stdout; kBadInput: one message naming the problem and where
  // the usage is, for stderr.
  std::string text;
};

// `args` are the arguments after the program name.
Command Parse(const std::vector<std::string>& args);

}  // namespace ipch::cli
