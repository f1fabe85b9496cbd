// Properties of the shared-memory ring core (transports/shm_ring/ring.h).
//  - Random interleavings of produce and consume on one ring follow a std::deque: capacities at
//    the minimum and small powers of two, counters starting anywhere (near 2^64 too), so records
//    and their payloads wrap at every offset; sizes up to MaxMessage, exact fits and one-byte
//    misses drawn often; the ring's never-written bytes are junk, never zeros, so a stale byte
//    read as a header would show. When the model holds nothing, the consumer must see zero.
//  - The checks on what the other end published (RecordLength / TakeRecord, CheckHead) accept
//    exactly the states an honest peer can publish, whatever the ring's bytes.
// The producer's writes are ring.h's PutRecord and PublishRecord, as in shm.cc's Send; the room
// check around them repeats Send's few lines (shm.cc keeps it among its futex waits).
#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>
#include <rapidcheck/state.h>

#include <algorithm>
#include <cstdint>
#include <deque>
#include <memory>
#include <span>
#include <string>

#include "property/messages.h"
#include "transports/shm_ring/ring.h"

namespace ipch::property {
namespace {

using shm::MaxMessage;
using shm::RecordSize;
using shm::RoomFor;

uint32_t GenCapacity() {
  return *rc::gen::element(uint32_t{shm::kMinCapacity}, 2 * shm::kMinCapacity, 4 * shm::kMinCapacity);
}

// A counter value at a record boundary: the counters are free-running u64 and only their
// difference and their value mod capacity matter, so any multiple of 8 is a state some ring reaches.
uint64_t GenCounter(uint32_t capacity) {
  const uint64_t c = *rc::gen::weightedOneOf<uint64_t>(
      {{1, rc::gen::just<uint64_t>(0)},
       {3, rc::gen::inRange<uint64_t>(0, 2 * uint64_t{capacity})},
       {1, rc::gen::map(rc::gen::inRange<uint64_t>(1, 2 * uint64_t{capacity}), [](uint64_t k) { return -k; })},
       {1, rc::gen::arbitrary<uint64_t>()}});
  return c & ~uint64_t{shm::kRecordAlign - 1};
}

struct Model {
  uint32_t capacity = 0;
  uint64_t start = 0;
  uint64_t produced = 0;  // bytes ever produced: the tail is start + produced
  std::deque<Bytes> records;
  uint64_t Used() const {
    uint64_t n = 0;
    for (const Bytes& r : records) n += RecordSize(r.size());
    return n;
  }
  bool Fits(std::size_t size) const { return size <= MaxMessage(capacity) && Used() + RoomFor(size) <= capacity; }
};

// One ring and both ends' counters, each end's own and what it published, as shm.cc keeps them.
struct Ring {
  explicit Ring(const Model& m)
      : data(new uint64_t[m.capacity / 8]),  // exactly the capacity (ASan sees any overrun), 8-aligned
        capacity(m.capacity),
        tail(m.start),
        head_seen(m.start),
        head(m.start),
        published_head(m.start) {
    const Bytes junk = PatternBytes(capacity, m.start);  // never-written bytes are not zeros
    std::copy(junk.begin(), junk.end(), bytes().begin());
    for (std::size_t i = 0; i < 8; ++i) bytes()[(m.start + i) % capacity] = std::byte{0};  // as in a new segment
  }
  std::span<std::byte> bytes() { return {reinterpret_cast<std::byte*>(data.get()), capacity}; }

