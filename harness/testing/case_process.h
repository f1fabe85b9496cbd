// One child of the isolating supervisor: this binary exec'd again in its own process group,
// stdout (and stderr) into a pipe, optionally a result pipe on descriptor kResultFd, and a
// pidfd. It never blocks: the supervisor's poll loop waits on its descriptors.
#pragma once

#include <sys/types.h>

#include <set>
#include <string>
#include <utility>
#include <vector>

#include "ipch/deadline.h"
#include "ipch/result.h"
#include "ipch/unique_fd.h"

namespace ipch::testing {

struct SpawnSpec {
  std::vector<std::string> argv;  // argv[0] is passed as is; the program is /proc/self/exe
  std::vector<std::string> env;   // the complete environment, "K=V"
  bool capture_stderr = true;     // false: stderr stays the supervisor's
  bool result_pipe = false;       // a pipe on kResultFd for the child's records
};

class CaseProcess {
 public:
  static Result<CaseProcess> Start(const SpawnSpec& spec);

  CaseProcess() = default;
  CaseProcess(CaseProcess&& o) noexcept { *this = std::move(o); }
  CaseProcess& operator=(CaseProcess&& o) noexcept;
  ~CaseProcess();  // kills the group and reaps, if still running

  // Descriptors to poll; -1 once closed (EOF) or absent.
  int output_fd() const { return output_.get(); }
  int result_fd() const { return results_.get(); }
  int pid_fd() const { return pidfd_.get(); }

  // Append what is readable now; close the descriptor at EOF.
  void ReadOutput() { ReadAvailable(output_, output_text_); }
  void ReadResults() { ReadAvailable(results_, result_text_); }
  // If the child has exited (pidfd readable): kills what is left of its process group (its
  // peers), then reaps it. True once reaped.
  bool TryReap();
  // SIGKILL to the whole process group (the case's peers too), then reap the child.
  void KillAndReap();
  // `sig` to the child alone, so that it stops its peers and cleans up after itself
  // (ipch/interrupt.h), reading its output meanwhile; what is left at `until` is killed as by
  // KillAndReap. The child is reaped either way.
  void StopAndReap(int sig, Deadline until);
  // After the child is reaped: take what the pipes still hold. Descendants that left the
  // process group may keep them open; they are not waited for.
  void Drain();

  bool reaped() const { return reaped_; }
  // The case's process and the peers in its group, as they were when its group was killed
  // (what a SysV object's creator or last user may be).
  const std::set<pid_t>& tree() const { return tree_; }
  int wait_status() const { return status_; }
  pid_t pid() const { return pid_; }
  const std::string& output() const { return output_text_; }
  std::string& result_text() { return result_text_; }

 private:
  static void ReadAvailable(UniqueFd& fd, std::string& into);
  void KillGroup(bool record_tree = true);
  void Reap();
  pid_t pid_ = -1;
  bool reaped_ = false;
  int status_ = 0;
  std::set<pid_t> tree_;
  UniqueFd pidfd_, output_, results_;
  std::string output_text_, result_text_;
};

}  // namespace ipch::testing
