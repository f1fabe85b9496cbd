#include "invocation.h"

#include <cstdlib>
#include <cstring>
#include <sstream>

namespace ipch::testing {
namespace {

bool StartsWith(const std::string& s, const char* prefix) { return s.rfind(prefix, 0) == 0; }

// "--name" or "--name=value": true and the value ("" without '=') when `arg` is that flag.
bool FlagValue(const std::string& arg, const char* name, std::string* value, bool* has_value) {
  const std::string flag = std::string("--") + name;
  if (arg == flag) {
    *has_value = false;
    value->clear();
    return true;
  }
  if (!StartsWith(arg, (flag + "=").c_str())) return false;
  *has_value = true;
  *value = arg.substr(flag.size() + 1);
  return true;
}

// gtest's rule for boolean flags: given without a value it is true; "0", "f" and "F" are false.
bool GtestBool(const std::string& value, bool has_value) {
  return !has_value || !(value == "0" || value == "f" || value == "F");
}

bool EnvBool(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' && std::strcmp(v, "0") != 0;
}

Result<int> PositiveInt(const std::string& flag, const std::string& value, int max) {
  char* end = nullptr;
  const long v = std::strtol(value.c_str(), &end, 10);
  if (value.empty() || *end != '\0' || v < 1 || v > max) {
    return MakeError(Errc::InvalidArgument,
                     flag + " needs a whole number from 1 to " + std::to_string(max) + ", got '" + value + "'");
  }
  return static_cast<int>(v);
}

Status ApplyIsolateFlag(const std::string& arg, IsolateOptions& o) {
  std::string v;
  bool has = false;
  if (FlagValue(arg, "ipch_isolate", &v, &has)) {
    o.enabled = GtestBool(v, has);
    return Ok();
  }
  if (FlagValue(arg, "ipch_jobs", &v, &has)) {
    auto n = PositiveInt("--ipch_jobs", v, 256);
    if (!n.ok()) return std::move(n).error();
    o.jobs = *n;
    return Ok();
  }
  if (FlagValue(arg, "ipch_case_timeout", &v, &has)) {
    auto n = PositiveInt("--ipch_case_timeout", v, 86400);
    if (!n.ok()) return std::move(n).error();
    o.case_timeout_s = *n;
    return Ok();
  }
  if (FlagValue(arg, "ipch_serial", &v, &has)) {
    if (!has || v.empty()) return MakeError(Errc::InvalidArgument, "--ipch_serial needs =PATTERNS");
    o.serial = v;
    return Ok();
  }
  if (FlagValue(arg, "ipch_results", &v, &has)) {
    if (!has || v.empty()) return MakeError(Errc::InvalidArgument, "--ipch_results needs =FILE");
    o.results = v;
    return Ok();
  }
  if (FlagValue(arg, "ipch_describe", &v, &has)) {
    o.describe = GtestBool(v, has);
    return Ok();
  }
  if (FlagValue(arg, "ipch_peer_mode", &v, &has)) {
    // Kept in the environment, where every peer spawn (and every isolated case) reads it.
    if (v != "auto" && v != "fork" && v != "exec") {
      return MakeError(Errc::InvalidArgument, "--ipch_peer_mode needs =auto, =fork or =exec, got '" + v + "'");
    }
    ::setenv("IPCH_PEER_MODE", v.c_str(), 1);
    return Ok();
  }
  if (FlagValue(arg, "ipch_known", &v, &has)) {
    // Kept in the environment too, where the isolated cases read it.
    if (!has || v.empty())
      return MakeError(Errc::InvalidArgument, "--ipch_known needs =FILE (a known-failures baseline)");
    ::setenv("IPCH_KNOWN", v.c_str(), 1);
    return Ok();
  }
  return MakeError(Errc::InvalidArgument, "unknown flag " + arg +
                                              " (ipch flags: --ipch_isolate, --ipch_jobs=N, "
                                              "--ipch_case_timeout=SECONDS, --ipch_serial=PATTERNS, "
                                              "--ipch_results=FILE, --ipch_describe, "
                                              "--ipch_peer_mode=auto|fork|exec, --ipch_known=FILE)");
}

bool IsHelpFlag(const std::string& a) {
  return a == "--help" || a == "-h" || a == "-?" || a == "/?" || a == "--gtest_list_tests" ||
         StartsWith(a, "--gtest_list_tests=");
}

bool GlobMatch(const char* p, const char* s) {
  // Iterative wildcard match with one backtrack point: linear enough for test names.
  const char *star = nullptr, *resume = nullptr;
  while (*s) {
    if (*p == '?' || *p == *s) {
      ++p;
      ++s;
    } else if (*p == '*') {
      star = p++;
      resume = s;
    } else if (star) {
      p = star + 1;
      s = ++resume;
    } else {
      return false;
    }
  }
  while (*p == '*') ++p;
  return *p == '\0';
}

std::string Trim(const std::string& s) {
  const auto b = s.find_first_not_of(' '), e = s.find_last_not_of(' ');
  return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

// Splits "text  # Label = value" into the text and the value.
std::string SplitComment(const std::string& line, const char* label, std::string* value) {
  const auto hash = line.find("  # ");
  if (hash == std::string::npos) return Trim(line);
  const std::string comment = line.substr(hash + 4), prefix = std::string(label) + " = ";
  if (StartsWith(comment, prefix.c_str())) *value = comment.substr(prefix.size());
  return Trim(line.substr(0, hash));
}

}  // namespace

Result<IsolateOptions> TakeIsolateFlags(int& argc, char** argv) {
  IsolateOptions o;
  o.enabled = EnvBool("IPCH_ISOLATE");
  int kept = 1;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (!StartsWith(arg, "--ipch_")) {
      argv[kept++] = argv[i];
      continue;
    }
    IPCH_RETURN_IF_ERROR(ApplyIsolateFlag(arg, o));
  }
  argc = kept;
  argv[argc] = nullptr;
  return o;
}

Invocation ParseInvocation(int argc, char** argv) {
  Invocation inv;
  inv.argv0 = argc > 0 ? argv[0] : "test";
  if (const char* env = std::getenv("GTEST_OUTPUT")) inv.output = env;
  inv.brief = EnvBool("GTEST_BRIEF");
  inv.also_run_disabled = EnvBool("GTEST_ALSO_RUN_DISABLED_TESTS");
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    std::string v;
    bool has = false;
    if (IsHelpFlag(arg)) inv.runs_no_tests = true;
    if (FlagValue(arg, "gtest_filter", &v, &has)) {
      inv.filter = v;
      continue;
    }
    if (FlagValue(arg, "gtest_output", &v, &has)) {
      inv.output = v;
      continue;
    }
    if (FlagValue(arg, "gtest_brief", &v, &has)) inv.brief = GtestBool(v, has);
    if (FlagValue(arg, "gtest_also_run_disabled_tests", &v, &has)) inv.also_run_disabled = GtestBool(v, has);
    inv.pass_through.push_back(arg);
  }
  return inv;
}

