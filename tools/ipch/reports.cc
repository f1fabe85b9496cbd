#include "reports.h"

#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <sstream>

#include "ipch/atomic_file.h"

namespace ipch::tool {
namespace {

using nlohmann::json;

// ---- Text.

std::string FirstLine(const std::string& s) {
  const size_t start = s.find_first_not_of("\n ");
  if (start == std::string::npos) return "";
  const size_t end = s.find('\n', start);
  return s.substr(start, end == std::string::npos ? std::string::npos : end - start);
}

std::string Seconds(long long ms) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3f", static_cast<double>(ms) / 1000.0);
  return buf;
}

// UTC, RFC 3339 with a 'Z' (CTRF) or without a zone (JUnit's timestamp, as Ant writes it).
std::string UtcTime(long long epoch_ms, bool zone) {
  const time_t secs = static_cast<time_t>(epoch_ms / 1000);
  struct tm tm {};
  ::gmtime_r(&secs, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  return std::string(buf) + (zone ? "Z" : "");
}

std::string Hostname() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0) return "localhost";
  return buf;
}

}  // namespace

// XML 1.0 allows no control character but tab, newline and carriage return; the references are
// XML's and HTML's alike. In an attribute, quotes are references too.
std::string MarkupEscape(const std::string& s, bool attribute) {
  std::string out;
  for (unsigned char c : s) {
    switch (c) {
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '&':
        out += "&amp;";
        break;
      case '"':
        out += attribute ? "&quot;" : "\"";
        break;
      case '\'':
        out += attribute ? "&#39;" : "'";
        break;
      case '\n':
        out += attribute ? "&#10;" : "\n";  // a parser folds raw whitespace in an attribute
        break;
      case '\t':
        out += attribute ? "&#9;" : "\t";
        break;
      case '\r':
        out += "&#13;";
        break;
      default:
        if (c >= 0x20) out += static_cast<char>(c);
    }
  }
  return out;
}

namespace {

std::string Attr(const char* name, const std::string& value) {
  return std::string(" ") + name + "=\"" + MarkupEscape(value, true) + "\"";
}

// The transports (or suites) and groups in the order the results first name them.
struct Order {
  std::vector<std::string> classes, groups;
  explicit Order(const RunResults& r) {
    for (const auto& c : r.cases) {
      if (std::find(classes.begin(), classes.end(), c.class_name()) == classes.end()) classes.push_back(c.class_name());
      if (!c.group.empty() && std::find(groups.begin(), groups.end(), c.group) == groups.end())
        groups.push_back(c.group);
    }
  }
};

// A JUnit suite's (or the run's) counts, time and start.
struct Tally : OutcomeCounts {
  long long ms = 0, first_ms = 0;
  void Add(const CaseResult& c) {
    OutcomeCounts::Add(c);
    ms += c.ms;
    first_ms = first_ms == 0 ? c.started_ms : std::min(first_ms, c.started_ms);
  }
};

const char* RawStatus(const CaseResult& c) {
  if (c.outcome == "pass") return "PASS";
  if (c.outcome == "fail") return "FAIL";
  if (c.outcome == "known") return "KNOWN-FAILURE";
  return c.not_applicable ? "N/A" : "UNSUPPORTED";
}

}  // namespace

// ---- The results document.

std::string CaseResult::Text() const {
  std::string text;
  const bool failed = outcome == "fail";
  for (const auto& p : parts) {
    if (failed && p.skipped) continue;
    std::string m = p.message;
    while (!m.empty() && m.back() == '\n') m.pop_back();
    text += (text.empty() ? "" : "\n") + (p.location.empty() ? "" : p.location + "\n") + m;
  }
  if (failed && text.empty()) text = "failed (no message)";
  if (failed) text += "\nreplay: " + replay;
  return text;
}

std::string CaseResult::Summary() const {
  for (const auto& p : parts) {
    if (outcome == "fail" && p.skipped) continue;
    std::string m = p.message;
    // gtest heads the message of ADD_FAILURE and FAIL with a bare "Failed" line.
    if (m.rfind("Failed\n", 0) == 0) m.erase(0, 7);
    const std::string line = FirstLine(m);
    if (!line.empty()) return line;
  }
  return outcome == "fail" ? "failed (no message)" : "";
}

void OutcomeCounts::Add(const CaseResult& c) {
  if (c.outcome == "pass") ++passed;
  if (c.outcome == "fail") ++failed;
  if (c.outcome == "known") ++known;
  if (c.outcome == "skip") ++(c.not_applicable ? not_applicable : unsupported);
}

int RunResults::Count(const std::string& outcome) const {
  return static_cast<int>(
      std::count_if(cases.begin(), cases.end(), [&](const CaseResult& c) { return c.outcome == outcome; }));
}

