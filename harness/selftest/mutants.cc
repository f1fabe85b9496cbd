// The battery over mutants of the reference transports (harness/selftest/CMakeLists.txt says
// what each mutation is); driven by selftest_test.cc. Not run directly by ctest.
#include "peer_death.h"
#include "transports/shm_ring/shm.h"

namespace ipch::selftest {

// The shm transport built from shm_takes_over.cc: Listen takes a dead owner's rendezvous over
// in place.
template <shm::Backing B>
struct TakesOverInPlace : shm::Adapter<B> {
  static constexpr std::string_view kName = B == shm::Backing::Posix ? "posix_shm_takes_over" : "sysv_shm_takes_over";
};

}  // namespace ipch::selftest

namespace ipch::conformance {
using MutantTypes =
    ::testing::Types<selftest::TakesOverInPlace<shm::Backing::Posix>, selftest::TakesOverInPlace<shm::Backing::Sysv>>;
INSTANTIATE_TYPED_TEST_SUITE_P(Mutant, PeerDeath, MutantTypes, NameOf);
}  // namespace ipch::conformance
