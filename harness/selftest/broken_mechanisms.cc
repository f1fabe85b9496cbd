// The Security group over the broken transports of broken_mechanisms.h and broken_queue.h and
// their controls (the reference transports they are built on; the checking naive queue), in the same binary as
// broken_conformance.cc.
#include "broken_mechanisms.h"

#include "broken_queue.h"
#include "security.h"

namespace ipch::conformance {
using BrokenMechanismTypes =
    ::testing::Types<::ipch::fifo::Adapter, ::ipch::selftest::FollowsSymlinksFifoAdapter, ::ipch::http::Adapter,
                     ::ipch::selftest::Vague413HttpAdapter, ::ipch::selftest::NaiveQueueAdapter<true>,
                     ::ipch::selftest::NaiveQueueAdapter<false>>;
INSTANTIATE_TYPED_TEST_SUITE_P(Broken, Security, BrokenMechanismTypes, NameOf);
}  // namespace ipch::conformance
