// Fuzzes the shared-memory consumer's validation (ipch::shm::DecodeRecord / CheckTail) with a
// hostile producer: the input is the head and tail counters the consumer would see, then the
// bytes of a 4 KiB ring. The consumer drains records until it reaches the tail or rejects one.
// Invariants: it never reads outside the ring (ASan), a record never exceeds the maximum,
// the head only moves forward and never past the tail, and a rejection is always Corrupt.
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
  if (size < 16) return 0;
  uint64_t head = Le64(data);
  const uint64_t tail = Le64(data + 8);
  // The ring is a global of exactly its capacity (ASan puts redzones around globals, so any
  // overrun is seen), refilled for each input: no allocation per input.
  std::memset(g_ring, 0, kMinCapacity);
  std::memcpy(g_ring, data + 16, std::min<std::size_t>(size - 16, kMinCapacity));
  std::span<const std::byte> view(g_ring, kMinCapacity);
  ipch::Bytes out;
  for (int i = 0; i < 4096 && head != tail; ++i) {
    auto next = DecodeRecord(view, head, tail, out);
    if (!next.ok()) {
      Require(next.Is(ipch::Errc::Corrupt));
      break;
    }
    Require(out.size() <= MaxMessage(kMinCapacity));
    Require(*next - head == kRecordHeader + out.size());
    Require(tail - *next <= tail - head);  // forward, not past the tail
    head = *next;
  }
  return 0;
}
