// The battery over transports that behave like real libraries (library_like.h); driven by
// selftest_libraries_test.cc, which asserts what each correct variant passes and each buggy one fails.
// Not run directly by ctest.
#include "library_like.h"

#include "conformance.h"

namespace ist = ipch::selftest;
IPCH_INSTANTIATE_CONFORMANCE(Library, ist::QuietAdapter, ist::QuietOvershootsAdapter, ist::ReaperAdapter,
                             ist::SlowReaperAdapter, ist::WarmContextAdapter, ist::ColdContextAdapter,
                             ist::AsyncReportsAdapter, ist::AsyncForgetsAdapter, ist::OnePeerQueuesAdapter,
                             ist::OnePeerIgnoresAdapter, ist::ForkUnsafeAdapter, ist::ForkUnsafeForkedAdapter);
