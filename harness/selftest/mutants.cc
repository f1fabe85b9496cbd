// The battery over the mutants of the shm transport (harness/selftest/CMakeLists.txt says what
// each mutation is; IPCH_MUTATION=<name> turns one on); driven by selftest_mutants_test.cc, not run
// directly by ctest.
#include "fault.h"
#include "peer_death.h"
#include "transports/shm_ring/shm.h"

namespace ipch::selftest {

template <shm::Backing B>
struct Mutant : shm::Adapter<B> {
  static constexpr std::string_view kName = B == shm::Backing::Posix ? "posix_shm_mutant" : "sysv_shm_mutant";
};

}  // namespace ipch::selftest

namespace ipch::conformance {
using MutantTypes = ::testing::Types<selftest::Mutant<shm::Backing::Posix>, selftest::Mutant<shm::Backing::Sysv>>;
INSTANTIATE_TYPED_TEST_SUITE_P(Mutant, PeerDeath, MutantTypes, NameOf);
INSTANTIATE_TYPED_TEST_SUITE_P(Mutant, Fault, MutantTypes, NameOf);
}  // namespace ipch::conformance
