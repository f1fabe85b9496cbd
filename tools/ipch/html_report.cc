// The HTML report: one self-contained page (inline CSS and SVG, no script, nothing fetched).
#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <map>
#include <set>
#include <sstream>

#include "reports.h"

namespace ipch::tool {
namespace {

using nlohmann::json;

// Everything the page shows goes through here, text and attribute values alike.
std::string Esc(const std::string& s) { return MarkupEscape(s, true); }

// An id from a name: what is not a letter or digit becomes '-' ("round trip" -> "round-trip").
std::string Slug(std::string s) {
  for (char& c : s) {
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '-';
  }
  return s;
}

std::string Num(double v, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

std::string When(long long epoch_ms) {
  const time_t secs = static_cast<time_t>(epoch_ms / 1000);
  struct tm tm {};
  ::gmtime_r(&secs, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S UTC", &tm);
  return buf;
}

constexpr const char* kStyle = R"(
body{font:14px/1.45 system-ui,sans-serif;margin:24px;color:#1d2430;background:#fff}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #d8dde6;padding-bottom:4px}
.meta{color:#4a5568;margin:0 0 12px}code,pre{font:12px/1.4 ui-monospace,monospace}
pre{background:#f6f8fa;border:1px solid #e1e4e8;padding:8px;overflow-x:auto;white-space:pre-wrap}
table{border-collapse:collapse;margin:6px 0}th,td{border:1px solid #d8dde6;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f0f3f7}.matrix td{text-align:center;min-width:74px;font-variant-numeric:tabular-nums}
.pass{background:#c9f0d3}.fail{background:#f7c1c1;font-weight:600}.unsupported{background:#e5e7eb;color:#4a5568}
.known{background:#fde9b8}.none{background:#fff;color:#a0aec0}.verdict-PASS{color:#137333}.verdict-FAIL{color:#b3261e}
.failure{border-left:4px solid #b3261e;padding:2px 10px;margin:10px 0}.replay{background:#fff8e1;padding:2px 4px}
.cov td{text-align:right;font-variant-numeric:tabular-nums}.legend span{display:inline-block;padding:1px 8px;margin-right:6px}
details summary{cursor:pointer}
)";

// ---- The verdict matrix: transport x group, each cell coloured by what happened in it.

using Cell = OutcomeCounts;

std::string CellClass(const Cell& c) {
  if (c.total() == 0) return "none";
  if (c.failed > 0) return "fail";
  if (c.known > 0) return "known";
  if (c.passed == 0) return "unsupported";
  return "pass";
}

std::string CellText(const Cell& c) {
  if (c.total() == 0) return "&ndash;";
  std::string t;
  if (c.failed > 0) t += std::to_string(c.failed) + " failed ";
  if (c.passed > 0 || c.failed == 0) t += std::to_string(c.passed) + " passed";
  if (c.known > 0) t += " +" + std::to_string(c.known) + "k";
  if (c.unsupported > 0) t += " +" + std::to_string(c.unsupported) + "u";
  if (c.not_applicable > 0) t += " +" + std::to_string(c.not_applicable) + "n";
  return t;
}

void Matrix(std::ostringstream& out, const RunResults& r, std::vector<std::string>& transports) {
  std::vector<std::string> groups;
  std::map<std::string, std::map<std::string, Cell>> cells;
  for (const auto& c : r.cases) {
    const std::string t = c.class_name(), g = c.group.empty() ? "(other)" : c.group;
    if (std::find(transports.begin(), transports.end(), t) == transports.end()) transports.push_back(t);
    if (std::find(groups.begin(), groups.end(), g) == groups.end()) groups.push_back(g);
    cells[t][g].Add(c);
  }
  out << "<section id=\"matrix\"><h2>Verdicts: transport &times; group</h2>\n"
      << "<p class=\"legend\"><span class=\"pass\">passed</span><span class=\"fail\">a case failed</span>"
      << "<span class=\"known\">known failures</span><span class=\"unsupported\">nothing ran</span> "
      << "+Nu: UNSUPPORTED (a capability or hook missing), +Nn: N/A (cannot apply to the mechanism), "
      << "+Nk: known failures</p>\n<table class=\"matrix\"><tr><th>transport</th>";
  for (const auto& g : groups) out << "<th>" << Esc(g) << "</th>";
  out << "<th>verdict</th></tr>\n";
  for (const auto& t : transports) {
    out << "<tr><th>" << Esc(t) << "</th>";
    bool failed = false;
    for (const auto& g : groups) {
      const Cell& c = cells[t][g];
      failed = failed || c.failed > 0;
      out << "<td class=\"" << CellClass(c) << "\" title=\"" << Esc(t + " " + g) << "\">" << CellText(c) << "</td>";
    }
    out << "<td class=\"" << (failed ? "fail" : "pass") << "\">" << (failed ? "FAIL" : "PASS") << "</td></tr>\n";
  }
  out << "</table></section>\n";
}

// ---- A stacked bar per transport: passed, failed, known, UNSUPPORTED, N/A.

void CaseChart(std::ostringstream& out, const RunResults& r, const std::vector<std::string>& transports) {
  std::map<std::string, Cell> per;
  int most = 1;
  for (const auto& c : r.cases) {
    Cell& cell = per[c.class_name()];
    cell.Add(c);
    most = std::max(most, cell.total());
  }
  const int row = 22, label = 110, width = 520;
  const int height = row * static_cast<int>(transports.size()) + 30;
  out << "<svg class=\"chart\" id=\"cases-chart\" role=\"img\" aria-label=\"cases per transport\" "
      << "xmlns=\"http://www.w3.org/2000/svg\" width=\"" << label + width + 60 << "\" height=\"" << height << "\">\n";
  const std::pair<const char*, const char*> kinds[] = {{"passed", "#34a853"},
                                                       {"failed", "#d93025"},
                                                       {"known", "#f9ab00"},
                                                       {"UNSUPPORTED", "#9aa0a6"},
                                                       {"N/A", "#dadce0"}};
  int y = 4;
  for (const auto& t : transports) {
    const Cell& c = per[t];
    const int counts[] = {c.passed, c.failed, c.known, c.unsupported, c.not_applicable};
    double x = label;
    out << "<text x=\"" << label - 6 << "\" y=\"" << y + 14 << "\" text-anchor=\"end\" font-size=\"12\">" << Esc(t)
        << "</text>";
    for (int k = 0; k < 5; ++k) {
      if (counts[k] == 0) continue;
      const double w = static_cast<double>(counts[k]) * width / most;
      out << "<rect x=\"" << Num(x, 1) << "\" y=\"" << y << "\" width=\"" << Num(w, 1) << "\" height=\"" << row - 6
          << "\" fill=\"" << kinds[k].second << "\"><title>" << Esc(t) << ": " << counts[k] << " " << kinds[k].first
          << "</title></rect>";
      x += w;
    }
    out << "<text x=\"" << Num(x + 4, 1) << "\" y=\"" << y + 14 << "\" font-size=\"11\">" << c.total() << "</text>\n";
    y += row;
  }
  int lx = label;
  for (const auto& [name, colour] : kinds) {
    out << "<rect x=\"" << lx << "\" y=\"" << y + 4 << "\" width=\"10\" height=\"10\" fill=\"" << colour
        << "\"/><text x=\"" << lx + 14 << "\" y=\"" << y + 13 << "\" font-size=\"11\">" << name << "</text>";
    lx += 100;
  }
  out << "</svg>\n";
}

void Failures(std::ostringstream& out, const RunResults& r) {
  const int n = r.Count("fail");
  out << "<section id=\"failures\"><h2>Failures (" << n << ")</h2>\n";
  if (n == 0) out << "<p>No case failed.</p>\n";
  for (const auto& c : r.cases) {
    if (c.outcome != "fail") continue;
    out << "<div class=\"failure\"><h3>" << Esc(c.class_name()) << " &middot; " << Esc(c.case_name()) << "</h3>\n<pre>"
        << Esc(c.Text()) << "</pre>\n<p>Replay: <code class=\"replay\">" << Esc(c.replay) << "</code></p></div>\n";
  }
  out << "</section>\n";
}

// UNSUPPORTED and N/A cases grouped by reason, known failures apart.
void Skips(std::ostringstream& out, const RunResults& r) {
  struct Reason {
    std::string kind;
    std::set<std::string> transports;
    std::vector<std::string> cases;
  };
  std::map<std::string, Reason> reasons;
  int total = 0;
  for (const auto& c : r.cases) {
    if (c.outcome != "skip" && c.outcome != "known") continue;
    ++total;
    // The reason without the transport's name, so one reason gathers every transport.
    std::string why = c.Summary();
    if (!c.transport.empty()) {
      // The name as a word: after a space or at the start, before a space or a colon.
      for (size_t at = 0; (at = why.find(c.transport, at)) != std::string::npos;) {
        const size_t end = at + c.transport.size();
        const bool word = (at == 0 || why[at - 1] == ' ') && (end == why.size() || why[end] == ' ' || why[end] == ':');
        if (word) {
          why.replace(at, c.transport.size(), "<transport>");
          at += 11;
        } else {
          at = end;
        }
      }
    }
    Reason& rs = reasons[why];
    rs.kind = c.outcome == "known" ? "known failure" : c.not_applicable ? "N/A" : "UNSUPPORTED";
    rs.transports.insert(c.class_name());
    rs.cases.push_back(c.class_name() + " " + c.case_name());
  }
  out << "<section id=\"unsupported\"><h2>Not run: UNSUPPORTED, N/A and known failures (" << total << ")</h2>\n";
  if (total == 0) {
    out << "<p>Every case ran.</p></section>\n";
    return;
  }
  std::vector<std::pair<std::string, const Reason*>> sorted;
  for (const auto& [why, rs] : reasons) sorted.emplace_back(why, &rs);
  std::stable_sort(sorted.begin(), sorted.end(),
                   [](const auto& a, const auto& b) { return a.second->cases.size() > b.second->cases.size(); });
  out << "<table><tr><th>reason</th><th>kind</th><th>cases</th><th>transports</th></tr>\n";
  for (const auto& [why, rs] : sorted) {
    std::string ts;
    for (const auto& t : rs->transports) ts += (ts.empty() ? "" : ", ") + t;
    out << "<tr><td>" << Esc(why) << "<details><summary>cases</summary><code>";
    for (const auto& c : rs->cases) out << Esc(c) << "<br>";
    out << "</code></details></td><td>" << rs->kind << "</td><td>" << rs->cases.size() << "</td><td>" << Esc(ts)
        << "</td></tr>\n";
  }
  out << "</table></section>\n";
}

// The fault-space coverage map: per transport and interposed entry point, the faults injected in
// passing cases; red where a faulted case failed; amber where the call was made, never faulted.
void Coverage(std::ostringstream& out, const RunResults& r) {
  if (!r.coverage.is_object() || !r.coverage.contains("transports")) return;
  std::vector<std::string> entries;
  std::map<std::string, std::map<std::string, std::pair<uint64_t, uint64_t>>> map;  // survived, failed
  std::map<std::string, std::map<std::string, uint64_t>> calls;
  std::vector<std::string> transports;
  for (const auto& t : r.coverage["transports"]) {
    const std::string name = t.value("name", "");
    transports.push_back(name);
    if (!t.contains("entry_points") || !t.at("entry_points").is_array()) continue;
    for (const auto& e : t.at("entry_points")) {
      const std::string ep = e.value("name", "");
      if (std::find(entries.begin(), entries.end(), ep) == entries.end()) entries.push_back(ep);
      const auto sum = [&](const char* key) {
        uint64_t n = 0;
        if (e.contains(key) && e.at(key).is_object()) {
          for (const auto& v : e.at(key)) n += v.is_number_unsigned() ? v.get<uint64_t>() : 0;
        }
        return n;
      };
      const uint64_t survived = sum("survived"), failed = sum("failed");
      map[name][ep] = {survived, failed};
      calls[name][ep] = e.value("calls", uint64_t{0});
    }
  }
  std::sort(entries.begin(), entries.end());
  out << "<section id=\"coverage\"><h2>Fault-space coverage</h2>\n<p class=\"legend\">Faults injected under each "
         "transport's calls in cases that passed. <span class=\"pass\">faulted</span><span class=\"known\">called, "
         "never faulted</span><span class=\"fail\">a faulted case failed</span><span class=\"none\">not "
         "called</span></p>\n<table class=\"cov\"><tr><th>transport</th>";
  for (const auto& e : entries) out << "<th>" << Esc(e) << "</th>";
  out << "</tr>\n";
  for (const auto& t : transports) {
    out << "<tr><th>" << Esc(t) << "</th>";
    for (const auto& e : entries) {
      const auto it = map[t].find(e);
      if (it == map[t].end() || calls[t][e] == 0) {
        out << "<td class=\"none\">&ndash;</td>";
        continue;
      }
      const auto [survived, failed] = it->second;
      const char* cls = failed > 0 ? "fail" : survived > 0 ? "pass" : "known";
      out << "<td class=\"" << cls << "\" title=\"" << Esc(t + " " + e) << ": " << calls[t][e] << " calls\">"
          << survived << (failed > 0 ? " / " + std::to_string(failed) + " failed" : "") << "</td>";
    }
    out << "</tr>\n";
  }
  out << "</table></section>\n";
}

// Benchmarks: for each size, the transport's cost as a ratio to its mechanism's raw baseline.
void Bench(std::ostringstream& out, const json& bench) {
  out << "<section id=\"bench\"><h2>Benchmarks</h2>\n";
  if (!bench.is_object() || !bench.contains("results") || !bench["results"].is_array() || bench["results"].empty()) {
    out << "<p>No benchmark figures in this report (<code>ipch run --bench FILE</code> takes an "
           "<code>ipch bench --json</code> output).</p></section>\n";
    return;
  }
  std::map<std::string, std::vector<const json*>> by_metric;
  for (const auto& row : bench["results"]) by_metric[row.value("metric", "latency")].push_back(&row);
  for (const auto& [metric, rows] : by_metric) {
    double most = 1.0;
    for (const auto* row : rows) most = std::max(most, row->value("ratio", 0.0));
    const int bar = 16, label = 190, width = 460;
    const int height = bar * static_cast<int>(rows.size()) + 40;
    const double scale = width / std::ceil(most + 0.25);
    out << "<h3>" << Esc(metric) << ": transport / raw baseline (lower is better)</h3>\n"
        << "<svg class=\"chart\" id=\"bench-" << Esc(Slug(metric))
        << "\" role=\"img\" xmlns=\"http://www.w3.org/2000/svg\" width=\"" << label + width + 80 << "\" height=\""
        << height << "\">\n";
    int y = 4;
    for (const auto* row : rows) {
      const double ratio = row->value("ratio", 0.0);
      const double goal = row->value("goal", 0.0);
      const std::string name = row->value("transport", "?") + " " + row->value("size", "");
      const bool missed = goal > 0 && ratio > goal;
      out << "<text x=\"" << label - 6 << "\" y=\"" << y + 12 << "\" text-anchor=\"end\" font-size=\"11\">" << Esc(name)
          << "</text><rect x=\"" << label << "\" y=\"" << y << "\" width=\"" << Num(ratio * scale, 1) << "\" height=\""
          << bar - 4 << "\" fill=\"" << (missed ? "#d93025" : "#1a73e8") << "\"><title>" << Esc(name) << ": "
          << Num(ratio, 2) << "x" << (goal > 0 ? " (goal " + Num(goal, 2) + "x)" : "") << "</title></rect><text x=\""
          << Num(label + ratio * scale + 4, 1) << "\" y=\"" << y + 11 << "\" font-size=\"10\">" << Num(ratio, 2)
          << "x</text>\n";
      y += bar;
    }
    out << "<line x1=\"" << Num(label + scale, 1) << "\" y1=\"0\" x2=\"" << Num(label + scale, 1) << "\" y2=\"" << y
        << "\" stroke=\"#202124\" stroke-dasharray=\"4 3\"/><text x=\"" << Num(label + scale, 1) << "\" y=\"" << y + 14
        << "\" font-size=\"10\" text-anchor=\"middle\">1.0 = raw baseline</text></svg>\n";
  }
  out << "</section>\n";
}

}  // namespace

std::string Html(const RunResults& r, const json& bench) {
  const int failed = r.Count("fail");
  const std::string verdict = failed > 0 ? "FAIL" : "PASS";
  std::ostringstream out;
  out << "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>ipch run: " << verdict
      << "</title>\n<style>" << kStyle << "</style>\n</head>\n<body>\n<h1>ipch run: <span class=\"verdict-" << verdict
      << "\">" << verdict << "</span></h1>\n<p class=\"meta\">" << r.cases.size() << " cases: " << r.Count("pass")
      << " passed, " << failed << " failed, " << r.Count("skip") << " not run (UNSUPPORTED or N/A), "
      << r.Count("known") << " known failures &middot; " << Esc(When(r.started_ms)) << ", "
      << Num(r.duration_ms / 1000.0, 1) << " s, " << r.jobs << " at a time &middot; seed " << r.seed << "<br><code>"
      << Esc(r.binary) << "</code></p>\n";
  std::vector<std::string> transports;
  Matrix(out, r, transports);
  out << "<section id=\"cases\"><h2>Cases per transport</h2>\n";
  CaseChart(out, r, transports);
  out << "</section>\n";
  Failures(out, r);
  Skips(out, r);
  Coverage(out, r);
  Bench(out, bench);
  out << "</body>\n</html>\n";
  return out.str();
}

}  // namespace ipch::tool
