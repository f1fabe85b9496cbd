#include "ipch/child_process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>

#include "ipch/raw_io.h"

namespace ipch {
namespace {

// Raw syscalls (ipch/raw_io.h): the harness's own coordination must never see injected faults.
// The control channel is a socket: sendto with MSG_NOSIGNAL, so a dead peer is EPIPE, not a signal.
ssize_t RawWrite(int fd, const void* buf, size_t n) {
  for (;;) {
    long r = ::syscall(SYS_sendto, fd, buf, n, MSG_NOSIGNAL, nullptr, 0);
    if (r >= 0 || errno != EINTR) return r;
  }
}

std::mutex g_spawned_mu;
std::vector<pid_t>& Spawned() {
  static auto* v = new std::vector<pid_t>();  // never destroyed: read from listeners at exit
  return *v;
}

// Forking copies every lock another thread holds at that instant into the child, where no one
// will release it. glibc's malloc has fork handlers; ASan's allocator (libsanitizer 12) has
// none, and a child that inherited one of its locks hangs at its first allocation (seen: a peer
// forked while the fifo listener's thread was starting). So Spawn first waits, bounded, until
// no other thread of this process is running: one asleep (poll, futex, read) holds none.
// Calls `f(tid)` for every thread of this process but the caller, read from /proc/self/task by
// raw syscalls (a fault plan armed in a test cannot change what the harness sees). False when the
// directory cannot be read.
template <class F>
bool ForEachOtherThread(F f) {
  struct Dirent64 {
    uint64_t d_ino;
    int64_t d_off;
    unsigned short d_reclen;
    unsigned char d_type;
    char d_name[1];
  };
  const long self = ::syscall(SYS_gettid);
  const int dir =
      static_cast<int>(::syscall(SYS_openat, AT_FDCWD, "/proc/self/task", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dir < 0) return false;
  alignas(8) char buf[4096];
  for (;;) {
    const long n = ::syscall(SYS_getdents64, dir, buf, sizeof buf);
    if (n <= 0) break;
    for (long off = 0; off < n;) {
      const auto* e = reinterpret_cast<const Dirent64*>(buf + off);
      off += e->d_reclen;
      if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
      const long tid = std::strtol(e->d_name, nullptr, 10);
      if (tid != self) f(tid);
    }
  }
  ::syscall(SYS_close, dir);
  return true;
}

// Forking copies every lock another thread holds at that instant into the child, where no one
// will release it. glibc's malloc has fork handlers; ASan's allocator (libsanitizer 12) has
// none, and a child that inherited one of its locks hangs at its first allocation (seen: a peer
// forked while the fifo listener's thread was starting). So Spawn first waits, bounded, until
// no other thread of this process is running: one asleep (poll, futex, read) holds none.
bool OtherThreadsRunning() {
  bool running = false;
  ForEachOtherThread([&](long tid) {
    char path[64];
    std::snprintf(path, sizeof path, "/proc/self/task/%ld/stat", tid);
    const int fd = static_cast<int>(::syscall(SYS_openat, AT_FDCWD, path, O_RDONLY | O_CLOEXEC));
    if (fd < 0) return;  // it ended meanwhile
    char stat[512];
    const ssize_t r = RawRead(fd, stat, sizeof stat - 1);
    ::syscall(SYS_close, fd);
    if (r <= 0) return;
    stat[r] = '\0';
    const char* p = std::strrchr(stat, ')');  // "tid (comm) S ...": comm may hold anything
    if (p && p[1] == ' ' && p[2] == 'R') running = true;
  });
  return running;
}

void WaitForOtherThreadsToSleep() {
  const auto until = Clock::now() + Scaled(std::chrono::milliseconds(200));
  while (OtherThreadsRunning() && Clock::now() < until) {
    const timespec pause{0, 50 * 1000};
    ::syscall(SYS_nanosleep, &pause, nullptr);
  }
}

}  // namespace

std::vector<pid_t> SpawnedPids() {
  std::lock_guard lk(g_spawned_mu);
  return Spawned();
}

Status ControlChannel::SendString(const std::string& s) {
  uint32_t n = static_cast<uint32_t>(s.size());
  std::string frame(reinterpret_cast<const char*>(&n), sizeof n);
  frame += s;
  size_t off = 0;
  while (off < frame.size()) {
    ssize_t w = RawWrite(fd_.get(), frame.data() + off, frame.size() - off);
    if (w < 0) {
      return errno == EPIPE || errno == ECONNRESET ? MakeError(Errc::PeerClosed, "control channel")
                                                   : ErrnoError("control channel write");
    }
    off += static_cast<size_t>(w);
  }
  return Ok();
}

Status ControlChannel::ReadExact(void* buf, size_t n, Deadline d) {
  auto* p = static_cast<char*>(buf);
  while (n > 0) {
    pollfd pfd{fd_.get(), POLLIN, 0};
    int pr = RawPoll(&pfd, 1, d);
    if (pr < 0) return ErrnoError("control channel poll");
    if (pr == 0) return MakeError(Errc::Timeout, "control channel");
    ssize_t r = RawRead(fd_.get(), p, n);
    if (r < 0) {
      if (errno == EAGAIN) continue;
      return errno == ECONNRESET ? MakeError(Errc::PeerClosed, "control channel") : ErrnoError("control channel read");
    }
    if (r == 0) return MakeError(Errc::PeerClosed, "control channel");
    p += r;
    n -= static_cast<size_t>(r);
  }
  return Ok();
}

Result<std::string> ControlChannel::ReceiveString(Deadline d, std::size_t max) {
  uint32_t n = 0;
  IPCH_RETURN_IF_ERROR(ReadExact(&n, sizeof n, d));
  if (n > max) return MakeError(Errc::Corrupt, "control channel frame too large");
  std::string s(n, '\0');
  IPCH_RETURN_IF_ERROR(ReadExact(s.data(), n, d));
  return s;
}

Status ControlChannel::WaitSignal(Deadline d, char what) {
  auto s = ReceiveString(d);
  if (!s.ok()) return std::move(s).error();
  if (*s != std::string(1, what)) {
    return MakeError(Errc::Corrupt,
                     "control channel: expected signal '" + std::string(1, what) + "', got '" + *s + "'");
  }
  return Ok();
}

std::string ExitInfo::ToString() const {
  if (exited) return "exited with code " + std::to_string(code);
  return std::string("killed by signal ") + std::to_string(signal) + " (" + strsignal(signal) + ")";
}

namespace {

// The control channel (a socketpair) and the child's error pipe, made with raw syscalls: a fault
// plan armed around a peer's start must not fail the harness's own plumbing.
struct Channels {
  UniqueFd parent_end, child_end, err_read, err_write;
};
Result<Channels> OpenChannels() {
  int sv[2];
  if (::syscall(SYS_socketpair, AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
    return ErrnoError("socketpair for child control");
  }
  Channels c{UniqueFd(sv[0]), UniqueFd(sv[1]), {}, {}};
  int ep[2];
  if (::syscall(SYS_pipe2, ep, O_CLOEXEC) != 0) return ErrnoError("pipe2 for child errors");
  c.err_read.reset(ep[0]);
  c.err_write.reset(ep[1]);
  return c;
}

}  // namespace

Result<ChildProcess> ChildProcess::Spawn(Body body) {
  auto channels = OpenChannels();
  if (!channels.ok()) return std::move(channels).error();
  auto& [parent_end, child_end, err_read, err_write] = *channels;

  WaitForOtherThreadsToSleep();
  pid_t pid = ::fork();
  if (pid < 0) return ErrnoError("fork");
  if (pid == 0) {
    // Child: die with the parent, so a crashed test binary cannot leave peers running.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    parent_end.reset();
    err_read.reset();
    int code = 0;
    {
      ControlChannel ch(std::move(child_end));
      Status st = body(ch);
      if (!st.ok()) {
        std::string msg = st.error().ToString();
        (void)!::syscall(SYS_write, err_write.get(), msg.data(), msg.size());
        code = 1;
      }
    }
    ::_exit(code);
  }
  return Adopt(pid, std::move(parent_end), std::move(err_read));
}

Result<ChildProcess> ChildProcess::Adopt(pid_t pid, UniqueFd control, UniqueFd errors) {
  {
    std::lock_guard lk(g_spawned_mu);
    Spawned().push_back(pid);
  }
  ChildProcess c;
  c.pid_ = pid;
  c.pidfd_ = UniqueFd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
  c.control_ = ControlChannel(std::move(control));
  c.error_fd_ = std::move(errors);
  return c;
}

Result<ChildProcess> ChildProcess::SpawnSelf(const std::vector<std::string>& args,
                                             const std::vector<std::string>& env) {
  auto channels = OpenChannels();
  if (!channels.ok()) return std::move(channels).error();
  auto& [parent_end, child_end, err_read, err_write] = *channels;

  // Everything the child needs is built before the fork: between fork and exec a copy of a
  // threaded process may only make async-signal-safe calls (no allocation, no locks).
  std::vector<std::string> argv_text{"ipch-peer"};
  argv_text.insert(argv_text.end(), args.begin(), args.end());
  argv_text.push_back("--ipch_peer_fds=" + std::to_string(child_end.get()) + "," + std::to_string(err_write.get()));
  std::vector<char*> argv;
  for (auto& a : argv_text) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<std::string> env_text;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string_view entry(*e);
    const bool replaced = std::any_of(env.begin(), env.end(), [&](const std::string& mine) {
      const auto eq = mine.find('=');
      return eq != std::string::npos && entry.substr(0, eq + 1) == std::string_view(mine).substr(0, eq + 1);
    });
    if (!replaced) env_text.emplace_back(entry);
  }
  env_text.insert(env_text.end(), env.begin(), env.end());
  std::vector<char*> envp;
  for (auto& e : env_text) envp.push_back(e.data());
  envp.push_back(nullptr);
  const std::string exec_failed = "exec of /proc/self/exe failed";

