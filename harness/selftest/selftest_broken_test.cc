// Proves the battery can fail: runs it over each deliberately broken transport (broken.h)
// and asserts that the specific cases aimed at that flaw fail, while the same cases pass for
// the control, which differs from each broken transport only by the planted bug.
#include <filesystem>
#include <sstream>

#include "selftest_support.h"

namespace {

using namespace ipch::selftest;

RunResult RunBroken(const std::string& filter, const std::string& flags = "", const std::string& env = "") {
  return RunBattery(IPCH_BROKEN_BIN, filter, flags, env);
}

// `control_name` is the transport the broken one differs from by its planted bug only.
void ExpectCaught(const std::string& transport, const std::vector<std::string>& cases,
                  const std::string& must_mention = "", const std::string& control_name = "naive_control") {
  RunResult control = RunBroken(Filter(control_name, cases));
  if (transport != "leaks_fd") {
    EXPECT_EQ(control.exit_code, 0) << "the control must pass the cases that catch " << transport << ":\n"
                                    << control.output;
  }
  RunResult broken = RunBroken(Filter(transport, cases));
  EXPECT_NE(broken.exit_code, 0) << transport << " passed the battery:\n" << broken.output;
  ExpectEachCase(broken, "[  FAILED  ]", transport, cases, "Broken", "not caught: ");
  if (!must_mention.empty()) {
    EXPECT_NE(broken.output.find(must_mention), std::string::npos) << broken.output;
  }
}

TEST(SelfTest, ControlPassesTheWholeBattery) {
  RunResult r = RunBroken("Broken/*/naive_control.*");
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
  const RunResult r = RunBroken(filter, "--ipch_isolate --ipch_jobs=2",
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

TEST(SelfTest, CrashingOnHostileBytesIsOneFail) {
  const std::string filter =
      "Broken/Security/crashes_on_hostile_bytes.HugeLengthPrefixIsCorrupt:Broken/Basic/crashes_on_hostile_bytes.*";
  RunResult r = RunBroken(filter, "--ipch_isolate");
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
  RunResult direct = RunBroken(filter, "", std::string("TMPDIR=") + tmp);
  std::filesystem::remove_all(tmp);
  EXPECT_EQ(direct.output.find("ipch verdicts"), std::string::npos) << "the direct run survived the crash?\n"
                                                                    << direct.output;
}

// The REPLAY line of a case reruns it with the same faults: the wire bit flips (positions and
// bits, drawn from the seed) come out identical, and a different seed gives different ones.
std::string FaultLines(const std::string& seed) {
  const RunResult r = RunBroken("Broken/Fault/naive_control.RandomBitFlipsNeverDeliverAWrongMessage", "",
                                "IPCH_PRINT_FAULTS=1 IPCH_SEED=" + seed);
  std::string lines;
  std::istringstream in(r.output);
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

TEST(SelfTest, LeakingAnFdIsCaughtByTheAudit) {
  ExpectCaught("leaks_fd", {"Basic.ConnectAcceptRoundTrip", "Lifecycle.ManyConnectCloseCyclesLeakNothing"},
               "leaked fd");
}

}  // namespace
