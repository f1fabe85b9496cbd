#include "http.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <dirent.h>
#include <httplib.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <charconv>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <deque>
#include <functional>
#include <limits>
#include <list>
#include <mutex>
#include <optional>
#include <random>
#include <system_error>
#include <thread>
#include <utility>

#include "ipch/socket_address.h"
#include "ipch/unique_fd.h"
#include "transports/stream/crc32c.h"

namespace ipch::http {
namespace {

using std::chrono::milliseconds;

// A request may ask the server to wait this long at most (queue space, a message): longer
// budgets are cut, so a client that vanished mid-wait holds a server thread for a bounded time.
constexpr milliseconds kMaxWait{60000};
// A Receive or Send with Deadline::Never long-polls in slices of this length.
constexpr milliseconds kLongPoll{10000};

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

bool ParseU64(std::string_view s, uint64_t* out) {
  if (s.empty() || s.size() > 20) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && p == s.data() + s.size();
}

// The CRC-32C of a message body, as the X-Ipch-Crc32c field carries it (8 lower-case hex digits):
// HTTP has no check of its own on what it carries, and a damaged body must never be delivered.
std::string BodyChecksum(ByteView body) {
  char hex[9];
  std::snprintf(hex, sizeof hex, "%08x", static_cast<unsigned>(Crc32c(body.data(), body.size())));
  return hex;
}

bool ChecksumMatches(const HeaderMap& headers, std::string_view body) {
  auto h = headers.find("x-ipch-crc32c");
  return h != headers.end() && h->second == BodyChecksum(AsBytes(body));
}

bool IsSessionId(std::string_view s) {
  return s.size() == 32 &&
         std::all_of(s.begin(), s.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

std::string NewSessionId() {
  // Unguessable, so one client cannot address another's session on a shared loopback.
  static std::mutex mu;
  static std::mt19937_64 rng = [] {
    std::random_device rd;
    std::seed_seq seq{rd(), rd(), rd(), rd()};
    return std::mt19937_64(seq);
  }();
  std::lock_guard lk(mu);
  char buf[33];
  std::snprintf(buf, sizeof buf, "%016llx%016llx", static_cast<unsigned long long>(rng()),
                static_cast<unsigned long long>(rng()));
  return buf;
}

std::vector<std::string_view> SplitPath(std::string_view path) {
  std::vector<std::string_view> parts;
  std::size_t start = 0;
  while (true) {
    std::size_t slash = path.find('/', start);
    parts.push_back(path.substr(start, slash == std::string_view::npos ? std::string_view::npos : slash - start));
    if (slash == std::string_view::npos) break;
    start = slash + 1;
  }
  return parts;
}

HttpResponse Reply(int status, std::string body = {}, HeaderMap headers = {}) {
  HttpResponse r;
  r.status = status;
  r.body = std::move(body);
  r.headers = std::move(headers);
  return r;
}

HttpResponse Busy(std::string reason) { return Reply(503, reason, {{"x-ipch-reason", reason}}); }

// Reads a wait budget; false when present but malformed.
bool WaitBudget(const HttpRequest& req, milliseconds* out) {
  uint64_t ms = 0;
  if (auto h = req.headers.find("x-ipch-wait-ms"); h != req.headers.end()) {
    if (!ParseU64(h->second, &ms)) return false;
  } else if (auto q = req.query.find("wait_ms"); q != req.query.end()) {
    if (!ParseU64(q->second, &ms)) return false;
  }
  *out = milliseconds(static_cast<int64_t>(std::min<uint64_t>(ms, kMaxWait.count())));
  return true;
}

// Waits on `cv` until `d`; Never waits without a timeout.
template <class Lock>
void WaitUntil(std::condition_variable& cv, Lock& lk, Deadline d) {
  if (d.never()) {
    cv.wait(lk);
  } else {
    cv.wait_until(lk, d.at());
  }
}

}  // namespace

// ---- server state ------------------------------------------------------------------------------

namespace {

struct Session {
  explicit Session(std::string i) : id(std::move(i)) {}
  const std::string id;
  std::mutex mu;
  // Separate waiters, so that a change in one direction wakes only those who wait on it:
  std::condition_variable in_cv;   // inbound changed: server Receive, POSTs waiting for space
  std::condition_variable out_cv;  // outbound changed: GET long polls, server Sends waiting for space
  void NotifyAll() {               // a flag changed: everyone re-checks
    in_cv.notify_all();
    out_cv.notify_all();
  }
  std::deque<Bytes> inbound;  // client -> server, not yet received
  std::size_t inbound_bytes = 0;
  uint64_t last_in_seq = 0;  // highest client sequence number queued (retries at or below are acknowledged only)
  std::deque<std::pair<uint64_t, Bytes>> outbound;  // server -> client, kept until acknowledged
  std::size_t outbound_bytes = 0;
  uint64_t next_out_seq = 1;
  // The highest sequence number handed to the client in an answer. Only the front message can
  // be handed out and not yet acknowledged (a client fetches one at a time); the client has it,
  // so it no longer takes room from the messages the server sends next.
  uint64_t answered_seq = 0;
  bool FrontAnswered() const { return !outbound.empty() && outbound.front().first <= answered_seq; }
  std::size_t UnansweredBytes() const {
    return outbound_bytes - (FrontAnswered() ? outbound.front().second.size() : 0);
  }
  bool NothingUnanswered() const { return outbound.size() == (FrontAnswered() ? 1u : 0u); }
  bool client_closed = false;  // DELETE arrived
  bool client_broken = false;  // the presence connection hung up without a DELETE: the client is gone
  bool server_closed = false;  // the server side closed, or the listener closed before accepting it
  bool stopping = false;       // the HTTP server is shutting down
  bool client_gone() const { return client_closed || client_broken; }
};

}  // namespace

struct ServerState::Core {
  Core(std::size_t max, std::size_t qb) : max_message(max), queue_bytes(qb) {}
  const std::size_t max_message, queue_bytes;
  mutable std::mutex mu;  // taken before any session's mutex, never after
  std::condition_variable accept_cv;
  std::map<std::string, std::shared_ptr<Session>> sessions;
  std::deque<std::shared_ptr<Session>> backlog;  // connected, not yet accepted
  bool accepting = true;
  bool stopping = false;

  std::shared_ptr<Session> Find(const std::string& id) {
    std::lock_guard lk(mu);
    auto it = sessions.find(id);
    return it == sessions.end() ? nullptr : it->second;
  }
  // Forgets a session once neither side can use it any more.
  void MaybeErase(const std::shared_ptr<Session>& s) {
    std::lock_guard lk(mu);
    std::lock_guard sl(s->mu);
    if (s->client_gone() && s->server_closed) sessions.erase(s->id);
  }
  bool Admits(std::size_t queued_bytes, bool empty, std::size_t n) const {
    return empty || queued_bytes + n <= queue_bytes;
  }
};

class Connection::Impl {
 public:
  virtual ~Impl() = default;
  virtual Status Send(ByteView msg, Deadline d) = 0;
  virtual Status Receive(Bytes& out, Deadline d) = 0;
  virtual Status Close() = 0;
  virtual std::size_t max_message_size() const = 0;
  virtual std::string session() const = 0;
};

namespace {

// The accepted end: pure in-process queues shared with the request handlers.
class ServerConn final : public Connection::Impl {
 public:
  ServerConn(std::shared_ptr<ServerState::Core> core, std::shared_ptr<Session> s, std::shared_ptr<void> keep,
             std::string label)
      : core_(std::move(core)), s_(std::move(s)), keep_(std::move(keep)), label_(std::move(label)) {}
  ~ServerConn() override { (void)Close(); }

  Status Send(ByteView msg, Deadline d) override;
  Status Receive(Bytes& out, Deadline d) override;
  Status Close() override;
  std::size_t max_message_size() const override { return core_->max_message; }
  std::string session() const override { return closed_ ? std::string() : s_->id; }

 private:
  Status Gone(const char* op) const {
    if (s_->client_broken && !s_->client_closed) {
      return MakeError(Errc::PeerClosed, label_ + " " + op + ": client gone (its presence connection hung up)");
    }
    if (s_->client_closed) return MakeError(Errc::PeerClosed, label_ + " " + op + ": client closed the session");
    return MakeError(Errc::PeerClosed, label_ + " " + op + ": server shutting down");
  }

  std::shared_ptr<ServerState::Core> core_;
  std::shared_ptr<Session> s_;
  std::shared_ptr<void> keep_;  // the HTTP server this session is served by
  std::string label_;
  std::atomic<bool> closed_{false};
};

Status ServerConn::Send(ByteView msg, Deadline d) {
  const bool expired_on_entry = d.expired();
  if (closed_) return MakeError(Errc::Closed, label_ + " send: connection closed");
  if (msg.size() > core_->max_message) {
    return MakeError(Errc::MessageTooLarge, label_ + " send: " + std::to_string(msg.size()) + " bytes above the " +
                                                std::to_string(core_->max_message) + "-byte maximum; nothing sent");
  }
  std::unique_lock lk(s_->mu);
  for (;;) {
    if (closed_) return MakeError(Errc::Closed, label_ + " send: connection closed");
    if (s_->client_gone() || s_->stopping) return Gone("send");
    if (core_->Admits(s_->UnansweredBytes(), s_->NothingUnanswered(), msg.size())) {
      s_->outbound.emplace_back(s_->next_out_seq++, Bytes(msg.begin(), msg.end()));
      s_->outbound_bytes += msg.size();
      s_->out_cv.notify_all();
      return Ok();
    }
    if (expired_on_entry) return MakeError(Errc::WouldBlock, label_ + " send: client has not fetched earlier messages");
    if (d.expired()) return MakeError(Errc::Timeout, label_ + " send: client did not fetch earlier messages in time");
    WaitUntil(s_->out_cv, lk, d);
  }
}

Status ServerConn::Receive(Bytes& out, Deadline d) {
  const bool expired_on_entry = d.expired();
  if (closed_) return MakeError(Errc::Closed, label_ + " receive: connection closed");
  std::unique_lock lk(s_->mu);
  for (;;) {
    if (closed_) return MakeError(Errc::Closed, label_ + " receive: connection closed");
    if (!s_->inbound.empty()) {
      out = std::move(s_->inbound.front());
      s_->inbound.pop_front();
      s_->inbound_bytes -= out.size();
      s_->in_cv.notify_all();  // a POST may be waiting for queue space
      return Ok();
    }
    if (s_->client_gone() || s_->stopping) return Gone("receive");
    if (expired_on_entry) return MakeError(Errc::WouldBlock, label_ + " receive: no message queued");
    if (d.expired()) return MakeError(Errc::Timeout, label_ + " receive: no message before the deadline");
    WaitUntil(s_->in_cv, lk, d);
  }
}

Status ServerConn::Close() {
  if (closed_.exchange(true)) return Ok();
  {
    std::lock_guard lk(s_->mu);
    s_->server_closed = true;
    s_->NotifyAll();
  }
  core_->MaybeErase(s_);
  keep_.reset();  // may stop the HTTP server if the listener and every other session are gone
  return Ok();
}

}  // namespace

ServerState::ServerState(std::size_t max_message, std::size_t queue_bytes)
    : core_(std::make_shared<Core>(max_message, queue_bytes)) {}

std::size_t ServerState::max_message_size() const { return core_->max_message; }

std::size_t ServerState::session_count() const {
  std::lock_guard lk(core_->mu);
  return core_->sessions.size();
}

Result<Connection> ServerState::Accept(Deadline d, const std::string& label, std::shared_ptr<void> keep) {
  const bool expired_on_entry = d.expired();
  std::unique_lock lk(core_->mu);
  for (;;) {
    if (!core_->accepting || core_->stopping) return MakeError(Errc::Closed, label + " accept: listener closed");
    if (!core_->backlog.empty()) {
      auto s = std::move(core_->backlog.front());
      core_->backlog.pop_front();
      return Connection(std::make_unique<ServerConn>(core_, std::move(s), std::move(keep), label + " (server)"));
    }
    if (expired_on_entry) return MakeError(Errc::WouldBlock, label + " accept: no client waiting");
    if (d.expired()) return MakeError(Errc::Timeout, label + " accept: no client before the deadline");
    WaitUntil(core_->accept_cv, lk, d);
  }
}

void ServerState::StopAccepting() {
  std::lock_guard lk(core_->mu);
  core_->accepting = false;
  for (auto& s : core_->backlog) {
    std::lock_guard sl(s->mu);
    s->server_closed = true;  // never accepted: its client learns 410 Gone
    s->NotifyAll();
    if (s->client_gone()) core_->sessions.erase(s->id);
  }
  core_->backlog.clear();
  core_->accept_cv.notify_all();
}

void ServerState::Stop() {
  std::lock_guard lk(core_->mu);
  core_->stopping = true;
  for (auto& [id, s] : core_->sessions) {
    std::lock_guard sl(s->mu);
    s->stopping = true;
    s->NotifyAll();
  }
  core_->accept_cv.notify_all();
}

bool ServerState::PresenceStep(const std::string& session, milliseconds wait) {
  auto s = core_->Find(session);
  if (!s) return false;
  std::unique_lock lk(s->mu);
  s->in_cv.wait_for(lk, wait, [&] { return s->client_gone() || s->stopping; });
  return !(s->client_gone() || s->stopping);
}

void ServerState::PresenceEnded(const std::string& session, bool broken) {
  auto s = core_->Find(session);
  if (!s) return;
  {
    std::lock_guard lk(s->mu);
    if (broken && !s->client_closed && !s->stopping) s->client_broken = true;
    s->NotifyAll();
  }
  core_->MaybeErase(s);
}

// ---- the request handler -----------------------------------------------------------------------

namespace {

HttpResponse HandleConnect(ServerState::Core& c) {
  std::lock_guard lk(c.mu);
  if (c.stopping) return Busy("stopping");
  if (!c.accepting) return Busy("listener-closed");
  auto s = std::make_shared<Session>(NewSessionId());
  c.sessions[s->id] = s;
  c.backlog.push_back(s);
  c.accept_cv.notify_all();
  HttpResponse r = Reply(201, s->id + " " + std::to_string(c.max_message) + "\n");
  r.presence_stream = true;
  r.session = s->id;
  return r;
}

HttpResponse HandlePost(ServerState::Core& c, const std::string& id, const HttpRequest& req) {
  uint64_t seq = 0;
  auto h = req.headers.find("x-ipch-seq");
  if (h == req.headers.end() || !ParseU64(h->second, &seq) || seq == 0) {
    return Reply(400, "missing or malformed X-Ipch-Seq");
  }
  if (!ChecksumMatches(req.headers, req.body)) return Reply(400, "missing or mismatched X-Ipch-Crc32c");
  milliseconds wait{};
  if (!WaitBudget(req, &wait)) return Reply(400, "malformed X-Ipch-Wait-Ms");
  if (req.body.size() > c.max_message) return Reply(413, "message above " + std::to_string(c.max_message) + " bytes");
  auto s = c.Find(id);
  if (!s) return Reply(404, "unknown session");
  const auto until = Clock::now() + wait;
  std::unique_lock lk(s->mu);
  for (;;) {
    if (s->client_gone()) return Reply(410, "session closed by the client");
    // A retry of a message already queued: acknowledge it, never deliver it twice.
    if (seq <= s->last_in_seq) return Reply(204, {}, {{"x-ipch-duplicate", "1"}});
    // One that skips ahead: the messages between would be lost (their retries acknowledged).
    if (seq != s->last_in_seq + 1) {
      return Reply(409,
                   "message " + std::to_string(seq) + " out of order: expected " + std::to_string(s->last_in_seq + 1));
    }
    if (s->server_closed) return Reply(410, "server side closed");
    if (s->stopping) return Busy("stopping");
    if (c.Admits(s->inbound_bytes, s->inbound.empty(), req.body.size())) break;
    if (Clock::now() >= until) return Busy("queue-full");
    s->in_cv.wait_until(lk, until);
  }
  const auto* p = reinterpret_cast<const std::byte*>(req.body.data());
  s->inbound.emplace_back(p, p + req.body.size());
  s->inbound_bytes += req.body.size();
  s->last_in_seq = seq;
  s->in_cv.notify_all();
  return Reply(204);
}

HttpResponse HandleGet(ServerState::Core& c, const std::string& id, const HttpRequest& req) {
  uint64_t after = 0;
  if (auto q = req.query.find("after"); q != req.query.end() && !ParseU64(q->second, &after)) {
    return Reply(400, "malformed after");
  }
  milliseconds wait{};
  if (!WaitBudget(req, &wait)) return Reply(400, "malformed wait_ms");
  auto s = c.Find(id);
  if (!s) return Reply(404, "unknown session");
  std::unique_lock lk(s->mu);
  if (after >= s->next_out_seq) return Reply(400, "acknowledges a message never sent");
  // Everything up to `after` arrived: only now is it dropped, so a lost answer is fetched again.
  bool freed = false;
  while (!s->outbound.empty() && s->outbound.front().first <= after) {
    s->outbound_bytes -= s->outbound.front().second.size();
    s->outbound.pop_front();
    freed = true;
  }
  if (freed) s->out_cv.notify_all();
  const auto until = Clock::now() + wait;
  for (;;) {
    if (!s->outbound.empty()) {
      const auto& [seq, msg] = s->outbound.front();
      if (seq > s->answered_seq) {
        s->answered_seq = seq;
        s->out_cv.notify_all();  // a Send waiting for room may have it now
      }
      return MessageAnswer(seq, msg);
    }
    if (s->server_closed) return Reply(410, "server side closed");
    if (s->client_gone()) return Reply(410, "session closed by the client");
    if (s->stopping) return Busy("stopping");
    if (Clock::now() >= until) return Reply(204);
    s->out_cv.wait_until(lk, until);
  }
}

HttpResponse HandleDelete(ServerState::Core& c, const std::string& id) {
  auto s = c.Find(id);
  if (!s) return Reply(204);  // idempotent: already forgotten
  {
    std::lock_guard lk(s->mu);
    s->client_closed = true;
    s->NotifyAll();
  }
  c.MaybeErase(s);
  return Reply(204);
}

}  // namespace

HttpResponse HandleRequest(ServerState& state, const HttpRequest& req) {
  ServerState::Core& c = *state.core_;
  const auto parts = SplitPath(req.path);
  // "/v1/connect" -> {"", "v1", "connect"}; "/v1/s/<id>/msg" -> {"", "v1", "s", id, "msg"}
  if (parts.size() < 3 || !parts[0].empty() || parts[1] != "v1") return Reply(404, "unknown path");
  if (parts.size() == 3 && parts[2] == "connect") {
    if (req.method != "POST") return Reply(405, "connect is POST");
    return HandleConnect(c);
  }
  if (parts[2] != "s" || parts.size() < 4 || parts.size() > 5) return Reply(404, "unknown path");
  if (!IsSessionId(parts[3])) return Reply(400, "malformed session id");
  const std::string id(parts[3]);
  if (parts.size() == 4) {
    if (req.method != "DELETE") return Reply(405, "a session is only DELETEd");
    return HandleDelete(c, id);
  }
  if (parts[4] != "msg") return Reply(404, "unknown path");
  if (req.method == "POST") return HandlePost(c, id, req);
  if (req.method == "GET") return HandleGet(c, id, req);
  return Reply(405, "messages are POSTed or fetched with GET");
}

bool OpOf(std::string_view method, std::string_view path, Op* op) {
  const auto parts = SplitPath(path.substr(0, path.find('?')));
  if (parts.size() < 3 || !parts[0].empty() || parts[1] != "v1") return false;
  if (parts.size() == 3 && parts[2] == "connect" && method == "POST") {
    *op = Op::Connect;
  } else if (parts.size() == 4 && parts[2] == "s" && method == "DELETE") {
    *op = Op::Close;
  } else if (parts.size() == 5 && parts[2] == "s" && parts[4] == "msg" && (method == "POST" || method == "GET")) {
    *op = method == "POST" ? Op::Send : Op::Receive;
  } else {
    return false;
  }
  return true;
}

HeaderMap MessagePostHeaders(uint64_t seq, const std::string& checksum, milliseconds wait) {
  return {{"x-ipch-seq", std::to_string(seq)},
          {"x-ipch-wait-ms", std::to_string(wait.count())},
          {"x-ipch-crc32c", checksum}};
}

HttpRequest MessagePost(const std::string& session, uint64_t seq, ByteView body, milliseconds wait) {
  HttpRequest r;
  r.method = "POST";
  r.path = "/v1/s/" + session + "/msg";
  r.headers = MessagePostHeaders(seq, BodyChecksum(body), wait);
  r.body.assign(reinterpret_cast<const char*>(body.data()), body.size());
  return r;
}

HttpResponse MessageAnswer(uint64_t seq, ByteView body) {
  return Reply(200, std::string(reinterpret_cast<const char*>(body.data()), body.size()),
               {{"x-ipch-seq", std::to_string(seq)}, {"x-ipch-crc32c", BodyChecksum(body)}});
}

// ---- the response decoder ----------------------------------------------------------------------

Status DecodeResponse(Op op, long status, const HeaderMap& headers, std::string_view body, Decoded* out,
                      const std::string& context) {
  auto header = [&](const char* name) -> std::string {
    auto it = headers.find(name);
    return it == headers.end() ? std::string() : it->second;
  };
  auto what = [&](const char* meaning) {
    std::string s = context + ": HTTP " + std::to_string(status) + " " + meaning;
    std::string_view shown = body.substr(0, 120);
    if (!shown.empty() && op != Op::Receive) {
      s += " (";
      for (char ch : shown) s += std::isprint(static_cast<unsigned char>(ch)) ? ch : '?';
      s += ")";
    }
    return s;
  };
  switch (status) {
    case 413:
      if (op == Op::Send) return MakeError(Errc::MessageTooLarge, what("message too large; nothing was queued"));
      return MakeError(Errc::Corrupt, what("too large, for a request without a message"));
    case 410:
      return MakeError(Errc::PeerClosed, what("peer closed the session"));
    case 404:
      return MakeError(Errc::PeerClosed, what("session unknown to the server (closed, or the server restarted)"));
    case 503:
      if (op == Op::Send && header("x-ipch-reason") == "queue-full") {
        return MakeError(Errc::Timeout, what("peer's queue stayed full"));
      }
      return MakeError(Errc::PeerClosed, what("server not accepting"));
    default:
      break;
  }
  // Any other refusal: the server did not understand us (we and it disagree on the protocol).
  if (status >= 400 && status < 500) return MakeError(Errc::Corrupt, what("server rejected the request as malformed"));
  // The server failed: it can no longer vouch for the session (a message may or may not have
  // been queued), so the session is over, as if the peer had died.
  if (status >= 500 && status < 600) return MakeError(Errc::PeerClosed, what("server failed"));
  switch (op) {
    case Op::Connect: {
      if (status != 201) break;
      // "<32 hex> <max>\n"
      auto nl = body.find('\n');
      auto sp = body.find(' ');
      uint64_t max = 0;
      if (nl == std::string_view::npos || sp == std::string_view::npos || sp > nl || !IsSessionId(body.substr(0, sp)) ||
          !ParseU64(body.substr(sp + 1, nl - sp - 1), &max) || max == 0) {
        return MakeError(Errc::Corrupt, what("malformed connect answer"));
      }
      if (out) {
        out->session = std::string(body.substr(0, sp));
        out->max_message = static_cast<std::size_t>(max);
      }
      return Ok();
    }
    case Op::Send:
    case Op::Close:
      if (status == 204 || status == 200) return Ok();
      break;
    case Op::Receive: {
      if (status == 204) return MakeError(Errc::Timeout, context + ": no message yet");
      if (status != 200) break;
      uint64_t seq = 0;
      if (!ParseU64(header("x-ipch-seq"), &seq) || seq == 0) {
        return MakeError(Errc::Corrupt, what("message without a valid X-Ipch-Seq"));
      }
      if (!ChecksumMatches(headers, body)) {
        return MakeError(Errc::Corrupt, what("message whose X-Ipch-Crc32c is missing or does not match its body"));
      }
      if (out) out->seq = seq;
      return Ok();
    }
  }
  return MakeError(Errc::Corrupt, what("unexpected status"));
}

Status DecodeTransferError(int curl_code, long os_errno, const std::string& detail, const std::string& context) {
  if (curl_code < 0 || curl_code >= static_cast<int>(CURL_LAST)) {
    // Not a CURLcode this libcurl knows (converting it to the enum would be undefined).
    return ErrnoError(context + ": curl error " + std::to_string(curl_code) + ", unknown to this libcurl",
                      os_errno != 0 ? static_cast<int>(os_errno) : EPROTO);
  }
  const auto code = static_cast<CURLcode>(curl_code);
  std::string msg = context + ": " + curl_easy_strerror(code);
  if (!detail.empty()) msg += " (" + detail + ")";
  switch (code) {
    case CURLE_OPERATION_TIMEDOUT:
      return MakeError(Errc::Timeout, msg);
    case CURLE_RECV_ERROR:
      // A reset (the OS says so), or curl refused what came (a chunk size that is not hex).
      if (os_errno == 0) return MakeError(Errc::Corrupt, msg);
      return MakeError(Errc::PeerClosed, msg);
    case CURLE_COULDNT_CONNECT:
      // Refused: nobody listens there any more. But this host's own lack of descriptors,
      // buffers, memory or ports says nothing about the peer: that errno, and nothing was sent.
      switch (os_errno) {
        case EMFILE:
        case ENFILE:
        case ENOBUFS:
        case ENOMEM:
        case EAGAIN:
        case EADDRNOTAVAIL:
        case EACCES:
        case EPERM:
          return ErrnoError(msg, static_cast<int>(os_errno));
        default:
          return MakeError(Errc::PeerClosed, msg);
      }
    case CURLE_GOT_NOTHING:   // the server closed without answering
    case CURLE_SEND_ERROR:    // reset or broken pipe
    case CURLE_PARTIAL_FILE:  // the answer was cut short
      return MakeError(Errc::PeerClosed, msg);
    case CURLE_UNSUPPORTED_PROTOCOL:  // an answer that is not HTTP/1.x ("HTTP/0.9", a bad status line)
    case CURLE_WEIRD_SERVER_REPLY:    // a malformed head
    case CURLE_BAD_CONTENT_ENCODING:  // a body curl cannot decode
      return MakeError(Errc::Corrupt, msg);
    case CURLE_ABORTED_BY_CALLBACK:
      return MakeError(Errc::Closed, msg);
    case CURLE_OUT_OF_MEMORY:
      return ErrnoError(msg, ENOMEM);
    default:
      // No Errc names it: keep the OS's errno when curl saw one, else a protocol error.
      return ErrnoError(msg, os_errno != 0 ? static_cast<int>(os_errno) : EPROTO);
  }
}

// ---- the client --------------------------------------------------------------------------------

namespace {

void GlobalInit() {
  static const CURLcode rc = curl_global_init(CURL_GLOBAL_DEFAULT);
  (void)rc;
}

// How long past a request's own wait budget we wait for the server's answer: the answer's
// transfer time. Only a stalled server makes a call overrun its deadline, by at most this.
Clock::duration Grace() { return Scaled(milliseconds(500)); }

long ToMs(Clock::duration d) {
  auto ms = std::chrono::ceil<milliseconds>(d).count();
  return ms > std::numeric_limits<long>::max() / 2 ? std::numeric_limits<long>::max() / 2 : static_cast<long>(ms);
}

// One reusable easy handle and the scratch of its current request. Reusing the handle keeps
// its connection alive between requests.
struct Transfer {
  CURL* h = nullptr;
  HeaderMap headers;
  Bytes body;
  std::size_t body_limit = 0;
  std::string refused;  // why a callback aborted the transfer (Corrupt)
  std::atomic<bool>* abort = nullptr;
  char errbuf[CURL_ERROR_SIZE] = {};
  int socket_errno = 0;  // why this request's socket(2) failed (curl does not keep it)

  Transfer() = default;
  Transfer(const Transfer&) = delete;
  Transfer& operator=(const Transfer&) = delete;
  ~Transfer() { Reset(); }
  void Reset() {
    if (h) curl_easy_cleanup(h);
    h = nullptr;
  }

  static size_t OnHeader(char* buf, size_t size, size_t n, void* ud) {
    auto* t = static_cast<Transfer*>(ud);
    std::string_view line(buf, size * n);
    if (line.starts_with("HTTP/")) {
      t->headers.clear();  // a new response (an interim 1xx came before)
      return size * n;
    }
    auto colon = line.find(':');
    if (colon != std::string_view::npos) {
      std::string_view v = line.substr(colon + 1);
      while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
      while (!v.empty() && (v.back() == '\r' || v.back() == '\n' || v.back() == ' ')) v.remove_suffix(1);
      std::string name = Lower(line.substr(0, colon));
      if (name == "content-length") {
        // Checked here, before any body byte: a length we would refuse is refused at once,
        // not after waiting for bytes that may never come.
        uint64_t len = 0;
        if (!ParseU64(v, &len)) {
          t->refused = "an answer whose Content-Length is not a number";
          return 0;  // aborts the transfer
        }
        if (len > t->body_limit) {
          t->refused = "an answer of " + std::to_string(len) + " bytes, above the " + std::to_string(t->body_limit) +
                       "-byte limit";
          return 0;
        }
        t->body.reserve(static_cast<std::size_t>(len));
      }
      t->headers[std::move(name)] = std::string(v);
    }
    return size * n;
  }
  static size_t OnBody(char* data, size_t size, size_t n, void* ud) {
    auto* t = static_cast<Transfer*>(ud);
    const size_t len = size * n;
    if (t->body.size() + len > t->body_limit) {
      t->refused = "an answer above the " + std::to_string(t->body_limit) + "-byte limit";
      return 0;  // aborts the transfer
    }
    const auto* p = reinterpret_cast<const std::byte*>(data);
    t->body.insert(t->body.end(), p, p + len);
    return len;
  }
  // curl's socket(2), made here so that a failure keeps its errno: out of descriptors is this
  // host's shortage, not a refusal by the peer.
  static curl_socket_t OnOpenSocket(void* ud, curlsocktype, curl_sockaddr* a) {
    auto* t = static_cast<Transfer*>(ud);
    const int fd = ::socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
    if (fd < 0) t->socket_errno = errno;
    return fd < 0 ? CURL_SOCKET_BAD : fd;
  }
  static int OnProgress(void* ud, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
    auto* t = static_cast<Transfer*>(ud);
    return t->abort && t->abort->load() ? 1 : 0;
  }

  Status Init(std::atomic<bool>* abort_flag, const std::string& context) {
    GlobalInit();
    h = curl_easy_init();
    if (!h) return ErrnoError(context + ": curl_easy_init", ENOMEM);
    abort = abort_flag;
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);  // timeouts without SIGALRM; we are a library
    curl_easy_setopt(h, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(h, CURLOPT_PROXY, "");  // loopback: never through an http_proxy from the environment
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, &Transfer::OnHeader);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, this);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, &Transfer::OnBody);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, this);
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, &Transfer::OnProgress);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, this);
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_OPENSOCKETFUNCTION, &Transfer::OnOpenSocket);
    curl_easy_setopt(h, CURLOPT_OPENSOCKETDATA, this);
    curl_easy_setopt(h, CURLOPT_BUFFERSIZE, 256L * 1024);
    curl_easy_setopt(h, CURLOPT_UPLOAD_BUFFERSIZE, 1024L * 1024);
    return Ok();
  }

  // Runs one request; OK means an HTTP answer came (its status in *status).
  Status Perform(const std::string& url, Clock::duration timeout, long* status, const std::string& context) {
    headers.clear();
    body.clear();
    refused.clear();
    errbuf[0] = '\0';
    socket_errno = 0;
    curl_easy_setopt(h, CURLOPT_URL, url.c_str());
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, std::max(1L, ToMs(timeout)));
    CURLcode rc = curl_easy_perform(h);
    if (rc != CURLE_OK) {
      if (!refused.empty()) return MakeError(Errc::Corrupt, context + ": " + refused);
      if (abort && abort->load()) return MakeError(Errc::Closed, context + ": connection closed while in flight");
      long os_errno = 0;
      curl_easy_getinfo(h, CURLINFO_OS_ERRNO, &os_errno);
      if (rc == CURLE_COULDNT_CONNECT && socket_errno != 0) os_errno = socket_errno;
      return DecodeTransferError(rc, os_errno, errbuf, context);
    }
    *status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
    return Ok();
  }
};

