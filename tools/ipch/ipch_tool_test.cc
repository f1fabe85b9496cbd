// The ipch tool from outside: `ipch sweep` over objects planted with dead, live, reused and
// foreign owners side by side; `ipch run`, `list` and `repro` over a battery with every outcome
// (report_battery.cc), its reports checked against their schemas (docs/schemas); and its
// answers to bad input.
//
// Planted names start with "sweeptest<our pid>-" and are swept with that --prefix: the start-up
// sweep of a test binary running in parallel (prefix "ipch-") never takes them first.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <mqueue.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "../../harness/selftest/run_binary.h"
#include "ipch/child_process.h"
#include "ipch/deadline.h"
#include "ipch/sweep.h"
#include "ipch/temp_dir.h"
#include "ipch/testing.h"

namespace {

using ipch::selftest::Ended;
using ipch::selftest::Has;
using nlohmann::json;

Ended Tool(const std::vector<std::string>& args) { return ipch::selftest::RunBinary(IPCH_TOOL, args); }

std::string Prefix() { return "sweeptest" + std::to_string(::getpid()) + "-"; }

bool Exists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

bool MqueueMounted() { return Exists("/dev/mqueue"); }

// A pid that no process has: a child's, once reaped.
pid_t DeadPid() {
  auto child = ipch::ChildProcess::Spawn([](ipch::ControlChannel&) { return ipch::Ok(); });
  if (!child.ok() || !child->Wait(ipch::Deadline::After(std::chrono::seconds(10))).ok()) return -1;
  return child->pid();
}

// The objects planted for one owner pid, in every place the sweep looks; removed at the end
// whatever the test did (as root, whoever owns them).
class Planted {
 public:
  Planted(pid_t owner, const std::string& what) : stem_(Prefix() + "ipch-" + std::to_string(owner) + "-" + what) {}
  ~Planted() {
    std::error_code ec;
    std::filesystem::remove_all(dir(), ec);
    ::shm_unlink(("/" + stem_).c_str());
    ::mq_unlink(("/" + stem_).c_str());
  }
  std::string dir() const { return std::filesystem::temp_directory_path().string() + "/" + stem_; }
  std::string shm() const { return "/dev/shm/" + stem_; }
  std::string mqueue() const { return "/dev/mqueue/" + stem_; }
  std::vector<std::string> paths() const {
    std::vector<std::string> p{dir(), shm()};
    if (MqueueMounted()) p.push_back(mqueue());
    return p;
  }
  // Made by the calling process: a scratch dir holding a file, a POSIX segment, a POSIX queue.
  ::testing::AssertionResult Make() const {
    std::error_code ec;
    std::filesystem::create_directories(std::filesystem::path(dir()) / "sub", ec);
    if (ec) return ::testing::AssertionFailure() << "mkdir " << dir() << ": " << ec.message();
    const int fd = ::shm_open(("/" + stem_).c_str(), O_CREAT | O_EXCL | O_RDWR, 0600);
    if (fd < 0) return ::testing::AssertionFailure() << "shm_open " << stem_ << ": " << std::strerror(errno);
    ::close(fd);
    if (MqueueMounted()) {
      const mqd_t q = ::mq_open(("/" + stem_).c_str(), O_CREAT | O_EXCL | O_RDWR, 0600, nullptr);
      if (q == static_cast<mqd_t>(-1)) return ::testing::AssertionFailure() << "mq_open: " << std::strerror(errno);
      ::mq_close(q);
    }
    return ::testing::AssertionSuccess();
  }

