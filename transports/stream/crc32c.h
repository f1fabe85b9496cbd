// CRC-32C (Castagnoli), the frame checksum of the stream transports. Uses the SSE4.2 crc32
// instruction when the CPU has it, a table otherwise; both give the same values.
#pragma once

#include <cstddef>
#include <cstdint>

namespace ipch {

// Extends `crc` (0 to start) over `n` bytes: Crc32c(b, n2, Crc32c(a, n1)) == CRC of a then b.
// Uses the fastest way this CPU has (Crc32cBy, below).
uint32_t Crc32c(const void* data, std::size_t n, uint32_t crc = 0);
// The table version, for tests that check both agree.
uint32_t Crc32cPortable(const void* data, std::size_t n, uint32_t crc = 0);

// The ways to compute it, each alone, for tests that check they agree: the table; the crc32
// instruction in three interleaved lanes (SSE4.2); from 256 bytes on, folding with carry-less
// multiplication on 512-bit registers (AVX-512 VPCLMULQDQ), finished with the instruction.
enum class Crc32cWay { kTable, kInstruction, kFolding };
// False if this CPU cannot run `way`.
bool Crc32cHas(Crc32cWay way);
// `way` alone, or the next slower way this CPU has when it lacks `way` (kFolding, then
// kInstruction, then kTable; below 256 bytes kFolding is kInstruction). Crc32c is
// Crc32cBy(kFolding).
uint32_t Crc32cBy(Crc32cWay way, const void* data, std::size_t n, uint32_t crc = 0);

}  // namespace ipch