struct SList {
  curl_slist* l = nullptr;
  ~SList() { curl_slist_free_all(l); }
  bool Add(const std::string& s) {
    curl_slist* n = curl_slist_append(l, s.c_str());
    if (!n) return false;
    l = n;
    return true;
  }
};

class ClientConn final : public Connection::Impl {
 public:
  explicit ClientConn(std::string address)
      : address_(std::move(address)), base_("http://" + address_), label_("http " + address_) {}
  ~ClientConn() override { (void)Close(); }

  // Opens the presence stream (POST /v1/connect) and waits for its first line.
  Status Open(Deadline d);

  Status Send(ByteView msg, Deadline d) override;
  Status Receive(Bytes& out, Deadline d) override;
  Status Close() override;
  std::size_t max_message_size() const override { return max_; }
  std::string session() const override { return closed_ ? std::string() : session_; }

 private:
  static size_t OnPresenceBody(char* data, size_t size, size_t n, void* ud);
  std::string SessionUrl() const { return base_ + "/v1/s/" + session_; }

  const std::string address_, base_, label_;
  std::string session_;
  std::size_t max_ = kDefaultMaxMessage;
  std::atomic<bool> closed_{false};
  std::atomic<bool> abort_send_{false}, abort_recv_{false};

  // Makes a failure sticky where the contract says (http.h): Corrupt, and PeerClosed on the
  // server's word (404, 5xx), for the connection; PeerClosed from a 410 or a broken transfer
  // for this direction (`direction`) only.
  void Record(const Status& st, long status, std::optional<Error>* direction) {
    if (st.Is(Errc::Corrupt) || (st.Is(Errc::PeerClosed) && (status == 404 || status >= 500))) {
      std::lock_guard lk(failed_mu_);
      if (!failed_) failed_ = st.error();
    } else if (st.Is(Errc::PeerClosed)) {
      *direction = st.error();
    }
  }
  std::optional<Error> Failed() const {
    std::lock_guard lk(failed_mu_);
    return failed_;
  }
  // One POST of message `seq` until it is answered; `unknown`: it timed out in flight.
  Status Post(uint64_t seq, ByteView msg, Deadline d, bool expired_on_entry, const std::string& ctx, bool* unknown);

