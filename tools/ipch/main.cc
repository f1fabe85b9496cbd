// ipch: the command-line tool. Verbs: run (the battery, with reports), list (what a battery
// holds), repro (one case from its replay line), report (the reports again from saved results),
// bench (benchmarks beside raw baselines), sweep (objects left by dead processes).
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "battery.h"
#include "bench.h"
#include "cli.h"
#include "ipch/sweep.h"
#include "ipch/temp_dir.h"
#include "reports.h"

namespace {

using ipch::cli::kBadInput;

int BadInput(const std::string& verb, const std::string& why) {
  std::fprintf(stderr, "ipch %s: %s\nRun 'ipch %s --help' for the usage.\n", verb.c_str(), why.c_str(), verb.c_str());
  return kBadInput;
}

// A child's wait status as the tool's exit status: its code, or 128+N for signal N.
int ExitStatusOf(int status) {
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}

int RunSweep(const ipch::cli::SweepArgs& a) {
  ipch::sweep::Options options;
  options.prefix = a.prefix;
  // SysV segments carry no name for a prefix to select: a narrower prefix leaves them out.
  options.sysv = !a.no_sysv && a.prefix == "ipch-";
  options.sysv_min_age = std::chrono::seconds(a.min_age);
  const auto found = ipch::sweep::FindOrphans(options);
  int removed = 0, failed = 0;
  nlohmann::json objects = nlohmann::json::array();
  for (const auto& f : found) {
    nlohmann::json o = {{"kind", f.kind}, {"name", f.name}, {"owner_pid", f.owner}, {"why", f.why}};
    if (a.dry_run) {
      o["removed"] = false;
      if (!a.json) std::printf("would remove %s %s: %s\n", f.kind.c_str(), f.name.c_str(), f.why.c_str());
    } else if (auto st = ipch::sweep::Remove(f); st.ok()) {
      ++removed;
      o["removed"] = true;
      if (!a.json) std::printf("removed %s %s: %s\n", f.kind.c_str(), f.name.c_str(), f.why.c_str());
    } else {
      ++failed;
      o["removed"] = false;
      o["error"] = st.error().ToString();
      std::fprintf(stderr, "ipch sweep: could not remove %s %s: %s\n", f.kind.c_str(), f.name.c_str(),
                   st.error().ToString().c_str());
    }
    objects.push_back(std::move(o));
  }
  if (a.json) {
    nlohmann::json doc = {{"prefix", a.prefix}, {"dry_run", a.dry_run},         {"sysv", options.sysv},
                          {"uid", ::geteuid()}, {"found", found.size()},        {"removed", removed},
                          {"failed", failed},   {"objects", std::move(objects)}};
    std::cout << doc.dump(2) << "\n";
  } else {
    std::printf("%zu orphan(s) of uid %u with prefix '%s'%s; %s\n", found.size(), ::geteuid(), a.prefix.c_str(),
                options.sysv ? " and SysV segments" : "",
                a.dry_run ? "nothing removed (--dry-run)" : (std::to_string(removed) + " removed").c_str());
  }
  return failed > 0 ? 1 : 0;
}

// The battery to use: --battery, or the reference one this build made.
std::string BatteryOr(const std::string& given, std::string* why) {
  if (!given.empty()) return given;
  const std::string ref = ipch::tool::ReferenceBattery();
  if (ref.empty()) *why = "this ipch was built without the reference battery: give --battery BINARY";
  return ref;
}

// ---- list

int RunList(const ipch::cli::ListArgs& a) {
  std::string why;
  const std::string binary = BatteryOr(a.battery, &why);
  if (binary.empty()) return BadInput("list", why);
  auto cat = ipch::tool::LoadCatalog(binary, /*describe=*/true);
  if (!cat.ok()) return BadInput("list", cat.error().ToString());
  const auto adapter = [&](const std::string& name) -> const ipch::tool::AdapterDesc* {
    for (const auto& d : cat->adapters) {
      if (d.name == name) return &d;
    }
    return nullptr;
  };
  if (a.json) {
    nlohmann::json doc = {{"battery", cat->binary},
                          {"groups", cat->groups},
                          {"cases", cat->total},
                          {"other_cases", cat->other_cases},
                          {"transports", nlohmann::json::array()}};
    for (const auto& t : cat->transports) {
      const auto* d = adapter(t);
      int total = 0;
      for (const auto& [g, n] : cat->cases.at(t)) total += n;
      doc["transports"].push_back({{"name", t},
                                   {"caps", d ? d->caps : std::vector<std::string>{}},
                                   {"hooks", d ? d->hooks : std::vector<std::string>{}},
                                   {"cases", total},
                                   {"groups", cat->cases.at(t)}});
    }
    std::cout << doc.dump(2) << "\n";
    return 0;
  }
  std::printf("battery %s: %d cases, %zu transports x %zu groups\n\n", cat->binary.c_str(), cat->total,
              cat->transports.size(), cat->groups.size());
  std::printf("%-12s", "transport");
  for (const auto& g : cat->groups) std::printf(" %*s", static_cast<int>(std::max<size_t>(g.size(), 4)), g.c_str());
  std::printf("  total\n");
  for (const auto& t : cat->transports) {
    std::printf("%-12s", t.c_str());
    int total = 0;
    for (const auto& g : cat->groups) {
      const auto it = cat->cases.at(t).find(g);
      const int n = it == cat->cases.at(t).end() ? 0 : it->second;
      total += n;
      std::printf(" %*d", static_cast<int>(std::max<size_t>(g.size(), 4)), n);
    }
    std::printf("  %5d\n", total);
  }
  if (cat->other_cases > 0) std::printf("(and %d cases outside the battery's groups)\n", cat->other_cases);
  std::printf("\ncapabilities and hooks (a case needing one a transport lacks is UNSUPPORTED, and says which):\n");
  for (const auto& t : cat->transports) {
    const auto* d = adapter(t);
    const auto join = [](const std::vector<std::string>& v) {
      std::string s;
      for (const auto& x : v) s += (s.empty() ? "" : " ") + x;
      return s.empty() ? std::string("-") : s;
    };
    if (d == nullptr) {
      std::printf("  %-10s (the battery does not describe it: built before --ipch_describe)\n", t.c_str());
      continue;
    }
    std::printf("  %-10s caps:  %s\n  %-10s hooks: %s\n", t.c_str(), join(d->caps).c_str(), "", join(d->hooks).c_str());
  }
  return 0;
}

// ---- Reports

// "" when every given path can take a report and no two are the same file; else the message.
std::string CheckReportPaths(const std::vector<std::pair<const char*, const std::string*>>& reports) {
  std::set<std::string> paths;
  for (const auto& [flag, path] : reports) {
    if (path->empty()) continue;
    if (const std::string bad = ipch::tool::CheckReportPath(*path); !bad.empty()) return std::string(flag) + ": " + bad;
    if (!paths.insert(std::filesystem::weakly_canonical(*path).string()).second)
      return std::string(flag) + ": " + *path + " is already another report's path";
  }
  return "";
}

// Reads an `ipch bench --json` document into *bench ("" for no path); the message when it is not one.
std::string LoadBench(const std::string& path, nlohmann::json* bench) {
  if (path.empty()) return "";
  std::ifstream f(path);
  if (!f) return "--bench: cannot read " + path;
  *bench = nlohmann::json::parse(f, nullptr, false);
  if (bench->is_discarded() || !bench->is_object() || bench->value("format", "") != "ipch-bench-1")
    return "--bench: " + path + " is not an 'ipch bench --json' document (ipch-bench-1)";
  return "";
}

// 1 when the report could not be written (said on stderr), 0 when it was.
int WriteReport(const char* verb, const char* what, const std::string& path, const std::string& text) {
  if (path.empty()) return 0;
  if (auto st = ipch::tool::WriteAtomically(path, text); !st.ok()) {
    std::fprintf(stderr, "ipch %s: the %s report was not written: %s\n", verb, what, st.error().ToString().c_str());
    return 1;
  }
  std::printf("%s report: %s\n", what, path.c_str());
  return 0;
}

// Checks the reports' paths (and `results`, when given, against them) and loads the benchmark
// figures into *bench: "" when all is well, else the message.
std::string CheckReports(const ipch::cli::ReportOptions& o, const std::string& results, nlohmann::json* bench) {
  const std::string bad =
      CheckReportPaths({{"--junit", &o.junit}, {"--ctrf", &o.ctrf}, {"--html", &o.html}, {"--results", &results}});
  return bad.empty() ? LoadBench(o.bench, bench) : bad;
}

int WriteReports(const char* verb, const ipch::tool::RunResults& r, const nlohmann::json& bench,
                 const ipch::cli::ReportOptions& o) {
  return WriteReport(verb, "JUnit", o.junit, o.junit.empty() ? "" : ipch::tool::JUnitXml(r)) +
         WriteReport(verb, "CTRF", o.ctrf, o.ctrf.empty() ? "" : ipch::tool::CtrfJson(r)) +
         WriteReport(verb, "HTML", o.html, o.html.empty() ? "" : ipch::tool::Html(r, bench));
}

int RunReport(const ipch::cli::ReportArgs& a) {
  const auto& o = a.reports;
  if (o.junit.empty() && o.ctrf.empty() && o.html.empty())
    return BadInput("report", "no report asked for: give --junit, --ctrf or --html");
  nlohmann::json bench;
  if (auto bad = CheckReports(o, "", &bench); !bad.empty()) return BadInput("report", bad);
  auto r = ipch::tool::LoadResults(a.from);
  if (!r.ok()) return BadInput("report", "--from: " + r.error().ToString());
  return WriteReports("report", *r, bench, o) > 0 ? 1 : 0;
}

// ---- run

int RunRun(const ipch::cli::RunArgs& a) {
  using ipch::tool::CheckReportPath;
  std::string why;
  const std::string binary = BatteryOr(a.battery, &why);
  if (binary.empty()) return BadInput("run", why);
  // Every report path is checked before anything runs, and no two are the same file.
  nlohmann::json bench;
  if (auto bad = CheckReports(a.reports, a.results, &bench); !bad.empty()) return BadInput("run", bad);
  if (!a.known.empty() && ::access(a.known.c_str(), R_OK) != 0)
    return BadInput("run", "--known: cannot read " + a.known);
  auto cat = ipch::tool::LoadCatalog(binary, /*describe=*/false);  // run checks names, not hooks
  if (!cat.ok()) return BadInput("run", cat.error().ToString());
  for (const auto& t : a.transports) {
    if (auto bad = ipch::tool::CheckChoice("transport", t, cat->transports); !bad.empty()) return BadInput("run", bad);
  }
  for (const auto& g : a.groups) {
    if (auto bad = ipch::tool::CheckChoice("group", g, cat->groups); !bad.empty()) return BadInput("run", bad);
  }
  int selected = 0;
  for (const auto& t : cat->transports) {
    if (!a.transports.empty() && std::find(a.transports.begin(), a.transports.end(), t) == a.transports.end()) continue;
    for (const auto& [g, n] : cat->cases.at(t)) {
      if (a.groups.empty() || std::find(a.groups.begin(), a.groups.end(), g) != a.groups.end()) selected += n;
    }
  }
  if (a.transports.empty() && a.groups.empty()) selected = cat->total;
  if (selected == 0) return BadInput("run", "no case of the chosen transports is in the chosen groups");
  std::string excluded;
  if (!a.exclude.empty()) excluded = " (less those matching " + a.exclude + ")";

  // The results go to a private directory named for this process, so `ipch sweep` takes it if
  // this process is killed before it removes it.
  auto tmp = ipch::TempDir::Create("ipch-" + std::to_string(::getpid()) + "-run-");
  if (!tmp.ok()) {
    std::fprintf(stderr, "ipch run: %s\n", tmp.error().ToString().c_str());
    return 1;
  }
  const std::string results = (tmp->path() / "results.json").string();
  std::vector<std::string> argv = {
      binary,
      "--ipch_isolate",
      "--ipch_jobs=" + std::to_string(a.jobs),
      "--ipch_case_timeout=" + std::to_string(a.case_timeout),
      "--ipch_serial=" + a.serial,
      "--ipch_results=" + results,
      "--gtest_brief=1",
      "--gtest_filter=" + ipch::tool::FilterFor(a.transports, a.groups) + (a.exclude.empty() ? "" : "-" + a.exclude)};
  if (!a.known.empty()) argv.push_back("--ipch_known=" + a.known);
  std::vector<std::string> env;
  if (!a.seed.empty()) env.push_back("IPCH_SEED=" + a.seed);
  std::printf("ipch run: %d cases%s from %s, %d at a time%s\n", selected, excluded.c_str(), binary.c_str(), a.jobs,
              a.seed.empty() ? "" : (", seed " + a.seed).c_str());
  std::fflush(stdout);
  auto status = ipch::tool::RunShared(argv, env);
  if (!status.ok()) {
    std::fprintf(stderr, "ipch run: %s\n", status.error().ToString().c_str());
    return 1;
  }
  const int code = ExitStatusOf(*status);
  if (code >= 128) {
    std::fprintf(stderr, "ipch run: stopped (status %d); no report written\n", code);
    return code;
  }
  auto loaded = ipch::tool::LoadResults(results);
  if (!loaded.ok()) {
    std::fprintf(stderr, "ipch run: the battery exited with status %d and left no results: %s\n", code,
                 loaded.error().ToString().c_str());
    return 1;
  }
  const auto& r = *loaded;
  const int failed = r.Count("fail");
  if (failed > 0) {
    std::printf("\n%d case(s) failed; each replays with its seed:\n", failed);
    for (const auto& c : r.cases) {
      if (c.outcome != "fail") continue;
      std::printf("  %s %s: %s\n    ipch repro \"%s\"\n", c.class_name().c_str(), c.case_name().c_str(),
                  c.Summary().c_str(), c.replay.c_str());
    }
  }
  int write_errors = WriteReports("run", r, bench, a.reports);
  if (!a.results.empty()) {
    std::ifstream f(results);
    std::stringstream ss;
    ss << f.rdbuf();
    write_errors += WriteReport("run", "results", a.results, ss.str());
  }
  if (failed > 0 || write_errors > 0) return 1;
  return code == 0 ? 0 : 1;
}

// ---- bench

int RunBenchCmd(const ipch::cli::BenchArgs& a, const std::string& command) {
  ipch::tool::BenchOptions o;
#ifdef IPCH_BENCH_DIR
  o.bench_dir = IPCH_BENCH_DIR;
#endif
  if (o.bench_dir.empty())
    return BadInput("bench", "this ipch was built without the benchmarks (a sanitizer or fuzz build)");
  for (const auto& t : a.transports) {
    if (t == "inmem") {
      return BadInput("bench",
                      "inmem has no benchmark: its ends share a process, there is no kernel mechanism to "
                      "compare with");
    }
    if (auto bad = ipch::tool::CheckChoice("transport", t, ipch::tool::BenchTransports()); !bad.empty())
      return BadInput("bench", bad);
    o.transports.push_back(t);
  }
  for (const auto& s : a.sizes) {
    const std::string n = ipch::tool::NormalizeSize(s);
    if (n.empty()) return BadInput("bench", "unknown size '" + s + "' (sizes: 64, 4K, 64K, 1M)");
    o.sizes.push_back(n);
  }
  if (auto bad = CheckReportPaths({{"--json", &a.json}}); !bad.empty()) return BadInput("bench", bad);
  o.repetitions = a.repetitions;
  o.min_time = a.min_time;
  auto tmp = ipch::TempDir::Create("ipch-" + std::to_string(::getpid()) + "-bench-");
  if (!tmp.ok()) {
    std::fprintf(stderr, "ipch bench: %s\n", tmp.error().ToString().c_str());
    return 1;
  }
  const std::string log = (tmp->path() / "bench.log").string();
  std::printf("ipch bench: %d repetition(s) of at least %.3g s each, interleaved; medians\n", a.repetitions,
              a.min_time);
  std::fflush(stdout);
  auto rows = ipch::tool::RunBench(o, log);
  if (!rows.ok()) {
    std::ifstream f(log);
    std::stringstream ss;
    ss << f.rdbuf();
    std::fprintf(stderr, "ipch bench: %s\n%s", rows.error().ToString().c_str(), ss.str().c_str());
    return 1;
  }
  std::fputs(ipch::tool::BenchTable(*rows).c_str(), stdout);
  int missed = 0;
  for (const auto& r : *rows) missed += !r.Met();
  std::printf("%zu figure(s), %d goal(s) missed\n", rows->size(), missed);
  if (!a.json.empty())
    return WriteReport("bench", "JSON", a.json, ipch::tool::BenchJson(*rows, command).dump(2) + "\n");
  return 0;
}

// ---- repro

// The replay line's words; a '...' word keeps its spaces (a case name has none, a path may).
std::vector<std::string> Words(const std::string& line) {
  std::vector<std::string> words;
  std::string w;
  bool quoted = false, any = false;
  for (char c : line) {
    if (c == '\'') {
      quoted = !quoted;
      any = true;
    } else if (!quoted && (c == ' ' || c == '\t' || c == '\n')) {
      if (any) words.push_back(w);
      w.clear();
      any = false;
    } else {
      w += c;
      any = true;
    }
  }
  if (any) words.push_back(w);
  return words;
}

int RunRepro(const ipch::cli::ReproArgs& a) {
  std::string line = a.line;
  if (const size_t tag = line.find("[  REPLAY  ]"); tag != std::string::npos) line.erase(0, tag + 12);
  if (const size_t note = line.find("(test seed"); note != std::string::npos) line.resize(note);
  std::string seed, binary, filter;
  for (const auto& w : Words(line)) {
    if (w.rfind("IPCH_SEED=", 0) == 0) {
      seed = w.substr(10);
    } else if (w.rfind("--gtest_filter=", 0) == 0) {
      filter = w.substr(15);
    } else if (binary.empty()) {
      binary = w;
    } else {
      return BadInput("repro",
                      "unexpected '" + w + "' in the replay line (expected: IPCH_SEED=N BINARY --gtest_filter='CASE')");
    }
  }
  if (binary.empty() || filter.empty())
    return BadInput("repro",
                    "not a replay line: expected IPCH_SEED=N BINARY --gtest_filter='CASE', got '" + a.line + "'");
  if (!seed.empty() && seed.find_first_not_of("0123456789") != std::string::npos)
    return BadInput("repro", "IPCH_SEED must be a whole number, got '" + seed + "'");
  if (::access(binary.c_str(), X_OK) != 0)
    return BadInput("repro", "the replay line's binary " + binary + " is not there (or not executable): rebuild it");
  std::vector<std::string> argv = {binary, "--gtest_filter=" + filter};
  // Isolated, as the run was: the supervisor names a crash's cause and removes what it left.
  if (!a.direct) argv.push_back("--ipch_isolate");
  argv.insert(argv.end(), a.extra.begin(), a.extra.end());
  std::vector<std::string> env;
  if (!seed.empty()) env.push_back("IPCH_SEED=" + seed);
  std::fprintf(stderr, "ipch repro: %s%s --gtest_filter='%s'\n",
               seed.empty() ? "" : ("IPCH_SEED=" + seed + " ").c_str(), binary.c_str(), filter.c_str());
  auto status = ipch::tool::RunShared(argv, env);
  if (!status.ok()) {
    std::fprintf(stderr, "ipch repro: %s\n", status.error().ToString().c_str());
    return 1;
  }
  return ExitStatusOf(*status);
}

}  // namespace

int main(int argc, char** argv) {
  const ipch::cli::Command cmd = ipch::cli::Parse(std::vector<std::string>(argv + 1, argv + argc));
  switch (cmd.verb) {
    case ipch::cli::Command::kSweep:
      return RunSweep(cmd.sweep);
    case ipch::cli::Command::kRun:
      return RunRun(cmd.run);
    case ipch::cli::Command::kList:
      return RunList(cmd.list);
    case ipch::cli::Command::kRepro:
      return RunRepro(cmd.repro);
    case ipch::cli::Command::kReport:
      return RunReport(cmd.report);
    case ipch::cli::Command::kBench: {
      std::string command = "ipch";
      for (int i = 1; i < argc; ++i) command += std::string(" ") + argv[i];
      return RunBenchCmd(cmd.bench, command);
    }
    case ipch::cli::Command::kHelp:
      std::cout << cmd.text;
      return 0;
    case ipch::cli::Command::kBadInput:
      break;
  }
  std::fprintf(stderr, "%s\n", cmd.text.c_str());
  return kBadInput;
}
