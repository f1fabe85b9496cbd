// The HTTP interposer and the raw HTTP client (ipch/http_interposer.h). Threads: one acceptor;
// per connection an up thread (client -> upstream: parses requests, forwards them or, when a
// forgery matches, swallows one and queues the forged answer) and a down thread (upstream ->
// client: answers the queued requests in order, forwarding the genuine answer or writing the
// forged one). A connection's threads share an eventfd that becomes readable when it is torn
// down; the last one out closes both sockets.
#include "ipch/http_interposer.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <list>
#include <mutex>
#include <optional>
#include <thread>

#include "harness_thread.h"
#include "ipch/socket_address.h"
#include "ipch/unique_fd.h"

namespace ipch::toxics {
namespace {

constexpr std::size_t kMaxHead = 64 * 1024;
constexpr std::size_t kMaxLine = 4096;
constexpr std::size_t kMaxLog = 1000;

bool IEquals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

bool ParseDecimal(std::string_view s, uint64_t* out) {
  if (s.empty() || s.size() > 19) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && p == s.data() + s.size();
}

void SignalFd(int fd) {
  const uint64_t one = 1;
  while (::write(fd, &one, sizeof one) < 0 && errno == EINTR) {
  }
}

void DrainFd(int fd) {
  uint64_t v;
  while (::read(fd, &v, sizeof v) < 0 && errno == EINTR) {
  }
}

// Writes all of `data` to a non-blocking socket; false on error, deadline or `wake`.
bool WriteAll(int fd, std::string_view data, int wake, Deadline d) {
  while (!data.empty()) {
    ssize_t w = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w > 0) {
      data.remove_prefix(static_cast<std::size_t>(w));
      continue;
    }
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && errno != EAGAIN) return false;
    pollfd p[2] = {{fd, POLLOUT, 0}, {wake, POLLIN, 0}};
    int n = RetryEintr([&] { return ::poll(p, wake >= 0 ? 2 : 1, d.PollTimeoutMs()); });
    if (n <= 0 || (wake >= 0 && p[1].revents)) return false;
  }
  return true;
}

// How a message's body is delimited.
struct BodyKind {
  enum Kind { kNone, kLength, kChunked, kToClose, kBad } kind = kNone;
  uint64_t length = 0;
};

BodyKind BodyOf(const HttpHead& h, bool answer, std::string_view request_method) {
  if (answer &&
      ((h.status >= 100 && h.status < 200) || h.status == 204 || h.status == 304 || request_method == "HEAD")) {
    return {};
  }
  if (const std::string* te = h.Find("transfer-encoding")) {
    if (IEquals(Trim(*te), "chunked")) return {BodyKind::kChunked, 0};
    return {BodyKind::kBad, 0};
  }
  if (const std::string* cl = h.Find("content-length")) {
    uint64_t n = 0;
    if (!ParseDecimal(Trim(*cl), &n)) return {BodyKind::kBad, 0};
    return {n == 0 ? BodyKind::kNone : BodyKind::kLength, n};
  }
  return {answer ? BodyKind::kToClose : BodyKind::kNone, 0};
}

enum class Got { kOk, kEof, kFail, kBad };

// Buffered reading of one socket, with the framing rules.
class Wire {
 public:
  Wire(int fd, int wake) : fd_(fd), wake_(wake) {}
  std::string buf;  // read, not yet consumed

  // 1: bytes were added; 0: the peer closed; -1: error, woken or past the deadline.
  int Fill(Deadline d) {
    for (;;) {
      pollfd p[2] = {{fd_, POLLIN, 0}, {wake_, POLLIN, 0}};
      int n = RetryEintr([&] { return ::poll(p, wake_ >= 0 ? 2 : 1, d.PollTimeoutMs()); });
      if (n <= 0 || (wake_ >= 0 && p[1].revents)) return -1;
      char tmp[64 * 1024];
      ssize_t r = ::recv(fd_, tmp, sizeof tmp, MSG_DONTWAIT);
      if (r < 0 && (errno == EINTR || errno == EAGAIN)) continue;
      if (r < 0) return -1;
      if (r == 0) return 0;
      buf.append(tmp, static_cast<std::size_t>(r));
      return 1;
    }
  }

