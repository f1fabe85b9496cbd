#include "case_process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>

#include "case_record.h"
#include "ipch/raw_io.h"
#include "ipch/sweep.h"

namespace ipch::testing {
namespace {

// The child's descriptors are kept at or above this before fork, so that the dup2 calls onto
// 0, 1, 2 and kResultFd after fork can never overwrite one another.
constexpr int kFirstHighFd = 10;
// A case that prints without end is cut in the middle: the start and the last lines (where a
// crash shows) are what a reader needs.
constexpr size_t kOutputCap = 8 << 20, kKeepHead = 1 << 20, kKeepTail = 3 << 20;

Result<UniqueFd> MoveHigh(UniqueFd fd) {
  const int high = ::fcntl(fd.get(), F_DUPFD_CLOEXEC, kFirstHighFd);
  if (high < 0) return ErrnoError("fcntl F_DUPFD_CLOEXEC");
  return UniqueFd(high);
}

struct Pipe {
  UniqueFd read, write;
};

// Raw pipe2: an IPCH_FAULT_PLAN in the environment arms the supervisor's process too.
Result<Pipe> MakePipe() {
  int fds[2];
  if (::syscall(SYS_pipe2, fds, O_CLOEXEC) != 0) return ErrnoError("pipe2");
  Pipe p{UniqueFd(fds[0]), UniqueFd(fds[1])};
  // The poll loop takes what is there and never waits in read.
  if (::fcntl(p.read.get(), F_SETFL, O_NONBLOCK) != 0) return ErrnoError("fcntl O_NONBLOCK");
  auto w = MoveHigh(std::move(p.write));
  if (!w.ok()) return std::move(w).error();
  p.write = std::move(*w);
  return p;
}

Result<UniqueFd> OpenDevNull() {
  const int fd = static_cast<int>(::syscall(SYS_openat, AT_FDCWD, "/dev/null", O_RDONLY | O_CLOEXEC));
  if (fd < 0) return ErrnoError("open /dev/null");
  return MoveHigh(UniqueFd(fd));
}

std::vector<char*> CStrings(std::vector<std::string>& v) {
  std::vector<char*> out;
  for (auto& s : v) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

struct ChildFds {
  int stdin_fd, output_fd, result_fd;  // result_fd -1: none
  bool capture_stderr;
};

// Between fork and exec: async-signal-safe calls only.
[[noreturn]] void ExecChild(const ChildFds& fds, pid_t supervisor, char** argv, char** envp) {
  ::setpgid(0, 0);  // its own group: a hang kill takes the case's peers too
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != supervisor) ::_exit(127);  // the supervisor died before prctl
  sigset_t none;
  ::sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  ::dup2(fds.stdin_fd, 0);
  ::dup2(fds.output_fd, 1);
  if (fds.capture_stderr) ::dup2(fds.output_fd, 2);
  if (fds.result_fd >= 0) ::dup2(fds.result_fd, kResultFd);
  ::execve("/proc/self/exe", argv, envp);
  static const char kMsg[] = "ipch isolate: execve /proc/self/exe failed\n";
  (void)!::write(2, kMsg, sizeof kMsg - 1);
  ::_exit(127);
}

void AppendCapped(std::string& buf, const char* data, size_t n) {
  buf.append(data, n);
  if (buf.size() <= kOutputCap) return;
  const size_t cut = buf.size() - kKeepHead - kKeepTail;
  buf.replace(kKeepHead, cut, "\n[... " + std::to_string(cut) + " bytes of output left out ...]\n");
}

}  // namespace

Result<CaseProcess> CaseProcess::Start(const SpawnSpec& spec) {
  auto out = MakePipe();
  if (!out.ok()) return std::move(out).error();
  Result<Pipe> res = spec.result_pipe ? MakePipe() : Result<Pipe>(Pipe{});
  if (!res.ok()) return std::move(res).error();
  auto devnull = OpenDevNull();
  if (!devnull.ok()) return std::move(devnull).error();
  std::vector<std::string> argv = spec.argv, env = spec.env;
  std::vector<char*> cargv = CStrings(argv), cenv = CStrings(env);
  const ChildFds fds{devnull->get(), out->write.get(), res->write.get(), spec.capture_stderr};
  const pid_t supervisor = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) return ErrnoError("fork");
  if (pid == 0) ExecChild(fds, supervisor, cargv.data(), cenv.data());
  // Also here: a kill of the group right after Start must not race the child's own setpgid.
  ::setpgid(pid, pid);
  CaseProcess p;
  p.pid_ = pid;
  p.pidfd_ = UniqueFd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
  if (!p.pidfd_) return ErrnoError("pidfd_open");  // p's destructor kills and reaps
  p.output_ = std::move(out->read);
  p.results_ = std::move(res->read);
  return p;
}

