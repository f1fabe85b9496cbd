#include "junit.h"

#include <time.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <utility>

#include "ipch/atomic_file.h"

namespace ipch::testing {
namespace {

// XML 1.0 allows no control characters but tab, newline and carriage return (gtest drops them too).
bool IsValidXmlChar(unsigned char c) { return c >= 0x20 || c == '\t' || c == '\n' || c == '\r'; }

std::string Seconds(long long ms) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3f", static_cast<double>(ms) / 1000.0);
  return buf;
}

// Local time, as gtest writes it: 2026-11-30T14:03:16.123
std::string Timestamp(std::chrono::system_clock::time_point t) {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
  const time_t secs = static_cast<time_t>(ms / 1000);
  struct tm tm {};
  ::localtime_r(&secs, &tm);
  char buf[64];
  const size_t n = std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  std::snprintf(buf + n, sizeof buf - n, ".%03lld", static_cast<long long>(ms % 1000));
  return buf;
}

// What an attribute cannot hold as is. Raw whitespace would be folded into spaces by the
// reader's parser: references keep the lines of a failure message.
const char* AttributeReference(unsigned char c) {
  static const std::pair<unsigned char, const char*> kReferences[] = {
      {'<', "&lt;"},   {'>', "&gt;"},    {'&', "&amp;"},   {'\'', "&apos;"},
      {'"', "&quot;"}, {'\t', "&#x09;"}, {'\n', "&#x0A;"}, {'\r', "&#x0D;"}};
  for (const auto& [ch, ref] : kReferences) {
    if (ch == c) return ref;
  }
  return nullptr;
}

std::string EscapeXmlAttribute(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (const char* ref = AttributeReference(c)) {
      out += ref;
    } else if (IsValidXmlChar(c)) {
      out += static_cast<char>(c);
    }
  }
  return out;
}

std::string XmlCData(const std::string& s) {
  std::string clean;
  for (unsigned char c : s) {
    if (IsValidXmlChar(c)) clean += static_cast<char>(c);
  }
  std::string out = "<![CDATA[";
  size_t start = 0;
  // "]]>" would end the section: split it across two sections, as gtest does.
  for (size_t at; (at = clean.find("]]>", start)) != std::string::npos; start = at + 2) {
    out += clean.substr(start, at + 2 - start) + "]]><![CDATA[";
  }
  return out + clean.substr(start) + "]]>";
}

std::string Attr(const char* name, const std::string& value) {
  return std::string(" ") + name + "=\"" + EscapeXmlAttribute(value) + "\"";
}

// gtest's message attribute: "location\nmessage" (no location line for the supervisor's own parts).
std::string PartText(const ResultPart& p) { return p.location.empty() ? p.message : p.location + "\n" + p.message; }

void WriteCase(std::ostream& out, const CaseReport& c) {
  out << "    <testcase" << Attr("name", c.name);
  if (!c.value_param.empty()) out << Attr("value_param", c.value_param);
  if (!c.type_param.empty()) out << Attr("type_param", c.type_param);
  out << Attr("status", "run")
      << Attr("result", c.outcome == Outcome::kSkip || c.outcome == Outcome::kKnown ? "skipped" : "completed")
      << Attr("time", Seconds(c.ms)) << Attr("timestamp", Timestamp(c.started)) << Attr("classname", c.suite);
  if (c.parts.empty()) {
    out << " />\n";
    return;
  }
  out << ">\n";
  for (const auto& p : c.parts) {
    const std::string text = PartText(p);
    if (p.skipped) {
      out << "      <skipped" << Attr("message", text) << ">" << XmlCData(text) << "</skipped>\n";
    } else {
      out << "      <failure" << Attr("message", text) << Attr("type", "") << ">" << XmlCData(text) << "</failure>\n";
    }
  }
  out << "    </testcase>\n";
}

struct SuiteTotals {
  int tests = 0, failures = 0, skipped = 0;
  long long ms = 0;
  std::chrono::system_clock::time_point started = std::chrono::system_clock::time_point::max();
};

void WriteSuite(std::ostream& out, const std::string& name, const SuiteTotals& t,
                const std::vector<const CaseReport*>& cases) {
  out << "  <testsuite" << Attr("name", name) << Attr("tests", std::to_string(t.tests))
      << Attr("failures", std::to_string(t.failures)) << Attr("disabled", "0")
      << Attr("skipped", std::to_string(t.skipped)) << Attr("errors", "0") << Attr("time", Seconds(t.ms))
      << Attr("timestamp", Timestamp(t.started)) << ">\n";
  for (const auto* c : cases) WriteCase(out, *c);
  out << "  </testsuite>\n";
}

std::string Document(const std::vector<CaseReport>& cases, std::chrono::system_clock::time_point started,
                     long long total_ms) {
  std::vector<std::string> order;
  std::map<std::string, std::vector<const CaseReport*>> by_suite;
  std::map<std::string, SuiteTotals> totals;
  int failures = 0;
  for (const auto& c : cases) {
    if (!by_suite.count(c.suite)) order.push_back(c.suite);
    by_suite[c.suite].push_back(&c);
    SuiteTotals& t = totals[c.suite];
    ++t.tests;
    t.failures += c.outcome == Outcome::kFail;
    t.skipped += c.outcome == Outcome::kSkip || c.outcome == Outcome::kKnown;
    t.ms += c.ms;
    t.started = std::min(t.started, c.started);
    failures += c.outcome == Outcome::kFail;
  }
  std::ostringstream out;
  out << "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
  out << "<testsuites" << Attr("tests", std::to_string(cases.size())) << Attr("failures", std::to_string(failures))
      << Attr("disabled", "0") << Attr("errors", "0") << Attr("time", Seconds(total_ms))
      << Attr("timestamp", Timestamp(started)) << Attr("name", "AllTests") << ">\n";
  for (const auto& s : order) WriteSuite(out, s, totals[s], by_suite[s]);
  out << "</testsuites>\n";
  return out.str();
}

}  // namespace

Status WriteJUnit(const std::string& path, const std::vector<CaseReport>& cases,
                  std::chrono::system_clock::time_point started, long long total_ms) {
  std::error_code ec;
  const std::filesystem::path target(path);
  if (target.has_parent_path()) std::filesystem::create_directories(target.parent_path(), ec);
  return WriteFileAtomically(path, Document(cases, started, total_ms));
}

}  // namespace ipch::testing
