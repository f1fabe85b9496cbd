// Proves the battery can fail: runs it over each deliberately broken transport (broken.h)
// and asserts that the specific cases aimed at that flaw fail, while the same cases pass for
// the control, which differs from each broken transport only by the planted bug.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace {

struct RunResult {
  int exit_code = -1;
  std::string output;
};

RunResult RunBattery(const std::string& filter, const std::string& flags = "", const std::string& env = "",
                     const char* binary = IPCH_BROKEN_BIN) {
  // A short bound for "expected to succeed" steps: the broken transports hang where a correct
  // one would not, and the self-test only needs them to fail, not to wait the full bound.
  std::string cmd =
      env + " IPCH_SETTLE_MS=3000 '" + binary + "' " + flags + " --gtest_color=no --gtest_filter='" + filter + "' 2>&1";
  RunResult r;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) return r;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) r.output.append(buf, n);
  int status = ::pclose(p);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return r;
}

// "Group.Case" names of `transport`, as a gtest filter in the battery instantiated as `prefix`.
std::string Filter(const std::string& transport, const std::vector<std::string>& cases,
                   const std::string& prefix = "Broken") {
  std::string f;
  for (const auto& c : cases) {
    auto dot = c.find('.');
    f += (f.empty() ? "" : ":") + prefix + "/" + c.substr(0, dot) + "/" + transport + c.substr(dot);
  }
  return f;
}

// `control` is the transport the broken one differs from by its planted bug only.
// Each of `cases` ("Group.Case") of `transport` is on a gtest line `tag` in `r`'s output.
void ExpectEachCase(const RunResult& r, const char* tag, const std::string& transport,
                    const std::vector<std::string>& cases, const std::string& prefix, const char* otherwise) {
  for (const auto& c : cases) {
    auto dot = c.find('.');
    const std::string line = std::string(tag) + " " + prefix + "/" + c.substr(0, dot) + "/" + transport + c.substr(dot);
    EXPECT_NE(r.output.find(line), std::string::npos) << otherwise << line << "\n" << r.output;
  }
}

void ExpectCaught(const std::string& transport, const std::vector<std::string>& cases,
                  const std::string& must_mention = "", const std::string& control_name = "naive_control") {
  RunResult control = RunBattery(Filter(control_name, cases));
  if (transport != "leaks_fd") {
    EXPECT_EQ(control.exit_code, 0) << "the control must pass the cases that catch " << transport << ":\n"
                                    << control.output;
  }
  RunResult broken = RunBattery(Filter(transport, cases));
  EXPECT_NE(broken.exit_code, 0) << transport << " passed the battery:\n" << broken.output;
  ExpectEachCase(broken, "[  FAILED  ]", transport, cases, "Broken", "not caught: ");
  if (!must_mention.empty()) {
    EXPECT_NE(broken.output.find(must_mention), std::string::npos) << broken.output;
  }
}

TEST(SelfTest, ControlPassesTheWholeBattery) {
  RunResult r = RunBattery("Broken/*/naive_control.*");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("[  PASSED  ]"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("[  FAILED  ]"), std::string::npos) << r.output;
}

TEST(SelfTest, IgnoringShortWritesIsCaught) {
  ExpectCaught("ignores_short_writes", {"Fault.ShortWritesAreCompleted", "Basic.RoundTripMaxSize"});
}

TEST(SelfTest, NotRetryingEintrIsCaught) { ExpectCaught("no_eintr_retry", {"Fault.EintrEverywhereIsInvisible"}); }

TEST(SelfTest, SwallowingErrorsIsCaught) {
  ExpectCaught(
      "swallows_errors",
      {"Lifecycle.ClientCloseIsSeenAsPeerClosed", "PeerDeath.PeerKilledAfterConnect", "Fault.PeerGoneUnderSendIsPeerClosed",
       "Fault.EachWriteInTurnFailingIsPeerClosedAndLosesNothingBefore",
       "Fault.ResetMidFrameIsPeerClosedAfterWholeMessages", "Fault.CloseMidFrameIsPeerClosedAfterWholeMessages"});
}

TEST(SelfTest, TreatingEagainAsFatalIsCaught) {
  ExpectCaught("eagain_is_fatal", {"Fault.EagainIsRetried", "Basic.RoundTripMaxSize"});
}

TEST(SelfTest, CorruptingAPayloadIsCaught) {
  ExpectCaught("corrupts_payload",
               {"Ordering.ChecksummedSequenceArrivesInOrder", "Ordering.LargeRandomMessagesIntact"});
}

