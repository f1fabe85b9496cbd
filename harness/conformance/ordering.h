// Conformance group Ordering: ordering and integrity, checksummed sequences across a real peer.
#pragma once

#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <random>
#include <thread>
#include <vector>

#include "fixture.h"
#include "ipch/child_process.h"
#include "ipch/result.h"
#include "ipch/testing.h"
#include "ipch/transport.h"

namespace ipch::conformance {

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

}  // namespace ipch::conformance
