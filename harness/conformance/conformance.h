// The conformance battery: typed suites, one per group, run against any ipch::Transport.
// Instantiate for your adapter with IPCH_INSTANTIATE_CONFORMANCE (see docs/new-transport.md).
#pragma once

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <random>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "ipch/audit.h"
#include "ipch/fault.h"
#include "ipch/peer.h"
#include "ipch/testing.h"
#include "ipch/toxics.h"
#include "ipch/transport.h"

namespace ipch::conformance {

using ::ipch::testing::Check;
using ::ipch::testing::MakeMessage;
using ::ipch::testing::Peer;
using ::ipch::testing::VerifyMessage;

// Bounds: generous for what must succeed, short for what must time out. All scale under
// sanitizers (SlowdownFactor), so no case depends on the machine's speed.
// IPCH_SETTLE_MS overrides the success bound (the self-test shortens it for broken transports).
inline Clock::duration SettleBound() {
  static const Clock::duration bound = [] {
    const char* env = std::getenv("IPCH_SETTLE_MS");
    long ms = env ? std::atol(env) : 0;
    return ms > 0 ? Clock::duration(Millis(ms)) : Clock::duration(std::chrono::seconds(10));
  }();
  return bound;
}
inline Deadline Settle() { return Deadline::After(Scaled(SettleBound())); }
inline Clock::duration ShortWait() { return Scaled(Millis(100)); }
inline Clock::duration DeathBound() { return Scaled(std::chrono::seconds(2)); }

struct NameOf {
  template <class T>
  static std::string GetName(int) {
    return std::string(T::kName);
  }
};

template <class T>
class TransportTest : public ::testing::Test {
 protected:
  using Conn = typename T::Connection;
  using Lis = typename T::Listener;

  struct Pair {
    Lis listener;
    Conn client;
    Conn server;
  };

  void SetUp() override { address_ = T::Address(Spec()); }

  static EndpointSpec Spec(std::string token = "") {
    const auto& ctx = ::ipch::testing::Current();
    return {token.empty() ? ctx.token : token, ctx.scratch_dir};
  }
  static bool Has(Cap c) { return T::kCaps.Has(c); }
  static bool CrossProcess() { return Has(Cap::CrossProcess); }
  static uint64_t Seed() { return ::ipch::testing::Current().seed; }
  static std::size_t Max(const Conn& c) { return c.max_message_size(); }

  // Listen (on this test's address unless told otherwise), connect and accept, all in this process.
  Result<Pair> Connected(const std::string& address = "") {
    auto l = T::Listen(address.empty() ? address_ : address);
    if (!l.ok()) return std::move(l).error();
    auto c = T::Connect(l->address(), Settle());
    if (!c.ok()) return std::move(c).error();
    auto s = l->Accept(Settle());
    if (!s.ok()) return std::move(s).error();
    return Pair{std::move(*l), std::move(*c), std::move(*s)};
  }

  // A peer (child process or thread) that connects to `address` and runs `body`.
  template <class F>
  Result<Peer> StartClient(const std::string& address, F body) {
    return Peer::Start(CrossProcess(), [address, body](ControlChannel& ch) -> Status {
      auto c = T::Connect(address, Settle());
      if (!c.ok()) return std::move(c).error();
      return body(*c, ch);
    });
  }