std::string XmlReportPath(const Invocation& inv, std::string* other) {
  other->clear();
  if (inv.output.empty()) return "";
  if (inv.output == "xml") return "test_detail.xml";
  if (!StartsWith(inv.output, "xml:")) {
    *other = inv.output;
    return "";
  }
  std::string path = inv.output.substr(4);
  if (!path.empty() && path.back() == '/') {  // a directory: gtest names the file after the binary
    path += inv.argv0.substr(inv.argv0.rfind('/') + 1) + ".xml";
  }
  return path;
}

std::vector<ListedCase> ParseListing(const std::string& text) {
  std::vector<ListedCase> cases;
  std::istringstream in(text);
  std::string suite, type_param;
  for (std::string line; std::getline(in, line);) {
    if (line.empty()) continue;
    if (line[0] != ' ') {
      type_param.clear();
      std::string name = SplitComment(line, "TypeParam", &type_param);
      // A suite line ends with '.'; anything else is not part of the listing.
      suite = !name.empty() && name.back() == '.' ? name.substr(0, name.size() - 1) : "";
      continue;
    }
    if (suite.empty()) continue;
    ListedCase c{suite, "", type_param, ""};
    c.name = SplitComment(line, "GetParam()", &c.value_param);
    if (!c.name.empty()) cases.push_back(std::move(c));
  }
  return cases;
}

bool IsDisabled(const ListedCase& c) {
  auto disabled = [](const std::string& n) {
    return StartsWith(n, "DISABLED_") || n.find("/DISABLED_") != std::string::npos;
  };
  return disabled(c.suite) || disabled(c.name);
}

bool MatchesPatterns(const std::string& name, const std::string& patterns) {
  size_t start = 0;
  while (start <= patterns.size()) {
    const size_t end = std::min(patterns.find(':', start), patterns.size());
    const std::string p = patterns.substr(start, end - start);
    if (!p.empty() && GlobMatch(p.c_str(), name.c_str())) return true;
    start = end + 1;
  }
  return false;
}

std::string ExactFilter(const std::string& full_name) {
  std::string f = full_name;
  for (char& c : f) {
    if (c == '-' || c == ':') c = '?';  // one-character wildcard: still only this name in practice
  }
  return f;
}

}  // namespace ipch::testing
