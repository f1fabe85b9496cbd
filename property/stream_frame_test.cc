// Properties of the stream frame codec (transports/stream/stream_connection.h): messages framed
// and fed to the decoder in any slicing come back whole and in order; a stream cut inside a
// frame, a length above the maximum and any single flipped bit end it with the documented error,
// never with a wrong or partial message. The decoder is driven as the fuzz target drives it:
// StreamConnection::Receive on one end of a socketpair, the peer's bytes written in slices with
// everything ready received after each, so the decoder sees every partial state of a frame.
#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>
#include <sys/socket.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "ipch/unique_fd.h"
#include "property/messages.h"
#include "transports/stream/stream_connection.h"

namespace ipch::property {
namespace {

constexpr std::size_t kMax = 4096;

// The peer's bytes for `messages`, and where each frame starts (and, last, where they end).
struct Stream {
  Bytes bytes;
  std::vector<std::size_t> starts;
};

void Append(Bytes& to, const Bytes& more) { to.insert(to.end(), more.begin(), more.end()); }

Stream Encode(const std::vector<Bytes>& messages) {
  Stream s;
  for (const Bytes& m : messages) {
    s.starts.push_back(s.bytes.size());
    Append(s.bytes, StreamConnection::FrameHeader(static_cast<uint32_t>(m.size()), m));
    Append(s.bytes, m);
  }
  s.starts.push_back(s.bytes.size());
  return s;
}

// How the peer slices its bytes: these sizes in turn, over and over. Single bytes are drawn
// often, so that a frame is split at each of its header's bytes.
std::vector<std::size_t> GenSlices() {
  return *rc::gen::nonEmpty(rc::gen::container<std::vector<std::size_t>>(
      rc::gen::weightedOneOf<std::size_t>({{4, rc::gen::just<std::size_t>(1)},
                                           {3, rc::gen::inRange<std::size_t>(2, 17)},
                                           {3, rc::gen::inRange<std::size_t>(17, 600)},
                                           {1, rc::gen::inRange<std::size_t>(600, 9000)}})));
}

struct Decoded {
  std::vector<Bytes> messages;
  Status end;    // the first failure; nothing is received after it
  Status again;  // the next Receive, which must repeat it
};

std::string Show(const Status& st) { return st.ok() ? "ok" : st.error().ToString(); }

// Writes `bytes` to the decoder's peer in `slices`, receiving everything ready after each
// slice; then ends the stream and receives the rest. A correct decoder never waits here: the
// deadline only bounds a broken one.
Decoded Decode(const Bytes& bytes, const std::vector<std::size_t>& slices) {
  int sv[2];
  RC_ASSERT(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) == 0);
  StreamConnection conn(UniqueFd(sv[0]), UniqueFd(), kMax, true, "property");
  UniqueFd peer(sv[1]);
  Decoded d;
  auto receive_ready = [&](Deadline deadline) {
    for (;;) {
      Bytes out;
      Status st = conn.Receive(out, deadline);
      if (!st.ok()) return st;
      d.messages.push_back(std::move(out));
    }
  };
  std::size_t off = 0;
  for (std::size_t i = 0; off < bytes.size(); ++i) {
    const std::size_t n = std::min(slices[i % slices.size()], bytes.size() - off);
    RC_ASSERT(::send(peer.get(), bytes.data() + off, n, MSG_NOSIGNAL) == static_cast<ssize_t>(n));
    off += n;
    d.end = receive_ready(Deadline::Expired());
    // An incomplete frame is WouldBlock; anything else ends the stream here.
    if (!d.end.Is(Errc::WouldBlock)) break;
  }
  if (d.end.ok() || d.end.Is(Errc::WouldBlock)) {
    ::shutdown(peer.get(), SHUT_WR);
    d.end = receive_ready(Deadline::After(Scaled(std::chrono::seconds(10))));
  }
  Bytes out;
  d.again = conn.Receive(out, Deadline::Expired());
  return d;
}

// `d` delivered exactly `want`, then ended with `code` for good.
void AssertDecoded(const Decoded& d, const std::vector<Bytes>& want, Errc code) {
  const std::string mismatch = Mismatch(d.messages, want);
  if (!mismatch.empty()) RC_FAIL(mismatch + " (the stream ended with " + Show(d.end) + ")");
  if (!d.end.Is(code)) RC_FAIL(std::string("the stream ended with ") + Show(d.end) + ", want " + ErrcName(code));
  if (!d.again.Is(code)) RC_FAIL("the next Receive said " + Show(d.again) + ", want " + ErrcName(code) + " again");
}

std::vector<Bytes> Prefix(const std::vector<Bytes>& messages, std::size_t n) {
  return std::vector<Bytes>(messages.begin(), messages.begin() + static_cast<std::ptrdiff_t>(n));
}

RC_GTEST_PROP(StreamFrames, AnySlicingDeliversTheSameMessagesInOrder, ()) {
  const auto messages = GenMessages(kMax, 0, 8);
  const auto slices = GenSlices();
  // A clean end between frames is PeerClosed.
  AssertDecoded(Decode(Encode(messages).bytes, slices), messages, Errc::PeerClosed);
}

RC_GTEST_PROP(StreamFrames, AStreamCutInsideAFrameDeliversOnlyTheFramesBeforeIt, ()) {
  const auto messages = GenMessages(kMax, 1, 6);
  const auto slices = GenSlices();
  Stream s = Encode(messages);
  const auto cut_frame = *rc::gen::inRange<std::size_t>(0, messages.size());
  // At least one byte of the frame arrives, and not all of them.
  const auto kept = *rc::gen::inRange<std::size_t>(1, s.starts[cut_frame + 1] - s.starts[cut_frame]);
  s.bytes.resize(s.starts[cut_frame] + kept);
  // The contract for a frame the peer never finished: PeerClosed, its bytes dropped.
  AssertDecoded(Decode(s.bytes, slices), Prefix(messages, cut_frame), Errc::PeerClosed);
}

RC_GTEST_PROP(StreamFrames, ALengthAboveTheMaximumIsCorrupt, ()) {
  const auto before = GenMessages(kMax, 0, 4);
  const auto announced = *rc::gen::weightedOneOf<uint32_t>({{3, rc::gen::just<uint32_t>(kMax + 1)},
                                                            {2, rc::gen::inRange<uint32_t>(kMax + 2, 1u << 20)},
                                                            {2, rc::gen::inRange<uint32_t>(1u << 20, UINT32_MAX)},
                                                            {1, rc::gen::just<uint32_t>(UINT32_MAX)}});
  // What follows the header: as many bytes as a peer sends before it sees no answer, then
  // more frames that must not be delivered.
  const Bytes body = GenMessage(kMax);
  const auto after = GenMessages(kMax, 0, 2);
  const auto slices = GenSlices();
  Bytes bytes = Encode(before).bytes;
  Append(bytes, StreamConnection::FrameHeader(announced, body));  // a header whose own check passes
  Append(bytes, body);
  Append(bytes, Encode(after).bytes);
  AssertDecoded(Decode(bytes, slices), before, Errc::Corrupt);
}

RC_GTEST_PROP(StreamFrames, AnySingleFlippedBitIsCorrupt, ()) {
  const auto messages = GenMessages(kMax, 1, 6);
  const auto slices = GenSlices();
  Stream s = Encode(messages);
  const auto frame = *rc::gen::inRange<std::size_t>(0, messages.size());
  const std::size_t frame_bits = (s.starts[frame + 1] - s.starts[frame]) * 8;
  // The header's 96 bits as often as the payload's.
  const auto bit =
      *rc::gen::weightedOneOf<std::size_t>({{1, rc::gen::inRange<std::size_t>(0, StreamConnection::kHeaderSize * 8)},
                                            {1, rc::gen::inRange<std::size_t>(0, frame_bits)}});
  s.bytes[s.starts[frame] + bit / 8] ^= std::byte(1u << (bit % 8));
  AssertDecoded(Decode(s.bytes, slices), Prefix(messages, frame), Errc::Corrupt);
}

}  // namespace
}  // namespace ipch::property