  // A head up to and including its blank line. kEof: the peer closed before sending a byte.
  Got ReadHead(std::string* raw, Deadline d) {
    for (;;) {
      const auto end = buf.find("\r\n\r\n");
      if (end != std::string::npos) {
        *raw = buf.substr(0, end + 4);
        buf.erase(0, end + 4);
        return Got::kOk;
      }
      if (buf.size() > kMaxHead) return Got::kBad;
      const int r = Fill(d);
      if (r == 0) return buf.empty() ? Got::kEof : Got::kBad;
      if (r < 0) return Got::kFail;
    }
  }

  // Passes a body as `kind` delimits it: the wire bytes to `raw`, the payload to `data`
  // (either may be null). kEof: the peer closed before the body was complete.
  Got PassBody(BodyKind kind, const std::function<bool(std::string_view)>& raw,
               const std::function<bool(std::string_view)>& data, Deadline d) {
    auto emit = [&](std::string_view bytes, bool payload) {
      if (raw && !raw(bytes)) return false;
      if (payload && data && !data(bytes)) return false;
      return true;
    };
    switch (kind.kind) {
      case BodyKind::kNone:
        return Got::kOk;
      case BodyKind::kBad:
        return Got::kBad;
      case BodyKind::kLength:
        return PassExact(kind.length, emit, d);
      case BodyKind::kToClose:
        for (;;) {
          if (!buf.empty()) {
            if (!emit(buf, true)) return Got::kFail;
            buf.clear();
          }
          const int r = Fill(d);
          if (r == 0) return Got::kOk;
          if (r < 0) return Got::kFail;
        }
      case BodyKind::kChunked:
        for (;;) {
          std::string line;
          if (Got g = ReadLine(&line, d); g != Got::kOk) return g;
          if (!emit(line + "\r\n", false)) return Got::kFail;
          std::string_view size_text = Trim(std::string_view(line).substr(0, line.find(';')));
          uint64_t size = 0;
          if (size_text.empty() || size_text.size() > 15) return Got::kBad;
          auto [p, ec] = std::from_chars(size_text.data(), size_text.data() + size_text.size(), size, 16);
          if (ec != std::errc() || p != size_text.data() + size_text.size()) return Got::kBad;
          if (size == 0) {
            for (;;) {  // trailers, up to the blank line
              if (Got g = ReadLine(&line, d); g != Got::kOk) return g;
              if (!emit(line + "\r\n", false)) return Got::kFail;
              if (line.empty()) return Got::kOk;
            }
          }
          if (Got g = PassExact(size, emit, d); g != Got::kOk) return g;
          if (Got g = ReadLine(&line, d); g != Got::kOk) return g;
          if (!line.empty()) return Got::kBad;
          if (!emit("\r\n", false)) return Got::kFail;
        }
    }
    return Got::kBad;
  }

 private:
  template <class Emit>
  Got PassExact(uint64_t n, Emit& emit, Deadline d) {
    while (n > 0) {
      if (buf.empty()) {
        const int r = Fill(d);
        if (r == 0) return Got::kEof;
        if (r < 0) return Got::kFail;
      }
      const std::size_t take = static_cast<std::size_t>(std::min<uint64_t>(n, buf.size()));
      if (!emit(std::string_view(buf).substr(0, take), true)) return Got::kFail;
      buf.erase(0, take);
      n -= take;
    }
    return Got::kOk;
  }
  Got ReadLine(std::string* line, Deadline d) {
    for (;;) {
      const auto end = buf.find("\r\n");
      if (end != std::string::npos) {
        *line = buf.substr(0, end);
        buf.erase(0, end + 2);
        return Got::kOk;
      }
      if (buf.size() > kMaxLine) return Got::kBad;
      const int r = Fill(d);
      if (r == 0) return Got::kEof;
      if (r < 0) return Got::kFail;
    }
  }

  int fd_;
  int wake_;
};

std::string Reason(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 201:
      return "Created";
    case 204:
      return "No Content";
    case 400:
      return "Bad Request";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 409:
      return "Conflict";
    case 410:
      return "Gone";
    case 413:
      return "Payload Too Large";
    case 500:
      return "Internal Server Error";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    default:
      return "Status";
  }
}

