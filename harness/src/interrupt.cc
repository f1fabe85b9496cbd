#include "ipch/interrupt.h"

#include <pthread.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <set>
#include <string>
#include <vector>

#include "ipch/sweep.h"

extern char** environ;

namespace ipch {
namespace {

constexpr char kSignalFlag[] = "--ipch_interrupted=";
constexpr char kCaseFlag[] = "--ipch_interrupted_running=";
constexpr int kStopSignals[] = {SIGINT, SIGTERM, SIGHUP};

// The running case as the handler passes it on: written into the slot not in use, then
// published, so the handler never reads a half-written name.
struct CaseSlot {
  char arg[2048];
};
CaseSlot g_case[2];
std::atomic<int> g_live{-1};

// Room for the environment the handler passes on (it cannot allocate).
constexpr size_t kMaxEnv = 4096;
char* g_env[kMaxEnv];

bool StartsWith(const char* s, const char* prefix) { return std::strncmp(s, prefix, std::strlen(prefix)) == 0; }

void OnStopSignal(int sig) {
  char sig_arg[sizeof kSignalFlag + 8];
  std::memcpy(sig_arg, kSignalFlag, sizeof kSignalFlag - 1);
  char* p = sig_arg + sizeof kSignalFlag - 1;
  if (sig >= 10) *p++ = static_cast<char>('0' + sig / 10);
  *p++ = static_cast<char>('0' + sig % 10);
  *p = '\0';
  const int live = g_live.load(std::memory_order_acquire);
  char empty_case[] = "--ipch_interrupted_running=";
  char exe[] = "/proc/self/exe";
  char* argv[] = {exe, sig_arg, live >= 0 ? g_case[live].arg : empty_case, nullptr};
  // The cleaning must not be faulted by a plan the run was given.
  size_t n = 0;
  for (char** e = environ; e != nullptr && *e != nullptr && n + 1 < kMaxEnv; ++e) {
    if (!StartsWith(*e, "IPCH_FAULT_PLAN=")) g_env[n++] = *e;
  }
  g_env[n] = nullptr;
  ::syscall(SYS_execve, exe, argv, g_env);
  ::_exit(128 + sig);  // the exec failed: at least stop, as the signal would have
}

// A forked child (a peer) is not the run: a stop signal ends it as it would have before.
void DefaultInChild() {
  for (int sig : kStopSignals) {
    struct sigaction old {};
    if (::sigaction(sig, nullptr, &old) == 0 && old.sa_handler == OnStopSignal) ::signal(sig, SIG_DFL);
  }
}

}  // namespace

std::string SignalName(int sig) {
  const char* abbrev = ::sigabbrev_np(sig);
  return abbrev ? std::string("SIG") + abbrev : "signal " + std::to_string(sig);
}

void InstallInterruptCleanup() {
  struct sigaction sa {};
  sa.sa_handler = OnStopSignal;
  ::sigfillset(&sa.sa_mask);  // a second signal waits for the exec, which then resets it
  for (int sig : kStopSignals) {
    struct sigaction old {};
    if (::sigaction(sig, nullptr, &old) == 0 && old.sa_handler == SIG_DFL) ::sigaction(sig, &sa, nullptr);
  }
  static const bool registered = ::pthread_atfork(nullptr, nullptr, DefaultInChild) == 0;
  (void)registered;
}

void SetRunning(const std::string& full_name) {
  if (full_name.empty()) {
    g_live.store(-1, std::memory_order_release);
    return;
  }
  const int next = g_live.load(std::memory_order_relaxed) == 0 ? 1 : 0;
  std::snprintf(g_case[next].arg, sizeof g_case[next].arg, "%s%s", kCaseFlag, full_name.c_str());
  g_live.store(next, std::memory_order_release);
}

std::optional<int> RunInterruptCleanupIfRequested(int argc, char** argv,
                                                  const std::function<void(const std::string&)>& after_report) {
  if (argc < 2 || !StartsWith(argv[1], kSignalFlag)) return std::nullopt;
  const int sig = std::atoi(argv[1] + sizeof kSignalFlag - 1);
  const std::string running = argc >= 3 && StartsWith(argv[2], kCaseFlag) ? argv[2] + sizeof kCaseFlag - 1 : "";
  // Cleaning takes milliseconds: another stop signal meanwhile would only leave things behind.
  for (int s : kStopSignals) ::signal(s, SIG_IGN);
  sigset_t all;
  ::sigfillset(&all);
  ::sigprocmask(SIG_UNBLOCK, &all, nullptr);  // the handler's mask survived the exec

  const pid_t self = ::getpid();
  std::set<pid_t> tree = sweep::Descendants(self);
  for (pid_t p : tree) ::kill(p, SIGKILL);
  for (pid_t p : tree) {
    int status = 0;
    while (::waitpid(p, &status, 0) < 0 && errno == EINTR) {
    }
  }
  tree.insert(self);
  std::vector<std::string> removed, failed;
  for (const auto& f : sweep::OwnedBy(self, tree)) {
    if (auto st = sweep::Remove(f); st.ok()) {
      removed.push_back(f.kind + " " + f.name);
    } else {
      failed.push_back(st.error().ToString());
    }
  }

  std::string text = "ipch: interrupted by " + SignalName(sig) +
                     (running.empty() ? std::string() : " while running " + running) + ": stopped " +
                     std::to_string(tree.size() - 1) + " process(es), removed " + std::to_string(removed.size()) +
                     " object(s)" + (removed.empty() ? "" : ":");
  for (const auto& r : removed) text += "\n  " + r;
  for (const auto& f : failed) text += "\n  NOT removed: " + f;
  std::fprintf(stderr, "%s\n", text.c_str());
  std::fflush(stderr);
  if (!running.empty() && after_report) after_report(running);
  std::fflush(stdout);
  return 128 + sig;
}

}  // namespace ipch
