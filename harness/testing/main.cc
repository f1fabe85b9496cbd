// gtest main for every ipch test binary: installs the resource audit, replay lines and the
// verdict matrix; with --ipch_isolate it supervises instead, one child process per case; started
// as an exec'd peer (ipch/peer.h), it runs that peer's body instead and exits.
#include <gtest/gtest.h>

#include "ipch/peer.h"
#include "ipch/testing.h"

int main(int argc, char** argv) {
  ipch::testing::RunPeerIfRequested(argc, argv);
  if (auto status = ipch::testing::RunIsolatedIfRequested(argc, argv)) return *status;
  ::testing::InitGoogleTest(&argc, argv);
  ipch::testing::InstallListeners();
  return ipch::testing::ExitCode(RUN_ALL_TESTS());
}
