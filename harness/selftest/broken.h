// Deliberately broken transports. The self-test proves that the battery catches each flaw:
// a suite that passes these would be a suite that cannot fail.
//
// NaiveConnection<Bug::kNone> is a small, correct implementation of the stream frame format
// (stream_connection.h) over a unix socket (the control: it must pass). Each other Bug value plants one classic mistake
// in it.
#pragma once

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <optional>

#include "ipch/transport.h"
#include "transports/stream/crc32c.h"
#include "transports/stream/socket_util.h"
#include "transports/unix/unix.h"

namespace ipch::selftest {

enum class Bug {
  kNone,                   // control
  kIgnoresShortWrites,     // assumes one send() writes the whole frame
  kNoEintrRetry,           // treats EINTR as a fatal error
  kSwallowsErrors,         // reports a dead peer as success (empty message / sent)
  kEagainIsFatal,          // treats EAGAIN as a fatal error instead of waiting
  kCorruptsPayload,        // flips one bit in every 4th non-empty message after checksumming it
  kIgnoresChecksum,        // frames carry checksums, but the receiver never verifies them
  kDropsPartialFrame,      // a receive that times out throws away the part of a frame it has read
  kLosesWakeup,            // waits on the socket before looking at frames it has buffered already
  kCrashesOnHostileBytes,  // trusts the announced length and copies that much (a SIGSEGV on a huge one)
};

template <Bug B>
class NaiveConnection {
 public:
  NaiveConnection() = default;
  NaiveConnection(UniqueFd fd, std::size_t max) : fd_(std::move(fd)), max_(max) {}
  NaiveConnection(NaiveConnection&&) noexcept = default;
  NaiveConnection& operator=(NaiveConnection&&) noexcept = default;

  Status Send(ByteView msg, Deadline d) {
    if (!fd_) return MakeError(Errc::Closed, "naive: closed");
    if (sticky_) return *sticky_;
    if (msg.size() > max_) return MakeError(Errc::MessageTooLarge, "naive: too large");
    const bool probe = d.expired();
    Bytes frame = StreamConnection::FrameHeader(static_cast<uint32_t>(msg.size()), msg);
    frame.insert(frame.end(), msg.begin(), msg.end());
    if (B == Bug::kCorruptsPayload && !msg.empty() && ++sent_ % 4 == 0) frame.back() ^= std::byte{0x10};
    std::size_t off = 0;
    while (off < frame.size()) {
      ssize_t w = ::send(fd_.get(), frame.data() + off, frame.size() - off, MSG_NOSIGNAL);
      if (w < 0) {
        if (errno == EINTR && B != Bug::kNoEintrRetry) continue;
        if ((errno == EAGAIN || errno == EWOULDBLOCK) && B != Bug::kEagainIsFatal) {
          // A poll may say "ready" when the write would still block: the deadline is looked at
          // on every turn.
          Status ws = d.expired() ? Status(MakeError(Errc::Timeout, "naive: wait")) : Wait(POLLOUT, d);
          if (!ws.ok()) {
            if (off > 0) ::shutdown(fd_.get(), SHUT_RDWR);
            return probe && off == 0 ? MakeError(Errc::WouldBlock, "naive: full") : ws;
          }
          continue;
        }
        if (errno == EPIPE || errno == ECONNRESET) {
          if (B == Bug::kSwallowsErrors) return Ok();
          return Stick(MakeError(Errc::PeerClosed, "naive: send: peer gone"));
        }
        return ErrnoError("naive: send");
      }
      if (B == Bug::kIgnoresShortWrites) return Ok();
      off += static_cast<std::size_t>(w);
    }
    return Ok();
  }

  Status Receive(Bytes& out, Deadline d) {
    if (!fd_) return MakeError(Errc::Closed, "naive: closed");
    if (sticky_) return *sticky_;
    const bool probe = d.expired();
    if (B == Bug::kLosesWakeup && !in_.empty()) {
      // The planted bug: a frame that came with the previous read is noticed only when a wait
      // for more bytes ends (2 s, scaled), as if woken by a timer instead of by its arrival.
      (void)Wait(POLLIN, Deadline::After(std::min<Clock::duration>(d.remaining(), Scaled(std::chrono::seconds(2)))));
    }
    for (;;) {
      constexpr std::size_t kH = StreamConnection::kHeaderSize;
      if (in_.size() >= kH) {
        uint32_t n = 0;
        for (int i = 0; i < 4; ++i) n |= static_cast<uint32_t>(in_[i]) << (8 * i);
        if (B != Bug::kIgnoresChecksum) {
          uint32_t check = 0;
          for (int i = 0; i < 4; ++i) check |= static_cast<uint32_t>(in_[8 + i]) << (8 * i);
          if (check != Crc32c(in_.data(), 8)) return Stick(MakeError(Errc::Corrupt, "naive: header checksum"));
        }
        if (B == Bug::kCrashesOnHostileBytes && n > max_) {
          // The planted bug: the length is trusted, and the copy runs off the end of the buffer.
          Bytes whole(max_);
          std::memcpy(whole.data(), in_.data() + kH, n);
        }
        if (n > max_) return Stick(MakeError(Errc::Corrupt, "naive: length above max"));
        if (in_.size() >= kH + n) {
          const Bytes header(in_.begin(), in_.begin() + kH);
          out.assign(in_.begin() + kH, in_.begin() + kH + n);
          in_.erase(in_.begin(), in_.begin() + kH + n);
          // Recomputing the header from the length and payload that arrived shows any damaged bit.
          if (B != Bug::kIgnoresChecksum && StreamConnection::FrameHeader(n, out) != header) {
            out.clear();
            return Stick(MakeError(Errc::Corrupt, "naive: checksum mismatch"));
          }
          return Ok();
        }
      }
      Status ws = Wait(POLLIN, d);
      if (!ws.ok() && B == Bug::kDropsPartialFrame) in_.clear();
      if (!ws.ok()) return probe ? MakeError(Errc::WouldBlock, "naive: nothing ready") : ws;
      std::byte buf[65536];
      ssize_t r = ::read(fd_.get(), buf, sizeof buf);
      if (r > 0) {
        in_.insert(in_.end(), buf, buf + r);
        continue;
      }
      if (r == 0 || errno == ECONNRESET) {
        if (B == Bug::kSwallowsErrors) {
          out.clear();
          return Ok();
        }
        return Stick(MakeError(Errc::PeerClosed, "naive: peer closed"));
      }
      if (errno == EINTR && B != Bug::kNoEintrRetry) continue;
      if ((errno == EAGAIN || errno == EWOULDBLOCK) && B != Bug::kEagainIsFatal) {
        // Ready, said poll, and nothing there (a spurious readiness): again, if time is left.
        if (d.expired()) return probe ? MakeError(Errc::WouldBlock, "naive: nothing ready") : Status(MakeError(Errc::Timeout, "naive: wait"));
        continue;
      }
      return ErrnoError("naive: read");
    }
  }