TEST(SelfTest, IgnoringTheChecksumIsCaught) {
  ExpectCaught("ignores_checksum",
               {"Security.DamagedHeaderIsCorruptAtOnce", "Security.DamagedPayloadIsCorruptNeverDelivered",
                "Fault.FlippedBitOnTheWireIsCorruptNeverDelivered", "Fault.RandomBitFlipsNeverDeliverAWrongMessage"});
}

TEST(SelfTest, DroppingAPartialFrameOnTimeoutIsCaught) {
  ExpectCaught("drops_partial_frame",
               {"Fault.StallMidFrameTimesOutThenCompletes", "Security.FrameDeliveredOneByteAtATime"});
}

// The property battery (one stateful model, random command sequences) catches every flaw its
// commands can show, in one isolated run, without shrinking (RC_PARAMS=noshrink=1: caught is
// enough here). Through the toxics proxy it flips a bit of a message on the wire
// (ignores_checksum) and stalls one mid-frame while its receiver times out
// (drops_partial_frame). A flaw it cannot show is another group's: it never writes hostile
// bytes of its own (crashes_on_hostile_bytes). notifies_before_queueing loses a wake-up only
// while a receive waits as the send runs, which only the model's Exchange does.
TEST(SelfTest, ThePropertyBatteryCatchesEachFlawItsCommandsCanShow) {
  const std::vector<std::string> caught = {"no_eintr_retry",   "swallows_errors",  "eagain_is_fatal",
                                           "ignores_short_writes", "corrupts_payload", "loses_wakeup",
                                           "leaks_fd",         "ignores_checksum", "drops_partial_frame"};
  std::string filter = "Broken/Property/naive_control.*:Wakeup/Property/*";
  for (const auto& t : caught) filter += ":Broken/Property/" + t + ".*";
  // 200 sequences in every preset (a sanitizer's default is fewer), so that a flaw shows; both
  // ends in this process, where every flaw planted here shows (a peer process's leak would not
  // reach this process's audit), at a fraction of the cost.
  const RunResult r = RunBattery(filter, "--ipch_isolate --ipch_jobs=2",
                                 "RC_PARAMS='noshrink=1 max_success=200' IPCH_PROPERTY_PEER_PROCESS=0");
  EXPECT_NE(r.exit_code, 0) << r.output;
  for (const char* control : {"Broken/Property/naive_control", "Wakeup/Property/notify_control"}) {
    EXPECT_NE(r.output.find(std::string("[       OK ] ") + control + ".StatefulModel"), std::string::npos)
        << "the control must pass: " << control << "\n" << r.output;
  }
  for (const auto& t : caught) {
    EXPECT_NE(r.output.find("[  FAILED  ] Broken/Property/" + t + ".StatefulModel"), std::string::npos)
        << "not caught: " << t << "\n" << r.output;
  }
  EXPECT_NE(r.output.find("[  FAILED  ] Wakeup/Property/notifies_before_queueing.StatefulModel"), std::string::npos)
      << "not caught: notifies_before_queueing\n" << r.output;
  EXPECT_NE(r.output.find("a lost wake-up?"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("replay: RC_PARAMS=\"seed="), std::string::npos) << "a failure must say how to replay it";
}

TEST(SelfTest, LosingAWakeupIsCaught) {
  ExpectCaught("loses_wakeup", {"Basic.BurstOfSmallMessagesThenDrain"}, "a lost wake-up?");
}

// A receiver that trusts a hostile length crashes the process. Run isolated (as the main job
// runs the battery), that is one FAIL naming the signal, and the cases after it still run and
// reach the verdict table; run directly, the binary dies there.
TEST(SelfTest, FollowingASymlinkAtTheAddressIsCaught) {
  ExpectCaught("fifo_follows_symlinks", {"Security.ObjectBehindASymlinkIsRefused"},
               "connect: expected PermissionDenied, got", "fifo");
}

TEST(SelfTest, MappingAServers413VaguelyIsCaught) {
  ExpectCaught("http_vague_413", {"Security.HttpErrorAnswerToASendIsTheContractsError"},
               "http_vague_413: the server refused the request (4xx)", "http");
}

TEST(SelfTest, AQueueReceiverTrustingItsChunksIsCaught) {
  ExpectCaught("naive_queue_trusts_chunks",
               {"Security.ReplayedQueueChunkIsCorrupt", "Security.ReorderedQueueChunksAreCorrupt",
                "Security.QueueChunkLongerThanItsMessageIsCorrupt"},
               "", "naive_queue_control");
}

// Runs `group_case` ("Group.Case") over both backings of the shm transport's mutant `name`
// (harness/selftest/CMakeLists.txt) and checks both fail it, with each of `says` in the output.
// The control of each mutant is the reference transport, which passes the same case in the
// reference battery.
void ExpectMutantCaught(const std::string& name, const std::string& group_case, const std::vector<std::string>& says,
                        const std::vector<std::string>& backings = {"posix_shm_mutant", "sysv_shm_mutant"}) {
  const auto dot = group_case.find('.');
  const std::string group = group_case.substr(0, dot), c = group_case.substr(dot);
  std::string filter;
  for (const auto& t : backings) filter += (filter.empty() ? "" : ":") + ("Mutant/" + group + "/" + t + c);
  RunResult r = RunBattery(filter, "", "IPCH_MUTATION=" + name, IPCH_MUTANTS_BIN);
  EXPECT_NE(r.exit_code, 0) << r.output;
  for (const std::string& t : backings) {
    EXPECT_NE(r.output.find("[  FAILED  ] Mutant/" + group + "/" + t + c), std::string::npos)
        << name << " not caught for " << t << "\n"
        << r.output;
  }
  for (const auto& s : says) EXPECT_NE(r.output.find(s), std::string::npos) << "missing: " << s << "\n" << r.output;
}

// Listen takes a dead owner's rendezvous over in place.
TEST(SelfTest, TakingOverADeadOwnersObjectInPlaceIsCaught) {
  ExpectMutantCaught(
      "takes_over", "PeerDeath.NewListenerGetsNothingOfADeadGeneration",
      {"is the dead listener's object, taken over in place", "the new listener got the dead generation's data"});
}

// A futex wait that comes back interrupted fails the call.
TEST(SelfTest, AFutexWaitTakingEintrForAFailureIsCaught) {
  ExpectMutantCaught("eintr_fatal", "Fault.EintrEverywhereIsInvisible",
                     {"got system:Interrupted system call (shm ", ": futex wait)"});  // in accept or in receive
}

// A wait woken with nothing new is taken for the deadline.
TEST(SelfTest, AWaitWokenEarlyTakenForTheDeadlineIsCaught) {
  ExpectMutantCaught("wake_is_timeout", "Fault.WaitsWokenEarlyAreWaitedAgain", {"ms before the deadline, after"});
}

// Once connected, the peer's death is never looked for.
TEST(SelfTest, NotLookingForAConnectedPeersDeathIsCaught) {
  ExpectMutantCaught("deaf_to_death", "PeerDeath.PeerKilledMidMessage",
                     {"expected PeerClosed, got Timeout (shm receive: deadline passed)"});
}

// The same mutant, found by killing its peer at each call: the survivor waits out its deadline.
TEST(SelfTest, NotLookingForAPeerKilledAtAnyCallIsCaught) {
  ExpectMutantCaught("deaf_to_death", "PeerDeath.ClientKilledAtEachCallInTurn",
                     {"expected PeerClosed, got Timeout (shm receive: deadline passed)", "the peer killed "});
}

// A POSIX listener that never removes what connectors killed before their offer left.
TEST(SelfTest, KeepingWhatAConnectorKilledBeforeItsOfferLeftIsCaught) {
  ExpectMutantCaught("keeps_dead_connectors", "PeerDeath.ClientKilledAtEachCallInTurn",
                     {"resource audit: the test left", "leaked POSIX shm /dev/shm/ipch-"}, {"posix_shm_mutant"});
}

// The fault-space coverage map (docs/fault-model.md) written by an isolated run of `filter` over
// the shm transport (unmutated unless `mutation`), parsed; its entry for `transport`.
nlohmann::json CoverageOf(const std::string& filter, const std::string& transport, const std::string& mutation = "") {
  char dir_template[] = "/tmp/ipch-selftest-coverage-XXXXXX";
  const char* dir = ::mkdtemp(dir_template);
  if (dir == nullptr) return {};
  const std::string xml = std::string(dir) + "/run.xml";
  RunResult r = RunBattery(filter, "--ipch_isolate --ipch_jobs=2 --gtest_output=xml:" + xml,
                           mutation.empty() ? "" : "IPCH_MUTATION=" + mutation, IPCH_MUTANTS_BIN);
  std::ifstream in(std::string(dir) + "/run.fault-coverage.json");
  nlohmann::json map = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  std::filesystem::remove_all(dir);
  EXPECT_FALSE(map.is_discarded()) << "no well-formed coverage map beside the report:\n" << r.output;
  EXPECT_NE(r.output.find("ipch fault coverage"), std::string::npos) << r.output;
  if (map.is_discarded()) return {};
  for (const auto& t : map["transports"]) {
    if (t["name"] == transport) return t;
  }
  ADD_FAILURE() << transport << " is not in the coverage map:\n" << map.dump(2);
  return {};
}

// The entry point `name` of a transport's coverage entry (null if it is not there).
nlohmann::json EntryOf(const nlohmann::json& transport, const std::string& name) {
  if (!transport.contains("entry_points")) return nullptr;
  for (const auto& e : transport["entry_points"]) {
    if (e["name"] == name) return e;
  }
  return nullptr;
}

bool NeverFaulted(const nlohmann::json& transport, const std::string& name) {
  if (!transport.contains("never_faulted")) return false;
  for (const auto& n : transport["never_faulted"]) {
    if (n == name) return true;
  }
  return false;
}

// The map says what was faulted and what was only called: the whole Fault group over a ring
// fails its futex waits and its set-up calls, but never the futex wake it calls to rouse its
// peer (only PeerDeath's kills reach that call), and the map lists that wake as never faulted.
TEST(SelfTest, TheCoverageMapShowsAnEntryPointTheBatteryNeverFaults) {
  const nlohmann::json t = CoverageOf("Mutant/Fault/posix_shm_mutant.*", "posix_shm_mutant");
  const nlohmann::json wake = EntryOf(t, "futex_wake"), wait = EntryOf(t, "futex_wait"),
                       open = EntryOf(t, "shm_open");
  ASSERT_FALSE(wake.is_null()) << t.dump(2);
  EXPECT_GT(wake["calls"].get<uint64_t>(), 0u);
  EXPECT_TRUE(wake["survived"].empty()) << wake.dump();
  EXPECT_TRUE(NeverFaulted(t, "futex_wake")) << t.dump(2);
  ASSERT_FALSE(wait.is_null()) << t.dump(2);
  EXPECT_GT(wait["survived"].value("errno", 0u), 0u) << wait.dump();
  EXPECT_GT(wait["survived"].value("wake", 0u), 0u) << wait.dump();
  EXPECT_FALSE(NeverFaulted(t, "futex_wait"));
  ASSERT_FALSE(open.is_null()) << t.dump(2);
  EXPECT_GT(open["survived"].value("errno", 0u), 0u) << open.dump();
}

// Faults injected in a case that failed are not counted as survived: the mutant that takes an
// interrupted futex wait for a failure fails EintrEverywhereIsInvisible, and the map puts those
// EINTRs under "failed".
TEST(SelfTest, TheCoverageMapCountsFaultsOfAFailedCaseApart) {
  const nlohmann::json t =
      CoverageOf("Mutant/Fault/posix_shm_mutant.EintrEverywhereIsInvisible", "posix_shm_mutant", "eintr_fatal");
  uint64_t failed = 0, survived = 0;
  for (const char* name : {"futex_wait", "futex_wait_untimed"}) {
    const nlohmann::json e = EntryOf(t, name);
    if (e.is_null()) continue;
    failed += e["failed"].value("errno", 0u);
    survived += e["survived"].value("errno", 0u);
  }
  EXPECT_GT(failed, 0u) << t.dump(2);
  EXPECT_EQ(survived, 0u) << t.dump(2);
}

TEST(SelfTest, CrashingOnHostileBytesIsOneFail) {
  const std::string filter =
      "Broken/Security/crashes_on_hostile_bytes.HugeLengthPrefixIsCorrupt:Broken/Basic/crashes_on_hostile_bytes.*";
  RunResult r = RunBattery(filter, "--ipch_isolate");
  EXPECT_NE(r.exit_code, 0) << r.output;
  // SIGSEGV; under ASan its report and abort; under TSan its report and exit status.
  const bool crashed = r.output.find("killed by signal 11 (SIGSEGV)") != std::string::npos ||
                       r.output.find("aborted (SIGABRT)") != std::string::npos ||
                       r.output.find("without a result") != std::string::npos;
  EXPECT_TRUE(crashed) << "the crash is not named:\n" << r.output;
  EXPECT_NE(r.output.find("[  FAILED  ] Broken/Security/crashes_on_hostile_bytes.HugeLengthPrefixIsCorrupt"),
            std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("[       OK ] Broken/Basic/crashes_on_hostile_bytes.RoundTripMaxSize"), std::string::npos)
      << "the cases after the crash did not run:\n"
      << r.output;
  EXPECT_NE(r.output.find("ipch verdicts"), std::string::npos) << "no verdict table:\n" << r.output;
  // The crashed direct run leaves its scratch directory (no supervisor sweeps it): give it one
  // of ours to leave it in, and remove that.
  char tmp[] = "/tmp/ipch-selftest-XXXXXX";
  ASSERT_NE(::mkdtemp(tmp), nullptr);
  RunResult direct = RunBattery(filter, "", std::string("TMPDIR=") + tmp);
  std::filesystem::remove_all(tmp);
  EXPECT_EQ(direct.output.find("ipch verdicts"), std::string::npos) << "the direct run survived the crash?\n"
                                                                    << direct.output;
}

// The REPLAY line of a case reruns it with the same faults: the wire bit flips (positions and
// bits, drawn from the seed) come out identical, and a different seed gives different ones.
std::string FaultLines(const std::string& seed) {
  const std::string cmd = "IPCH_PRINT_FAULTS=1 IPCH_SEED=" + seed + " '" + IPCH_BROKEN_BIN +
                          "' --gtest_filter='Broken/Fault/naive_control.RandomBitFlipsNeverDeliverAWrongMessage' 2>&1";
  std::string out, lines;
  if (FILE* p = ::popen(cmd.c_str(), "r")) {
    char buf[4096];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
    ::pclose(p);
  }
  std::istringstream in(out);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("[ipch fault]", 0) == 0) lines += line + "\n";
  }
  return lines;
}