  mutable std::mutex failed_mu_;
  std::optional<Error> failed_;  // sticky for the whole connection

  std::mutex send_mu_;  // one Send (or the closing DELETE) at a time
  Transfer send_;
  uint64_t next_seq_ = 1;             // the number of the next message not yet (maybe) queued
  std::optional<Bytes> unsure_;       // message next_seq_ - 1 timed out in flight: retried first
  std::optional<Error> send_failed_;  // sticky PeerClosed

  std::mutex recv_mu_;  // one Receive at a time
  Transfer recv_;
  uint64_t last_seq_ = 0;  // the last message received; acknowledged by the next GET
  std::optional<Error> recv_failed_;

  // The presence stream: POST /v1/connect, left open (and unread) in its own multi handle.
  Transfer presence_t_;
  CURLM* multi_ = nullptr;
  bool established_ = false;
  std::string first_line_;
  Status presence_status_;
};

size_t ClientConn::OnPresenceBody(char* data, size_t size, size_t n, void* ud) {
  auto* c = static_cast<ClientConn*>(ud);
  const size_t len = size * n;
  if (c->established_) return len;  // only read while closing, or heartbeats of the fallback
  c->first_line_.append(data, len);
  if (c->first_line_.find('\n') == std::string::npos) {
    return c->first_line_.size() > 256 ? 0 : len;
  }
  long status = 0;
  curl_easy_getinfo(c->presence_t_.h, CURLINFO_RESPONSE_CODE, &status);
  Decoded dec;
  Status st =
      DecodeResponse(Op::Connect, status, c->presence_t_.headers, c->first_line_, &dec, "http connect " + c->address_);
  if (!st.ok()) {
    c->presence_status_ = std::move(st);
    return 0;
  }
  c->session_ = dec.session;
  c->max_ = dec.max_message;
  c->established_ = true;
  return len;
}