std::string FrameBody(std::string head, const Bytes& body, HttpFraming framing) {
  const std::string_view text(reinterpret_cast<const char*>(body.data()), body.size());
  if (framing == HttpFraming::kChunked) {
    head += "Transfer-Encoding: chunked\r\n\r\n";
    if (!text.empty()) {
      char size[32];
      std::snprintf(size, sizeof size, "%zx\r\n", text.size());
      head += size;
      head += text;
      head += "\r\n";
    }
    head += "0\r\n\r\n";
    return head;
  }
  head += "Content-Length: " + std::to_string(text.size()) + "\r\n\r\n";
  head += text;
  return head;
}

Result<UniqueFd> ConnectTo(const std::string& address, Deadline d) {
  auto sa = ParseSocketAddress(address, "http exchange");
  if (!sa.ok()) return std::move(sa).error();
  UniqueFd fd(::socket(sa->family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd) return ErrnoError("http exchange " + address + ": socket");
  if (::connect(fd.get(), sa->get(), sa->len) != 0) {
    if (errno != EINPROGRESS) return ErrnoError("http exchange " + address + ": connect");
    pollfd p{fd.get(), POLLOUT, 0};
    if (RetryEintr([&] { return ::poll(&p, 1, d.PollTimeoutMs()); }) <= 0) {
      return MakeError(Errc::Timeout, "http exchange " + address + ": connect timed out");
    }
    int err = 0;
    socklen_t len = sizeof err;
    ::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) return ErrnoError("http exchange " + address + ": connect", err);
  }
  return fd;
}

}  // namespace

const std::string* HttpHead::Find(std::string_view name) const {
  for (const auto& [k, v] : fields) {
    if (IEquals(k, name)) return &v;
  }
  return nullptr;
}

bool ParseHttpHead(std::string_view text, bool answer, HttpHead* out) {
  *out = HttpHead();
  auto next_line = [&]() {
    const auto nl = text.find("\r\n");
    std::string_view l = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 2);
    return l;
  };
  const std::string_view first = next_line();
  const auto sp1 = first.find(' ');
  if (sp1 == std::string_view::npos) return false;
  if (answer) {
    if (!first.starts_with("HTTP/1.")) return false;
    const std::string_view code = first.substr(sp1 + 1, 3);
    uint64_t status = 0;
    if (code.size() != 3 || !ParseDecimal(code, &status) || status < 100) return false;
    if (first.size() > sp1 + 4 && first[sp1 + 4] != ' ') return false;
    out->status = static_cast<int>(status);
  } else {
    const auto sp2 = first.find(' ', sp1 + 1);
    if (sp2 == std::string_view::npos || !first.substr(sp2 + 1).starts_with("HTTP/1.")) return false;
    out->method = std::string(first.substr(0, sp1));
    out->target = std::string(first.substr(sp1 + 1, sp2 - sp1 - 1));
  }
  while (!text.empty()) {
    const std::string_view l = next_line();
    if (l.empty()) break;
    const auto colon = l.find(':');
    if (colon == std::string_view::npos || colon == 0) return false;
    out->fields.emplace_back(std::string(l.substr(0, colon)), std::string(Trim(l.substr(colon + 1))));
  }
  return true;
}

std::string FormatHttpRequest(const HttpWireRequest& req, const std::string& host, HttpFraming framing) {
  std::string head = req.method + " " + req.target + " HTTP/1.1\r\nHost: " + host + "\r\n";
  for (const auto& f : req.fields) head += f.name + ": " + f.value + "\r\n";
  return FrameBody(std::move(head), req.body, framing);
}

std::string FormatHttpAnswer(const HttpWireAnswer& answer, HttpFraming framing) {
  std::string head = "HTTP/1.1 " + std::to_string(answer.status) + " " + Reason(answer.status) + "\r\n";
  for (const auto& f : answer.fields) head += f.name + ": " + f.value + "\r\n";
  return FrameBody(std::move(head), answer.body, framing);
}

