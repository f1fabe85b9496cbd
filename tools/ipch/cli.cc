#include "cli.h"

#include <CLI/CLI.hpp>

namespace ipch::cli {

namespace {
constexpr const char* kVerbs = "sweep";
}

Command Parse(const std::vector<std::string>& args) {
  Command cmd;
  CLI::App app{"ipch: tools of the ipc-harness test harness"};
  app.name("ipch");
  app.require_subcommand(1);
  CLI::App* s = app.add_subcommand(
      "sweep",
      "Find and remove what dead processes of this uid left: the harness's scratch directories, /dev/shm and "
      "/dev/mqueue entries named ipch-<pid>-..., and SysV segments with the IPCH magic whose creator is gone. An "
      "owner is dead when its pid does not exist or was reused (a process with it started after the object was "
      "made). Objects of other uids are never touched, even as root.");
  s->add_option("--prefix", cmd.sweep.prefix,
                "only names that start with this (SysV segments, which have none, are then left out)")
      ->check([](const std::string& p) -> std::string {
        if (p.empty()) return "the prefix is empty";
        if (p.find('/') != std::string::npos) return "a prefix is the start of a name, without '/'";
        return "";
      });
  s->add_flag("--dry-run", cmd.sweep.dry_run, "list what would be removed; remove nothing");
  s->add_flag("--json", cmd.sweep.json, "print the result as one JSON document");
  s->add_flag("--no-sysv", cmd.sweep.no_sysv, "leave SysV segments out");
  s->add_option("--min-age", cmd.sweep.min_age,
                "seconds a SysV segment must have been idle (a connector that sent and exited leaves one a live "
                "listener is about to accept)")
      ->check([](const std::string& v) -> std::string {
        if (v.empty() || v.find_first_not_of("0123456789") != std::string::npos)
          return "expected a whole number of seconds, 0 or more";
        return "";
      });
  // CLI11 would call an unknown verb a missing one: name it.
  if (!args.empty() && !args[0].empty() && args[0][0] != '-' && args[0] != "sweep") {
    cmd.text = "ipch: unknown verb '" + args[0] + "' (verbs: " + kVerbs + ")\nRun 'ipch --help' for the usage.";
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
    cmd.text = std::string("ipch: ") + e.what() + "\nRun 'ipch --help' or 'ipch sweep --help' for the usage.";
    return cmd;
  }
  if (!s->parsed()) {
    cmd.text = std::string("ipch: no verb given (verbs: ") + kVerbs + ")\nRun 'ipch --help' for the usage.";
    return cmd;
  }
  cmd.verb = Command::kSweep;
  return cmd;
}

}  // namespace ipch::cli