// No thread: the presence transfer is driven only until its first line arrives and then left
// open in its multi handle, unread. A forked child (the harness's peers) may not start threads
// under TSan, and an idle thread per connection would buy nothing: the server watches the
// socket itself, and a dead process's kernel closes it.
Status ClientConn::Open(Deadline d) {
  const std::string ctx = "http connect " + address_;
  IPCH_RETURN_IF_ERROR(send_.Init(&abort_send_, ctx));
  IPCH_RETURN_IF_ERROR(recv_.Init(&abort_recv_, ctx));
  IPCH_RETURN_IF_ERROR(presence_t_.Init(nullptr, ctx));
  presence_t_.body_limit = 4096;  // for an answer with a Content-Length: a refusal, never the stream
  CURL* h = presence_t_.h;
  const std::string url = base_ + "/v1/connect";
  curl_easy_setopt(h, CURLOPT_URL, url.c_str());
  curl_easy_setopt(h, CURLOPT_POST, 1L);
  curl_easy_setopt(h, CURLOPT_POSTFIELDS, "");
  curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, 0L);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, &ClientConn::OnPresenceBody);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, this);
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, d.never() ? 300000L : std::max(1L, ToMs(d.remaining())));
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 0L);  // held open for the session's life
  multi_ = curl_multi_init();
  if (!multi_ || curl_multi_add_handle(multi_, h) != CURLM_OK) return ErrnoError(ctx + ": curl_multi_init", ENOMEM);
  for (;;) {
    int running = 0;
    CURLMcode mc = curl_multi_perform(multi_, &running);
    if (established_) return Ok();
    if (mc != CURLM_OK) return ErrnoError(ctx + ": " + curl_multi_strerror(mc), EPROTO);
    CURLcode rc = CURLE_OK;
    bool done = running == 0;
    int left = 0;
    while (CURLMsg* m = curl_multi_info_read(multi_, &left)) {
      if (m->msg == CURLMSG_DONE) {
        done = true;
        rc = m->data.result;
      }
    }
    if (done) {
      if (!presence_status_.ok()) return presence_status_;  // the decoder refused the first line
      if (!presence_t_.refused.empty()) return MakeError(Errc::Corrupt, ctx + ": " + presence_t_.refused);
      if (rc != CURLE_OK) {
        long os_errno = 0;
        curl_easy_getinfo(h, CURLINFO_OS_ERRNO, &os_errno);
        if (rc == CURLE_COULDNT_CONNECT && presence_t_.socket_errno != 0) os_errno = presence_t_.socket_errno;
        return DecodeTransferError(rc, os_errno, presence_t_.errbuf, ctx);
      }
      // The server answered without a presence stream (503 listener closed, ...).
      long status = 0;
      curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
      Status st = DecodeResponse(Op::Connect, status, presence_t_.headers, first_line_, nullptr, ctx);
      return st.ok() ? Status(MakeError(Errc::Corrupt, ctx + ": connect answer without a session")) : st;
    }
    if (d.expired()) return MakeError(Errc::Timeout, ctx + ": no answer before the deadline");
    const int wait_ms = d.never() ? 1000 : std::min(1000, d.PollTimeoutMs());
    mc = curl_multi_poll(multi_, nullptr, 0, wait_ms, nullptr);
    if (mc != CURLM_OK) return ErrnoError(ctx + ": " + curl_multi_strerror(mc), EPROTO);
  }
}

