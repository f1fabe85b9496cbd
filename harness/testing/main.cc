// gtest main for every ipch test binary: installs the resource audit, replay lines and the
// verdict matrix; with --ipch_isolate it supervises instead, one child process per case; started
// as an exec'd peer (ipch/peer.h), it runs that peer's body instead and exits; exec'd by its own
// stop-signal handler (ipch/interrupt.h), it cleans up after the interrupted run and exits.
#include <gtest/gtest.h>

#include <cstdio>

#include "ipch/interrupt.h"
#include "ipch/peer.h"
#include "ipch/testing.h"
#include "shared.h"

int main(int argc, char** argv) {
  if (auto status = ipch::RunInterruptCleanupIfRequested(argc, argv, [](const std::string& running) {
        std::fputs(ipch::testing::ReplayLine(running).c_str(), stdout);
      })) {
    return *status;
  }
  ipch::testing::RunPeerIfRequested(argc, argv);
  if (auto status = ipch::testing::RunIsolatedIfRequested(argc, argv)) return *status;
  ::testing::InitGoogleTest(&argc, argv);
  ipch::testing::InstallListeners();
  return ipch::testing::ExitCode(RUN_ALL_TESTS());
}
