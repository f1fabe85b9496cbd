// Fuzzes the stream-toxics spec parser (toxics::ParseSpec), which reads ipch_proxy's command
// line and the specs tests and users write.
// Invariants: a refusal names what it refused and leaves the output alone; an accepted spec has
// no negative duration and probabilities in [0, 1]; its canonical text (FormatSpec) parses back
// to exactly the same spec, and formats to the same text again.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "ipch/toxics.h"

namespace {
void Require(bool ok) {
  if (!ok) std::abort();
}

bool Sane(const ipch::toxics::Toxics& t) {
  using D = ipch::Clock::duration;
  return t.latency >= D::zero() && t.jitter >= D::zero() && t.slice_delay >= D::zero() &&
         t.stall_for >= D::zero() && t.flip >= 0.0 && t.flip <= 1.0;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ipch::toxics;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  Spec spec;
  spec.seed = 77;  // a refusal must not touch it
  std::string error;
  if (!ParseSpec(text, &spec, &error)) {
    Require(!error.empty());
    Require(spec == Spec{.up = {}, .down = {}, .seed = 77});
    return 0;
  }
  Require(Sane(spec.up) && Sane(spec.down));
  const std::string canonical = FormatSpec(spec);
  Spec again;
  std::string why;
  Require(ParseSpec(canonical, &again, &why));
  Require(again == spec);
  Require(FormatSpec(again) == canonical);
  return 0;
}
