// Properties of the shared-memory ring core (transports/shm_ring/ring.h).
//  - Random interleavings of produce and consume on one ring follow a std::deque: capacities at
//    the minimum and small powers of two, counters starting anywhere (near 2^64 too), so records
//    wrap at every offset; sizes up to MaxMessage, exact fits and one-byte misses drawn often.
//  - The checks on what the other end published (CheckTail, CheckHead, DecodeRecord) accept
//    exactly the states an honest peer can publish, whatever the ring's bytes.
// The producer's half of a send lives inside shm.cc's Connection::Send, among its futex waits
// and peer-liveness checks; the test's Produce repeats its few lines over ring.h's documented
// layout (a little-endian u32 length, then the payload, copied with CopyIn; then the tail moves
// past both and is published).
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

using shm::kRecordHeader;
using shm::MaxMessage;

uint32_t GenCapacity() {
  return *rc::gen::element(uint32_t{shm::kMinCapacity}, 2 * shm::kMinCapacity, 4 * shm::kMinCapacity);
}

// A counter value: the counters are free-running u64 and only their difference and their value
// mod capacity matter, so any start is a state some ring reaches.
uint64_t GenCounter(uint32_t capacity) {
  return *rc::gen::weightedOneOf<uint64_t>(
      {{1, rc::gen::just<uint64_t>(0)},
       {3, rc::gen::inRange<uint64_t>(0, 2 * uint64_t{capacity})},
       {1, rc::gen::map(rc::gen::inRange<uint64_t>(1, 2 * uint64_t{capacity}), [](uint64_t k) { return -k; })},
       {1, rc::gen::arbitrary<uint64_t>()}});
}

struct Model {
  uint32_t capacity = 0;
  uint64_t start = 0;
  uint64_t produced = 0;  // bytes ever produced: the tail is start + produced
  std::deque<Bytes> records;
  std::size_t Used() const {
    std::size_t n = 0;
    for (const Bytes& r : records) n += kRecordHeader + r.size();
    return n;
  }
  bool Fits(std::size_t size) const { return Used() + kRecordHeader + size <= capacity; }
};

// One ring and both ends' counters, each end's own and what it published, as shm.cc keeps them.
struct Ring {
  explicit Ring(const Model& m)
      : data(new std::byte[m.capacity]),  // exactly the capacity: ASan sees any overrun
        capacity(m.capacity),
        tail(m.start),
        head_seen(m.start),
        published_tail(m.start),
        head(m.start),
        published_head(m.start) {
    const Bytes junk = PatternBytes(capacity, m.start);  // never-written bytes are not zeros
    std::copy(junk.begin(), junk.end(), data.get());
  }
  std::span<std::byte> bytes() { return {data.get(), capacity}; }

  std::unique_ptr<std::byte[]> data;
  uint32_t capacity;
  uint64_t tail, head_seen, published_tail;  // producer
  uint64_t head, published_head;             // consumer
};

// shm.cc's Send without its waiting: room is judged against the last head seen, and only when
// that is short is the published head read and checked. False: no room (Send would wait).
Result<bool> Produce(Ring& r, ByteView msg) {
  const uint64_t need = kRecordHeader + msg.size();
  if (r.capacity - (r.tail - r.head_seen) < need) {
    IPCH_RETURN_IF_ERROR(shm::CheckHead(r.head_seen, r.published_head, r.tail, r.capacity));
    r.head_seen = r.published_head;
    if (r.capacity - (r.tail - r.head_seen) < need) return false;
  }
  const uint32_t n = static_cast<uint32_t>(msg.size());
  const std::byte header[kRecordHeader] = {std::byte(n & 0xff), std::byte(n >> 8 & 0xff), std::byte(n >> 16 & 0xff),
                                           std::byte(n >> 24)};
  shm::CopyIn(r.bytes(), r.tail, header, kRecordHeader);
  shm::CopyIn(r.bytes(), r.tail + kRecordHeader, msg.data(), msg.size());
  r.tail += need;
  r.published_tail = r.tail;
  return true;
}