TEST(SelfTest, ReplayingACaseGivesTheSameFaults) {
  const std::string first = FaultLines("41"), again = FaultLines("41"), other = FaultLines("42");
  EXPECT_NE(first.find("flip bit"), std::string::npos) << first;
  EXPECT_EQ(first, again);
  EXPECT_NE(first, other);
}

// ---- fair to libraries: each library-like transport (library_like.h) passes the cases about
// its kind where it is correct, and its buggy twin fails them ------------------------------------

// `correct` passes every case of `groups` (each given as "Group.*"), running the `ran` ones
// (not skipping them); `buggy` fails each of `caught` and says `must_mention`.
// `left_out` (as `groups`) are cases of those groups the fair run leaves to a test of their own.
void ExpectFairAndCaught(const std::string& correct, const std::vector<std::string>& groups,
                         const std::vector<std::string>& ran, const std::string& buggy,
                         const std::vector<std::string>& caught, const std::string& must_mention,
                         const std::vector<std::string>& left_out = {}) {
  std::string filter = Filter(correct, groups, "Library");
  if (!left_out.empty()) filter += "-" + Filter(correct, left_out, "Library");
  RunResult fair = RunBattery(filter, "", "", IPCH_LIBRARIES_BIN);
  EXPECT_EQ(fair.exit_code, 0) << correct << " is correct for its kind and must pass:\n" << fair.output;
  ExpectEachCase(fair, "[       OK ]", correct, ran, "Library", "not run (or not passed): ");
  RunResult bad = RunBattery(Filter(buggy, caught, "Library"), "", "", IPCH_LIBRARIES_BIN);
  EXPECT_NE(bad.exit_code, 0) << buggy << " passed:\n" << bad.output;
  ExpectEachCase(bad, "[  FAILED  ]", buggy, caught, "Library", "not caught: ");
  EXPECT_NE(bad.output.find(must_mention), std::string::npos) << bad.output;
}