 private:
  std::string stem_;
};

// The objects of a JSON report, by name.
std::map<std::string, json> ByName(const json& doc) {
  std::map<std::string, json> out;
  for (const auto& o : doc.at("objects")) out[o.at("name").get<std::string>()] = o;
  return out;
}

TEST(IpchSweep, ListsTheDeadOwnersObjectsAndKeepsTheLiveOnes) {
  const pid_t dead = DeadPid();
  ASSERT_GT(dead, 0);
  Planted gone(dead, "gone"), mine(::getpid(), "live");
  ASSERT_TRUE(gone.Make());
  ASSERT_TRUE(mine.Make());

  const Ended listed = Tool({"sweep", "--prefix", Prefix(), "--dry-run", "--json"});
  ASSERT_TRUE(WIFEXITED(listed.status) && WEXITSTATUS(listed.status) == 0) << listed.output;
  const json doc = json::parse(listed.output, nullptr, false);
  ASSERT_FALSE(doc.is_discarded()) << "not JSON:\n" << listed.output;
  EXPECT_EQ(doc.at("dry_run"), true);
  EXPECT_EQ(doc.at("sysv"), false) << "a narrower prefix leaves unnamed SysV segments out";
  const auto objects = ByName(doc);
  EXPECT_EQ(objects.size(), gone.paths().size()) << listed.output;
  for (const auto& p : gone.paths()) {
    ASSERT_TRUE(objects.count(p)) << p << " is not listed:\n" << listed.output;
    EXPECT_EQ(objects.at(p).at("owner_pid"), dead);
    EXPECT_EQ(objects.at(p).at("why"), "pid " + std::to_string(dead) + " does not exist");
    EXPECT_EQ(objects.at(p).at("removed"), false);
    EXPECT_TRUE(Exists(p)) << "--dry-run removed " << p;
  }
  EXPECT_EQ(objects.at(gone.dir()).at("kind"), "scratch dir");
  EXPECT_EQ(objects.at(gone.shm()).at("kind"), "posix shm");

  const Ended swept = Tool({"sweep", "--prefix", Prefix()});
  ASSERT_TRUE(WIFEXITED(swept.status) && WEXITSTATUS(swept.status) == 0) << swept.output;
  for (const auto& p : gone.paths()) {
    EXPECT_FALSE(Exists(p)) << p << " survived the sweep:\n" << swept.output;
    EXPECT_TRUE(Has(swept.output, "removed ")) << swept.output;
  }
  for (const auto& p : mine.paths()) EXPECT_TRUE(Exists(p)) << "a live owner's " << p << " was removed";
  EXPECT_TRUE(Has(swept.output, std::to_string(gone.paths().size()) + " removed")) << swept.output;
}

TEST(IpchSweep, APidReusedByALaterProcessIsJudgedByItsStartTime) {
  // The object is made first; then a process is started until one starts measurably later
  // (its start time is known to a clock tick) and the object is renamed to carry its pid.
  const std::string draft = "/dev/shm/" + Prefix() + "draft";
  const int fd = ::open(draft.c_str(), O_CREAT | O_EXCL | O_RDWR, 0600);
  ASSERT_GE(fd, 0);
  ::close(fd);
  struct statx sx {};
  ASSERT_EQ(::statx(AT_FDCWD, draft.c_str(), 0, STATX_BTIME, &sx), 0);
  if (!(sx.stx_mask & STATX_BTIME)) {
    ::unlink(draft.c_str());
    GTEST_SKIP() << "/dev/shm records no birth time here: a renamed object cannot stand for an older one";
  }
  const timespec made{static_cast<time_t>(sx.stx_btime.tv_sec), static_cast<long>(sx.stx_btime.tv_nsec)};
  const auto until = ipch::Deadline::After(ipch::Scaled(std::chrono::seconds(10)));
  std::optional<ipch::ChildProcess> later;
  while (!until.expired()) {
    auto c = ipch::ChildProcess::Spawn([](ipch::ControlChannel& ch) -> ipch::Status {
      (void)ch.WaitSignal(ipch::Deadline::Never());  // alive until killed
      return ipch::Ok();
    });
    ASSERT_TRUE(c.ok()) << c.error().ToString();
    if (ipch::sweep::JudgeOwner(c->pid(), made).dead) {
      later.emplace(std::move(*c));
      break;
    }
  }
  ASSERT_TRUE(later.has_value()) << "no process started measurably after the object within the bound";
  Planted reused(later->pid(), "reused"), live(later->pid(), "fresh");
  ASSERT_EQ(::rename(draft.c_str(), reused.shm().c_str()), 0);
  ASSERT_TRUE(live.Make());  // made now: its owner is that same, live, process

  const Ended swept = Tool({"sweep", "--prefix", Prefix(), "--json"});
  ASSERT_TRUE(WIFEXITED(swept.status) && WEXITSTATUS(swept.status) == 0) << swept.output;
  const json doc = json::parse(swept.output, nullptr, false);
  ASSERT_FALSE(doc.is_discarded()) << "not JSON:\n" << swept.output;
  const auto objects = ByName(doc);
  ASSERT_TRUE(objects.count(reused.shm())) << swept.output;
  EXPECT_TRUE(Has(objects.at(reused.shm()).at("why").get<std::string>(),
                  "pid " + std::to_string(later->pid()) + " was reused: the process with it started "))
      << swept.output;
  EXPECT_FALSE(Exists(reused.shm()));
  for (const auto& p : live.paths()) EXPECT_TRUE(Exists(p)) << "the live owner's " << p << " was removed";
  EXPECT_EQ(objects.size(), 1u) << swept.output;
}

TEST(IpchSweep, ObjectsOfAnotherUidAreNeverTouched) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to make objects as another uid";
  const pid_t dead = DeadPid();
  ASSERT_GT(dead, 0);
  Planted theirs(dead, "nobody");
  // Made by a child that became uid 65534 (nobody) first.
  auto maker = ipch::ChildProcess::Spawn([&](ipch::ControlChannel&) -> ipch::Status {
    if (::setresgid(65534, 65534, 65534) != 0 || ::setresuid(65534, 65534, 65534) != 0) {
      return ipch::ErrnoError("setresuid");
    }
    if (auto made = theirs.Make(); !made) return ipch::MakeError(ipch::Errc::InvalidArgument, made.message());
    return ipch::Ok();
  });
  ASSERT_TRUE(maker.ok());
  auto exit = maker->Wait(ipch::Deadline::After(ipch::Scaled(std::chrono::seconds(10))));
  ASSERT_TRUE(exit.ok() && exit->Success()) << maker->Describe();
  // The temp directory is sticky and world-writable; /dev/shm and /dev/mqueue too.
  for (const auto& p : theirs.paths()) ASSERT_TRUE(Exists(p)) << p;

