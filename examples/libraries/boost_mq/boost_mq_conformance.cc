// The whole ipch battery over Boost.Interprocess message_queue.
#include "boost_mq_transport.h"
#include "conformance.h"

static_assert(ipch::Transport<boost_mq_example::Adapter>);
IPCH_INSTANTIATE_CONFORMANCE(Conformance, boost_mq_example::Adapter);