Status ClientConn::Send(ByteView msg, Deadline d) {
  const bool expired_on_entry = d.expired();
  const std::string ctx = "http send " + address_;
  if (closed_) return MakeError(Errc::Closed, ctx + ": connection closed");
  if (msg.size() > max_) {
    return MakeError(Errc::MessageTooLarge, ctx + ": " + std::to_string(msg.size()) + " bytes above the " +
                                                std::to_string(max_) + "-byte maximum; nothing sent");
  }
  std::lock_guard lk(send_mu_);
  if (closed_) return MakeError(Errc::Closed, ctx + ": connection closed");
  if (auto f = Failed()) return *f;
  if (send_failed_) return *send_failed_;
  if (unsure_) {
    // An earlier send timed out in flight and may or may not have been queued: settle it first
    // under its own number (queued once either way), so that this one's number follows it.
    bool unknown = false;
    Status st = Post(next_seq_ - 1, *unsure_, d, expired_on_entry, ctx + " (retrying an earlier message)", &unknown);
    if (!st.ok()) return st;
    unsure_.reset();
  }
  bool unknown = false;
  Status st = Post(next_seq_, msg, d, expired_on_entry, ctx, &unknown);
  // A number is used up once the server may have queued the message under it; a refusal (413,
  // queue full) leaves it for the next message, or the server would see a gap.
  if (st.ok() || unknown) ++next_seq_;
  if (unknown) unsure_ = Bytes(msg.begin(), msg.end());
  return st;
}

