// Properties of the stream toxics grammar (ipch/toxics.h): every Spec the proxy can hold prints
// to a text that parses back to the same Spec, and the text is canonical (printing it again
// gives the same text). Seeded by ctest's RC_PARAMS like the transport model.
#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <string>

#include "ipch/toxics.h"

namespace ipch::toxics {
namespace {

// A duration the grammar can say: whole microseconds, at most an hour; often zero (absent).
Clock::duration GenDuration() {
  const auto us = *rc::gen::weightedOneOf<int64_t>({{2, rc::gen::just<int64_t>(0)},
                                                    {2, rc::gen::inRange<int64_t>(1, 1000)},
                                                    {1, rc::gen::element<int64_t>(1000, 1000000, 3600000000)},
                                                    {2, rc::gen::inRange<int64_t>(1, 3600000001)}});
  return std::chrono::microseconds(us);
}
uint64_t GenLimit() {
  return *rc::gen::weightedOneOf<uint64_t>({{3, rc::gen::just(kNever)},
                                            {2, rc::gen::inRange<uint64_t>(0, 100000)},
                                            {1, rc::gen::just(kNever - 1)}});
}
// A probability per byte: 0 (absent), 1, or any double in between, the tiny ones included.
double GenProbability() {
  return *rc::gen::weightedOneOf<double>(
      {{2, rc::gen::just(0.0)},
       {1, rc::gen::just(1.0)},
       {3, rc::gen::map(rc::gen::inRange<uint64_t>(1, uint64_t{1} << 53),
                        [](uint64_t n) { return static_cast<double>(n) / static_cast<double>(uint64_t{1} << 53); })},
       {2, rc::gen::map(rc::gen::inRange<int>(1, 1075), [](int e) { return std::ldexp(1.0, -e); })},
       // subnormals: the smallest a text can hold
       {1, rc::gen::map(rc::gen::inRange<uint64_t>(1, uint64_t{1} << 52),
                        [](uint64_t m) { return std::ldexp(static_cast<double>(m), -1074); })}});
}
Toxics GenToxics() {
  Toxics t;
  t.latency = GenDuration();
  t.jitter = GenDuration();
  t.rate = *rc::gen::weightedOneOf<uint64_t>({{2, rc::gen::just<uint64_t>(0)}, {1, rc::gen::inRange<uint64_t>(1, (uint64_t{1} << 40) + 1)}});
  t.slice = *rc::gen::weightedOneOf<std::size_t>({{2, rc::gen::just<std::size_t>(0)}, {1, rc::gen::inRange<std::size_t>(1, (1u << 20) + 1)}});
  t.slice_delay = GenDuration();
  t.close_after = GenLimit();
  t.reset_after = GenLimit();
  t.stall_after = GenLimit();
  t.stall_for = GenDuration();
  t.flip = GenProbability();
  t.flip_at = GenLimit();
  return t;
}

RC_GTEST_PROP(ToxicsGrammar, EverySpecPrintsToATextThatParsesBackToIt, ()) {
  Spec s;
  s.up = GenToxics();
  s.down = *rc::gen::element(0, 1, 2) == 0 ? s.up : GenToxics();
  s.seed = *rc::gen::arbitrary<uint64_t>();
  const std::string text = FormatSpec(s);
  Spec back;
  std::string error;
  if (!ParseSpec(text, &back, &error)) RC_FAIL("FormatSpec gave \"" + text + "\", which ParseSpec refuses: " + error);
  RC_ASSERT(back == s);
  RC_ASSERT(FormatSpec(back) == text);
}

}  // namespace
}  // namespace ipch::toxics
