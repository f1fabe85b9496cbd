// Fuzzes the shared-memory consumer's validation (ipch::shm::TakeRecord / RecordLength) with a
// hostile producer: the input is the consumer's head counter, then the bytes of a 4 KiB ring.
// The consumer drains records as it does in a receive: it reads the header word at its head,
// stops at zero (nothing published), else checks and copies the record out, until it rejects
// one or has gone round the ring a few times. Invariants: it never reads outside the ring
// (ASan), a record never exceeds the maximum, the head only moves forward, by the record's size,
// and stays at a record boundary, and a rejection is always Corrupt.
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "transports/shm_ring/ring.h"

namespace {

void Require(bool ok) {
  if (!ok) std::abort();
}

alignas(64) std::byte g_ring[ipch::shm::kMinCapacity];

uint64_t Le64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = v << 8 | p[i];
  return v;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ipch::shm;
  if (size < 8) return 0;
  // The consumer's own counter: always at a record boundary.
  uint64_t head = Le64(data) & ~uint64_t{kRecordAlign - 1};
  // The ring is a global of exactly its capacity (ASan puts redzones around globals, so any
  // overrun is seen), refilled for each input: no allocation per input.
  std::memset(g_ring, 0, kMinCapacity);
  std::memcpy(g_ring, data + 8, std::min<std::size_t>(size - 8, kMinCapacity));
  std::span<const std::byte> view(g_ring, kMinCapacity);
  ipch::Bytes out;
  for (int i = 0; i < 4096; ++i) {
    const uint64_t word = LoadHeader(view, head);
    if (word == 0) break;
    auto next = TakeRecord(view, head, word, out);
    if (!next.ok()) {
      Require(next.Is(ipch::Errc::Corrupt));
      break;
    }
    Require(out.size() <= MaxMessage(kMinCapacity));
    Require(*next - head == RecordSize(out.size()));
    Require(*next % kRecordAlign == 0);
    head = *next;
  }
  return 0;
}