  const Ended swept = Tool({"sweep", "--prefix", Prefix(), "--json"});
  ASSERT_TRUE(WIFEXITED(swept.status) && WEXITSTATUS(swept.status) == 0) << swept.output;
  EXPECT_EQ(json::parse(swept.output, nullptr, false).value("found", -1), 0) << swept.output;
  for (const auto& p : theirs.paths()) EXPECT_TRUE(Exists(p)) << "another uid's " << p << " was removed";
}

TEST(IpchTool, BadInputGetsOneClearMessageAndStatus2) {
  struct Case {
    std::vector<std::string> args;
    std::string says;
  };
  const std::vector<Case> cases = {
      {{}, "A subcommand is required"},
      {{"sweeep"}, "sweeep"},
      {{"sweep", "--bogus"}, "--bogus"},
      {{"sweep", "--prefix", "a/b"}, "without '/'"},
      {{"sweep", "--prefix", ""}, "the prefix is empty"},
      {{"sweep", "--min-age", "-1"}, "--min-age"},
      {{"sweep", "--min-age", "soon"}, "--min-age"},
  };
  for (const auto& c : cases) {
    const Ended e = Tool(c.args);
    std::string shown;
    for (const auto& a : c.args) shown += " '" + a + "'";
    EXPECT_TRUE(WIFEXITED(e.status) && WEXITSTATUS(e.status) == 2) << "ipch" << shown << ":\n" << e.output;
    EXPECT_TRUE(Has(e.output, c.says)) << "ipch" << shown << ":\n" << e.output;
    EXPECT_TRUE(Has(e.output, "--help")) << "ipch" << shown << ":\n" << e.output;
  }
  const Ended help = Tool({"sweep", "--help"});
  EXPECT_TRUE(WIFEXITED(help.status) && WEXITSTATUS(help.status) == 0) << help.output;
  EXPECT_TRUE(Has(help.output, "--dry-run") && Has(help.output, "--json")) << help.output;
}

// ---- ipch run, list and repro over the report battery.

const std::string kBattery = IPCH_REPORT_BATTERY;
const std::string kSchemas = IPCH_SCHEMAS;

std::string Slurp(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

bool ExitedWith(const Ended& e, int code) { return WIFEXITED(e.status) && WEXITSTATUS(e.status) == code; }

// A command through the shell, for the schema validators: its exit status and output.
Ended Shell(const std::string& command) { return ipch::selftest::RunBinary("/bin/sh", {"-c", command}); }

ipch::TempDir Scratch() {
  auto d = ipch::TempDir::Create("ipch-" + std::to_string(::getpid()) + "-tooltest-");
  if (!d.ok()) ADD_FAILURE() << d.error().ToString();
  return d.ok() ? std::move(*d) : ipch::TempDir();
}

// Validates `doc` (JSON) against the CTRF schema with python3-jsonschema.
Ended ValidateCtrf(const std::string& doc) {
  return Shell(
      "python3 -c 'import json, sys, jsonschema; "
      "jsonschema.Draft7Validator(json.load(open(sys.argv[1]))).validate(json.load(open(sys.argv[2])))' '" +
      kSchemas + "/ctrf.schema.json' '" + doc + "'");
}

class IpchRunReports : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new ipch::TempDir(Scratch());
    const std::string d = dir_->path().string();
    run_ = new Ended(Tool({"run", "--battery", kBattery, "-g", "Basic", "-g", "Fault", "--junit", d + "/r.xml",
                           "--ctrf", d + "/r.json", "--html", d + "/r.html", "--results", d + "/results.json"}));
  }
  static void TearDownTestSuite() {
    delete run_;
    delete dir_;
  }
  static std::string Path(const char* name) { return dir_->path().string() + "/" + name; }
  static ipch::TempDir* dir_;
  static Ended* run_;
};
ipch::TempDir* IpchRunReports::dir_ = nullptr;
Ended* IpchRunReports::run_ = nullptr;

TEST_F(IpchRunReports, ExitsOneAndPrintsTheMatrixAndAReplayPerFailure) {
  EXPECT_TRUE(ExitedWith(*run_, 1)) << run_->output;
  EXPECT_TRUE(Has(run_->output, "ipch run: 10 cases from ")) << run_->output;
  EXPECT_TRUE(Has(run_->output, "beta      FAIL 2/3")) << run_->output;
  for (const char* c : {"Fake/Basic/beta.FailsWithHostileText", "Fake/Basic/beta.Crashes"}) {
    EXPECT_TRUE(
        Has(run_->output, std::string("ipch repro \"IPCH_SEED=20261124 ") + kBattery + " --gtest_filter='" + c + "'\""))
        << c << "\n"
        << run_->output;
  }
  EXPECT_TRUE(Has(run_->output, "beta Basic.Crashes: aborted (SIGABRT)")) << run_->output;
}

