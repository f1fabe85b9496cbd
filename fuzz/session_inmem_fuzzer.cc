// The session fuzzer (ipch/fuzz_session.h) over the inmem transport.
#include "ipch/fuzz_session.h"
#include "transports/inmem/inmem.h"

IPCH_FUZZ_SESSION(ipch::inmem::Adapter)
