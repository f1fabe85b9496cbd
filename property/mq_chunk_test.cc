// Properties of the message-queue chunk layer (transports/mq/chunk.h): messages chunked at any
// chunk size come back whole and in order from the Reassembler; a chunk lost, repeated, swapped
// with another, or slipped in from another sender's sequence is Corrupt at that very chunk, and
// every message completed before it arrives intact.
#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "property/messages.h"
#include "transports/mq/chunk.h"

namespace ipch::property {
namespace {

using mq::kChunkHeaderSize;

constexpr std::size_t kMax = 4096;

// From the smallest chunk that carries a byte up to one that holds the largest message whole.
std::size_t GenChunkSize() {
  return *rc::gen::weightedOneOf<std::size_t>({{2, rc::gen::just(kChunkHeaderSize + 1)},
                                               {3, rc::gen::inRange<std::size_t>(kChunkHeaderSize + 2, 129)},
                                               {3, rc::gen::inRange<std::size_t>(129, 2049)},
                                               {1, rc::gen::inRange<std::size_t>(2049, kChunkHeaderSize + kMax + 2)}});
}

Bytes Chunk(const mq::ChunkHeader& h, const Bytes& payload) {
  unsigned char header[kChunkHeaderSize];
  mq::EncodeChunkHeader(h, header);
  Bytes c(reinterpret_cast<const std::byte*>(header), reinterpret_cast<const std::byte*>(header) + kChunkHeaderSize);
  c.insert(c.end(), payload.begin(), payload.end());
  return c;
}

// The sender's chunks for `messages`, then its FIN: every damage to the data chunks has a chunk
// after it that shows it, as in a connection, which always ends with one.
std::vector<Bytes> Chunks(const std::vector<Bytes>& messages, std::size_t chunk_size) {
  std::vector<Bytes> chunks = mq::EncodeMessages(messages, chunk_size);
  const auto fin_seq = static_cast<uint32_t>(chunks.size());
  chunks.push_back(Chunk({mq::ChunkKind::kFin, fin_seq, 0, 0}, {}));
  return chunks;
}

// How many of `messages` are complete within the first `n` chunks at `chunk_size`, counted
// from the sizes (a message takes ceil(size / room) chunks, an empty one one chunk).
std::size_t CompleteWithin(const std::vector<Bytes>& messages, std::size_t chunk_size, std::size_t n) {
  const std::size_t room = chunk_size - kChunkHeaderSize;
  std::size_t used = 0, complete = 0;
  for (const Bytes& m : messages) {
    used += m.empty() ? 1 : (m.size() + room - 1) / room;
    if (used > n) break;
    ++complete;
  }
  return complete;
}

struct Reassembled {
  std::vector<Bytes> messages;
  std::size_t accepted = 0;  // chunks fed before the first failure
  bool fin = false;
  Status end;
};

Reassembled Feed(const std::vector<Bytes>& chunks) {
  mq::Reassembler rx(kMax);
  Reassembled r;
  for (const Bytes& c : chunks) {
    bool done = false, fin = false;
    r.end = rx.Feed(reinterpret_cast<const unsigned char*>(c.data()), c.size(), &done, &fin);
    if (!r.end.ok()) break;
    ++r.accepted;
    if (done) r.messages.push_back(rx.message());
    if (fin) {
      r.fin = true;
      break;
    }
  }
  return r;
}

RC_GTEST_PROP(MqChunks, AnyChunkSizeReassemblesTheSameMessages, ()) {
  const auto messages = GenMessages(kMax, 0, 8);
  const std::size_t chunk_size = GenChunkSize();
  const std::vector<Bytes> chunks = Chunks(messages, chunk_size);
  for (const Bytes& c : chunks) RC_ASSERT(c.size() >= kChunkHeaderSize && c.size() <= chunk_size);
  const Reassembled r = Feed(chunks);
  if (!r.end.ok()) RC_FAIL("chunk " + std::to_string(r.accepted) + " refused: " + r.end.error().ToString());
  const std::string mismatch = Mismatch(r.messages, messages);
  if (!mismatch.empty()) RC_FAIL(mismatch);
  RC_ASSERT(r.fin);
  RC_ASSERT(r.accepted == chunks.size());
}

enum class Damage { kLost, kRepeated, kSwapped, kForeign };

const char* Name(Damage d) {
  switch (d) {
    case Damage::kLost:
      return "lost";
    case Damage::kRepeated:
      return "repeated";
    case Damage::kSwapped:
      return "swapped";
    case Damage::kForeign:
      return "foreign";
  }
  return "?";
}
std::ostream& operator<<(std::ostream& os, Damage d) { return os << Name(d); }

RC_GTEST_PROP(MqChunks, ALostRepeatedSwappedOrForeignChunkIsCorruptWhereItArrives, ()) {
  const auto messages = GenMessages(kMax, 1, 6);
  const std::size_t chunk_size = GenChunkSize();
  std::vector<Bytes> chunks = Chunks(messages, chunk_size);
  const std::size_t data = chunks.size() - 1;  // the FIN stays last and intact
  auto damage = *rc::gen::element(Damage::kLost, Damage::kRepeated, Damage::kSwapped, Damage::kForeign);
  if (damage == Damage::kSwapped && data < 2) damage = Damage::kLost;
  // The position of the first chunk that is not the sender's.
  std::size_t first = 0;
  switch (damage) {
    case Damage::kLost:
      first = *rc::gen::inRange<std::size_t>(0, data);
      chunks.erase(chunks.begin() + static_cast<std::ptrdiff_t>(first));
      break;
    case Damage::kRepeated: {
      const auto i = *rc::gen::inRange<std::size_t>(0, data);
      first = *rc::gen::inRange<std::size_t>(i + 1, data + 1);  // somewhere after the original
      chunks.insert(chunks.begin() + static_cast<std::ptrdiff_t>(first), Bytes(chunks[i]));
      break;
    }
    case Damage::kSwapped: {
      first = *rc::gen::inRange<std::size_t>(0, data - 1);
      const auto j = *rc::gen::inRange<std::size_t>(first + 1, data);
      std::swap(chunks[first], chunks[j]);
      break;
    }
    case Damage::kForeign: {
      first = *rc::gen::inRange<std::size_t>(0, data + 1);
      // Another sender's chunk of a message of its own. Its sequence differs from the one due:
      // one that matched by chance would pass, as nothing in a chunk names its sender.
      const auto due = static_cast<uint32_t>(first);
      const uint32_t seq = *rc::gen::weightedOneOf<uint32_t>(
          {{3, rc::gen::map(rc::gen::element<uint32_t>(1, 2, 3, ~0u, ~1u), [due](uint32_t d) { return due + d; })},
           {1, rc::gen::distinctFrom(due)}});
      const auto length = static_cast<uint32_t>(GenMessageSize(kMax));
      const auto offset = *rc::gen::inRange<uint32_t>(0, length + 1);
      const Bytes payload = PatternBytes(std::min<std::size_t>(chunk_size - kChunkHeaderSize, length - offset),
                                         *rc::gen::arbitrary<uint64_t>());
      chunks.insert(chunks.begin() + static_cast<std::ptrdiff_t>(first),
                    Chunk({mq::ChunkKind::kData, seq, length, offset}, payload));
      break;
    }
  }
  const Reassembled r = Feed(chunks);
  const std::vector<Bytes> intact(
      messages.begin(), messages.begin() + static_cast<std::ptrdiff_t>(CompleteWithin(messages, chunk_size, first)));
  const std::string what = std::string("a ") + Name(damage) + " chunk at " + std::to_string(first);
  const std::string mismatch = Mismatch(r.messages, intact);
  if (!mismatch.empty()) RC_FAIL(what + ": " + mismatch);
  if (r.end.ok()) RC_FAIL(what + " was accepted (" + std::to_string(r.accepted) + " chunks accepted)");
  if (!r.end.Is(Errc::Corrupt)) RC_FAIL(what + " gave " + r.end.error().ToString() + ", want Corrupt");
  if (r.accepted != first) RC_FAIL(what + " was found only at chunk " + std::to_string(r.accepted));
}

}  // namespace
}  // namespace ipch::property
