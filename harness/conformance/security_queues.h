// Security group, message-queue cases: the case acts as the peer on the queue a connection reads
// (Cap::QueueIo with the PutQueueMessage/QueueMessages hooks) and puts foreign, replayed,
// reordered, truncated and oversize chunks into it. Nothing of them may ever be delivered.
#pragma once

#include <gtest/gtest.h>

#include <cstddef>
#include <string>
#include <utility>
#include <vector>

#include "fixture.h"
#include "hooks.h"
#include "ipch/deadline.h"
#include "ipch/result.h"
#include "ipch/testing.h"
#include "ipch/transport.h"
#include "security_fixture.h"

namespace ipch::conformance {

// Puts `chunks` into the queue `to` reads, in order, as its peer would.
template <class T>
::testing::AssertionResult PutQueueMessages(const typename T::Connection& to, const std::vector<Bytes>& chunks,
                                            QueueMessageType type = QueueMessageType::Peer) {
  if constexpr (kHasRawQueue<T>) {
    for (std::size_t i = 0; i < chunks.size(); ++i) {
      Status st = T::PutQueueMessage(to, chunks[i], type);
      if (!st.ok()) return ::testing::AssertionFailure() << "queue message " << i << ": " << st.error().ToString();
    }
  }
  return ::testing::AssertionSuccess();
}

// A message that takes several chunks on the reference queues (8 KiB queue messages).
inline constexpr std::size_t kSeveralChunks = 20000;

#define IPCH_REQUIRE_RAW_QUEUE() \
  IPCH_REQUIRE_CAP(QueueIo);     \
  IPCH_REQUIRE_HOOK(kHasRawQueue<TypeParam>, "PutQueueMessage/QueueMessages")

// Queue messages that are not chunks at all: shorter than any header, and random bytes as long
// as a chunk. Corrupt, and the connection stays failed.
TYPED_TEST_P(Security, QueueMessageThatIsNoChunkIsCorrupt) {
  IPCH_REQUIRE_RAW_QUEUE();
  if constexpr (kHasRawQueue<TypeParam>) {
    auto l = TypeParam::Listen(this->address_);
    IPCH_ASSERT_OK(l);
    std::size_t chunk = 0;
    for (int round = 0; round < 2; ++round) {
      auto c = TypeParam::Connect(l->address(), Settle());
      IPCH_ASSERT_OK(c);
      auto s = l->Accept(Settle());
      IPCH_ASSERT_OK(s);
      if (chunk == 0) {
        const auto good = TypeParam::QueueMessages(*s, {MakeMessage(0, 64, this->Seed())});
        ASSERT_FALSE(good.empty());
        chunk = good[0].size();
      }
      const Bytes garbage = round == 0 ? Bytes(3, std::byte{0x4d}) : MakeMessage(99, chunk, ~this->Seed());
      SCOPED_TRACE("a queue message of " + std::to_string(garbage.size()) + " bytes");
      ASSERT_TRUE(PutQueueMessages<TypeParam>(*s, {garbage}));
      Bytes got;
      IPCH_EXPECT_ERRC(s->Receive(got, Settle()), Corrupt);
      EXPECT_TRUE(got.empty()) << "garbage reached the caller";
      IPCH_EXPECT_ERRC(s->Receive(got, Settle()), Corrupt) << "a corrupt connection must stay failed";
    }
  }
}

// A whole message, then its last chunk again: the first arrives once, the replay is Corrupt
// (not the message twice, not the next one).
TYPED_TEST_P(Security, ReplayedQueueChunkIsCorrupt) {
  IPCH_REQUIRE_RAW_QUEUE();
  if constexpr (kHasRawQueue<TypeParam>) {
    IPCH_CONNECTED(p);
    const Bytes first = MakeMessage(0, kSeveralChunks, this->Seed()), second = MakeMessage(1, 64, this->Seed());
    const auto of_first = TypeParam::QueueMessages(p.server, {first});
    auto chunks = TypeParam::QueueMessages(p.server, {first, second});
    ASSERT_FALSE(of_first.empty());
    chunks.insert(chunks.begin() + static_cast<std::ptrdiff_t>(of_first.size()), of_first.back());
    ASSERT_TRUE(PutQueueMessages<TypeParam>(p.server, chunks));
    Bytes got;
    IPCH_ASSERT_OK(p.server.Receive(got, Settle()));
    EXPECT_TRUE(VerifyMessage(got, 0, first.size(), this->Seed()));
    got.clear();
    IPCH_EXPECT_ERRC(p.server.Receive(got, Settle()), Corrupt) << "a replayed chunk was accepted";
    EXPECT_TRUE(got.empty());
  }
}

// The first two queue messages swapped: Corrupt, nothing delivered.
TYPED_TEST_P(Security, ReorderedQueueChunksAreCorrupt) {
  IPCH_REQUIRE_RAW_QUEUE();
  if constexpr (kHasRawQueue<TypeParam>) {
    IPCH_CONNECTED(p);
    auto chunks = TypeParam::QueueMessages(
        p.server, {MakeMessage(0, kSeveralChunks, this->Seed()), MakeMessage(1, 64, this->Seed())});
    ASSERT_GE(chunks.size(), 2u);
    std::swap(chunks[0], chunks[1]);
    ASSERT_TRUE(PutQueueMessages<TypeParam>(p.server, chunks));
    Bytes got;
    IPCH_EXPECT_ERRC(p.server.Receive(got, Settle()), Corrupt) << "reordered chunks were accepted";
    EXPECT_TRUE(got.empty());
  }
}

// A chunk that lost its last byte, then the rest: the gap is Corrupt, never glued over.
TYPED_TEST_P(Security, TruncatedQueueChunkIsCorrupt) {
  IPCH_REQUIRE_RAW_QUEUE();
  if constexpr (kHasRawQueue<TypeParam>) {
    IPCH_CONNECTED(p);
    auto chunks = TypeParam::QueueMessages(
        p.server, {MakeMessage(0, kSeveralChunks, this->Seed()), MakeMessage(1, 64, this->Seed())});
    ASSERT_FALSE(chunks.empty());
    chunks[0].pop_back();
    ASSERT_TRUE(PutQueueMessages<TypeParam>(p.server, chunks));
    Bytes got;
    IPCH_EXPECT_ERRC(p.server.Receive(got, Settle()), Corrupt) << "a truncated chunk was accepted";
    EXPECT_TRUE(got.empty());
  }
}

// A chunk carrying more payload than its message has room for: Corrupt.
TYPED_TEST_P(Security, QueueChunkLongerThanItsMessageIsCorrupt) {
  IPCH_REQUIRE_RAW_QUEUE();
  if constexpr (kHasRawQueue<TypeParam>) {
    IPCH_CONNECTED(p);
    auto chunks = TypeParam::QueueMessages(p.server, {MakeMessage(0, 100, this->Seed())});
    ASSERT_EQ(chunks.size(), 1u);
    chunks[0].resize(chunks[0].size() + 10, std::byte{0x5a});
    ASSERT_TRUE(PutQueueMessages<TypeParam>(p.server, chunks));
    Bytes got;
    IPCH_EXPECT_ERRC(p.server.Receive(got, Settle()), Corrupt);
    EXPECT_TRUE(got.empty());
  }
}

// A peer that ignores the limit announces a message one byte over the receiver's
// max_message_size: the first chunk is Corrupt at once (no wait for the rest, no allocation of
// whatever was announced).
TYPED_TEST_P(Security, QueueMessageOverTheReceiversLimitIsCorrupt) {
  IPCH_REQUIRE_RAW_QUEUE();
  if constexpr (kHasRawQueue<TypeParam>) {
    IPCH_CONNECTED(p);
    const auto chunks = TypeParam::QueueMessages(p.server, {Bytes(p.server.max_message_size() + 1, std::byte{1})});
    ASSERT_FALSE(chunks.empty());
    ASSERT_TRUE(PutQueueMessages<TypeParam>(p.server, {chunks[0]}));
    Bytes got;
    IPCH_EXPECT_ERRC(p.server.Receive(got, Settle()), Corrupt);
    EXPECT_TRUE(got.empty());
  }
}

// Another program's message in the queue, well formed but of a type or priority the peer never
// uses: either never read (the peer's message behind it arrives) or Corrupt, never delivered.
TYPED_TEST_P(Security, ForeignQueueMessageIsNeverDelivered) {
  IPCH_REQUIRE_RAW_QUEUE();
  if constexpr (kHasRawQueue<TypeParam>) {
    IPCH_CONNECTED(p);
    const Bytes foreign = MakeMessage(7, 64, ~this->Seed()), mine = MakeMessage(0, 64, this->Seed());
    ASSERT_TRUE(PutQueueMessages<TypeParam>(p.server, TypeParam::QueueMessages(p.server, {foreign}),
                                            QueueMessageType::Foreign));
    IPCH_ASSERT_OK(p.client.Send(mine, Settle()));
    Bytes got;
    Status st = p.server.Receive(got, Settle());
    if (st.ok()) {
      EXPECT_TRUE(VerifyMessage(got, 0, mine.size(), this->Seed())) << "the foreign message was delivered";
    } else {
      IPCH_EXPECT_ERRC(st, Corrupt);
    }
  }
}

// Garbage in one connection's queue fails that connection only.
TYPED_TEST_P(Security, HostileQueueOnOneConnectionDoesNotAffectAnother) {
  IPCH_REQUIRE_RAW_QUEUE();
  if constexpr (kHasRawQueue<TypeParam>) {
    auto l = TypeParam::Listen(this->address_);
    IPCH_ASSERT_OK(l);
    auto bad_c = TypeParam::Connect(l->address(), Settle());
    IPCH_ASSERT_OK(bad_c);
    auto bad = l->Accept(Settle());
    IPCH_ASSERT_OK(bad);
    auto good_c = TypeParam::Connect(l->address(), Settle());
    IPCH_ASSERT_OK(good_c);
    auto good = l->Accept(Settle());
    IPCH_ASSERT_OK(good);
    ASSERT_TRUE(PutQueueMessages<TypeParam>(*bad, {MakeMessage(5, 40, ~this->Seed())}));
    Bytes got;
    IPCH_EXPECT_ERRC(bad->Receive(got, Settle()), Corrupt);
    EXPECT_TRUE(RoundTrip(*good_c, *good, MakeMessage(1, 64, this->Seed())));
    EXPECT_TRUE(RoundTrip(*good, *good_c, MakeMessage(2, kSeveralChunks, this->Seed())));
  }
}

}  // namespace ipch::conformance
