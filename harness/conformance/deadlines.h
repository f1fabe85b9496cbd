// Conformance group Deadlines: every blocking call returns by its deadline, and the connection
// stays usable.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "fixture.h"
#include "ipch/child_process.h"
#include "ipch/deadline.h"
#include "ipch/result.h"
#include "ipch/testing.h"
#include "ipch/transport.h"

namespace ipch::conformance {

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
  const auto sent_by = Clock::now();
  Bytes got;
  for (uint64_t i = 0; i < sent; ++i) {
    ASSERT_TRUE(ReceiveWaiting(p.server, got, sent_by)) << "message " << i << " of " << sent;
    ASSERT_TRUE(VerifyMessage(got, i, size, salt));
  }
  IPCH_EXPECT_ERRC(p.server.Receive(got, Settle()), PeerClosed);
}

TYPED_TEST_P(Deadlines, BlockedReceiveWakesForLateMessage) {
  auto l = TypeParam::Listen(this->address_);
  IPCH_ASSERT_OK(l);
  auto peer = this->StartClient(l->address(), [](auto& c, ControlChannel& ch) -> Status {
    IPCH_RETURN_IF_ERROR(ch.WaitSignal(Settle()));  // send only once we are told to
    IPCH_RETURN_IF_ERROR(c.Send(AsBytes("late"), Settle()));
    // When the send was done, on the clock every process of this machine shares.
    return ch.SendString(std::to_string(Clock::now().time_since_epoch().count()));
  });
  IPCH_ASSERT_OK(peer);
  auto s = l->Accept(Settle());
  IPCH_ASSERT_OK(s);
  Bytes got;
  IPCH_ASSERT_ERRC(s->Receive(got, Deadline::After(ShortWait())), Timeout);
  IPCH_ASSERT_OK(peer->control().Signal());
  IPCH_ASSERT_OK(s->Receive(got, Settle()));
  const auto woke = Clock::now();
  EXPECT_EQ(got, Bytes(AsBytes("late").begin(), AsBytes("late").end()));
  auto sent = peer->control().ReceiveString(Settle());
  IPCH_ASSERT_OK(sent);
  const auto late = woke - Clock::time_point(Clock::duration(std::stoll(*sent)));
  EXPECT_LE(late, PromptBound()) << "the blocked receive returned " << Seconds(late)
                                 << " s after the message was sent: a lost wake-up? (bound " << Seconds(PromptBound())
                                 << " s)";
  IPCH_ASSERT_PEER_OK(*peer);
}

REGISTER_TYPED_TEST_SUITE_P(Deadlines, ReceiveTimesOutWhenNothingIsSent, ExpiredDeadlineReceiveIsWouldBlock,
                            AcceptTimesOut, ExpiredDeadlineAcceptIsWouldBlock, ReceiveWorksAfterTimeout,
                            SendTimesOutWhenPeerStopsReading, BlockedReceiveWakesForLateMessage);

}  // namespace ipch::conformance