Result<RunResults> ParseResults(const std::string& text) {
  const json doc = json::parse(text, nullptr, false);
  if (!doc.is_object() || doc.value("format", "") != "ipch-results-1" || !doc.contains("cases") ||
      !doc["cases"].is_array()) {
    return MakeError(Errc::InvalidArgument, "not an ipch-results-1 document");
  }
  RunResults r;
  try {
    r.binary = doc.at("binary").get<std::string>();
    r.seed = doc.at("seed").get<uint64_t>();
    r.jobs = doc.at("jobs").get<int>();
    r.started_ms = doc.at("started_ms").get<long long>();
    r.duration_ms = doc.at("duration_ms").get<long long>();
    r.coverage = doc.value("coverage", json());
    for (const auto& c : doc["cases"]) {
      CaseResult k;
      k.suite = c.at("suite").get<std::string>();
      k.name = c.at("name").get<std::string>();
      k.prefix = c.at("prefix").get<std::string>();
      k.group = c.at("group").get<std::string>();
      k.transport = c.at("transport").get<std::string>();
      k.outcome = c.at("outcome").get<std::string>();
      if (k.outcome != "pass" && k.outcome != "fail" && k.outcome != "skip" && k.outcome != "known") {
        return MakeError(Errc::InvalidArgument,
                         "case " + k.suite + "." + k.name + ": unknown outcome '" + k.outcome + "'");
      }
      k.not_applicable = c.at("not_applicable").get<bool>();
      k.ms = c.at("ms").get<long long>();
      k.started_ms = c.at("started_ms").get<long long>();
      k.test_seed = c.at("test_seed").get<uint64_t>();
      k.replay = c.at("replay").get<std::string>();
      for (const auto& p : c.at("parts")) {
        k.parts.push_back(
            {p.at("skipped").get<bool>(), p.at("location").get<std::string>(), p.at("message").get<std::string>()});
      }
      r.cases.push_back(std::move(k));
    }
  } catch (const json::exception& e) {
    return MakeError(Errc::InvalidArgument, std::string("malformed ipch-results-1 document: ") + e.what());
  }
  return r;
}

Result<RunResults> LoadResults(const std::string& path) {
  std::ifstream f(path);
  if (!f) return ErrnoError("open " + path);
  std::stringstream ss;
  ss << f.rdbuf();
  auto r = ParseResults(ss.str());
  if (!r.ok()) return MakeError(Errc::InvalidArgument, path + ": " + r.error().context);
  return r;
}

// ---- JUnit XML: testsuites / testsuite (one per transport) / testcase (classname = transport,
// name = Group.Case), a <failure> with the message and replay line, or a <skipped> with the
// reason. docs/schemas/junit.xsd is the shape; docs/reports.md says why.

std::string JUnitXml(const RunResults& r) {
  const Order order(r);
  std::map<std::string, Tally> per;
  Tally all;
  for (const auto& c : r.cases) {
    per[c.class_name()].Add(c);
    all.Add(c);
  }
  std::ostringstream out;
  out << "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
  out << "<testsuites" << Attr("name", "ipch run") << Attr("tests", std::to_string(all.total()))
      << Attr("failures", std::to_string(all.failed)) << Attr("errors", "0")
      << Attr("skipped", std::to_string(all.skipped())) << Attr("time", Seconds(r.duration_ms))
      << Attr("timestamp", UtcTime(r.started_ms, false)) << ">\n";
  int id = 0;
  for (const auto& cls : order.classes) {
    const Tally& t = per[cls];
    out << "  <testsuite" << Attr("name", cls) << Attr("tests", std::to_string(t.total()))
        << Attr("failures", std::to_string(t.failed)) << Attr("errors", "0")
        << Attr("skipped", std::to_string(t.skipped())) << Attr("time", Seconds(t.ms))
        << Attr("timestamp", UtcTime(t.first_ms, false)) << Attr("hostname", Hostname())
        << Attr("id", std::to_string(id++)) << ">\n";
    out << "    <properties>\n"
        << "      <property" << Attr("name", "ipch.binary") << Attr("value", r.binary) << "/>\n"
        << "      <property" << Attr("name", "ipch.seed") << Attr("value", std::to_string(r.seed)) << "/>\n"
        << "    </properties>\n";
    for (const auto& c : r.cases) {
      if (c.class_name() != cls) continue;
      out << "    <testcase" << Attr("name", c.case_name()) << Attr("classname", cls) << Attr("time", Seconds(c.ms));
      if (c.outcome == "pass") {
        out << "/>\n";
        continue;
      }
      out << ">\n";
      if (c.outcome == "fail") {
        out << "      <failure" << Attr("message", c.Summary()) << Attr("type", "failure") << ">"
            << MarkupEscape(c.Text(), false) << "</failure>\n";
      } else {
        const std::string why = std::string(RawStatus(c)) + ": " + c.Summary();
        out << "      <skipped" << Attr("message", c.outcome == "known" ? why : c.Summary()) << "/>\n";
      }
      out << "    </testcase>\n";
    }
    out << "  </testsuite>\n";
  }
  out << "</testsuites>\n";
  return out.str();
}

