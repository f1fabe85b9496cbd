// Conformance group Fault: the four parts (call faults, setup, toxics, exhaustion) and the one list that
// registers their cases; a new Fault case goes into a part and into this list.
#pragma once

#include <gtest/gtest.h>

// The parts in reading order, not sorted.
// clang-format off
#include "fault_syscalls.h"
#include "fault_setup.h"
#include "fault_toxics.h"
#include "fault_exhaustion.h"
// clang-format on

namespace ipch::conformance {

REGISTER_TYPED_TEST_SUITE_P(Fault, EachAcquiringCallFailingInTurnLeavesNothingBehind,
                            EachReleasingCallFailingInTurnNeverBlocksTheAddress, SlicedIntoTinySegmentsArrivesIntact,
                            LatencyAndJitterKeepOrder, BandwidthLimitIsOnlySlower, StallMidFrameTimesOutThenCompletes,
                            ResetMidFrameIsPeerClosedAfterWholeMessages, CloseMidFrameIsPeerClosedAfterWholeMessages,
                            FlippedBitOnTheWireIsCorruptNeverDelivered, RandomBitFlipsNeverDeliverAWrongMessage,
                            EachWriteInTurnFailingIsPeerClosedAndLosesNothingBefore, EintrEverywhereIsInvisible,
                            ShortWritesAreCompleted, ShortReadsAreAssembled, EagainIsRetried,
                            WaitsWokenEarlyAreWaitedAgain, AcceptInterruptedIsRetried,
                            AcceptOutOfDescriptorsKeepsItsErrnoAndTheConnection, PeerGoneUnderSendIsPeerClosed,
                            PeerGoneUnderReceiveIsPeerClosed, HardIoErrorKeepsItsErrno, ConnectRefusedIsPeerClosed,
                            SlowOrTimedOutSetUpHonoursItsDeadline, OutOfDescriptorsIsEmfileNamedAndLeavesNothingBehind,
                            FullDevShmIsEnospcNamedNeverSigbus, KernelIpcLimitsReachedAreNamed);

}  // namespace ipch::conformance
