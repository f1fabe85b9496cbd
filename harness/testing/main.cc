// gtest main for every ipch test binary: installs the resource audit, replay lines and the
// verdict matrix.
#include <gtest/gtest.h>

#include "ipch/testing.h"

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  ipch::testing::InstallListeners();
  return RUN_ALL_TESTS();
}
