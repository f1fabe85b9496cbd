// Small wire helpers shared by the transports: little-endian u32 fields, hex names, and a
// random word for unique names (getrandom, never a file: no descriptor to run out of).
#pragma once

#include <sys/random.h>

#include <chrono>
#include <cstdint>
#include <string>

namespace ipch::wire {

inline void PutU32(unsigned char* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<unsigned char>(v >> (8 * i));
}
inline uint32_t GetU32(const unsigned char* p) {
  return uint32_t{p[0]} | uint32_t{p[1]} << 8 | uint32_t{p[2]} << 16 | uint32_t{p[3]} << 24;
}

// The low `digits` hex digits of `v`, zero-padded.
inline std::string Hex(uint64_t v, int digits) {
  static const char* k = "0123456789abcdef";
  std::string s(static_cast<std::size_t>(digits), '0');
  for (int i = digits - 1; i >= 0; --i, v >>= 4) s[static_cast<std::size_t>(i)] = k[v & 15];
  return s;
}

inline uint64_t RandomWord() {
  uint64_t r = 0;
  if (::getrandom(&r, sizeof r, GRND_NONBLOCK) != sizeof r) {
    r = static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count()) * 0x9e3779b97f4a7c15ull;
  }
  return r;
}

}  // namespace ipch::wire