// Without PeerDeathDetect the kill cases still run, with the weaker promise: the survivor's
// receive ends by its own deadline. A receive that gives up 3 s past it is caught.
// The kill-at-each-call cases, where each kill point costs the survivor its receive deadline,
// are tests of their own (below), so that they run beside the rest.
TEST(LibrarySelfTest, ATransportWithoutDeathDetectionGetsTheWeakerPromise) {
  ExpectFairAndCaught("quiet_death", {"PeerDeath.*"},
                      {"PeerDeath.PeerKilledAfterConnect", "PeerDeath.PeerKilledWhileWeSend"}, "quiet_death_overshoots",
                      {"PeerDeath.PeerKilledAfterConnect", "PeerDeath.PeerKilledWhileWeSend"},
                      "to give up on a dead peer", {"PeerDeath.*KilledAtEachCallInTurn"});
}

void ExpectQuietTransportSurvivesKillsAtEachCall(const std::string& kase) {
  RunResult fair = RunBattery(Filter("quiet_death", {kase}, "Library"), "", "", IPCH_LIBRARIES_BIN);
  EXPECT_EQ(fair.exit_code, 0) << "quiet_death is correct for its kind and must pass:\n" << fair.output;
  ExpectEachCase(fair, "[       OK ]", "quiet_death", {kase}, "Library", "not run (or not passed): ");
}
TEST(LibrarySelfTest, ATransportWithoutDeathDetectionGetsTheWeakerPromiseWhenItsClientIsKilledAtEachCall) {
  ExpectQuietTransportSurvivesKillsAtEachCall("PeerDeath.ClientKilledAtEachCallInTurn");
}
TEST(LibrarySelfTest, ATransportWithoutDeathDetectionGetsTheWeakerPromiseWhenItsListenerIsKilledAtEachCall) {
  ExpectQuietTransportSurvivesKillsAtEachCall("PeerDeath.ListenerKilledAtEachCallInTurn");
}

