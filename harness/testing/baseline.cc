#include "baseline.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "invocation.h"

namespace ipch::testing {

Result<Baseline> Baseline::Parse(const std::string& path, const std::string& text) {
  Baseline b;
  b.path_ = path;
  std::istringstream in(text);
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    const auto first = line.find_first_not_of(" \t\r");
    if (first == std::string::npos || line[first] == '#') continue;
    const auto gap = line.find_first_of(" \t", first);
    const auto reason_at = gap == std::string::npos ? gap : line.find_first_not_of(" \t", gap);
    const std::string where = path + ":" + std::to_string(n);
    if (reason_at == std::string::npos) {
      return MakeError(Errc::InvalidArgument,
                       where + ": '" + line.substr(first) + "' has no reason: write why the case fails after it");
    }
    std::string pattern = line.substr(first, gap - first), reason = line.substr(reason_at);
    while (!reason.empty() && (reason.back() == ' ' || reason.back() == '\t' || reason.back() == '\r'))
      reason.pop_back();
    const bool sometimes = pattern.front() == '~';
    if (sometimes) pattern.erase(0, 1);
    if (pattern.empty() || pattern.find(':') != std::string::npos || pattern.find('-') == 0) {
      return MakeError(Errc::InvalidArgument, where + ": '" + line.substr(first, gap - first) +
                                                  "' is one gtest name pattern (no ':' lists, "
                                                  "no '-' exclusions)");
    }
    b.entries_.push_back({pattern, reason, n, sometimes});
  }
  return b;
}

Result<Baseline> Baseline::Load(const std::string& path) {
  std::ifstream in(path);
  if (!in) return ErrnoError("reading the known-failures baseline " + path);
  std::stringstream text;
  text << in.rdbuf();
  return Parse(path, text.str());
}

const Baseline* Baseline::FromEnvironment() {
  static const Baseline* const loaded = []() -> const Baseline* {
    const char* path = std::getenv("IPCH_KNOWN");
    if (path == nullptr || *path == '\0') return nullptr;
    auto b = Load(path);
    if (!b.ok()) {
      const Error& e = b.error();  // a bad line says all in its context; a read error needs its errno
      std::fprintf(stderr, "ipch: --ipch_known: %s\n",
                   (e.Is(Errc::InvalidArgument) ? e.context : e.ToString()).c_str());
      std::exit(2);
    }
    return new Baseline(std::move(*b));  // for the program's lifetime
  }();
  return loaded;
}

const KnownFailure* Baseline::Find(const std::string& full_name) const {
  for (const auto& k : entries_) {
    if (MatchesPatterns(full_name, k.pattern)) return &k;
  }
  return nullptr;
}

std::vector<const KnownFailure*> Baseline::Unmatched(const std::vector<std::string>& names) const {
  std::vector<const KnownFailure*> stale;
  for (const auto& k : entries_) {
    bool any = false;
    for (const auto& n : names) any = any || MatchesPatterns(n, k.pattern);
    if (!any) stale.push_back(&k);
  }
  return stale;
}

Judged Judge(const Baseline* b, const std::string& full_name, Outcome raw) {
  const KnownFailure* k = b ? b->Find(full_name) : nullptr;
  if (k == nullptr) return {raw, ""};
  const std::string said = b->Where(*k) + " lists it as a known failure (" + k->reason + ")";
  switch (raw) {
    case Outcome::kFail:
      return {Outcome::kKnown, "[  KNOWN   ] " + full_name + ": " + k->reason + " (" + b->Where(*k) + ")\n"};
    case Outcome::kPass:
      if (k->sometimes) {
        return {Outcome::kPass, "[  FLAKY   ] " + full_name + " passed this time; " + b->Where(*k) +
                                    " says it fails sometimes (" + k->reason + ")\n"};
      }
      return {Outcome::kFail, "[UNEXPECTED] " + full_name + " passed, but " + said +
                                  ": remove the entry, the baseline must shrink as the failures are fixed\n"};
    default:
      return {Outcome::kFail,
              "[UNEXPECTED] " + full_name + " was skipped, but " + said + ": the entry no longer applies; remove it\n"};
  }
}

std::vector<std::string> RegisteredTests() {
  std::vector<std::string> names;
  const auto* unit = ::testing::UnitTest::GetInstance();
  for (int i = 0; i < unit->total_test_suite_count(); ++i) {
    const auto* suite = unit->GetTestSuite(i);
    for (int j = 0; j < suite->total_test_count(); ++j) {
      names.push_back(std::string(suite->name()) + "." + suite->GetTestInfo(j)->name());
    }
  }
  return names;
}

void CheckBaselineOrExit() {
  const Baseline* b = Baseline::FromEnvironment();
  if (b == nullptr) return;
  const auto stale = b->Unmatched(RegisteredTests());
  for (const auto* k : stale) {
    std::fprintf(stderr, "ipch: --ipch_known: %s: '%s' matches no test of this program\n", b->Where(*k).c_str(),
                 k->pattern.c_str());
  }
  if (!stale.empty()) std::exit(2);
}

}  // namespace ipch::testing
