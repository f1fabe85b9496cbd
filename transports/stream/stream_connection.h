// Message framing over a byte stream. A frame is a 12-byte header, then the payload:
//   u32 length | u32 CRC-32C of the payload | u32 CRC-32C of the first 8 header bytes
// (all little-endian). The header check catches a damaged length before we wait for bytes that
// will never come; the payload check catches damage anywhere else. Either is Corrupt.
// Handles short reads and writes, EINTR, EAGAIN (non-blocking fd + poll) and deadlines.
// Shared by the tcp, unix and fifo transports.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "ipch/transport.h"
#include "ipch/unique_fd.h"

namespace ipch {

class StreamConnection {
 public:
  static constexpr std::size_t kHeaderSize = 12;
  // The header of a frame announcing `length` bytes whose payload is `payload` (for a
  // well-formed frame, length == payload.size(); hostile-peer tests announce other lengths).
  static void EncodeHeader(uint32_t length, ByteView payload, unsigned char out[kHeaderSize]);
  static Bytes FrameHeader(uint32_t length, ByteView payload);

  StreamConnection() = default;
  // `read_fd` and `write_fd` may be the same socket. Both must be O_NONBLOCK.
  // `is_socket` selects send(MSG_NOSIGNAL); for pipes, writev runs with SIGPIPE blocked, so
  // either way a vanished reader is EPIPE (PeerClosed), never a signal.
  StreamConnection(UniqueFd read_fd, UniqueFd write_fd, std::size_t max_message_size, bool is_socket,
                   std::string label);
  StreamConnection(StreamConnection&&) noexcept = default;
  StreamConnection& operator=(StreamConnection&&) noexcept = default;
  ~StreamConnection() = default;

  // Sends one whole message. Above max_message_size: MessageTooLarge, nothing written.
  // If the deadline passes after part of the frame went out, the frame cannot be taken back:
  // the connection is shut down and later calls report Closed (the peer sees PeerClosed).
  Status Send(ByteView msg, Deadline d);
  // Receives one whole message into `out`. A partial frame read before a Timeout is kept and
  // completed by the next call. A length above max_message_size is Corrupt (sticky).
  Status Receive(Bytes& out, Deadline d);
  Status Close();
  std::size_t max_message_size() const { return max_; }

  // For tests and decorators: the descriptors underneath.
  int read_fd() const { return rfd_.valid() ? rfd_.get() : wfd_.get(); }
  int write_fd() const { return wfd_.get(); }

 private:
  Status CheckUsable() const;
  // After a send failed mid-frame: the peer must see the stream end (shutdown for a socket,
  // closing the write end for a pipe).
  void Abort();
  // Makes `e` the answer to every later call (PeerClosed and Corrupt are permanent on a stream).
  Status Fail(Error e, Error sticky);
  Status Fail(Error e) {
    Error copy = e;
    return Fail(std::move(e), std::move(copy));
  }
  Status ReceiveFrame(Bytes& out, Deadline d);
  // Fills the read buffer with at least one more byte; PeerClosed on EOF.
  Status FillSome(Deadline d);
  Status WaitFd(int fd, short events, Deadline d, const char* what);

  UniqueFd rfd_;  // invalid when the same fd serves both directions
  UniqueFd wfd_;
  std::size_t max_ = 0;
  bool is_socket_ = true;
  std::string label_;
  bool open_ = false;
  std::optional<Error> sticky_;

  // Receive side: buffered bytes [rpos_, rend_) of rbuf_ (64 KiB, allocated at the first read),
  // and a frame in progress.
  std::unique_ptr<std::byte[]> rbuf_;
  std::size_t rpos_ = 0, rend_ = 0;
  // The last read into rbuf_ filled all it asked for, so more is probably waiting: the next
  // one reads first and polls only if nothing came (in a stream, no poll per read; in
  // request/response traffic, where the answer is not there yet, poll first and read once).
  bool read_was_full_ = false;
  bool have_header_ = false;
  std::size_t want_ = 0;  // payload length of the frame in progress
  uint32_t want_crc_ = 0;  // its payload checksum
  // The frame's payload, sized at its header (a buffer of the size already, as the one the
  // caller handed back last time usually is, is not cleared again); got_ bytes are in.
  Bytes partial_;
  std::size_t got_ = 0;
};

}  // namespace ipch