Result<HttpReply> HttpExchange(const std::string& address, std::string_view bytes, Deadline d, bool hang_up) {
  const std::string ctx = "http exchange " + address;
  auto fd = ConnectTo(address, d);
  if (!fd.ok()) return std::move(fd).error();
  // A server may answer and close before taking everything (a refusal): then read its answer.
  (void)WriteAll(fd->get(), bytes, -1, d);
  if (hang_up) ::shutdown(fd->get(), SHUT_WR);
  HttpReply reply;
  Wire w(fd->get(), -1);
  std::string raw;
  const Got g = w.ReadHead(&raw, d);
  if (g == Got::kFail && d.expired()) return MakeError(Errc::Timeout, ctx + ": no answer before the deadline");
  if (g == Got::kEof || g == Got::kFail) {  // hung up (or reset) without answering
    if (!hang_up) return reply;
  } else if (g == Got::kBad || !ParseHttpHead(std::string_view(raw).substr(0, raw.size() - 2), true, &reply.head)) {
    return MakeError(Errc::Corrupt, ctx + ": the answer is not HTTP");
  } else {
    reply.status = reply.head.status;
    const auto sp = bytes.find(' ');
    const BodyKind kind = BodyOf(reply.head, true, bytes.substr(0, sp == std::string_view::npos ? 0 : sp));
    const Got b = w.PassBody(
        kind, nullptr,
        [&](std::string_view data) {
          reply.body.append(data);
          return true;
        },
        d);
    if (b == Got::kBad) return MakeError(Errc::Corrupt, ctx + ": malformed answer body");
    if (b == Got::kEof) return MakeError(Errc::PeerClosed, ctx + ": the server hung up mid-answer");
    if (b == Got::kFail) return MakeError(Errc::Timeout, ctx + ": answer incomplete at the deadline");
  }
  if (hang_up) {  // until the server closes: then it is done with what we sent
    for (;;) {
      w.buf.clear();
      const int r = w.Fill(d);
      if (r == 0) break;
      if (r < 0) {
        if (d.expired()) return MakeError(Errc::Timeout, ctx + ": the server kept the connection open");
        break;  // reset: closed too
      }
    }
  }
  return reply;
}

// ---- the interposer ------------------------------------------------------------------------

namespace {

struct Pending {
  std::string method, target;
  bool forged = false;
  bool forwarded = false;  // forged: the genuine answer comes first, and is dropped
  std::string answer;
  HttpInterposer::After after = HttpInterposer::After::kKeepServing;
};

struct Forgery {
  std::function<bool(const HttpHead&)> match;
  std::string answer;
  HttpInterposer::After after;
  HttpInterposer::Request request;
};

// One client connection and its upstream (named apart from proxy.cc's Conn: one library).
struct HttpConn;

}  // namespace

struct HttpInterposer::Impl {
  std::string address;
  SocketAddress upstream;
  std::string upstream_text;
  std::string unix_path;  // removed by Stop
  UniqueFd listen_fd;
  UniqueFd stop_fd;
  std::thread acceptor;
  std::atomic<bool> stopped{false};

  mutable std::mutex mu;
  std::optional<Forgery> armed;
  uint64_t forged = 0;
  std::deque<std::string> log;
  std::list<std::unique_ptr<HttpConn>> conns;

  void Note(const std::string& line) {
    std::lock_guard<std::mutex> g(mu);
    log.push_back(line);
    if (log.size() > kMaxLog) log.pop_front();
  }
  std::optional<Forgery> Take(const HttpHead& h) {
    std::lock_guard<std::mutex> g(mu);
    if (!armed || !armed->match(h)) return std::nullopt;
    auto f = std::move(armed);
    armed.reset();
    return f;
  }
  void AcceptLoop();
};

namespace {

struct HttpConn {
  HttpInterposer::Impl* ip = nullptr;
  uint64_t id = 0;
  UniqueFd client, upstream;
  UniqueFd wake;         // readable once torn down
  UniqueFd pending_evt;  // readable when a request was queued for the down thread
  std::mutex mu;
  std::deque<Pending> pending;
  std::atomic<bool> dead{false};
  std::atomic<int> live{2};
  std::thread up, down;

  std::string Tag() const { return "conn " + std::to_string(id); }
  void Teardown() {
    if (dead.exchange(true)) return;
    SignalFd(wake.get());
  }
  void ThreadExit() {
    if (live.fetch_sub(1) != 1) return;
    client.reset();
    upstream.reset();
  }
  void Queue(Pending p) {
    {
      std::lock_guard<std::mutex> g(mu);
      pending.push_back(std::move(p));
    }
    SignalFd(pending_evt.get());
  }
  void Up();
  void Down();
};

}  // namespace

