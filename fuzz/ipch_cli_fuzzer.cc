// Fuzzes the ipch tool's command line (tools/ipch/cli.h): the arguments are the input split at
// NUL bytes (at most 16). Nothing is run; only the parse is judged.
// Invariants: every input is a verb to run, a help text, or bad input with one message naming
// the problem and pointing at --help (the tool prints it and exits 2); never an exception or a
// crash. A sweep to run has a prefix that is non-empty and has no '/' (it never names a path
// outside /dev/shm, /dev/mqueue and the temp directory) and a minimum age that is not negative;
// a run has 1 to 256 jobs, a seed of digits only (or none) and no empty transport, group or
// report path; a repro has a line. The same arguments always give the same command.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "cli.h"

namespace {
void Require(bool ok) {
  if (!ok) std::abort();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using ipch::cli::Command;
  std::vector<std::string> args(1);
  for (std::size_t i = 0; i < size && args.size() <= 16; ++i) {
    if (data[i] == 0) {
      args.emplace_back();
    } else {
      args.back() += static_cast<char>(data[i]);
    }
  }
  if (size == 0) args.clear();
  const Command cmd = ipch::cli::Parse(args);
  switch (cmd.verb) {
    case Command::kSweep:
      Require(!cmd.sweep.prefix.empty() && cmd.sweep.prefix.find('/') == std::string::npos);
      Require(cmd.sweep.min_age >= 0);
      break;
    case Command::kRun: {
      const auto& r = cmd.run;
      Require(r.jobs >= 1 && r.jobs <= 256 && r.case_timeout >= 1);
      Require(r.seed.find_first_not_of("0123456789") == std::string::npos && r.seed.size() <= 20);
      for (const auto* v : {&r.transports, &r.groups}) {
        for (const auto& s : *v) Require(!s.empty());
      }
      Require(!r.serial.empty());
      break;
    }
    case Command::kList:
      break;
    case Command::kRepro:
      Require(!cmd.repro.line.empty());
      break;
    case Command::kReport:
      Require(!cmd.report.from.empty());
      break;
    case Command::kBench:
      Require(cmd.bench.repetitions >= 1 && cmd.bench.min_time > 0);
      break;
    case Command::kHelp:
      Require(cmd.text.find("Usage: ipch") != std::string::npos);
      break;
    case Command::kBadInput:
      Require(cmd.text.compare(0, 6, "ipch: ") == 0 && cmd.text.find("--help") != std::string::npos);
      break;
  }
  const Command again = ipch::cli::Parse(args);
  Require(again.verb == cmd.verb && again.text == cmd.text && again.sweep.prefix == cmd.sweep.prefix &&
          again.sweep.min_age == cmd.sweep.min_age && again.sweep.dry_run == cmd.sweep.dry_run &&
          again.sweep.json == cmd.sweep.json && again.sweep.no_sysv == cmd.sweep.no_sysv &&
          again.run.transports == cmd.run.transports && again.run.groups == cmd.run.groups &&
          again.run.seed == cmd.run.seed && again.run.jobs == cmd.run.jobs && again.repro.line == cmd.repro.line);
  return 0;
}
