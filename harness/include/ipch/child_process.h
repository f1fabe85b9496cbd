// Runs a function in a forked child, with a control channel to it, a bounded wait, and
// SIGKILL. A ChildProcess never leaves a zombie: the destructor kills and reaps.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "ipch/deadline.h"
#include "ipch/result.h"
#include "ipch/unique_fd.h"

namespace ipch {

// One end of the parent<->child control channel (a socketpair). It uses raw syscalls, so the
// fault engine never injects into the harness's own coordination.
class ControlChannel {
 public:
  ControlChannel() = default;
  explicit ControlChannel(UniqueFd fd) : fd_(std::move(fd)) {}
  Status SendString(const std::string& s);
  // A string of at most `max` bytes (a longer frame is Corrupt: the channel is out of step).
  Result<std::string> ReceiveString(Deadline d, std::size_t max = std::size_t{1} << 20);
  // Single-byte signals for "I reached point X".
  Status Signal(char what = '.') { return SendString(std::string(1, what)); }
  Status WaitSignal(Deadline d, char what = '.');
  int fd() const { return fd_.get(); }
  void Close() { fd_.reset(); }

 private:
  Status ReadExact(void* buf, size_t n, Deadline d);
  UniqueFd fd_;
};

struct ExitInfo {
  bool exited = false;  // true: normal exit with `code`; false: killed by `signal`
  int code = 0;
  int signal = 0;
  std::string ToString() const;
  bool Success() const { return exited && code == 0; }
};

class ChildProcess {
 public:
  // The body runs in the child; a non-ok Status is reported back to the parent (and the child
  // exits 1). The child never returns into the caller's code: it ends with _exit.
  using Body = std::function<Status(ControlChannel&)>;
  static Result<ChildProcess> Spawn(Body body);
  // Runs this same program again (/proc/self/exe, exec'd at once in the forked child) with
  // `args` and `env` ("NAME=value", added to this process's environment) instead of a function:
  // for libraries that cannot go on in a forked copy of a threaded process. The new program gets
  // its ends of the control channel and the error pipe as --ipch_peer_fds=<control>,<errors>
  // (appended to `args`; ExecPeerFds() reads them back). The rest is as for Spawn.
  static Result<ChildProcess> SpawnSelf(const std::vector<std::string>& args, const std::vector<std::string>& env);

  ChildProcess() = default;
  ChildProcess(ChildProcess&& o) noexcept;
  ChildProcess& operator=(ChildProcess&& o) noexcept;
  ~ChildProcess();

  pid_t pid() const { return pid_; }
  ControlChannel& control() { return control_; }
  // Waits for the child to end. Timeout leaves it running; the caller decides to Kill().
  Result<ExitInfo> Wait(Deadline d);
  // SIGKILL and reap; returns how it ended (killed, or already exited by itself).
  ExitInfo Kill();
  Status Stop();      // SIGSTOP
  Status Continue();  // SIGCONT
  // The error the child's body returned, if it sent one before exiting.
  const std::string& child_error() const { return child_error_; }
  // Summary for failure messages: pid, how it ended, its error.
  std::string Describe() const;

 private:
  static Result<ChildProcess> Adopt(pid_t pid, UniqueFd control, UniqueFd errors);
  void Reap(int status);
  pid_t pid_ = -1;
  UniqueFd pidfd_;
  ControlChannel control_;
  UniqueFd error_fd_;  // child's error report pipe
  bool reaped_ = false;
  ExitInfo exit_;
  std::string child_error_;
};

// In a program started by SpawnSelf: its control channel and error pipe descriptors, parsed
// from `arg` ("--ipch_peer_fds=C,E"); false if `arg` is not that flag.
bool ExecPeerFds(std::string_view arg, int* control, int* errors);

// How many threads this process has now (1 when only the calling one).
int ThreadCount();

// Every pid this process has spawned through ChildProcess (the audit attributes objects by it).
std::vector<pid_t> SpawnedPids();

// Waits until `pid` is in interruptible sleep (blocked in a syscall), or the deadline passes.
// Used to kill a peer while it is blocked mid-operation.
Status WaitUntilSleeping(pid_t pid, Deadline d);

}  // namespace ipch
