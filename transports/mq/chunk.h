// Messages over kernel message queues (SysV and POSIX), which cap one queue message at a few
// KiB by default (kernel.msgmax, fs.mqueue.msgsize_max: 8192). A transport message is sent as
// one or more chunks, each a queue message of a 16-byte header and up to the queue's limit of
// payload:
//   u16 magic "MQ" | u8 kind | u8 reserved | u32 sequence | u32 message length | u32 offset
// (little-endian). One writer per direction keeps a message's chunks contiguous and in order.
// The receiver checks every field against what it expects next (sequence, offset, length), so a
// lost, repeated, reordered or foreign chunk is Corrupt, never a wrong message.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "ipch/transport.h"

namespace ipch::mq {

enum class ChunkKind : uint8_t {
  kData = 1,  // part of a message
  kFin = 2,   // the sender closed: nothing follows
};

inline constexpr std::size_t kChunkHeaderSize = 16;

struct ChunkHeader {
  ChunkKind kind = ChunkKind::kData;
  uint32_t seq = 0;
  uint32_t length = 0;  // of the whole message
  uint32_t offset = 0;  // of this chunk's payload in the message
};

void EncodeChunkHeader(const ChunkHeader& h, unsigned char out[kChunkHeaderSize]);

// Splits outgoing messages into chunks with consecutive sequence numbers.
class Chunker {
 public:
  // The header for the chunk of `msg_size` bytes starting at `offset` (payload up to
  // `max_payload` bytes); returns that chunk's payload length. The sequence number moves on
  // only with Sent(): a chunk the queue refused is encoded again with the same number.
  std::size_t Next(std::size_t msg_size, std::size_t offset, std::size_t max_payload,
                   unsigned char out[kChunkHeaderSize]);
  void Fin(unsigned char out[kChunkHeaderSize]);
  void Sent() { ++seq_; }

 private:
  uint32_t seq_ = 0;
};

// The chunks (header and payload, at most `chunk_size` bytes each) a fresh sender puts for
// `messages`, in order, sizes unchecked. Hostile-peer tests start from these.
std::vector<Bytes> EncodeMessages(const std::vector<Bytes>& messages, std::size_t chunk_size);

// Puts incoming chunks back together. Feed returns Ok with `done` set when a message is
// complete (it is then in `message()`), Ok with `fin` set on the peer's FIN, or Corrupt.
class Reassembler {
 public:
  explicit Reassembler(std::size_t max_message) : max_(max_message) {}
  Status Feed(const unsigned char* chunk, std::size_t n, bool* done, bool* fin);
  Bytes& message() { return msg_; }
  bool mid_message() const { return have_ > 0 || in_message_; }

 private:
  std::size_t max_;
  uint32_t seq_ = 0;
  bool in_message_ = false;
  std::size_t have_ = 0;
  Bytes msg_;
};

}  // namespace ipch::mq
