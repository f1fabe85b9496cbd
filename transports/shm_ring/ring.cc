#include "ring.h"

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <ctime>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

// TSan does not see the streaming stores' intrinsics (GCC says so with __SANITIZE_THREAD__,
// clang with __has_feature).
#if defined(__SANITIZE_THREAD__)
#define IPCH_RING_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define IPCH_RING_TSAN 1
#endif
#endif

namespace ipch::shm {

std::size_t StreamingFrom() {
  static const std::size_t from = [] {
    const long l2 = ::sysconf(_SC_LEVEL2_CACHE_SIZE);
    return l2 > 0 ? static_cast<std::size_t>(l2) : std::size_t{1} << 20;
  }();
  return from;
}

void StreamingCopy(std::byte* dst, const std::byte* src, std::size_t n) {
#if defined(__SSE2__) && !defined(IPCH_RING_TSAN)
  // Up to 16-byte alignment of the destination with ordinary stores, then 64 bytes (a line)
  // per round with streaming stores, the rest with ordinary ones.
  std::size_t lead = (16 - (reinterpret_cast<uintptr_t>(dst) & 15)) & 15;
  if (lead > n) lead = n;
  std::memcpy(dst, src, lead);
  dst += lead, src += lead, n -= lead;
  for (; n >= 64; n -= 64, dst += 64, src += 64) {
    const __m128i a = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src));
    const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + 16));
    const __m128i c = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + 32));
    const __m128i d = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + 48));
    _mm_stream_si128(reinterpret_cast<__m128i*>(dst), a);
    _mm_stream_si128(reinterpret_cast<__m128i*>(dst + 16), b);
    _mm_stream_si128(reinterpret_cast<__m128i*>(dst + 32), c);
    _mm_stream_si128(reinterpret_cast<__m128i*>(dst + 48), d);
  }
  std::memcpy(dst, src, n);
  _mm_sfence();  // streaming stores are weakly ordered: all of them before anything after
#else
  // Under TSan, and off x86, an ordinary copy.
  std::memcpy(dst, src, n);
#endif
}

namespace {
void OrdinaryCopy(std::byte* dst, const std::byte* src, std::size_t n) { std::memcpy(dst, src, n); }
}  // namespace

void CopyIn(std::span<std::byte> ring, uint64_t pos, const std::byte* src, std::size_t n) {
  const std::size_t cap = ring.size();
  const std::size_t at = static_cast<std::size_t>(pos & (cap - 1));
  const std::size_t first = n < cap - at ? n : cap - at;
  void (*copy)(std::byte*, const std::byte*, std::size_t) = n >= StreamingFrom() ? StreamingCopy : OrdinaryCopy;
  if (first) copy(ring.data() + at, src, first);
  if (n > first) copy(ring.data(), src + first, n - first);
}

void CopyOut(std::span<const std::byte> ring, uint64_t pos, std::byte* dst, std::size_t n) {
  const std::size_t cap = ring.size();
  const std::size_t at = static_cast<std::size_t>(pos & (cap - 1));
  const std::size_t first = n < cap - at ? n : cap - at;
  if (first) std::memcpy(dst, ring.data() + at, first);
  if (n > first) std::memcpy(dst + first, ring.data(), n - first);
}

uint64_t PutRecord(std::span<std::byte> ring, uint64_t tail, ByteView msg) {
  const uint64_t next = tail + RecordSize(msg.size());
  // Relaxed: the release of this record's header word (PublishRecord) orders it before the consumer looks.
  HeaderRef(ring, next).store(0, std::memory_order_relaxed);
  CopyIn(ring, tail + kRecordHeader, msg.data(), msg.size());
  return next;
}

void PublishRecord(std::span<std::byte> ring, uint64_t tail, std::size_t len) {
  HeaderRef(ring, tail).store(HeaderWord(tail, static_cast<uint32_t>(len)), std::memory_order_seq_cst);
}

Result<uint32_t> RecordLength(uint64_t head, uint64_t word, std::size_t capacity) {
  const uint32_t tag = static_cast<uint32_t>(word >> 32);
  const uint32_t len = static_cast<uint32_t>(word);
  if (tag != PositionTag(head)) {
    char buf[96];
    std::snprintf(buf, sizeof buf, "shm ring: header word at position %llu has tag %08x, not %08x",
                  static_cast<unsigned long long>(head), tag, PositionTag(head));
    return MakeError(Errc::Corrupt, buf);
  }
  const std::size_t max = MaxMessage(static_cast<uint32_t>(capacity));
  if (len > max) {
    return MakeError(Errc::Corrupt,
                     "shm ring: record length " + std::to_string(len) + " exceeds the maximum " + std::to_string(max));
  }
  return len;
}

Result<uint64_t> TakeRecord(std::span<const std::byte> ring, uint64_t head, uint64_t word, Bytes& out) {
  Result<uint32_t> len = RecordLength(head, word, ring.size());
  if (!len.ok()) return std::move(len).error();
  out.resize(*len);
  CopyOut(ring, head + kRecordHeader, out.data(), *len);
  return head + RecordSize(*len);
}

Status CheckHead(uint64_t last_head, uint64_t head, uint64_t tail, std::size_t capacity) {
  if (head - last_head > tail - last_head) {
    return MakeError(Errc::Corrupt, "shm ring: consumer head " + std::to_string(head) + " is outside [" +
                                        std::to_string(last_head) + ", " + std::to_string(tail) + "]");
  }
  if (head % kRecordAlign != 0) {
    return MakeError(Errc::Corrupt, "shm ring: consumer head " + std::to_string(head) +
                                        " is not at a record boundary (a multiple of " +
                                        std::to_string(kRecordAlign) + ")");
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
