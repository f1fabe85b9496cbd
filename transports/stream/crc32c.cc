#include "crc32c.h"

#include <array>
#include <cstring>

#if defined(__x86_64__)
#include <nmmintrin.h>
#endif

namespace ipch {
namespace {

constexpr uint32_t kPoly = 0x82f63b78u;  // reflected Castagnoli polynomial

constexpr std::array<uint32_t, 256> MakeTable() {
  std::array<uint32_t, 256> t{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ kPoly : c >> 1;
    t[i] = c;
  }
  return t;
}
constexpr auto kTable = MakeTable();

#if defined(__x86_64__)
// Three independent streams keep the crc32 instruction's pipeline full (its latency is 3 cycles,
// its throughput 1 per cycle); their CRCs are joined by "appending zeros" with precomputed
// GF(2) operators, as in Mark Adler's public-domain crc32c.c.
constexpr std::size_t kLong = 8192, kShort = 256;
using ZeroTable = std::array<std::array<uint32_t, 256>, 4>;

uint32_t Gf2Times(const uint32_t* mat, uint32_t vec) {
  uint32_t sum = 0;
  for (; vec; vec >>= 1, ++mat) {
    if (vec & 1) sum ^= *mat;
  }
  return sum;
}
void Gf2Square(uint32_t* square, const uint32_t* mat) {
  for (int n = 0; n < 32; ++n) square[n] = Gf2Times(mat, mat[n]);
}
// The operator that appends `len` zero bytes to a CRC, as four byte-indexed tables.
ZeroTable MakeZeros(std::size_t len) {
  uint32_t even[32], odd[32];
  odd[0] = kPoly;  // the operator for one zero bit
  for (int n = 1; n < 32; ++n) odd[n] = 1u << (n - 1);
  Gf2Square(even, odd);  // two zero bits
  Gf2Square(odd, even);  // four zero bits
  // Each square doubles the zeros: the first gives one zero byte, then two, four, ... len (a
  // power of two) bytes, ending in `even` or `odd`.
  for (;;) {
    Gf2Square(even, odd);
    len >>= 1;
    if (len == 0) {
      std::memcpy(odd, even, sizeof odd);
      break;
    }
    Gf2Square(odd, even);
    len >>= 1;
    if (len == 0) break;
  }
  ZeroTable t{};
  for (uint32_t n = 0; n < 256; ++n) {
    for (int k = 0; k < 4; ++k) t[k][n] = Gf2Times(odd, n << (8 * k));
  }
  return t;
}
uint32_t Shift(const ZeroTable& z, uint32_t crc) {
  return z[0][crc & 0xff] ^ z[1][(crc >> 8) & 0xff] ^ z[2][(crc >> 16) & 0xff] ^ z[3][crc >> 24];
}
const ZeroTable kZerosLong = MakeZeros(kLong);
const ZeroTable kZerosShort = MakeZeros(kShort);

__attribute__((target("sse4.2"))) uint64_t Lanes3(const unsigned char*& p, std::size_t& n, uint64_t c0,
                                                  std::size_t lane, const ZeroTable& zeros) {
  while (n >= 3 * lane) {
    uint64_t c1 = 0, c2 = 0;
    for (const unsigned char* end = p + lane; p < end; p += 8) {
      uint64_t w0, w1, w2;
      std::memcpy(&w0, p, 8);
      std::memcpy(&w1, p + lane, 8);
      std::memcpy(&w2, p + 2 * lane, 8);
      c0 = _mm_crc32_u64(c0, w0);
      c1 = _mm_crc32_u64(c1, w1);
      c2 = _mm_crc32_u64(c2, w2);
    }
    c0 = Shift(zeros, static_cast<uint32_t>(c0)) ^ c1;
    c0 = Shift(zeros, static_cast<uint32_t>(c0)) ^ c2;
    p += 2 * lane;
    n -= 3 * lane;
  }
  return c0;
}

__attribute__((target("sse4.2"))) uint32_t Crc32cHw(const unsigned char* p, std::size_t n, uint32_t crc) {
  uint64_t c = ~crc;
  c = Lanes3(p, n, c, kLong, kZerosLong);
  c = Lanes3(p, n, c, kShort, kZerosShort);
  for (; n >= 8; n -= 8, p += 8) {
    uint64_t w;
    std::memcpy(&w, p, 8);
    c = _mm_crc32_u64(c, w);
  }
  uint32_t c32 = static_cast<uint32_t>(c);
  for (; n > 0; --n, ++p) c32 = _mm_crc32_u8(c32, *p);
  return ~c32;
}
const bool kHaveSse42 = [] {
  __builtin_cpu_init();  // may run before libgcc's own constructor does it
  return __builtin_cpu_supports("sse4.2") != 0;
}();
#endif

}  // namespace

uint32_t Crc32cPortable(const void* data, std::size_t n, uint32_t crc) {
  const auto* p = static_cast<const unsigned char*>(data);
  uint32_t c = ~crc;
  for (std::size_t i = 0; i < n; ++i) c = kTable[(c ^ p[i]) & 0xff] ^ (c >> 8);
  return ~c;
}

uint32_t Crc32c(const void* data, std::size_t n, uint32_t crc) {
#if defined(__x86_64__)
  if (kHaveSse42) return Crc32cHw(static_cast<const unsigned char*>(data), n, crc);
#endif
  return Crc32cPortable(data, n, crc);
}

}  // namespace ipch
