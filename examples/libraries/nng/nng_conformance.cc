// The whole ipch battery over nng pair1 sockets, ipc:// and tcp://.
#include "conformance.h"
#include "nng_transport.h"

static_assert(ipch::Transport<nng_example::IpcAdapter>);
static_assert(ipch::Transport<nng_example::TcpAdapter>);
IPCH_INSTANTIATE_CONFORMANCE(Conformance, nng_example::IpcAdapter, nng_example::TcpAdapter);