struct ProduceRecord : rc::state::Command<Model, Ring> {
  std::size_t size;
  uint64_t seed;
  explicit ProduceRecord(const Model& m) : seed(*rc::gen::arbitrary<uint64_t>()) {
    const std::size_t max = MaxMessage(m.capacity);
    const std::size_t free = m.capacity - m.Used();
    const std::size_t exact = free >= kRecordHeader ? free - kRecordHeader : 0;
    // The size after which the next record's header is split by the end of the ring.
    const uint64_t after_header = (m.start + m.produced + kRecordHeader) % m.capacity;
    const auto split_next = rc::gen::map(
        rc::gen::inRange<uint64_t>(1, kRecordHeader), [cap = uint64_t{m.capacity}, after_header](uint64_t k) {
          return static_cast<std::size_t>(std::min((2 * cap - k - after_header) % cap, cap - kRecordHeader));
        });
    size = *rc::gen::weightedOneOf<std::size_t>({{1, rc::gen::just<std::size_t>(0)},
                                                 {1, rc::gen::just(max)},
                                                 {1, rc::gen::just(max - 1)},
                                                 {3, rc::gen::just(exact)},                     // fills the ring
                                                 {2, rc::gen::just(std::min(exact + 1, max))},  // one byte too many
                                                 {2, split_next},
                                                 {3, rc::gen::inRange<std::size_t>(1, 65)},
                                                 {3, rc::gen::inRange<std::size_t>(0, max + 1)}});
  }
  void apply(Model& m) const override {
    if (!m.Fits(size)) return;
    m.records.push_back(PatternBytes(size, seed));
    m.produced += kRecordHeader + size;
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
    const uint64_t t = r.published_tail;
    if (m.records.empty()) {
      RC_ASSERT(t == r.head);
      return;
    }
    if (t == r.head) RC_FAIL("nothing published, " + std::to_string(m.records.size()) + " records expected");
    const Status tail_ok = shm::CheckTail(r.head, t, r.capacity);
    if (!tail_ok.ok()) RC_FAIL("the consumer refused the tail: " + tail_ok.error().ToString());
    Bytes out;
    Result<uint64_t> next = shm::DecodeRecord(r.bytes(), r.head, t, out);
    if (!next.ok()) RC_FAIL("the consumer refused the record: " + next.error().ToString());
    const Bytes& want = m.records.front();
    const std::string mismatch = Mismatch({out}, {want});
    if (!mismatch.empty()) RC_FAIL(mismatch + " (at ring offset " + std::to_string(r.head % r.capacity) + ")");
    RC_ASSERT(*next == r.head + kRecordHeader + want.size());
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

// tail - head for a state to check: in range, at its edges, just past them, or behind head.
uint64_t GenDistance(uint32_t capacity) {
  return *rc::gen::weightedOneOf<uint64_t>(
      {{2, rc::gen::inRange<uint64_t>(0, kRecordHeader + 2)},
       {3, rc::gen::inRange<uint64_t>(0, uint64_t{capacity} + 1)},
       {1, rc::gen::just<uint64_t>(capacity)},
       {1, rc::gen::just<uint64_t>(uint64_t{capacity} + 1)},
       {1, rc::gen::inRange<uint64_t>(uint64_t{capacity} + 1, uint64_t{1} << 40)},
       {1, rc::gen::map(rc::gen::inRange<uint64_t>(1, 2 * uint64_t{capacity}), [](uint64_t k) { return -k; })}});
}

RC_GTEST_PROP(ShmRingChecks, CheckTailAcceptsExactlyATailWithinCapacityOfHead, ()) {
  const uint32_t capacity = GenCapacity();
  const uint64_t head = GenCounter(capacity);
  const uint64_t distance = GenDistance(capacity);
  const Status st = shm::CheckTail(head, head + distance, capacity);
  // An honest producer publishes at most `capacity` bytes ahead of the consumer, never behind it.
  RC_ASSERT(st.ok() == (distance <= capacity));
  if (!st.ok()) RC_ASSERT(st.Is(Errc::Corrupt));
}

RC_GTEST_PROP(ShmRingChecks, CheckHeadAcceptsExactlyAHeadBetweenTheLastOneAndTheTail, ()) {
  const uint32_t capacity = GenCapacity();
  const uint64_t last_head = GenCounter(capacity);
  const auto published = *rc::gen::inRange<uint64_t>(0, uint64_t{capacity} + 1);  // the producer's own tail
  const uint64_t moved = *rc::gen::weightedOneOf<uint64_t>({{1, rc::gen::just<uint64_t>(0)},
                                                            {1, rc::gen::just(published)},
                                                            {1, rc::gen::just(published + 1)},
                                                            {3, rc::gen::inRange<uint64_t>(0, published + 1)},
                                                            {1, rc::gen::just(~uint64_t{0})},  // one byte backwards
                                                            {1, rc::gen::arbitrary<uint64_t>()}});
  const Status st = shm::CheckHead(last_head, last_head + moved, last_head + published, capacity);
  // An honest consumer only moves forward, and never past what was published.
  RC_ASSERT(st.ok() == (moved <= published));
  if (!st.ok()) RC_ASSERT(st.Is(Errc::Corrupt));
}

RC_GTEST_PROP(ShmRingChecks, DecodeRecordAcceptsOnlyARecordAProducerCouldHaveWritten, ()) {
  const uint32_t capacity = GenCapacity();
  Bytes ring = PatternBytes(capacity, *rc::gen::arbitrary<uint64_t>());
  const uint64_t head = GenCounter(capacity);
  const uint64_t avail = *rc::gen::distinctFrom(rc::gen::exec([&] { return GenDistance(capacity); }),
                                                uint64_t{0});  // DecodeRecord's precondition: tail != head
  const uint64_t tail = head + avail;
  const auto at = [&](uint64_t pos) -> std::byte& { return ring[pos % capacity]; };
  // Mostly a length chosen near the limits, written at head byte by byte (not with CopyIn);
  // else whatever the bytes say.
  if (*rc::gen::weightedOneOf<bool>({{2, rc::gen::just(true)}, {1, rc::gen::just(false)}})) {
    const uint64_t max = MaxMessage(capacity);
    const auto len =
        *rc::gen::weightedOneOf<uint64_t>({{1, rc::gen::just<uint64_t>(0)},
                                           {2, rc::gen::just(avail - kRecordHeader)},      // exactly what is published
                                           {2, rc::gen::just(avail - kRecordHeader + 1)},  // one byte more
                                           {1, rc::gen::just(max)},
                                           {1, rc::gen::just(max + 1)},
                                           {2, rc::gen::inRange<uint64_t>(0, max + 1)},
                                           {1, rc::gen::cast<uint64_t>(rc::gen::arbitrary<uint32_t>())}});
    for (int i = 0; i < 4; ++i) at(head + i) = std::byte(len >> (8 * i) & 0xff);
  }
  uint64_t len = 0;
  for (int i = 3; i >= 0; --i) len = len << 8 | static_cast<uint64_t>(at(head + i));

  Bytes out;
  Result<uint64_t> next = shm::DecodeRecord(ring, head, tail, out);
  // What a producer can have written at head: a header and a payload of at most MaxMessage,
  // both inside what it published, which is at most the capacity.
  const bool possible =
      avail <= capacity && avail >= kRecordHeader && len <= MaxMessage(capacity) && kRecordHeader + len <= avail;
  if (next.ok() != possible) {
    RC_FAIL(std::string(next.ok() ? "accepted" : "refused") + " a record of " + std::to_string(len) + " bytes with " +
            std::to_string(avail) + " bytes published in a ring of " + std::to_string(capacity) +
            (next.ok() ? "" : ": " + next.error().ToString()));
  }
  if (!next.ok()) {
    RC_ASSERT(next.Is(Errc::Corrupt));
    return;
  }
  RC_ASSERT(out.size() == len);
  RC_ASSERT(*next == head + kRecordHeader + len);
  for (std::size_t i = 0; i < out.size(); ++i) {
    if (out[i] != at(head + kRecordHeader + i)) RC_FAIL("payload byte " + std::to_string(i) + " is not the ring's");
  }
}

}  // namespace
}  // namespace ipch::property
