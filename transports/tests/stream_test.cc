// Framing edge cases that need byte-level control of the peer: a socketpair, one end raw.
#include <fcntl.h>
#include <sys/socket.h>

#include <optional>
#include <string>
#include <vector>

#include "ipch/fault.h"
#include "ipch/testing.h"
#include "transports/stream/crc32c.h"
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

// Frame bytes as the wire format has them; `length` may differ from the payload's size.
std::vector<uint8_t> Frame(const std::string& payload, std::optional<uint32_t> length = std::nullopt) {
  Bytes h = StreamConnection::FrameHeader(length.value_or(static_cast<uint32_t>(payload.size())), AsBytes(payload));
  std::vector<uint8_t> f(reinterpret_cast<const uint8_t*>(h.data()),
                         reinterpret_cast<const uint8_t*>(h.data()) + h.size());
  f.insert(f.end(), payload.begin(), payload.end());
  return f;
}
std::vector<uint8_t> Cat(std::vector<uint8_t> a, const std::vector<uint8_t>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

TEST(Crc32c, KnownValuesAndBothImplementationsAgree) {
  EXPECT_EQ(Crc32c("123456789", 9), 0xe3069283u);  // the standard check value
  EXPECT_EQ(Crc32c("", 0), 0u);
  EXPECT_EQ(Crc32c("abc", 3), 0x364b3fb7u);
  std::vector<uint8_t> data(300);
  for (std::size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>(i * 131 + 7);
  for (std::size_t off = 0; off < 8; ++off) {
    for (std::size_t n = 0; off + n <= data.size(); n += 13) {
      ASSERT_EQ(Crc32c(data.data() + off, n), Crc32cPortable(data.data() + off, n)) << off << "+" << n;
    }
  }
  // Lengths around the three-lane block sizes (3 x 256 and 3 x 8192 bytes).
  std::vector<uint8_t> big(100000);
  for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<uint8_t>((i * 2654435761u) >> 13);
  for (std::size_t n : {767, 768, 769, 1536, 24575, 24576, 24577, 49152 + 800, 99990}) {
    for (std::size_t off : {0, 3}) {
      ASSERT_EQ(Crc32c(big.data() + off, n), Crc32cPortable(big.data() + off, n)) << off << "+" << n;
    }
  }
  // Extending a CRC over a second buffer equals one pass over both.
  EXPECT_EQ(Crc32c(data.data() + 100, 200, Crc32c(data.data(), 100)), Crc32c(data.data(), 300));
}

// Each way alone against the table, whichever Crc32c picks on this CPU: every length up to
// 2 KiB (the folding's 256-, 64- and 16-byte steps and their tails), at every alignment in a
// word, chained from a nonzero CRC, and the long lanes' sizes.
TEST(Crc32c, EveryWayAgreesWithTheTableAtEveryLengthAndAlignment) {
  std::vector<uint8_t> data(100000);
  for (std::size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>((i * 2654435761u) >> 11);
  int ways = 0;
  for (const Crc32cWay way : {Crc32cWay::kInstruction, Crc32cWay::kFolding}) {
    if (!Crc32cHas(way)) continue;
    ++ways;
    for (std::size_t off = 0; off < 8; ++off) {
      for (std::size_t n = 0; n <= 2048; ++n) {
        const uint32_t from = static_cast<uint32_t>(n * 0x9e3779b9u);
        ASSERT_EQ(Crc32cBy(way, data.data() + off, n, from), Crc32cPortable(data.data() + off, n, from))
            << "way " << static_cast<int>(way) << ", " << off << "+" << n;
      }
    }
    for (std::size_t n : {24575, 24576, 24577, 65536, 99990}) {
      ASSERT_EQ(Crc32cBy(way, data.data() + 5, n), Crc32cPortable(data.data() + 5, n)) << static_cast<int>(way);
    }
  }
  if (ways == 0) GTEST_SKIP() << "this CPU has neither the crc32 instruction nor VPCLMULQDQ: only the table runs";
}

// Frames already waiting are read without a poll per read: a read that filled all it asked
// for is followed by another read, and only the first read of the run (the answer in
// request/response traffic is usually not there yet) polls first. 40 frames of 1000 bytes take
// three reads of the 16 KiB the buffer asks for at a time; a poll before each made three polls.
TEST(StreamConnection, FramesAlreadyWaitingAreReadWithoutAPollPerRead) {
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
  StreamConnection sender(UniqueFd(sv[0]), UniqueFd(), 1 << 20, true, "sender");
  StreamConnection receiver(UniqueFd(sv[1]), UniqueFd(), 1 << 20, true, "receiver");
  const Bytes m(1000, std::byte{5});
  for (int i = 0; i < 40; ++i) IPCH_ASSERT_OK(sender.Send(m, Soon()));
  fault::BeginCensus();
  Bytes got;
  for (int i = 0; i < 40; ++i) {
    IPCH_ASSERT_OK(receiver.Receive(got, Soon()));
    ASSERT_EQ(got, m);
  }
  uint64_t polls = 0, reads = 0;
  for (const auto& e : fault::EndCensus()) {
    if (e.entry_point == "poll") polls = e.calls;
    if (e.entry_point == "read") reads = e.calls;
  }
  if (reads == 0) GTEST_SKIP() << "the fault engine's census sees no calls in this build";
  EXPECT_GE(reads, 3u);
  EXPECT_LE(polls, 1u) << reads << " reads";
}

TEST(StreamConnection, HeaderIsLengthThenPayloadAndHeaderChecksums) {
  Fixture f;
  IPCH_ASSERT_OK(f.conn.Send(AsBytes("abc"), Soon()));
  uint8_t buf[32];
  ASSERT_EQ(::recv(f.raw.get(), buf, sizeof buf, 0), 15);
  EXPECT_EQ(std::vector<uint8_t>(buf, buf + 8), (std::vector<uint8_t>{3, 0, 0, 0, 0xb7, 0x3f, 0x4b, 0x36}));
  const uint32_t hc = Crc32c(buf, 8);
  EXPECT_EQ(std::vector<uint8_t>(buf + 8, buf + 12),
            (std::vector<uint8_t>{uint8_t(hc), uint8_t(hc >> 8), uint8_t(hc >> 16), uint8_t(hc >> 24)}));
  EXPECT_EQ(std::string(reinterpret_cast<char*>(buf + 12), 3), "abc");
}

TEST(StreamConnection, PartialFrameSurvivesTimeoutAndCompletes) {
  Fixture f;
  auto frame = Frame("hello");
  f.Write(std::vector<uint8_t>(frame.begin(), frame.end() - 3));
  Bytes got;
  IPCH_ASSERT_ERRC(f.conn.Receive(got, Deadline::After(Millis(20))), Timeout);
  f.Write(std::vector<uint8_t>(frame.end() - 3, frame.end()));
  IPCH_ASSERT_OK(f.conn.Receive(got, Soon()));
  EXPECT_EQ(std::string(reinterpret_cast<char*>(got.data()), got.size()), "hello");
}

TEST(StreamConnection, SplitHeaderAndBackToBackFrames) {
  Fixture f;
  auto bytes = Cat(Cat(Frame("x"), Frame("")), Frame("yz"));
  f.Write(std::vector<uint8_t>(bytes.begin(), bytes.begin() + 5));
  Bytes got;
  IPCH_ASSERT_ERRC(f.conn.Receive(got, Deadline::Expired()), WouldBlock);
  f.Write(std::vector<uint8_t>(bytes.begin() + 5, bytes.end()));
  IPCH_ASSERT_OK(f.conn.Receive(got, Soon()));
  EXPECT_EQ(got.size(), 1u);
  IPCH_ASSERT_OK(f.conn.Receive(got, Soon()));
  EXPECT_TRUE(got.empty());
  IPCH_ASSERT_OK(f.conn.Receive(got, Soon()));
  EXPECT_EQ(got.size(), 2u);
}

TEST(StreamConnection, LengthAtMaxIsAcceptedAboveIsCorrupt) {
  Fixture f(8);
  f.Write(Cat(Frame("12345678"), Frame("", 9)));
  Bytes got;
  IPCH_ASSERT_OK(f.conn.Receive(got, Soon()));
  EXPECT_EQ(got.size(), 8u);
  Status st = f.conn.Receive(got, Soon());
  IPCH_ASSERT_ERRC(st, Corrupt);
  EXPECT_NE(st.error().context.find("announced 9 bytes"), std::string::npos) << st.error().ToString();
  IPCH_EXPECT_ERRC(f.conn.Send(AsBytes("a"), Soon()), Corrupt);
}

// Every single-bit flip anywhere in a frame is Corrupt; none hands over a message or waits.
TEST(StreamConnection, EveryFlippedBitOfAFrameIsCorrupt) {
  const auto good = Frame("payload!");
  for (std::size_t bit = 0; bit < good.size() * 8; ++bit) {
    Fixture f;
    auto bad = good;
    bad[bit / 8] ^= static_cast<uint8_t>(1u << (bit % 8));
    f.Write(Cat(bad, Frame("next")));
    Bytes got;
    Status st = f.conn.Receive(got, Soon());
    IPCH_ASSERT_ERRC(st, Corrupt) << "bit " << bit;
    EXPECT_TRUE(got.empty()) << "bit " << bit;
    IPCH_EXPECT_ERRC(f.conn.Receive(got, Soon()), Corrupt) << "bit " << bit << ": Corrupt must stay";
  }
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
  // First write short (part of the frame goes out), second write fails with ENOBUFS.
  fault::Plan plan{{fault::Rule{fault::kWrite, fault::Kind::kShort, 0, 1, 0.0, 1},
                    fault::Rule{fault::kWrite, fault::Kind::kErrno, ENOBUFS, 1, 0.0, 1}},
                   1};
  Status st;
  {
    fault::ScopedPlan armed(plan);
    st = f.conn.Send(msg, Soon());
  }
  ASSERT_EQ(st.error().code, std::error_code(ENOBUFS, std::system_category())) << st.error().ToString();
  IPCH_EXPECT_ERRC(f.conn.Send(msg, Soon()), Closed) << "a desynchronised stream must not accept more frames";
}

}  // namespace
}  // namespace ipch
