// HTTP/1.1 over loopback: a cpp-httplib server on the listener side, a libcurl client on the
// connecting side. One message is one request body; the wire protocol (all paths under /v1):
//
//   POST   /v1/connect             201, chunked and held open for the session's life: the first
//                                  line is "<session id> <max message size>\n". This is the
//                                  presence stream. The client sends nothing more on it and never
//                                  reads it again (no thread); the server polls that socket for a
//                                  hang-up, which a killed client's kernel sends at once, and
//                                  reports PeerClosed after what the client queued before.
//   POST   /v1/s/<id>/msg          client -> server message. X-Ipch-Seq: n (1, 2, ...; a retried
//                                  POST carries the same n and is acknowledged, not delivered
//                                  twice; one that skips ahead is refused 409, nothing queued),
//                                  X-Ipch-Crc32c: the body's CRC-32C, 8 lower-case hex digits (a
//                                  body that does not match, or no such field, is refused 400:
//                                  HTTP checks nothing it carries, and a damaged body must never be
//                                  delivered),
//                                  X-Ipch-Wait-Ms (optional, default 0): how long the server may
//                                  wait for queue space. 204 queued, 413 too large, 410 server side
//                                  closed, 503 + X-Ipch-Reason: queue-full when the wait ran out;
//                                  an X-Ipch-* field given twice or malformed is 400.
//   GET    /v1/s/<id>/msg?after=k&wait_ms=w
//                                  server -> client long poll. `after` acknowledges every message
//                                  up to k (they stay queued until then, so a lost response is
//                                  fetched again); 200 + X-Ipch-Seq + X-Ipch-Crc32c + body (a body
//                                  that does not match is Corrupt), 204 if nothing came
//                                  within w, 410 once the server side closed and all is delivered.
//   DELETE /v1/s/<id>              client Close: the server side sees PeerClosed after what was
//                                  queued before it.
//
// Addresses are "127.0.0.1:PORT" or "[::1]:PORT" like tcp; port 0 asks for an ephemeral port.
// Peer death: a killed client is seen as soon as its kernel closes the presence socket (the
// bound is scheduling: ~10 ms here; with no /proc to find that socket, a heartbeat write per
// kHeartbeat instead, ~200 ms). A killed server refuses or resets every request, which the
// client reports as PeerClosed at once. A stopped (SIGSTOP) peer is not a dead one.
//
// Deadlines: each request carries its wait budget (the time left) and curl's timeout is that
// plus a grace (0.5 s, scaled under sanitizers) for the answer's transfer, so only a server that
// stops answering makes a call overrun its deadline, by at most the grace. A Send that times out
// in curl (not by a 503 queue-full answer) may still have been queued: its outcome is unknown,
// and the next Send first posts it again under its number (queued once either way), so it may
// still arrive, but never twice and never after a later message. A refused send (413, queue
// full) leaves its number to the next message: the server never sees a gap.
//
// The client's error mapping (what a hostile or broken server makes each call return):
//   404 (session unknown), 410 (closed), 503 (stopping)        PeerClosed
//   413 to a Send                                               MessageTooLarge, nothing queued, not sticky
//   500 and any other 5xx                                       PeerClosed: the server failed and can no
//                                                               longer vouch for the session (was the
//                                                               message queued?), as if it had died
//   400 and any other 4xx (413 to a Connect or a Receive too)   Corrupt: the server did not understand us
//   any other status; a 200 whose X-Ipch-Seq is missing, not    Corrupt
//   a number or not the next one; a body or Content-Length
//   over max_message_size (refused before the body is read);
//   bytes that are not HTTP, a malformed head or chunk
//   an answer cut short by a hang-up (or a reset)               PeerClosed
//   an answer that stalls                                       Timeout at the deadline (plus the grace);
//                                                               a Receive fetches the message again next time
// Sticky: Corrupt, and PeerClosed on the server's word (404, 5xx), fail the whole connection;
// PeerClosed from a 410 or a broken transfer fails that direction (after a 410 to a Send, what
// the server sent before it closed can still be received).
//
// The accepted (server) connections share the HTTP server with their listener: Listener::Close
// stops accepting at once (new connects are refused with 503, never-accepted sessions end), and
// the server thread stops and is joined when the listener and every connection it accepted are
// closed. Messages the server side queued and the client had not fetched by then are lost (the
// client sees PeerClosed), unlike a TCP socket whose kernel buffer outlives its process.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "ipch/http_wire.h"
#include "ipch/transport.h"