TEST_F(IpchRunReports, JUnitValidatesAgainstTheSchemaAndCarriesEachOutcome) {
  const std::string xml = Slurp(Path("r.xml"));
  const Ended valid = Shell("xmllint --noout --schema '" + kSchemas + "/junit.xsd' '" + Path("r.xml") + "'");
  EXPECT_TRUE(ExitedWith(valid, 0)) << valid.output;
  // The check can fail: the same report without a classname does not validate.
  std::string broken = xml;
  broken.replace(broken.find(" classname=\"beta\""), 17, "");
  std::ofstream(Path("broken.xml")) << broken;
  const Ended invalid = Shell("xmllint --noout --schema '" + kSchemas + "/junit.xsd' '" + Path("broken.xml") + "'");
  EXPECT_TRUE(ExitedWith(invalid, 3)) << invalid.output;
  EXPECT_TRUE(Has(invalid.output, "classname")) << invalid.output;

  EXPECT_TRUE(Has(xml, "<testsuites name=\"ipch run\" tests=\"10\" failures=\"2\" errors=\"0\" skipped=\"2\"")) << xml;
  EXPECT_TRUE(Has(xml, "<testsuite name=\"beta\" tests=\"5\" failures=\"2\"")) << xml;
  EXPECT_TRUE(Has(xml, "<testcase name=\"Basic.FailsWithHostileText\" classname=\"beta\"")) << xml;
  // The message attribute is the failure's first line, escaped; the text adds the replay line.
  EXPECT_TRUE(
      Has(xml,
          "<failure message=\"expected PeerClosed, got &lt;Corrupt&gt; &amp; &quot;more&quot; &#39;quoted&#39; ]]&gt;"))
      << xml;
  EXPECT_TRUE(
      Has(xml, "replay: IPCH_SEED=20261124 " + kBattery + " --gtest_filter='Fake/Basic/beta.FailsWithHostileText'"))
      << xml;
  EXPECT_TRUE(Has(xml, "<failure message=\"aborted (SIGABRT)\"")) << xml;
  EXPECT_TRUE(Has(xml, "<skipped message=\"UNSUPPORTED: beta lacks capability RawPeer\"/>")) << xml;
  EXPECT_TRUE(Has(xml, "<skipped message=\"N/A: alpha has no byte stream to cut short\"/>")) << xml;
  EXPECT_TRUE(Has(xml, "<testcase name=\"Basic.Passes\" classname=\"alpha\" time=")) << xml;
  EXPECT_FALSE(Has(xml, "\x01")) << "a control character reached the XML";
}

TEST_F(IpchRunReports, CtrfValidatesAgainstTheSchemaAndCarriesTransportGroupSeedAndReplay) {
  const Ended valid = ValidateCtrf(Path("r.json"));
  EXPECT_TRUE(ExitedWith(valid, 0)) << valid.output;
  const json doc = json::parse(Slurp(Path("r.json")), nullptr, false);
  ASSERT_TRUE(doc.is_object());
  // The check can fail: a status the format does not have.
  json broken = doc;
  broken["results"]["tests"][0]["status"] = "unsupported";
  std::ofstream(Path("broken.json")) << broken.dump();
  const Ended invalid = ValidateCtrf(Path("broken.json"));
  EXPECT_TRUE(ExitedWith(invalid, 1)) << invalid.output;
  EXPECT_TRUE(Has(invalid.output, "'unsupported' is not one of")) << invalid.output;

  EXPECT_EQ(doc["reportFormat"], "CTRF");
  const json& summary = doc["results"]["summary"];
  EXPECT_EQ(summary["tests"], 10);
  EXPECT_EQ(summary["passed"], 6);
  EXPECT_EQ(summary["failed"], 2);
  EXPECT_EQ(summary["skipped"], 2);
  std::map<std::string, json> by_name;
  for (const auto& t : doc["results"]["tests"]) by_name[t["name"]] = t;
  const json& crash = by_name["Fake/Basic/beta.Crashes"];
  EXPECT_EQ(crash["status"], "failed");
  EXPECT_EQ(crash["suite"], json::array({"beta", "Basic"}));
  EXPECT_EQ(crash["parameters"]["transport"], "beta");
  EXPECT_EQ(crash["parameters"]["group"], "Basic");
  EXPECT_EQ(crash["parameters"]["seed"], "20261124");
  EXPECT_EQ(crash["extra"]["replay"], "IPCH_SEED=20261124 " + kBattery + " --gtest_filter='Fake/Basic/beta.Crashes'");
  EXPECT_TRUE(Has(crash["trace"].get<std::string>(), "aborted (SIGABRT)")) << crash.dump(2);
  const json& na = by_name["Fake/Fault/alpha.ShortWrite"];
  EXPECT_EQ(na["status"], "skipped");
  EXPECT_EQ(na["rawStatus"], "N/A");
  EXPECT_EQ(na["message"], "N/A: alpha has no byte stream to cut short");
  EXPECT_EQ(by_name["Fake/Basic/beta.NeedsRawPeer"]["rawStatus"], "UNSUPPORTED");
  // The same test seed the battery's replay line prints.
  const json results = json::parse(Slurp(Path("results.json")), nullptr, false);
  ASSERT_TRUE(results.is_object());
  for (const auto& c : results["cases"]) {
    if (c["suite"] == "Fake/Basic/beta" && c["name"] == "Crashes") {
      EXPECT_EQ(crash["parameters"]["testSeed"], std::to_string(c["test_seed"].get<uint64_t>()));
    }
  }
}