// ---- CTRF (Common Test Report Format) 1.0.0: docs/schemas/ctrf.schema.json.

std::string CtrfJson(const RunResults& r) {
  const Order order(r);
  json tests = json::array();
  for (const auto& c : r.cases) {
    json t = {{"name", c.full_name()},
              {"status", c.outcome == "pass"   ? "passed"
                         : c.outcome == "fail" ? "failed"
                                               : "skipped"},
              {"duration", c.ms},
              {"start", c.started_ms},
              {"stop", c.started_ms + c.ms},
              {"rawStatus", RawStatus(c)},
              {"type", c.group.empty() ? "test" : "conformance"}};
    json suite = json::array({c.class_name()});
    if (!c.group.empty()) suite.push_back(c.group);
    t["suite"] = suite;
    t["tags"] = suite;
    // The seeds as strings: 64-bit values lose digits in a JSON reader that reads doubles.
    t["parameters"] = {{"transport", c.transport},
                       {"group", c.group},
                       {"seed", std::to_string(r.seed)},
                       {"testSeed", std::to_string(c.test_seed)}};
    t["extra"] = {{"replay", c.replay}, {"suite", c.suite}};
    if (c.outcome != "pass") {
      t["message"] = c.Summary();
      t["trace"] = c.Text();
    }
    // gtest's location is FILE:LINE.
    if (!c.parts.empty() && !c.parts.front().location.empty()) {
      const std::string& at = c.parts.front().location;
      const size_t colon = at.rfind(':');
      const bool has_line = colon != std::string::npos && colon + 1 < at.size() && at.size() - colon <= 10 &&
                            at.find_first_not_of("0123456789", colon + 1) == std::string::npos;
      t["filePath"] = has_line ? at.substr(0, colon) : at;
      if (has_line) t["line"] = std::stoi(at.substr(colon + 1));
    }
    tests.push_back(std::move(t));
  }
  struct utsname u {};
  ::uname(&u);
  std::random_device rd;
  char id[40];
  std::snprintf(id, sizeof id, "%08x-%04x-4%03x-%04x-%04x%08x", rd(), rd() & 0xffff, rd() & 0xfff,
                (rd() & 0x3fff) | 0x8000, rd() & 0xffff, rd());
  const json doc = {{"reportFormat", "CTRF"},
                    {"specVersion", "1.0.0"},
                    {"reportId", id},
                    {"timestamp", UtcTime(r.started_ms + r.duration_ms, true)},
                    {"generatedBy", "ipch run"},
                    {"results",
                     {{"tool", {{"name", "ipch"}}},
                      {"summary",
                       {{"tests", r.cases.size()},
                        {"passed", r.Count("pass")},
                        {"failed", r.Count("fail")},
                        {"skipped", r.Count("skip") + r.Count("known")},
                        {"pending", 0},
                        {"other", 0},
                        {"suites", order.classes.size()},
                        {"start", r.started_ms},
                        {"stop", r.started_ms + r.duration_ms},
                        {"duration", r.duration_ms}}},
                      {"tests", std::move(tests)},
                      {"environment",
                       {{"osPlatform", "linux"},
                        {"osRelease", u.release},
                        {"osVersion", u.version},
                        {"extra", {{"binary", r.binary}, {"seed", std::to_string(r.seed)}, {"jobs", r.jobs}}}}}}}};
  return doc.dump(2) + "\n";
}

// ---- Paths.

std::string CheckReportPath(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (fs::is_directory(path, ec)) return path + " is a directory";
  fs::path dir = fs::path(path).parent_path();
  if (dir.empty()) dir = ".";
  if (!fs::exists(dir, ec)) {
    fs::create_directories(dir, ec);
    if (ec) return "cannot make the directory " + dir.string() + ": " + ec.message();
  }
  if (!fs::is_directory(dir, ec)) return dir.string() + " is not a directory";
  if (::access(dir.c_str(), W_OK) != 0) return "cannot write in " + dir.string() + ": " + std::strerror(errno);
  if (fs::exists(path, ec) && ::access(path.c_str(), W_OK) != 0 && ::geteuid() != 0)
    return "cannot write " + path + ": " + std::strerror(errno);
  return "";
}

Status WriteAtomically(const std::string& path, const std::string& text) { return WriteFileAtomically(path, text); }

}  // namespace ipch::tool