  Status Close() {
    fd_.reset();
    return Ok();
  }
  std::size_t max_message_size() const { return max_; }
  int fd() const { return fd_.get(); }

 private:
  Status Stick(Error e) {
    sticky_ = e;
    return e;
  }
  Status Wait(short events, Deadline d) {
    for (;;) {
      pollfd p{fd_.get(), events, 0};
      int r = ::poll(&p, 1, d.PollTimeoutMs());
      if (r > 0) return Ok();
      if (r == 0 && d.expired()) return MakeError(Errc::Timeout, "naive: wait");
      if (r < 0 && errno == EINTR && B != Bug::kNoEintrRetry) continue;
      if (r < 0) return ErrnoError("naive: poll");
    }
  }

  UniqueFd fd_;
  std::size_t max_ = 0;
  Bytes in_;
  std::optional<Error> sticky_;
  uint64_t sent_ = 0;  // for kCorruptsPayload
};

// Listener side reuses the unix transport's (correct) socket file handling.
template <class C>
class WrappedListener {
 public:
  explicit WrappedListener(unix_sock::Listener l = {}) : inner_(std::move(l)) {}
  Result<C> Accept(Deadline d) {
    auto fd = AcceptWithDeadline(inner_.fd(), d, "naive accept");
    if (!fd.ok()) return std::move(fd).error();
    return C(std::move(*fd), unix_sock::kDefaultMaxMessage);
  }
  std::string address() const { return inner_.address(); }
  std::vector<std::filesystem::path> resource_paths() const { return inner_.resource_paths(); }
  Status Close() { return inner_.Close(); }

 private:
  unix_sock::Listener inner_;
};

template <Bug B, const char* kLabel>
struct NaiveAdapter {
  static constexpr std::string_view kName = kLabel;
  static constexpr Caps kCaps = unix_sock::Adapter::kCaps;
  using Connection = NaiveConnection<B>;
  using Listener = WrappedListener<Connection>;
  static std::string Address(const EndpointSpec& s) { return unix_sock::Adapter::Address(s); }
  static Result<Listener> Listen(const std::string& a) {
    auto l = unix_sock::Listen(a);
    if (!l.ok()) return std::move(l).error();
    return Listener(std::move(*l));
  }
  static Result<Connection> Connect(const std::string& a, Deadline d) {
    auto fd = unix_sock::Adapter::ConnectRaw(a, d);
    if (!fd.ok()) return std::move(fd).error();
    return Connection(std::move(*fd), unix_sock::kDefaultMaxMessage);
  }
  static Result<UniqueFd> ConnectRaw(const std::string& a, Deadline d) { return unix_sock::Adapter::ConnectRaw(a, d); }
  static Bytes FrameHeader(uint32_t n, ByteView payload) { return StreamConnection::FrameHeader(n, payload); }
  static constexpr bool kSocketAddress = true;
};

// The real unix transport, except that Connect leaks a duplicate of the socket descriptor.
struct LeaksFdAdapter : unix_sock::Adapter {
  static constexpr std::string_view kName = "leaks_fd";
  static Result<Connection> Connect(const std::string& a, Deadline d) {
    auto c = unix_sock::Connect(a, d);
    if (c.ok()) (void)::dup(c->read_fd());  // the planted bug
    return c;
  }
};

inline constexpr char kControl[] = "naive_control";
inline constexpr char kShortWrites[] = "ignores_short_writes";
inline constexpr char kNoEintr[] = "no_eintr_retry";
inline constexpr char kSwallows[] = "swallows_errors";
inline constexpr char kEagainFatal[] = "eagain_is_fatal";
inline constexpr char kCorrupts[] = "corrupts_payload";
inline constexpr char kIgnoresChecksum[] = "ignores_checksum";
inline constexpr char kDropsPartial[] = "drops_partial_frame";
inline constexpr char kLosesWakeup[] = "loses_wakeup";
inline constexpr char kCrashesOnHostileBytes[] = "crashes_on_hostile_bytes";

}  // namespace ipch::selftest