TEST_F(IpchRunReports, HtmlIsOnePageWithTheMatrixChartsFailuresAndReasons) {
  const std::string html = Slurp(Path("r.html"));
  EXPECT_TRUE(Has(html, "<h1>ipch run: <span class=\"verdict-FAIL\">FAIL</span></h1>")) << html;
  EXPECT_TRUE(Has(html, "<table class=\"matrix\">")) << html;
  EXPECT_TRUE(Has(html, "<tr><th>beta</th><td class=\"fail\" title=\"beta Basic\">2 failed 1 passed +1u</td>")) << html;
  EXPECT_TRUE(Has(html, "<svg class=\"chart\" id=\"cases-chart\"")) << html;
  EXPECT_TRUE(Has(html, "got &lt;Corrupt&gt; &amp; &quot;more&quot; &#39;quoted&#39; ]]&gt;")) << html;
  EXPECT_FALSE(Has(html, "<Corrupt>")) << "a failure message reached the page unescaped";
  EXPECT_TRUE(Has(html, "<code class=\"replay\">IPCH_SEED=20261124 ")) << html;
  EXPECT_TRUE(Has(html, "UNSUPPORTED: &lt;transport&gt; lacks capability RawPeer")) << html;
  // Self-contained: nothing to fetch.
  for (const char* ref : {"src=", "href=", "@import", "url("}) EXPECT_FALSE(Has(html, ref)) << ref;
}

// The reports are a function of the results document: made again from it, they are the same.
TEST_F(IpchRunReports, ReportRemakesTheSameReportsFromTheResults) {
  const Ended again =
      Tool({"report", "--from", Path("results.json"), "--junit", Path("again.xml"), "--html", Path("again.html")});
  ASSERT_TRUE(ExitedWith(again, 0)) << again.output;
  EXPECT_EQ(Slurp(Path("again.xml")), Slurp(Path("r.xml")));
  EXPECT_EQ(Slurp(Path("again.html")), Slurp(Path("r.html")));
  const Ended bad = Tool({"report", "--from", Path("r.xml"), "--junit", Path("never.xml")});
  EXPECT_TRUE(ExitedWith(bad, 2) && Has(bad.output, "not an ipch-results-1 document")) << bad.output;
  EXPECT_FALSE(Exists(Path("never.xml")));
}

// On a terminal the supervisor redraws one progress line in place (IPCH_PROGRESS=live stands for
// the terminal here); in a log (a pipe) there is none.
TEST(IpchRun, ProgressLineOnATerminalOnly) {
  const Ended live =
      ipch::selftest::RunBinary(IPCH_TOOL, {"run", "--battery", kBattery, "-g", "Basic"}, {"IPCH_PROGRESS=live"});
  EXPECT_TRUE(ExitedWith(live, 1)) << live.output;
  // The first two cases to start are alpha's, which pass: whichever ends first, none failed.
  EXPECT_TRUE(Has(live.output, "\r\033[K[ipch] 1/8 cases, 0 failed, ")) << live.output;
  EXPECT_TRUE(Has(live.output, " elapsed, ETA ")) << live.output;
  EXPECT_TRUE(Has(live.output, "\r\033[K[ipch] 8/8 cases, 2 failed, ")) << live.output;
  const Ended plain = Tool({"run", "--battery", kBattery, "-g", "Basic"});
  EXPECT_TRUE(ExitedWith(plain, 1)) << plain.output;
  EXPECT_FALSE(Has(plain.output, "\033[K")) << plain.output;
  EXPECT_TRUE(Has(plain.output, "[  FAILED  ] Fake/Basic/beta.Crashes")) << plain.output;
}