  std::string address_;
};

#define IPCH_REQUIRE_CAP(cap)                                                           \
  do {                                                                                  \
    if (!TypeParam::kCaps.Has(::ipch::Cap::cap)) {                                      \
      GTEST_SKIP() << "UNSUPPORTED: " << TypeParam::kName << " lacks capability " #cap; \
    }                                                                                   \
  } while (0)

#define IPCH_CONNECTED(var)         \
  auto var##_r = this->Connected(); \
  IPCH_ASSERT_OK(var##_r);          \
  auto& var = *var##_r

#define IPCH_ASSERT_PEER_OK(peer) IPCH_ASSERT_OK((peer).Join(Settle()))

// Sends `msg` from a to b and checks it arrives intact.
template <class C>
::testing::AssertionResult RoundTrip(C& a, C& b, const Bytes& msg) {
  Status s = a.Send(msg, Settle());
  if (!s.ok()) return ::testing::AssertionFailure() << "send " << msg.size() << " bytes: " << s.error().ToString();
  Bytes got;
  s = b.Receive(got, Settle());
  if (!s.ok()) return ::testing::AssertionFailure() << "receive " << msg.size() << " bytes: " << s.error().ToString();
  if (got != msg)
    return ::testing::AssertionFailure() << "message of " << msg.size() << " bytes arrived as " << got.size()
                                         << " different bytes";
  return ::testing::AssertionSuccess();
}

// A peer body that echoes `count` messages back.
inline auto EchoPeer(int count) {
  return [count](auto& c, ControlChannel&) -> Status {
    Bytes m;
    for (int i = 0; i < count; ++i) {
      IPCH_RETURN_IF_ERROR(c.Receive(m, Settle()));
      IPCH_RETURN_IF_ERROR(c.Send(m, Settle()));
    }
    return Ok();
  };
}

// A peer body that connects, signals, and then stays parked (connection open) until killed.
inline auto ParkedPeer() {
  return [](auto&, ControlChannel& ch) -> Status {
    IPCH_RETURN_IF_ERROR(ch.Signal());
    return ch.WaitSignal(Deadline::Never());
  };
}

// A plain byte connection to `address`, for adapters with Cap::RawPeer (they provide
// static Result<UniqueFd> ConnectRaw(address, Deadline)); others never reach this.
template <class T>
Result<UniqueFd> ConnectRaw(const std::string& address, Deadline d) {
  if constexpr (requires { T::ConnectRaw(address, d); }) {
    return T::ConnectRaw(address, d);
  } else {
    return MakeError(Errc::InvalidArgument, std::string(T::kName) + " has no ConnectRaw");
  }
}
// One write of hostile bytes on a raw connection: send(MSG_NOSIGNAL) on a socket, write on a
// pipe (whose reader, the listener, is alive while these tests write).
inline ssize_t RawWrite(int fd, const void* data, std::size_t n) {
  ssize_t w = ::send(fd, data, n, MSG_NOSIGNAL);
  if (w < 0 && errno == ENOTSOCK) w = ::write(fd, data, n);
  return w;
}

// Adapters with Cap::RawPeer also say how their frames look, so hostile-peer cases can write
// well-formed headers announcing any length: static Bytes FrameHeader(uint32_t length, ByteView payload).
template <class T>
constexpr bool kHasFrameHeader = requires(ByteView p) {
  { T::FrameHeader(uint32_t{0}, p) } -> std::same_as<Bytes>;
};
// Bytes a frame adds to its payload on the wire (0 without the hook).
template <class T>
std::size_t FrameOverhead() {
  if constexpr (kHasFrameHeader<T>) {
    return T::FrameHeader(0, {}).size();
  } else {
    return 0;
  }
}
// Adapters whose addresses are socket addresses (HOST:PORT or a unix socket path) that Connect
// accepts get the stream-toxics cases: static constexpr bool kSocketAddress = true.
template <class T>
constexpr bool kHasSocketAddress = requires {
  requires T::kSocketAddress;
};

// How many small messages can wait unread in one direction: unbounded (by count) unless the
// adapter says otherwise with static std::size_t UnreadMessages() (a POSIX queue holds
// mq_maxmsg messages whatever their size).
template <class T>
uint64_t UnreadMessages() {
  if constexpr (requires { T::UnreadMessages(); }) {
    return T::UnreadMessages();
  } else {
    return UINT64_MAX;
  }
}

// Optional adapter hooks for the shared-memory and named-object cases. An adapter without a
// hook gets those cases reported UNSUPPORTED with the hook's name, never a silent pass.
template <class T>
constexpr bool kHasMidPublishHook = requires {
  T::SetMidPublishHook(std::function<void()>());
};
template <class T>
constexpr bool kHasSharedBytes = requires(const typename T::Connection& c) {
  { T::SharedBytes(c) } -> std::convertible_to<std::span<std::byte>>;
};
template <class T>
constexpr bool kHasImpostors = requires(const std::string& a) {
  { T::PlantImpostor(a, Impostor::WrongSize) } -> std::same_as<Status>;
  T::RemoveImpostor(a);
};

#define IPCH_REQUIRE_HOOK(flag, hook)                                                            \
  do {                                                                                           \
    if (!(flag)) GTEST_SKIP() << "UNSUPPORTED: " << TypeParam::kName << " has no " hook " hook"; \
  } while (0)

// Plants an impostor object at an address and removes it again when it goes out of scope.
template <class T>
class PlantedImpostor {
 public:
  PlantedImpostor(std::string address, Impostor kind) : address_(std::move(address)) {
    if constexpr (kHasImpostors<T>) status_ = T::PlantImpostor(address_, kind);
  }
  ~PlantedImpostor() {
    if constexpr (kHasImpostors<T>) T::RemoveImpostor(address_);
  }
  const Status& status() const { return status_; }

 private:
  std::string address_;
  Status status_;
};

// Plants `kind` at `address` and checks that Listen refuses it with `on_listen`, Connect with
// `on_connect`, and that the refusals left it in place (a second Listen is refused the same way).
template <class T>
::testing::AssertionResult ImpostorIsRefused(const std::string& address, Impostor kind, Errc on_listen,
                                             Errc on_connect) {
  PlantedImpostor<T> planted(address, kind);
  if (!planted.status().ok()) return ::testing::AssertionFailure() << "plant: " << planted.status().error().ToString();
  auto expect = [](const auto& r, Errc want, const char* what) -> ::testing::AssertionResult {
    if (r.Is(want)) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << what << ": expected " << make_error_code(want).message() << ", got "
                                         << (r.ok() ? std::string("OK") : r.error().ToString());
  };
  if (auto a = expect(T::Listen(address), on_listen, "listen"); !a) return a;
  if (auto a = expect(T::Connect(address, Settle()), on_connect, "connect"); !a) return a;
  return expect(T::Listen(address), on_listen, "listen again (the refusal must not remove the object)");
}

// Sends `msg` to an echoing peer and checks the echo.
template <class C>
::testing::AssertionResult RoundTripVia(C& c, const Bytes& msg) {
  Status s = c.Send(msg, Settle());
  if (!s.ok()) return ::testing::AssertionFailure() << "send: " << s.error().ToString();
  Bytes got;
  s = c.Receive(got, Settle());
  if (!s.ok()) return ::testing::AssertionFailure() << "receive echo: " << s.error().ToString();
  if (got != msg)
    return ::testing::AssertionFailure() << "echo of " << msg.size() << " bytes came back as " << got.size()
                                         << " different bytes";
  return ::testing::AssertionSuccess();
}

// ---------------------------------------------------------------------------------------
// basic: sizes, boundaries, directions
template <class T>
class Basic : public TransportTest<T> {};
TYPED_TEST_SUITE_P(Basic);

TYPED_TEST_P(Basic, ConnectAcceptRoundTrip) {
  IPCH_CONNECTED(p);
  EXPECT_TRUE(RoundTrip(p.client, p.server, MakeMessage(1, 100, this->Seed())));
}

TYPED_TEST_P(Basic, RoundTripEmpty) {
  IPCH_CONNECTED(p);
  EXPECT_TRUE(RoundTrip(p.client, p.server, Bytes{}));
  EXPECT_TRUE(RoundTrip(p.server, p.client, Bytes{}));
}

TYPED_TEST_P(Basic, RoundTripOneByte) {
  IPCH_CONNECTED(p);
  EXPECT_TRUE(RoundTrip(p.client, p.server, Bytes{std::byte{0x5a}}));
}

TYPED_TEST_P(Basic, RoundTripBoundarySizes) {
  IPCH_CONNECTED(p);
  const std::size_t max = this->Max(p.client);
  for (std::size_t n : {2, 3, 4, 5, 7, 8, 9, 255, 256, 4095, 4096, 4097, 65535, 65536, 65537}) {
    if (n > max) continue;
    // Sizes above the socket buffer need a concurrent reader; these fit.
    ASSERT_TRUE(RoundTrip(p.client, p.server, MakeMessage(n, n, this->Seed()))) << "size " << n;
  }
}

TYPED_TEST_P(Basic, RoundTripMaxSize) {
  auto l = TypeParam::Listen(this->address_);
  IPCH_ASSERT_OK(l);
  const uint64_t salt = this->Seed();
  // The peer sends a max-size message; far above any kernel buffer, so the transport must
  // cope with partial writes and reads on the way.
  auto peer = this->StartClient(l->address(), [salt](auto& c, ControlChannel&) -> Status {
    Bytes m = MakeMessage(7, c.max_message_size(), salt);
    IPCH_RETURN_IF_ERROR(c.Send(m, Settle()));
    Bytes ack;
    return c.Receive(ack, Settle());
  });
  IPCH_ASSERT_OK(peer);
  auto s = l->Accept(Settle());
  IPCH_ASSERT_OK(s);
  Bytes got;
  IPCH_ASSERT_OK(s->Receive(got, Settle()));
  EXPECT_TRUE(VerifyMessage(got, 7, s->max_message_size(), salt));
  IPCH_EXPECT_OK(s->Send(Bytes{}, Settle()));
  IPCH_ASSERT_PEER_OK(*peer);
}

TYPED_TEST_P(Basic, MaxPlusOneIsRejectedAndConnectionSurvives) {
  IPCH_CONNECTED(p);
  Bytes big(this->Max(p.client) + 1);
  IPCH_EXPECT_ERRC(p.client.Send(big, Settle()), MessageTooLarge);
  // Nothing of the rejected message went out: the next message is the next one received.
  EXPECT_TRUE(RoundTrip(p.client, p.server, MakeMessage(2, 10, this->Seed())));
}

TYPED_TEST_P(Basic, ServerSendsFirst) {
  IPCH_CONNECTED(p);
  EXPECT_TRUE(RoundTrip(p.server, p.client, MakeMessage(3, 33, this->Seed())));
}

TYPED_TEST_P(Basic, PingPongBothDirections) {
  IPCH_CONNECTED(p);
  for (uint64_t i = 0; i < 200; ++i) {
    ASSERT_TRUE(RoundTrip(i % 2 ? p.client : p.server, i % 2 ? p.server : p.client, MakeMessage(i, 64, this->Seed())));
  }
}

TYPED_TEST_P(Basic, AllByteValuesSurvive) {
  IPCH_CONNECTED(p);
  Bytes m(512);
  for (std::size_t i = 0; i < m.size(); ++i) m[i] = static_cast<std::byte>(255 - i % 256);
  EXPECT_TRUE(RoundTrip(p.client, p.server, m));
}

TYPED_TEST_P(Basic, BurstOfSmallMessagesThenDrain) {
  IPCH_CONNECTED(p);
  const uint64_t salt = this->Seed();
  // 100 unread messages fit every transport's buffering (unix sockets charge ~1 KiB per send),
  // except where the mechanism counts messages and says how many (a POSIX queue's mq_maxmsg).
  const uint64_t burst = std::min<uint64_t>(100, UnreadMessages<TypeParam>());
  for (uint64_t i = 0; i < burst; ++i) IPCH_ASSERT_OK(p.client.Send(MakeMessage(i, i % 40, salt), Settle()));
  Bytes got;
  for (uint64_t i = 0; i < burst; ++i) {
    IPCH_ASSERT_OK(p.server.Receive(got, Settle()));
    ASSERT_TRUE(VerifyMessage(got, i, i % 40, salt));
  }
}

TYPED_TEST_P(Basic, MultipleClientsAreIsolated) {
  auto l = TypeParam::Listen(this->address_);
  IPCH_ASSERT_OK(l);
  std::vector<typename TypeParam::Connection> clients, servers;
  for (int i = 0; i < 4; ++i) {
    auto c = TypeParam::Connect(l->address(), Settle());
    IPCH_ASSERT_OK(c);
    auto s = l->Accept(Settle());
    IPCH_ASSERT_OK(s);
    clients.push_back(std::move(*c));
    servers.push_back(std::move(*s));
  }
  for (int i = 0; i < 4; ++i) IPCH_ASSERT_OK(clients[i].Send(MakeMessage(i, 16 + i, this->Seed()), Settle()));
  for (int i = 3; i >= 0; --i) {
    Bytes got;
    IPCH_ASSERT_OK(servers[i].Receive(got, Settle()));
    EXPECT_TRUE(VerifyMessage(got, i, 16 + i, this->Seed())) << "connection " << i;
  }
}

TYPED_TEST_P(Basic, ConnectWithoutListenerIsPeerClosed) {
  std::string addr;
  {
    auto l = TypeParam::Listen(this->address_);
    IPCH_ASSERT_OK(l);
    addr = l->address();  // a real address, now with nobody behind it
  }
  IPCH_EXPECT_ERRC(TypeParam::Connect(addr, Settle()), PeerClosed);
}

REGISTER_TYPED_TEST_SUITE_P(Basic, ConnectAcceptRoundTrip, RoundTripEmpty, RoundTripOneByte, RoundTripBoundarySizes,
                            RoundTripMaxSize, MaxPlusOneIsRejectedAndConnectionSurvives, ServerSendsFirst,
                            PingPongBothDirections, AllByteValuesSurvive, BurstOfSmallMessagesThenDrain,
                            MultipleClientsAreIsolated, ConnectWithoutListenerIsPeerClosed);

// ---------------------------------------------------------------------------------------
// ordering and integrity: checksummed sequences across a real peer
template <class T>
class Ordering : public TransportTest<T> {};
TYPED_TEST_SUITE_P(Ordering);

TYPED_TEST_P(Ordering, ChecksummedSequenceArrivesInOrder) {
  auto l = TypeParam::Listen(this->address_);
  IPCH_ASSERT_OK(l);
  const uint64_t salt = this->Seed();
  constexpr uint64_t kCount = 3000;
  auto peer = this->StartClient(l->address(), [salt](auto& c, ControlChannel&) -> Status {
    std::mt19937_64 rng(salt);
    for (uint64_t i = 0; i < kCount; ++i) IPCH_RETURN_IF_ERROR(c.Send(MakeMessage(i, rng() % 2048, salt), Settle()));
    return Ok();
  });
  IPCH_ASSERT_OK(peer);
  auto s = l->Accept(Settle());
  IPCH_ASSERT_OK(s);
  std::mt19937_64 rng(salt);
  Bytes got;
  for (uint64_t i = 0; i < kCount; ++i) {
    IPCH_ASSERT_OK(s->Receive(got, Settle()));
    ASSERT_TRUE(VerifyMessage(got, i, rng() % 2048, salt));
  }
  IPCH_ASSERT_PEER_OK(*peer);
}

TYPED_TEST_P(Ordering, LargeRandomMessagesIntact) {
  auto l = TypeParam::Listen(this->address_);
  IPCH_ASSERT_OK(l);
  const uint64_t salt = this->Seed();
  auto peer = this->StartClient(l->address(), [salt](auto& c, ControlChannel&) -> Status {
    std::mt19937_64 rng(salt);
    for (uint64_t i = 0; i < 12; ++i) {
      IPCH_RETURN_IF_ERROR(c.Send(MakeMessage(i, rng() % (c.max_message_size() + 1), salt), Settle()));
    }
    return Ok();
  });
  IPCH_ASSERT_OK(peer);
  auto s = l->Accept(Settle());
  IPCH_ASSERT_OK(s);
  std::mt19937_64 rng(salt);
  Bytes got;
  for (uint64_t i = 0; i < 12; ++i) {
    IPCH_ASSERT_OK(s->Receive(got, Settle()));
    ASSERT_TRUE(VerifyMessage(got, i, rng() % (s->max_message_size() + 1), salt));
  }
  IPCH_ASSERT_PEER_OK(*peer);
}

TYPED_TEST_P(Ordering, EchoPreservesEveryMessage) {
  auto l = TypeParam::Listen(this->address_);
  IPCH_ASSERT_OK(l);
  constexpr int kCount = 1000;
  auto peer = this->StartClient(l->address(), EchoPeer(kCount));
  IPCH_ASSERT_OK(peer);
  auto s = l->Accept(Settle());
  IPCH_ASSERT_OK(s);
  std::mt19937_64 rng(this->Seed());
  for (int i = 0; i < kCount; ++i) {
    ASSERT_TRUE(RoundTripVia(*s, MakeMessage(i, rng() % 300, this->Seed())));
  }
  IPCH_ASSERT_PEER_OK(*peer);
}

TYPED_TEST_P(Ordering, InterleavedTinyAndHugeKeepBoundaries) {
  auto l = TypeParam::Listen(this->address_);
  IPCH_ASSERT_OK(l);
  const uint64_t salt = this->Seed();
  auto sizes = [](std::size_t max) {
    return std::vector<std::size_t>{0, max, 1, 0, max / 2 + 1, 3, max - 1, 0, 8, max};
  };
  auto peer = this->StartClient(l->address(), [salt, sizes](auto& c, ControlChannel&) -> Status {
    uint64_t i = 0;
    for (std::size_t n : sizes(c.max_message_size())) IPCH_RETURN_IF_ERROR(c.Send(MakeMessage(i++, n, salt), Settle()));
    return Ok();
  });
  IPCH_ASSERT_OK(peer);
  auto s = l->Accept(Settle());
  IPCH_ASSERT_OK(s);
  uint64_t i = 0;
  Bytes got;
  for (std::size_t n : sizes(s->max_message_size())) {
    IPCH_ASSERT_OK(s->Receive(got, Settle()));
    ASSERT_TRUE(VerifyMessage(got, i++, n, salt));
  }
  IPCH_ASSERT_PEER_OK(*peer);
}

TYPED_TEST_P(Ordering, FullDuplexStreamsDoNotInterfere) {
  auto l = TypeParam::Listen(this->address_);
  IPCH_ASSERT_OK(l);
  const uint64_t salt = this->Seed();
  constexpr uint64_t kCount = 2000;
  // Both sides send and receive at once; the peer interleaves, we use a sender thread.
  auto peer = this->StartClient(l->address(), [salt](auto& c, ControlChannel&) -> Status {
    Bytes m;
    for (uint64_t i = 0; i < kCount; ++i) {
      IPCH_RETURN_IF_ERROR(c.Send(MakeMessage(i, 200 + i % 1000, salt ^ 1), Settle()));
      IPCH_RETURN_IF_ERROR(c.Receive(m, Settle()));
      IPCH_RETURN_IF_ERROR(Check(static_cast<bool>(VerifyMessage(m, i, 100 + i % 500, salt)), "duplex message"));
    }
    return Ok();
  });
  IPCH_ASSERT_OK(peer);
  auto s = l->Accept(Settle());
  IPCH_ASSERT_OK(s);
  Status send_status;
  std::thread sender([&] {
    for (uint64_t i = 0; i < kCount && send_status.ok(); ++i)
      send_status = s->Send(MakeMessage(i, 100 + i % 500, salt), Settle());
  });
  Bytes got;
  for (uint64_t i = 0; i < kCount; ++i) {
    Status r = s->Receive(got, Settle());
    if (!r.ok()) {
      ADD_FAILURE() << "receive " << i << ": " << r.error().ToString();
      break;
    }
    if (!VerifyMessage(got, i, 200 + i % 1000, salt ^ 1)) {
      ADD_FAILURE() << VerifyMessage(got, i, 200 + i % 1000, salt ^ 1).message();
      break;
    }
  }
  sender.join();
  IPCH_EXPECT_OK(send_status);
  IPCH_ASSERT_PEER_OK(*peer);
}

REGISTER_TYPED_TEST_SUITE_P(Ordering, ChecksummedSequenceArrivesInOrder, LargeRandomMessagesIntact,
                            EchoPreservesEveryMessage, InterleavedTinyAndHugeKeepBoundaries,
                            FullDuplexStreamsDoNotInterfere);

// ---------------------------------------------------------------------------------------
// deadlines: every blocking call returns by its deadline, and the connection stays usable
template <class T>
class Deadlines : public TransportTest<T> {};
TYPED_TEST_SUITE_P(Deadlines);

TYPED_TEST_P(Deadlines, ReceiveTimesOutWhenNothingIsSent) {
  IPCH_CONNECTED(p);
  Bytes got;
  auto t0 = Clock::now();
  IPCH_EXPECT_ERRC(p.server.Receive(got, Deadline::After(ShortWait())), Timeout);
  auto took = Clock::now() - t0;
  EXPECT_GE(took, ShortWait()) << "returned before its deadline";
  EXPECT_LT(took, ShortWait() + DeathBound()) << "overran its deadline";
}

TYPED_TEST_P(Deadlines, ExpiredDeadlineReceiveIsWouldBlock) {
  IPCH_CONNECTED(p);
  Bytes got;
  IPCH_EXPECT_ERRC(p.server.Receive(got, Deadline::Expired()), WouldBlock);
}

TYPED_TEST_P(Deadlines, AcceptTimesOut) {
  auto l = TypeParam::Listen(this->address_);
  IPCH_ASSERT_OK(l);
  auto t0 = Clock::now();
  IPCH_EXPECT_ERRC(l->Accept(Deadline::After(ShortWait())), Timeout);
  EXPECT_GE(Clock::now() - t0, ShortWait());
}

TYPED_TEST_P(Deadlines, ExpiredDeadlineAcceptIsWouldBlock) {
  auto l = TypeParam::Listen(this->address_);
  IPCH_ASSERT_OK(l);
  IPCH_EXPECT_ERRC(l->Accept(Deadline::Expired()), WouldBlock);
}

TYPED_TEST_P(Deadlines, ReceiveWorksAfterTimeout) {
  IPCH_CONNECTED(p);
  Bytes got;
  IPCH_ASSERT_ERRC(p.server.Receive(got, Deadline::After(ShortWait())), Timeout);
  EXPECT_TRUE(RoundTrip(p.client, p.server, MakeMessage(9, 99, this->Seed())));
}

TYPED_TEST_P(Deadlines, SendTimesOutWhenPeerStopsReading) {
  IPCH_CONNECTED(p);
  const uint64_t salt = this->Seed();
  const std::size_t size = std::min<std::size_t>(64 * 1024, this->Max(p.client));
  uint64_t sent = 0;
  Status st;
  // Nobody reads: the buffers fill and a send must give up by its deadline, never hang.
  for (; sent < 100000; ++sent) {
    st = p.client.Send(MakeMessage(sent, size, salt), Deadline::After(ShortWait()));
    if (!st.ok()) break;
  }
  IPCH_ASSERT_ERRC(st, Timeout);
  IPCH_ASSERT_OK(p.client.Close());
  // Every message whose send succeeded arrives whole and in order; then the close.
  Bytes got;
  for (uint64_t i = 0; i < sent; ++i) {
    IPCH_ASSERT_OK(p.server.Receive(got, Settle()));
    ASSERT_TRUE(VerifyMessage(got, i, size, salt));
  }
  IPCH_EXPECT_ERRC(p.server.Receive(got, Settle()), PeerClosed);
}

TYPED_TEST_P(Deadlines, BlockedReceiveWakesForLateMessage) {
  auto l = TypeParam::Listen(this->address_);
  IPCH_ASSERT_OK(l);
  auto peer = this->StartClient(l->address(), [](auto& c, ControlChannel& ch) -> Status {
    IPCH_RETURN_IF_ERROR(ch.WaitSignal(Settle()));  // send only once we are told to
    return c.Send(AsBytes("late"), Settle());
  });
  IPCH_ASSERT_OK(peer);
  auto s = l->Accept(Settle());
  IPCH_ASSERT_OK(s);
  Bytes got;
  IPCH_ASSERT_ERRC(s->Receive(got, Deadline::After(ShortWait())), Timeout);
  IPCH_ASSERT_OK(peer->control().Signal());
  IPCH_ASSERT_OK(s->Receive(got, Settle()));
  EXPECT_EQ(got, Bytes(AsBytes("late").begin(), AsBytes("late").end()));
  IPCH_ASSERT_PEER_OK(*peer);
}

REGISTER_TYPED_TEST_SUITE_P(Deadlines, ReceiveTimesOutWhenNothingIsSent, ExpiredDeadlineReceiveIsWouldBlock,
                            AcceptTimesOut, ExpiredDeadlineAcceptIsWouldBlock, ReceiveWorksAfterTimeout,
                            SendTimesOutWhenPeerStopsReading, BlockedReceiveWakesForLateMessage);

// ---------------------------------------------------------------------------------------
// lifecycle: close, reuse, names
template <class T>
class Lifecycle : public TransportTest<T> {};
TYPED_TEST_SUITE_P(Lifecycle);

TYPED_TEST_P(Lifecycle, CloseTwiceIsOk) {
  IPCH_CONNECTED(p);
  IPCH_EXPECT_OK(p.client.Close());
  IPCH_EXPECT_OK(p.client.Close());
}

TYPED_TEST_P(Lifecycle, SendAfterCloseIsClosed) {
  IPCH_CONNECTED(p);
  IPCH_ASSERT_OK(p.client.Close());
  IPCH_EXPECT_ERRC(p.client.Send(AsBytes("x"), Settle()), Closed);
}

TYPED_TEST_P(Lifecycle, ReceiveAfterCloseIsClosed) {
  IPCH_CONNECTED(p);
  IPCH_ASSERT_OK(p.client.Close());
  Bytes got;
  IPCH_EXPECT_ERRC(p.client.Receive(got, Settle()), Closed);
}

TYPED_TEST_P(Lifecycle, ListenerCloseTwiceIsOk) {
  auto l = TypeParam::Listen(this->address_);
  IPCH_ASSERT_OK(l);
  IPCH_EXPECT_OK(l->Close());
  IPCH_EXPECT_OK(l->Close());
}

TYPED_TEST_P(Lifecycle, AcceptAfterListenerCloseIsClosed) {
  auto l = TypeParam::Listen(this->address_);
  IPCH_ASSERT_OK(l);
  IPCH_ASSERT_OK(l->Close());
  IPCH_EXPECT_ERRC(l->Accept(Deadline::After(ShortWait())), Closed);
}

TYPED_TEST_P(Lifecycle, CreateAgainWorksAfterClose) {
  std::string addr;
  for (int round = 0; round < 3; ++round) {
    auto l = TypeParam::Listen(round == 0 ? this->address_ : addr);
    IPCH_ASSERT_OK(l) << "round " << round;
    addr = l->address();
    auto c = TypeParam::Connect(addr, Settle());
    IPCH_ASSERT_OK(c);
    auto s = l->Accept(Settle());
    IPCH_ASSERT_OK(s);
    EXPECT_TRUE(RoundTrip(*c, *s, MakeMessage(round, 10, this->Seed())));
    IPCH_ASSERT_OK(s->Close());
    IPCH_ASSERT_OK(c->Close());
    IPCH_ASSERT_OK(l->Close());
  }
}

TYPED_TEST_P(Lifecycle, SecondListenOnSameAddressIsAlreadyExists) {
  auto l = TypeParam::Listen(this->address_);
  IPCH_ASSERT_OK(l);
  IPCH_EXPECT_ERRC(TypeParam::Listen(l->address()), AlreadyExists);
  // The refused attempt must not have damaged the live listener.
  auto c = TypeParam::Connect(l->address(), Settle());
  IPCH_ASSERT_OK(c);
  IPCH_EXPECT_OK(l->Accept(Settle()));
}

TYPED_TEST_P(Lifecycle, ConnectAfterListenerCloseIsPeerClosed) {
  auto l = TypeParam::Listen(this->address_);
  IPCH_ASSERT_OK(l);
  std::string addr = l->address();
  IPCH_ASSERT_OK(l->Close());
  IPCH_EXPECT_ERRC(TypeParam::Connect(addr, Settle()), PeerClosed);
}

TYPED_TEST_P(Lifecycle, ServerCloseIsSeenAsPeerClosed) {
  IPCH_CONNECTED(p);
  IPCH_ASSERT_OK(p.server.Close());
  Bytes got;
  IPCH_EXPECT_ERRC(p.client.Receive(got, Settle()), PeerClosed);
}

TYPED_TEST_P(Lifecycle, ClientCloseIsSeenAsPeerClosed) {
  IPCH_CONNECTED(p);
  IPCH_ASSERT_OK(p.client.Close());
  Bytes got;
  IPCH_EXPECT_ERRC(p.server.Receive(got, Settle()), PeerClosed);
}

TYPED_TEST_P(Lifecycle, PendingMessagesArriveBeforePeerClosed) {
  IPCH_CONNECTED(p);
  for (uint64_t i = 0; i < 3; ++i) IPCH_ASSERT_OK(p.client.Send(MakeMessage(i, 50, this->Seed()), Settle()));
  IPCH_ASSERT_OK(p.client.Close());
  Bytes got;
  for (uint64_t i = 0; i < 3; ++i) {
    IPCH_ASSERT_OK(p.server.Receive(got, Settle()));
    EXPECT_TRUE(VerifyMessage(got, i, 50, this->Seed()));
  }
  IPCH_EXPECT_ERRC(p.server.Receive(got, Settle()), PeerClosed);
}

TYPED_TEST_P(Lifecycle, PeerClosedIsSticky) {
  IPCH_CONNECTED(p);
  IPCH_ASSERT_OK(p.client.Close());
  Bytes got;
  IPCH_EXPECT_ERRC(p.server.Receive(got, Settle()), PeerClosed);
  IPCH_EXPECT_ERRC(p.server.Receive(got, Settle()), PeerClosed);
}

TYPED_TEST_P(Lifecycle, SendToClosedPeerIsPeerClosed) {
  IPCH_CONNECTED(p);
  IPCH_ASSERT_OK(p.server.Close());
  // The first sends may still be buffered by the kernel; within a bound one must fail.
  Status st;
  auto until = Deadline::After(DeathBound());
  while (st.ok() && !until.expired()) st = p.client.Send(MakeMessage(0, 1000, this->Seed()), Settle());
  IPCH_EXPECT_ERRC(st, PeerClosed);
}

TYPED_TEST_P(Lifecycle, MovedConnectionKeepsWorking) {
  IPCH_CONNECTED(p);
  typename TypeParam::Connection moved = std::move(p.client);
  EXPECT_TRUE(RoundTrip(moved, p.server, MakeMessage(4, 40, this->Seed())));
  typename TypeParam::Connection assigned;
  assigned = std::move(moved);
  EXPECT_TRUE(RoundTrip(p.server, assigned, MakeMessage(5, 50, this->Seed())));
}

TYPED_TEST_P(Lifecycle, ManyConnectCloseCyclesLeakNothing) {
  auto l = TypeParam::Listen(this->address_);
  IPCH_ASSERT_OK(l);
  for (int i = 0; i < 200; ++i) {
    auto c = TypeParam::Connect(l->address(), Settle());
    IPCH_ASSERT_OK(c) << "cycle " << i;
    auto s = l->Accept(Settle());
    IPCH_ASSERT_OK(s) << "cycle " << i;
    if (i % 2) {
      IPCH_ASSERT_OK(c->Close());  // half closed explicitly, half by destruction
    }
  }
  // The audit listener checks that no descriptor or object survived the cycles.
}

TYPED_TEST_P(Lifecycle, DestroyingListenerWithQueuedClients) {
  std::vector<typename TypeParam::Connection> clients;
  {
    auto l = TypeParam::Listen(this->address_);
    IPCH_ASSERT_OK(l);
    for (int i = 0; i < 3; ++i) {
      auto c = TypeParam::Connect(l->address(), Settle());
      IPCH_ASSERT_OK(c);
      clients.push_back(std::move(*c));
    }
  }
  // Never accepted, listener gone: each client learns of it rather than waiting forever.
  for (auto& c : clients) {
    Bytes got;
    IPCH_EXPECT_ERRC(c.Receive(got, Settle()), PeerClosed);
  }
}

TYPED_TEST_P(Lifecycle, UninitialisedObjectAtAddressIsOrphanedResource) {
  IPCH_REQUIRE_HOOK(kHasImpostors<TypeParam>, "PlantImpostor");
  // What a creator killed between creating and initialising leaves: not ours to guess about.
  EXPECT_TRUE(
      ImpostorIsRefused<TypeParam>(this->address_, Impostor::Uninitialised, Errc::OrphanedResource, Errc::Corrupt));
  // Once the leftover is removed, the name works again.
  auto l = TypeParam::Listen(this->address_);
  IPCH_ASSERT_OK(l);
  auto c = TypeParam::Connect(l->address(), Settle());
  IPCH_ASSERT_OK(c);
  auto s = l->Accept(Settle());
  IPCH_ASSERT_OK(s);
  EXPECT_TRUE(RoundTrip(*c, *s, MakeMessage(1, 10, this->Seed())));
}

REGISTER_TYPED_TEST_SUITE_P(Lifecycle, UninitialisedObjectAtAddressIsOrphanedResource, CloseTwiceIsOk,
                            SendAfterCloseIsClosed, ReceiveAfterCloseIsClosed, ListenerCloseTwiceIsOk,
                            AcceptAfterListenerCloseIsClosed, CreateAgainWorksAfterClose,
                            SecondListenOnSameAddressIsAlreadyExists, ConnectAfterListenerCloseIsPeerClosed,
                            ServerCloseIsSeenAsPeerClosed, ClientCloseIsSeenAsPeerClosed,
                            PendingMessagesArriveBeforePeerClosed, PeerClosedIsSticky, SendToClosedPeerIsPeerClosed,
                            MovedConnectionKeepsWorking, ManyConnectCloseCyclesLeakNothing,
                            DestroyingListenerWithQueuedClients);

// ---------------------------------------------------------------------------------------
// peer death: clean exit, SIGKILL at chosen points, SIGSTOP; the survivor gets PeerClosed
// within a bound, never a hang, a crash (SIGPIPE) or a truncated message.
template <class T>
class PeerDeath : public TransportTest<T> {
 protected:
  // Waits for a Receive on `c` to report PeerClosed; fails on a message, another error or a hang.
  template <class C>
  static ::testing::AssertionResult SeesPeerClosed(C& c) {
    Bytes got;
    auto t0 = Clock::now();
    Status st = c.Receive(got, Deadline::After(DeathBound()));
    if (st.ok())
      return ::testing::AssertionFailure() << "received a " << got.size() << "-byte message from a dead peer";
    if (!st.Is(Errc::PeerClosed))
      return ::testing::AssertionFailure() << "expected PeerClosed, got " << st.error().ToString();
    if (Clock::now() - t0 > DeathBound()) return ::testing::AssertionFailure() << "PeerClosed came too late";
    return ::testing::AssertionSuccess();
  }
  // A child process that listens on this test's address, sends the listener's address over
  // the control channel, and stays parked until killed.
  Result<Peer> ListenerInChild() {
    return Peer::Start(true, [want = this->address_](ControlChannel& ch) -> Status {
      auto l = T::Listen(want);
      if (!l.ok()) return std::move(l).error();
      IPCH_RETURN_IF_ERROR(ch.SendString(l->address()));
      return ch.WaitSignal(Deadline::Never());
    });
  }
};
TYPED_TEST_SUITE_P(PeerDeath);

TYPED_TEST_P(PeerDeath, PeerExitsCleanlyAfterSending) {
  auto l = TypeParam::Listen(this->address_);
  IPCH_ASSERT_OK(l);
  const uint64_t salt = this->Seed();
  // The peer sends and returns without Close(): its exit (or destruction) must do the close.
  auto peer = this->StartClient(l->address(), [salt](auto& c, ControlChannel&) -> Status {
    for (uint64_t i = 0; i < 10; ++i) IPCH_RETURN_IF_ERROR(c.Send(MakeMessage(i, 100, salt), Settle()));
    return Ok();
  });
  IPCH_ASSERT_OK(peer);
  auto s = l->Accept(Settle());
  IPCH_ASSERT_OK(s);
  IPCH_ASSERT_PEER_OK(*peer);
  Bytes got;
  for (uint64_t i = 0; i < 10; ++i) {
    IPCH_ASSERT_OK(s->Receive(got, Settle()));
    EXPECT_TRUE(VerifyMessage(got, i, 100, salt));
  }
  EXPECT_TRUE(this->SeesPeerClosed(*s));
}

TYPED_TEST_P(PeerDeath, PeerThatExitedBeforeAcceptIsStillHeard) {
  auto l = TypeParam::Listen(this->address_);
  IPCH_ASSERT_OK(l);
  const uint64_t salt = this->Seed();
  auto peer = this->StartClient(l->address(), [salt](auto& c, ControlChannel&) -> Status {
    for (uint64_t i = 0; i < 3; ++i) IPCH_RETURN_IF_ERROR(c.Send(MakeMessage(i, 300, salt), Settle()));
    return Ok();
  });
  IPCH_ASSERT_OK(peer);
  // Gone (and its objects released) before we accept: like a socket in the backlog, what it
  // sent must still be delivered, then PeerClosed.
  IPCH_ASSERT_PEER_OK(*peer);
  auto s = l->Accept(Settle());
  IPCH_ASSERT_OK(s);
  Bytes got;
  for (uint64_t i = 0; i < 3; ++i) {
    IPCH_ASSERT_OK(s->Receive(got, Settle()));
    EXPECT_TRUE(VerifyMessage(got, i, 300, salt));
  }
  EXPECT_TRUE(this->SeesPeerClosed(*s));
}

TYPED_TEST_P(PeerDeath, PeerKilledAfterConnect) {
  IPCH_REQUIRE_CAP(CrossProcess);
  auto l = TypeParam::Listen(this->address_);
  IPCH_ASSERT_OK(l);
  auto peer = this->StartClient(l->address(), ParkedPeer());
  IPCH_ASSERT_OK(peer);
  auto s = l->Accept(Settle());
  IPCH_ASSERT_OK(s);
  IPCH_ASSERT_OK(peer->control().WaitSignal(Settle()));
  peer->Kill();
  EXPECT_TRUE(this->SeesPeerClosed(*s));
}

TYPED_TEST_P(PeerDeath, PeerKilledBeforeAccept) {
  IPCH_REQUIRE_CAP(CrossProcess);
  auto l = TypeParam::Listen(this->address_);
  IPCH_ASSERT_OK(l);
  auto peer = this->StartClient(l->address(), ParkedPeer());
  IPCH_ASSERT_OK(peer);
  IPCH_ASSERT_OK(peer->control().WaitSignal(Settle()));
  peer->Kill();
  // Either the dead connection is still accepted and reports PeerClosed, or accept says so.
  auto s = l->Accept(Settle());
  if (s.ok()) {
    EXPECT_TRUE(this->SeesPeerClosed(*s));
  } else {
    IPCH_EXPECT_ERRC(s, PeerClosed);
  }
}

TYPED_TEST_P(PeerDeath, ListenerKilledThenConnectIsPeerClosed) {
  IPCH_REQUIRE_CAP(CrossProcess);
  auto peer = this->ListenerInChild();
  IPCH_ASSERT_OK(peer);
  auto addr = peer->control().ReceiveString(Settle());
  IPCH_ASSERT_OK(addr);
  peer->Kill();
  IPCH_EXPECT_ERRC(TypeParam::Connect(*addr, Settle()), PeerClosed);
  // Create-again-works after a crash: the dead listener's name is reclaimed.
  auto again = this->Connected(*addr);
  IPCH_ASSERT_OK(again);
  EXPECT_TRUE(RoundTrip(again->client, again->server, MakeMessage(1, 10, this->Seed())));
}

TYPED_TEST_P(PeerDeath, PeerKilledMidMessage) {
  IPCH_REQUIRE_CAP(CrossProcess);
  auto l = TypeParam::Listen(this->address_);
  IPCH_ASSERT_OK(l);
  auto peer = this->StartClient(l->address(), [](auto& c, ControlChannel& ch) -> Status {
    Bytes big(c.max_message_size(), std::byte{0x42});
    IPCH_RETURN_IF_ERROR(ch.Signal());
    IPCH_RETURN_IF_ERROR(c.Send(big, Deadline::Never()));  // blocks mid-message: nobody reads yet
    IPCH_RETURN_IF_ERROR(ch.Signal('S'));                  // only reached if the buffers held the whole message
    return ch.WaitSignal(Deadline::Never());
  });
  IPCH_ASSERT_OK(peer);
  auto s = l->Accept(Settle());
  IPCH_ASSERT_OK(s);
  IPCH_ASSERT_OK(peer->control().WaitSignal(Settle()));
  // Kill it once it blocks: inside the send when the message exceeds the kernel's buffering.
  (void)WaitUntilSleeping(peer->pid(), Settle());
  peer->Kill();
  const bool send_completed = peer->control().WaitSignal(Deadline::Expired(), 'S').ok();
  if (send_completed) {
    // The transport buffered the whole message before the kill: it must arrive intact.
    Bytes got;
    IPCH_ASSERT_OK(s->Receive(got, Settle()));
    EXPECT_EQ(got, Bytes(s->max_message_size(), std::byte{0x42}));
  }
  EXPECT_TRUE(this->SeesPeerClosed(*s)) << (send_completed ? "after the completed message"
                                                           : "a torn message must never be delivered");
}

TYPED_TEST_P(PeerDeath, PeerKilledWhileWeSend) {
  IPCH_REQUIRE_CAP(CrossProcess);
  auto l = TypeParam::Listen(this->address_);
  IPCH_ASSERT_OK(l);
  auto peer = this->StartClient(l->address(), [](auto& c, ControlChannel& ch) -> Status {
    IPCH_RETURN_IF_ERROR(ch.Signal());
    Bytes m;
    return c.Receive(m, Deadline::Never());  // blocked in receive until killed
  });
  IPCH_ASSERT_OK(peer);
  auto s = l->Accept(Settle());
  IPCH_ASSERT_OK(s);
  IPCH_ASSERT_OK(peer->control().WaitSignal(Settle()));
  peer->Kill();
  // Sending to a dead peer must report PeerClosed, not kill us with SIGPIPE.
  Status st;
  auto until = Deadline::After(DeathBound());
  while (st.ok() && !until.expired()) st = s->Send(MakeMessage(0, 4096, this->Seed()), Settle());
  IPCH_EXPECT_ERRC(st, PeerClosed);
}

TYPED_TEST_P(PeerDeath, StoppedPeerLosesNothing) {
  IPCH_REQUIRE_CAP(CrossProcess);
  auto l = TypeParam::Listen(this->address_);
  IPCH_ASSERT_OK(l);
  const uint64_t salt = this->Seed();
  auto peer = this->StartClient(l->address(), [salt](auto& c, ControlChannel& ch) -> Status {
    IPCH_RETURN_IF_ERROR(c.Send(MakeMessage(0, 100, salt), Settle()));
    IPCH_RETURN_IF_ERROR(ch.Signal());
    IPCH_RETURN_IF_ERROR(ch.WaitSignal(Settle()));
    return c.Send(MakeMessage(1, 100, salt), Settle());
  });
  IPCH_ASSERT_OK(peer);
  auto s = l->Accept(Settle());
  IPCH_ASSERT_OK(s);
  IPCH_ASSERT_OK(peer->control().WaitSignal(Settle()));
  IPCH_ASSERT_OK(peer->process()->Stop());
  Bytes got;
  IPCH_ASSERT_OK(s->Receive(got, Settle()));
  EXPECT_TRUE(VerifyMessage(got, 0, 100, salt));
  // A stopped peer is not a dead one: we time out, and nothing is lost when it resumes.
  IPCH_EXPECT_ERRC(s->Receive(got, Deadline::After(ShortWait())), Timeout);
  IPCH_ASSERT_OK(peer->control().Signal());
  IPCH_ASSERT_OK(peer->process()->Continue());
  IPCH_ASSERT_OK(s->Receive(got, Settle()));
  EXPECT_TRUE(VerifyMessage(got, 1, 100, salt));
  IPCH_ASSERT_PEER_OK(*peer);
}

TYPED_TEST_P(PeerDeath, ListenerServesNewPeerAfterOneIsKilled) {
  IPCH_REQUIRE_CAP(CrossProcess);
  auto l = TypeParam::Listen(this->address_);
  IPCH_ASSERT_OK(l);
  auto doomed = this->StartClient(l->address(), ParkedPeer());
  IPCH_ASSERT_OK(doomed);
  auto s1 = l->Accept(Settle());
  IPCH_ASSERT_OK(s1);
  IPCH_ASSERT_OK(doomed->control().WaitSignal(Settle()));
  doomed->Kill();
  EXPECT_TRUE(this->SeesPeerClosed(*s1));
  auto next = this->StartClient(l->address(), EchoPeer(1));
  IPCH_ASSERT_OK(next);
  auto s2 = l->Accept(Settle());
  IPCH_ASSERT_OK(s2);
  EXPECT_TRUE(RoundTripVia(*s2, MakeMessage(2, 20, this->Seed())));
  IPCH_ASSERT_PEER_OK(*next);
}

TYPED_TEST_P(PeerDeath, PeerKilledMidPublish) {
  IPCH_REQUIRE_CAP(CrossProcess);
  IPCH_REQUIRE_HOOK(kHasMidPublishHook<TypeParam>, "SetMidPublishHook");
  if constexpr (kHasMidPublishHook<TypeParam>) {
    auto l = TypeParam::Listen(this->address_);
    IPCH_ASSERT_OK(l);
    const uint64_t salt = this->Seed();
    auto peer = this->StartClient(l->address(), [salt](auto& c, ControlChannel& ch) -> Status {
      IPCH_RETURN_IF_ERROR(c.Send(MakeMessage(0, 100, salt), Settle()));
      // The second send stops after copying its record and before publishing it, and is killed there.
      TypeParam::SetMidPublishHook([&ch] {
        (void)ch.Signal('P');
        for (;;) ::pause();
      });
      return c.Send(MakeMessage(1, 5000, salt), Settle());
    });
    IPCH_ASSERT_OK(peer);
    auto s = l->Accept(Settle());
    IPCH_ASSERT_OK(s);
    IPCH_ASSERT_OK(peer->control().WaitSignal(Settle(), 'P'));
    peer->Kill();
    Bytes got;
    IPCH_ASSERT_OK(s->Receive(got, Settle()));
    EXPECT_TRUE(VerifyMessage(got, 0, 100, salt)) << "the message published before the kill must arrive intact";
    EXPECT_TRUE(this->SeesPeerClosed(*s)) << "a record killed mid-publish must never be delivered";
  }
}

TYPED_TEST_P(PeerDeath, OrphanedListenerIsReportedAndReclaimed) {
  IPCH_REQUIRE_CAP(CrossProcess);
  auto peer = this->ListenerInChild();
  IPCH_ASSERT_OK(peer);
  auto addr = peer->control().ReceiveString(Settle());
  IPCH_ASSERT_OK(addr);
  // A connection waiting to be accepted when its listener is killed learns of it.
  auto pending = TypeParam::Connect(*addr, Settle());
  IPCH_ASSERT_OK(pending);
  IPCH_ASSERT_OK(pending->Send(MakeMessage(0, 64, this->Seed()), Settle()));
  peer->Kill();
  EXPECT_TRUE(this->SeesPeerClosed(*pending));
  IPCH_ASSERT_OK(pending->Close());
  // The killed creator's objects are reclaimed by the next Listen; the audit checks none is left.
  auto again = this->Connected(*addr);
  IPCH_ASSERT_OK(again);
  EXPECT_TRUE(RoundTrip(again->client, again->server, MakeMessage(1, 10, this->Seed())));
}

REGISTER_TYPED_TEST_SUITE_P(PeerDeath, PeerThatExitedBeforeAcceptIsStillHeard, PeerKilledMidPublish,
                            OrphanedListenerIsReportedAndReclaimed, PeerExitsCleanlyAfterSending,
                            PeerKilledAfterConnect, PeerKilledBeforeAccept, ListenerKilledThenConnectIsPeerClosed,
                            PeerKilledMidMessage, PeerKilledWhileWeSend, StoppedPeerLosesNothing,
                            ListenerServesNewPeerAfterOneIsKilled);

// ---------------------------------------------------------------------------------------
// security: owner-only resources; hostile bytes from a raw peer
template <class T>
class Security : public TransportTest<T> {
 protected:
  // Writes raw bytes into a connection to the listener and returns the accepted end.
  Result<typename T::Connection> HostileConnection(typename T::Listener& l, const Bytes& bytes, bool close_after,
                                                   UniqueFd* keep) {
    auto raw = ConnectRaw<T>(l.address(), Settle());
    if (!raw.ok()) return std::move(raw).error();
    std::size_t off = 0;
    while (off < bytes.size()) {
      ssize_t w = RetryEintr([&] { return RawWrite(raw->get(), bytes.data() + off, bytes.size() - off); });
      if (w < 0) return ErrnoError("raw send");
      off += static_cast<std::size_t>(w);
    }
    if (!close_after) *keep = std::move(*raw);
    return l.Accept(Settle());
  }
  // A well-formed header announcing `n` bytes whose payload is `payload`.
  static Bytes Header(uint32_t n, ByteView payload = {}) {
    if constexpr (kHasFrameHeader<T>) {
      return T::FrameHeader(n, payload);
    } else {
      return {};
    }
  }
  static Bytes Frame(ByteView payload) {
    Bytes f = Header(static_cast<uint32_t>(payload.size()), payload);
    f.insert(f.end(), payload.begin(), payload.end());
    return f;
  }
};
TYPED_TEST_SUITE_P(Security);

TYPED_TEST_P(Security, NamedResourcesAreOwnerOnly) {
  IPCH_REQUIRE_CAP(NamedResource);
  auto l = TypeParam::Listen(this->address_);
  IPCH_ASSERT_OK(l);
  std::vector<ResourceOwner> owners;
  for (const auto& p : l->resource_paths()) {
    struct stat st {};
    ASSERT_EQ(::lstat(p.c_str(), &st), 0) << p;
    owners.push_back({p.string(), st.st_uid, st.st_mode});
  }
  // Objects without a path (SysV) are listed with their owner and mode by the listener.
  if constexpr (requires { l->resource_owners(); }) {
    for (auto& o : l->resource_owners()) owners.push_back(o);
  }
  ASSERT_FALSE(owners.empty()) << "a NamedResource transport must list what it created";
  for (const auto& o : owners) {
    EXPECT_EQ(o.uid, ::geteuid()) << o.what;
    EXPECT_EQ(o.mode & 077, 0u) << o.what << " is open to group/others: mode " << std::oct << (o.mode & 07777);
  }
}

TYPED_TEST_P(Security, HugeLengthPrefixIsCorrupt) {
  IPCH_REQUIRE_CAP(RawPeer);
  IPCH_REQUIRE_HOOK(kHasFrameHeader<TypeParam>, "FrameHeader");
  auto l = TypeParam::Listen(this->address_);
  IPCH_ASSERT_OK(l);
  UniqueFd keep;
  auto s = this->HostileConnection(*l, this->Header(0xffffffffu), false, &keep);
  IPCH_ASSERT_OK(s);
  Bytes got;
  IPCH_EXPECT_ERRC(s->Receive(got, Settle()), Corrupt);
  IPCH_EXPECT_ERRC(s->Receive(got, Settle()), Corrupt) << "a corrupt stream must stay failed";
}

TYPED_TEST_P(Security, LengthJustOverMaxIsCorrupt) {
  IPCH_REQUIRE_CAP(RawPeer);
  IPCH_REQUIRE_HOOK(kHasFrameHeader<TypeParam>, "FrameHeader");
  auto l = TypeParam::Listen(this->address_);
  IPCH_ASSERT_OK(l);
  UniqueFd keep;
  auto probe = TypeParam::Connect(l->address(), Settle());
  IPCH_ASSERT_OK(probe);
  auto probe_s = l->Accept(Settle());
  IPCH_ASSERT_OK(probe_s);
  const auto max = probe_s->max_message_size();
  auto s = this->HostileConnection(*l, this->Header(static_cast<uint32_t>(max + 1)), false, &keep);
  IPCH_ASSERT_OK(s);
  Bytes got;
  IPCH_EXPECT_ERRC(s->Receive(got, Settle()), Corrupt);
}

TYPED_TEST_P(Security, TruncatedFrameThenCloseIsPeerClosed) {
  IPCH_REQUIRE_CAP(RawPeer);
  IPCH_REQUIRE_HOOK(kHasFrameHeader<TypeParam>, "FrameHeader");
  auto l = TypeParam::Listen(this->address_);
  IPCH_ASSERT_OK(l);
  Bytes bytes = this->Header(100);
  bytes.resize(bytes.size() + 10, std::byte{1});
  auto s = this->HostileConnection(*l, bytes, true, nullptr);
  IPCH_ASSERT_OK(s);
  Bytes got;
  IPCH_EXPECT_ERRC(s->Receive(got, Settle()), PeerClosed);
  EXPECT_TRUE(got.empty()) << "a torn frame leaked to the caller";
}

TYPED_TEST_P(Security, FrameDeliveredOneByteAtATime) {
  IPCH_REQUIRE_CAP(RawPeer);
  IPCH_REQUIRE_HOOK(kHasFrameHeader<TypeParam>, "FrameHeader");
  auto l = TypeParam::Listen(this->address_);
  IPCH_ASSERT_OK(l);
  auto raw = ConnectRaw<TypeParam>(l->address(), Settle());
  IPCH_ASSERT_OK(raw);
  auto s = l->Accept(Settle());
  IPCH_ASSERT_OK(s);
  Bytes msg = MakeMessage(11, 300, this->Seed());
  Bytes frame = this->Frame(msg);
  Bytes got;
  for (std::size_t i = 0; i < frame.size(); ++i) {
    ASSERT_EQ(RetryEintr([&] { return RawWrite(raw->get(), &frame[i], 1); }), 1);
    if (i % 50 == 0 && i + 1 < frame.size()) {
      // A partial frame is not a message: the receive times out and keeps what it has.
      IPCH_ASSERT_ERRC(s->Receive(got, Deadline::Expired()), WouldBlock);
    }
  }
  IPCH_ASSERT_OK(s->Receive(got, Settle()));
  EXPECT_EQ(got, msg);
}

// One flipped bit in a header's length: Corrupt at once, not a wait for bytes that never come.
TYPED_TEST_P(Security, DamagedHeaderIsCorruptAtOnce) {
  IPCH_REQUIRE_CAP(RawPeer);
  IPCH_REQUIRE_HOOK(kHasFrameHeader<TypeParam>, "FrameHeader");
  auto l = TypeParam::Listen(this->address_);
  IPCH_ASSERT_OK(l);
  Bytes msg = MakeMessage(12, 100, this->Seed());
  Bytes bytes = this->Frame(msg);
  bytes[0] ^= std::byte{0x02};  // announces 102 bytes: without a header check, a wait for 2 more
  UniqueFd keep;
  auto s = this->HostileConnection(*l, bytes, false, &keep);
  IPCH_ASSERT_OK(s);
  Bytes got;
  IPCH_EXPECT_ERRC(s->Receive(got, Settle()), Corrupt);
  EXPECT_TRUE(got.empty());
}

// A good frame, then one whose payload has one flipped bit: the first arrives, the second is
// Corrupt and is never handed over.
TYPED_TEST_P(Security, DamagedPayloadIsCorruptNeverDelivered) {
  IPCH_REQUIRE_CAP(RawPeer);
  IPCH_REQUIRE_HOOK(kHasFrameHeader<TypeParam>, "FrameHeader");
  auto l = TypeParam::Listen(this->address_);
  IPCH_ASSERT_OK(l);
  Bytes first = MakeMessage(13, 500, this->Seed()), second = MakeMessage(14, 500, this->Seed());
  Bytes bytes = this->Frame(first), damaged = this->Frame(second);
  damaged[damaged.size() - 1 - this->Seed() % second.size()] ^= std::byte(1u << (this->Seed() % 8));
  bytes.insert(bytes.end(), damaged.begin(), damaged.end());
  UniqueFd keep;
  auto s = this->HostileConnection(*l, bytes, false, &keep);
  IPCH_ASSERT_OK(s);
  Bytes got;
  IPCH_ASSERT_OK(s->Receive(got, Settle()));
  EXPECT_EQ(got, first);
  got.clear();
  IPCH_EXPECT_ERRC(s->Receive(got, Settle()), Corrupt);
  EXPECT_TRUE(got.empty()) << "a damaged payload reached the caller";
}

TYPED_TEST_P(Security, GarbageOnOneConnectionDoesNotAffectAnother) {
  IPCH_REQUIRE_CAP(RawPeer);
  IPCH_REQUIRE_HOOK(kHasFrameHeader<TypeParam>, "FrameHeader");
  auto l = TypeParam::Listen(this->address_);
  IPCH_ASSERT_OK(l);
  UniqueFd keep;
  auto bad = this->HostileConnection(*l, this->Header(0xfffffff0u), false, &keep);
  IPCH_ASSERT_OK(bad);
  auto c = TypeParam::Connect(l->address(), Settle());
  IPCH_ASSERT_OK(c);
  auto good = l->Accept(Settle());
  IPCH_ASSERT_OK(good);
  Bytes got;
  IPCH_EXPECT_ERRC(bad->Receive(got, Settle()), Corrupt);
  EXPECT_TRUE(RoundTrip(*c, *good, MakeMessage(1, 64, this->Seed())));
}

TYPED_TEST_P(Security, ObjectOfAnotherOwnerIsRefused) {
  IPCH_REQUIRE_HOOK(kHasImpostors<TypeParam>, "PlantImpostor");
  if (::geteuid() != 0) GTEST_SKIP() << "UNSUPPORTED here: planting an object of another uid needs root";
  EXPECT_TRUE(ImpostorIsRefused<TypeParam>(this->address_, Impostor::OtherOwner, Errc::PermissionDenied,
                                           Errc::PermissionDenied));
}

TYPED_TEST_P(Security, ObjectOfTheWrongSizeIsRefused) {
  IPCH_REQUIRE_HOOK(kHasImpostors<TypeParam>, "PlantImpostor");
  // Connect checks the size before mapping: a short segment must not become a SIGBUS.
  EXPECT_TRUE(ImpostorIsRefused<TypeParam>(this->address_, Impostor::WrongSize, Errc::AlreadyExists, Errc::Corrupt));
}

TYPED_TEST_P(Security, HostileSegmentBytesAreCorrupt) {
  IPCH_REQUIRE_CAP(SharedMemory);
  IPCH_REQUIRE_HOOK(kHasSharedBytes<TypeParam>, "SharedBytes");
  if constexpr (kHasSharedBytes<TypeParam>) {
    IPCH_CONNECTED(p);
    EXPECT_TRUE(RoundTrip(p.client, p.server, MakeMessage(0, 100, this->Seed())));
    IPCH_ASSERT_OK(p.client.Send(MakeMessage(1, 100, this->Seed()), Settle()));
    // Every index, length and flag now holds 0xff..: out of range everywhere.
    auto bytes = TypeParam::SharedBytes(p.server);
    ASSERT_FALSE(bytes.empty());
    std::fill(bytes.begin(), bytes.end(), std::byte{0xff});
    Bytes got;
    IPCH_EXPECT_ERRC(p.server.Receive(got, Settle()), Corrupt);
    IPCH_EXPECT_ERRC(p.server.Receive(got, Settle()), Corrupt) << "a corrupt segment must stay failed";
    IPCH_EXPECT_ERRC(p.client.Send(MakeMessage(2, 100, this->Seed()), Settle()), Corrupt);
    IPCH_EXPECT_ERRC(p.client.Receive(got, Settle()), Corrupt);
  }
}

TYPED_TEST_P(Security, RandomSegmentScribblesNeverCrashOrHang) {
  IPCH_REQUIRE_CAP(SharedMemory);
  IPCH_REQUIRE_HOOK(kHasSharedBytes<TypeParam>, "SharedBytes");
  if constexpr (kHasSharedBytes<TypeParam>) {
    std::mt19937_64 rng(this->Seed());
    int corrupt_seen = 0;
    for (int round = 0; round < 40; ++round) {
      SCOPED_TRACE("round " + std::to_string(round));
      IPCH_CONNECTED(p);
      // Find the live words without knowing the layout: the bytes a one-byte round trip changes
      // are the counters, sequence words and record bytes. Most scribbles go there.
      auto bytes = TypeParam::SharedBytes(p.server);
      const Bytes before(bytes.begin(), bytes.end());
      EXPECT_TRUE(RoundTrip(p.client, p.server, Bytes{std::byte{7}}));
      EXPECT_TRUE(RoundTrip(p.server, p.client, Bytes{std::byte{8}}));
      std::vector<std::size_t> live;
      for (std::size_t i = 0; i < bytes.size(); ++i) {
        if (bytes[i] != before[i]) live.push_back(i);
      }
      ASSERT_FALSE(live.empty());
      // Messages in flight both ways, one already consumed.
      for (uint64_t i = 0; i < 3; ++i) {
        IPCH_ASSERT_OK(p.client.Send(MakeMessage(i, 200 + i * 900, this->Seed()), Settle()));
        IPCH_ASSERT_OK(p.server.Send(MakeMessage(i, 300 + i * 500, this->Seed()), Settle()));
      }
      Bytes got;
      IPCH_ASSERT_OK(p.server.Receive(got, Settle()));
      // A hostile peer writes whole words: a random 8-byte word over a live position (aligned),
      // or a random byte anywhere.
      const int n = 1 + static_cast<int>(rng() % 4);
      for (int k = 0; k < n; ++k) {
        if (rng() % 5 != 0) {
          const std::size_t at = live[rng() % live.size()] & ~std::size_t{7};
          const uint64_t word = rng();
          for (std::size_t b = 0; b < 8 && at + b < bytes.size(); ++b)
            bytes[at + b] = std::byte(word >> (8 * b) & 0xff);
        } else {
          bytes[rng() % bytes.size()] = std::byte(rng() & 0xff);
        }
      }
      // Whatever was hit, each operation ends in one of these, at once (expired deadlines).
      auto acceptable = [&](const Status& st, const char* op) {
        if (st.Is(Errc::Corrupt)) ++corrupt_seen;
        EXPECT_TRUE(st.ok() || st.Is(Errc::Corrupt) || st.Is(Errc::WouldBlock) || st.Is(Errc::PeerClosed))
            << op << ": " << st.error().ToString();
      };
      for (int k = 0; k < 4; ++k) {
        acceptable(p.server.Receive(got, Deadline::Expired()), "server receive");
        acceptable(p.client.Receive(got, Deadline::Expired()), "client receive");
        acceptable(p.client.Send(MakeMessage(9, 64, this->Seed()), Deadline::Expired()), "client send");
        acceptable(p.server.Send(MakeMessage(9, 64, this->Seed()), Deadline::Expired()), "server send");
      }
    }
    // Some scribbles must have been caught, or the checks above could not have failed.
    EXPECT_GT(corrupt_seen, 0) << "no scribble was ever detected as Corrupt (seed " << this->Seed() << ")";
  }
}

REGISTER_TYPED_TEST_SUITE_P(Security, DamagedHeaderIsCorruptAtOnce, DamagedPayloadIsCorruptNeverDelivered,
                            ObjectOfAnotherOwnerIsRefused, ObjectOfTheWrongSizeIsRefused,
                            HostileSegmentBytesAreCorrupt, RandomSegmentScribblesNeverCrashOrHang,
                            NamedResourcesAreOwnerOnly, HugeLengthPrefixIsCorrupt, LengthJustOverMaxIsCorrupt,
                            TruncatedFrameThenCloseIsPeerClosed, FrameDeliveredOneByteAtATime,
                            GarbageOnOneConnectionDoesNotAffectAnother);

// ---------------------------------------------------------------------------------------
// concurrency: one sender and one receiver thread per connection; connections in parallel
template <class T>
class Concurrency : public TransportTest<T> {};
TYPED_TEST_SUITE_P(Concurrency);

TYPED_TEST_P(Concurrency, SenderAndReceiverThreadsShareAConnection) {
  IPCH_CONNECTED(p);
  constexpr uint64_t kCount = 2000;
  const uint64_t salt = this->Seed();
  // server echoes on its own thread; client sends on one thread and receives on another.
  std::thread echo([&] {
    Bytes m;
    for (uint64_t i = 0; i < kCount; ++i) {
      if (!p.server.Receive(m, Settle()).ok() || !p.server.Send(m, Settle()).ok()) return;
    }
  });
  Status send_status;
  std::thread sender([&] {
    for (uint64_t i = 0; i < kCount && send_status.ok(); ++i)
      send_status = p.client.Send(MakeMessage(i, i % 700, salt), Settle());
  });
  Bytes got;
  for (uint64_t i = 0; i < kCount; ++i) {
    Status st = p.client.Receive(got, Settle());
    if (!st.ok()) {
      ADD_FAILURE() << "receive " << i << ": " << st.error().ToString();
      break;
    }
    auto v = VerifyMessage(got, i, i % 700, salt);
    if (!v) {
      ADD_FAILURE() << v.message();
      break;
    }
  }
  sender.join();
  (void)p.client.Close();  // unblocks the echo thread if the loop above stopped early
  echo.join();
  IPCH_EXPECT_OK(send_status);
}

TYPED_TEST_P(Concurrency, ParallelConnectionsFromThreads) {
  auto l = TypeParam::Listen(this->address_);
  IPCH_ASSERT_OK(l);
  constexpr int kThreads = 4, kCount = 300;
  std::vector<typename TypeParam::Connection> servers;
  std::vector<std::thread> clients;
  std::atomic<int> failures{0};
  const std::string addr = l->address();
  const uint64_t salt = this->Seed();
  for (int t = 0; t < kThreads; ++t) {
    clients.emplace_back([&, t] {
      auto c = TypeParam::Connect(addr, Settle());
      if (!c.ok()) {
        ++failures;
        return;
      }
      Bytes m;
      for (int i = 0; i < kCount; ++i) {
        Bytes out = MakeMessage(i, 32 + t, salt ^ t);
        if (!c->Send(out, Settle()).ok() || !c->Receive(m, Settle()).ok() || m != out) {
          ++failures;
          return;
        }
      }
    });
  }
  std::vector<std::thread> echoes;
  for (int t = 0; t < kThreads; ++t) {
    auto s = l->Accept(Settle());
    if (!s.ok()) {
      ADD_FAILURE() << s.error().ToString();
      break;
    }
    echoes.emplace_back([conn = std::move(*s)]() mutable {
      Bytes m;
      while (conn.Receive(m, Settle()).ok() && conn.Send(m, Settle()).ok()) {
      }
    });
  }
  for (auto& c : clients) c.join();
  for (auto& e : echoes) e.join();
  EXPECT_EQ(failures.load(), 0);
}

REGISTER_TYPED_TEST_SUITE_P(Concurrency, SenderAndReceiverThreadsShareAConnection, ParallelConnectionsFromThreads);

// ---------------------------------------------------------------------------------------
// fault: syscall faults injected under the transport. Retryable faults must be invisible;
// fatal ones must surface as the precise error. Armed before the peer forks, so both ends
// see faults. Each case checks that faults were really injected (no vacuous pass).
template <class T>
class Fault : public TransportTest<T> {
 protected:
  // Runs an echo exchange of varied sizes (up to 256 KiB, beyond socket buffers) under `plan`.
  void EchoUnder(const fault::Plan& plan) {
    auto l = T::Listen(this->address_);
    IPCH_ASSERT_OK(l);
    constexpr int kCount = 60;
    uint64_t injected = 0;
    {
      fault::ScopedPlan armed(plan);
      auto peer = this->StartClient(l->address(), EchoPeer(kCount));
      IPCH_ASSERT_OK(peer);
      auto s = l->Accept(Settle());
      IPCH_ASSERT_OK(s);
      std::mt19937_64 rng(plan.seed);
      for (int i = 0; i < kCount; ++i) {
        std::size_t n = std::min<std::size_t>(i % 5 == 0 ? rng() % (256 * 1024) : rng() % 2000, s->max_message_size());
        ASSERT_TRUE(RoundTripVia(*s, MakeMessage(i, n, plan.seed))) << "message " << i << "; faults: " << FaultLog();
      }
      IPCH_ASSERT_PEER_OK(*peer);
      injected = fault::InjectedCount();
    }
    EXPECT_GT(injected, 0u) << "no fault was injected: the fault engine is not in the call path";
  }

  static fault::Plan PlanOf(uint32_t ops, fault::Kind kind, int err, double p) {
    fault::Plan plan;
    plan.seed = ::ipch::testing::Current().seed;
    plan.rules.push_back({ops, kind, err, 0, p, 0});
    return plan;
  }
  static fault::Plan NthOf(uint32_t ops, int err, uint32_t nth) {
    fault::Plan plan;
    plan.seed = ::ipch::testing::Current().seed;
    plan.rules.push_back({ops, fault::Kind::kErrno, err, nth, 0.0, 1});
    return plan;
  }
  static std::string FaultLog() {
    std::string s;
    for (const auto& e : fault::InjectedLog()) s += e + "; ";
    return s;
  }

  // A listener, a stream toxics proxy in front of it, and a client connected through the proxy.
  struct Proxied {
    typename TransportTest<T>::Lis listener;
    std::shared_ptr<toxics::Proxy> proxy;
    typename TransportTest<T>::Conn client, server;
    std::string Describe() const {
      std::string s = "proxy log:";
      for (const auto& l : proxy->Log()) s += "\n  " + l;
      return s;
    }
  };
  Result<Proxied> ThroughProxy(const std::string& toxics_text) {
    toxics::Spec spec;
    std::string why;
    if (!toxics::ParseSpec(toxics_text, &spec, &why)) return MakeError(Errc::InvalidArgument, why);
    spec.seed = this->Seed();
    auto l = T::Listen(this->address_);
    if (!l.ok()) return std::move(l).error();
    auto proxy = toxics::Proxy::Start(toxics::Proxy::FrontFor(l->address()), l->address(), spec);
    if (!proxy.ok()) return std::move(proxy).error();
    auto c = T::Connect((*proxy)->address(), Settle());
    if (!c.ok()) return std::move(c).error();
    auto s = l->Accept(Settle());
    if (!s.ok()) return std::move(s).error();
    last_proxy_ = std::move(*proxy);
    return Proxied{std::move(*l), last_proxy_, std::move(*c), std::move(*s)};
  }
  // With IPCH_PRINT_FAULTS set, prints what the test's proxy did, one "[ipch fault]" line per
  // event: running a case's REPLAY line twice gives the same lines (the self-test checks it).
  void TearDown() override {
    if (!last_proxy_) return;
    if (std::getenv("IPCH_PRINT_FAULTS")) {
      for (const auto& line : last_proxy_->Log()) std::printf("[ipch fault] %s\n", line.c_str());
      std::fflush(stdout);
    }
    last_proxy_->Stop();
    last_proxy_.reset();
  }
  std::shared_ptr<toxics::Proxy> last_proxy_;
  // `count` messages each way through `toxics_text`, sizes up to `max_size`: all intact, in order.
  void ExchangeThrough(const std::string& toxics_text, int count, std::size_t max_size) {
    SCOPED_TRACE("toxics " + toxics_text);
    auto p = ThroughProxy(toxics_text);
    IPCH_ASSERT_OK(p);
    std::mt19937_64 rng(this->Seed());
    for (int i = 0; i < count; ++i) {
      const std::size_t n = std::min<std::size_t>(rng() % (max_size + 1), Max(p->client));
      const Bytes msg = MakeMessage(static_cast<uint64_t>(i), n, this->Seed());
      ASSERT_TRUE(RoundTrip(p->client, p->server, msg)) << "message " << i << " up; " << p->Describe();
      ASSERT_TRUE(RoundTrip(p->server, p->client, msg)) << "message " << i << " down; " << p->Describe();
    }
    const auto st = p->proxy->stats();
    EXPECT_GT(st.forwarded[0], 0u);
    EXPECT_GT(st.forwarded[1], 0u);
  }
  // The connection is cut by `toxic` (reset_after / close_after) `into` bytes into the third frame:
  // the two before it arrive intact, then PeerClosed, and it stays so; the sender learns too.
  void CutInThirdFrame(const std::string& toxic, const std::size_t (&sizes)[3], uint64_t into,
                       uint64_t toxics::Stats::*counter) {
    Bytes msgs[3];
    uint64_t cut = into;
    for (int i = 0; i < 3; ++i) {
      msgs[i] = MakeMessage(static_cast<uint64_t>(i), sizes[i], this->Seed());
      if (i < 2) cut += FrameOverhead<T>() + sizes[i];
    }
    auto p = this->ThroughProxy("up:" + toxic + "=" + std::to_string(cut));
    IPCH_ASSERT_OK(p);
    Bytes got;
    for (int i = 0; i < 3; ++i) IPCH_ASSERT_OK(p->client.Send(msgs[i], Settle()));
    for (int i = 0; i < 2; ++i) {
      IPCH_ASSERT_OK(p->server.Receive(got, Settle())) << p->Describe();
      EXPECT_EQ(got, msgs[i]) << "message " << i;
    }
    got.clear();
    IPCH_EXPECT_ERRC(p->server.Receive(got, Settle()), PeerClosed) << p->Describe();
    EXPECT_TRUE(got.empty()) << "a torn frame reached the caller";
    IPCH_EXPECT_ERRC(p->server.Receive(got, Settle()), PeerClosed) << "PeerClosed must stay";
    IPCH_EXPECT_ERRC(p->client.Receive(got, Settle()), PeerClosed) << "the sender's side is cut too";
    EXPECT_EQ(p->proxy->stats().*counter, 1u) << p->Describe();
  }
  using TransportTest<T>::Max;
};
TYPED_TEST_SUITE_P(Fault);

#define IPCH_REQUIRE_PROXY()                                                             \
  do {                                                                                   \
    IPCH_REQUIRE_CAP(Stream);                                                            \
    IPCH_REQUIRE_HOOK(kHasSocketAddress<TypeParam>, "kSocketAddress (stream toxics proxy)"); \
  } while (0)

TYPED_TEST_P(Fault, EintrEverywhereIsInvisible) {
  IPCH_REQUIRE_CAP(SyscallIo);
  this->EchoUnder(this->PlanOf(fault::kRead | fault::kWrite | fault::kPoll, fault::Kind::kErrno, EINTR, 0.3));
}

TYPED_TEST_P(Fault, ShortWritesAreCompleted) {
  IPCH_REQUIRE_CAP(SyscallIo);
  this->EchoUnder(this->PlanOf(fault::kWrite, fault::Kind::kShort, 0, 0.5));
}

TYPED_TEST_P(Fault, ShortReadsAreAssembled) {
  IPCH_REQUIRE_CAP(SyscallIo);
  this->EchoUnder(this->PlanOf(fault::kRead, fault::Kind::kShort, 0, 0.5));
}

TYPED_TEST_P(Fault, EagainIsRetried) {
  IPCH_REQUIRE_CAP(SyscallIo);
  this->EchoUnder(this->PlanOf(fault::kRead | fault::kWrite, fault::Kind::kErrno, EAGAIN, 0.3));
}

TYPED_TEST_P(Fault, AcceptInterruptedIsRetried) {
  IPCH_REQUIRE_CAP(SyscallIo);
  auto l = TypeParam::Listen(this->address_);
  IPCH_ASSERT_OK(l);
  auto c = TypeParam::Connect(l->address(), Settle());
  IPCH_ASSERT_OK(c);
  fault::ScopedPlan armed(this->PlanOf(fault::kAccept | fault::kPoll, fault::Kind::kErrno, EINTR, 0.5));
  auto s = l->Accept(Settle());
  IPCH_ASSERT_OK(s);
  EXPECT_TRUE(RoundTrip(*c, *s, MakeMessage(1, 10, this->Seed())));
}

// ---- message-queue calls (msgsnd/msgrcv, mq_send/mq_receive and their timed forms) ----------
inline constexpr uint32_t kQueueSend = fault::kMsgsnd | fault::kMqSend;
inline constexpr uint32_t kQueueReceive = fault::kMsgrcv | fault::kMqReceive;

TYPED_TEST_P(Fault, EintrOnQueueCallsIsInvisible) {
  IPCH_REQUIRE_CAP(QueueIo);
  this->EchoUnder(this->PlanOf(kQueueSend | kQueueReceive, fault::Kind::kErrno, EINTR, 0.3));
}

// A full queue (EAGAIN from a non-blocking send or receive) is waited out, never an error.
TYPED_TEST_P(Fault, QueueFullOrEmptyIsWaitedOut) {
  IPCH_REQUIRE_CAP(QueueIo);
  // What each call says for "full" or "empty" without waiting: EAGAIN, except msgrcv's ENOMSG.
  fault::Plan plan = this->PlanOf(kQueueSend | fault::kMqReceive, fault::Kind::kErrno, EAGAIN, 0.3);
  plan.rules.push_back({fault::kMsgrcv, fault::Kind::kErrno, ENOMSG, 0, 0.3, 0});
  this->EchoUnder(plan);
}

// The kernel could not copy the message: the send fails with that errno, nothing of it was
// sent, and the connection goes on.
TYPED_TEST_P(Fault, QueueSendOutOfMemoryKeepsItsErrnoAndLosesNothing) {
  IPCH_REQUIRE_CAP(QueueIo);
  IPCH_CONNECTED(p);
  {
    fault::ScopedPlan armed(this->NthOf(kQueueSend, ENOMEM, 1));
    Status st = p.client.Send(MakeMessage(1, 100, this->Seed()), Settle());
    ASSERT_FALSE(st.ok());
    EXPECT_EQ(st.error().code, std::error_code(ENOMEM, std::system_category())) << st.error().ToString();
    EXPECT_EQ(fault::InjectedCount(), 1u);
  }
  EXPECT_TRUE(RoundTrip(p.client, p.server, MakeMessage(2, 100, this->Seed())));
}

// The queue vanished under a receive (SysV EIDRM / a removed id): the peer is gone.
TYPED_TEST_P(Fault, QueueRemovedUnderReceiveIsPeerClosed) {
  IPCH_REQUIRE_CAP(QueueIo);
  IPCH_CONNECTED(p);
  fault::ScopedPlan armed(this->NthOf(fault::kMsgrcv, EIDRM, 1));
  Bytes got;
  Status st = p.server.Receive(got, Deadline::After(ShortWait()));
  if (fault::MatchedCalls(0) == 0) GTEST_SKIP() << "UNSUPPORTED: " << TypeParam::kName << " makes no msgrcv call";
  IPCH_EXPECT_ERRC(st, PeerClosed);
  EXPECT_EQ(fault::InjectedCount(), 1u);
  IPCH_EXPECT_ERRC(p.server.Receive(got, Settle()), PeerClosed) << "PeerClosed must stay";
}

TYPED_TEST_P(Fault, ResetOnSendIsPeerClosed) {
  IPCH_REQUIRE_CAP(SyscallIo);
  IPCH_CONNECTED(p);
  fault::ScopedPlan armed(this->NthOf(fault::kWrite, ECONNRESET, 1));
  IPCH_EXPECT_ERRC(p.client.Send(AsBytes("x"), Settle()), PeerClosed);
  EXPECT_EQ(fault::InjectedCount(), 1u);
  IPCH_EXPECT_ERRC(p.client.Send(AsBytes("x"), Settle()), PeerClosed) << "PeerClosed must stay";
}

TYPED_TEST_P(Fault, BrokenPipeOnSendIsPeerClosed) {
  IPCH_REQUIRE_CAP(SyscallIo);
  IPCH_CONNECTED(p);
  fault::ScopedPlan armed(this->NthOf(fault::kWrite, EPIPE, 1));
  IPCH_EXPECT_ERRC(p.client.Send(AsBytes("x"), Settle()), PeerClosed);
  EXPECT_EQ(fault::InjectedCount(), 1u);
}

TYPED_TEST_P(Fault, ResetOnReceiveIsPeerClosed) {
  IPCH_REQUIRE_CAP(SyscallIo);
  IPCH_CONNECTED(p);
  IPCH_ASSERT_OK(p.client.Send(AsBytes("x"), Settle()));
  fault::ScopedPlan armed(this->NthOf(fault::kRead, ECONNRESET, 1));
  Bytes got;
  IPCH_EXPECT_ERRC(p.server.Receive(got, Settle()), PeerClosed);
  EXPECT_EQ(fault::InjectedCount(), 1u);
}

TYPED_TEST_P(Fault, HardReadErrorKeepsItsErrno) {
  IPCH_REQUIRE_CAP(SyscallIo);
  IPCH_CONNECTED(p);
  IPCH_ASSERT_OK(p.client.Send(AsBytes("x"), Settle()));
  fault::ScopedPlan armed(this->NthOf(fault::kRead, EIO, 1));
  Bytes got;
  Status st = p.server.Receive(got, Settle());
  ASSERT_FALSE(st.ok());
  // Nothing in Errc means "I/O error": the errno itself must come through, not a vague code.
  EXPECT_EQ(st.error().code, std::error_code(EIO, std::system_category())) << st.error().ToString();
}

TYPED_TEST_P(Fault, ConnectRefusedIsPeerClosed) {
  IPCH_REQUIRE_CAP(SyscallIo);
  auto l = TypeParam::Listen(this->address_);
  IPCH_ASSERT_OK(l);
  {
    // Only for transports that connect through connect(2): count the calls first.
    fault::ScopedPlan counting(this->PlanOf(fault::kConnect, fault::Kind::kErrno, ECONNREFUSED, 0.0));
    auto probe = TypeParam::Connect(l->address(), Settle());
    IPCH_ASSERT_OK(probe);
    if (fault::MatchedCalls(0) == 0) {
      GTEST_SKIP() << "UNSUPPORTED: " << TypeParam::kName << " makes no connect(2) call";
    }
    IPCH_ASSERT_OK(l->Accept(Settle()));
  }
  fault::ScopedPlan armed(this->NthOf(fault::kConnect, ECONNREFUSED, 1));
  IPCH_EXPECT_ERRC(TypeParam::Connect(l->address(), Settle()), PeerClosed);
  EXPECT_EQ(fault::InjectedCount(), 1u);
}

// Systematic: the reset lands on each write call of a three-message exchange in turn. Whichever
// send it hits reports PeerClosed (and stays so); every message sent before it arrives intact.
TYPED_TEST_P(Fault, EachWriteInTurnFailingIsPeerClosedAndLosesNothingBefore) {
  IPCH_REQUIRE_CAP(SyscallIo);
  const uint64_t salt = this->Seed();
  const uint64_t total = fault::Enumerate(fault::kWrite, ECONNRESET, [&](uint64_t n) {
    SCOPED_TRACE("reset at write call " + std::to_string(n) + " of the exchange");
    auto p = [&] {
      fault::ScopedPause setup;  // a transport may write while connecting (fifo): not counted here
      return this->Connected();
    }();
    IPCH_ASSERT_OK(p);
    uint64_t sent = 0;
    Status st;
    for (uint64_t i = 0; i < 3 && st.ok(); ++i) {
      st = p->client.Send(MakeMessage(i, 200 + 700 * i, salt), Settle());
      if (st.ok()) ++sent;
    }
    if (n == 0) {
      EXPECT_EQ(sent, 3u);
    } else {
      EXPECT_EQ(fault::InjectedCount(), 1u) << this->FaultLog();
      IPCH_EXPECT_ERRC(st, PeerClosed);
      IPCH_EXPECT_ERRC(p->client.Send(MakeMessage(9, 10, salt), Settle()), PeerClosed) << "must stay failed";
    }
    Bytes got;
    for (uint64_t i = 0; i < sent; ++i) {
      IPCH_ASSERT_OK(p->server.Receive(got, Settle()));
      EXPECT_TRUE(VerifyMessage(got, i, 200 + 700 * i, salt)) << "message " << i;
    }
  });
  EXPECT_GE(total, 3u) << "each send is at least one write call";
}

// ---- setup under resource failure ------------------------------------------------------------

// Calls that acquire something (descriptors, sockets, mappings, segments) and calls that release
// it. shmctl and msgctl do both (IPC_STAT checks, IPC_RMID removes) and count as releases.
inline constexpr uint32_t kAcquireCalls = fault::kSocket | fault::kSocketpair | fault::kBind | fault::kListen |
                                          fault::kAccept | fault::kConnect | fault::kOpen | fault::kPipe |
                                          fault::kMkfifo | fault::kMmap | fault::kFtruncate | fault::kShmOpen |
                                          fault::kMemfdCreate | fault::kShmget | fault::kShmat | fault::kMsgget |
                                          fault::kMqOpen;
inline constexpr uint32_t kReleaseCalls = fault::kClose | fault::kShutdown | fault::kMunmap | fault::kShmUnlink |
                                          fault::kShmdt | fault::kShmctl | fault::kMsgctl | fault::kMqUnlink;

// Listen, connect, accept and one round trip, then everything closed; under Enumerate, each
// call of `ops` fails in turn with `err`. Returns which step failed ("" if none) and how.
template <class T>
std::string SetUpAndTearDown(const std::string& address, const Bytes& msg, Status* st) {
  auto l = T::Listen(address);
  if (!l.ok()) return *st = std::move(l).error(), "listen";
  auto c = T::Connect(l->address(), Settle());
  if (!c.ok()) return *st = std::move(c).error(), "connect";
  auto s = l->Accept(Settle());
  if (!s.ok()) return *st = std::move(s).error(), "accept";
  EXPECT_TRUE(RoundTrip(*c, *s, msg)) << "the connection set up despite the fault must work";
  return "";
}

// Every call that acquires a resource while a connection is set up and torn down (socket, bind,
// listen, connect, accept, open, mmap, ftruncate, shm_open, shmget, shmat, ...) fails in turn
// with ENOMEM. The step it hits reports ENOMEM itself, or the transport recovers and the
// connection works; either way nothing is left behind: no descriptor, /dev/shm entry, SysV
// object or socket file, checked after each turn.
// Enumerate(ops, err) over SetUpAndTearDown: after each turn, with faults paused, calls
// check(n, failed_step, status, leaks) and then removes whatever the turn left behind.
template <class T, class Check>
uint64_t EnumerateSetUps(const std::string& address, uint32_t ops, int err, uint64_t salt, Check check) {
  const std::string prefix = "ipch-" + std::to_string(::getpid()) + "-";
  const auto& scratch = ::ipch::testing::Current().scratch_dir;
  const Bytes msg = MakeMessage(1, 100, salt);
  return fault::Enumerate(ops, err, [&](uint64_t n) {
    SCOPED_TRACE(std::string(std::strerror(err)) + " at call " + std::to_string(n) + " of the kinds enumerated");
    audit::Snapshot before;
    {
      fault::ScopedPause pause;
      before = audit::Take(prefix);
    }
    Status st;
    const std::string failed = SetUpAndTearDown<T>(address, msg, &st);
    fault::ScopedPause pause;
    const auto after = audit::Take(prefix);
    auto leaks = audit::Leaks(before, after);
    for (const auto& f : audit::LeftoverFiles(scratch)) leaks.push_back("file left in scratch dir: " + f);
    check(n, failed, st, leaks);
    audit::CleanUp(before, after);
    for (const auto& f : audit::LeftoverFiles(scratch)) std::filesystem::remove(scratch / f);
  });
}

// Every call that acquires a resource while a connection is set up and torn down (socket, bind,
// listen, connect, accept, open, mmap, ftruncate, shm_open, shmget, shmat, ...) fails in turn
// with ENOMEM. The step it hits reports ENOMEM itself, or the transport recovers and the
// connection works; either way nothing is left behind: no descriptor, /dev/shm entry, SysV
// object or socket file, checked after each turn.
TYPED_TEST_P(Fault, EachAcquiringCallFailingInTurnLeavesNothingBehind) {
  if (!this->Has(Cap::SyscallIo) && !this->Has(Cap::SharedMemory) && !this->Has(Cap::QueueIo)) {
    GTEST_SKIP() << "UNSUPPORTED: " << TypeParam::kName << " makes no interposable setup calls";
  }
  uint64_t failed_turns = 0;
  const uint64_t total = EnumerateSetUps<TypeParam>(
      this->address_, kAcquireCalls, ENOMEM, this->Seed(),
      [&](uint64_t n, const std::string& failed, const Status& st, const std::vector<std::string>& leaks) {
        if (n == 0) {
          EXPECT_EQ(failed, "") << st.error().ToString();
        }
        if (!failed.empty()) {
          ++failed_turns;
          EXPECT_EQ(fault::InjectedCount(), 1u);
          EXPECT_EQ(st.error().code, std::error_code(ENOMEM, std::system_category()))
              << failed << " failed with " << st.error().ToString() << "; faults: " << this->FaultLog();
        }
        EXPECT_TRUE(leaks.empty()) << "faults: " << this->FaultLog()
                                   << "; left behind: " << ::testing::PrintToString(leaks);
      });
  EXPECT_GE(total, 3u) << "listen, connect and accept acquire at least three things";
  EXPECT_GT(failed_turns, 0u) << "no acquiring call's failure was ever reported";
}

// Every call that releases something (close, shutdown, munmap, shm_unlink, shmdt, shmctl) fails
// in turn. What a failed release holds cannot always be freed (an unlink that failed leaves the
// name), but it must never crash, hang or fail the connection, and it must never block the
// address: the next Listen there works (the orphan policy reclaims a name left behind).
TYPED_TEST_P(Fault, EachReleasingCallFailingInTurnNeverBlocksTheAddress) {
  if (!this->Has(Cap::SyscallIo) && !this->Has(Cap::SharedMemory) && !this->Has(Cap::QueueIo)) {
    GTEST_SKIP() << "UNSUPPORTED: " << TypeParam::kName << " makes no interposable release calls";
  }
  const uint64_t total = EnumerateSetUps<TypeParam>(
      this->address_, kReleaseCalls, EIO, this->Seed(),
      [&](uint64_t, const std::string& failed, const Status& st, const std::vector<std::string>&) {
        // shmctl also checks (IPC_STAT) while setting up: a step may fail, but only with the
        // errno injected.
        if (!failed.empty()) {
          EXPECT_EQ(st.error().code, std::error_code(EIO, std::system_category()))
              << failed << " failed with " << st.error().ToString() << "; faults " << this->FaultLog();
        }
        auto again = TypeParam::Listen(this->address_);
        IPCH_EXPECT_OK(again) << "the address is blocked after: " << this->FaultLog();
      });
  EXPECT_GE(total, 2u) << "closing a connection releases something";
}

// ---- stream toxics: a proxy between the two ends ------------------------------------------------

TYPED_TEST_P(Fault, SlicedIntoTinySegmentsArrivesIntact) {
  IPCH_REQUIRE_PROXY();
  this->ExchangeThrough("up:slice=1;down:slice=7", 12, 3000);
}

TYPED_TEST_P(Fault, LatencyAndJitterKeepOrder) {
  IPCH_REQUIRE_PROXY();
  this->ExchangeThrough("both:latency=1ms,jitter=3ms,slice=4096", 16, 70000);
}

TYPED_TEST_P(Fault, BandwidthLimitIsOnlySlower) {
  IPCH_REQUIRE_PROXY();
  this->ExchangeThrough("both:rate=8000000", 8, 100000);
}

// The rest of a frame is held back: the receive times out holding half a frame, and the same
// message arrives whole once the stream moves again.
TYPED_TEST_P(Fault, StallMidFrameTimesOutThenCompletes) {
  IPCH_REQUIRE_PROXY();
  IPCH_REQUIRE_HOOK(kHasFrameHeader<TypeParam>, "FrameHeader");
  const Bytes first = MakeMessage(1, 100, this->Seed()), second = MakeMessage(2, 3000, this->Seed());
  const uint64_t frame1 = FrameOverhead<TypeParam>() + first.size();
  auto p = this->ThroughProxy("up:stall_after=" + std::to_string(frame1 + 1500));
  IPCH_ASSERT_OK(p);
  IPCH_ASSERT_OK(p->client.Send(first, Settle()));
  IPCH_ASSERT_OK(p->client.Send(second, Settle()));
  Bytes got;
  IPCH_ASSERT_OK(p->server.Receive(got, Settle()));
  EXPECT_EQ(got, first);
  ASSERT_TRUE(p->proxy->WaitFor([](const toxics::Stats& s) { return s.stalls == 1; }, Settle())) << p->Describe();
  IPCH_ASSERT_ERRC(p->server.Receive(got, Deadline::After(ShortWait())), Timeout);
  p->proxy->Resume();
  IPCH_ASSERT_OK(p->server.Receive(got, Settle()));
  EXPECT_EQ(got, second) << "the half frame read before the timeout was lost or doubled";
}

TYPED_TEST_P(Fault, ResetMidFrameIsPeerClosedAfterWholeMessages) {
  IPCH_REQUIRE_PROXY();
  IPCH_REQUIRE_HOOK(kHasFrameHeader<TypeParam>, "FrameHeader");
  this->CutInThirdFrame("reset_after", {500, 0, 5000}, 7 + this->Seed() % 4000, &toxics::Stats::resets);
}

TYPED_TEST_P(Fault, CloseMidFrameIsPeerClosedAfterWholeMessages) {
  IPCH_REQUIRE_PROXY();
  IPCH_REQUIRE_HOOK(kHasFrameHeader<TypeParam>, "FrameHeader");
  // Anywhere from inside the header to the last payload byte.
  this->CutInThirdFrame("close_after", {1, 2000, 5000}, 1 + this->Seed() % 5011, &toxics::Stats::closes);
}

// One bit flipped on the wire inside the third frame (header or payload, chosen by the seed):
// the first two arrive, the third is Corrupt and never handed over.
TYPED_TEST_P(Fault, FlippedBitOnTheWireIsCorruptNeverDelivered) {
  IPCH_REQUIRE_PROXY();
  IPCH_REQUIRE_HOOK(kHasFrameHeader<TypeParam>, "FrameHeader");
  const Bytes msgs[3] = {MakeMessage(0, 300, this->Seed()), MakeMessage(1, 700, this->Seed()),
                         MakeMessage(2, 900, this->Seed())};
  const uint64_t header = FrameOverhead<TypeParam>();
  const uint64_t at = 2 * header + msgs[0].size() + msgs[1].size() + this->Seed() % (header + msgs[2].size());
  auto p = this->ThroughProxy("up:flip_at=" + std::to_string(at));
  IPCH_ASSERT_OK(p);
  Bytes got;
  for (int i = 0; i < 3; ++i) IPCH_ASSERT_OK(p->client.Send(msgs[i], Settle()));
  for (int i = 0; i < 2; ++i) {
    IPCH_ASSERT_OK(p->server.Receive(got, Settle())) << p->Describe();
    EXPECT_EQ(got, msgs[i]);
  }
  got.clear();
  IPCH_EXPECT_ERRC(p->server.Receive(got, Settle()), Corrupt) << "flip at byte " << at << "; " << p->Describe();
  EXPECT_TRUE(got.empty()) << "a damaged message reached the caller";
  EXPECT_EQ(p->proxy->stats().flips[0], 1u);
}

// Random flips at a seeded rate: every message either arrives exactly as sent, in order, or the
// stream stops with Corrupt; never a wrong message.
TYPED_TEST_P(Fault, RandomBitFlipsNeverDeliverAWrongMessage) {
  IPCH_REQUIRE_PROXY();
  auto p = this->ThroughProxy("up:flip=0.0005");
  IPCH_ASSERT_OK(p);
  std::mt19937_64 rng(this->Seed());
  Bytes got;
  int delivered = 0;
  Status st;
  for (int i = 0; i < 60 && st.ok(); ++i) {
    const Bytes msg = MakeMessage(static_cast<uint64_t>(i), rng() % 3000, this->Seed());
    IPCH_ASSERT_OK(p->client.Send(msg, Settle()));
    st = p->server.Receive(got, Settle());
    if (st.ok()) {
      ASSERT_EQ(got, msg) << "message " << i << " arrived damaged; " << p->Describe();
      ++delivered;
    }
  }
  ASSERT_GT(p->proxy->stats().flips[0], 0u) << "p=0.0005 over ~90 kB: some bit must have flipped";
  IPCH_EXPECT_ERRC(st, Corrupt) << "after " << delivered << " intact messages; " << p->Describe();
}

REGISTER_TYPED_TEST_SUITE_P(Fault, EachAcquiringCallFailingInTurnLeavesNothingBehind,
                            EachReleasingCallFailingInTurnNeverBlocksTheAddress, SlicedIntoTinySegmentsArrivesIntact, LatencyAndJitterKeepOrder,
                            BandwidthLimitIsOnlySlower, StallMidFrameTimesOutThenCompletes,
                            ResetMidFrameIsPeerClosedAfterWholeMessages, CloseMidFrameIsPeerClosedAfterWholeMessages,
                            FlippedBitOnTheWireIsCorruptNeverDelivered, RandomBitFlipsNeverDeliverAWrongMessage,
                            EachWriteInTurnFailingIsPeerClosedAndLosesNothingBefore, EintrEverywhereIsInvisible,
                            ShortWritesAreCompleted, ShortReadsAreAssembled, EagainIsRetried,
                            AcceptInterruptedIsRetried, ResetOnSendIsPeerClosed, BrokenPipeOnSendIsPeerClosed,
                            ResetOnReceiveIsPeerClosed, HardReadErrorKeepsItsErrno, ConnectRefusedIsPeerClosed,
                            EintrOnQueueCallsIsInvisible, QueueFullOrEmptyIsWaitedOut,
                            QueueSendOutOfMemoryKeepsItsErrnoAndLosesNothing, QueueRemovedUnderReceiveIsPeerClosed);

}  // namespace ipch::conformance

// Runs the whole battery over the listed adapter types. Test names read
// Prefix/Group/<kName>.Case, e.g. Conformance/Basic/tcp.RoundTripMaxSize.
// Expands inside namespace ipch::conformance (gtest requires it): qualify the adapter types.
#define IPCH_INSTANTIATE_CONFORMANCE(Prefix, ...)                                                      \
  namespace ipch::conformance {                                                                        \
  using Prefix##IpchTypes = ::testing::Types<__VA_ARGS__>;                                             \
  INSTANTIATE_TYPED_TEST_SUITE_P(Prefix, Basic, Prefix##IpchTypes, ::ipch::conformance::NameOf);       \
  INSTANTIATE_TYPED_TEST_SUITE_P(Prefix, Ordering, Prefix##IpchTypes, ::ipch::conformance::NameOf);    \
  INSTANTIATE_TYPED_TEST_SUITE_P(Prefix, Deadlines, Prefix##IpchTypes, ::ipch::conformance::NameOf);   \
  INSTANTIATE_TYPED_TEST_SUITE_P(Prefix, Lifecycle, Prefix##IpchTypes, ::ipch::conformance::NameOf);   \
  INSTANTIATE_TYPED_TEST_SUITE_P(Prefix, PeerDeath, Prefix##IpchTypes, ::ipch::conformance::NameOf);   \
  INSTANTIATE_TYPED_TEST_SUITE_P(Prefix, Security, Prefix##IpchTypes, ::ipch::conformance::NameOf);    \
  INSTANTIATE_TYPED_TEST_SUITE_P(Prefix, Concurrency, Prefix##IpchTypes, ::ipch::conformance::NameOf); \
  INSTANTIATE_TYPED_TEST_SUITE_P(Prefix, Fault, Prefix##IpchTypes, ::ipch::conformance::NameOf);       \
  } /* namespace ipch::conformance */                                                                  \
  static_assert(true, "require a semicolon")