void HttpConn::Up() {
  Wire w(client.get(), wake.get());
  const Deadline never = Deadline::Never();
  bool discard = false;  // after a forged answer that ends the exchange: drop what the client sends
  for (;;) {
    if (discard) {
      w.buf.clear();
      if (w.Fill(never) <= 0) {
        Teardown();
        break;
      }
      continue;
    }
    std::string raw;
    const Got g = w.ReadHead(&raw, never);
    if (g == Got::kEof) {
      ::shutdown(upstream.get(), SHUT_WR);  // the down thread ends when the server closes too
      break;
    }
    HttpHead h;
    if (g != Got::kOk || !ParseHttpHead(std::string_view(raw).substr(0, raw.size() - 2), false, &h)) {
      if (g != Got::kFail) ip->Note(Tag() + ": a request that is not HTTP; closing");
      Teardown();
      break;
    }
    const BodyKind kind = BodyOf(h, false, {});
    auto f = ip->Take(h);
    if (f && f->request == HttpInterposer::Request::kSwallowed) {
      const Got b = w.PassBody(kind, nullptr, nullptr, never);
      ip->Note(Tag() + ": " + h.method + " " + h.target + " -> forged answer of " + std::to_string(f->answer.size()) +
               " bytes" +
               (f->after == HttpInterposer::After::kClose  ? ", then close"
                : f->after == HttpInterposer::After::kHold ? ", then hold"
                                                           : ""));
      if (b != Got::kOk) {
        Teardown();
        break;
      }
      Queue({h.method, h.target, true, false, std::move(f->answer), f->after});
      if (f->after != HttpInterposer::After::kKeepServing) discard = true;
      continue;
    }
    if (f) {
      ip->Note(Tag() + ": " + h.method + " " + h.target + " -> forwarded; its answer will be replaced by " +
               std::to_string(f->answer.size()) + " forged bytes");
      Queue({h.method, h.target, true, true, std::move(f->answer), f->after});
      if (f->after != HttpInterposer::After::kKeepServing) discard = true;
    } else {
      Queue({h.method, h.target, false, false, {}, {}});
    }
    const int to = upstream.get(), wk = wake.get();
    auto forward = [&](std::string_view bytes) { return WriteAll(to, bytes, wk, never); };
    if (!forward(raw) || w.PassBody(kind, forward, nullptr, never) != Got::kOk) {
      Teardown();
      break;
    }
  }
  ThreadExit();
}

