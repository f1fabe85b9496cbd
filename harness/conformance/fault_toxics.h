// Fault group, stream toxics cases: slicing, latency, rate limits, stalls, resets, closes and bit
// flips applied by a proxy between the two ends (in front of a socket address, or spliced into a
// FIFO pair's pipes).
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

// The rest of a message is held back: the receive times out holding part of it, and the same
// message arrives whole once the stream moves again. The stall is aimed 1..2000 bytes into what
// the second message puts on the wire (its frame, or an HTTP request), so no framing is assumed.
TYPED_TEST_P(Fault, StallMidFrameTimesOutThenCompletes) {
  IPCH_REQUIRE_PROXY();
  const Bytes first = MakeMessage(1, 100, this->Seed()), second = MakeMessage(2, 3000, this->Seed());
  IPCH_THROUGH_PROXY(p, "");
  Bytes got;
  ASSERT_TRUE(RoundTrip(p->client, p->server, first, Path::kRelayed)) << p->Describe();
  p->proxy->ArmEvent(toxics::Direction::kUp, 1 + this->Seed() % 2000, toxics::Event::kStall);
  // A client whose Send waits for its peer's answer (an HTTP request) waits through the stall.
  InBackground sending([&] { return p->client.Send(second, Settle()); });
  ASSERT_TRUE(p->proxy->WaitFor([](const toxics::Stats& s) { return s.stalls == 1; }, Settle())) << p->Describe();
  IPCH_EXPECT_ERRC(p->server.Receive(got, Deadline::After(ShortWait())), Timeout) << p->Describe();
  p->proxy->Resume();
  IPCH_ASSERT_OK(p->server.Receive(got, Settle())) << p->Describe();
  EXPECT_EQ(got, second) << "the part read before the timeout was lost or doubled";
  IPCH_EXPECT_OK(sending.get());
}

TYPED_TEST_P(Fault, ResetMidFrameIsPeerClosedAfterWholeMessages) {
  IPCH_REQUIRE_PROXY();
  if constexpr (!kHasSocketAddress<TypeParam>) {
    IPCH_THROUGH_PROXY(p, "");
    IPCH_NOT_APPLICABLE("the ends are joined by pipes, and a pipe has no reset: its writer's end closes in order "
                        "(CloseMidFrameIsPeerClosedAfterWholeMessages cuts one mid-frame)");
  }
  this->CutInThirdMessage(toxics::Event::kReset, {500, 500, 5000}, &toxics::Stats::resets);
}

TYPED_TEST_P(Fault, CloseMidFrameIsPeerClosedAfterWholeMessages) {
  IPCH_REQUIRE_PROXY();
  this->CutInThirdMessage(toxics::Event::kClose, {2000, 2000, 5000}, &toxics::Stats::closes);
}

// One bit flipped on the wire inside the third message (header or payload, chosen by the seed):
// the first two arrive, the third is Corrupt and never handed over. A transport that reconnects
// (HTTP) has headers no checksum covers: a flip there may also be a refusal (PeerClosed, Corrupt)
// or a request that never completes (Timeout), or no harm at all; one in the payload is Corrupt.
TYPED_TEST_P(Fault, FlippedBitOnTheWireIsCorruptNeverDelivered) {
  IPCH_REQUIRE_PROXY();
  const Bytes msgs[3] = {MakeMessage(0, 700, this->Seed()), MakeMessage(1, 700, this->Seed()),
                         MakeMessage(2, 900, this->Seed())};
  IPCH_THROUGH_PROXY(p, "");
  const uint64_t overhead = this->WireOverhead(*p, msgs[0]);
  if (::testing::Test::HasFatalFailure()) return;
  // The flip lands at `k` bytes into the third message: past the second (same size as the
  // first, so as long on the wire), somewhere in its overhead or payload.
  const uint64_t k = this->Seed() % (overhead + msgs[2].size());
  const bool in_payload = k >= overhead + this->kOverheadSlack;
  p->proxy->ArmEvent(toxics::Direction::kUp, overhead + msgs[1].size() + k, toxics::Event::kFlip);
  SCOPED_TRACE("flip " + std::to_string(k) + " bytes into the third message (its overhead on the wire: " +
               std::to_string(overhead) + " bytes)");
  Bytes got;
  IPCH_ASSERT_OK(p->client.Send(msgs[1], Settle()));
  InBackground sending([&] { return p->client.Send(msgs[2], Settle()); });
  IPCH_ASSERT_OK(p->server.Receive(got, Settle())) << p->Describe();
  EXPECT_EQ(got, msgs[1]);
  got.clear();
  const Status sent = sending.get();
  if (!this->Has(Cap::Reconnects) || in_payload) {
    Status st = p->server.Receive(got, this->Has(Cap::Reconnects) ? Deadline::After(ShortWait()) : Settle());
    if (this->Has(Cap::Reconnects)) {
      // The damage is found where the message arrives: a reconnecting transport's server refuses
      // the request, and its client reports Corrupt (its receiver sees nothing).
      IPCH_EXPECT_ERRC(sent, Corrupt) << p->Describe();
      IPCH_EXPECT_ERRC(st, Timeout) << "a damaged message reached the caller: " << p->Describe();
    } else {
      IPCH_EXPECT_ERRC(st, Corrupt) << p->Describe();
    }
    EXPECT_TRUE(got.empty()) << "a damaged message reached the caller";
  } else {
    this->ExpectOnceOrRefused(*p, msgs[2], sent, {Errc::Corrupt, Errc::PeerClosed, Errc::Timeout});
  }
  EXPECT_EQ(p->proxy->stats().flips[0], 1u) << p->Describe();
}

// Random flips at a seeded rate: every message either arrives exactly as sent, in order, or the
// stream stops with Corrupt; never a wrong message. (A reconnecting transport may also stop with
// PeerClosed or Timeout where a flip hit a header that no checksum covers, or not stop at all.)
TYPED_TEST_P(Fault, RandomBitFlipsNeverDeliverAWrongMessage) {
  IPCH_REQUIRE_PROXY();
  IPCH_THROUGH_PROXY(p, "up:flip=0.0005");
  const bool reconnects = this->Has(Cap::Reconnects);
  std::mt19937_64 rng(this->Seed());
  Bytes got;
  int delivered = 0;
  Status st;
  for (int i = 0; i < 60 && st.ok(); ++i) {
    const Bytes msg = MakeMessage(static_cast<uint64_t>(i), rng() % 3000, this->Seed());
    st = p->client.Send(msg, Settle());
    if (!reconnects) {
      IPCH_ASSERT_OK(st);
    }
    if (st.ok()) st = p->server.Receive(got, Settle());
    if (st.ok()) {
      ASSERT_EQ(got, msg) << "message " << i << " arrived damaged; " << p->Describe();
      ++delivered;
    }
  }
  ASSERT_GT(p->proxy->stats().flips[0], 0u) << "p=0.0005 over ~90 kB: some bit must have flipped";
  if (!reconnects) {
    IPCH_EXPECT_ERRC(st, Corrupt) << "after " << delivered << " intact messages; " << p->Describe();
  } else if (!st.ok()) {
    EXPECT_TRUE(st.Is(Errc::Corrupt) || st.Is(Errc::PeerClosed) || st.Is(Errc::Timeout))
        << "after " << delivered << " intact messages: " << st.error().ToString() << "; " << p->Describe();
  }
}

}  // namespace ipch::conformance