namespace ipch::http {

inline constexpr std::size_t kDefaultMaxMessage = 16u << 20;
// Bytes one direction of a session may hold unread before senders wait (one message of any
// size up to the maximum is always admitted into an empty queue). A message the client has
// fetched but not yet acknowledged (its next fetch does) holds no room.
inline constexpr std::size_t kQueueBytes = 4u << 20;
// The presence stream's server side looks at its socket this often for session changes; a
// client's hang-up wakes it at once.
inline constexpr std::chrono::milliseconds kPresencePoll{100};
// Fallback when the socket cannot be found: a heartbeat write this often.
inline constexpr std::chrono::milliseconds kHeartbeat{100};

// ---- the wire, as plain values: what a fuzzer drives without sockets ---------------------

using HeaderMap = std::map<std::string, std::string>;  // names in lower case

struct HttpRequest {
  std::string method;  // "GET", "POST", ...
  std::string path;    // without the query
  std::map<std::string, std::string> query;
  HeaderMap headers;
  std::string body;
};

struct HttpResponse {
  int status = 500;
  HeaderMap headers;
  std::string body;
  // Set for a successful POST /v1/connect: `body` is the first chunk of a presence stream the
  // server keeps open for `session` (see PresenceStep).
  bool presence_stream = false;
  std::string session;
};

class Connection;

// The server's session table and accept queue, with no sockets: HandleRequest runs one request
// against it. Copies share the same state.
class ServerState {
 public:
  explicit ServerState(std::size_t max_message = kDefaultMaxMessage, std::size_t queue_bytes = kQueueBytes);

  // Pops the oldest connected, not yet accepted session. The connection keeps `keep` (the HTTP
  // server serving it) alive until it is closed.
  Result<Connection> Accept(Deadline d, const std::string& label, std::shared_ptr<void> keep = nullptr);
  // Refuses new sessions from now on and ends the never-accepted ones (their clients get 410).
  void StopAccepting();
  // Server shutdown: wakes every waiting request and connection; later requests get 503.
  void Stop();
  // One step of a presence stream: waits up to `wait` and says whether to keep it open
  // (false once the client closed, the session is gone or the server stops).
  bool PresenceStep(const std::string& session, std::chrono::milliseconds wait);
  // The presence stream ended; `broken` when writing to it failed (the client is gone).
  void PresenceEnded(const std::string& session, bool broken);
  std::size_t session_count() const;
  std::size_t max_message_size() const;

  struct Core;

