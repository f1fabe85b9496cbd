// The battery over deliberately broken transports; driven by selftest_test.cc, which asserts
// which cases fail for which flaw. Not run directly by ctest.
#include "broken.h"
#include "conformance.h"

namespace ist = ipch::selftest;
IPCH_INSTANTIATE_CONFORMANCE(Broken, ist::NaiveAdapter<ist::Bug::kNone, ist::kControl>,
                             ist::NaiveAdapter<ist::Bug::kIgnoresShortWrites, ist::kShortWrites>,
                             ist::NaiveAdapter<ist::Bug::kNoEintrRetry, ist::kNoEintr>,
                             ist::NaiveAdapter<ist::Bug::kSwallowsErrors, ist::kSwallows>,
                             ist::NaiveAdapter<ist::Bug::kEagainIsFatal, ist::kEagainFatal>, ist::LeaksFdAdapter);
