// The toxics library's own threads (a proxy's, an HTTP interposer's) are the harness's: a fault
// plan or census armed for the transport under test must neither fault nor count their calls.
#pragma once

extern "C" void ipch_fault_exempt_thread() __attribute__((weak));

namespace ipch::toxics {

// SetThreadsFaultable's setting now: taken by each proxy as it starts.
bool ThreadsFaultable();
// Called first in each thread the library starts, with its proxy's setting. A weak reference:
// when the fault library is not loaded there is nothing to be exempt from.
void HarnessThread(bool faultable = ThreadsFaultable());

}  // namespace ipch::toxics
