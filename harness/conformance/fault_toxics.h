// Fault group, stream toxics cases: slicing, latency, rate limits, stalls, resets, closes and bit
// flips applied by a proxy between the two ends.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <string>

#include "fault_fixture.h"
#include "fixture.h"
#include "hooks.h"
#include "ipch/deadline.h"
#include "ipch/result.h"
#include "ipch/testing.h"
#include "ipch/toxics.h"
#include "ipch/transport.h"

namespace ipch::conformance {

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

}  // namespace ipch::conformance
