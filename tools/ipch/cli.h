// The ipch tool's command line: parsed into a Command without running anything, so the parser
// is tested and fuzzed on its own (fuzz/ipch_cli_fuzzer.cc). Checks that need the filesystem or
// the battery (a report path, a transport's name) are the verbs' own.
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

// The reports `ipch run` and `ipch report` write (paths, "" for none), and the benchmark figures
// the HTML report charts.
struct ReportOptions {
  std::string junit, ctrf, html;
  std::string bench;  // an `ipch bench --json` file
};

// `ipch run`: the battery over chosen transports and groups, each case in its own process.
struct RunArgs {
  std::string battery;                          // "" for the reference battery
  std::vector<std::string> transports, groups;  // empty: all
  std::string exclude;                          // ':'-separated case name patterns left out
  std::string seed;                             // IPCH_SEED for the run, "" for the battery's default; digits only
  int jobs = 2;
  int case_timeout = 300;
  std::string serial = "*posix_mq*:*PosixMq*";
  std::string known;  // a known-failures baseline
  ReportOptions reports;
  std::string results;  // the results document's path, "" for none
};

// `ipch list`: the battery's transports, their capabilities and hooks, its groups and cases.
struct ListArgs {
  std::string battery;
  bool json = false;
};

// `ipch report --from FILE`: the reports again from a saved results document.
struct ReportArgs {
  std::string from;
  ReportOptions reports;
};

// `ipch bench`: every transport's benchmarks beside its mechanism's raw baseline.
struct BenchArgs {
  std::vector<std::string> transports, sizes;  // empty: all
  int repetitions = 3;
  double min_time = 0.5;
  std::string json;  // write the figures here (ipch-bench-1)
};

// `ipch repro '<replay line>'`: reruns one case as its failure printed it.
struct ReproArgs {
  std::string line;
  bool direct = false;             // in the binary's own process (for a debugger), not isolated
  std::vector<std::string> extra;  // passed on to the binary (after --)
};

struct Command {
  enum Verb { kSweep, kRun, kList, kRepro, kReport, kBench, kHelp, kBadInput } verb = kBadInput;
  SweepArgs sweep;
  RunArgs run;
  ListArgs list;
  ReproArgs repro;
  ReportArgs report;
  BenchArgs bench;
  // kHelp: the usage to print on stdout; kBadInput: one message naming the problem and where
  // the usage is, for stderr.
  std::string text;
};

// `args` are the arguments after the program name.
Command Parse(const std::vector<std::string>& args);

}  // namespace ipch::cli