Status ClientConn::Post(uint64_t seq, ByteView msg, Deadline d, bool expired_on_entry, const std::string& ctx,
                        bool* unknown) {
  static const char kEmpty[1] = {0};
  CURL* h = send_.h;
  curl_easy_setopt(h, CURLOPT_POST, 1L);
  curl_easy_setopt(h, CURLOPT_POSTFIELDS, msg.empty() ? kEmpty : reinterpret_cast<const char*>(msg.data()));
  curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(msg.size()));
  send_.body_limit = 4096;
  const std::string url = base_ + MessagePost(session_, seq, {}, {}).path;
  const std::string checksum = BodyChecksum(msg);
  for (;;) {
    const Clock::duration wait = expired_on_entry ? Clock::duration::zero()
                                 : d.never()      ? Clock::duration(kLongPoll)
                                                  : d.remaining();
    SList hdrs;
    bool added = hdrs.Add("Content-Type: application/octet-stream") && hdrs.Add("Expect:");
    for (const auto& [name, value] : MessagePostHeaders(seq, checksum, std::chrono::floor<milliseconds>(wait))) {
      added = added && hdrs.Add(name + ": " + value);
    }
    if (!added) return ErrnoError(ctx + ": curl_slist_append", ENOMEM);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs.l);
    long status = 0;
    Status st = send_.Perform(url, wait + Grace(), &status, ctx);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, nullptr);
    if (!st.ok()) {
      // No answer: a timeout in flight may have been queued; anything else ended the transfer.
      *unknown = st.Is(Errc::Timeout);
      if (!*unknown) Record(st, status, &send_failed_);
      return st;
    }
    st = DecodeResponse(Op::Send, status, send_.headers, {}, nullptr, ctx);
    if (st.ok()) return Ok();
    if (st.Is(Errc::Timeout) && status == 503) {  // queue full: nothing queued, retry with the same seq
      if (expired_on_entry) return MakeError(Errc::WouldBlock, ctx + ": peer's queue is full");
      if (d.expired()) return MakeError(Errc::Timeout, ctx + ": peer's queue stayed full until the deadline");
      continue;
    }
    Record(st, status, &send_failed_);
    return st;
  }
}

Status ClientConn::Receive(Bytes& out, Deadline d) {
  const bool expired_on_entry = d.expired();
  const std::string ctx = "http receive " + address_;
  if (closed_) return MakeError(Errc::Closed, ctx + ": connection closed");
  std::lock_guard lk(recv_mu_);
  if (closed_) return MakeError(Errc::Closed, ctx + ": connection closed");
  if (auto f = Failed()) return *f;
  if (recv_failed_) return *recv_failed_;
  CURL* h = recv_.h;
  curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
  recv_.body_limit = max_;
  for (;;) {
    const Clock::duration wait = expired_on_entry ? Clock::duration::zero()
                                 : d.never()      ? Clock::duration(kLongPoll)
                                                  : d.remaining();
    const std::string url = SessionUrl() + "/msg?after=" + std::to_string(last_seq_) +
                            "&wait_ms=" + std::to_string(std::chrono::ceil<milliseconds>(wait).count());
    long status = 0;
    Decoded dec;
    Status st = recv_.Perform(url, wait + Grace(), &status, ctx);
    if (st.ok()) {
      st = DecodeResponse(Op::Receive, status, recv_.headers,
                          std::string_view(reinterpret_cast<const char*>(recv_.body.data()), recv_.body.size()), &dec,
                          ctx);
    }
    if (st.ok()) {
      if (dec.seq != last_seq_ + 1) {
        Status bad = MakeError(Errc::Corrupt,
                               ctx + ": message " + std::to_string(dec.seq) + " after " + std::to_string(last_seq_));
        Record(bad, status, &recv_failed_);
        return bad;
      }
      last_seq_ = dec.seq;
      out = std::move(recv_.body);
      recv_.body = Bytes();
      return Ok();
    }
    if (st.Is(Errc::Timeout) && status == 204) {
      if (expired_on_entry) return MakeError(Errc::WouldBlock, ctx + ": no message queued");
      if (d.expired()) return MakeError(Errc::Timeout, ctx + ": no message before the deadline");
      continue;
    }
    Record(st, status, &recv_failed_);
    return st;
  }
}

