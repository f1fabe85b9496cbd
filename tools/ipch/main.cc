// ipch: the command-line tool. Verbs: sweep (objects left by dead processes).
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>

#include "ipch/sweep.h"

namespace {

constexpr int kBadInput = 2;

struct SweepArgs {
  std::string prefix = "ipch-";
  bool dry_run = false;
  bool json = false;
  bool no_sysv = false;
  long long min_age = 60;
};

int RunSweep(const SweepArgs& a) {
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
    nlohmann::json doc = {{"prefix", a.prefix},     {"dry_run", a.dry_run},      {"sysv", options.sysv},
                          {"uid", ::geteuid()},     {"found", found.size()},     {"removed", removed},
                          {"failed", failed},       {"objects", std::move(objects)}};
    std::cout << doc.dump(2) << "\n";
  } else {
    std::printf("%zu orphan(s) of uid %u with prefix '%s'%s; %s\n", found.size(), ::geteuid(), a.prefix.c_str(),
                options.sysv ? " and SysV segments" : "",
                a.dry_run ? "nothing removed (--dry-run)" : (std::to_string(removed) + " removed").c_str());
  }
  return failed > 0 ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"ipch: tools of the ipc-harness test harness"};
  app.require_subcommand(1);
  SweepArgs sweep;
  CLI::App* s = app.add_subcommand(
      "sweep",
      "Find and remove what dead processes of this uid left: the harness's scratch directories, /dev/shm and "
      "/dev/mqueue entries named ipch-<pid>-..., and SysV segments with the IPCH magic whose creator is gone. An "
      "owner is dead when its pid does not exist or was reused (a process with it started after the object was "
      "made). Objects of other uids are never touched, even as root.");
  s->add_option("--prefix", sweep.prefix, "only names that start with this (SysV segments, which have none, are then left out)")
      ->check([](const std::string& p) -> std::string {
        if (p.empty()) return "the prefix is empty";
        if (p.find('/') != std::string::npos) return "a prefix is the start of a name, without '/'";
        return "";
      });
  s->add_flag("--dry-run", sweep.dry_run, "list what would be removed; remove nothing");
  s->add_flag("--json", sweep.json, "print the result as one JSON document");
  s->add_flag("--no-sysv", sweep.no_sysv, "leave SysV segments out");
  s->add_option("--min-age", sweep.min_age,
                "seconds a SysV segment must have been idle (a connector that sent and exited leaves one a live "
                "listener is about to accept)")
      ->check(CLI::NonNegativeNumber);
  // CLI11 would call an unknown verb a missing one: name it.
  if (argc > 1 && argv[1][0] != '-' && std::string(argv[1]) != "sweep") {
    std::fprintf(stderr, "ipch: unknown verb '%s' (verbs: sweep)\nRun 'ipch --help' for the usage.\n", argv[1]);
    return kBadInput;
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    std::cout << app.help();
    return 0;
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "ipch: %s\nRun 'ipch --help' or 'ipch sweep --help' for the usage.\n", e.what());
    return kBadInput;
  }
  if (s->parsed()) return RunSweep(sweep);
  return kBadInput;
}
