#include "stream_connection.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <cstring>

#include "crc32c.h"
#include "frame.h"
#include "wire.h"
#include "socket_util.h"

namespace ipch {
namespace {

constexpr std::size_t kReadChunk = 64 * 1024;
// A read into the buffer happens before the next frame's size is known: it is capped, so that
// a large payload is mostly read straight into the message instead of copied out of the buffer,
// while small frames still arrive (several at a time) in one read.
constexpr std::size_t kSpeculativeRead = 16 * 1024;

// The peer is gone: it closed or reset, or the kernel gave the connection up (a dead link: no
// acknowledgement within TCP_USER_TIMEOUT or keepalive, or a transmission found the host or
// network unreachable). The errno stays in the message.
bool IsPeerGone(int err) {
  return err == EPIPE || err == ECONNRESET || err == ENOTCONN || err == ETIMEDOUT || err == EHOSTUNREACH ||
         err == ENETUNREACH;
}

using wire::PutU32;

}  // namespace

void StreamConnection::EncodeHeader(uint32_t length, ByteView payload, unsigned char out[kHeaderSize]) {
  PutU32(out, length);
  PutU32(out + 4, Crc32c(payload.data(), payload.size()));
  PutU32(out + 8, Crc32c(out, 8));
}

Bytes StreamConnection::FrameHeader(uint32_t length, ByteView payload) {
  unsigned char h[kHeaderSize];
  EncodeHeader(length, payload, h);
  return Bytes(reinterpret_cast<const std::byte*>(h), reinterpret_cast<const std::byte*>(h) + kHeaderSize);
}

StreamConnection::StreamConnection(UniqueFd read_fd, UniqueFd write_fd, std::size_t max_message_size, bool is_socket,
                                   std::string label)
    : rfd_(std::move(read_fd)),
      wfd_(std::move(write_fd)),
      max_(std::min<std::size_t>(max_message_size, UINT32_MAX)),  // the header holds a u32
      is_socket_(is_socket),
      label_(std::move(label)),
      open_(true) {
  if (!wfd_.valid()) wfd_ = std::move(rfd_);  // one fd for both directions
}

Status StreamConnection::CheckUsable() const {
  if (!open_) return MakeError(Errc::Closed, label_ + ": connection is closed");
  if (sticky_) return *sticky_;
  return Ok();
}

Status StreamConnection::Fail(Error e, Error sticky) {
  sticky_ = std::move(sticky);
  return e;
}

Status StreamConnection::WaitFd(int fd, short events, Deadline d, const char* what) {
  pollfd pfd{fd, events, 0};
  for (;;) {
    int r = ::poll(&pfd, 1, d.PollTimeoutMs());
    if (r > 0) return Ok();  // readiness or an error condition: the next I/O call reports it
    if (r == 0) {
      if (d.expired()) return MakeError(Errc::Timeout, label_ + ": " + what);
      continue;  // poll's millisecond rounding woke us early
    }
    if (errno != EINTR) return ErrnoError(label_ + ": poll");
  }
}

void StreamConnection::Abort() {
  if (is_socket_) {
    ::shutdown(wfd_.get(), SHUT_RDWR);
  } else {
    // A pipe has no shutdown: closing our write end is what gives the reader its EOF. Only the
    // sending thread uses wfd_, so no other thread can be waiting on this descriptor.
    wfd_.reset();
  }
}

Status StreamConnection::Send(ByteView msg, Deadline d) {
  IPCH_RETURN_IF_ERROR(CheckUsable());
  const bool probe = d.expired();
  if (msg.size() > max_) {
    return MakeError(Errc::MessageTooLarge,
                     label_ + ": " + std::to_string(msg.size()) + " bytes > max_message_size " + std::to_string(max_));
  }
  unsigned char header[kHeaderSize];
  EncodeHeader(static_cast<uint32_t>(msg.size()), msg, header);
  iovec iov[2] = {{header, kHeaderSize}, {const_cast<std::byte*>(msg.data()), msg.size()}};
  int iovcnt = msg.empty() ? 1 : 2;
  iovec* cur = iov;
  std::size_t total = kHeaderSize + msg.size(), sent = 0;
  while (sent < total) {
    ssize_t w;
    if (is_socket_) {
      msghdr mh{};
      mh.msg_iov = cur;
      mh.msg_iovlen = static_cast<std::size_t>(iovcnt);
      w = ::sendmsg(wfd_.get(), &mh, MSG_NOSIGNAL);
    } else {
      w = WritevNoSigpipe(wfd_.get(), cur, iovcnt);
    }
    if (w < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        // A poll may say "ready" when the write would still block (a spurious readiness): the
        // deadline is looked at on every turn, not only when poll times out.
        Status ws = d.expired() ? Status(MakeError(Errc::Timeout, label_ + ": send"))
                                : WaitFd(wfd_.get(), POLLOUT, d, "send");
        if (ws.ok()) continue;
        if (sent == 0) return probe ? MakeError(Errc::WouldBlock, label_ + ": send buffer full") : ws;
        Abort();
        std::string why = "send deadline passed mid-frame (" + std::to_string(sent) + "/" + std::to_string(total) +
                          " bytes); connection shut down";
        return Fail(MakeError(Errc::Timeout, label_ + ": " + why), MakeError(Errc::Closed, label_ + ": " + why));
      }
      if (IsPeerGone(errno)) return Fail(MakeError(Errc::PeerClosed, label_ + ": send: " + strerror(errno)));
      Error e = ErrnoError(label_ + ": send");
      if (sent == 0) return e;
      // Part of the frame is out: the stream cannot be resynchronised.
      Abort();
      return Fail(e, MakeError(Errc::Closed, label_ + ": send failed mid-frame; connection shut down"));
    }
    sent += static_cast<std::size_t>(w);
    // Advance the iovec past what was written.
    auto left = static_cast<std::size_t>(w);
    while (iovcnt > 0 && left >= cur->iov_len) {
      left -= cur->iov_len;
      ++cur;
      --iovcnt;
    }
    if (iovcnt > 0) {
      cur->iov_base = static_cast<char*>(cur->iov_base) + left;
      cur->iov_len -= left;
    }
  }
  return Ok();
}