// Descriptors a reaper thread closes 20 ms after Close are waited for (and the wait is said);
// one held for 2 s is a leak, named after the bounded wait.
TEST(LibrarySelfTest, DescriptorsClosedByABackgroundThreadAreWaitedFor) {
  ExpectFairAndCaught("reaper", {"Basic.*", "Lifecycle.*"}, {"Lifecycle.ManyConnectCloseCyclesLeakNothing"},
                      "slow_reaper", {"Basic.ConnectAcceptRoundTrip"}, "ms after the test ended):");
  RunResult fair =
      RunBattery(Filter("reaper", {"Basic.ConnectAcceptRoundTrip"}, "Library"), "", "", IPCH_LIBRARIES_BIN);
  EXPECT_NE(fair.output.find("released its last objects"), std::string::npos) << fair.output;
}

// A library context kept for the process's lifetime is created by the adapter's WarmUp before
// the first test's audit baseline; without the hook it is the first test's leak.
TEST(LibrarySelfTest, AWarmUpHookKeepsALibrarysContextOutOfTheAudit) {
  ExpectFairAndCaught("context_warmed_up", {"Basic.*"}, {"Basic.ConnectAcceptRoundTrip"}, "context_on_first_use",
                      {"Basic.ConnectAcceptRoundTrip"}, "eventfd");
}

