// What every text grammar's fuzz target checks (fault plans, toxics specs): a refusal names what
// it refused and leaves the output as it was; an accepted value is sane, and its canonical text
// parses back to the same value and formats to the same text again.
#pragma once

#include <cstdlib>
#include <string>
#include <string_view>

namespace ipch::fuzzing {

inline void Require(bool ok) {
  if (!ok) std::abort();
}

// parse(text, &value, &error) -> bool; format(value) -> std::string; same(a, b) -> bool;
// sane(value) -> bool. `untouched` is what the output holds before the parse.
template <class V, class Parse, class Format, class Same, class Sane>
void CheckGrammar(std::string_view text, const V& untouched, Parse parse, Format format, Same same, Sane sane) {
  V value = untouched;
  std::string error;
  if (!parse(text, &value, &error)) {
    Require(!error.empty());
    Require(same(value, untouched));
    return;
  }
  Require(sane(value));
  const std::string canonical = format(value);
  V again;
  std::string why;
  Require(parse(canonical, &again, &why));
  Require(same(again, value));
  Require(format(again) == canonical);
}

}  // namespace ipch::fuzzing
