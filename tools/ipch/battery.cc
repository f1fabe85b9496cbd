#include "battery.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>

#include "invocation.h"
#include "verdicts.h"

extern char** environ;

namespace ipch::tool {
namespace {

std::vector<char*> CStrings(std::vector<std::string>& v) {
  std::vector<char*> out;
  for (auto& s : v) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

std::vector<std::string> Environment(const std::vector<std::string>& extra) {
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string kv = *e;
    const std::string key = kv.substr(0, kv.find('='));
    const bool replaced = std::any_of(
        extra.begin(), extra.end(), [&](const std::string& x) { return x.compare(0, key.size() + 1, key + "=") == 0; });
    if (!replaced) env.push_back(kv);
  }
  env.insert(env.end(), extra.begin(), extra.end());
  return env;
}

struct Captured {
  int status = -1;
  std::string out, err;
};

// Runs argv to its end and collects its stdout and stderr (a listing: seconds at most).
Result<Captured> Capture(std::vector<std::string> argv) {
  int out[2], err[2];
  if (::pipe2(out, O_CLOEXEC) != 0) return ErrnoError("pipe");
  if (::pipe2(err, O_CLOEXEC) != 0) {
    const int e = errno;
    ::close(out[0]);
    ::close(out[1]);
    return ErrnoError("pipe", e);
  }
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, out[1], 1);
  posix_spawn_file_actions_adddup2(&fa, err[1], 2);
  auto env = Environment({"IPCH_ISOLATE=0"});
  auto cargv = CStrings(argv);
  auto cenv = CStrings(env);
  pid_t pid = -1;
  const int rc = ::posix_spawn(&pid, cargv[0], &fa, nullptr, cargv.data(), cenv.data());
  posix_spawn_file_actions_destroy(&fa);
  ::close(out[1]);
  ::close(err[1]);
  Captured c;
  if (rc == 0) {
    pollfd fds[] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}};
    int open = 2;
    while (open > 0) {
      if (::poll(fds, 2, -1) < 0) {
        if (errno == EINTR) continue;
        break;
      }
      for (int i = 0; i < 2; ++i) {
        if (fds[i].fd < 0 || fds[i].revents == 0) continue;
        char buf[65536];
        const ssize_t n = ::read(fds[i].fd, buf, sizeof buf);
        if (n > 0) {
          (i == 0 ? c.out : c.err).append(buf, static_cast<size_t>(n));
        } else if (n == 0 || errno != EINTR) {
          fds[i].fd = -1;
          --open;
        }
      }
    }
    while (::waitpid(pid, &c.status, 0) < 0 && errno == EINTR) {
    }
  }
  ::close(out[0]);
  ::close(err[0]);
  if (rc != 0) return ErrnoError("cannot start " + argv[0], rc);
  return c;
}

std::string Tail(const std::string& text) {
  std::string t = text.size() > 2000 ? "..." + text.substr(text.size() - 2000) : text;
  while (!t.empty() && t.back() == '\n') t.pop_back();
  return t;
}

// ---- Passing stop signals on to the child.

volatile sig_atomic_t g_child = 0;

void PassOn(int sig, siginfo_t* info, void*) {
  const int saved = errno;  // the interrupted code may be about to read it
  // From the terminal (si_pid 0) the child's process group got it too.
  if (g_child > 0 && info != nullptr && info->si_pid != 0) ::kill(static_cast<pid_t>(g_child), sig);
  errno = saved;
}

}  // namespace

std::string ReferenceBattery() {
#ifdef IPCH_REFERENCE_BATTERY
  return IPCH_REFERENCE_BATTERY;
#else
  return "";
#endif
}

