// A small battery for the ipch tool's own tests: two fake transports (alpha, beta) in the
// battery's naming (Fake/Group/transport.Case) with every outcome a report must carry: passes,
// a failure whose message holds text hostile to XML, JSON and HTML, a crash, UNSUPPORTED and
// N/A skips, and (group Slow) a case that waits until it is stopped.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>
#include <string_view>

#include "ipch/testing.h"

namespace {

struct Alpha {
  static constexpr std::string_view kName = "alpha";
};
struct Beta {
  static constexpr std::string_view kName = "beta";
};

struct NameOf {
  template <class T>
  static std::string GetName(int) {
    return std::string(T::kName);
  }
};

template <class T>
constexpr bool kIsBeta = T::kName == "beta";

const bool kDescribed = [] {
  ipch::testing::RegisterAdapter({"Fake", "alpha", {"Stream", "SyscallIo"}, {"ConnectRaw"}});
  ipch::testing::RegisterAdapter({"Fake", "beta", {"CrossProcess"}, {}});
  return true;
}();

template <class T>
class Basic : public ::testing::Test {};
TYPED_TEST_SUITE_P(Basic);

TYPED_TEST_P(Basic, Passes) { EXPECT_EQ(2 + 2, 4); }

// beta fails with a message no report may pass on raw: markup, a CDATA end, quotes, a control
// character and a byte that is not UTF-8.
TYPED_TEST_P(Basic, FailsWithHostileText) {
  if constexpr (kIsBeta<TypeParam>) {
    ADD_FAILURE() << "expected PeerClosed, got <Corrupt> & \"more\" 'quoted' ]]> \x01 bell \xff end\nsecond line";
  }
}

TYPED_TEST_P(Basic, Crashes) {
  if constexpr (kIsBeta<TypeParam>) std::abort();
}

TYPED_TEST_P(Basic, NeedsRawPeer) {
  if constexpr (kIsBeta<TypeParam>) GTEST_SKIP() << "UNSUPPORTED: beta lacks capability RawPeer";
}

REGISTER_TYPED_TEST_SUITE_P(Basic, Passes, FailsWithHostileText, Crashes, NeedsRawPeer);

template <class T>
class Fault : public ::testing::Test {};
TYPED_TEST_SUITE_P(Fault);

TYPED_TEST_P(Fault, ShortWrite) {
  if constexpr (!kIsBeta<TypeParam>) GTEST_SKIP() << "N/A: alpha has no byte stream to cut short";
}

REGISTER_TYPED_TEST_SUITE_P(Fault, ShortWrite);

// Waits to be stopped, after writing IPCH_TOOL_TEST_MARKER (when set) to say it is running.
template <class T>
class Slow : public ::testing::Test {};
TYPED_TEST_SUITE_P(Slow);

TYPED_TEST_P(Slow, WaitsUntilStopped) {
  const char* marker = std::getenv("IPCH_TOOL_TEST_MARKER");
  if (marker == nullptr || kIsBeta<TypeParam>) return;
  std::ofstream(marker) << ::getpid() << "\n";
  for (;;) ::pause();
}

REGISTER_TYPED_TEST_SUITE_P(Slow, WaitsUntilStopped);

using Transports = ::testing::Types<Alpha, Beta>;
INSTANTIATE_TYPED_TEST_SUITE_P(Fake, Basic, Transports, NameOf);
INSTANTIATE_TYPED_TEST_SUITE_P(Fake, Fault, Transports, NameOf);
INSTANTIATE_TYPED_TEST_SUITE_P(Fake, Slow, Transports, NameOf);

}  // namespace
