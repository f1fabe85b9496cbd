// The session fuzzer (ipch/fuzz_session.h) over the sysv_mq transport.
#include "ipch/fuzz_session.h"
#include "transports/sysv_mq/sysv_mq.h"

IPCH_FUZZ_SESSION(ipch::sysv_mq::Adapter)
