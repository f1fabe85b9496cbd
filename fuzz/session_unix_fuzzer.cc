// The session fuzzer (ipch/fuzz_session.h) over the unix transport.
#include "ipch/fuzz_session.h"
#include "transports/unix/unix.h"

IPCH_FUZZ_SESSION(ipch::unix_sock::Adapter)
