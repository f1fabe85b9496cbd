// JSON text without a JSON library (the testing library is installed with the package and
// keeps its dependencies to GoogleTest): a string literal, always valid UTF-8.
#pragma once

#include <string>
#include <string_view>

namespace ipch::testing {

// `s` as a quoted JSON string. Control characters are escaped; bytes that are not well-formed
// UTF-8 (a test may print a hostile peer's bytes) become U+FFFD, so any JSON reader accepts it.
std::string JsonString(std::string_view s);

}  // namespace ipch::testing
