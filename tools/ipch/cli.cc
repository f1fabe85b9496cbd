#include "cli.h"

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cerrno>
#include <cstdlib>

namespace ipch::cli {

namespace {

// Every verb, in the order the usage lists them.
const std::vector<std::pair<std::string, Command::Verb>>& Verbs() {
  static const std::vector<std::pair<std::string, Command::Verb>> verbs = {
      {"run", Command::kRun},       {"list", Command::kList},   {"repro", Command::kRepro},
      {"report", Command::kReport}, {"bench", Command::kBench}, {"sweep", Command::kSweep}};
  return verbs;
}

std::string VerbList() {
  std::string list;
  for (const auto& [name, verb] : Verbs()) list += (list.empty() ? "" : ", ") + name;
  return list;
}

std::string WholeSeconds(const std::string& v) {
  if (v.empty() || v.find_first_not_of("0123456789") != std::string::npos)
    return "expected a whole number of seconds, 0 or more";
  return "";
}

// A seed is what IPCH_SEED takes: an unsigned 64-bit decimal number.
std::string SeedCheck(const std::string& v) {
  if (v.empty() || v.size() > 20 || v.find_first_not_of("0123456789") != std::string::npos)
    return "a seed is a whole number from 0 to 18446744073709551615, got '" + v + "'";
  errno = 0;
  (void)std::strtoull(v.c_str(), nullptr, 10);
  if (errno == ERANGE) return "a seed is a whole number from 0 to 18446744073709551615, got '" + v + "'";
  return "";
}

std::string NotEmpty(const std::string& v) { return v.empty() ? "the value is empty" : ""; }

void AddSweep(CLI::App& app, SweepArgs& a) {
  CLI::App* s = app.add_subcommand(
      "sweep",
      "Find and remove what dead processes of this uid left: the harness's scratch directories, /dev/shm and "
      "/dev/mqueue entries named ipch-<pid>-..., and SysV segments with the IPCH magic whose creator is gone. An "
      "owner is dead when its pid does not exist or was reused (a process with it started after the object was "
      "made). Objects of other uids are never touched, even as root.");
  s->add_option("--prefix", a.prefix,
                "only names that start with this (SysV segments, which have none, are then left out)")
      ->check([](const std::string& p) -> std::string {
        if (p.empty()) return "the prefix is empty";
        if (p.find('/') != std::string::npos) return "a prefix is the start of a name, without '/'";
        return "";
      });
  s->add_flag("--dry-run", a.dry_run, "list what would be removed; remove nothing");
  s->add_flag("--json", a.json, "print the result as one JSON document");
  s->add_flag("--no-sysv", a.no_sysv, "leave SysV segments out");
  s->add_option("--min-age", a.min_age,
                "seconds a SysV segment must have been idle (a connector that sent and exited leaves one a live "
                "listener is about to accept)")
      ->check(WholeSeconds);
}

// The report options `run` and `report` share.
void AddReportOptions(CLI::App* verb, ReportOptions& o) {
  verb->add_option("--junit", o.junit, "write a JUnit XML report here")->check(NotEmpty);
  verb->add_option("--ctrf", o.ctrf, "write a CTRF JSON report here")->check(NotEmpty);
  verb->add_option("--html", o.html, "write a self-contained HTML report here")->check(NotEmpty);
  verb->add_option("--bench", o.bench, "an 'ipch bench --json' output for the HTML report's charts")->check(NotEmpty);
}

void AddRun(CLI::App& app, RunArgs& a) {
  CLI::App* r = app.add_subcommand(
      "run",
      "Run the battery (conformance, fault and property groups) over the chosen transports, each case in its own "
      "process, and print the transport x group verdict table and a replay line per failure. Exit status: 0 when "
      "no case failed, 1 when one did, 2 for bad input, 128+N when stopped by signal N (130 for Ctrl-C).");
  r->add_option("--battery", a.battery,
                "a battery binary (a test program linking ipch::testing_main that instantiates the battery); "
                "default: the reference transports' battery")
      ->check(NotEmpty);
  r->add_option("-t,--transport", a.transports, "a transport to run (repeat for more; default: all)")->check(NotEmpty);
  r->add_option("-g,--group", a.groups, "a group to run (repeat for more; default: all)")->check(NotEmpty);
  r->add_option("--exclude", a.exclude,
                "':'-separated case name patterns to leave out, as in --gtest_filter (e.g. '*/Property/*')")
      ->check([](const std::string& v) -> std::string {
        if (v.empty()) return "the value is empty";
        if (v.find('-') == 0) return "give the patterns without a leading '-'";
        return "";
      });
  r->add_option("--seed", a.seed, "the run's base seed (IPCH_SEED); every case's seed derives from it")
      ->check(SeedCheck);
  r->add_option("-j,--jobs", a.jobs, "cases at once")->check(CLI::Range(1, 256));
  r->add_option("--case-timeout", a.case_timeout, "seconds before a case is killed as hung (scaled under sanitizers)")
      ->check(CLI::Range(1, 86400));
  r->add_option("--serial", a.serial,
                "':'-separated name patterns of cases that never run two at once (default: the POSIX queue cases, "
                "which share the user's RLIMIT_MSGQUEUE)")
      ->check(NotEmpty);
  r->add_option("--known", a.known, "a known-failures baseline: listed failures are reported, not failed")
      ->check(NotEmpty);
  AddReportOptions(r, a.reports);
  r->add_option("--results", a.results, "write the battery's own results document (ipch-results-1 JSON) here")
      ->check(NotEmpty);
}

void AddList(CLI::App& app, ListArgs& a) {
  CLI::App* l =
      app.add_subcommand("list", "List the battery's transports (capabilities, hooks, cases per group) and groups.");
  l->add_option("--battery", a.battery, "a battery binary; default: the reference transports' battery")
      ->check(NotEmpty);
  l->add_flag("--json", a.json, "print one JSON document");
}

void AddRepro(CLI::App& app, ReproArgs& a) {
  CLI::App* p = app.add_subcommand(
      "repro",
      "Rerun one case from the replay line its failure printed ('[  REPLAY  ] IPCH_SEED=N BINARY "
      "--gtest_filter='CASE'  (test seed S)', whole or from IPCH_SEED on), in its own process as the run did: a "
      "crash or hang is reported with its cause, and what the case left is removed.");
  p->add_option("line", a.line, "the replay line, quoted as one argument")->required()->check(NotEmpty);
  p->add_flag("--direct", a.direct,
              "run the case in the binary's own process (under a debugger, say) rather than isolated: a crash "
              "then leaves what it made for 'ipch sweep'");
  p->add_option("extra", a.extra, "after --: more arguments for the binary (e.g. --gtest_repeat=20)");
}

void AddReport(CLI::App& app, ReportArgs& a) {
  CLI::App* p = app.add_subcommand(
      "report",
      "Write the reports again from a results document that 'ipch run --results' saved (with benchmark "
      "charts added, say).");
  p->add_option("--from", a.from, "the results document (ipch-results-1)")->required()->check(NotEmpty);
  AddReportOptions(p, a.reports);
}

void AddBench(CLI::App& app, BenchArgs& a) {
  CLI::App* b = app.add_subcommand(
      "bench",
      "Benchmark the reference transports: round trips (and streams, for shared memory) beside the raw "
      "baseline of each one's mechanism in the same run, as ratios with their goals (docs/benchmarks.md).");
  b->add_option("-t,--transport", a.transports, "a transport (repeat for more; default: all)")->check(NotEmpty);
  b->add_option("-s,--size", a.sizes, "a message size: 64, 4K, 64K or 1M (repeat for more; default: all)")
      ->check(NotEmpty);
  b->add_option("--repetitions", a.repetitions, "runs of each benchmark, interleaved; the medians count")
      ->check(CLI::Range(1, 100));
  b->add_option("--min-time", a.min_time, "seconds each run lasts at least")->check(CLI::Range(0.001, 60.0));
  b->add_option("--json", a.json, "write the figures here (ipch-bench-1, which ipch run --bench charts)")
      ->check(NotEmpty);
}

}  // namespace

Command Parse(const std::vector<std::string>& args) {
  Command cmd;
  CLI::App app{"ipch: tools of the ipc-harness test harness"};
  app.name("ipch");
  app.require_subcommand(1);
  AddRun(app, cmd.run);
  AddList(app, cmd.list);
  AddRepro(app, cmd.repro);
  AddReport(app, cmd.report);
  AddBench(app, cmd.bench);
  AddSweep(app, cmd.sweep);
  // CLI11 would call an unknown verb a missing one: name it.
  if (!args.empty() && !args[0].empty() && args[0][0] != '-' &&
      std::none_of(Verbs().begin(), Verbs().end(), [&](const auto& v) { return v.first == args[0]; })) {
    cmd.text = "ipch: unknown verb '" + args[0] + "' (verbs: " + VerbList() + ")\nRun 'ipch --help' for the usage.";
    return cmd;
  }
  // CLI11 takes the arguments last first.
  std::vector<std::string> reversed(args.rbegin(), args.rend());
  try {
    app.parse(reversed);
  } catch (const CLI::CallForHelp&) {
    cmd.verb = Command::kHelp;
    cmd.text = app.help();  // the verb's own usage when one was given
    return cmd;
  } catch (const CLI::ParseError& e) {
    const std::string verb = args.empty() || args[0].empty() || args[0][0] == '-' ? "" : " " + args[0];
    cmd.text = std::string("ipch: ") + e.what() + "\nRun 'ipch" + verb + " --help' for the usage.";
    return cmd;
  }
  for (const auto& [name, verb] : Verbs()) {
    if (app.get_subcommand(name)->parsed()) {
      cmd.verb = verb;
      return cmd;
    }
  }
  cmd.text = "ipch: no verb given (verbs: " + VerbList() + ")\nRun 'ipch --help' for the usage.";
  return cmd;
}

}  // namespace ipch::cli