// A transport that writes on its own I/O thread reports an injected write error on a later call
// (within the bound); one that forgets the error is caught.
TEST(LibrarySelfTest, AnAsynchronousTransportsErrorsMaySurfaceOnALaterCall) {
  ExpectFairAndCaught(
      "async_io", {"Fault.*", "PeerDeath.PeerKilledMidMessage"},
      {"Fault.PeerGoneUnderSendIsPeerClosed", "Fault.EachWriteInTurnFailingIsPeerClosedAndLosesNothingBefore",
       "Fault.PeerGoneUnderReceiveIsPeerClosed"},
      "async_io_forgets_errors",
      {"Fault.PeerGoneUnderSendIsPeerClosed", "Fault.EachWriteInTurnFailingIsPeerClosedAndLosesNothingBefore"},
      "the error may come from a later call within 2 s, scaled; none did");
}

// A listener of one peer at a time: the cases that need more say UNSUPPORTED with the limit,
// and a connector beyond it must be refused or queued, not told it is connected and dropped.
TEST(LibrarySelfTest, ASinglePeerListenerIsJudgedByItsLimit) {
  ExpectFairAndCaught(
      "one_peer", {"Basic.*", "Lifecycle.*", "Concurrency.*", "PeerDeath.*"},
      {"Lifecycle.ConnectorBeyondThePeerLimitIsRefusedOrQueued", "Lifecycle.DestroyingListenerWithQueuedClients",
       "PeerDeath.ListenerServesNewPeerAfterOneIsKilled"},
      "one_peer_ignores_extra", {"Lifecycle.ConnectorBeyondThePeerLimitIsRefusedOrQueued"},
      "was told it was connected and its message was taken");
  RunResult fair =
      RunBattery(Filter("one_peer", {"Basic.MultipleClientsAreIsolated"}, "Library"), "", "", IPCH_LIBRARIES_BIN);
  EXPECT_NE(fair.output.find("UNSUPPORTED: one_peer listeners take at most 1 peer(s) at a time (kMaxPeers)"),
            std::string::npos)
      << fair.output;
}

