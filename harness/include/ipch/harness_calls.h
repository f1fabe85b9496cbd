// The harness's own calls inside a case (a peer's control channel, a raw hostile write, a wait
// for a helper thread) are not the transport's: a HarnessCalls in scope keeps the calls this
// thread makes out of the fault library's census (ipch/fault.h), so the coverage map shows only
// what the transport called. Usable without linking the fault library (a weak reference).
#pragma once

extern "C" void ipch_fault_census_pause_thread(int delta) __attribute__((weak));

namespace ipch {

class HarnessCalls {
 public:
  HarnessCalls() {
    if (ipch_fault_census_pause_thread != nullptr) ipch_fault_census_pause_thread(1);
  }
  ~HarnessCalls() {
    if (ipch_fault_census_pause_thread != nullptr) ipch_fault_census_pause_thread(-1);
  }
  HarnessCalls(const HarnessCalls&) = delete;
  HarnessCalls& operator=(const HarnessCalls&) = delete;
};

}  // namespace ipch