// The page as a browser sees it: Debian's chromium, headless, reads it, builds the matrix and
// the chart, and draws it. Installed by scripts/test; without it (outside CI) the case says so.
TEST_F(IpchRunReports, HtmlRendersInHeadlessChromium) {
  const std::string chromium = "/usr/bin/chromium";
  if (::access(chromium.c_str(), X_OK) != 0) {
    if (std::getenv("CI") != nullptr) FAIL() << "chromium is not installed, and scripts/test installs it";
    GTEST_SKIP() << "UNSUPPORTED: chromium is not installed (Debian: chromium; scripts/test installs it)";
  }
  // Its profile stays in the scratch directory, removed with it.
  const std::string browse =
      chromium + " --headless --no-sandbox --disable-gpu --no-first-run --user-data-dir='" + Path("profile") + "' ";
  const Ended dom = Shell(browse + "--dump-dom 'file://" + Path("r.html") + "' 2>/dev/null");
  ASSERT_TRUE(ExitedWith(dom, 0)) << dom.output;
  EXPECT_TRUE(Has(dom.output, "<table class=\"matrix\">")) << dom.output;
  EXPECT_TRUE(Has(dom.output, "<td class=\"fail\" title=\"beta Basic\">2 failed 1 passed +1u</td>")) << dom.output;
  EXPECT_TRUE(Has(dom.output, "<svg class=\"chart\" id=\"cases-chart\"")) << dom.output;
  EXPECT_TRUE(Has(dom.output, "<rect x=\"110\"")) << dom.output;
  const Ended shot = Shell(browse + "--hide-scrollbars --window-size=1200,900 --screenshot='" + Path("shot.png") +
                           "' 'file://" + Path("r.html") + "' 2>&1");
  EXPECT_TRUE(ExitedWith(shot, 0)) << shot.output;
  const std::string png = Slurp(Path("shot.png"));
  EXPECT_EQ(png.substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8)) << "no screenshot: " << shot.output;
  EXPECT_GT(png.size(), 20000u) << "an empty page draws a few hundred bytes";
}

// A short run of the benchmarks: every figure beside its baseline with a ratio and a goal, the
// JSON the HTML report charts, and the chart in the page. (A sanitizer build has no benchmarks.)
TEST_F(IpchRunReports, BenchPrintsRatiosAndTheReportChartsThem) {
  const std::string figures = Path("bench.json");
  const Ended bench = Tool({"bench", "-t", "unix", "-t", "posix_shm", "-s", "64", "--repetitions", "1", "--min-time",
                            "0.005", "--json", figures});
  if (!IPCH_HAS_BENCH) {
    EXPECT_TRUE(ExitedWith(bench, 2) && Has(bench.output, "built without the benchmarks")) << bench.output;
    return;
  }
  ASSERT_TRUE(ExitedWith(bench, 0)) << bench.output;
  EXPECT_TRUE(Has(bench.output, "unix       round trip  64")) << bench.output;
  EXPECT_TRUE(Has(bench.output, "unix       stream      64")) << bench.output;
  EXPECT_TRUE(Has(bench.output, "posix_shm  round trip  64")) << bench.output;
  EXPECT_TRUE(Has(bench.output, "raw spin ping-pong")) << bench.output;
  const json doc = json::parse(Slurp(figures), nullptr, false);
  ASSERT_TRUE(doc.is_object()) << Slurp(figures);
  EXPECT_EQ(doc["format"], "ipch-bench-1");
  // unix: round trip and stream, and the checksum's own cost beside its round trip; posix_shm: round trip.
  ASSERT_EQ(doc["results"].size(), 4u) << doc.dump(2);
  for (const auto& r : doc["results"]) {
    EXPECT_GT(r["ratio"].get<double>(), 0.0) << r.dump();
    if (r["metric"] == "checksum") {
      EXPECT_EQ(r["transport"], "crc32c") << r.dump();
      EXPECT_EQ(r["goal"].get<double>(), 0.0) << "the checksum's cost is a figure, not a goal: " << r.dump();
      continue;
    }
    EXPECT_GT(r["goal"].get<double>(), 0.0) << r.dump();
    EXPECT_EQ(r["size"], "64");
    // Unix sockets have the careful two-read baseline beside their limit; shared memory has none.
    EXPECT_EQ(r.contains("careful_ratio"), r["transport"] == "unix") << r.dump();
  }
  EXPECT_TRUE(Has(bench.output, "careful")) << bench.output;
  // A size picks the figures of that size only: the rings' 64-byte round trip is not a 4 KiB one.
  const Ended stream = Tool({"bench", "-t", "posix_shm", "-s", "4K", "--repetitions", "1", "--min-time", "0.005"});
  ASSERT_TRUE(ExitedWith(stream, 0)) << stream.output;
  EXPECT_TRUE(Has(stream.output, "posix_shm  stream      4K")) << stream.output;
  EXPECT_FALSE(Has(stream.output, "round trip")) << stream.output;
  const Ended report =
      Tool({"report", "--from", Path("results.json"), "--html", Path("bench.html"), "--bench", figures});
  ASSERT_TRUE(ExitedWith(report, 0)) << report.output;
  const std::string html = Slurp(Path("bench.html"));
  EXPECT_TRUE(Has(html, "<svg class=\"chart\" id=\"bench-round-trip\"")) << html;
  EXPECT_TRUE(Has(html, "<title>unix 64: ")) << html;
  for (const auto& [args, says] : std::vector<std::pair<std::vector<std::string>, std::string>>{
           {{"bench", "-t", "inmem"}, "inmem has no benchmark"},
           {{"bench", "-t", "nope"}, "unknown transport 'nope' (transports: tcp, tcp6, asio_tcp, unix, fifo"},
           {{"bench", "-s", "3K"}, "unknown size '3K' (sizes: 64, 4K, 64K, 1M)"},
           {{"bench", "--json", dir_->path().string()}, "is a directory"}}) {
    const Ended e = Tool(args);
    EXPECT_TRUE(ExitedWith(e, 2) && Has(e.output, says)) << args[1] << ":\n" << e.output;
  }
}

