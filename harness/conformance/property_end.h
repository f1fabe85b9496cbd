// The ends of the Property group's pair, as its commands see them: a connection in this process
// (LocalEnd), or one held by a peer process that runs each call it is sent over its control
// channel (RemoteEnd, served by ServeEnd), so that the peer can be killed, stopped and continued
// between two calls. A request names the call, its deadline (an absolute steady-clock time:
// the same clock in both processes) and its bytes; the answer is the call's Status exactly (an
// Errc or an errno) and, for a receive, the message.
#pragma once

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "fixture.h"
#include "ipch/child_process.h"
#include "ipch/deadline.h"
#include "ipch/fault.h"
#include "ipch/peer.h"
#include "ipch/result.h"
#include "ipch/transport.h"

namespace ipch::conformance::property {

class End {
 public:
  virtual ~End() = default;
  virtual Status Send(ByteView msg, Deadline d) = 0;
  virtual Status Receive(Bytes& out, Deadline d) = 0;
  virtual Status Close() = 0;
  virtual std::size_t max_message_size() const = 0;
};

template <class C>
class LocalEnd final : public End {
 public:
  explicit LocalEnd(C c) : c_(std::move(c)) {}
  Status Send(ByteView msg, Deadline d) override { return c_.Send(msg, d); }
  Status Receive(Bytes& out, Deadline d) override { return c_.Receive(out, d); }
  Status Close() override { return c_.Close(); }
  std::size_t max_message_size() const override { return c_.max_message_size(); }

 private:
  C c_;
};

// The largest request or answer: a message at a transport's maximum and a little more.
inline constexpr std::size_t kFrameMax = std::size_t{1} << 30;

inline void PutI64(std::string& s, int64_t v) { s.append(reinterpret_cast<const char*>(&v), sizeof v); }
inline bool TakeI64(std::string_view& s, int64_t* v) {
  if (s.size() < sizeof *v) return false;
  std::memcpy(v, s.data(), sizeof *v);
  s.remove_prefix(sizeof *v);
  return true;
}

inline void PutDeadline(std::string& s, Deadline d) { PutI64(s, d.at().time_since_epoch().count()); }
inline bool TakeDeadline(std::string_view& s, Deadline* d) {
  int64_t v = 0;
  if (!TakeI64(s, &v)) return false;
  *d = Deadline::At(Clock::time_point(Clock::duration(v)));
  return true;
}

// 'o', or 'e', the category ('i': Errc, 's': an errno), the value and the context.
inline void PutStatus(std::string& s, const Status& st) {
  if (st.ok()) {
    s += 'o';
    return;
  }
  const Error& e = st.error();
  s += 'e';
  s += e.code.category() == ErrcCategory() ? 'i' : 's';
  PutI64(s, e.code.value());
  PutI64(s, static_cast<int64_t>(e.context.size()));
  s += e.context;
}
inline bool TakeStatus(std::string_view& s, Status* st) {
  if (s.empty()) return false;
  const char tag = s[0];
  s.remove_prefix(1);
  if (tag == 'o') {
    *st = Ok();
    return true;
  }
  if (tag != 'e' || s.empty()) return false;
  const char category = s[0];
  s.remove_prefix(1);
  int64_t value = 0, n = 0;
  if (!TakeI64(s, &value) || !TakeI64(s, &n) || n < 0 || s.size() < static_cast<std::size_t>(n)) return false;
  const std::string context(s.substr(0, static_cast<std::size_t>(n)));
  s.remove_prefix(static_cast<std::size_t>(n));
  const int v = static_cast<int>(value);
  *st = category == 'i' ? Error{make_error_code(static_cast<Errc>(v)), context}
                        : Error{std::error_code(v, std::system_category()), context};
  return true;
}

// The peer process's side: says its connection's max_message_size, then runs each request on
// `c` (a closed connection's too: it answers Closed itself) until told to quit, or until the
// test's end of the channel goes away. A fault plan the test
// sends replaces the one armed here (inherited at fork, or none).
template <class C>
Status ServeEnd(C& c, ControlChannel& ch) {
  IPCH_RETURN_IF_ERROR(ch.SendString(std::to_string(c.max_message_size())));
  std::optional<fault::ScopedPlan> plan;
  for (;;) {
    auto request = ch.ReceiveString(Deadline::Never(), kFrameMax);
    if (!request.ok()) return request.error().Is(Errc::PeerClosed) ? Ok() : Status(std::move(request).error());
    std::string_view r = *request;
    const char op = r.empty() ? '?' : r[0];
    if (!r.empty()) r.remove_prefix(1);
    std::string answer;
    Deadline d = Deadline::Never();
    if (op == 'S' && TakeDeadline(r, &d)) {
      PutStatus(answer, c.Send(AsBytes(r), d));
    } else if (op == 'R' && TakeDeadline(r, &d)) {
      Bytes got;
      PutStatus(answer, c.Receive(got, d));
      answer.append(reinterpret_cast<const char*>(got.data()), got.size());
    } else if (op == 'C') {
      PutStatus(answer, c.Close());
    } else if (op == 'Q') {
      return Ok();
    } else if (op == 'F') {
      plan.reset();
      fault::Disarm();
      if (!r.empty()) {
        fault::Plan p;
        std::string why;
        if (!fault::ParsePlan(r, &p, &why)) return MakeError(Errc::InvalidArgument, "property peer's plan: " + why);
        plan.emplace(p);
      }
      PutStatus(answer, Ok());
    } else {
      return MakeError(Errc::Corrupt, "property peer: a malformed request");
    }
    IPCH_RETURN_IF_ERROR(ch.SendString(answer));
  }
}

// The test's side of an end held by a peer process. A call the peer does not answer (it hangs,
// crashes, or was killed under it) is EPROTO with what became of the peer: an outcome no command
// accepts, so it is never taken for the transport's own PeerClosed or Timeout.
class RemoteEnd final : public End {
 public:
  RemoteEnd(::ipch::testing::Peer peer, std::size_t max) : peer_(std::move(peer)), max_(max) {}
  // The peer ends (its connection closed by its destructor if still open), and is waited for.
  ~RemoteEnd() override {
    if (gone_) return;
    if (stopped_) (void)Continue();
    if (peer_.control().SendString("Q").ok()) (void)peer_.Join(Settle());
  }