void HttpConn::Down() {
  Wire w(upstream.get(), wake.get());
  const Deadline never = Deadline::Never();
  const int to = client.get(), wk = wake.get();
  auto forward = [&](std::string_view bytes) { return WriteAll(to, bytes, wk, never); };
  for (;;) {
    std::optional<Pending> p;
    {
      std::lock_guard<std::mutex> g(mu);
      if (!pending.empty()) {
        p = std::move(pending.front());
        pending.pop_front();
      }
    }
    if (!p) {
      // Idle: wait for a request to answer, or for the server to speak (a keep-alive hang-up).
      if (w.buf.empty()) {
        pollfd fds[3] = {{upstream.get(), POLLIN, 0}, {pending_evt.get(), POLLIN, 0}, {wk, POLLIN, 0}};
        if (RetryEintr([&] { return ::poll(fds, 3, -1); }) < 0 || fds[2].revents) break;
        if (fds[1].revents) {
          DrainFd(pending_evt.get());
          continue;
        }
        const int r = w.Fill(never);
        if (r < 0) {
          Teardown();
          break;
        }
        if (r == 0) {  // the server closed an idle connection: so does the client's side
          ::shutdown(to, SHUT_WR);
          break;
        }
      }
      ip->Note(Tag() + ": " + std::to_string(w.buf.size()) + " bytes from the server with no request");
      if (!forward(w.buf)) {
        Teardown();
        break;
      }
      w.buf.clear();
      continue;
    }
    if (p->forged && p->forwarded) {
      std::string raw;
      HttpHead h;
      bool whole = false;
      for (;;) {  // the genuine answer, dropped
        if (w.ReadHead(&raw, never) != Got::kOk ||
            !ParseHttpHead(std::string_view(raw).substr(0, raw.size() - 2), true, &h)) {
          break;
        }
        if (h.status >= 100 && h.status < 200 && h.status != 101) continue;
        whole = w.PassBody(BodyOf(h, true, p->method), nullptr, nullptr, never) == Got::kOk;
        break;
      }
      ip->Note(Tag() + ": " + p->method + " " + p->target + " -> " +
               (whole ? std::to_string(h.status) + " dropped for the forged answer" : "no whole answer to drop"));
      if (!whole) {
        Teardown();
        break;
      }
    }
    if (p->forged) {
      {
        std::lock_guard<std::mutex> g(ip->mu);
        ++ip->forged;  // before the write: the client may act on the answer at once
      }
      if (!forward(p->answer)) {
        Teardown();
        break;
      }
      if (p->after == HttpInterposer::After::kKeepServing) continue;
      if (p->after == HttpInterposer::After::kClose) ::shutdown(to, SHUT_WR);  // the up thread ends it at EOF
      break;
    }
    bool ended = false;
    for (;;) {  // interim 1xx answers, then the real one
      std::string raw;
      const Got g = w.ReadHead(&raw, never);
      HttpHead h;
      if (g != Got::kOk || !ParseHttpHead(std::string_view(raw).substr(0, raw.size() - 2), true, &h)) {
        if (g == Got::kEof) {
          ip->Note(Tag() + ": " + p->method + " " + p->target + " -> the server closed without answering");
          ::shutdown(to, SHUT_WR);
        } else {
          if (g != Got::kFail) ip->Note(Tag() + ": an answer that is not HTTP; closing");
          Teardown();
        }
        ended = true;
        break;
      }
      if (!forward(raw)) {
        Teardown();
        ended = true;
        break;
      }
      if (h.status >= 100 && h.status < 200 && h.status != 101) continue;
      const BodyKind kind = BodyOf(h, true, p->method);
      ip->Note(Tag() + ": " + p->method + " " + p->target + " -> " + std::to_string(h.status));
      const Got b = w.PassBody(kind, forward, nullptr, never);
      if (b != Got::kOk) {
        Teardown();
        ended = true;
      } else if (kind.kind == BodyKind::kToClose) {
        ::shutdown(to, SHUT_WR);
        ended = true;
      }
      break;
    }
    if (ended) break;
  }
  // Held or closed after a forged answer, or the server is done: the up thread ends the
  // connection when the client hangs up.
  ThreadExit();
}

