// The ring core shared by the shared-memory transports (posix_shm, sysv_shm): one
// single-producer single-consumer byte ring per direction, variable-size records, wraparound of
// the payload at any byte offset.
//
// A record is an 8-byte header word at an 8-aligned position, then the payload, then padding to
// the next multiple of 8. The header word is the payload length in its low 32 bits and a tag
// derived from its position in the high 32 (HeaderWord): the consumer polls the header word at
// its own `head` in place, so one cache line carries both the "ready" signal and the start of
// the data, and no shared tail counter crosses CPUs per message. Zero means "nothing yet".
//
// Everything in shared memory is written by a peer we do not trust. The consumer validates
// every header word before it reads a payload byte (RecordLength: the tag must name this very
// position, the length must be at most MaxMessage); the producer validates every `head` it reads
// (CheckHead). A violation is Errc::Corrupt, never an out-of-bounds access.
//
// Memory ordering (the only synchronisation between the two ends):
//  - The producer first stores zero into the header word after the record (the next record's;
//    the producer keeps room for it), then copies the payload, then stores the record's header
//    word (PutRecord then PublishRecord). The consumer loads the header word and only then reads
//    the payload: the store/load pair is (at least) release/acquire, so the payload and the
//    zeroed next header are visible first. A record is published whole or not at all: a producer
//    killed mid-copy leaves the header word zero and its bytes are never read.
//  - Why the next header is zeroed first: a header position held bytes of an earlier lap
//    (a payload, any value), and a payload can hold a well-formed header word. The producer
//    clears it before it publishes the record in front of it, so when the consumer reaches a
//    position the word there is zero or the record written for this lap. The first header of a
//    fresh segment is zero because new segments are.
//  - The consumer copies a record out, then stores `head`; the producer loads `head` before it
//    reuses that space, so it never overwrites bytes still being read.
//  - Sleeping uses a 32-bit sequence word per direction (futex, process-shared) and a "waiting"
//    count. Waiter: waiting += 1; s = seq; recheck the condition; futex_wait(seq, s). Publisher:
//    store the header word or `head`; if waiting != 0 { seq += 1; futex_wake(seq) }. The
//    publishing store, the waiting increment, the publisher's waiting load and the waiter's
//    recheck are all seq_cst, so in their single total order either the store precedes the
//    recheck (the waiter sees it) or the increment precedes the publisher's load (it sees a
//    waiter, bumps `seq` after the waiter read it, and futex_wait returns at once or is woken).
//    No wake-up is lost, and in the hot path the publisher does one store and one load of a line
//    it rarely misses on.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <span>

#include "ipch/result.h"
#include "ipch/transport.h"

