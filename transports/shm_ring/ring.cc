#include "ring.h"

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstring>
#include <ctime>

namespace ipch::shm {

void CopyIn(std::span<std::byte> ring, uint64_t pos, const std::byte* src, std::size_t n) {
  const std::size_t cap = ring.size();
  const std::size_t at = static_cast<std::size_t>(pos & (cap - 1));
  const std::size_t first = n < cap - at ? n : cap - at;
  if (first) std::memcpy(ring.data() + at, src, first);
  if (n > first) std::memcpy(ring.data(), src + first, n - first);
}

void CopyOut(std::span<const std::byte> ring, uint64_t pos, std::byte* dst, std::size_t n) {
  const std::size_t cap = ring.size();
  const std::size_t at = static_cast<std::size_t>(pos & (cap - 1));
  const std::size_t first = n < cap - at ? n : cap - at;
  if (first) std::memcpy(dst, ring.data() + at, first);
  if (n > first) std::memcpy(dst + first, ring.data(), n - first);
}

Status CheckTail(uint64_t head, uint64_t tail, std::size_t capacity) {
  // Unsigned difference: a tail behind head wraps to a huge value and fails like one too far ahead.
  if (tail - head > capacity) {
    return MakeError(Errc::Corrupt, "shm ring: published tail " + std::to_string(tail) + " is outside [" +
                                        std::to_string(head) + ", " + std::to_string(head + capacity) + "]");
  }
  return Ok();
}

Result<uint64_t> DecodeRecord(std::span<const std::byte> ring, uint64_t head, uint64_t tail, Bytes& out) {
  const std::size_t cap = ring.size();
  IPCH_RETURN_IF_ERROR(CheckTail(head, tail, cap));
  const uint64_t avail = tail - head;
  if (avail < kRecordHeader) {
    return MakeError(Errc::Corrupt, "shm ring: " + std::to_string(avail) + " published bytes cannot hold a header");
  }
  std::byte h[kRecordHeader];
  CopyOut(ring, head, h, kRecordHeader);
  const uint32_t len = static_cast<uint32_t>(h[0]) | static_cast<uint32_t>(h[1]) << 8 |
                       static_cast<uint32_t>(h[2]) << 16 | static_cast<uint32_t>(h[3]) << 24;
  if (len > MaxMessage(static_cast<uint32_t>(cap))) {
    return MakeError(Errc::Corrupt, "shm ring: record length " + std::to_string(len) + " exceeds the maximum " +
                                        std::to_string(MaxMessage(static_cast<uint32_t>(cap))));
  }
  if (kRecordHeader + uint64_t{len} > avail) {
    return MakeError(Errc::Corrupt, "shm ring: record of " + std::to_string(len) + " bytes but only " +
                                        std::to_string(avail - kRecordHeader) + " published");
  }
  out.resize(len);
  CopyOut(ring, head + kRecordHeader, out.data(), len);
  return head + kRecordHeader + len;
}

Status CheckHead(uint64_t last_head, uint64_t head, uint64_t tail, std::size_t capacity) {
  if (head - last_head > tail - last_head) {
    return MakeError(Errc::Corrupt, "shm ring: consumer head " + std::to_string(head) + " is outside [" +
                                        std::to_string(last_head) + ", " + std::to_string(tail) + "]");
  }
  (void)capacity;  // tail - last_head <= capacity holds by construction of the producer
  return Ok();
}

void FutexWait(std::atomic<uint32_t>& word, uint32_t expected, std::chrono::nanoseconds timeout) {
  if (timeout.count() <= 0) return;
  timespec ts{};
  ts.tv_sec = static_cast<time_t>(timeout.count() / 1000000000);
  ts.tv_nsec = static_cast<long>(timeout.count() % 1000000000);
  // Not FUTEX_PRIVATE_FLAG: the word is shared between processes. EINTR, EAGAIN and ETIMEDOUT
  // all mean "look again", which every caller does.
  ::syscall(SYS_futex, reinterpret_cast<uint32_t*>(&word), FUTEX_WAIT, expected, &ts, nullptr, 0);
}

void FutexWake(std::atomic<uint32_t>& word) {
  ::syscall(SYS_futex, reinterpret_cast<uint32_t*>(&word), FUTEX_WAKE, INT_MAX, nullptr, nullptr, 0);
}

}  // namespace ipch::shm
