// Conformance group Security: the parts (streams, objects, queues, http) and the one list that registers
// their cases; a new Security case goes into a part and into this list.
#pragma once

#include <gtest/gtest.h>

#include "security_http.h"
#include "security_objects.h"
#include "security_queues.h"
#include "security_streams.h"

namespace ipch::conformance {

REGISTER_TYPED_TEST_SUITE_P(Security, DamagedHeaderIsCorruptAtOnce, DamagedPayloadIsCorruptNeverDelivered,
                            ObjectOfAnotherOwnerIsRefused, ObjectOfTheWrongSizeIsRefused, ObjectBehindASymlinkIsRefused,
                            ConnectionRequestNamingAnImpostorIsRefused, HostileSegmentBytesAreCorrupt,
                            RandomSegmentScribblesNeverCrashOrHang, NamedResourcesAreOwnerOnly,
                            HugeLengthPrefixIsCorrupt, LengthJustOverMaxIsCorrupt, TruncatedFrameThenCloseIsPeerClosed,
                            FrameDeliveredOneByteAtATime, GarbageOnOneConnectionDoesNotAffectAnother,
                            QueueMessageThatIsNoChunkIsCorrupt, ReplayedQueueChunkIsCorrupt,
                            ReorderedQueueChunksAreCorrupt, TruncatedQueueChunkIsCorrupt,
                            QueueChunkLongerThanItsMessageIsCorrupt, QueueMessageOverTheReceiversLimitIsCorrupt,
                            ForeignQueueMessageIsNeverDelivered, HostileQueueOnOneConnectionDoesNotAffectAnother,
                            HttpErrorAnswerToAConnectIsTheContractsError, HttpErrorAnswerToASendIsTheContractsError,
                            HttpErrorAnswerToAReceiveIsTheContractsError, MalformedHttpAnswerToAReceiveIsCorrupt,
                            HttpAnswerCutMidBodyIsPeerClosed, StalledHttpAnswerTimesOutThenTheMessageArrives,
                            HttpSendWithoutAnAnswerIsNeverLostAfterOrTwice,
                            MalformedHttpRequestsAreRefusedAndDeliverNothing,
                            ReplayedHttpMessageIsAcknowledgedSkippedOneRefused,
                            OversizeHttpMessageIsRefusedAndTheSessionGoesOn, HttpClientHangingUpMidBodyDeliversNothing);

}  // namespace ipch::conformance