Result<Catalog> LoadCatalog(const std::string& binary, bool describe) {
  struct stat st {};
  if (::stat(binary.c_str(), &st) != 0) return ErrnoError("the battery " + binary);
  if (!S_ISREG(st.st_mode) || (st.st_mode & 0111) == 0 || ::access(binary.c_str(), X_OK) != 0) {
    return MakeError(Errc::InvalidArgument, "the battery " + binary + " is not an executable file");
  }
  auto listed = Capture({binary, "--gtest_list_tests"});
  if (!listed.ok()) return std::move(listed).error();
  if (!WIFEXITED(listed->status) || WEXITSTATUS(listed->status) != 0) {
    return MakeError(Errc::InvalidArgument,
                     binary + " --gtest_list_tests failed (is it a GoogleTest program?):\n" + Tail(listed->err));
  }
  Catalog cat;
  cat.binary = binary;
  for (const auto& c : testing::ParseListing(listed->out)) {
    if (testing::IsDisabled(c)) continue;
    ++cat.total;
    const auto parts = testing::SplitSuite(c.suite);
    if (!parts) {
      ++cat.other_cases;
      continue;
    }
    const std::string &group = parts->group, &transport = parts->transport;
    if (std::find(cat.transports.begin(), cat.transports.end(), transport) == cat.transports.end())
      cat.transports.push_back(transport);
    if (std::find(cat.groups.begin(), cat.groups.end(), group) == cat.groups.end()) cat.groups.push_back(group);
    ++cat.cases[transport][group];
  }
  if (cat.total == 0) return MakeError(Errc::InvalidArgument, binary + " lists no test cases");
  if (!describe) return cat;
  auto described = Capture({binary, "--ipch_describe"});
  if (described.ok() && WIFEXITED(described->status) && WEXITSTATUS(described->status) == 0) {
    const auto doc = nlohmann::json::parse(described->out, nullptr, false);
    if (doc.is_object() && doc.value("format", "") == "ipch-describe-1" && doc.contains("adapters")) {
      for (const auto& a : doc["adapters"]) {
        cat.adapters.push_back({a.value("prefix", ""), a.value("name", ""), a.value("caps", std::vector<std::string>{}),
                                a.value("hooks", std::vector<std::string>{})});
      }
    }
  }
  return cat;
}

Result<int> RunShared(const std::vector<std::string>& argv_in, const std::vector<std::string>& env_extra) {
  std::vector<std::string> argv = argv_in;
  auto env = Environment(env_extra);
  auto cargv = CStrings(argv);
  auto cenv = CStrings(env);
  struct sigaction sa {
  }, old[3];
  sa.sa_sigaction = PassOn;
  sa.sa_flags = SA_SIGINFO | SA_RESTART;
  ::sigemptyset(&sa.sa_mask);
  const int sigs[3] = {SIGINT, SIGTERM, SIGHUP};
  // Installed before the child exists: a signal in between is not lost, it is passed on or
  // reaches the child's group; the child starts with default dispositions (posix_spawn resets
  // handled signals).
  for (int i = 0; i < 3; ++i) ::sigaction(sigs[i], &sa, &old[i]);
  pid_t pid = -1;
  const int rc = ::posix_spawn(&pid, cargv[0], nullptr, nullptr, cargv.data(), cenv.data());
  int status = -1;
  if (rc == 0) {
    g_child = pid;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    g_child = 0;
  }
  for (int i = 0; i < 3; ++i) ::sigaction(sigs[i], &old[i], nullptr);
  if (rc != 0) return ErrnoError("cannot start " + argv[0], rc);
  return status;
}

Result<int> RunLogged(const std::vector<std::string>& argv_in, const std::string& log) {
  std::vector<std::string> argv = argv_in;
  auto cargv = CStrings(argv);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  pid_t pid = -1;
  int status = -1;
  const int rc = ::posix_spawn(&pid, cargv[0], &fa, nullptr, cargv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) return ErrnoError("cannot start " + argv[0], rc);
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return status;
}

std::string FilterFor(const std::vector<std::string>& transports, const std::vector<std::string>& groups) {
  if (transports.empty() && groups.empty()) return "*";
  const std::vector<std::string> any{"*"};
  std::string filter;
  for (const auto& g : groups.empty() ? any : groups) {
    for (const auto& t : transports.empty() ? any : transports) {
      filter += (filter.empty() ? "" : ":") + std::string("*/") + g + "/" + t + ".*";
    }
  }
  return filter;
}

std::string CheckChoice(const std::string& what, const std::string& name, const std::vector<std::string>& valid) {
  if (std::find(valid.begin(), valid.end(), name) != valid.end()) return "";
  std::string list;
  for (const auto& v : valid) list += (list.empty() ? "" : ", ") + v;
  return "unknown " + what + " '" + name + "' (" + what + "s: " + list + ")";
}

}  // namespace ipch::tool