Status StreamConnection::FillSome(Deadline d) {
  // Allocated at the first read and never cleared: a connection that only sends never pays for
  // it, and clearing 64 KiB per connection was a fifth of a new pair's cost.
  if (!rbuf_) rbuf_ = std::make_unique_for_overwrite<std::byte[]>(kReadChunk);
  if (rpos_ == rend_) rpos_ = rend_ = 0;
  if (rend_ == kReadChunk) {  // compact
    std::memmove(rbuf_.get(), rbuf_.get() + rpos_, rend_ - rpos_);
    rend_ -= rpos_;
    rpos_ = 0;
  }
  int fd = read_fd();
  const std::size_t ask = std::min(kReadChunk - rend_, kSpeculativeRead);
  // Poll first unless the last read suggests more is waiting: in request/response traffic the
  // data is usually not there yet, and poll+read is one syscall fewer than read(EAGAIN)+poll+read.
  bool poll_first = !read_was_full_;
  for (;;) {
    if (poll_first) IPCH_RETURN_IF_ERROR(WaitFd(fd, POLLIN, d, "receive"));
    ssize_t r = ::read(fd, rbuf_.get() + rend_, ask);
    if (r > 0) {
      rend_ += static_cast<std::size_t>(r);
      read_was_full_ = static_cast<std::size_t>(r) == ask;
      return Ok();
    }
    if (r == 0) {
      std::string why = have_header_ || rend_ > rpos_ ? "peer closed mid-frame (" + std::to_string(got_) + " of " +
                                                            std::to_string(want_) + " payload bytes)"
                                                      : "peer closed";
      return Fail(MakeError(Errc::PeerClosed, label_ + ": " + why));
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      // Nothing yet (the guess that more was waiting was wrong), or poll's readiness was
      // spurious: wait, if time is left.
      read_was_full_ = false;
      if (poll_first && d.expired()) return MakeError(Errc::Timeout, label_ + ": receive");
      poll_first = true;
      continue;
    }
    if (IsPeerGone(errno)) return Fail(MakeError(Errc::PeerClosed, label_ + ": read: " + strerror(errno)));
    return ErrnoError(label_ + ": read");
  }
}

Status StreamConnection::Receive(Bytes& out, Deadline d) {
  IPCH_RETURN_IF_ERROR(CheckUsable());
  // An already-expired deadline is a non-blocking probe: "would have to wait" is WouldBlock.
  const bool probe = d.expired();
  Status st = ReceiveFrame(out, d);
  if (probe && st.Is(Errc::Timeout)) return MakeError(Errc::WouldBlock, label_ + ": no complete message ready");
  return st;
}

Status StreamConnection::ReceiveFrame(Bytes& out, Deadline d) {
  while (!have_header_) {
    if (rend_ - rpos_ >= kHeaderSize) {
      auto h = frame::DecodeHeader(reinterpret_cast<const unsigned char*>(rbuf_.get() + rpos_), max_, label_);
      if (!h.ok()) return Fail(std::move(h).error());
      want_crc_ = h->payload_crc;
      rpos_ += kHeaderSize;
      have_header_ = true;
      want_ = h->length;
      got_ = 0;
      partial_.resize(want_);
      break;
    }
    IPCH_RETURN_IF_ERROR(FillSome(d));
  }
  while (got_ < want_) {
    const std::size_t need = want_ - got_;
    const std::size_t avail = rend_ - rpos_;
    if (avail > 0) {
      const std::size_t take = std::min(need, avail);
      std::memcpy(partial_.data() + got_, rbuf_.get() + rpos_, take);
      got_ += take;
      rpos_ += take;
      continue;
    }
    if (need >= kSpeculativeRead) {
      // Large remainder: read straight into the message, skipping the copy.
      // Mid-frame the rest is usually in flight already: read first, poll only when it is not.
      ssize_t r = ::read(read_fd(), partial_.data() + got_, need);
      if (r > 0) {
        got_ += static_cast<std::size_t>(r);
        continue;
      }
      if (r < 0 && errno == EINTR) continue;
      if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        IPCH_RETURN_IF_ERROR(WaitFd(read_fd(), POLLIN, d, "receive"));
        continue;
      }
      if (r < 0 && !IsPeerGone(errno)) return ErrnoError(label_ + ": read");
      return Fail(MakeError(Errc::PeerClosed, label_ + ": peer closed mid-frame (" + std::to_string(got_) + " of " +
                                                  std::to_string(want_) + " payload bytes)"));
    }
    IPCH_RETURN_IF_ERROR(FillSome(d));
  }
  have_header_ = false;
  if (Status st = frame::CheckPayload(partial_.data(), want_, want_crc_, label_); !st.ok()) {
    return Fail(std::move(st).error());
  }
  // The caller's buffer comes back as the next frame's: of the same size, it is not cleared.
  out.swap(partial_);
  return Ok();
}

Status StreamConnection::Close() {
  open_ = false;
  rfd_.reset();
  wfd_.reset();
  return Ok();
}

}  // namespace ipch