void HttpInterposer::Impl::AcceptLoop() {
  uint64_t next_id = 0;
  for (;;) {
    pollfd p[2] = {{listen_fd.get(), POLLIN, 0}, {stop_fd.get(), POLLIN, 0}};
    if (RetryEintr([&] { return ::poll(p, 2, -1); }) < 0 || p[1].revents) break;
    UniqueFd client(::accept4(listen_fd.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
    if (!client) continue;
    const uint64_t id = ++next_id;
    UniqueFd up(::socket(upstream.family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    bool connected = false;
    if (up) {
      if (::connect(up.get(), upstream.get(), upstream.len) == 0) {
        connected = true;
      } else if (errno == EINPROGRESS) {
        pollfd w[2] = {{up.get(), POLLOUT, 0}, {stop_fd.get(), POLLIN, 0}};
        if (RetryEintr([&] { return ::poll(w, 2, -1); }) > 0 && w[0].revents) {
          int err = 0;
          socklen_t len = sizeof err;
          connected = ::getsockopt(up.get(), SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0;
        }
      }
    }
    if (!connected) {
      Note("conn " + std::to_string(id) + ": upstream " + upstream_text + " unreachable; closing the client");
      continue;
    }
    int one = 1;  // (a unix socket refuses it, harmlessly)
    ::setsockopt(client.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    ::setsockopt(up.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    auto c = std::make_unique<HttpConn>();
    c->ip = this;
    c->id = id;
    c->client = std::move(client);
    c->upstream = std::move(up);
    c->wake = UniqueFd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    c->pending_evt = UniqueFd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (!c->wake || !c->pending_evt) continue;
    HttpConn* raw = c.get();
    {
      std::lock_guard<std::mutex> g(mu);
      conns.push_back(std::move(c));
    }
    raw->up = std::thread([raw] {
      HarnessThread();
      raw->Up();
    });
    raw->down = std::thread([raw] {
      HarnessThread();
      raw->Down();
    });
  }
}

HttpInterposer::HttpInterposer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
HttpInterposer::~HttpInterposer() { Stop(); }

Result<std::unique_ptr<HttpInterposer>> HttpInterposer::Start(const std::string& listen, const std::string& upstream) {
  auto up = ParseSocketAddress(upstream, "http interposer upstream");
  if (!up.ok()) return std::move(up).error();
  auto la = ParseSocketAddress(listen, "http interposer listen");
  if (!la.ok()) return std::move(la).error();
  auto impl = std::make_unique<Impl>();
  impl->upstream = *up;
  impl->upstream_text = upstream;
  impl->listen_fd = UniqueFd(::socket(la->family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!impl->listen_fd) return ErrnoError("http interposer listen " + listen + ": socket");
  int one = 1;
  if (la->family != AF_UNIX) ::setsockopt(impl->listen_fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (la->family == AF_INET6) ::setsockopt(impl->listen_fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  if (::bind(impl->listen_fd.get(), la->get(), la->len) != 0) return ErrnoError("http interposer listen " + listen);
  if (la->family == AF_UNIX) impl->unix_path = listen;
  auto fail = [&](const char* what) {
    auto e = ErrnoError("http interposer listen " + listen + ": " + what);
    if (!impl->unix_path.empty()) ::unlink(impl->unix_path.c_str());
    return e;
  };
  if (la->family == AF_UNIX && ::chmod(listen.c_str(), 0600) != 0) return fail("chmod 0600");
  if (::listen(impl->listen_fd.get(), SOMAXCONN) != 0) return fail("listen");
  sockaddr_storage bound{};
  socklen_t blen = sizeof bound;
  if (::getsockname(impl->listen_fd.get(), reinterpret_cast<sockaddr*>(&bound), &blen) != 0) return fail("getsockname");
  impl->address = la->family == AF_UNIX ? listen : FormatSocketAddress(bound, blen);
  impl->stop_fd = UniqueFd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!impl->stop_fd) return fail("eventfd");
  Impl* raw = impl.get();
  impl->acceptor = std::thread([raw] {
    HarnessThread();
    raw->AcceptLoop();
  });
  return std::unique_ptr<HttpInterposer>(new HttpInterposer(std::move(impl)));
}

const std::string& HttpInterposer::address() const { return impl_->address; }

void HttpInterposer::Arm(std::function<bool(const HttpHead&)> match, std::string answer, After after, Request request) {
  std::lock_guard<std::mutex> g(impl_->mu);
  impl_->armed = Forgery{std::move(match), std::move(answer), after, request};
}

uint64_t HttpInterposer::forged() const {
  std::lock_guard<std::mutex> g(impl_->mu);
  return impl_->forged;
}

std::vector<std::string> HttpInterposer::Log() const {
  std::lock_guard<std::mutex> g(impl_->mu);
  return {impl_->log.begin(), impl_->log.end()};
}

std::string HttpInterposer::Describe() const {
  std::string s = "interposer log:";
  for (const auto& l : Log()) s += "\n  " + l;
  return s;
}

void HttpInterposer::Stop() {
  if (!impl_ || impl_->stopped.exchange(true)) return;
  SignalFd(impl_->stop_fd.get());
  if (impl_->acceptor.joinable()) impl_->acceptor.join();
  std::list<std::unique_ptr<HttpConn>> all;
  {
    std::lock_guard<std::mutex> g(impl_->mu);
    all.swap(impl_->conns);
  }
  for (auto& c : all) {
    c->Teardown();
    if (c->up.joinable()) c->up.join();
    if (c->down.joinable()) c->down.join();
  }
  impl_->listen_fd.reset();
  if (!impl_->unix_path.empty()) ::unlink(impl_->unix_path.c_str());
}

}  // namespace ipch::toxics