  Status Send(ByteView msg, Deadline d) override {
    std::string request = "S";
    PutDeadline(request, d);
    request.append(reinterpret_cast<const char*>(msg.data()), msg.size());
    std::string answer;
    return Call(request, d, answer);
  }
  Status Receive(Bytes& out, Deadline d) override {
    std::string request = "R";
    PutDeadline(request, d);
    std::string answer;
    Status st = Call(request, d, answer);
    const auto* p = reinterpret_cast<const std::byte*>(answer.data());
    out.assign(p, p + answer.size());
    return st;
  }
  // A stopped peer is continued first: the sequence's end closes every end, whatever its state.
  Status Close() override {
    if (stopped_) IPCH_RETURN_IF_ERROR(Continue());
    std::string answer;
    return Call("C", Deadline::Never(), answer);
  }
  // Plans the peer's calls to the fault engine: `plan_text` (FormatPlan), or none when empty.
  Status Plan(const std::string& plan_text) {
    std::string answer;
    return Call("F" + plan_text, Deadline::Never(), answer);
  }
  std::size_t max_message_size() const override { return max_; }

  void Kill() {
    (void)peer_.process()->Kill();
    gone_ = true;
    stopped_ = false;
  }
  Status Stop() {
    IPCH_RETURN_IF_ERROR(peer_.process()->Stop());
    stopped_ = true;
    return Ok();
  }
  Status Continue() {
    IPCH_RETURN_IF_ERROR(peer_.process()->Continue());
    stopped_ = false;
    return Ok();
  }

 private:
  // Sends `request`, waits for its answer until the call's deadline and a settle bound more, and
  // leaves in `answer` what follows the Status.
  Status Call(const std::string& request, Deadline d, std::string& answer) {
    if (gone_) return Lost("it has ended");
    if (Status st = peer_.control().SendString(request); !st.ok()) return Lost(st.error().ToString());
    const Deadline wait = d.never() ? Settle() : Deadline::At(std::max(d.at(), Clock::now()) + Scaled(SettleBound()));
    auto got = peer_.control().ReceiveString(wait, kFrameMax);
    if (!got.ok()) return Lost(got.error().ToString());
    std::string_view rest = *got;
    Status st;
    if (!TakeStatus(rest, &st)) return Lost("a malformed answer");
    answer.assign(rest);
    return st;
  }
  Status Lost(const std::string& why) {
    return ErrnoError("property peer (pid " + std::to_string(peer_.pid()) + ") did not answer: " + why + "; " +
                          (peer_.process() ? peer_.process()->Describe() : std::string()),
                      EPROTO);
  }

  ::ipch::testing::Peer peer_;
  std::size_t max_;
  bool gone_ = false;
  bool stopped_ = false;
};

}  // namespace ipch::conformance::property
