// The whole ipch battery over ZeroMQ PAIR sockets, ipc:// and tcp://.
#include "conformance.h"
#include "zmq_transport.h"

static_assert(ipch::Transport<zmq_example::IpcAdapter>);
static_assert(ipch::Transport<zmq_example::TcpAdapter>);
IPCH_INSTANTIATE_CONFORMANCE(Conformance, zmq_example::IpcAdapter, zmq_example::TcpAdapter);