// A library that aborts in a forked child: its peers are this program exec'd in a peer role
// (its I/O thread makes the automatic choice exec), and every cross-process case runs and
// passes; the adapter that insists on fork loses them all to the library's abort.
TEST(LibrarySelfTest, AForkUnsafeLibrarysPeersAreExecdNotForked) {
  ExpectFairAndCaught(
      "fork_unsafe", {"Basic.*", "PeerDeath.*", "Ordering.*"},
      {"Basic.RoundTripMaxSize", "PeerDeath.PeerKilledMidMessage", "PeerDeath.PeerKilledAfterConnect",
       "PeerDeath.NewListenerGetsNothingOfADeadGeneration", "Ordering.FullDuplexStreamsDoNotInterfere"},
      "fork_unsafe_forked",
      {"Basic.RoundTripMaxSize", "PeerDeath.PeerKilledMidMessage", "PeerDeath.NewListenerGetsNothingOfADeadGeneration"},
      "not fork-reentrant safe");
  // Forced to fork (by the flag), the correct variant fails as well: the choice made it pass.
  RunResult forced = RunBattery(Filter("fork_unsafe", {"Basic.RoundTripMaxSize"}, "Library"), "--ipch_peer_mode=fork",
                                "", IPCH_LIBRARIES_BIN);
  EXPECT_NE(forced.exit_code, 0) << forced.output;
  EXPECT_NE(forced.output.find("a peer ended by itself before the test joined it: child pid"), std::string::npos)
      << forced.output;
  EXPECT_NE(forced.output.find("killed by signal 6 (Aborted)"), std::string::npos) << forced.output;
}

TEST(SelfTest, LeakingAnFdIsCaughtByTheAudit) {
  ExpectCaught("leaks_fd", {"Basic.ConnectAcceptRoundTrip", "Lifecycle.ManyConnectCloseCyclesLeakNothing"},
               "leaked fd");
}

}  // namespace

namespace {

// Runs one deliberately leaking test; the audit must fail it and name `what`.
std::string RunLeaky(const std::string& test, const std::string& what) {
  RunResult r = RunBattery("AuditSelfTest." + test);
  EXPECT_NE(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("resource audit: the test left"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find(what), std::string::npos) << r.output;
  return r.output;
}

std::string After(const std::string& s, const std::string& marker) {
  auto p = s.find(marker);
  if (p == std::string::npos) return "";
  auto e = s.find('\n', p);
  return s.substr(p + marker.size(), e - p - marker.size());
}

TEST(AuditSelfTest, ChildProcessLeakIsNamedAndKilled) {
  std::string out = RunLeaky("LeavesChildRunning", "child process left running");
  std::string pid = After(out, "leaked child pid ");
  ASSERT_FALSE(pid.empty()) << out;
  EXPECT_NE(::access(("/proc/" + pid).c_str(), F_OK), 0) << "leaked child " << pid << " still exists";
}

TEST(AuditSelfTest, ScratchFileLeakIsNamed) { RunLeaky("LeavesFileInScratchDir", "forgotten.sock"); }

TEST(AuditSelfTest, PosixShmLeakIsNamedAndUnlinked) {
  std::string out = RunLeaky("LeavesPosixShm", "leaked POSIX shm");
  std::string name = After(out, "leaked shm ");
  ASSERT_FALSE(name.empty()) << out;
  EXPECT_NE(::access(("/dev/shm" + name).c_str(), F_OK), 0) << name << " was not removed";
}

TEST(AuditSelfTest, SysvLeakIsNamedAndRemoved) {
  std::string out = RunLeaky("LeavesSysvSegment", "leaked sysv shm");
  std::string id = After(out, "leaked sysv shm id=");
  ASSERT_FALSE(id.empty()) << out;
  std::ifstream in("/proc/sysvipc/shm");
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    std::string key, shmid;
    ls >> key >> shmid;
    EXPECT_NE(shmid, id) << "segment " << id << " was not removed";
  }
}

TEST(AuditSelfTest, FdLeakIsNamed) { RunLeaky("LeavesFd", "leaked fd"); }

}  // namespace