namespace ipch::shm {

inline constexpr uint32_t kRecordHeader = 8;  // one 64-bit word: length | tag << 32
inline constexpr uint32_t kRecordAlign = 8;   // records start at multiples of 8: header words are aligned

// Control block of one direction. The words each end writes sit in separate 128-byte blocks
// (two cache lines: the adjacent-line prefetcher pairs lines), so the two ends never write the
// same line in the hot path. Each end's "waiting" count has a line of its own inside the other
// end's block: read on every publish, written only when going to sleep, it stays cached on both
// sides instead of following the hot counter back and forth. The producer has no counter here:
// it publishes through the header words in the ring itself.
struct RingControl {
  alignas(128) std::atomic<uint32_t> data_seq;         // producer: +1 when waking; the consumer sleeps on it
  alignas(64) std::atomic<uint32_t> consumer_waiting;  // consumer: non-zero while it may sleep
  alignas(128) std::atomic<uint64_t> head;             // consumer: bytes consumed, monotonic
  std::atomic<uint32_t> space_seq;                     // consumer: +1 when waking; the producer sleeps on it
  alignas(64) std::atomic<uint32_t> producer_waiting;  // producer: non-zero while it may sleep
};
static_assert(sizeof(RingControl) == 256);
static_assert(std::atomic<uint64_t>::is_always_lock_free && std::atomic<uint32_t>::is_always_lock_free);

// Capacity rules: a power of two between these bounds (index = counter & (capacity - 1)).
inline constexpr uint32_t kMinCapacity = 4096;
inline constexpr uint32_t kMaxCapacity = 1u << 30;
inline bool ValidCapacity(uint64_t c) { return c >= kMinCapacity && c <= kMaxCapacity && (c & (c - 1)) == 0; }
// The largest payload: its record and the next record's header fill the ring exactly.
inline std::size_t MaxMessage(uint32_t capacity) { return capacity - 2 * kRecordHeader; }
// Bytes a record of `n` payload bytes takes in the ring, padding included.
inline uint64_t RecordSize(std::size_t n) { return (kRecordHeader + uint64_t{n} + kRecordAlign - 1) & ~uint64_t{kRecordAlign - 1}; }
// Free bytes the producer needs to put a record of `n` payload bytes: the record and the next header.
inline uint64_t RoomFor(std::size_t n) { return RecordSize(n) + kRecordHeader; }

// The header word of a record of `len` bytes at position `pos` (a multiple of 8). The tag is
// never zero, so no header word is.
inline uint32_t PositionTag(uint64_t pos) { return 0x80000000u | static_cast<uint32_t>(pos >> 3); }
inline uint64_t HeaderWord(uint64_t pos, uint32_t len) { return uint64_t{PositionTag(pos)} << 32 | len; }

// Copies with wraparound: `pos` is a counter (any value); the bytes go to/from pos mod capacity.
// A copy in of StreamingFrom() bytes or more goes by StreamingCopy.
void CopyIn(std::span<std::byte> ring, uint64_t pos, const std::byte* src, std::size_t n);
void CopyOut(std::span<const std::byte> ring, uint64_t pos, std::byte* dst, std::size_t n);

// A message at least as large as the CPU's L2 cache (1 MiB when it cannot be told) cannot stay
// in cache for the other end anyway. Copied with ordinary stores, each of its lines is first
// read for ownership from the CPU that last read it (the consumer, a lap ago): one cross-CPU
// round per line, and a 1 MiB stream ran at 6-9 GB/s here. StreamingCopy writes whole lines
// with non-temporal stores that skip that read (16-18 GB/s) and ends with a store fence, so the
// header word published after it cannot be seen first. Smaller copies stay ordinary: their
// lines reach the consumer from cache, which is faster than from memory.
std::size_t StreamingFrom();
void StreamingCopy(std::byte* dst, const std::byte* src, std::size_t n);

// The header word at `pos` (a multiple of 8) of a ring in shared memory, loaded or stored
// atomically (seq_cst: the loads and stores of the wake protocol above). The ring's data must
// be 8-aligned.
inline std::atomic_ref<uint64_t> HeaderRef(std::span<const std::byte> ring, uint64_t pos) {
  auto* p = const_cast<std::byte*>(ring.data()) + (pos & (ring.size() - 1));
  return std::atomic_ref<uint64_t>(*reinterpret_cast<uint64_t*>(p));
}
inline uint64_t LoadHeader(std::span<const std::byte> ring, uint64_t pos) {
  return HeaderRef(ring, pos).load(std::memory_order_seq_cst);
}

// The producer's two steps, room checked by the caller (RoomFor): PutRecord zeroes the next
// header and copies the payload; PublishRecord stores the header word, and the consumer may read
// the record from then on. Returns the new tail.
uint64_t PutRecord(std::span<std::byte> ring, uint64_t tail, ByteView msg);
void PublishRecord(std::span<std::byte> ring, uint64_t tail, std::size_t len);

// The consumer's check of a non-zero header word read at `head`, as a pure function (exposed
// for the fuzz target): the payload length, or Corrupt if the tag is not this position's or the
// length exceeds MaxMessage.
Result<uint32_t> RecordLength(uint64_t head, uint64_t word, std::size_t capacity);
// Checks the header word `word` read at `head` and copies the record's payload into `out`
// (resized to it); returns the new head. Precondition: word != 0.
Result<uint64_t> TakeRecord(std::span<const std::byte> ring, uint64_t head, uint64_t word, Bytes& out);
// The producer's check of a `head` it read: not past what it published, not behind what it saw,
// at a record boundary.
Status CheckHead(uint64_t last_head, uint64_t head, uint64_t tail, std::size_t capacity);

// Process-shared futex on a word in shared memory. Returns when woken, when the word no
// longer equals `expected`, on a signal, or after `timeout`.
void FutexWait(std::atomic<uint32_t>& word, uint32_t expected, std::chrono::nanoseconds timeout);
void FutexWake(std::atomic<uint32_t>& word);

// A short spin before sleeping, adapted per direction: grows while waits end during the spin,
// shrinks when they do not, so an idle end falls asleep quickly and a busy one rarely sleeps.
class Spinner {
 public:
  template <class Ready>
  bool Spin(Ready ready) {
    const uint32_t budget = budget_us_.load(std::memory_order_relaxed);
    // The clock is read every 64 rounds, first after 64 of them: a wait that ends sooner (a
    // round trip's) reads no clock at all, and the budget starts counting from there.
    std::chrono::steady_clock::time_point until{};
    for (uint32_t i = 1;; ++i) {
      if (ready()) {
        budget_us_.store(budget * 2 > kMaxUs ? kMaxUs : budget * 2, std::memory_order_relaxed);
        return true;
      }
      Relax();
      if ((i & 63) == 0) {
        const auto now = std::chrono::steady_clock::now();
        if (i == 64) {
          until = now + std::chrono::microseconds(budget);
        } else if (now >= until) {
          break;
        }
      }
    }
    budget_us_.store(budget / 2 < kMinUs ? kMinUs : budget / 2, std::memory_order_relaxed);
    return false;
  }
  static void Relax() {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    asm volatile("yield");
#endif
  }

 private:
  static constexpr uint32_t kMinUs = 2, kMaxUs = 64;
  std::atomic<uint32_t> budget_us_{16};  // a hint: threads sharing a listener may race on it harmlessly
};

}  // namespace ipch::shm