Status ClientConn::Close() {
  if (closed_.exchange(true)) return Ok();
  // Abort transfers other threads may have in flight (their progress callbacks see the flags),
  // then say goodbye on the send handle so the server side sees PeerClosed after our messages.
  abort_send_ = true;
  abort_recv_ = true;
  {
    std::scoped_lock lk(send_mu_, recv_mu_);
    abort_send_ = false;
    if (send_.h && !session_.empty()) {
      CURL* h = send_.h;
      curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
      curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, "DELETE");
      send_.body_limit = 4096;
      long status = 0;
      const std::string ctx = "http close " + address_;
      // Best effort: a server that is gone has nothing to tell.
      if (send_.Perform(SessionUrl(), Scaled(std::chrono::seconds(1)), &status, ctx).ok()) {
        (void)DecodeResponse(Op::Close, status, send_.headers, {}, nullptr, ctx);
      }
      curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, nullptr);
    }
    // Close the kept-alive sockets now, not when this object is destroyed: the server's
    // threads serving them end at once, and a listener closed next stops without waiting.
    send_.Reset();
    recv_.Reset();
  }
  // Closing the presence socket last: the server already knows from the DELETE that this is
  // a close, not a death.
  if (multi_) {
    if (presence_t_.h) curl_multi_remove_handle(multi_, presence_t_.h);
    curl_multi_cleanup(multi_);
    multi_ = nullptr;
  }
  presence_t_.Reset();
  return Ok();
}

}  // namespace

// ---- Connection --------------------------------------------------------------------------------

