// The stream toxics proxy over raw sockets (tcp and unix) and spliced into pipes: each toxic does
// exactly what it says, seeded choices replay, and the proxy cleans up after itself. Also the
// ipch_proxy command.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "ipch/child_process.h"
#include "ipch/fault.h"
#include "ipch/socket_address.h"
#include "ipch/testing.h"
#include "ipch/toxics.h"
#include "ipch/unique_fd.h"

namespace ipch::toxics {
namespace {

using std::chrono::milliseconds;

Deadline Settle() { return Deadline::After(Scaled(std::chrono::seconds(10))); }

Spec Parsed(const std::string& text) {
  Spec s;
  std::string error;
  EXPECT_TRUE(ParseSpec(text, &s, &error)) << text << ": " << error;
  return s;
}

std::string ParseError(const std::string& text) {
  Spec s;
  std::string error;
  EXPECT_FALSE(ParseSpec(text, &s, &error)) << "accepted: " << text;
  return error;
}

// ---- text ---------------------------------------------------------------------------------------

TEST(ToxicsSpec, EveryToxicRoundTrips) {
  const Spec s = Parsed(
      "seed=42; up: latency=5ms, jitter=250us, rate=1048576, slice=3, slice_delay=1ms, close_after=10, "
      "reset_after=20, stall_after=30, stall_for=2s, flip=0.125, flip_at=7; down:slice=1");
  EXPECT_EQ(s.seed, 42u);
  EXPECT_EQ(s.up.latency, milliseconds(5));
  EXPECT_EQ(s.up.jitter, std::chrono::microseconds(250));
  EXPECT_EQ(s.up.rate, 1048576u);
  EXPECT_EQ(s.up.slice, 3u);
  EXPECT_EQ(s.up.slice_delay, milliseconds(1));
  EXPECT_EQ(s.up.close_after, 10u);
  EXPECT_EQ(s.up.reset_after, 20u);
  EXPECT_EQ(s.up.stall_after, 30u);
  EXPECT_EQ(s.up.stall_for, std::chrono::seconds(2));
  EXPECT_EQ(s.up.flip, 0.125);
  EXPECT_EQ(s.up.flip_at, 7u);
  EXPECT_EQ(s.down.slice, 1u);
  EXPECT_EQ(s.down.latency, Clock::duration{});
  EXPECT_EQ(Parsed(FormatSpec(s)), s) << FormatSpec(s);
  EXPECT_EQ(FormatSpec(Parsed("both:slice=2")), "seed=0;up:slice=2;down:slice=2");
}

TEST(ToxicsSpec, MistakesAreNamedPrecisely) {
  EXPECT_EQ(ParseError(""), "empty toxics spec");
  EXPECT_EQ(ParseError("sideways:slice=1"), "'sideways:slice=1': direction must be up, down or both");
  EXPECT_EQ(ParseError("slice=1"), "'slice=1': expected up:, down: or both: followed by toxics");
  EXPECT_EQ(ParseError("up:"), "'up:': no toxics after the direction");
  EXPECT_NE(ParseError("up:bogus=1").find("unknown toxic 'bogus'"), std::string::npos);
  EXPECT_NE(ParseError("up:latency=5").find("toxic 'latency=5': expected a duration"), std::string::npos);
  EXPECT_NE(ParseError("up:latency=2h").find("expected a duration"), std::string::npos);
  EXPECT_NE(ParseError("up:rate=0").find("a rate of 0 would never forward a byte"), std::string::npos);
  EXPECT_NE(ParseError("up:slice=0").find("a segment size"), std::string::npos);
  EXPECT_NE(ParseError("up:flip=1.5").find("expected a probability"), std::string::npos);
  EXPECT_NE(ParseError("up:close_after=-1").find("expected a byte count"), std::string::npos);
  EXPECT_NE(ParseError("up:slice").find("expected key=value"), std::string::npos);
  EXPECT_NE(ParseError("seed=x;up:slice=1").find("expected seed=<number>"), std::string::npos);
}

// ---- raw socket plumbing -----------------------------------------------------------------------

struct Server {
  UniqueFd fd;
  std::string address;
  std::string path;  // a unix socket file, removed with the server
  Server() = default;
  Server(Server&&) = default;
  Server& operator=(Server&&) = default;
  ~Server() {
    if (!path.empty()) ::unlink(path.c_str());
  }
};

Server ListenOn(const std::string& kind) {
  Server s;
  std::string text = kind == "unix" ? (::ipch::testing::Current().scratch_dir / "up.sock").string() : "127.0.0.1:0";
  auto sa = ParseSocketAddress(text, "test");
  EXPECT_TRUE(sa.ok());
  s.fd = UniqueFd(::socket(sa->family, SOCK_STREAM | SOCK_CLOEXEC, 0));
  EXPECT_EQ(::bind(s.fd.get(), sa->get(), sa->len), 0) << std::strerror(errno);
  EXPECT_EQ(::listen(s.fd.get(), 16), 0);
  sockaddr_storage bound{};
  socklen_t len = sizeof bound;
  ::getsockname(s.fd.get(), reinterpret_cast<sockaddr*>(&bound), &len);
  s.address = kind == "unix" ? text : FormatSocketAddress(bound, len);
  if (kind == "unix") s.path = text;
  return s;
}

bool Ready(int fd, short events, Deadline d) {
  pollfd p{fd, events, 0};
  int r;
  do {
    r = ::poll(&p, 1, d.PollTimeoutMs());
  } while (r < 0 && errno == EINTR);
  return r > 0;
}

UniqueFd AcceptOne(const Server& s) {
  if (!Ready(s.fd.get(), POLLIN, Settle())) return UniqueFd();
  return UniqueFd(::accept4(s.fd.get(), nullptr, nullptr, SOCK_CLOEXEC));
}

UniqueFd ConnectTo(const std::string& address) {
  auto sa = ParseSocketAddress(address, "test");
  if (!sa.ok()) return UniqueFd();
  UniqueFd fd(::socket(sa->family, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (::connect(fd.get(), sa->get(), sa->len) != 0) return UniqueFd();
  return fd;
}

bool SendAll(int fd, const Bytes& b) {
  std::size_t off = 0;
  while (off < b.size()) {
    ssize_t w = ::send(fd, b.data() + off, b.size() - off, MSG_NOSIGNAL);
    if (w < 0 && errno == ENOTSOCK) w = ::write(fd, b.data() + off, b.size() - off);  // a pipe
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    off += static_cast<std::size_t>(w);
  }
  return true;
}

// Reads until `want` bytes, EOF or an error. `end` is 0 for EOF, an errno, or -1 if it stopped
// at `want` bytes (or at the deadline: then `timed_out`).
struct ReadResult {
  Bytes data;
  int end = -1;
  bool timed_out = false;
};
ReadResult ReadUpTo(int fd, std::size_t want, Deadline d) {
  ReadResult r;
  std::byte buf[65536];
  while (r.data.size() < want) {
    if (!Ready(fd, POLLIN, d)) {
      r.timed_out = true;
      break;
    }
    ssize_t n = ::read(fd, buf, std::min(sizeof buf, want - r.data.size()));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      r.end = n == 0 ? 0 : errno;
      break;
    }
    r.data.insert(r.data.end(), buf, buf + n);
  }
  return r;
}

Bytes Random(std::size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  Bytes b(n);
  for (auto& x : b) x = std::byte(rng() & 0xff);
  return b;
}

// A proxy in front of a raw server, one client connected through it, the server side accepted.
struct Through {
  Server server;
  std::unique_ptr<Proxy> proxy;
  UniqueFd client, upstream;
};
Through Open(const std::string& kind, const Spec& spec) {
  Through t;
  t.server = ListenOn(kind);
  auto p = Proxy::Start(Proxy::FrontFor(t.server.address), t.server.address, spec);
  EXPECT_TRUE(p.ok()) << p.error().ToString();
  if (!p.ok()) return t;
  t.proxy = std::move(*p);
  t.client = ConnectTo(t.proxy->address());
  t.upstream = AcceptOne(t.server);
  EXPECT_TRUE(t.client && t.upstream);
  return t;
}

std::string LogOf(const Proxy& p) {
  std::string s;
  for (const auto& l : p.Log()) s += "\n  " + l;
  return s;
}

class ProxyTest : public ::testing::TestWithParam<std::string> {
 protected:
  uint64_t Seed() const { return ::ipch::testing::Current().seed; }
};
INSTANTIATE_TEST_SUITE_P(Kinds, ProxyTest, ::testing::Values("tcp", "unix"),
                         [](const auto& info) { return info.param; });

TEST_P(ProxyTest, ForwardsBothWaysUntouchedAndPassesEof) {
  Through t = Open(GetParam(), Spec{});
  const Bytes up = Random(1 << 20, Seed()), down = Random(300000, Seed() + 1);
  ASSERT_TRUE(SendAll(t.client.get(), up));
  auto got = ReadUpTo(t.upstream.get(), up.size(), Settle());
  EXPECT_TRUE(got.data == up) << got.data.size() << " of " << up.size() << " bytes, or different";
  ASSERT_TRUE(SendAll(t.upstream.get(), down));
  got = ReadUpTo(t.client.get(), down.size(), Settle());
  EXPECT_TRUE(got.data == down);
  ::shutdown(t.client.get(), SHUT_WR);
  got = ReadUpTo(t.upstream.get(), 1, Settle());
  EXPECT_EQ(got.end, 0) << "the client's EOF must reach the server";
  // The proxy counts a write after it returns, so a reader can see the bytes a moment sooner.
  EXPECT_TRUE(t.proxy->WaitFor([&](const Stats& s) { return s.forwarded[0] >= up.size() && s.forwarded[1] >= down.size(); }, Settle()));
  EXPECT_EQ(t.proxy->stats().forwarded[0], up.size());
  EXPECT_EQ(t.proxy->stats().forwarded[1], down.size());
}

TEST_P(ProxyTest, SliceOneWritesEveryByteSeparatelyAndInOrder) {
  Through t = Open(GetParam(), Parsed("up:slice=1;down:slice=5"));
  const Bytes up = Random(3000, Seed()), down = Random(4000, Seed() + 1);
  ASSERT_TRUE(SendAll(t.client.get(), up));
  ASSERT_TRUE(SendAll(t.upstream.get(), down));
  EXPECT_TRUE(ReadUpTo(t.upstream.get(), up.size(), Settle()).data == up);
  EXPECT_TRUE(ReadUpTo(t.client.get(), down.size(), Settle()).data == down);
  // The proxy counts a write after it returns: the last byte can be read before it is counted.
  EXPECT_TRUE(t.proxy->WaitFor([&](const Stats& s) { return s.forwarded[0] >= up.size() && s.forwarded[1] >= down.size(); }, Settle()));
  const Stats st = t.proxy->stats();
  EXPECT_EQ(st.segments[0], up.size()) << "slice=1: one write per byte";
  EXPECT_GE(st.segments[1], down.size() / 5) << "slice=5: segments of at most 5 bytes";
  EXPECT_LT(st.segments[1], down.size());
}

TEST_P(ProxyTest, LatencyHoldsEveryChunkAndJitterKeepsOrder) {
  Through t = Open(GetParam(), Parsed("up:latency=30ms;down:latency=1ms,jitter=4ms"));
  const Bytes ping = Random(1, Seed());
  const auto start = Clock::now();
  ASSERT_TRUE(SendAll(t.client.get(), ping));
  EXPECT_TRUE(ReadUpTo(t.upstream.get(), 1, Settle()).data == ping);
  EXPECT_GE(Clock::now() - start, milliseconds(30)) << "latency=30ms: nothing may arrive sooner";
  // Many small writes with jittered release times still arrive in order.
  Bytes all;
  for (int i = 0; i < 200; ++i) {
    Bytes b = Random(7, Seed() + static_cast<uint64_t>(i));
    ASSERT_TRUE(SendAll(t.upstream.get(), b));
    all.insert(all.end(), b.begin(), b.end());
  }
  EXPECT_TRUE(ReadUpTo(t.client.get(), all.size(), Settle()).data == all);
}

TEST_P(ProxyTest, RateLimitPacesTheStream) {
  Through t = Open(GetParam(), Parsed("down:rate=1000000"));
  const Bytes b = Random(200000, Seed());
  const auto start = Clock::now();
  ASSERT_TRUE(SendAll(t.upstream.get(), b));
  EXPECT_TRUE(ReadUpTo(t.client.get(), b.size(), Settle()).data == b);
  // 200 kB at 1 MB/s: at least ~190 ms (the first 10 ms budget goes at once).
  EXPECT_GE(Clock::now() - start, milliseconds(180));
}

TEST_P(ProxyTest, CloseAfterForwardsExactlyNBytesThenEndsBothSides) {
  Through t = Open(GetParam(), Parsed("up:close_after=100"));
  const Bytes b = Random(1000, Seed());
  ASSERT_TRUE(SendAll(t.client.get(), b));
  auto got = ReadUpTo(t.upstream.get(), b.size(), Settle());
  EXPECT_FALSE(got.timed_out);
  EXPECT_EQ(got.data, Bytes(b.begin(), b.begin() + 100));
  EXPECT_EQ(got.end, 0) << "the server sees EOF, not " << std::strerror(got.end);
  got = ReadUpTo(t.client.get(), 1, Settle());
  EXPECT_FALSE(got.timed_out) << "the client's side must end too";
  EXPECT_TRUE(got.data.empty());
  EXPECT_EQ(t.proxy->stats().closes, 1u) << LogOf(*t.proxy);
}

TEST_P(ProxyTest, ResetAfterForwardsExactlyNBytesThenResets) {
  Through t = Open(GetParam(), Parsed("down:reset_after=64"));
  const Bytes b = Random(500, Seed());
  ASSERT_TRUE(SendAll(t.upstream.get(), b));
  auto got = ReadUpTo(t.client.get(), b.size(), Settle());
  EXPECT_FALSE(got.timed_out);
  EXPECT_EQ(got.data, Bytes(b.begin(), b.begin() + 64));
  // TCP peers see the RST; a unix socket has no reset and reports the close as EOF.
  if (GetParam() == "tcp") {
    EXPECT_EQ(got.end, ECONNRESET) << std::strerror(got.end);
  } else {
    EXPECT_TRUE(got.end == 0 || got.end == ECONNRESET) << std::strerror(got.end);
  }
  EXPECT_EQ(t.proxy->stats().resets, 1u) << LogOf(*t.proxy);
}

TEST_P(ProxyTest, StallHoldsTheRestUntilResumed) {
  Through t = Open(GetParam(), Parsed("up:stall_after=100"));
  const Bytes b = Random(1000, Seed());
  ASSERT_TRUE(SendAll(t.client.get(), b));
  auto got = ReadUpTo(t.upstream.get(), 100, Settle());
  EXPECT_EQ(got.data, Bytes(b.begin(), b.begin() + 100));
  ASSERT_TRUE(t.proxy->WaitFor([](const Stats& s) { return s.stalls == 1; }, Settle()));
  got = ReadUpTo(t.upstream.get(), 1, Deadline::After(milliseconds(50)));
  EXPECT_TRUE(got.timed_out && got.data.empty()) << "a byte passed the stall";
  t.proxy->Resume();
  got = ReadUpTo(t.upstream.get(), 900, Settle());
  EXPECT_EQ(got.data, Bytes(b.begin() + 100, b.end()));
}

// A receiver that closes with bytes unread (a reset) ends only the direction towards it: what
// its own sender had sent before still reaches the other end, then the connection ends.
TEST_P(ProxyTest, AReceiverGoneEndsItsDirectionOnlyAndTheOtherDeliversWhatItHeld) {
  Through t = Open(GetParam(), Spec{});
  const Bytes up = Random(1000, Seed()), down = Random(100, Seed() + 1);
  t.proxy->ArmEvent(Direction::kUp, 400, Event::kStall);  // the client's bytes, held past 400
  ASSERT_TRUE(SendAll(t.client.get(), up));
  ASSERT_TRUE(t.proxy->WaitFor([](const Stats& s) { return s.stalls == 1; }, Settle()));
  ASSERT_TRUE(SendAll(t.upstream.get(), down));
  ASSERT_TRUE(t.proxy->WaitFor([&](const Stats& s) { return s.forwarded[1] == down.size(); }, Settle()));
  t.client.reset();  // with `down` unread
  // The server goes on sending until a write onward finds the client gone (the first, or the one
  // after the client's reset has come back).
  const Deadline give_up = Settle();
  auto gone = [](const Stats& s) { return s.receivers_gone == 1; };
  do {
    ASSERT_FALSE(give_up.expired()) << "no write onward failed" << LogOf(*t.proxy);
    ASSERT_TRUE(SendAll(t.upstream.get(), down)) << LogOf(*t.proxy);
  } while (!t.proxy->WaitFor(gone, Deadline::After(milliseconds(20))));
  t.proxy->Resume();
  auto got = ReadUpTo(t.upstream.get(), up.size() + 1, Settle());
  EXPECT_FALSE(got.timed_out) << LogOf(*t.proxy);
  EXPECT_EQ(got.data, up) << "the client's bytes held in the proxy were lost: " << got.data.size() << " of "
                          << up.size() << LogOf(*t.proxy);
  EXPECT_TRUE(got.end == 0 || got.end == ECONNRESET) << std::strerror(got.end);
  EXPECT_NE(LogOf(*t.proxy).find("write failed"), std::string::npos) << LogOf(*t.proxy);
}

// A source that ends by a reset (it closed with bytes unread) has every byte the proxy took
// from it delivered, then an end in order: passing its reset on as a reset would discard what
// the proxy had written but the kernel not yet delivered.
TEST_P(ProxyTest, ASourceThatResetsHasEveryByteTheProxyTookDelivered) {
  Through t = Open(GetParam(), Spec{});
  const Bytes down = Random(100, Seed() + 1);
  ASSERT_TRUE(SendAll(t.upstream.get(), down));
  ASSERT_TRUE(t.proxy->WaitFor([&](const Stats& s) { return s.forwarded[1] == down.size(); }, Settle()));
  // The client fills every buffer on the way (the server reads nothing yet), then closes with
  // `down` unread: a reset, which also drops what is still in its own buffer.
  const Bytes chunk = Random(65536, Seed());
  ASSERT_EQ(::fcntl(t.client.get(), F_SETFL, O_NONBLOCK), 0);
  for (;;) {
    const ssize_t w = ::send(t.client.get(), chunk.data(), chunk.size(), MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && errno == EAGAIN) break;
    ASSERT_GT(w, 0) << std::strerror(errno);
  }
  t.client.reset();
  const auto got = ReadUpTo(t.upstream.get(), SIZE_MAX, Settle());  // to the end
  EXPECT_FALSE(got.timed_out) << LogOf(*t.proxy);
  EXPECT_EQ(got.end, 0) << "not an end in order: " << std::strerror(got.end) << LogOf(*t.proxy);
  EXPECT_EQ(got.data.size(), t.proxy->stats().forwarded[0]) << "bytes the proxy wrote onward were lost" << LogOf(*t.proxy);
  for (std::size_t i = 0; i < got.data.size(); i += chunk.size()) {
    const std::size_t n = std::min(chunk.size(), got.data.size() - i);
    ASSERT_TRUE(std::equal(got.data.begin() + static_cast<std::ptrdiff_t>(i),
                           got.data.begin() + static_cast<std::ptrdiff_t>(i + n), chunk.begin()))
        << "at byte " << i;
  }
}

// ArmEvent aims at a point of a direction's bytes, counted over all connections from the moment
// it is armed; Taken counts every byte a receiver has, and no more. A flip changes one bit of
// exactly the byte aimed at; a stall holds everything from there until Resume; a reset ends the
// connection there.
TEST_P(ProxyTest, AnArmedEventHitsTheByteItWasAimedAt) {
  Through t = Open(GetParam(), Spec{});
  const Bytes head = Random(300, Seed());
  ASSERT_TRUE(SendAll(t.client.get(), head));
  EXPECT_EQ(ReadUpTo(t.upstream.get(), head.size(), Settle()).data, head);
  EXPECT_EQ(t.proxy->Taken(Direction::kUp), head.size());
  const Bytes b = Random(100, Seed() + 1);
  t.proxy->ArmEvent(Direction::kUp, 17, Event::kFlip);
  ASSERT_TRUE(SendAll(t.client.get(), b));
  auto got = ReadUpTo(t.upstream.get(), b.size(), Settle());
  ASSERT_EQ(got.data.size(), b.size());
  for (std::size_t i = 0; i < b.size(); ++i) {
    const int bits = std::popcount(static_cast<unsigned>(std::to_integer<unsigned>(got.data[i] ^ b[i])));
    EXPECT_EQ(bits, i == 17 ? 1 : 0) << "byte " << i;
  }
  EXPECT_EQ(t.proxy->stats().flips[0], 1u) << LogOf(*t.proxy);

  t.proxy->ArmEvent(Direction::kUp, 40, Event::kStall);
  ASSERT_TRUE(SendAll(t.client.get(), b));
  EXPECT_EQ(ReadUpTo(t.upstream.get(), 40, Settle()).data, Bytes(b.begin(), b.begin() + 40));
  ASSERT_TRUE(t.proxy->WaitFor([](const Stats& s) { return s.stalls == 1; }, Settle()));
  got = ReadUpTo(t.upstream.get(), 1, Deadline::After(milliseconds(50)));
  EXPECT_TRUE(got.timed_out && got.data.empty()) << "a byte passed the stall";
  t.proxy->Resume();
  EXPECT_EQ(ReadUpTo(t.upstream.get(), 60, Settle()).data, Bytes(b.begin() + 40, b.end()));

  t.proxy->ArmEvent(Direction::kUp, 5, Event::kReset);
  ASSERT_TRUE(SendAll(t.client.get(), b));
  got = ReadUpTo(t.upstream.get(), b.size(), Settle());
  EXPECT_FALSE(got.timed_out);
  EXPECT_EQ(got.data, Bytes(b.begin(), b.begin() + 5));
  EXPECT_EQ(t.proxy->stats().resets, 1u) << LogOf(*t.proxy);
  EXPECT_EQ(t.proxy->Taken(Direction::kUp), head.size() + 2 * b.size() + 5);
}

TEST_P(ProxyTest, TimedStallEndsByItself) {
  // With stall_after=0 the stall starts as the connection opens, so time it from before that.
  const auto start = Clock::now();
  Through t = Open(GetParam(), Parsed("up:stall_after=0,stall_for=20ms"));
  const Bytes b = Random(10, Seed());
  ASSERT_TRUE(SendAll(t.client.get(), b));
  EXPECT_EQ(ReadUpTo(t.upstream.get(), b.size(), Settle()).data, b);
  EXPECT_GE(Clock::now() - start, milliseconds(20));
}

// Flips depend only on the seed and the stream offsets: the same bytes give the same flips, even
// though the kernel splits the reads differently from run to run.
TEST_P(ProxyTest, BitFlipsAreSeededAndCounted) {
  const Bytes b = Random(64 * 1024, Seed());
  auto run = [&](uint64_t seed) {
    Spec spec = Parsed("up:flip=0.002");
    spec.seed = seed;
    Through t = Open(GetParam(), spec);
    EXPECT_TRUE(SendAll(t.client.get(), b));
    auto got = ReadUpTo(t.upstream.get(), b.size(), Settle());
    EXPECT_EQ(got.data.size(), b.size());
    uint64_t flipped = 0;
    for (std::size_t i = 0; i < std::min(b.size(), got.data.size()); ++i) {
      flipped += static_cast<uint64_t>(__builtin_popcount(static_cast<unsigned>(b[i] ^ got.data[i])));
    }
    EXPECT_EQ(flipped, t.proxy->stats().flips[0]) << "every counted flip is one changed bit";
    return got.data;
  };
  const Bytes a = run(Seed()), again = run(Seed()), other = run(Seed() + 1);
  EXPECT_NE(a, b) << "p=0.002 over 64 KiB: ~131 flips expected";
  EXPECT_EQ(a, again) << "the same seed must flip the same bits";
  EXPECT_NE(a, other);
}

TEST_P(ProxyTest, FlipAtChangesExactlyOneBitOfThatByte) {
  Through t = Open(GetParam(), Parsed("down:flip_at=10"));
  const Bytes b = Random(100, Seed());
  ASSERT_TRUE(SendAll(t.upstream.get(), b));
  Bytes got = ReadUpTo(t.client.get(), b.size(), Settle()).data;
  ASSERT_EQ(got.size(), b.size());
  for (std::size_t i = 0; i < b.size(); ++i) {
    const unsigned diff = static_cast<unsigned>(got[i] ^ b[i]);
    EXPECT_EQ(__builtin_popcount(diff), i == 10 ? 1 : 0) << "byte " << i;
  }
}

TEST_P(ProxyTest, UpdateAppliesToLaterBytes) {
  Through t = Open(GetParam(), Spec{});
  const Bytes b = Random(50, Seed());
  ASSERT_TRUE(SendAll(t.client.get(), b));
  EXPECT_EQ(ReadUpTo(t.upstream.get(), b.size(), Settle()).data, b);
  t.proxy->Update(Parsed("up:close_after=60"));
  ASSERT_TRUE(SendAll(t.client.get(), b));
  auto got = ReadUpTo(t.upstream.get(), b.size(), Settle());
  EXPECT_EQ(got.data, Bytes(b.begin(), b.begin() + 10)) << "60 bytes in all, 50 of them already through";
  EXPECT_EQ(got.end, 0);
}

TEST_P(ProxyTest, UnreachableUpstreamResetsTheClient) {
  Server s = ListenOn(GetParam());
  const std::string gone = s.address;
  s.fd.reset();
  if (GetParam() == "unix") ::unlink(gone.c_str());
  auto p = Proxy::Start(Proxy::FrontFor(gone), gone, Spec{});
  ASSERT_TRUE(p.ok()) << p.error().ToString();
  UniqueFd c = ConnectTo((*p)->address());
  ASSERT_TRUE(c);
  auto got = ReadUpTo(c.get(), 1, Settle());
  EXPECT_FALSE(got.timed_out);
  EXPECT_TRUE(got.data.empty());
  ASSERT_TRUE((*p)->WaitFor([](const Stats& st) { return st.resets == 1; }, Settle()));
  EXPECT_NE(LogOf(**p).find("unreachable"), std::string::npos) << LogOf(**p);
}

TEST_P(ProxyTest, StopEndsLiveConnectionsAndRemovesItsSocket) {
  Through t = Open(GetParam(), Parsed("up:stall_after=0"));
  const std::string front = t.proxy->address();
  ASSERT_TRUE(SendAll(t.client.get(), Random(10, Seed())));
  ASSERT_TRUE(t.proxy->WaitFor([](const Stats& s) { return s.stalls == 1; }, Settle()));
  t.proxy->Stop();
  EXPECT_FALSE(ReadUpTo(t.client.get(), 1, Settle()).timed_out) << "the client must see the end";
  EXPECT_FALSE(ReadUpTo(t.upstream.get(), 1, Settle()).timed_out) << "the server must see the end";
  if (GetParam() == "unix") {
    EXPECT_FALSE(std::filesystem::exists(front));
  }
  t.proxy->Stop();  // idempotent
}

// Out of descriptors at accept: the proxy says so, keeps the client queued and serves it after.
TEST_P(ProxyTest, AcceptFailureIsRetriedNotFatal) {
  Server s = ListenOn(GetParam());
  SetThreadsFaultable(true);  // the proxy's own accept is what fails here
  auto p = Proxy::Start(Proxy::FrontFor(s.address), s.address, Spec{});
  SetThreadsFaultable(false);
  ASSERT_TRUE(p.ok()) << p.error().ToString();
  fault::Plan plan;
  plan.rules.push_back({fault::kAccept, fault::Kind::kErrno, EMFILE, 1, 0.0, 1});
  UniqueFd c, u;
  {
    fault::ScopedPlan armed(plan);
    c = ConnectTo((*p)->address());
    ASSERT_TRUE(c);
    u = AcceptOne(s);
  }
  ASSERT_TRUE(u) << LogOf(**p);
  const Bytes b = Random(100, Seed());
  ASSERT_TRUE(SendAll(c.get(), b));
  EXPECT_EQ(ReadUpTo(u.get(), b.size(), Settle()).data, b);
  EXPECT_NE(LogOf(**p).find("accept failed (Too many open files), retrying"), std::string::npos) << LogOf(**p);
}

TEST(Proxy, UnixFrontIsOwnerOnlyAndATakenAddressIsRefused) {
  Server s = ListenOn("unix");
  auto p = Proxy::Start(Proxy::FrontFor(s.address), s.address, Spec{});
  ASSERT_TRUE(p.ok()) << p.error().ToString();
  struct stat st {};
  ASSERT_EQ(::stat((*p)->address().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto again = Proxy::Start((*p)->address(), s.address, Spec{});
  IPCH_EXPECT_ERRC(again, AlreadyExists);
  IPCH_EXPECT_ERRC(Proxy::Start("nowhere", s.address, Spec{}), InvalidArgument);
}

// ---- spliced into pipes --------------------------------------------------------------------------

// Two pipes, as a FIFO pair joins a client and a server: the client writes `up`, the server `down`.
struct Pipes {
  UniqueFd up_r, up_w, down_r, down_w;
};
Pipes MakePipes(int up_flags, int down_flags) {
  Pipes p;
  int a[2], b[2];
  EXPECT_EQ(::pipe2(a, up_flags), 0);
  EXPECT_EQ(::pipe2(b, down_flags), 0);
  p.up_r = UniqueFd(a[0]);
  p.up_w = UniqueFd(a[1]);
  p.down_r = UniqueFd(b[0]);
  p.down_w = UniqueFd(b[1]);
  return p;
}
ino_t InodeOf(int fd) {
  struct stat st {};
  EXPECT_EQ(::fstat(fd, &st), 0);
  return st.st_ino;
}
// SIGPIPE held back in this thread while a test writes into pipes whose reader is gone: the write
// says EPIPE; a pending signal is taken on the way out.
class NoSigpipe {
 public:
  NoSigpipe() {
    sigemptyset(&set_);
    sigaddset(&set_, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &set_, &old_);
  }
  ~NoSigpipe() {
    const timespec zero{};
    while (::sigtimedwait(&set_, nullptr, &zero) == SIGPIPE) {
    }
    pthread_sigmask(SIG_SETMASK, &old_, nullptr);
  }

 private:
  sigset_t set_, old_;
};

class SplicedPipes : public ::testing::Test {
 protected:
  uint64_t Seed() const { return ::ipch::testing::Current().seed; }
};

// The senders' descriptors keep their numbers, blocking modes and close-on-exec flags but lead
// into the proxy, which forwards each direction untouched and passes a sender's close on as EOF.
TEST_F(SplicedPipes, ForwardEachDirectionUntouchedKeepTheDescriptorsAndPassTheEnd) {
  Pipes p = MakePipes(O_CLOEXEC | O_NONBLOCK, 0);
  const int up = p.up_w.get(), down = p.down_w.get();
  const ino_t up_pipe = InodeOf(up);
  auto proxy = Proxy::Splice(up, down, Spec{});
  ASSERT_TRUE(proxy.ok()) << proxy.error().ToString();
  EXPECT_NE(InodeOf(up), up_pipe) << "the client's descriptor must now lead into the proxy";
  EXPECT_EQ(::fcntl(up, F_GETFL) & (O_ACCMODE | O_NONBLOCK), O_WRONLY | O_NONBLOCK);
  EXPECT_EQ(::fcntl(down, F_GETFL) & (O_ACCMODE | O_NONBLOCK), O_WRONLY);
  EXPECT_EQ(::fcntl(up, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
  EXPECT_EQ(::fcntl(down, F_GETFD) & FD_CLOEXEC, 0);
  const Bytes up_bytes = Random(1 << 20, Seed()), down_bytes = Random(300000, Seed() + 1);
  std::thread writer([&] {  // more than a pipe holds: written while the other end reads
    EXPECT_TRUE(SendAll(down, down_bytes));
  });
  EXPECT_TRUE(ReadUpTo(p.down_r.get(), down_bytes.size(), Settle()).data == down_bytes);
  writer.join();
  ::fcntl(up, F_SETFL, O_WRONLY);  // blocking, for SendAll
  writer = std::thread([&] { EXPECT_TRUE(SendAll(up, up_bytes)); });
  EXPECT_TRUE(ReadUpTo(p.up_r.get(), up_bytes.size(), Settle()).data == up_bytes);
  writer.join();
  p.up_w.reset();
  EXPECT_EQ(ReadUpTo(p.up_r.get(), 1, Settle()).end, 0) << "the client's close must reach the server as EOF";
  EXPECT_TRUE((*proxy)->WaitFor(
      [&](const Stats& s) { return s.forwarded[0] == up_bytes.size() && s.forwarded[1] == down_bytes.size(); },
      Settle()))
      << LogOf(**proxy);
}

// A close ends both pipes, as a socket's close ends both directions: each reader sees the end
// after exactly the bytes before it, and each writer is told EPIPE. A reset, which a pipe does
// not have, does the same.
TEST_F(SplicedPipes, ACloseEndsBothPipesAfterExactlyItsBytes) {
  for (const char* spec : {"up:close_after=100", "up:reset_after=100"}) {
    SCOPED_TRACE(spec);
    NoSigpipe quiet;
    Pipes p = MakePipes(O_CLOEXEC, O_CLOEXEC);
    auto proxy = Proxy::Splice(p.up_w.get(), p.down_w.get(), Parsed(spec));
    ASSERT_TRUE(proxy.ok()) << proxy.error().ToString();
    const Bytes b = Random(1000, Seed());
    ASSERT_TRUE(SendAll(p.up_w.get(), b));
    auto got = ReadUpTo(p.up_r.get(), b.size(), Settle());
    EXPECT_EQ(got.data, Bytes(b.begin(), b.begin() + 100));
    EXPECT_EQ(got.end, 0) << "the server sees the end, not " << std::strerror(got.end);
    got = ReadUpTo(p.down_r.get(), 1, Settle());
    EXPECT_EQ(got.end, 0) << "the client's side must end too";
    const char byte = 1;
    ASSERT_TRUE((*proxy)->WaitFor([](const Stats& s) { return s.closes + s.resets == 1; }, Settle()));
    (*proxy)->Stop();  // its threads have closed the pipes' ends once it returns
    EXPECT_EQ(::write(p.down_w.get(), &byte, 1), -1);
    EXPECT_EQ(errno, EPIPE) << "the server's writes must fail: " << std::strerror(errno);
    EXPECT_EQ(::write(p.up_w.get(), &byte, 1), -1);
    EXPECT_EQ(errno, EPIPE) << "the client's writes must fail: " << std::strerror(errno);
  }
}

TEST_F(SplicedPipes, ArmedEventsHitTheByteTheyWereAimedAt) {
  Pipes p = MakePipes(O_CLOEXEC, O_CLOEXEC);
  auto proxy = Proxy::Splice(p.up_w.get(), p.down_w.get(), Spec{Toxics{}, Toxics{}, Seed()});
  ASSERT_TRUE(proxy.ok()) << proxy.error().ToString();
  const Bytes head = Random(300, Seed());
  ASSERT_TRUE(SendAll(p.down_w.get(), head));
  EXPECT_EQ(ReadUpTo(p.down_r.get(), head.size(), Settle()).data, head);
  EXPECT_EQ((*proxy)->Taken(Direction::kDown), head.size());
  const Bytes b = Random(100, Seed() + 1);
  (*proxy)->ArmEvent(Direction::kDown, 17, Event::kFlip);
  ASSERT_TRUE(SendAll(p.down_w.get(), b));
  auto got = ReadUpTo(p.down_r.get(), b.size(), Settle());
  ASSERT_EQ(got.data.size(), b.size());
  for (std::size_t i = 0; i < b.size(); ++i) {
    const int bits = std::popcount(static_cast<unsigned>(got.data[i] ^ b[i]));
    EXPECT_EQ(bits, i == 17 ? 1 : 0) << "byte " << i << LogOf(**proxy);
  }
  (*proxy)->ArmEvent(Direction::kUp, 50, Event::kStall);
  ASSERT_TRUE(SendAll(p.up_w.get(), b));
  EXPECT_EQ(ReadUpTo(p.up_r.get(), 50, Settle()).data, Bytes(b.begin(), b.begin() + 50));
  ASSERT_TRUE((*proxy)->WaitFor([](const Stats& s) { return s.stalls == 1; }, Settle()));
  EXPECT_TRUE(ReadUpTo(p.up_r.get(), 1, Deadline::After(milliseconds(50))).timed_out) << "a byte passed the stall";
  (*proxy)->Resume();
  EXPECT_EQ(ReadUpTo(p.up_r.get(), 50, Settle()).data, Bytes(b.begin() + 50, b.end()));
}

TEST_F(SplicedPipes, StopEndsBothPipes) {
  Pipes p = MakePipes(O_CLOEXEC, O_CLOEXEC);
  auto proxy = Proxy::Splice(p.up_w.get(), p.down_w.get(), Parsed("up:stall_after=0"));
  ASSERT_TRUE(proxy.ok()) << proxy.error().ToString();
  ASSERT_TRUE(SendAll(p.up_w.get(), Random(10, Seed())));
  ASSERT_TRUE((*proxy)->WaitFor([](const Stats& s) { return s.stalls == 1; }, Settle()));
  (*proxy)->Stop();
  EXPECT_EQ(ReadUpTo(p.up_r.get(), 1, Settle()).end, 0) << "the server must see the end";
  EXPECT_EQ(ReadUpTo(p.down_r.get(), 1, Settle()).end, 0) << "the client must see the end";
}

// Only two pipes' write-only ends are spliced; anything else is refused and left as it was.
TEST_F(SplicedPipes, RefusesWhatIsNotAPipesWriteEndAndLeavesItAlone) {
  Pipes p = MakePipes(O_CLOEXEC, O_CLOEXEC);
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  UniqueFd s0(sv[0]), s1(sv[1]);
  const ino_t up_pipe = InodeOf(p.up_w.get());
  IPCH_EXPECT_ERRC(Proxy::Splice(p.up_r.get(), p.down_w.get(), Spec{}), InvalidArgument);
  IPCH_EXPECT_ERRC(Proxy::Splice(p.up_w.get(), s0.get(), Spec{}), InvalidArgument);
  IPCH_EXPECT_ERRC(Proxy::Splice(p.up_w.get(), p.up_w.get(), Spec{}), InvalidArgument);
  const auto closed = Proxy::Splice(p.up_w.get(), 1 << 20, Spec{});
  ASSERT_FALSE(closed.ok());
  EXPECT_NE(closed.error().ToString().find("descriptor 1048576 (down)"), std::string::npos) << closed.error().ToString();
  EXPECT_EQ(InodeOf(p.up_w.get()), up_pipe) << "a refused splice must leave the descriptor alone";
}

// How a test finds a connection's pipes: the write-only ends open now, and what waits in a pipe.
TEST_F(SplicedPipes, PipeWriteEndsListsWriteEndsAndBufferedCountsWaitingBytes) {
  const std::vector<int> before = Proxy::PipeWriteEnds();
  Pipes p = MakePipes(O_CLOEXEC, O_CLOEXEC);
  const std::vector<int> after = Proxy::PipeWriteEnds();
  EXPECT_EQ(after.size(), before.size() + 2);
  EXPECT_TRUE(std::binary_search(after.begin(), after.end(), p.up_w.get()));
  EXPECT_TRUE(std::binary_search(after.begin(), after.end(), p.down_w.get()));
  EXPECT_FALSE(std::binary_search(after.begin(), after.end(), p.up_r.get()));
  ASSERT_TRUE(SendAll(p.up_w.get(), Random(10, Seed())));
  EXPECT_EQ(Proxy::Buffered(p.up_w.get()), 10u);
  EXPECT_EQ(Proxy::Buffered(p.up_r.get()), 10u);
  EXPECT_EQ(Proxy::Buffered(p.down_w.get()), 0u);
}

// ---- the command ---------------------------------------------------------------------------------

struct Command {
  ExitInfo exit;
  std::string out, err;
};

// Runs ipch_proxy with `args`; if `until_line` is set, waits for stdout to show it, calls
// `while_running`, then sends SIGTERM.
Command RunCommand(std::vector<std::string> args, const std::function<void(const std::string&)>& while_running = {}) {
  Command cmd;
  int out[2], err[2];
  if (::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0) return cmd;
  args.insert(args.begin(), IPCH_PROXY_EXE);
  auto child = ChildProcess::Spawn([&](ControlChannel&) -> Status {
    ::dup2(out[1], 1);
    ::dup2(err[1], 2);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    ::execv(argv[0], argv.data());
    return ErrnoError("execv ipch_proxy");
  });
  ::close(out[1]);
  ::close(err[1]);
  UniqueFd rout(out[0]), rerr(err[0]);
  auto read_some = [](int fd, std::string* into) {
    char buf[4096];
    ssize_t n = RetryEintr([&] { return ::read(fd, buf, sizeof buf); });
    if (n > 0) into->append(buf, static_cast<std::size_t>(n));
    return n > 0;
  };
  if (!child.ok()) return cmd;
  if (while_running) {
    while (cmd.out.find('\n') == std::string::npos && Ready(rout.get(), POLLIN, Settle()) &&
           read_some(rout.get(), &cmd.out)) {
    }
    while_running(cmd.out);
    ::kill(child->pid(), SIGTERM);
  }
  while (read_some(rout.get(), &cmd.out)) {
  }
  while (read_some(rerr.get(), &cmd.err)) {
  }
  auto ended = child->Wait(Settle());
  if (ended.ok()) cmd.exit = *ended;
  return cmd;
}

TEST(ProxyCommand, BadUsageExitsTwoWithTheReason) {
  auto missing = RunCommand({"--listen", "127.0.0.1:0"});
  EXPECT_EQ(missing.exit.code, 2) << missing.exit.ToString();
  EXPECT_NE(missing.err.find("--upstream is required"), std::string::npos) << missing.err;
  auto bogus = RunCommand({"--listen", "127.0.0.1:0", "--upstream", "127.0.0.1:1", "--toxics", "up:bogus=1"});
  EXPECT_EQ(bogus.exit.code, 2);
  EXPECT_NE(bogus.err.find("--toxics: toxic 'bogus=1': unknown toxic 'bogus'"), std::string::npos) << bogus.err;
  auto flag = RunCommand({"--listne", "x"});
  EXPECT_EQ(flag.exit.code, 2);
  EXPECT_NE(flag.err.find("unknown option '--listne'"), std::string::npos) << flag.err;
  auto addr = RunCommand({"--listen", "localhost", "--upstream", "127.0.0.1:1"});
  EXPECT_EQ(addr.exit.code, 1);
  EXPECT_NE(addr.err.find("proxy listen address 'localhost': expected HOST:PORT"), std::string::npos) << addr.err;
}

TEST(ProxyCommand, ForwardsWithToxicsUntilTerminated) {
  Server s = ListenOn("tcp");
  const Bytes b = Random(100, 7);
  Bytes got;
  auto run = RunCommand({"--listen", "127.0.0.1:0", "--upstream", s.address, "--toxics", "up:slice=1,flip_at=3",
                         "--seed", "9"},
                        [&](const std::string& out) {
                          const std::string tag = "listening on ";
                          auto at = out.find(tag);
                          ASSERT_NE(at, std::string::npos) << out;
                          auto end = out.find(' ', at + tag.size());
                          UniqueFd c = ConnectTo(out.substr(at + tag.size(), end - at - tag.size()));
                          ASSERT_TRUE(c);
                          UniqueFd u = AcceptOne(s);
                          ASSERT_TRUE(SendAll(c.get(), b));
                          got = ReadUpTo(u.get(), b.size(), Settle()).data;
                        });
  EXPECT_TRUE(run.exit.exited && run.exit.code == 128 + SIGTERM) << run.exit.ToString() << run.err;
  EXPECT_NE(run.out.find("ipch_proxy: Terminated; connections 1"), std::string::npos) << run.out;
  ASSERT_EQ(got.size(), b.size());
  EXPECT_NE(got[3], b[3]);
  EXPECT_EQ(Bytes(got.begin() + 4, got.end()), Bytes(b.begin() + 4, b.end()));
  EXPECT_NE(run.out.find("(seed=9;up:slice=1,flip_at=3)"), std::string::npos) << run.out;
  EXPECT_NE(run.out.find("forwarded up 100 down 0 bytes, flips 1/0"), std::string::npos) << run.out;
  EXPECT_NE(run.out.find("conn 1 up: flip bit"), std::string::npos) << run.out;
}

}  // namespace
}  // namespace ipch::toxics
