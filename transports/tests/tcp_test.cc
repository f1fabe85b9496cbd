#include "transports/tcp/tcp.h"

#include "ipch/testing.h"

namespace ipch::tcp {
namespace {

TEST(Tcp, MalformedAddressesAreInvalidArgument) {
  for (const char* a : {"", "127.0.0.1", "127.0.0.1:", "127.0.0.1:65536", "127.0.0.1:-1", "localhost:80", "[::1:80",
                        "1.2.3:80", "127.0.0.1:80x"}) {
    IPCH_EXPECT_ERRC(Listen(a), InvalidArgument) << "address '" << a << "'";
    IPCH_EXPECT_ERRC(Connect(a, Deadline::Expired()), InvalidArgument) << "address '" << a << "'";
  }
}

TEST(Tcp, EphemeralPortIsReported) {
  auto l = Listen("127.0.0.1:0");
  IPCH_ASSERT_OK(l);
  EXPECT_EQ(l->address().rfind("127.0.0.1:", 0), 0u);
  EXPECT_NE(l->address(), "127.0.0.1:0");
  auto l6 = Listen("[::1]:0");
  IPCH_ASSERT_OK(l6);
  EXPECT_EQ(l6->address().rfind("[::1]:", 0), 0u);
}

TEST(Tcp, PortInUseIsAlreadyExistsWithTheAddress) {
  auto l = Listen("127.0.0.1:0");
  IPCH_ASSERT_OK(l);
  auto again = Listen(l->address());
  IPCH_ASSERT_ERRC(again, AlreadyExists);
  EXPECT_NE(again.error().context.find(l->address()), std::string::npos);
}

TEST(Tcp, NonLocalAddressIsInvalidArgument) {
  // TEST-NET-1 is never assigned to this machine: bind must refuse, not hang.
  IPCH_EXPECT_ERRC(Listen("192.0.2.1:0"), InvalidArgument);
}

}  // namespace
}  // namespace ipch::tcp
