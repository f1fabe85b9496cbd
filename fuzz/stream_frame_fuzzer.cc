// Fuzzes the stream frame decoder (StreamConnection::Receive) with hostile peer bytes. The
// first input byte picks how the rest is sliced into writes, so frames arrive split at every
// boundary. Invariants: no message above max_message_size; a failure (PeerClosed, Corrupt)
// is final and repeats the same code; nothing crashes or hangs.
#include <sys/socket.h>

#include <cstdint>
#include <cstdlib>

#include "transports/stream/stream_connection.h"

namespace {

constexpr std::size_t kMax = 4096;

void Require(bool ok) {
  if (!ok) std::abort();
}

// Receives everything that is ready; returns the final status (WouldBlock when drained).
ipch::Status Drain(ipch::StreamConnection& c, ipch::Deadline d) {
  ipch::Bytes out;
  for (;;) {
    ipch::Status st = c.Receive(out, d);
    if (!st.ok()) return st;
    Require(out.size() <= kMax);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0) return 0;
  ipch::StreamConnection conn(ipch::UniqueFd(sv[0]), ipch::UniqueFd(), kMax, true, "fuzz");
  ipch::UniqueFd peer(sv[1]);
  const std::size_t slice = 1 + data[0] % 64;
  ++data;
  --size;
  ipch::Status st;
  for (std::size_t off = 0; off < size && st.ok(); off += slice) {
    std::size_t n = std::min(slice, size - off);
    if (::send(peer.get(), data + off, n, MSG_NOSIGNAL) != static_cast<ssize_t>(n)) break;
    st = Drain(conn, ipch::Deadline::Expired());
    if (st.Is(ipch::Errc::WouldBlock)) st = ipch::Ok();
  }
  ::shutdown(peer.get(), SHUT_WR);
  if (st.ok()) st = Drain(conn, ipch::Deadline::After(std::chrono::seconds(5)));
  // After the peer's bytes end, only these outcomes are legal, and they are final.
  Require(st.Is(ipch::Errc::PeerClosed) || st.Is(ipch::Errc::Corrupt));
  ipch::Bytes out;
  Require(conn.Receive(out, ipch::Deadline::Expired()).error().code == st.error().code);
  return 0;
}
