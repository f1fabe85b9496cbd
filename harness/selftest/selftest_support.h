// What the self-tests share: running a battery binary with a gtest filter and reading its output.
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <string>
#include <vector>

namespace ipch::selftest {

struct RunResult {
  int exit_code = -1;
  std::string output;
};

// Runs `binary` (a battery over deliberately broken, mutated or library-like transports) on
// `filter`, with `flags` and the environment additions `env`.
inline RunResult RunBattery(const char* binary, const std::string& filter, const std::string& flags = "",
                            const std::string& env = "") {
  // A short bound for "expected to succeed" steps: the broken transports hang where a correct
  // one would not, and the self-test only needs them to fail, not to wait the full bound.
  std::string cmd =
      env + " IPCH_SETTLE_MS=3000 '" + binary + "' " + flags + " --gtest_color=no --gtest_filter='" + filter + "' 2>&1";
  RunResult r;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) return r;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) r.output.append(buf, n);
  int status = ::pclose(p);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return r;
}

// "Group.Case" names of `transport`, as a gtest filter in the battery instantiated as `prefix`.
inline std::string Filter(const std::string& transport, const std::vector<std::string>& cases,
                          const std::string& prefix = "Broken") {
  std::string f;
  for (const auto& c : cases) {
    auto dot = c.find('.');
    f += (f.empty() ? "" : ":") + prefix + "/" + c.substr(0, dot) + "/" + transport + c.substr(dot);
  }
  return f;
}

// Each of `cases` ("Group.Case") of `transport` is on a gtest line `tag` in `r`'s output.
inline void ExpectEachCase(const RunResult& r, const char* tag, const std::string& transport,
                           const std::vector<std::string>& cases, const std::string& prefix, const char* otherwise) {
  for (const auto& c : cases) {
    auto dot = c.find('.');
    const std::string line = std::string(tag) + " " + prefix + "/" + c.substr(0, dot) + "/" + transport + c.substr(dot);
    EXPECT_NE(r.output.find(line), std::string::npos) << otherwise << line << "\n" << r.output;
  }
}

}  // namespace ipch::selftest
