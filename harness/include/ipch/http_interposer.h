// HTTP/1.1 for the battery's hostile-HTTP cases: an interposer that stands between an HTTP
// client and its genuine server and, when armed, forges the answer to one request; a raw client
// that sends a server whatever bytes a misbehaving client would; and the framing both need.
// Only framing is understood (request and status lines, fields, Content-Length, chunked, a body
// that runs to the end of the connection); what the requests mean comes from adapter hooks.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "ipch/deadline.h"
#include "ipch/http_wire.h"
#include "ipch/result.h"

namespace ipch::toxics {

// A request or status line and its fields, as read from the wire.
struct HttpHead {
  std::string method, target;  // a request's
  int status = 0;              // an answer's
  std::vector<std::pair<std::string, std::string>> fields;
  // The value of the first field called `name` (in any case), or nullptr.
  const std::string* Find(std::string_view name) const;
};

// Parses a head (up to, not including, the blank line). False if it is not HTTP/1.x.
bool ParseHttpHead(std::string_view text, bool answer, HttpHead* out);

enum class HttpFraming { kContentLength, kChunked };

// The bytes of a request on the wire: its line, Host, its fields, and the body framed as told.
std::string FormatHttpRequest(const HttpWireRequest& req, const std::string& host,
                              HttpFraming framing = HttpFraming::kContentLength);
// The bytes of an answer on the wire, its body framed as told.
std::string FormatHttpAnswer(const HttpWireAnswer& answer, HttpFraming framing = HttpFraming::kContentLength);

struct HttpReply {
  int status = 0;  // 0: the server hung up without answering
  HttpHead head;
  std::string body;
};

// On a fresh connection to `address` (a socket address), writes `bytes` — any bytes at all, as
// a misbehaving client would — and reads one answer. With `hang_up`, the sending side is shut
// down after the bytes and everything is read until the server closes: when this returns the
// server is done with them. A server that stops writing mid-answer is PeerClosed, bytes that
// are not an HTTP answer Corrupt.
Result<HttpReply> HttpExchange(const std::string& address, std::string_view bytes, Deadline d, bool hang_up = false);

// Listens on `listen` (HOST:PORT, port 0 for any, or a unix socket path, made 0600 and removed
// by Stop) and forwards each client connection to `upstream`, request by request, untouched,
// until armed: then the next request that matches gets the armed answer instead of the
// server's, whether or not the server saw the request.
class HttpInterposer {
 public:
  // What becomes of the client's connection after a forged answer.
  enum class After {
    kKeepServing,  // later requests on it are forwarded as before
    kClose,        // it is closed (after the answer, which is why a cut answer is cut)
    kHold,         // it stays open, silent, until the client gives up on it
  };

  static Result<std::unique_ptr<HttpInterposer>> Start(const std::string& listen, const std::string& upstream);
  ~HttpInterposer();
  HttpInterposer(const HttpInterposer&) = delete;
  HttpInterposer& operator=(const HttpInterposer&) = delete;

  // The address clients connect to.
  const std::string& address() const;
  // What becomes of the request whose answer is forged.
  enum class Request {
    kSwallowed,  // the server never sees it
    kForwarded,  // the server gets it and answers; that answer is dropped for the forged one
  };

  // The next request for which `match` holds gets `answer` (raw bytes, HTTP or not), then `after`.
  void Arm(std::function<bool(const HttpHead& request)> match, std::string answer, After after,
           Request request = Request::kSwallowed);
  // How many answers were forged so far (counted as they are sent).
  uint64_t forged() const;
  // One line per request and answer, oldest first: what a failing case prints.
  std::vector<std::string> Log() const;
  std::string Describe() const;
  // Closes every connection and the listener, joins all threads. Idempotent.
  void Stop();

  struct Impl;

 private:
  explicit HttpInterposer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace ipch::toxics
