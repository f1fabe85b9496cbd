// Resource audit: snapshots of what a test could leak, and a readable diff.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace ipch::audit {

struct Snapshot {
  std::map<int, std::string> fds;         // fd -> readlink target
  std::set<std::string> shm;              // /dev/shm entries with our token prefix
  std::set<std::string> mqueues;          // /dev/mqueue entries with our token prefix
  std::set<std::string> sysv;             // "shm key=.. id=.." etc. created by us or our children
  std::map<pid_t, std::string> children;  // pid -> "comm (state)"
};

// How long the audit waits at the end of a test for the process to settle (descriptors that a
// library's background thread closes after close returned) before it calls what is left a leak:
// 200 ms, scaled (SlowdownFactor).
std::chrono::milliseconds SettleBound();
// What a snapshot looks at: everything, or all but child processes (listing them reads every
// process's /proc/<pid>/stat: the costly part, and needless for a test that starts none).
enum class Scope { kWithChildren, kWithoutChildren };
// `token_prefix` selects the named objects that belong to this process ("ipch-<pid>-").
Snapshot Take(const std::string& token_prefix, Scope scope = Scope::kWithChildren);
// The descriptors alone (Snapshot::fds): what a caller between two snapshots may have opened.
std::map<int, std::string> OpenDescriptors();
// One line per object present in `after` but not in `before`.
std::vector<std::string> Leaks(const Snapshot& before, const Snapshot& after);
// Files left in a directory tree (relative paths).
std::vector<std::string> LeftoverFiles(const std::filesystem::path& dir);
// What is left since `before` (Leaks, and the files left in `scratch_dir` unless it is empty)
// once the process has settled: snapshots are retaken, 1 ms apart, until nothing is left or
// SettleBound() has passed. A process that is already clean costs one snapshot.
struct Settled {
  Snapshot after;
  std::vector<std::string> leaks;
  std::chrono::milliseconds waited{0};  // until the last snapshot was taken; 0 when the first was clean
};
Settled AwaitSettled(const Snapshot& before, const std::string& token_prefix, const std::filesystem::path& scratch_dir,
                     Scope scope = Scope::kWithChildren);
// Removes what a test leaked (after it has been reported): kills and reaps child processes,
// unlinks POSIX shm and queues, removes SysV objects that are in `after` but not `before`.
void CleanUp(const Snapshot& before, const Snapshot& after);
// Removes objects named "ipch-<pid>-..." whose process is gone (a test binary that was killed or
// aborted by a sanitizer never ran its cleanup): scratch dirs in the temp directory, /dev/shm
// and /dev/mqueue entries, and unattached SysV segments of a dead creator that start with the
// "IPCH" magic and were last used at least `sysv_min_age` ago (a connector that sent and exited
// leaves a segment that another, live, test is about to accept). One line per removed object.
std::vector<std::string> SweepDeadOwners(std::chrono::seconds sysv_min_age = std::chrono::seconds(60));
// Mounts /dev/mqueue if absent and we are root, so POSIX queues can be audited. Returns the
// reason it is not auditable, or "" when it is.
std::string EnsureMqueueMounted();

}  // namespace ipch::audit