CaseProcess& CaseProcess::operator=(CaseProcess&& o) noexcept {
  if (this != &o) {
    if (pid_ > 0 && !reaped_) KillAndReap();
    pid_ = std::exchange(o.pid_, -1);
    reaped_ = std::exchange(o.reaped_, false);
    status_ = o.status_;
    pidfd_ = std::move(o.pidfd_);
    output_ = std::move(o.output_);
    results_ = std::move(o.results_);
    output_text_ = std::move(o.output_text_);
    result_text_ = std::move(o.result_text_);
  }
  return *this;
}

CaseProcess::~CaseProcess() {
  if (pid_ > 0 && !reaped_) KillAndReap();
}

void CaseProcess::ReadAvailable(UniqueFd& fd, std::string& into) {
  char buf[65536];
  while (fd) {
    const ssize_t r = RawRead(fd.get(), buf, sizeof buf);
    if (r > 0) {
      AppendCapped(into, buf, static_cast<size_t>(r));
      continue;
    }
    if (r < 0 && errno == EAGAIN) return;
    fd.reset();  // EOF, or an error that more reads will not fix
  }
}

// The group's id is the child's pid, which cannot be reused while the child is unreaped: kill
// the group before reaping, never after.
void CaseProcess::KillGroup(bool record_tree) {
  // A case that exited 0 ran its own audit; reading /proc for every such case would cost ~3 ms.
  if (record_tree) tree_ = sweep::ProcessGroup(pid_);
  tree_.insert(pid_);
  ::kill(-pid_, SIGKILL);
  ::kill(pid_, SIGKILL);  // in case the child never became its group's leader
}

void CaseProcess::Reap() {
  int status = 0;
  if (RetryEintr([&] { return ::waitpid(pid_, &status, 0); }) == pid_) status_ = status;
  reaped_ = true;
  pidfd_.reset();
}

bool CaseProcess::TryReap() {
  if (reaped_) return true;
  siginfo_t info{};
  // WNOWAIT: look without reaping, so the pid (and group id) stays ours while we kill the group.
  if (::waitid(P_PID, static_cast<id_t>(pid_), &info, WEXITED | WNOHANG | WNOWAIT) != 0 || info.si_pid != pid_) {
    return false;
  }
  KillGroup(!(info.si_code == CLD_EXITED && info.si_status == 0));  // peers the case left behind
  Reap();
  return true;
}

void CaseProcess::KillAndReap() {
  if (reaped_ || pid_ <= 0) return;
  KillGroup();
  Reap();
}

void CaseProcess::StopAndReap(int sig, Deadline until) {
  if (reaped_ || pid_ <= 0) return;
  ::kill(pid_, sig);
  while (!TryReap() && !until.expired()) {
    pollfd fds[2] = {{pidfd_.get(), POLLIN, 0}, {output_.get(), POLLIN, 0}};
    RawPoll(fds, 2, until);
    ReadOutput();
  }
  KillAndReap();
}

void CaseProcess::Drain() {
  ReadOutput();
  ReadResults();
  output_.reset();
  results_.reset();
}

}  // namespace ipch::testing
