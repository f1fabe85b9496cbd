// Security group, stream cases: hostile bytes from a raw peer on a byte stream.
#pragma once

#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>

#include "fixture.h"
#include "hooks.h"
#include "ipch/deadline.h"
#include "ipch/result.h"
#include "ipch/testing.h"
#include "ipch/transport.h"
#include "ipch/unique_fd.h"
#include "security_fixture.h"

namespace ipch::conformance {

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

}  // namespace ipch::conformance
