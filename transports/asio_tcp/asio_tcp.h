// TCP over loopback built on Boost.Asio: the asynchronous kind of transport, with the same
// contract and wire format as `tcp` (frames of transports/stream/stream_connection.h: a 12-byte
// header, u32 length | CRC-32C of the payload | CRC-32C of the header, little-endian).
//
// How the blocking calls sit on Asio (docs/architecture.md, "asio_tcp"):
//  - Receive runs the connection's receive io_context in the calling thread: a non-blocking
//    read_some, and when nothing is there an async_wait for readability, the io_context run
//    until the wait's handler ran or the deadline passed; then the wait is cancelled and run to
//    its (aborted) handler: Timeout. A partial frame stays buffered for the next call.
//  - Send writes in the calling thread when nothing is queued (one sendmsg, as tcp); what the
//    socket does not take is queued and written by the connection's own I/O thread (a second
//    io_context, async_wait + write_some), and Send returns: its error, if the write then fails,
//    is the answer of a later call (Cap::AsyncIo). When more than `send_queue_limit` bytes are
//    queued, Send waits for room on a condition variable, until its deadline: Timeout, and
//    nothing of that message was queued or written.
//  - Close writes what is still queued first, waiting while the peer takes it: a process may
//    exit once Close returned. A peer that takes nothing for `close_wait` does not hold Close
//    up: the I/O thread goes on writing in the background, as the kernel does after close(2),
//    ends the stream (FIN), and gives up after `linger` (RST). A process that exits while
//    messages are still queued (after such a Close, or killed) loses them.
// Addresses are "127.0.0.1:PORT" or "[::1]:PORT"; port 0 asks for an ephemeral port.
#pragma once

#include <chrono>
#include <cstddef>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "ipch/transport.h"
#include "ipch/unique_fd.h"

namespace ipch::asio_tcp {

inline constexpr std::size_t kDefaultMaxMessage = 16u << 20;

struct Options {
  std::size_t max_message_size = kDefaultMaxMessage;
  // As tcp::Options::dead_link_timeout: TCP_USER_TIMEOUT and keepalive, so that a dead link
  // ends the connection within this (zero: the kernel's defaults).
  std::chrono::milliseconds dead_link_timeout{30000};
  // Bytes a connection's queue may hold before Send waits for room (a message is accepted
  // into an empty queue whatever its size, up to max_message_size).
  std::size_t send_queue_limit = 256 * 1024;
  // Close waits while the peer takes what is queued; when it takes nothing for this long
  // (scaled under sanitizers, ipch::Scaled), Close returns and leaves the rest to the I/O thread.
  std::chrono::milliseconds close_wait{1000};
  // How long that thread keeps writing a closed connection's queue before it resets the stream.
  std::chrono::milliseconds linger{30000};
};

class Connection {
 public:
  struct Impl;
  Connection();
  explicit Connection(std::unique_ptr<Impl> impl);
  Connection(Connection&&) noexcept;
  Connection& operator=(Connection&&) noexcept;
  ~Connection();

  // One whole message; above max_message_size: MessageTooLarge, nothing sent.
  Status Send(ByteView msg, Deadline d);
  // One whole message into `out`. A length above max_message_size is Corrupt (sticky).
  Status Receive(Bytes& out, Deadline d);
  Status Close();
  std::size_t max_message_size() const;

 private:
  std::unique_ptr<Impl> impl_;
};

class Listener {
 public:
  struct Impl;
  Listener();
  Listener(std::unique_ptr<Impl> impl, std::string address);
  Listener(Listener&&) noexcept;
  Listener& operator=(Listener&&) noexcept;
  ~Listener();

  Result<Connection> Accept(Deadline d);
  const std::string& address() const { return address_; }
  std::vector<std::filesystem::path> resource_paths() const { return {}; }
  Status Close();

 private:
  std::unique_ptr<Impl> impl_;
  std::string address_;
};

Result<Listener> Listen(const std::string& address, const Options& options = {});
Result<Connection> Connect(const std::string& address, Deadline d, const Options& options = {});

struct Adapter {
  static constexpr std::string_view kName = "asio_tcp";
  // AsyncIo: a message the socket could not take at once is written by the connection's own
  // thread after Send returned, so a write's error may be the answer of a later call.
  static constexpr Caps kCaps =
      Cap::Stream | Cap::CrossProcess | Cap::PeerDeathDetect | Cap::RawPeer | Cap::SyscallIo | Cap::AsyncIo;
  using Connection = asio_tcp::Connection;
  using Listener = asio_tcp::Listener;
  static std::string Address(const EndpointSpec&) { return "127.0.0.1:0"; }
  static Result<Listener> Listen(const std::string& a) { return asio_tcp::Listen(a); }
  static Result<Connection> Connect(const std::string& a, Deadline d) { return asio_tcp::Connect(a, d); }
  // For hostile-peer tests: a plain connected socket, and the wire's frame header.
  static Result<UniqueFd> ConnectRaw(const std::string& a, Deadline d);
  static Bytes FrameHeader(uint32_t length, ByteView payload);
  // The address is a socket address the stream toxics proxy can stand in front of.
  static constexpr bool kSocketAddress = true;
};
static_assert(Transport<Adapter>);

}  // namespace ipch::asio_tcp
