// Objects left behind by dead processes: found, judged and removed.
//
// The harness names what it creates "ipch-<pid>-..." (scratch directories in the temp
// directory, /dev/shm and /dev/mqueue entries, and the socket files and FIFOs inside scratch
// directories); its SysV segments start with the "IPCH" magic and record their creator. An
// object is an orphan when its owner is dead: no such pid, or a pid that was reused (the
// process with that pid started after the object was made). Only objects of our own uid are
// ever listed or removed, even as root.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <ctime>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "ipch/result.h"

namespace ipch::sweep {

struct Found {
  std::string kind;  // "scratch dir", "posix shm", "posix mqueue", "sysv shm", "sysv msg"
  std::string name;  // a path, or "id=N key=0x..." for SysV objects
  pid_t owner = 0;   // the pid the object is attributed to
  std::string why;   // why the owner is judged dead (or, for OwnedBy, whose it is)
};

struct Options {
  // Named objects must start with this (and carry "ipch-<pid>-" to name their owner).
  std::string prefix = "ipch-";
  // SysV segments carry no name: they are considered only when true.
  bool sysv = true;
  // A SysV segment idle for less than this is left alone: a connector that sent and exited
  // leaves a segment a live listener is about to accept.
  std::chrono::seconds sysv_min_age{60};
};

// Whether `pid` still owns an object made at `made` (CLOCK_REALTIME): `dead` with the reason
// ("pid 123 does not exist", "pid 123 was reused: ...") or alive. A process that started
// within the clock's resolution of `made` is taken as the owner (never reclaim a live one).
struct Owner {
  bool dead = false;
  std::string why;
};
Owner JudgeOwner(pid_t pid, timespec made);

// The pid in "ipch-<pid>-..." (anywhere in `name`'s last path component), or 0.
pid_t OwnerInName(const std::string& name);

// Every orphan of our uid under `options`. Nothing is removed.
std::vector<Found> FindOrphans(const Options& options = {});

// Everything attributable to a live process and its descendants (`tree`, which includes the
// process itself): named objects carrying "ipch-<pid>-" for `pid`, SysV segments whose creator
// is in the tree, SysV queues whose last sender or receiver is. For a process that cleans up
// after itself (interrupted) before it exits.
std::vector<Found> OwnedBy(pid_t pid, const std::set<pid_t>& tree);

// Removes one object (recursively for a directory). Already gone is success.
Status Remove(const Found& found);

// The descendants of `root` (children, their children, ...), from /proc.
std::set<pid_t> Descendants(pid_t root);
// The processes of process group `pgid`, from /proc.
std::set<pid_t> ProcessGroup(pid_t pgid);

// The rows of /proc/sysvipc/<kind> ("shm", "msg", "sem"), each as column name -> value.
std::vector<std::map<std::string, std::string>> SysvTable(const char* kind);

// "posix shm /dev/shm/ipch-1-2 (owner pid 1 does not exist)".
std::string Describe(const Found& found);

}  // namespace ipch::sweep
