// The battery over deliberately broken transports; driven by selftest_broken_test.cc, which asserts
// which cases fail for which flaw. Not run directly by ctest.
#include "broken.h"
#include "conformance.h"

namespace ist = ipch::selftest;
IPCH_INSTANTIATE_CONFORMANCE(Broken, ist::NaiveAdapter<ist::Bug::kNone, ist::kControl>,
                             ist::NaiveAdapter<ist::Bug::kIgnoresShortWrites, ist::kShortWrites>,
                             ist::NaiveAdapter<ist::Bug::kNoEintrRetry, ist::kNoEintr>,
                             ist::NaiveAdapter<ist::Bug::kSwallowsErrors, ist::kSwallows>,
                             ist::NaiveAdapter<ist::Bug::kEagainIsFatal, ist::kEagainFatal>,
                             ist::NaiveAdapter<ist::Bug::kCorruptsPayload, ist::kCorrupts>,
                             ist::NaiveAdapter<ist::Bug::kIgnoresChecksum, ist::kIgnoresChecksum>,
                             ist::NaiveAdapter<ist::Bug::kDropsPartialFrame, ist::kDropsPartial>,
                             ist::NaiveAdapter<ist::Bug::kLosesWakeup, ist::kLosesWakeup>,
                             ist::NaiveAdapter<ist::Bug::kCrashesOnHostileBytes, ist::kCrashesOnHostileBytes>,
                             ist::LeaksFdAdapter);

// The lost wake-up that only a receive waiting as the send runs shows: the property battery's
// Exchange is what catches it (its control must pass).
#include "broken_wakeup.h"
namespace ipch::conformance {
using WakeupIpchTypes = ::testing::Types<ist::WakeAdapter<false, ist::kWakeControl>,
                                         ist::WakeAdapter<true, ist::kLosesNotifyName>>;
INSTANTIATE_TYPED_TEST_SUITE_P(Wakeup, Property, WakeupIpchTypes, NameOf);
}  // namespace ipch::conformance
