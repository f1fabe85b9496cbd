#include "case_record.h"

#include <fcntl.h>

#include <cstdlib>
#include <sstream>

#include "ipch/raw_io.h"
#include "shared.h"

namespace ipch::testing {
namespace {

constexpr const char* kMagic = "ipch-result-1";

// Fields are tab-separated, records newline-terminated: escape both (and the escape itself).
std::string Escape(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else {
      out += c;
    }
  }
  return out;
}

std::string Unescape(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '\\' || i + 1 == s.size()) {
      out += s[i];
      continue;
    }
    const char c = s[++i];
    out += c == 'n' ? '\n' : c == 't' ? '\t' : c;
  }
  return out;
}

std::vector<std::string> SplitTabs(const std::string& line) {
  std::vector<std::string> fields;
  size_t start = 0;
  for (size_t tab; (tab = line.find('\t', start)) != std::string::npos; start = tab + 1) {
    fields.push_back(line.substr(start, tab - start));
  }
  fields.push_back(line.substr(start));
  return fields;
}

const char* OutcomeCode(Outcome o) { return o == Outcome::kPass ? "PASS" : o == Outcome::kSkip ? "SKIP" : "FAIL"; }

bool ParseOutcome(const std::string& s, Outcome* o) {
  for (Outcome c : {Outcome::kPass, Outcome::kSkip, Outcome::kFail}) {
    if (s == OutcomeCode(c)) {
      *o = c;
      return true;
    }
  }
  return false;
}

// magic, outcome, name, ms, then (S|F, location, message) per part, and (C, "", census) if any.
bool DecodeRecord(const std::string& line, CaseRecord* r) {
  const auto f = SplitTabs(line);
  if (f.size() < 4 || (f.size() - 4) % 3 != 0 || f[0] != kMagic || !ParseOutcome(f[1], &r->outcome)) return false;
  r->name = Unescape(f[2]);
  r->ms = std::atoll(f[3].c_str());
  for (size_t i = 4; i < f.size(); i += 3) {
    if (f[i] == "C") {
      r->census = Unescape(f[i + 2]);
    } else {
      r->parts.push_back({f[i] == "S", Unescape(f[i + 1]), Unescape(f[i + 2])});
    }
  }
  return true;
}

std::string Location(const ::testing::TestPartResult& part) {
  std::string file = part.file_name() ? part.file_name() : "unknown file";
  return part.line_number() >= 0 ? file + ":" + std::to_string(part.line_number()) : file;
}

CaseRecord RecordOf(const ::testing::TestInfo& t) {
  const ::testing::TestResult& result = *t.result();
  CaseRecord r;
  r.name = std::string(t.test_suite_name()) + "." + t.name();
  r.outcome = result.Failed() ? Outcome::kFail : result.Skipped() ? Outcome::kSkip : Outcome::kPass;
  r.ms = static_cast<long long>(result.elapsed_time());
  for (int i = 0; i < result.total_part_count(); ++i) {
    const auto& part = result.GetTestPartResult(i);
    if (part.failed() || part.skipped()) r.parts.push_back({part.skipped(), Location(part), part.message()});
  }
  r.census = CaseCensus();
  return r;
}

class ResultReporter : public ::testing::EmptyTestEventListener {
 public:
  explicit ResultReporter(int fd) : fd_(fd) {}
  void OnTestEnd(const ::testing::TestInfo& t) override {
    const std::string line = EncodeRecord(RecordOf(t));
    // A failed write means the supervisor is gone; it will not read a record anyway.
    (void)RawWriteAll(fd_, line.data(), line.size());
  }

 private:
  int fd_;
};

}  // namespace

std::string EncodeRecord(const CaseRecord& r) {
  std::string line =
      std::string(kMagic) + "\t" + OutcomeCode(r.outcome) + "\t" + Escape(r.name) + "\t" + std::to_string(r.ms);
  for (const auto& p : r.parts) {
    line += std::string("\t") + (p.skipped ? "S" : "F") + "\t" + Escape(p.location) + "\t" + Escape(p.message);
  }
  if (!r.census.empty()) line += "\tC\t\t" + Escape(r.census);
  return line + "\n";
}

std::vector<CaseRecord> TakeRecords(std::string& buf) {
  std::vector<CaseRecord> out;
  size_t start = 0;
  for (size_t nl; (nl = buf.find('\n', start)) != std::string::npos; start = nl + 1) {
    CaseRecord r;
    if (DecodeRecord(buf.substr(start, nl - start), &r)) out.push_back(std::move(r));
  }
  buf.erase(0, start);
  return out;
}

const ChildRole& ThisChildRole() {
  static const ChildRole role = [] {
    ChildRole r;
    const char* marker = std::getenv(kIsolatedChildEnv);
    r.supervised = marker != nullptr && *marker != '\0';
    const char* fd = std::getenv(kResultFdEnv);
    if (fd != nullptr && std::atoi(fd) > 2) r.result_fd = std::atoi(fd);  // never a standard stream
    // Programs a test execs (another ipch binary, say) are not supervised by us: they must not
    // skip their own start-up sweep or write into our records.
    ::unsetenv(kIsolatedChildEnv);
    ::unsetenv(kResultFdEnv);
    if (r.result_fd >= 0 && ::fcntl(r.result_fd, F_SETFD, FD_CLOEXEC) != 0) r.result_fd = -1;
    return r;
  }();
  return role;
}

::testing::TestEventListener* NewResultReporter(int fd) { return new ResultReporter(fd); }

}  // namespace ipch::testing
