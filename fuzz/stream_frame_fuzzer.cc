// Fuzzes the stream frame decoder (StreamConnection::Receive) with hostile peer bytes. The
// first input byte picks how the peer's bytes are sliced into writes (1 to 64 bytes, or 1/256th
// of the stream if that is more), so frames arrive split at every boundary. The rest is a list of records, so that the fuzzer gets past the checksums:
//   [op u8][n u8][n bytes]   op & 3 == 0: the n bytes raw; 1: a well-formed frame around them;
//                            2: that frame with bit (op >> 2) of byte n/2 flipped; 3: a header
//                            announcing n * 37 bytes followed by the n bytes.
// Invariants: a message handed over is one a record framed intact (never a damaged one), no
// message above max_message_size; a failure (PeerClosed, Corrupt) is final and repeats the
// same code; nothing crashes or hangs.
#include <sys/socket.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "transports/stream/stream_connection.h"

namespace {

constexpr std::size_t kMax = 4096;

void Require(bool ok) {
  if (!ok) std::abort();
}

// Receives everything that is ready into `got`; returns the final status (WouldBlock when drained).
ipch::Status Drain(ipch::StreamConnection& c, ipch::Deadline d, std::vector<ipch::Bytes>* got) {
  ipch::Bytes out;
  for (;;) {
    ipch::Status st = c.Receive(out, d);
    if (!st.ok()) return st;
    Require(out.size() <= kMax);
    got->push_back(out);
  }
}

struct Stream {
  std::vector<uint8_t> bytes;
  // When every record is a frame (ops 1 and 2), exactly these payloads must arrive: the intact
  // frames before the first damaged one, which must then be Corrupt.
  bool checkable = true;
  bool damaged = false;
  std::vector<ipch::Bytes> expected;
};

// The peer's byte stream for the records in [data, data + size).
Stream Build(const uint8_t* data, std::size_t size) {
  Stream s;
  for (std::size_t i = 0; i + 2 <= size;) {
    const uint8_t op = data[i];
    const std::size_t n = std::min<std::size_t>(data[i + 1], size - i - 2);
    const uint8_t* body = data + i + 2;
    i += 2 + n;
    const ipch::ByteView payload(reinterpret_cast<const std::byte*>(body), n);
    if ((op & 3) == 0 || (op & 3) == 3) s.checkable = false;
    if ((op & 3) == 0) {
      s.bytes.insert(s.bytes.end(), body, body + n);
      continue;
    }
    const uint32_t announced = (op & 3) == 3 ? static_cast<uint32_t>(n * 37) : static_cast<uint32_t>(n);
    const ipch::Bytes h = ipch::StreamConnection::FrameHeader(announced, payload);
    const std::size_t start = s.bytes.size();
    for (std::byte b : h) s.bytes.push_back(static_cast<uint8_t>(b));
    s.bytes.insert(s.bytes.end(), body, body + n);
    if ((op & 3) == 2) {
      s.bytes[start + (h.size() + n) / 2] ^= static_cast<uint8_t>(1u << ((op >> 2) % 8));
      s.damaged = true;
    } else if ((op & 3) == 1 && !s.damaged) {
      s.expected.emplace_back(payload.begin(), payload.end());
    }
  }
  return s;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const Stream stream = Build(data + 1, size - 1);
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0) return 0;
  ipch::StreamConnection conn(ipch::UniqueFd(sv[0]), ipch::UniqueFd(), kMax, true, "fuzz");
  ipch::UniqueFd peer(sv[1]);
  // At most 256 writes per input: a long stream in 1-byte writes would cost thousands of calls
  // for boundaries the first few hundred bytes already show.
  const std::size_t slice = std::max<std::size_t>(1 + data[0] % 64, (stream.bytes.size() + 255) / 256);
  const uint8_t* bytes = stream.bytes.data();
  const std::size_t n_bytes = stream.bytes.size();
  std::vector<ipch::Bytes> got;
  ipch::Status st;
  for (std::size_t off = 0; off < n_bytes && st.ok(); off += slice) {
    std::size_t n = std::min(slice, n_bytes - off);
    if (::send(peer.get(), bytes + off, n, MSG_NOSIGNAL) != static_cast<ssize_t>(n)) break;
    st = Drain(conn, ipch::Deadline::Expired(), &got);
    if (st.Is(ipch::Errc::WouldBlock)) st = ipch::Ok();
  }
  ::shutdown(peer.get(), SHUT_WR);
  if (st.ok()) st = Drain(conn, ipch::Deadline::After(std::chrono::seconds(5)), &got);
  // After the peer's bytes end, only these outcomes are legal, and they are final.
  Require(st.Is(ipch::Errc::PeerClosed) || st.Is(ipch::Errc::Corrupt));
  ipch::Bytes out;
  Require(conn.Receive(out, ipch::Deadline::Expired()).error().code == st.error().code);
  if (stream.checkable) {
    Require(got == stream.expected);
    Require(st.Is(stream.damaged ? ipch::Errc::Corrupt : ipch::Errc::PeerClosed));
  }
  return 0;
}
