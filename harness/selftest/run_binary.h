// Runs a test binary as a child and collects what it prints: for the tests that judge a
// binary's behaviour from outside (crash isolation, interruption, the ipch tool).
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <set>
#include <string>
#include <vector>

extern char** environ;

namespace ipch::selftest {

using Clock = std::chrono::steady_clock;

// A watchdog for a broken binary, never a wait for something that works.
constexpr auto kWatchdog = std::chrono::seconds(120);

struct Child {
  pid_t pid = -1;
  int out = -1;  // its stdout and stderr
};

struct Ended {
  int status = -1;
  std::string output;
};

// The test's environment without anything that would change how the binary runs.
inline std::vector<std::string> Environment(const std::vector<std::string>& extra) {
  static const std::set<std::string> kDropped = {"IPCH_ISOLATE",       "IPCH_ISOLATED_CHILD", "IPCH_RESULT_FD",
                                                 "GTEST_OUTPUT",       "GTEST_FILTER",        "GTEST_BRIEF",
                                                 "GTEST_TOTAL_SHARDS", "GTEST_SHARD_INDEX"};
  std::vector<std::string> env;
  for (char** e = environ; *e; ++e) {
    const std::string kv = *e;
    if (!kDropped.count(kv.substr(0, kv.find('=')))) env.push_back(kv);
  }
  env.insert(env.end(), extra.begin(), extra.end());
  return env;
}

inline std::vector<char*> CStrings(std::vector<std::string>& v) {
  std::vector<char*> out;
  for (auto& s : v) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

// `bin` with `args`, stdout and stderr into one pipe; in a process group of its own when
// `own_group` (so that a signal to the group reaches it and its peers, as a terminal's Ctrl-C does).
inline Child Start(const std::string& bin, const std::vector<std::string>& args,
                   const std::vector<std::string>& extra_env = {}, bool own_group = false) {
  Child c;
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) return c;
  posix_spawn_file_actions_t fa;
  ::posix_spawn_file_actions_init(&fa);
  ::posix_spawn_file_actions_adddup2(&fa, p[1], 1);
  ::posix_spawn_file_actions_adddup2(&fa, p[1], 2);
  std::vector<std::string> argv = {bin};
  argv.insert(argv.end(), args.begin(), args.end());
  std::vector<std::string> env = Environment(extra_env);
  auto cargv = CStrings(argv), cenv = CStrings(env);
  posix_spawnattr_t attr;
  ::posix_spawnattr_init(&attr);
  if (own_group) {
    ::posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
    ::posix_spawnattr_setpgroup(&attr, 0);
  }
  if (::posix_spawn(&c.pid, bin.c_str(), &fa, &attr, cargv.data(), cenv.data()) != 0) c.pid = -1;
  ::posix_spawnattr_destroy(&attr);
  ::posix_spawn_file_actions_destroy(&fa);
  ::close(p[1]);
  c.out = p[0];
  return c;
}

inline int MsLeft(Clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return left > 0 ? static_cast<int>(left) : 0;
}

// Appends what `fd` has until EOF or the deadline; true at EOF.
inline bool ReadToEof(int fd, std::string& into, Clock::time_point deadline) {
  char buf[4096];
  for (;;) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, MsLeft(deadline)) <= 0) return false;
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n == 0) return true;
    if (n < 0 && errno != EINTR && errno != EAGAIN) return true;
    if (n > 0) into.append(buf, static_cast<size_t>(n));
  }
}

// Reads the child's output to EOF and reaps it; a child past the watchdog is killed.
inline Ended Collect(Child c) {
  Ended e;
  if (c.pid < 0) return e;
  if (!ReadToEof(c.out, e.output, Clock::now() + kWatchdog)) {
    ::kill(c.pid, SIGKILL);
    e.output += "\n[isolation_test: watchdog expired, killed]\n";
  }
  ::close(c.out);
  ::waitpid(c.pid, &e.status, 0);
  return e;
}

inline Ended RunBinary(const std::string& bin, const std::vector<std::string>& args,
                       const std::vector<std::string>& extra_env = {}) {
  return Collect(Start(bin, args, extra_env));
}

inline bool Has(const std::string& text, const std::string& needle) { return text.find(needle) != std::string::npos; }

}  // namespace ipch::selftest
