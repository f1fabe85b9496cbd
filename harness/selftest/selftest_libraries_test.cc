// Fair to libraries: each library-like transport (library_like.h) passes the cases about its
// kind where it is correct, and its buggy twin fails them.
#include "selftest_support.h"

namespace {

using namespace ipch::selftest;

// `correct` passes every case of `groups` (each given as "Group.*"), running the `ran` ones
// (not skipping them); `buggy` fails each of `caught` and says `must_mention`.
// `left_out` (as `groups`) are cases of those groups the fair run leaves to a test of their own.
void ExpectFairAndCaught(const std::string& correct, const std::vector<std::string>& groups,
                         const std::vector<std::string>& ran, const std::string& buggy,
                         const std::vector<std::string>& caught, const std::string& must_mention,
                         const std::vector<std::string>& left_out = {}) {
  std::string filter = Filter(correct, groups, "Library");
  if (!left_out.empty()) filter += "-" + Filter(correct, left_out, "Library");
  RunResult fair = RunBattery(IPCH_LIBRARIES_BIN, filter, "", "");
  EXPECT_EQ(fair.exit_code, 0) << correct << " is correct for its kind and must pass:\n" << fair.output;
  ExpectEachCase(fair, "[       OK ]", correct, ran, "Library", "not run (or not passed): ");
  RunResult bad = RunBattery(IPCH_LIBRARIES_BIN, Filter(buggy, caught, "Library"), "", "");
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
  RunResult fair = RunBattery(IPCH_LIBRARIES_BIN, Filter("quiet_death", {kase}, "Library"), "", "");
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
      RunBattery(IPCH_LIBRARIES_BIN, Filter("reaper", {"Basic.ConnectAcceptRoundTrip"}, "Library"), "", "");
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
      RunBattery(IPCH_LIBRARIES_BIN, Filter("one_peer", {"Basic.MultipleClientsAreIsolated"}, "Library"), "", "");
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
  RunResult forced = RunBattery(IPCH_LIBRARIES_BIN, Filter("fork_unsafe", {"Basic.RoundTripMaxSize"}, "Library"), "--ipch_peer_mode=fork",
                                "");
  EXPECT_NE(forced.exit_code, 0) << forced.output;
  EXPECT_NE(forced.output.find("a peer ended by itself before the test joined it: child pid"), std::string::npos)
      << forced.output;
  EXPECT_NE(forced.output.find("killed by signal 6 (Aborted)"), std::string::npos) << forced.output;
}

}  // namespace