 private:
  friend HttpResponse HandleRequest(ServerState& state, const HttpRequest& req);
  std::shared_ptr<Core> core_;
};

// The server's whole request handler. Waits at most the request's own wait budget
// (X-Ipch-Wait-Ms or wait_ms, capped), so with zero budgets it never blocks. Malformed requests
// get a 4xx and change nothing.
HttpResponse HandleRequest(ServerState& state, const HttpRequest& req);

// What a client call was, for DecodeResponse.
enum class Op { Connect, Send, Receive, Close };

// The client call that makes a request like this one (false: none of ours).
bool OpOf(std::string_view method, std::string_view path, Op* op);
// The fields of a message POST (sequence number, wait budget, the body's X-Ipch-Crc32c).
HeaderMap MessagePostHeaders(uint64_t seq, const std::string& checksum, std::chrono::milliseconds wait);
// The message POST a client makes, as a plain value: the client sends exactly this (with the
// Content-Length curl adds), and the adapter's test hook hands it to the battery.
HttpRequest MessagePost(const std::string& session, uint64_t seq, ByteView body, std::chrono::milliseconds wait);
// The server's answer to a GET that fetches message `seq`.
HttpResponse MessageAnswer(uint64_t seq, ByteView body);

struct Decoded {
  uint64_t seq = 0;             // Receive: the message's sequence number
  std::string session;          // Connect
  std::size_t max_message = 0;  // Connect
};

// The client's response decoder. OK when the operation took effect (Receive: `body` is the
// message). Errc::Timeout for "not yet" answers (204 to a receive, 503 queue-full to a send):
// the caller waits again or reports WouldBlock/Timeout. Every other status as mapped at the top
// of this file (the status is kept in the message).
Status DecodeResponse(Op op, long status, const HeaderMap& headers, std::string_view body, Decoded* out,
                      const std::string& context);
// A failed transfer: `curl_code` is a CURLcode, `os_errno` CURLINFO_OS_ERRNO, `detail` the
// error buffer. Timeouts are Timeout; refused, reset, empty reply and cut transfers PeerClosed;
// an answer curl refused (not HTTP/1.x, a malformed head or chunk) Corrupt.
Status DecodeTransferError(int curl_code, long os_errno, const std::string& detail, const std::string& context);

// ---- the transport -------------------------------------------------------------------------

class Connection {
 public:
  class Impl;
  Connection();  // a closed connection: every call but Close() gives Closed
  explicit Connection(std::unique_ptr<Impl> impl);
  Connection(Connection&&) noexcept;
  Connection& operator=(Connection&&) noexcept;
  ~Connection();

  Status Send(ByteView msg, Deadline d);
  Status Receive(Bytes& out, Deadline d);
  Status Close();
  std::size_t max_message_size() const;
  // The session this connection is one end of ("" once closed, or before it had one).
  std::string session() const;

 private:
  std::unique_ptr<Impl> impl_;
};

class Listener {
 public:
  struct Hub;  // the httplib server, its thread and the ServerState
  Listener();
  Listener(Listener&&) noexcept;
  Listener& operator=(Listener&&) noexcept;
  ~Listener();

  Result<Connection> Accept(Deadline d);
  const std::string& address() const { return address_; }
  std::vector<std::filesystem::path> resource_paths() const { return {}; }
  Status Close();

 private:
  friend Result<Listener> Listen(const std::string&, std::size_t);
  std::shared_ptr<Hub> hub_;
  std::string address_;
};

Result<Listener> Listen(const std::string& address, std::size_t max_message_size = kDefaultMaxMessage);
Result<Connection> Connect(const std::string& address, Deadline d);

struct Adapter {
  static constexpr std::string_view kName = "http";
  // AsyncIo: a server end's Send returns once its message is queued for the client's next poll,
  // which the HTTP server's own threads answer; a server killed before that loses it whole.
  // SyscallIo: curl and cpp-httplib read, write, poll, accept and connect through libc. Reconnects:
  // a request whose connection broke is made again on a new one (each message still once).
  static constexpr Caps kCaps =
      Cap::CrossProcess | Cap::PeerDeathDetect | Cap::HttpWire | Cap::AsyncIo | Cap::SyscallIo | Cap::Reconnects;
  using Connection = http::Connection;
  using Listener = http::Listener;
  static std::string Address(const EndpointSpec&) { return "127.0.0.1:0"; }
  static Result<Listener> Listen(const std::string& a) { return http::Listen(a); }
  static Result<Connection> Connect(const std::string& a, Deadline d) { return http::Connect(a, d); }

  // Test hooks (harness/conformance/hooks.h): the address is HOST:PORT and the wire is HTTP, so
  // the hostile-HTTP cases put an interposer between the ends and call the server as a
  // misbehaving client would; these say which request is which and what genuine ones look like.
  static constexpr bool kSocketAddress = true;
  static constexpr bool kHttpWire = true;
  static HttpCall HttpCallOf(std::string_view method, std::string_view target);
  static HttpWireRequest HttpSendRequest(const Connection& client, uint64_t n, ByteView body);
  static HttpWireAnswer HttpReceiveAnswer(uint64_t n, ByteView body);
};
static_assert(Transport<Adapter>);

}  // namespace ipch::http
