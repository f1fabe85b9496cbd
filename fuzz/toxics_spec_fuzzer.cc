// Fuzzes the stream-toxics spec parser (toxics::ParseSpec), which reads ipch_proxy's command
// line and the specs tests and users write.
// Invariants: a refusal names what it refused and leaves the output alone; an accepted spec has
// no negative duration and probabilities in [0, 1]; its canonical text (FormatSpec) parses back
// to exactly the same spec, and formats to the same text again.
#include <cstdint>
#include <string>
#include <string_view>

#include "grammar_check.h"
#include "ipch/toxics.h"

namespace {
bool Sane(const ipch::toxics::Toxics& t) {
  using D = ipch::Clock::duration;
  return t.latency >= D::zero() && t.jitter >= D::zero() && t.slice_delay >= D::zero() &&
         t.stall_for >= D::zero() && t.flip >= 0.0 && t.flip <= 1.0;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ipch::toxics;
  ipch::fuzzing::CheckGrammar(
      std::string_view(reinterpret_cast<const char*>(data), size), Spec{.up = {}, .down = {}, .seed = 77}, ParseSpec,
      FormatSpec, [](const Spec& a, const Spec& b) { return a == b; },
      [](const Spec& s) { return Sane(s.up) && Sane(s.down); });
  return 0;
}
