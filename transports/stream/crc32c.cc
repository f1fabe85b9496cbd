#include "crc32c.h"

#include <array>
#include <cstring>

#if defined(__x86_64__)
#include <immintrin.h>
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

// Folding with carry-less multiplication (VPCLMULQDQ on 512-bit registers), for long inputs on
// CPUs that have it: twice the three-lane crc32 loop's rate here (50 against 25 GB/s). The message is a polynomial
// over GF(2), and its CRC depends only on it modulo P; so 128-bit blocks can be folded forward
// ("this block times x^D, plus the block D bits later") into accumulators that stay congruent
// to the message read so far, and the last accumulator is finished with the crc32 instruction.
//
// Bit order: CRC-32C is reflected, so the first byte's lowest bit is the highest power. In a
// 16-byte block loaded little-endian, bit b stands for x^(127-b): its low 64-bit half H holds
// the higher powers and its high half L the lower ones, block = H*x^64 + L. A carry-less product
// of two such reflected 64-bit values comes out one power high (times x), so the constant for
// "times x^k" is x^(k-1) mod P, placed reflected in a 64-bit lane (x^d at bit 63-d).

// x^n mod P, not reflected (bit d holds x^d); 0x1edc6f41 is P without its x^32 term.
uint32_t XPowModP(unsigned n) {
  uint32_t r = 1;
  for (unsigned i = 0; i < n; ++i) r = (r & 0x80000000u) ? (r << 1) ^ 0x1edc6f41u : r << 1;
  return r;
}
// A constant that multiplies a reflected 64-bit half by x^k.
uint64_t TimesXPow(unsigned k) {
  const uint32_t c = XPowModP(k - 1);
  uint64_t v = 0;
  for (int d = 0; d < 32; ++d) {
    if ((c >> d) & 1) v |= uint64_t{1} << (63 - d);
  }
  return v;
}
// Folding a block forward by `bits`: H (low half) by x^(64+bits), L (high half) by x^bits.
struct FoldBy {
  uint64_t h, l;
  explicit FoldBy(unsigned bits) : h(TimesXPow(64 + bits)), l(TimesXPow(bits)) {}
};
const FoldBy kFold2048(2048), kFold512(512), kFold128(128);

const bool kHaveVpclmul = [] {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("vpclmulqdq") &&
         __builtin_cpu_supports("sse4.2");
}();

#define IPCH_FOLD_TARGET __attribute__((target("avx512f,vpclmulqdq,pclmul,sse4.2")))

IPCH_FOLD_TARGET inline __m512i Fold512(__m512i acc, __m512i k, __m512i next) {
  return _mm512_ternarylogic_epi64(_mm512_clmulepi64_epi128(acc, k, 0x00), _mm512_clmulepi64_epi128(acc, k, 0x11),
                                   next, 0x96);  // three-way xor
}
IPCH_FOLD_TARGET inline __m128i Fold128(__m128i acc, __m128i k, __m128i next) {
  return _mm_xor_si128(_mm_xor_si128(_mm_clmulepi64_si128(acc, k, 0x00), _mm_clmulepi64_si128(acc, k, 0x11)), next);
}

// The constants in every 128-bit lane: H's low, L's high.
IPCH_FOLD_TARGET inline __m512i Lanes(const FoldBy& k) {
  const auto h = static_cast<long long>(k.h), l = static_cast<long long>(k.l);
  return _mm512_set_epi64(l, h, l, h, l, h, l, h);
}

// `c` is the running state (not inverted); n >= 256.
IPCH_FOLD_TARGET uint32_t Crc32cFold(const unsigned char* p, std::size_t n, uint32_t c) {
  const __m512i k2048 = Lanes(kFold2048), k512 = Lanes(kFold512);
  const __m128i k128 = _mm_set_epi64x(static_cast<long long>(kFold128.l), static_cast<long long>(kFold128.h));
  // The state joins the message: xored into its first four bytes, then the CRC starts from 0.
  __m512i a0 = _mm512_xor_si512(_mm512_loadu_si512(p), _mm512_set_epi64(0, 0, 0, 0, 0, 0, 0, c));
  __m512i a1 = _mm512_loadu_si512(p + 64), a2 = _mm512_loadu_si512(p + 128), a3 = _mm512_loadu_si512(p + 192);
  p += 256;
  n -= 256;
  for (; n >= 256; p += 256, n -= 256) {  // four accumulators, each lane folded 256 bytes on
    a0 = Fold512(a0, k2048, _mm512_loadu_si512(p));
    a1 = Fold512(a1, k2048, _mm512_loadu_si512(p + 64));
    a2 = Fold512(a2, k2048, _mm512_loadu_si512(p + 128));
    a3 = Fold512(a3, k2048, _mm512_loadu_si512(p + 192));
  }
  __m512i a = Fold512(Fold512(Fold512(a0, k512, a1), k512, a2), k512, a3);
  for (; n >= 64; p += 64, n -= 64) a = Fold512(a, k512, _mm512_loadu_si512(p));
  // The four lanes into one, by way of memory (GCC 12's lane-extract intrinsics trip -Wuninitialized).
  alignas(64) long long four[8];
  _mm512_store_si512(four, a);
  __m128i b = _mm_load_si128(reinterpret_cast<const __m128i*>(four));
  for (int i = 1; i < 4; ++i) b = Fold128(b, k128, _mm_load_si128(reinterpret_cast<const __m128i*>(four + 2 * i)));
  for (; n >= 16; p += 16, n -= 16) b = Fold128(b, k128, _mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  // The accumulator is congruent to the message so far: its CRC from 0 is the message's.
  uint64_t crc = _mm_crc32_u64(0, static_cast<uint64_t>(_mm_cvtsi128_si64(b)));
  crc = _mm_crc32_u64(crc, static_cast<uint64_t>(_mm_extract_epi64(b, 1)));
  auto c32 = static_cast<uint32_t>(crc);
  for (; n > 0; --n, ++p) c32 = _mm_crc32_u8(c32, *p);
  return c32;
}
constexpr std::size_t kFoldFrom = 256;
#undef IPCH_FOLD_TARGET
#endif

}  // namespace

uint32_t Crc32cPortable(const void* data, std::size_t n, uint32_t crc) {
  const auto* p = static_cast<const unsigned char*>(data);
  uint32_t c = ~crc;
  for (std::size_t i = 0; i < n; ++i) c = kTable[(c ^ p[i]) & 0xff] ^ (c >> 8);
  return ~c;
}

bool Crc32cHas(Crc32cWay way) {
#if defined(__x86_64__)
  if (way == Crc32cWay::kInstruction) return kHaveSse42;
  if (way == Crc32cWay::kFolding) return kHaveVpclmul;
#endif
  return way == Crc32cWay::kTable;
}

uint32_t Crc32cBy(Crc32cWay way, const void* data, std::size_t n, uint32_t crc) {
  const auto* p = static_cast<const unsigned char*>(data);
#if defined(__x86_64__)
  if (way == Crc32cWay::kFolding && kHaveVpclmul && n >= kFoldFrom) return ~Crc32cFold(p, n, ~crc);
  if (way != Crc32cWay::kTable && kHaveSse42) return Crc32cHw(p, n, crc);
#endif
  return Crc32cPortable(p, n, crc);
}

uint32_t Crc32c(const void* data, std::size_t n, uint32_t crc) { return Crc32cBy(Crc32cWay::kFolding, data, n, crc); }

}  // namespace ipch