  pid_t pid = ::fork();
  if (pid < 0) return ErrnoError("fork");
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    ::syscall(SYS_fcntl, child_end.get(), F_SETFD, 0);  // these two survive the exec; every
    ::syscall(SYS_fcntl, err_write.get(), F_SETFD, 0);  // other descriptor of ours is close-on-exec
    ::syscall(SYS_execve, "/proc/self/exe", argv.data(), envp.data());
    (void)!::syscall(SYS_write, err_write.get(), exec_failed.data(), exec_failed.size());
    ::_exit(127);
  }
  return Adopt(pid, std::move(parent_end), std::move(err_read));
}

bool ExecPeerFds(std::string_view arg, int* control, int* errors) {
  constexpr std::string_view kFlag = "--ipch_peer_fds=";
  if (arg.substr(0, kFlag.size()) != kFlag) return false;
  const std::string value(arg.substr(kFlag.size()));
  return std::sscanf(value.c_str(), "%d,%d", control, errors) == 2 && *control >= 0 && *errors >= 0;
}

int ThreadCount() {
  int others = 0;
  ForEachOtherThread([&](long) { ++others; });
  return 1 + others;
}

ChildProcess::ChildProcess(ChildProcess&& o) noexcept { *this = std::move(o); }

ChildProcess& ChildProcess::operator=(ChildProcess&& o) noexcept {
  if (this != &o) {
    if (pid_ > 0 && !reaped_) Kill();
    pid_ = std::exchange(o.pid_, -1);
    pidfd_ = std::move(o.pidfd_);
    control_ = std::move(o.control_);
    error_fd_ = std::move(o.error_fd_);
    reaped_ = std::exchange(o.reaped_, false);
    exit_ = o.exit_;
    child_error_ = std::move(o.child_error_);
  }
  return *this;
}

ChildProcess::~ChildProcess() {
  if (pid_ > 0 && !reaped_) Kill();
}

void ChildProcess::Reap(int status) {
  reaped_ = true;
  if (WIFEXITED(status)) {
    exit_ = {true, WEXITSTATUS(status), 0};
  } else if (WIFSIGNALED(status)) {
    exit_ = {false, 0, WTERMSIG(status)};
  }
  if (error_fd_) {
    char buf[4096];
    ssize_t r;
    while ((r = RawRead(error_fd_.get(), buf, sizeof buf)) > 0) child_error_.append(buf, r);
    error_fd_.reset();
  }
  pidfd_.reset();
}

Result<ExitInfo> ChildProcess::Wait(Deadline d) {
  if (pid_ <= 0) return MakeError(Errc::InvalidArgument, "no child to wait for");
  if (reaped_) return exit_;
  if (pidfd_) {
    pollfd pfd{pidfd_.get(), POLLIN, 0};
    int pr = RawPoll(&pfd, 1, d);
    if (pr < 0) return ErrnoError("poll pidfd");
    if (pr == 0) return MakeError(Errc::Timeout, "child " + std::to_string(pid_) + " still running");
  }
  int status = 0;
  if (RetryEintr([&] { return ::waitpid(pid_, &status, 0); }) != pid_) {
    return ErrnoError("waitpid " + std::to_string(pid_));
  }
  Reap(status);
  return exit_;
}

ExitInfo ChildProcess::Kill() {
  if (pid_ <= 0) return exit_;
  if (reaped_) return exit_;
  ::kill(pid_, SIGKILL);  // pid cannot be reused before we reap it
  int status = 0;
  if (RetryEintr([&] { return ::waitpid(pid_, &status, 0); }) == pid_) Reap(status);
  return exit_;
}

Status ChildProcess::Stop() {
  if (reaped_ || ::kill(pid_, SIGSTOP) != 0) return ErrnoError("SIGSTOP child", reaped_ ? ESRCH : errno);
  return Ok();
}

Status ChildProcess::Continue() {
  if (reaped_ || ::kill(pid_, SIGCONT) != 0) return ErrnoError("SIGCONT child", reaped_ ? ESRCH : errno);
  return Ok();
}

std::string ChildProcess::Describe() const {
  std::string s = "child pid " + std::to_string(pid_);
  s += reaped_ ? ", " + exit_.ToString() : ", still running";
  if (!child_error_.empty()) s += ", reported: " + child_error_;
  return s;
}

Status WaitUntilSleeping(pid_t pid, Deadline d) {
  const std::string path = "/proc/" + std::to_string(pid) + "/stat";
  for (;;) {
    std::ifstream in(path);
    std::string line;
    if (!std::getline(in, line)) return MakeError(Errc::PeerClosed, "process " + std::to_string(pid) + " is gone");
    // State is the field after the parenthesised command name.
    auto rp = line.rfind(')');
    if (rp != std::string::npos && rp + 2 < line.size() && line[rp + 2] == 'S') return Ok();
    if (d.expired()) return MakeError(Errc::Timeout, "process " + std::to_string(pid) + " never blocked");
    std::this_thread::yield();
  }
}

}  // namespace ipch
