// The ring core shared by the shared-memory transports (posix_shm, sysv_shm): one
// single-producer single-consumer byte ring per direction, variable-size records with a
// little-endian u32 length header, wraparound at any byte offset.
//
// Everything in shared memory is written by a peer we do not trust. The consumer keeps its own
// copy of `head` and validates every published `tail` and every record length before it reads a
// byte (CheckTail / DecodeRecord); the producer keeps its own `tail` and validates every `head`
// it reads (CheckHead). A violation is Errc::Corrupt, never an out-of-bounds access.
//
// Memory ordering (the only synchronisation between the two ends):
//  - The producer copies header and payload into the free region, then stores `tail`. The
//    consumer loads `tail` and only then reads the record: the store/load pair is (at least)
//    release/acquire, so the record bytes are visible first. A record is published whole or not
//    at all: a producer killed mid-copy leaves `tail` untouched and its bytes are never read.
//  - The consumer copies a record out, then stores `head`; the producer loads `head` before it
//    reuses that space, so it never overwrites bytes still being read.
//  - Sleeping uses a 32-bit sequence word per direction (futex, process-shared) and a "waiting"
//    count. Waiter: waiting += 1; s = seq; recheck the counter; futex_wait(seq, s). Publisher:
//    store the counter; if waiting != 0 { seq += 1; futex_wake(seq) }. The counter store, the
//    waiting increment, the publisher's waiting load and the waiter's recheck are all seq_cst,
//    so in their single total order either the store precedes the recheck (the waiter sees the
//    data) or the increment precedes the publisher's load (it sees a waiter, bumps `seq` after
//    the waiter read it, and futex_wait returns at once or is woken). No wake-up is lost, and
//    in the hot path the publisher does one store and one load of a line it rarely misses on.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <span>

#include "ipch/result.h"
#include "ipch/transport.h"

namespace ipch::shm {

inline constexpr uint32_t kRecordHeader = 4;  // little-endian u32 payload length

// Control block of one direction. Producer-written and consumer-written words sit in separate
// 128-byte blocks (two cache lines: the adjacent-line prefetcher pairs lines), so the two ends
// never write the same line in the hot path. Each end's "waiting" count has a line of its own
// inside the other end's block: read on every publish, written only when going to sleep, it
// stays cached on both sides instead of following the hot counter back and forth.
struct RingControl {
  alignas(128) std::atomic<uint64_t> tail;             // producer: bytes published, monotonic
  std::atomic<uint32_t> data_seq;                      // producer: +1 when waking; the consumer sleeps on it
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
inline std::size_t MaxMessage(uint32_t capacity) { return capacity - kRecordHeader; }

// Copies with wraparound: `pos` is a counter (any value); the bytes go to/from pos mod capacity.
void CopyIn(std::span<std::byte> ring, uint64_t pos, const std::byte* src, std::size_t n);
void CopyOut(std::span<const std::byte> ring, uint64_t pos, std::byte* dst, std::size_t n);

// The consumer's checks, as pure functions over what it read (exposed for the fuzz target).
// `head` is the consumer's own counter; `tail` what the producer published.
Status CheckTail(uint64_t head, uint64_t tail, std::size_t capacity);
// Decodes the record at `head` into `out` (resized to the payload) and returns the new head.
// Precondition: tail != head and CheckTail passed. Corrupt if the header or length is invalid.
Result<uint64_t> DecodeRecord(std::span<const std::byte> ring, uint64_t head, uint64_t tail, Bytes& out);
// The producer's check of a `head` it read: not past what it published, not behind what it saw.
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
    auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(budget);
    for (uint32_t i = 1;; ++i) {
      if (ready()) {
        budget_us_.store(budget * 2 > kMaxUs ? kMaxUs : budget * 2, std::memory_order_relaxed);
        return true;
      }
      Relax();
      if ((i & 63) == 0 && std::chrono::steady_clock::now() >= until) break;
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
