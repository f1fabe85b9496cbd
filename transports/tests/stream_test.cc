// Framing edge cases that need byte-level control of the peer: a socketpair, one end raw.
#include <fcntl.h>
#include <sys/socket.h>

#include "ipch/testing.h"
#include "transports/stream/stream_connection.h"

namespace ipch {
namespace {

struct Fixture {
  StreamConnection conn;
  UniqueFd raw;
  explicit Fixture(std::size_t max = 1024) {
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0) return;
    conn = StreamConnection(UniqueFd(sv[0]), UniqueFd(), max, true, "test");
    raw.reset(sv[1]);
  }
  void Write(const std::vector<uint8_t>& b) { ASSERT_EQ(::send(raw.get(), b.data(), b.size(), 0), ssize_t(b.size())); }
};

Deadline Soon() { return Deadline::After(Scaled(std::chrono::seconds(5))); }

TEST(StreamConnection, HeaderIsLittleEndian) {
  Fixture f;
  IPCH_ASSERT_OK(f.conn.Send(AsBytes("abc"), Soon()));
  uint8_t buf[16];
  ASSERT_EQ(::recv(f.raw.get(), buf, sizeof buf, 0), 7);
  EXPECT_EQ(std::vector<uint8_t>(buf, buf + 4), (std::vector<uint8_t>{3, 0, 0, 0}));
}

TEST(StreamConnection, PartialFrameSurvivesTimeoutAndCompletes) {
  Fixture f;
  f.Write({5, 0, 0, 0, 'h', 'e'});
  Bytes got;
  IPCH_ASSERT_ERRC(f.conn.Receive(got, Deadline::After(Millis(20))), Timeout);
  f.Write({'l', 'l', 'o'});
  IPCH_ASSERT_OK(f.conn.Receive(got, Soon()));
  EXPECT_EQ(std::string(reinterpret_cast<char*>(got.data()), got.size()), "hello");
}

TEST(StreamConnection, SplitHeaderAndBackToBackFrames) {
  Fixture f;
  f.Write({1, 0});
  Bytes got;
  IPCH_ASSERT_ERRC(f.conn.Receive(got, Deadline::Expired()), WouldBlock);
  f.Write({0, 0, 'x', 0, 0, 0, 0, 2, 0, 0, 0, 'y', 'z'});
  IPCH_ASSERT_OK(f.conn.Receive(got, Soon()));
  EXPECT_EQ(got.size(), 1u);
  IPCH_ASSERT_OK(f.conn.Receive(got, Soon()));
  EXPECT_TRUE(got.empty());
  IPCH_ASSERT_OK(f.conn.Receive(got, Soon()));
  EXPECT_EQ(got.size(), 2u);
}

TEST(StreamConnection, LengthAtMaxIsAcceptedAboveIsCorrupt) {
  Fixture f(8);
  f.Write({8, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 0, 0});
  Bytes got;
  IPCH_ASSERT_OK(f.conn.Receive(got, Soon()));
  EXPECT_EQ(got.size(), 8u);
  Status st = f.conn.Receive(got, Soon());
  IPCH_ASSERT_ERRC(st, Corrupt);
  EXPECT_NE(st.error().context.find("announced 9 bytes"), std::string::npos) << st.error().ToString();
  IPCH_EXPECT_ERRC(f.conn.Send(AsBytes("a"), Soon()), Corrupt);
}

TEST(StreamConnection, TornSendShutsDownAndSaysSo) {
  Fixture f(64u << 20);
  Bytes big(8u << 20);  // far above the socketpair buffer: the send must stop part-way
  Status st = f.conn.Send(big, Deadline::After(Millis(50)));
  IPCH_ASSERT_ERRC(st, Timeout);
  EXPECT_NE(st.error().context.find("mid-frame"), std::string::npos) << st.error().ToString();
  IPCH_EXPECT_ERRC(f.conn.Send(AsBytes("a"), Soon()), Closed);
}

TEST(StreamConnection, ExpiredSendOnFullBufferIsWouldBlockAndHarmless) {
  Fixture f(1u << 20);
  Bytes chunk(4096);
  Status st;
  int sent = 0;
  while ((st = f.conn.Send(chunk, Deadline::Expired())).ok()) ++sent;
  // Either nothing of the frame went out (WouldBlock) or it tore (Timeout after partial).
  ASSERT_TRUE(st.Is(Errc::WouldBlock) || st.Is(Errc::Timeout)) << st.error().ToString();
  EXPECT_GT(sent, 0);
}

}  // namespace
}  // namespace ipch

#include "ipch/fault.h"

namespace ipch {
namespace {

TEST(StreamConnection, HardErrorMidFrameClosesTheStream) {
  Fixture f(1u << 20);
  Bytes msg(1000, std::byte{1});
  // First write short (part of the frame goes out), second write fails with EIO.
  fault::Plan plan{{fault::Rule{fault::kWrite, fault::Kind::kShort, 0, 1, 0.0, 1},
                    fault::Rule{fault::kWrite, fault::Kind::kErrno, EIO, 1, 0.0, 1}},
                   1};
  Status st;
  {
    fault::ScopedPlan armed(plan);
    st = f.conn.Send(msg, Soon());
  }
  ASSERT_EQ(st.error().code, std::error_code(EIO, std::system_category())) << st.error().ToString();
  IPCH_EXPECT_ERRC(f.conn.Send(msg, Soon()), Closed) << "a desynchronised stream must not accept more frames";
}

}  // namespace
}  // namespace ipch
