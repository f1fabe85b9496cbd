#include "fault_coverage.h"

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <sstream>

#include <unistd.h>

#include "ipch/atomic_file.h"

namespace ipch::testing {
namespace {

// The names of fault::Kind, in order (the fault library's KindName, without linking it).
constexpr const char* kKindNames[fault::kKinds] = {"errno", "short", "delay", "wake", "kill", "kill_after"};

bool Number(std::string_view v, uint64_t* n) {
  if (v.empty() || v.size() > 19) return false;
  *n = 0;
  for (char ch : v) {
    if (ch < '0' || ch > '9') return false;
    *n = *n * 10 + static_cast<uint64_t>(ch - '0');
  }
  return true;
}

// Takes the part of `text` before `sep` (all of it when there is none) off its front.
std::string_view Take(std::string_view& text, char sep) {
  const std::size_t at = text.find(sep);
  const std::string_view part = text.substr(0, at);
  text = at == std::string_view::npos ? std::string_view() : text.substr(at + 1);
  return part;
}

std::string Pad(const std::string& s, size_t w) { return s.size() >= w ? s + " " : s + std::string(w - s.size(), ' '); }

// "errno 3, short 1"
std::string KindList(const uint64_t (&counts)[fault::kKinds], const char* open, const char* close) {
  std::string s;
  for (std::size_t k = 0; k < fault::kKinds; ++k) {
    if (counts[k] == 0) continue;
    s += (s.empty() ? "" : ", ") + std::string(open) + kKindNames[k] + close + std::to_string(counts[k]);
  }
  return s;
}

}  // namespace

bool ParseCensus(std::string_view text, fault::Census* out) {
  out->clear();
  while (!text.empty()) {
    std::string_view item = Take(text, ';');
    const std::string_view name = Take(item, '=');
    const bool has_faults = item.find(':') != std::string_view::npos;
    fault::CensusEntry e;
    e.entry_point = std::string(name);
    if (name.empty() || !Number(Take(item, ':'), &e.calls) || (has_faults && item.empty())) return false;
    while (!item.empty()) {
      std::string_view f = Take(item, ',');
      const std::string_view kind = Take(f, ' ');
      const auto* k = std::find(std::begin(kKindNames), std::end(kKindNames), kind);
      if (k == std::end(kKindNames) || !Number(f, &e.faults[k - std::begin(kKindNames)])) return false;
    }
    out->push_back(std::move(e));
  }
  return true;
}

uint64_t FaultCoverage::Counts::Survived() const {
  uint64_t n = 0;
  for (uint64_t f : survived) n += f;
  return n;
}
uint64_t FaultCoverage::Counts::Failed() const {
  uint64_t n = 0;
  for (uint64_t f : failed) n += f;
  return n;
}

void FaultCoverage::Add(const std::string& suite, Outcome outcome, const std::string& census_text) {
  const auto parts = SplitSuite(suite);
  if (!parts) return;
  fault::Census census;
  if (!ParseCensus(census_text, &census)) return;
  const std::string& transport = parts->transport;
  if (!map_.count(transport)) transports_.push_back(transport);
  auto& row = map_[transport];
  for (const auto& e : census) {
    Counts& c = row[e.entry_point];
    c.calls += e.calls;
    // A skipped case did not judge what it injected: neither survived nor failed.
    if (outcome == Outcome::kSkip) continue;
    for (std::size_t k = 0; k < fault::kKinds; ++k) {
      (outcome == Outcome::kPass ? c.survived : c.failed)[k] += e.faults[k];
    }
  }
}

const std::map<std::string, FaultCoverage::Counts>* FaultCoverage::Of(const std::string& transport) const {
  auto it = map_.find(transport);
  return it == map_.end() ? nullptr : &it->second;
}

std::string FaultCoverage::Render() const {
  if (transports_.empty()) return "";
  std::ostringstream out;
  out << "\nipch fault coverage (interposed entry points each transport called; faults injected in cases that "
         "passed, by kind)\n";
  out << Pad("transport", 10) << Pad("called", 7) << Pad("faulted", 8) << Pad("pairs", 6) << Pad("faults", 8)
      << "never faulted (called, no fault injected in a passing case)\n";
  for (const auto& tr : transports_) {
    const auto& row = map_.at(tr);
    int called = 0, faulted = 0, pairs = 0;
    uint64_t faults = 0;
    std::string never, failed_only;
    for (const auto& [ep, c] : row) {
      called += c.calls > 0;
      faulted += c.Survived() > 0;
      for (uint64_t f : c.survived) pairs += f > 0;
      faults += c.Survived();
      if (c.calls > 0 && c.Survived() == 0) never += (never.empty() ? "" : " ") + ep;
      if (c.Survived() == 0 && c.Failed() > 0) failed_only += (failed_only.empty() ? "" : " ") + ep;
    }
    out << Pad(tr, 10) << Pad(std::to_string(called), 7) << Pad(std::to_string(faulted), 8)
        << Pad(std::to_string(pairs), 6) << Pad(std::to_string(faults), 8) << (never.empty() ? "-" : never) << "\n";
    if (!failed_only.empty()) out << Pad("", 10) << "faulted only in failing cases: " << failed_only << "\n";
  }
  return out.str();
}

std::string FaultCoverage::Json() const {
  std::ostringstream out;
  out << "{\n  \"format\": \"ipch-fault-coverage-1\",\n  \"kinds\": [";
  for (std::size_t k = 0; k < fault::kKinds; ++k) out << (k ? ", " : "") << '"' << kKindNames[k] << '"';
  out << "],\n  \"transports\": [";
  bool first_t = true;
  for (const auto& tr : transports_) {
    out << (first_t ? "\n" : ",\n") << "    {\"name\": \"" << tr << "\", \"entry_points\": [";
    first_t = false;
    std::string never;
    bool first_e = true;
    for (const auto& [ep, c] : map_.at(tr)) {
      out << (first_e ? "\n" : ",\n") << "      {\"name\": \"" << ep << "\", \"calls\": " << c.calls
          << ", \"survived\": {" << KindList(c.survived, "\"", "\": ") << "}, \"failed\": {"
          << KindList(c.failed, "\"", "\": ") << "}}";
      first_e = false;
      if (c.calls > 0 && c.Survived() == 0) never += std::string(never.empty() ? "" : ", ") + "\"" + ep + "\"";
    }
    out << "\n    ], \"never_faulted\": [" << never << "]}";
  }
  out << "\n  ]\n}\n";
  return out.str();
}

Status FaultCoverage::WriteJson(const std::string& path) const { return WriteFileAtomically(path, Json()); }

std::string CoveragePathFor(const std::string& xml_path) {
  std::string base = xml_path;
  if (base.size() > 4 && base.compare(base.size() - 4, 4, ".xml") == 0) base.resize(base.size() - 4);
  return base + ".fault-coverage.json";
}

}  // namespace ipch::testing
