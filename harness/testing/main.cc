// gtest main for every ipch test binary: installs the resource audit, replay lines and the
// verdict matrix; with --ipch_isolate it supervises instead, one child process per case.
#include <gtest/gtest.h>

#include "ipch/testing.h"

int main(int argc, char** argv) {
  if (auto status = ipch::testing::RunIsolatedIfRequested(argc, argv)) return *status;
  ::testing::InitGoogleTest(&argc, argv);
  ipch::testing::InstallListeners();
  return RUN_ALL_TESTS();
}
