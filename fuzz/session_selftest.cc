// The session fuzzer's self-test: FuzzSession over deliberately broken transports
// (harness/selftest/broken.h), each planting one classic mistake in a correct stream transport.
// Usage: ipch_session_selftest [--caught REGEX] FLAW CORPUS_DIR_OR_FILE...
// Runs every input as the fuzz target would. With --caught, the inputs run in a child process,
// which must be stopped by the session fuzzer (SIGABRT) with a message about FLAW that matches
// REGEX; exit 0 when it was, 1 otherwise. The ctest cases (fuzz/CMakeLists.txt) require the
// committed seed corpus to catch each flaw with its own message, and the control to pass: checks
// that cannot fail would pass them all.
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <regex>
#include <string>
#include <vector>

#include "harness/selftest/broken.h"
#include "ipch/fuzz_session.h"

namespace {
using namespace ipch::selftest;
using Runner = int (*)(const uint8_t*, std::size_t);

struct Flaw {
  const char* name;
  Runner run;
};
constexpr Flaw kFlaws[] = {
    {"control", ipch::fuzzing::FuzzSession<NaiveAdapter<Bug::kNone, kControl>>},
    {"ignores_short_writes", ipch::fuzzing::FuzzSession<NaiveAdapter<Bug::kIgnoresShortWrites, kShortWrites>>},
    {"no_eintr_retry", ipch::fuzzing::FuzzSession<NaiveAdapter<Bug::kNoEintrRetry, kNoEintr>>},
    {"swallows_errors", ipch::fuzzing::FuzzSession<NaiveAdapter<Bug::kSwallowsErrors, kSwallows>>},
    {"eagain_is_fatal", ipch::fuzzing::FuzzSession<NaiveAdapter<Bug::kEagainIsFatal, kEagainFatal>>},
    {"corrupts_payload", ipch::fuzzing::FuzzSession<NaiveAdapter<Bug::kCorruptsPayload, kCorrupts>>},
    {"loses_wakeup", ipch::fuzzing::FuzzSession<NaiveAdapter<Bug::kLosesWakeup, kLosesWakeup>>},
    {"leaks_fd", ipch::fuzzing::FuzzSession<LeaksFdAdapter>},
};

int RunInputs(const Flaw& flaw, const std::vector<std::filesystem::path>& files) {
  for (const auto& f : files) {
    std::vector<uint8_t> bytes;
    {
      std::ifstream in(f, std::ios::binary);
      bytes.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    }
    std::fprintf(stderr, "input %s\n", f.filename().c_str());
    flaw.run(bytes.data(), bytes.size());
  }
  std::printf("%s: %zu inputs passed\n", flaw.name, files.size());
  return 0;
}

// Runs the inputs in a child and judges how it ended.
int ExpectCaught(const Flaw& flaw, const std::vector<std::filesystem::path>& files, const std::string& pattern) {
  int out[2];
  if (::pipe(out) != 0) return 1;
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(out[1], 2);
    ::close(out[0]);
    ::close(out[1]);
    _exit(RunInputs(flaw, files));
  }
  ::close(out[1]);
  std::string text;
  char buf[4096];
  for (ssize_t n; (n = ::read(out[0], buf, sizeof buf)) != 0;) {
    if (n > 0) text.append(buf, static_cast<std::size_t>(n));
    if (n < 0 && errno != EINTR) break;
  }
  ::close(out[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  const std::string head = std::string("[ipch session fuzzer] ") + flaw.name + ": ";
  const auto at = text.find(head);
  const bool aborted = WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT;
  const bool matched = at != std::string::npos && std::regex_search(text.substr(at + head.size()), std::regex(pattern));
  std::fprintf(stderr, "%s", text.c_str());
  if (aborted && matched) {
    std::printf("%s: caught, as it must be\n", flaw.name);
    return 0;
  }
  std::printf("%s: NOT caught as expected (%s; looked for /%s/ after \"%s\")\n", flaw.name,
              aborted ? "aborted with another message" : "the inputs ran to the end", pattern.c_str(), head.c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  std::string caught;
  if (args.size() >= 2 && args[0] == "--caught") {
    caught = args[1];
    args.erase(args.begin(), args.begin() + 2);
  }
  const Flaw* flaw = nullptr;
  for (const Flaw& f : kFlaws) {
    if (!args.empty() && args[0] == f.name) flaw = &f;
  }
  if (flaw == nullptr || args.size() < 2) {
    std::fprintf(stderr, "usage: %s [--caught REGEX] FLAW CORPUS_DIR_OR_FILE...\nflaws:", argv[0]);
    for (const Flaw& f : kFlaws) std::fprintf(stderr, " %s", f.name);
    std::fprintf(stderr, "\n");
    return 2;
  }
  std::vector<std::filesystem::path> files;
  for (std::size_t i = 1; i < args.size(); ++i) {
    if (std::filesystem::is_directory(args[i])) {
      for (const auto& e : std::filesystem::directory_iterator(args[i])) files.push_back(e.path());
    } else {
      files.emplace_back(args[i]);
    }
  }
  std::sort(files.begin(), files.end());
  return caught.empty() ? RunInputs(*flaw, files) : ExpectCaught(*flaw, files, caught);
}
