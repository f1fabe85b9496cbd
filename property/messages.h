// Message generators shared by the codec properties. A message's bytes come from a generated
// seed, not byte by byte: rapidcheck draws kilobytes slowly, and a counterexample is read by its
// sizes, which still shrink. The empty and the largest message are drawn often.
#pragma once

#include <rapidcheck.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "ipch/transport.h"

namespace ipch::property {

// `size` bytes of a splitmix64 stream from `seed`: two messages differ, so one delivered in
// another's place, or shifted by a byte, does not compare equal.
inline Bytes PatternBytes(std::size_t size, uint64_t seed) {
  Bytes b(size);
  for (std::size_t i = 0; i < size; i += 8) {
    uint64_t x = (seed += 0x9e3779b97f4a7c15ULL);
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    x ^= x >> 31;
    std::memcpy(b.data() + i, &x, std::min<std::size_t>(8, size - i));
  }
  return b;
}

// A message size in [0, max]: mostly small, the boundaries often.
inline std::size_t GenMessageSize(std::size_t max) {
  return *rc::gen::weightedOneOf<std::size_t>({{2, rc::gen::just<std::size_t>(0)},
                                               {1, rc::gen::just(max)},
                                               {5, rc::gen::inRange<std::size_t>(1, std::min<std::size_t>(65, max))},
                                               {2, rc::gen::inRange<std::size_t>(0, max + 1)}});
}

inline Bytes GenMessage(std::size_t max) {
  const std::size_t size = GenMessageSize(max);
  return PatternBytes(size, *rc::gen::arbitrary<uint64_t>());
}

// Between `fewest` and `most` messages of at most `max` bytes each.
inline std::vector<Bytes> GenMessages(std::size_t max, std::size_t fewest, std::size_t most) {
  const auto n = *rc::gen::inRange<std::size_t>(fewest, most + 1);
  std::vector<Bytes> messages;
  for (std::size_t i = 0; i < n; ++i) messages.push_back(GenMessage(max));
  // A failure's log lists them: the generated values it shows are counts and seeds.
  std::string sizes;
  for (const Bytes& m : messages) sizes += (sizes.empty() ? "" : ", ") + std::to_string(m.size());
  RC_LOG() << "message sizes: [" << sizes << "]\n";
  return messages;
}

// Why `got` is not `want`, for a counterexample ("" when they are equal).
inline std::string Mismatch(const std::vector<Bytes>& got, const std::vector<Bytes>& want) {
  for (std::size_t i = 0; i < std::min(got.size(), want.size()); ++i) {
    if (got[i] == want[i]) continue;
    std::size_t at = 0;
    while (at < got[i].size() && at < want[i].size() && got[i][at] == want[i][at]) ++at;
    return "message " + std::to_string(i) + ": got " + std::to_string(got[i].size()) + " bytes, want " +
           std::to_string(want[i].size()) + ", first difference at byte " + std::to_string(at);
  }
  if (got.size() != want.size()) {
    return "got " + std::to_string(got.size()) + " messages, want " + std::to_string(want.size());
  }
  return "";
}

}  // namespace ipch::property