TEST(IpchRun, BadInputNamesTheChoicesAndWritesNothing) {
  const ipch::TempDir d = Scratch();
  const std::string report = d.path().string() + "/r.xml";
  struct Case {
    std::vector<std::string> args;
    std::string says;
  };
  const std::vector<Case> cases = {
      {{"-t", "gamma"}, "unknown transport 'gamma' (transports: alpha, beta)"},
      {{"-g", "Nope"}, "unknown group 'Nope' (groups: Basic, Fault, Slow)"},
      {{"--seed", "12x"}, "a seed is a whole number from 0 to 18446744073709551615, got '12x'"},
      {{"--seed", "18446744073709551616"}, "got '18446744073709551616'"},
      {{"--jobs", "0"}, "--jobs"},
      {{"--ctrf", d.path().string()}, d.path().string() + " is a directory"},
      {{"--ctrf", "/etc/hostname/r.json"}, "/etc/hostname is not a directory"},
      {{"--ctrf", report}, report + " is already another report's path"},
      {{"--bench", "/etc/hostname"}, "is not an 'ipch bench --json' document"},
      {{"--known", d.path().string() + "/none.txt"}, "--known: cannot read"},
  };
  for (const auto& c : cases) {
    std::vector<std::string> args = {"run", "--battery", kBattery, "--junit", report};
    args.insert(args.end(), c.args.begin(), c.args.end());
    const Ended e = Tool(args);
    std::string shown;
    for (const auto& a : c.args) shown += " '" + a + "'";
    EXPECT_TRUE(ExitedWith(e, 2)) << "ipch run" << shown << ":\n" << e.output;
    EXPECT_TRUE(Has(e.output, c.says)) << "ipch run" << shown << ":\n" << e.output;
    EXPECT_TRUE(Has(e.output, "--help")) << "ipch run" << shown << ":\n" << e.output;
    EXPECT_FALSE(Exists(report)) << "ipch run" << shown << " wrote a report";
  }
  const std::string text = d.path().string() + "/notes.txt";
  std::ofstream(text) << "not a program\n";
  for (const auto& [battery, says] :
       std::vector<std::pair<std::string, std::string>>{{"/nonexistent/battery", "the battery /nonexistent/battery"},
                                                        {text, "the battery " + text + " is not an executable file"},
                                                        {"/bin/true", "lists no test cases"}}) {
    const Ended e = Tool({"run", "--battery", battery});
    EXPECT_TRUE(ExitedWith(e, 2) && Has(e.output, says)) << battery << ":\n" << e.output;
  }
}

// A terminal's Ctrl-C reaches the whole foreground process group: the tool, the battery's
// supervisor and the running case. The run stops with 130, writes no report, leaves nothing.
TEST(IpchRun, CtrlCStopsWithStatus130AndLeavesNothing) {
  const ipch::TempDir d = Scratch();
  const std::string marker = d.path().string() + "/running", report = d.path().string() + "/r.xml";
  auto child = ipch::selftest::Start(IPCH_TOOL, {"run", "--battery", kBattery, "-g", "Slow", "--junit", report},
                                     {"IPCH_TOOL_TEST_MARKER=" + marker}, /*own_group=*/true);
  ASSERT_GT(child.pid, 0);
  // Waits for the case to say it runs (a watchdog bounds a broken binary's wait).
  const auto until = ipch::selftest::Clock::now() + ipch::selftest::kWatchdog;
  while (Slurp(marker).empty() && ipch::selftest::Clock::now() < until) {
    pollfd p{child.out, POLLIN, 0};
    ::poll(&p, 1, 10);
    if (p.revents & POLLIN) {
      char buf[4096];
      if (::read(child.out, buf, sizeof buf) <= 0) break;
    }
  }
  const pid_t case_pid = static_cast<pid_t>(std::atol(Slurp(marker).c_str()));
  ASSERT_GT(case_pid, 0) << "the Slow case never started";
  ASSERT_EQ(::kill(-child.pid, SIGINT), 0);
  const pid_t tool = child.pid;
  const Ended e = ipch::selftest::Collect(child);
  EXPECT_TRUE(ExitedWith(e, 130)) << e.output;
  EXPECT_TRUE(Has(e.output, "stopped by SIGINT")) << e.output;
  EXPECT_TRUE(Has(e.output, "no report written")) << e.output;
  EXPECT_FALSE(Exists(report));
  EXPECT_TRUE(::kill(case_pid, 0) != 0 && errno == ESRCH) << "the case's process " << case_pid << " outlived the run";
  const std::string mine = "ipch-" + std::to_string(tool) + "-";
  for (const auto& entry : std::filesystem::directory_iterator(std::filesystem::temp_directory_path())) {
    EXPECT_NE(entry.path().filename().string().rfind(mine, 0), 0u) << entry.path() << " left behind";
  }
}

