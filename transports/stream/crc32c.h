// CRC-32C (Castagnoli), the frame checksum of the stream transports. Uses the SSE4.2 crc32
// instruction when the CPU has it, a table otherwise; both give the same values.
#pragma once

#include <cstddef>
#include <cstdint>

namespace ipch {

// Extends `crc` (0 to start) over `n` bytes: Crc32c(b, n2, Crc32c(a, n1)) == CRC of a then b.
uint32_t Crc32c(const void* data, std::size_t n, uint32_t crc = 0);
// The table version, for tests that check both agree.
uint32_t Crc32cPortable(const void* data, std::size_t n, uint32_t crc = 0);

}  // namespace ipch
