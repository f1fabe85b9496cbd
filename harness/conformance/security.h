// Conformance group Security: owner-only resources; impostor objects at the address; hostile
// bytes from a raw peer or written into shared memory.
#pragma once

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <ios>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "fixture.h"
#include "hooks.h"
#include "ipch/deadline.h"
#include "ipch/result.h"
#include "ipch/testing.h"
#include "ipch/transport.h"
#include "ipch/unique_fd.h"

namespace ipch::conformance {

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

}  // namespace ipch::conformance