TEST(IpchRepro, RerunsTheCaseFromItsReplayLine) {
  const std::string line = "[  REPLAY  ] IPCH_SEED=7 " + kBattery +
                           " --gtest_filter='Fake/Basic/beta.FailsWithHostileText'  (test seed 123)";
  const Ended failing = Tool({"repro", line});
  EXPECT_TRUE(ExitedWith(failing, 1)) << failing.output;
  EXPECT_TRUE(Has(failing.output, "expected PeerClosed")) << failing.output;
  // The rerun has the line's seed: its own replay line says so.
  EXPECT_TRUE(Has(failing.output, "[  REPLAY  ] IPCH_SEED=7 ")) << failing.output;
  const Ended passing = Tool({"repro", "IPCH_SEED=7 " + kBattery + " --gtest_filter='Fake/Basic/alpha.Passes'"});
  EXPECT_TRUE(ExitedWith(passing, 0)) << passing.output;
  EXPECT_TRUE(Has(passing.output, "[       OK ] Fake/Basic/alpha.Passes")) << passing.output;
  // A crash is the case's failure, named, and what the case made is removed (as in the run).
  const Ended crash = Tool({"repro", "IPCH_SEED=7 " + kBattery + " --gtest_filter='Fake/Basic/beta.Crashes'"});
  EXPECT_TRUE(ExitedWith(crash, 1)) << crash.output;
  EXPECT_TRUE(Has(crash.output, "Fake/Basic/beta.Crashes: aborted (SIGABRT)")) << crash.output;
  EXPECT_TRUE(Has(crash.output, "left behind and removed: scratch dir")) << crash.output;
  // --direct runs it in the binary's own process: the abort is its exit status.
  const Ended direct =
      Tool({"repro", "--direct", "IPCH_SEED=7 " + kBattery + " --gtest_filter='Fake/Basic/beta.FailsWithHostileText'"});
  EXPECT_TRUE(ExitedWith(direct, 1)) << direct.output;
  EXPECT_TRUE(Has(direct.output, "[  FAILED  ] Fake/Basic/beta.FailsWithHostileText")) << direct.output;

  for (const auto& [bad, says] : std::vector<std::pair<std::string, std::string>>{
           {"hello", "not a replay line"},
           {"IPCH_SEED=x1 " + kBattery + " --gtest_filter='A.B'", "IPCH_SEED must be a whole number"},
           {"IPCH_SEED=1 /nonexistent/bin --gtest_filter='A.B'", "/nonexistent/bin is not there"},
           {"IPCH_SEED=1 " + kBattery + " extra --gtest_filter='A.B'", "unexpected 'extra'"}}) {
    const Ended e = Tool({"repro", bad});
    EXPECT_TRUE(ExitedWith(e, 2) && Has(e.output, says) && Has(e.output, "--help")) << bad << ":\n" << e.output;
  }
}

TEST(IpchList, ShowsTransportsCapsHooksGroupsAndCases) {
  const Ended e = Tool({"list", "--battery", kBattery, "--json"});
  ASSERT_TRUE(ExitedWith(e, 0)) << e.output;
  const json doc = json::parse(e.output, nullptr, false);
  ASSERT_TRUE(doc.is_object()) << e.output;
  EXPECT_EQ(doc["groups"], json::array({"Basic", "Fault", "Slow"}));
  EXPECT_EQ(doc["cases"], 12);
  ASSERT_EQ(doc["transports"].size(), 2u);
  const json& alpha = doc["transports"][0];
  EXPECT_EQ(alpha["name"], "alpha");
  EXPECT_EQ(alpha["caps"], json::array({"Stream", "SyscallIo"}));
  EXPECT_EQ(alpha["hooks"], json::array({"ConnectRaw"}));
  EXPECT_EQ(alpha["cases"], 6);
  EXPECT_EQ(alpha["groups"]["Basic"], 4);
  const Ended text = Tool({"list", "--battery", kBattery});
  EXPECT_TRUE(ExitedWith(text, 0)) << text.output;
  EXPECT_TRUE(Has(text.output, "alpha      caps:  Stream SyscallIo")) << text.output;
  EXPECT_TRUE(Has(text.output, "beta       caps:  CrossProcess")) << text.output;
}

}  // namespace
