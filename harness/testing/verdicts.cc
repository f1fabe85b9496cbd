#include "verdicts.h"

#include <algorithm>
#include <cstdio>
#include <sstream>

namespace ipch::testing {
namespace {

std::string Pad(const std::string& s, size_t w) { return s.size() >= w ? s + " " : s + std::string(w - s.size(), ' '); }

// Prefix/Group/transport: what the progress line is printed for.
bool IsConformanceSuite(const std::string& suite) { return std::count(suite.begin(), suite.end(), '/') == 2; }

}  // namespace

std::optional<SuiteParts> SplitSuite(const std::string& suite) {
  const auto s1 = suite.find('/'), s2 = suite.rfind('/');
  if (s1 == std::string::npos || s1 == s2) return std::nullopt;
  return SuiteParts{suite.substr(0, s1), suite.substr(s1 + 1, s2 - s1 - 1), suite.substr(s2 + 1)};
}

bool IsNotApplicable(const std::string& skip_message) { return skip_message.rfind("N/A: ", 0) == 0; }

void VerdictMatrix::Add(const std::string& suite, Outcome outcome, bool not_applicable) {
  const auto parts = SplitSuite(suite);
  if (!parts) return;
  const std::string& group = parts->group;
  const std::string& transport = parts->transport;
  if (std::find(groups_.begin(), groups_.end(), group) == groups_.end()) groups_.push_back(group);
  if (!cells_.count(transport)) transports_.push_back(transport);
  Cell& c = cells_[transport][group];
  if (outcome == Outcome::kSkip && not_applicable) {
    ++c.not_applicable;
  } else if (outcome == Outcome::kSkip) {
    ++c.skipped;
  } else if (outcome == Outcome::kKnown) {
    ++c.known;
  } else if (outcome == Outcome::kFail) {
    ++c.failed;
  } else {
    ++c.passed;
  }
}

std::string VerdictMatrix::CellText(const Cell& c) {
  const int ran = c.passed + c.failed + c.known;
  if (c.failed > 0) return "FAIL " + std::to_string(c.failed) + "/" + std::to_string(ran);
  if (ran == 0) return c.skipped == 0 && c.not_applicable > 0 ? "N/A" : "UNSUPPORTED";
  std::string cell = c.passed == 0 ? "KNOWN " + std::to_string(c.known) : "PASS " + std::to_string(c.passed);
  if (c.known && c.passed > 0) cell += " +" + std::to_string(c.known) + "k";
  if (c.skipped) cell += " +" + std::to_string(c.skipped) + "u";
  if (c.not_applicable) cell += " +" + std::to_string(c.not_applicable) + "n";
  return cell;
}

std::string VerdictMatrix::Render() const {
  if (transports_.empty()) return "";
  const int w = 15;
  std::ostringstream out;
  out << "\nipch verdicts (PASS n = all n cases passed; FAIL f/n; UNSUPPORTED = every case skipped)\n";
  out << Pad("transport", 10);
  for (const auto& g : groups_) out << Pad(g, w);
  out << Pad("verdict", 8) << "\n";
  bool known_seen = false;
  for (const auto& tr : transports_) {
    out << Pad(tr, 10);
    bool any_fail = false, any_known = false;
    const auto& row = cells_.at(tr);
    for (const auto& g : groups_) {
      auto it = row.find(g);
      out << Pad(it == row.end() ? "-" : CellText(it->second), w);
      any_fail = any_fail || (it != row.end() && it->second.failed > 0);
      any_known = any_known || (it != row.end() && it->second.known > 0);
    }
    out << (any_fail ? "FAIL" : any_known ? "KNOWN" : "PASS") << "\n";
    known_seen = known_seen || any_known;
  }
  out << "(+Nu: N cases UNSUPPORTED: a capability or adapter hook the case needs is missing; each skip names it)\n";
  out << "(+Nn: N cases N/A: the fault cannot happen to the transport's kind of IPC; each skip says why)\n";
  if (known_seen)
    out << "(+Nk: N known failures, as the baseline (--ipch_known) lists them; KNOWN: no other failure)\n";
  return out.str();
}

std::string ProgressLine(const std::string& suite, int passed, int failed, int skipped, long long ms, int known) {
  if (!IsConformanceSuite(suite)) return "";
  char line[512];
  std::snprintf(line, sizeof line, "[ipch] %-40s %3d passed %3d failed %3d unsupported  %6lld ms", suite.c_str(),
                passed, failed, skipped, ms);
  return std::string(line) + (known > 0 ? "  " + std::to_string(known) + " known\n" : "\n");
}

}  // namespace ipch::testing
