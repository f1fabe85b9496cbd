// Fault group, message-queue cases: faults injected into msgsnd/msgrcv, mq_send/mq_receive and
// their timed forms.
#pragma once

#include <gtest/gtest.h>

#include <cerrno>
#include <cstdint>
#include <system_error>

#include "fault_fixture.h"
#include "fixture.h"
#include "ipch/deadline.h"
#include "ipch/fault.h"
#include "ipch/result.h"
#include "ipch/testing.h"
#include "ipch/transport.h"

namespace ipch::conformance {

inline constexpr uint64_t kQueueSend = fault::kMsgsnd | fault::kMqSend;
inline constexpr uint64_t kQueueReceive = fault::kMsgrcv | fault::kMqReceive;

TYPED_TEST_P(Fault, EintrOnQueueCallsIsInvisible) {
  IPCH_REQUIRE_CAP(QueueIo);
  this->EchoUnder(this->PlanOf(kQueueSend | kQueueReceive, fault::Kind::kErrno, EINTR, 0.3));
}

// A full or empty queue is waited out, never an error: what a call that does not wait says
// (EAGAIN; msgrcv's ENOMSG) and what a timed POSIX queue call says when its wait ran out
// (ETIMEDOUT), each only where the call can say it (the engine skips a blocking call's EAGAIN).
TYPED_TEST_P(Fault, QueueFullOrEmptyIsWaitedOut) {
  IPCH_REQUIRE_CAP(QueueIo);
  fault::Plan plan = this->PlanOf(kQueueSend | fault::kMqReceive, fault::Kind::kErrno, EAGAIN, 0.3);
  plan.rules.push_back({fault::kMsgrcv, fault::Kind::kErrno, ENOMSG, 0, 0.3, 0});
  plan.rules.push_back({fault::kMqSend | fault::kMqReceive, fault::Kind::kErrno, ETIMEDOUT, 0, 0.3, 0});
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

}  // namespace ipch::conformance
