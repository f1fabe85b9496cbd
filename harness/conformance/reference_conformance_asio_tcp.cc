// The battery over the Boost.Asio transport, in the reference binary beside the others: an
// instantiation of its own, as a transport from outside would have (docs/new-transport.md).
#include "conformance.h"
#include "transports/asio_tcp/asio_tcp.h"

IPCH_INSTANTIATE_CONFORMANCE(Conformance, ipch::asio_tcp::Adapter);
