#include "chunk.h"

#include <algorithm>
#include <cstring>

#include "../stream/wire.h"

namespace ipch::mq {
namespace {

constexpr uint16_t kMagic = 0x514d;  // "MQ" read as little-endian

using wire::GetU32;
using wire::PutU32;

}  // namespace

void EncodeChunkHeader(const ChunkHeader& h, unsigned char out[kChunkHeaderSize]) {
  out[0] = kMagic & 0xff;
  out[1] = kMagic >> 8;
  out[2] = static_cast<unsigned char>(h.kind);
  out[3] = 0;
  PutU32(out + 4, h.seq);
  PutU32(out + 8, h.length);
  PutU32(out + 12, h.offset);
}

std::size_t Chunker::Next(std::size_t msg_size, std::size_t offset, std::size_t max_payload,
                          unsigned char out[kChunkHeaderSize]) {
  const std::size_t n = std::min(max_payload, msg_size - offset);
  EncodeChunkHeader({ChunkKind::kData, seq_, static_cast<uint32_t>(msg_size), static_cast<uint32_t>(offset)}, out);
  return n;
}

void Chunker::Fin(unsigned char out[kChunkHeaderSize]) { EncodeChunkHeader({ChunkKind::kFin, seq_, 0, 0}, out); }

std::vector<Bytes> EncodeMessages(const std::vector<Bytes>& messages, std::size_t chunk_size) {
  std::vector<Bytes> chunks;
  Chunker chunker;
  const std::size_t room = chunk_size - kChunkHeaderSize;
  for (const Bytes& m : messages) {
    std::size_t off = 0;
    do {
      unsigned char header[kChunkHeaderSize];
      const std::size_t n = chunker.Next(m.size(), off, room, header);
      Bytes& c = chunks.emplace_back(reinterpret_cast<const std::byte*>(header),
                                     reinterpret_cast<const std::byte*>(header) + kChunkHeaderSize);
      c.insert(c.end(), m.begin() + static_cast<std::ptrdiff_t>(off), m.begin() + static_cast<std::ptrdiff_t>(off + n));
      chunker.Sent();
      off += n;
    } while (off < m.size());
  }
  return chunks;
}

Status Reassembler::Feed(const unsigned char* c, std::size_t n, bool* done, bool* fin) {
  *done = *fin = false;
  if (n < kChunkHeaderSize)
    return MakeError(Errc::Corrupt, "queue message of " + std::to_string(n) + " bytes: no chunk header");
  if ((c[0] | c[1] << 8) != kMagic || c[3] != 0)
    return MakeError(Errc::Corrupt, "queue message without the chunk magic");
  const uint32_t seq = GetU32(c + 4), length = GetU32(c + 8), offset = GetU32(c + 12);
  if (seq != seq_) {
    return MakeError(Errc::Corrupt, "chunk " + std::to_string(seq) + " where " + std::to_string(seq_) +
                                        " was due (lost, repeated or foreign)");
  }
  const std::size_t payload = n - kChunkHeaderSize;
  switch (static_cast<ChunkKind>(c[2])) {
    case ChunkKind::kFin:
      if (length != 0 || offset != 0 || payload != 0) return MakeError(Errc::Corrupt, "malformed FIN chunk");
      ++seq_;
      *fin = true;  // a message in progress is dropped: its sender closed before finishing it
      in_message_ = false;
      have_ = 0;
      return Ok();
    case ChunkKind::kData:
      break;
    default:
      return MakeError(Errc::Corrupt, "unknown chunk kind " + std::to_string(c[2]));
  }
  if (length > max_) {
    return MakeError(Errc::Corrupt,
                     "peer announced " + std::to_string(length) + " bytes > max_message_size " + std::to_string(max_));
  }
  if (!in_message_) {
    if (offset != 0) return MakeError(Errc::Corrupt, "a message starts at offset " + std::to_string(offset));
    msg_.resize(length);
    have_ = 0;
    in_message_ = true;
  } else if (length != msg_.size() || offset != have_) {
    return MakeError(Errc::Corrupt, "chunk at offset " + std::to_string(offset) + " of " + std::to_string(length) +
                                        " where offset " + std::to_string(have_) + " of " +
                                        std::to_string(msg_.size()) + " was due");
  }
  if (payload > length - offset || (payload == 0 && length != 0)) {
    return MakeError(Errc::Corrupt, "chunk payload of " + std::to_string(payload) + " bytes does not fit");
  }
  ++seq_;
  if (payload > 0) std::memcpy(msg_.data() + have_, c + kChunkHeaderSize, payload);  // msg_ may be empty (null)
  have_ += payload;
  if (have_ == msg_.size()) {
    in_message_ = false;
    have_ = 0;
    *done = true;
  }
  return Ok();
}

}  // namespace ipch::mq
