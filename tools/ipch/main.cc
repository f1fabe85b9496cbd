// ipch: the command-line tool. Verbs: sweep (objects left by dead processes).
#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli.h"
#include "ipch/sweep.h"

namespace {

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
  const ipch::cli::Command cmd = ipch::cli::Parse(std::vector<std::string>(argv + 1, argv + argc));
  switch (cmd.verb) {
    case ipch::cli::Command::kSweep:
      return RunSweep(cmd.sweep);
    case ipch::cli::Command::kHelp:
      std::cout << cmd.text;
      return 0;
    case ipch::cli::Command::kBadInput:
      break;
  }
  std::fprintf(stderr, "%s\n", cmd.text.c_str());
  return ipch::cli::kBadInput;
}
