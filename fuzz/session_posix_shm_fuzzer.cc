// The session fuzzer (ipch/fuzz_session.h) over the posix_shm transport.
#include "ipch/fuzz_session.h"
#include "transports/posix_shm/posix_shm.h"

IPCH_FUZZ_SESSION(ipch::posix_shm::Adapter)
