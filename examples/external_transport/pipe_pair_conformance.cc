// An out-of-tree transport under the full battery: the user's adapter (loopback_adapter.h),
// instantiated once.
#include "conformance.h"
#include "loopback_adapter.h"

IPCH_INSTANTIATE_CONFORMANCE(Conformance, ::user::LoopbackAdapter);
