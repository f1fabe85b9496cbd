// Mutants of the shm transport (CMakeLists.txt: its own source with one bug inserted each):
// the battery must fail each, and the fault-space coverage map written by an isolated run must
// say what was faulted and what was only called.
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>

#include "selftest_support.h"

namespace {

using namespace ipch::selftest;

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
  RunResult r = RunBattery(IPCH_MUTANTS_BIN, filter, "", "IPCH_MUTATION=" + name);
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
  RunResult r = RunBattery(IPCH_MUTANTS_BIN, filter, "--ipch_isolate --ipch_jobs=2 --gtest_output=xml:" + xml,
                           mutation.empty() ? "" : "IPCH_MUTATION=" + mutation);
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

}  // namespace
