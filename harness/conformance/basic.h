// Conformance group Basic: sizes, boundaries, directions.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "fixture.h"
#include "hooks.h"
#include "ipch/child_process.h"
#include "ipch/deadline.h"
#include "ipch/result.h"
#include "ipch/testing.h"
#include "ipch/transport.h"

namespace ipch::conformance {

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
  const auto sent = Clock::now();
  Bytes got;
  for (uint64_t i = 0; i < burst; ++i) {
    ASSERT_TRUE(ReceiveWaiting(p.server, got, sent)) << "message " << i << " of " << burst;
    ASSERT_TRUE(VerifyMessage(got, i, i % 40, salt));
  }
}

TYPED_TEST_P(Basic, MultipleClientsAreIsolated) {
  IPCH_REQUIRE_PEERS(4);
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
  const auto sent = Clock::now();
  for (int i = 3; i >= 0; --i) {
    Bytes got;
    ASSERT_TRUE(ReceiveWaiting(servers[i], got, sent)) << "connection " << i;
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

}  // namespace ipch::conformance