Connection::Connection() = default;
Connection::Connection(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Connection::Connection(Connection&&) noexcept = default;
Connection& Connection::operator=(Connection&& o) noexcept {
  if (this != &o) {
    if (impl_) (void)impl_->Close();
    impl_ = std::move(o.impl_);
  }
  return *this;
}
Connection::~Connection() = default;

Status Connection::Send(ByteView msg, Deadline d) {
  if (!impl_) return MakeError(Errc::Closed, "http send: connection closed");
  return impl_->Send(msg, d);
}
Status Connection::Receive(Bytes& out, Deadline d) {
  if (!impl_) return MakeError(Errc::Closed, "http receive: connection closed");
  return impl_->Receive(out, d);
}
Status Connection::Close() { return impl_ ? impl_->Close() : Ok(); }
std::size_t Connection::max_message_size() const { return impl_ ? impl_->max_message_size() : kDefaultMaxMessage; }
std::string Connection::session() const { return impl_ ? impl_->session() : std::string(); }

// ---- the adapter's test hooks ------------------------------------------------------------------

HttpCall Adapter::HttpCallOf(std::string_view method, std::string_view target) {
  Op op{};
  if (!OpOf(method, target, &op)) return HttpCall::kOther;
  switch (op) {
    case Op::Connect:
      return HttpCall::kConnect;
    case Op::Send:
      return HttpCall::kSend;
    case Op::Receive:
      return HttpCall::kReceive;
    case Op::Close:
      return HttpCall::kClose;
  }
  return HttpCall::kOther;
}

HttpWireRequest Adapter::HttpSendRequest(const Connection& client, uint64_t n, ByteView body) {
  const std::string session = client.session();
  HttpRequest r = MessagePost(session, n, body, milliseconds(0));
  HttpWireRequest w{r.method, r.path, session, {}, Bytes(body.begin(), body.end())};
  // The sequence number is required; without a wait budget the server does not wait.
  for (const auto& [name, value] : r.headers) w.fields.push_back({name, value, name == "x-ipch-wait-ms"});
  return w;
}

HttpWireAnswer Adapter::HttpReceiveAnswer(uint64_t n, ByteView body) {
  HttpResponse r = MessageAnswer(n, body);
  HttpWireAnswer w{r.status, {}, Bytes(body.begin(), body.end())};
  for (const auto& [name, value] : r.headers) w.fields.push_back({name, value, false});
  return w;
}

Result<Connection> Connect(const std::string& address, Deadline d) {
  auto sa = ParseInetAddress(address, "http");
  if (!sa.ok()) return std::move(sa).error();
  auto c = std::make_unique<ClientConn>(address);
  IPCH_RETURN_IF_ERROR(c->Open(d));
  return Connection(std::move(c));
}

// ---- the server --------------------------------------------------------------------------------

namespace {

// httplib serves one keep-alive connection per task for as long as it stays open, and every
// session holds at least one (its presence stream): a fixed pool would run out of threads and
// stall new clients. One thread per connection, joined at shutdown.
class ThreadPerConnection final : public httplib::TaskQueue {
 public:
  void enqueue(std::function<void()> fn) override {
    auto task = std::make_shared<std::function<void()>>(std::move(fn));
    std::lock_guard lk(mu_);
    Reap();
    auto done = std::make_shared<std::atomic<bool>>(false);
    try {
      workers_.push_back({std::thread([task, done] {
                            (*task)();
                            done->store(true);
                          }),
                          done});
    } catch (const std::system_error&) {
      (*task)();  // no thread to be had: serve it here rather than leak its socket
    }
  }
  void shutdown() override {
    std::list<Worker> all;
    {
      std::lock_guard lk(mu_);
      all.swap(workers_);
    }
    for (auto& w : all) w.thread.join();
  }

 private:
  struct Worker {
    std::thread thread;
    std::shared_ptr<std::atomic<bool>> done;
  };
  void Reap() {
    for (auto it = workers_.begin(); it != workers_.end();) {
      if (it->done->load()) {
        it->thread.join();
        it = workers_.erase(it);
      } else {
        ++it;
      }
    }
  }
  std::mutex mu_;
  std::list<Worker> workers_;
};

// The accepted socket serving the current request, found by its ports: httplib does not hand
// it to handlers. The worker thread calling this owns that descriptor until the request's
// response ends, so the number stays valid for the presence stream's life. -1 if not found
// (no /proc): the presence stream then falls back to heartbeat writes.
int FindConnectionSocket(int local_port, int remote_port) {
  if (local_port <= 0 || remote_port <= 0) return -1;
  DIR* d = ::opendir("/proc/self/fd");
  if (!d) return -1;
  auto port_of = [](const sockaddr_storage& a) -> int {
    if (a.ss_family == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in&>(a).sin_port);
    if (a.ss_family == AF_INET6) return ntohs(reinterpret_cast<const sockaddr_in6&>(a).sin6_port);
    return -1;
  };
  int found = -1;
  while (dirent* e = ::readdir(d)) {
    char* end = nullptr;
    long fd = std::strtol(e->d_name, &end, 10);
    if (end == e->d_name || *end != '\0' || fd == ::dirfd(d)) continue;
    sockaddr_storage self{}, peer{};
    socklen_t slen = sizeof self, plen = sizeof peer;
    if (::getsockname(static_cast<int>(fd), reinterpret_cast<sockaddr*>(&self), &slen) != 0) continue;
    if (port_of(self) != local_port) continue;
    if (::getpeername(static_cast<int>(fd), reinterpret_cast<sockaddr*>(&peer), &plen) != 0) continue;
    if (port_of(peer) != remote_port) continue;
    found = static_cast<int>(fd);
    break;
  }
  ::closedir(d);
  return found;
}

void Serve(ServerState& state, const httplib::Request& req, httplib::Response& res) {
  HttpRequest r;
  r.method = req.method;
  r.path = req.path;
  for (const auto& [k, v] : req.params) r.query.emplace(k, v);
  for (const auto& [k, v] : req.headers) {
    // A protocol field given twice is ambiguous (which one did a proxy on the way act on?).
    if (!r.headers.emplace(Lower(k), v).second && Lower(k).starts_with("x-ipch-")) {
      res.status = 400;
      res.set_content(k + " given twice", "text/plain");
      return;
    }
  }
  // httplib's Request is ours for this call and discarded after it: take the body, not a copy.
  r.body = std::move(const_cast<httplib::Request&>(req).body);
  HttpResponse out = HandleRequest(state, r);
  res.status = out.status;
  for (const auto& [k, v] : out.headers) res.set_header(k, v);
  if (out.presence_stream) {
    auto first = std::make_shared<std::string>(std::move(out.body));
    const std::string id = out.session;
    const int fd = FindConnectionSocket(req.local_port, req.remote_port);
    res.set_chunked_content_provider(
        "text/plain",
        [&state, id, first, fd](size_t offset, httplib::DataSink& sink) {
          if (offset == 0) return sink.write(first->data(), first->size());
          if (fd >= 0) {
            // The client never writes on this connection again: a hang-up or error on it is
            // its close or its death (a SIGKILLed process's kernel closes it at once).
            pollfd p{fd, POLLRDHUP, 0};
            if (RetryEintr([&] { return ::poll(&p, 1, static_cast<int>(kPresencePoll.count())); }) > 0) return false;
            if (!state.PresenceStep(id, milliseconds(0))) {
              sink.done();
              return true;
            }
            return true;
          }
          // Fallback without the socket: a write to a client whose process died fails (after
          // its kernel's reset), within two heartbeats.
          if (!state.PresenceStep(id, kHeartbeat)) {
            sink.done();
            return true;
          }
          return sink.write(".", 1);
        },
        [&state, id](bool success) { state.PresenceEnded(id, !success); });
  } else {
    res.body = std::move(out.body);
    res.set_header("Content-Type", out.status == 200 ? "application/octet-stream" : "text/plain");
  }
}

// bind_to_port only says "failed": errno says why (the socket, bind or listen call that failed
// set it, and nothing after it in httplib does); if it says nothing, a probe bind of the same
// address finds out.
Error BindError(const SocketAddress& sa, const std::string& address, int err) {
  const std::string ctx = "http listen " + address;
  auto named = [&](int e, const char* call) {
    if (e == EADDRINUSE) return MakeError(Errc::AlreadyExists, ctx + ": address in use");
    if (e == EACCES || e == EPERM) return MakeError(Errc::PermissionDenied, ctx + ": " + strerror(e));
    if (e == EADDRNOTAVAIL) return MakeError(Errc::InvalidArgument, ctx + ": address not local");
    return ErrnoError(ctx + ": " + call, e);
  };
  if (err != 0) return named(err, "socket, bind or listen");
  UniqueFd fd(::socket(sa.family, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return ErrnoError(ctx + ": socket");
  int one = 1;
  ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (::bind(fd.get(), sa.get(), sa.len) == 0)
    return ErrnoError(ctx + ": bind failed, then succeeded on retry", EADDRINUSE);
  return named(errno, "bind");
}

}  // namespace

struct Listener::Hub {
  explicit Hub(std::size_t max) : state(max) {}
  ~Hub() {
    state.Stop();  // wakes long polls and presence streams so their threads finish
    svr.stop();
    if (thread.joinable()) thread.join();
  }
  ServerState state;
  httplib::Server svr;
  std::thread thread;
  std::atomic<bool> served{false};  // listen_after_bind returned
};

Listener::Listener() = default;
Listener::Listener(Listener&&) noexcept = default;
Listener& Listener::operator=(Listener&& o) noexcept {
  if (this != &o) {
    (void)Close();
    hub_ = std::move(o.hub_);
    address_ = std::move(o.address_);
  }
  return *this;
}
Listener::~Listener() { (void)Close(); }

Status Listener::Close() {
  if (hub_) {
    hub_->state.StopAccepting();
    hub_.reset();  // the server stops once the connections it accepted are closed too
  }
  return Ok();
}

Result<Connection> Listener::Accept(Deadline d) {
  if (!hub_) return MakeError(Errc::Closed, "http accept " + address_ + ": listener closed");
  return hub_->state.Accept(d, "http " + address_, hub_);
}

Result<Listener> Listen(const std::string& address, std::size_t max_message_size) {
  auto sa = ParseInetAddress(address, "http");
  if (!sa.ok()) return std::move(sa).error();
  const auto colon = address.rfind(':');
  std::string host = address.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[') host = host.substr(1, host.size() - 2);
  uint64_t port = 0;
  if (!ParseU64(std::string_view(address).substr(colon + 1), &port) || port > 65535) {
    return MakeError(Errc::InvalidArgument, "http listen " + address + ": bad port");
  }
  auto hub = std::make_shared<Listener::Hub>(max_message_size);
  httplib::Server& svr = hub->svr;
  svr.new_task_queue = [] { return new ThreadPerConnection; };
  // SO_REUSEADDR only: httplib's default adds SO_REUSEPORT, which would let a second listener
  // share the port instead of reporting AlreadyExists.
  svr.set_socket_options([](socket_t s) {
    int one = 1;
    ::setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  });
  svr.set_tcp_nodelay(true);
  svr.set_keep_alive_max_count(std::numeric_limits<std::size_t>::max());
  // An idle keep-alive connection holds a thread that notices shutdown only when this expires;
  // curl reconnects transparently when it was closed.
  svr.set_keep_alive_timeout(1);
  svr.set_payload_max_length(max_message_size);
  ServerState* state = &hub->state;
  auto handler = [state](const httplib::Request& req, httplib::Response& res) { Serve(*state, req, res); };
  svr.Get(".*", handler);
  svr.Post(".*", handler);
  svr.Delete(".*", handler);
  svr.Put(".*", handler);
  svr.Patch(".*", handler);
  svr.Options(".*", handler);
  int bound = -1;
  errno = 0;
  if (port == 0) {
    bound = svr.bind_to_any_port(host);
  } else if (svr.bind_to_port(host, static_cast<int>(port))) {
    bound = static_cast<int>(port);
  }
  if (bound < 0) return BindError(*sa, address, errno);
  try {
    hub->thread = std::thread([h = hub.get()] {
      h->svr.listen_after_bind();
      h->served = true;
    });
  } catch (const std::system_error& e) {
    return ErrnoError("http listen " + address + ": server thread", e.code().value());
  }
  // stop() is a no-op until the server runs: wait for it, so that Close can always stop it.
  while (!svr.is_running() && !hub->served) std::this_thread::sleep_for(milliseconds(1));
  Listener l;
  l.address_ = (sa->family == AF_INET6 ? "[" + host + "]" : host) + ":" + std::to_string(bound);
  l.hub_ = std::move(hub);
  return l;
}

}  // namespace ipch::http