  std::unique_ptr<uint64_t[]> data;
  uint32_t capacity;
  uint64_t tail, head_seen;     // producer
  uint64_t head, published_head;  // consumer
};

// shm.cc's Send without its waiting: room is judged against the last head seen, and only when
// that is short is the published head read and checked. False: no room (Send would wait).
Result<bool> Produce(Ring& r, ByteView msg) {
  const uint64_t need = RoomFor(msg.size());
  if (r.capacity - (r.tail - r.head_seen) < need) {
    IPCH_RETURN_IF_ERROR(shm::CheckHead(r.head_seen, r.published_head, r.tail, r.capacity));
    r.head_seen = r.published_head;
    if (r.capacity - (r.tail - r.head_seen) < need) return false;
  }
  const uint64_t next = shm::PutRecord(r.bytes(), r.tail, msg);
  shm::PublishRecord(r.bytes(), r.tail, msg.size());
  r.tail = next;
  return true;
}

struct ProduceRecord : rc::state::Command<Model, Ring> {
  std::size_t size;
  uint64_t seed;
  explicit ProduceRecord(const Model& m) : seed(*rc::gen::arbitrary<uint64_t>()) {
    const std::size_t max = MaxMessage(m.capacity);
    const uint64_t free = m.capacity - m.Used();
    // The largest payload that fits now: its record and the next header fill the free space.
    const std::size_t exact = free >= 2 * shm::kRecordHeader ? free - 2 * shm::kRecordHeader : 0;
    // A size whose payload ends k bytes (1..7) before the end of the ring: padding up to it.
    const uint64_t payload_at = (m.start + m.produced + shm::kRecordHeader) % m.capacity;
    const auto ends_near_wrap = rc::gen::map(
        rc::gen::inRange<uint64_t>(0, shm::kRecordAlign), [cap = uint64_t{m.capacity}, payload_at, max](uint64_t k) {
          return static_cast<std::size_t>(std::min<uint64_t>((2 * cap - k - payload_at) % cap, max));
        });
    size = *rc::gen::weightedOneOf<std::size_t>({{1, rc::gen::just<std::size_t>(0)},
                                                 {1, rc::gen::just(max)},
                                                 {1, rc::gen::just(max - 1)},
                                                 {3, rc::gen::just(exact)},                     // fills the ring
                                                 {2, rc::gen::just(std::min(exact + 1, max))},  // one byte too many
                                                 {2, ends_near_wrap},
                                                 {3, rc::gen::inRange<std::size_t>(1, 65)},
                                                 {3, rc::gen::inRange<std::size_t>(0, max + 1)}});
  }
  void apply(Model& m) const override {
    if (!m.Fits(size)) return;
    m.records.push_back(PatternBytes(size, seed));
    m.produced += RecordSize(size);
  }
  void run(const Model& m, Ring& r) const override {
    Result<bool> produced = Produce(r, PatternBytes(size, seed));
    if (!produced.ok()) RC_FAIL("the producer refused the head it read: " + produced.error().ToString());
    if (*produced != m.Fits(size)) {
      RC_FAIL(std::string(*produced ? "produced" : "refused") + " a record of " + std::to_string(size) +
              " bytes with " + std::to_string(m.capacity - m.Used()) + " of " + std::to_string(m.capacity) +
              " bytes free");
    }
  }
  void show(std::ostream& os) const override { os << "Produce(" << size << " bytes)"; }
};

struct ConsumeRecord : rc::state::Command<Model, Ring> {
  void apply(Model& m) const override {
    if (!m.records.empty()) m.records.pop_front();
  }
  void run(const Model& m, Ring& r) const override {
    const uint64_t word = shm::LoadHeader(r.bytes(), r.head);
    if (m.records.empty()) {
      if (word != 0) RC_FAIL("nothing was produced, yet the header word at the head is " + std::to_string(word));
      return;
    }
    if (word == 0) RC_FAIL("nothing published, " + std::to_string(m.records.size()) + " records expected");
    Bytes out;
    Result<uint64_t> next = shm::TakeRecord(r.bytes(), r.head, word, out);
    if (!next.ok()) RC_FAIL("the consumer refused the record: " + next.error().ToString());
    const Bytes& want = m.records.front();
    const std::string mismatch = Mismatch({out}, {want});
    if (!mismatch.empty()) RC_FAIL(mismatch + " (at ring offset " + std::to_string(r.head % r.capacity) + ")");
    RC_ASSERT(*next == r.head + RecordSize(want.size()));
    r.head = *next;
    r.published_head = r.head;
  }
  void show(std::ostream& os) const override { os << "Consume"; }
};

RC_GTEST_PROP(ShmRing, ProduceAndConsumeFollowAQueue, ()) {
  Model initial;
  initial.capacity = GenCapacity();
  initial.start = GenCounter(initial.capacity);
  Ring ring(initial);
  rc::state::check(initial, ring, rc::state::gen::execOneOfWithArgs<ProduceRecord, ConsumeRecord>());
}

RC_GTEST_PROP(ShmRingChecks, CheckHeadAcceptsExactlyAHeadBetweenTheLastOneAndTheTail, ()) {
  const uint32_t capacity = GenCapacity();
  const uint64_t last_head = GenCounter(capacity);
  const uint64_t published = GenCounter(capacity) % (uint64_t{capacity} + 8);  // the producer's own tail, ahead
  const uint64_t moved = *rc::gen::weightedOneOf<uint64_t>({{1, rc::gen::just<uint64_t>(0)},
                                                            {1, rc::gen::just(published)},
                                                            {1, rc::gen::just(published + 1)},
                                                            {1, rc::gen::just(published + 8)},
                                                            {3, rc::gen::inRange<uint64_t>(0, published + 1)},
                                                            {1, rc::gen::just(~uint64_t{0})},  // one byte backwards
                                                            {1, rc::gen::just(~uint64_t{7})},  // one record backwards
                                                            {1, rc::gen::arbitrary<uint64_t>()}});
  const Status st = shm::CheckHead(last_head, last_head + moved, last_head + published, capacity);
  // An honest consumer only moves forward, by whole records, and never past what was published.
  RC_ASSERT(st.ok() == (moved <= published && moved % shm::kRecordAlign == 0));
  if (!st.ok()) RC_ASSERT(st.Is(Errc::Corrupt));
}

RC_GTEST_PROP(ShmRingChecks, TakeRecordAcceptsOnlyTheHeaderAProducerWritesThere, ()) {
  const uint32_t capacity = GenCapacity();
  Bytes ring = PatternBytes(capacity, *rc::gen::arbitrary<uint64_t>());
  const uint64_t head = GenCounter(capacity);
  const uint64_t max = MaxMessage(capacity);
  const auto len = *rc::gen::weightedOneOf<uint64_t>({{1, rc::gen::just<uint64_t>(0)},
                                                      {1, rc::gen::just(max)},
                                                      {1, rc::gen::just(max + 1)},
                                                      {2, rc::gen::inRange<uint64_t>(0, max + 1)},
                                                      {1, rc::gen::cast<uint64_t>(rc::gen::arbitrary<uint32_t>())}});
  // Mostly the word a producer writes at `head`, or at a nearby position, or in another lap;
  // else whatever: never zero (the consumer only checks a word that is not).
  const uint64_t elsewhere = head + *rc::gen::element<uint64_t>(8, ~uint64_t{7}, capacity, -uint64_t{capacity},
                                                                uint64_t{capacity} << 29, uint64_t{capacity} << 32);
  const uint64_t word = *rc::gen::distinctFrom(
      rc::gen::weightedOneOf<uint64_t>({{4, rc::gen::just(shm::HeaderWord(head, static_cast<uint32_t>(len)))},
                                        {2, rc::gen::just(shm::HeaderWord(elsewhere, static_cast<uint32_t>(len)))},
                                        {1, rc::gen::arbitrary<uint64_t>()}}),
      uint64_t{0});
  const auto at = [&](uint64_t pos) -> std::byte& { return ring[pos % capacity]; };
  for (int i = 0; i < 8; ++i) at(head + i) = std::byte(word >> (8 * i) & 0xff);

  Bytes out;
  Result<uint64_t> next = shm::TakeRecord(ring, head, word, out);
  // What a producer can have written at head: the header word of this position and a length of
  // at most MaxMessage.
  const uint32_t claimed = static_cast<uint32_t>(word);
  const bool possible = word == shm::HeaderWord(head, claimed) && claimed <= max;
  if (next.ok() != possible) {
    RC_FAIL(std::string(next.ok() ? "accepted" : "refused") + " the word " + std::to_string(word) + " at " +
            std::to_string(head) + " in a ring of " + std::to_string(capacity) +
            (next.ok() ? "" : ": " + next.error().ToString()));
  }
  if (!next.ok()) {
    RC_ASSERT(next.Is(Errc::Corrupt));
    RC_ASSERT(out.empty());
    return;
  }
  RC_ASSERT(out.size() == claimed);
  RC_ASSERT(*next == head + RecordSize(claimed));
  for (std::size_t i = 0; i < out.size(); ++i) {
    if (out[i] != at(head + shm::kRecordHeader + i)) RC_FAIL("payload byte " + std::to_string(i) + " is not the ring's");
  }
}

}  // namespace
}  // namespace ipch::property
