// Security group, HTTP cases: hostile HTTP peers for transports whose wire is HTTP/1.1
// (kSocketAddress and the kHttpWire hooks). A hostile server: an interposer stands between the
// client and its genuine server and forges the answer to one request (every error status, and
// answers that break the protocol or the framing). A hostile client: requests sent straight to
// the server with a session the case holds, malformed, replayed, skipped ahead, oversize or cut.
// What each must give is the contract for HTTP transports in docs/new-transport.md.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "fixture.h"
#include "hooks.h"
#include "ipch/deadline.h"
#include "ipch/http_interposer.h"
#include "ipch/http_wire.h"
#include "ipch/result.h"
#include "ipch/testing.h"
#include "ipch/toxics.h"
#include "ipch/transport.h"
#include "security_fixture.h"

namespace ipch::conformance {

#define IPCH_REQUIRE_HTTP_WIRE()                                       \
  do {                                                                 \
    IPCH_REQUIRE_CAP(HttpWire);                                        \
    IPCH_REQUIRE_HOOK(kHasHttpWire<TypeParam>, "kHttpWire");           \
    IPCH_REQUIRE_HOOK(kHasSocketAddress<TypeParam>, "kSocketAddress"); \
  } while (0)

namespace http_cases {

using After = toxics::HttpInterposer::After;

// How long a forged error may take to surface: it is an answer, so at once, not at the deadline.
inline ::testing::AssertionResult Prompt(Clock::time_point begin) {
  const auto took = Clock::now() - begin;
  if (took <= PromptBound()) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "the call took " << Seconds(took) << " s to report a forged answer (bound "
                                       << Seconds(PromptBound()) << " s): it waited for its deadline or retried";
}

// Where an error stays once a call reported it (docs/new-transport.md, HTTP transports).
enum class Sticky {
  kNo,         // the next call works
  kDirection,  // later calls in the same direction give the same error; the other direction works
  kConnection  // every later call gives the same error
};
inline const char* StickyName(Sticky s) {
  return s == Sticky::kNo          ? "not sticky"
         : s == Sticky::kDirection ? "sticky for its direction"
                                   : "sticky for the connection";
}

// The contract's answer to each error status, per call.
struct StatusRule {
  int status;
  Errc connect;
  Errc send;
  Sticky send_sticky;
  Errc receive;
  Sticky receive_sticky;
};
inline const std::vector<StatusRule>& StatusRules() {
  static const std::vector<StatusRule> rules = {
      {400, Errc::Corrupt, Errc::Corrupt, Sticky::kConnection, Errc::Corrupt, Sticky::kConnection},
      {404, Errc::PeerClosed, Errc::PeerClosed, Sticky::kConnection, Errc::PeerClosed, Sticky::kConnection},
      {405, Errc::Corrupt, Errc::Corrupt, Sticky::kConnection, Errc::Corrupt, Sticky::kConnection},
      {409, Errc::Corrupt, Errc::Corrupt, Sticky::kConnection, Errc::Corrupt, Sticky::kConnection},
      {410, Errc::PeerClosed, Errc::PeerClosed, Sticky::kDirection, Errc::PeerClosed, Sticky::kDirection},
      {413, Errc::Corrupt, Errc::MessageTooLarge, Sticky::kNo, Errc::Corrupt, Sticky::kConnection},
      {500, Errc::PeerClosed, Errc::PeerClosed, Sticky::kConnection, Errc::PeerClosed, Sticky::kConnection},
      {502, Errc::PeerClosed, Errc::PeerClosed, Sticky::kConnection, Errc::PeerClosed, Sticky::kConnection},
      {503, Errc::PeerClosed, Errc::PeerClosed, Sticky::kConnection, Errc::PeerClosed, Sticky::kConnection},
  };
  return rules;
}

inline std::string ErrorAnswer(int status) {
  HttpWireAnswer a;
  a.status = status;
  a.fields.push_back({"Content-Type", "text/plain"});
  const std::string text = "forged " + std::to_string(status) + "\n";
  a.body.assign(reinterpret_cast<const std::byte*>(text.data()),
                reinterpret_cast<const std::byte*>(text.data()) + text.size());
  return toxics::FormatHttpAnswer(a);
}

// "N bytes: 0a 1b ..." (the first 12): messages are binary.
inline std::string Describe(const Bytes& b) {
  std::string s = std::to_string(b.size()) + " bytes:";
  char hex[4];
  for (std::size_t i = 0; i < b.size() && i < 12; ++i) {
    std::snprintf(hex, sizeof hex, " %02x", static_cast<unsigned>(b[i]));
    s += hex;
  }
  return s + (b.size() > 12 ? " ..." : "");
}

// A listener with the interposer in front of it; each Pair() is a client connected through it
// and its accepted end. The interposer, declared last, stops before the listener closes (and
// the ends a case holds, declared after this, close before both).
template <class T>
struct Interposed {
  typename T::Listener listener;
  std::unique_ptr<toxics::HttpInterposer> ip;

  struct Ends {
    typename T::Connection client, server;
  };
  Result<Ends> Pair() {
    auto c = T::Connect(ip->address(), Settle());
    if (!c.ok()) return std::move(c).error();
    auto s = listener.Accept(Settle());
    if (!s.ok()) return std::move(s).error();
    return Ends{std::move(*c), std::move(*s)};
  }
  // Forges the answer to the next request `call` makes.
  void Arm(HttpCall call, std::string answer, After after = After::kKeepServing) {
    ip->Arm([call](const toxics::HttpHead& h) { return T::HttpCallOf(h.method, h.target) == call; }, std::move(answer),
            after);
  }
};

template <class T>
Result<Interposed<T>> Interpose(const std::string& address) {
  auto l = T::Listen(address);
  if (!l.ok()) return std::move(l).error();
  auto ip = toxics::HttpInterposer::Start(toxics::Proxy::FrontFor(l->address()), l->address());
  if (!ip.ok()) return std::move(ip).error();
  return Interposed<T>{std::move(*l), std::move(*ip)};
}

// Nothing (more) arrived at `c`.
template <class C>
::testing::AssertionResult NothingArrived(C& c) {
  Bytes got;
  Status st = c.Receive(got, Deadline::Expired());
  if (st.Is(Errc::WouldBlock)) return ::testing::AssertionSuccess();
  if (st.ok()) return ::testing::AssertionFailure() << "a message arrived: " << Describe(got);
  return ::testing::AssertionFailure() << "expected WouldBlock (nothing arrived), got " << st.error().ToString();
}

// Exactly `want` arrives at `c`, then nothing more.
template <class C>
::testing::AssertionResult ArrivesAlone(C& c, const Bytes& want) {
  Bytes got;
  Status st = c.Receive(got, Settle());
  if (!st.ok()) return ::testing::AssertionFailure() << "receive: " << st.error().ToString();
  if (got != want) {
    return ::testing::AssertionFailure() << "a wrong message arrived: " << Describe(got) << ", expected "
                                         << Describe(want);
  }
  return NothingArrived(c);
}

// A request of a misbehaving client, sent straight to the server.
inline Result<toxics::HttpReply> Call(const std::string& address, const std::string& bytes, bool hang_up = false) {
  return toxics::HttpExchange(address, bytes, Settle(), hang_up);
}

inline std::string DescribeRequest(const HttpWireRequest& r) {
  std::string s = r.method + " " + r.target;
  for (const auto& f : r.fields) s += " [" + f.name + ": " + f.value + "]";
  return s + " (" + std::to_string(r.body.size()) + " bytes)";
}

// A receive on `p.client` answered by a forged answer (already armed on `w`) gives `want` at
// once and delivers nothing; a second receive gives it again (the genuine message behind it
// never arrives); then the send direction works (`sticky` kDirection) or fails the same way.
template <class T, class Ends>
void ExpectForgedReceiveFails(Interposed<T>& w, Ends& p, uint64_t& forged, Errc want, Sticky sticky, const Bytes& up) {
  Bytes got;
  const auto begin = Clock::now();
  EXPECT_TRUE(::ipch::testing::HasErrc(p.client.Receive(got, Settle()), want)) << w.ip->Describe();
  EXPECT_TRUE(Prompt(begin));
  EXPECT_TRUE(got.empty()) << "a forged answer delivered " << Describe(got);
  ASSERT_EQ(w.ip->forged(), ++forged) << "the receive made no request the hook calls kReceive; " << w.ip->Describe();
  EXPECT_TRUE(::ipch::testing::HasErrc(p.client.Receive(got, Settle()), want))
      << "sticky: the waiting message must not arrive after the error";
  EXPECT_TRUE(got.empty());
  if (sticky == Sticky::kDirection) {
    EXPECT_TRUE(RoundTrip(p.client, p.server, up)) << "the other direction still works";
  } else {
    EXPECT_TRUE(::ipch::testing::HasErrc(p.client.Send(up, Settle()), want))
        << "the whole connection failed: a send too";
    EXPECT_TRUE(NothingArrived(p.server));
  }
}

}  // namespace http_cases

// ---- a hostile server ----------------------------------------------------------------------

// Every error status as the answer to a connect: the contract's error at once, and no session
// appears at the listener.
TYPED_TEST_P(Security, HttpErrorAnswerToAConnectIsTheContractsError) {
  IPCH_REQUIRE_HTTP_WIRE();
  if constexpr (kHasHttpWire<TypeParam>) {
    using namespace http_cases;
    auto w = Interpose<TypeParam>(this->address_);
    IPCH_ASSERT_OK(w);
    uint64_t forged = 0;
    for (const StatusRule& rule : StatusRules()) {
      SCOPED_TRACE("a forged " + std::to_string(rule.status) + " to a connect");
      w->Arm(HttpCall::kConnect, ErrorAnswer(rule.status));
      const auto begin = Clock::now();
      auto c = TypeParam::Connect(w->ip->address(), Settle());
      EXPECT_TRUE(::ipch::testing::HasErrc(c, rule.connect)) << w->ip->Describe();
      EXPECT_TRUE(Prompt(begin));
      ASSERT_EQ(w->ip->forged(), ++forged)
          << "the connect made no request the hook calls kConnect; " << w->ip->Describe();
      IPCH_EXPECT_ERRC(w->listener.Accept(Deadline::Expired()), WouldBlock) << "a session the server never saw";
    }
    auto ends = w->Pair();
    IPCH_ASSERT_OK(ends) << "a genuine connect after the forged ones";
    EXPECT_TRUE(RoundTrip(ends->client, ends->server, MakeMessage(0, 100, this->Seed())));
  }
}

// Every error status as the answer to a message POST: the contract's error at once, nothing
// delivered, and the connection after it as the contract says.
TYPED_TEST_P(Security, HttpErrorAnswerToASendIsTheContractsError) {
  IPCH_REQUIRE_HTTP_WIRE();
  if constexpr (kHasHttpWire<TypeParam>) {
    using namespace http_cases;
    auto w = Interpose<TypeParam>(this->address_);
    IPCH_ASSERT_OK(w);
    uint64_t forged = 0;
    for (const StatusRule& rule : StatusRules()) {
      SCOPED_TRACE("a forged " + std::to_string(rule.status) + " to a send: " + ErrcName(rule.send) + ", " +
                   StickyName(rule.send_sticky));
      auto p = w->Pair();
      IPCH_ASSERT_OK(p);
      const Bytes first = MakeMessage(0, 300, this->Seed()), second = MakeMessage(1, 300, this->Seed()),
                  back = MakeMessage(2, 300, this->Seed());
      ASSERT_TRUE(RoundTrip(p->client, p->server, first)) << "before the forgery";
      w->Arm(HttpCall::kSend, ErrorAnswer(rule.status));
      const Bytes refused = MakeMessage(9, 300, ~this->Seed());
      const auto begin = Clock::now();
      EXPECT_TRUE(::ipch::testing::HasErrc(p->client.Send(refused, Settle()), rule.send)) << w->ip->Describe();
      EXPECT_TRUE(Prompt(begin));
      ASSERT_EQ(w->ip->forged(), ++forged) << "the send made no request the hook calls kSend; " << w->ip->Describe();
      EXPECT_TRUE(NothingArrived(p->server)) << "the refused message was sent again";
      switch (rule.send_sticky) {
        case Sticky::kNo:
          EXPECT_TRUE(RoundTrip(p->client, p->server, second)) << "the next send after a refusal";
          EXPECT_TRUE(NothingArrived(p->server));
          EXPECT_TRUE(RoundTrip(p->server, p->client, back));
          break;
        case Sticky::kDirection:
          EXPECT_TRUE(::ipch::testing::HasErrc(p->client.Send(second, Settle()), rule.send)) << "sticky";
          EXPECT_TRUE(NothingArrived(p->server));
          EXPECT_TRUE(RoundTrip(p->server, p->client, back)) << "the other direction still works";
          break;
        case Sticky::kConnection: {
          EXPECT_TRUE(::ipch::testing::HasErrc(p->client.Send(second, Settle()), rule.send)) << "sticky";
          EXPECT_TRUE(NothingArrived(p->server));
          IPCH_ASSERT_OK(p->server.Send(back, Settle()));
          Bytes got;
          EXPECT_TRUE(::ipch::testing::HasErrc(p->client.Receive(got, Settle()), rule.send))
              << "the whole connection failed: a receive too";
          EXPECT_TRUE(got.empty());
          break;
        }
      }
    }
  }
}

// Every error status as the answer to a receive, with a genuine message waiting: the contract's
// error at once, never the message, and the connection after it as the contract says.
TYPED_TEST_P(Security, HttpErrorAnswerToAReceiveIsTheContractsError) {
  IPCH_REQUIRE_HTTP_WIRE();
  if constexpr (kHasHttpWire<TypeParam>) {
    using namespace http_cases;
    auto w = Interpose<TypeParam>(this->address_);
    IPCH_ASSERT_OK(w);
    uint64_t forged = 0;
    for (const StatusRule& rule : StatusRules()) {
      SCOPED_TRACE("a forged " + std::to_string(rule.status) + " to a receive: " + ErrcName(rule.receive) + ", " +
                   StickyName(rule.receive_sticky));
      auto p = w->Pair();
      IPCH_ASSERT_OK(p);
      const Bytes waiting = MakeMessage(0, 300, this->Seed()), up = MakeMessage(1, 300, this->Seed());
      IPCH_ASSERT_OK(p->server.Send(waiting, Settle()));
      w->Arm(HttpCall::kReceive, ErrorAnswer(rule.status));
      ExpectForgedReceiveFails(*w, *p, forged, rule.receive, rule.receive_sticky, up);
    }
  }
}

// A 200 to a receive that breaks the protocol or the framing: Corrupt at once, never a message
// (not the forged one, not the genuine one behind it), and the connection stays failed.
TYPED_TEST_P(Security, MalformedHttpAnswerToAReceiveIsCorrupt) {
  IPCH_REQUIRE_HTTP_WIRE();
  if constexpr (kHasHttpWire<TypeParam>) {
    using namespace http_cases;
    auto w = Interpose<TypeParam>(this->address_);
    IPCH_ASSERT_OK(w);
    const Bytes first = MakeMessage(0, 200, this->Seed()), second = MakeMessage(1, 200, this->Seed());
    const HttpWireAnswer genuine = TypeParam::HttpReceiveAnswer(2, second);
    std::size_t max = 0;
    {
      auto probe = w->Pair();
      IPCH_ASSERT_OK(probe);
      max = probe->client.max_message_size();
    }
    struct Variant {
      std::string what;
      std::string bytes;
      After after;
    };
    std::vector<Variant> variants;
    for (std::size_t i = 0; i < genuine.fields.size(); ++i) {
      HttpWireAnswer a = genuine;
      a.fields.erase(a.fields.begin() + static_cast<std::ptrdiff_t>(i));
      variants.push_back({"without " + genuine.fields[i].name, toxics::FormatHttpAnswer(a), After::kKeepServing});
      for (const char* garbage : {"", "x", "-1", "2 2", "99999999999999999999999"}) {
        a = genuine;
        a.fields[i].value = garbage;
        variants.push_back(
            {genuine.fields[i].name + ": \"" + garbage + "\"", toxics::FormatHttpAnswer(a), After::kKeepServing});
      }
    }
    variants.push_back({"message 1 again (replayed)", toxics::FormatHttpAnswer(TypeParam::HttpReceiveAnswer(1, first)),
                        After::kKeepServing});
    variants.push_back({"message 3 (2 skipped)", toxics::FormatHttpAnswer(TypeParam::HttpReceiveAnswer(3, second)),
                        After::kKeepServing});
    variants.push_back({"a body one byte over max_message_size",
                        toxics::FormatHttpAnswer(TypeParam::HttpReceiveAnswer(2, Bytes(max + 1, std::byte{0x42}))),
                        After::kKeepServing});
    {
      const std::string over =
          toxics::FormatHttpAnswer(TypeParam::HttpReceiveAnswer(2, Bytes(max + 1, std::byte{0x42})));
      variants.push_back({"a Content-Length over max_message_size, 100 bytes of it, then silence",
                          over.substr(0, over.find("\r\n\r\n") + 4 + 100), After::kHold});
    }
    {
      std::mt19937_64 rng(this->Seed());
      std::string noise(64, '\0');
      for (char& ch : noise) ch = static_cast<char>(rng());
      noise[0] = static_cast<char>('a' + rng() % 7);  // never "H": not even the start of a status line
      variants.push_back({"random bytes instead of HTTP", noise, After::kClose});
    }
    variants.push_back(
        {"a status line that is not one", "HTTP/1.1 2x0 OK\r\nContent-Length: 0\r\n\r\n", After::kClose});
    {
      std::string bad = toxics::FormatHttpAnswer(genuine);
      const auto cl = bad.find("Content-Length: ");
      bad.insert(bad.find("\r\n", cl), "abc");
      variants.push_back({"a Content-Length that is not a number", bad, After::kClose});
      std::string chunked = toxics::FormatHttpAnswer(genuine, toxics::HttpFraming::kChunked);
      const auto body = chunked.find("\r\n\r\n") + 4;
      chunked.replace(body, chunked.find("\r\n", body) - body, "zz");
      variants.push_back({"a chunk size that is not hex", chunked, After::kClose});
    }
    uint64_t forged = 0;
    for (const Variant& v : variants) {
      SCOPED_TRACE("forged answer to receive 2: " + v.what);
      auto p = w->Pair();
      IPCH_ASSERT_OK(p);
      IPCH_ASSERT_OK(p->server.Send(first, Settle()));
      IPCH_ASSERT_OK(p->server.Send(second, Settle()));
      Bytes got;
      IPCH_ASSERT_OK(p->client.Receive(got, Settle()));
      ASSERT_EQ(got, first);
      got.clear();
      w->Arm(HttpCall::kReceive, v.bytes, v.after);
      ExpectForgedReceiveFails(*w, *p, forged, Errc::Corrupt, Sticky::kConnection, first);
    }
  }
}

// An answer cut mid-body by a server that hangs up: PeerClosed (as a torn frame on a stream),
// never the part that came, and the receive direction stays so; the send direction still works.
TYPED_TEST_P(Security, HttpAnswerCutMidBodyIsPeerClosed) {
  IPCH_REQUIRE_HTTP_WIRE();
  if constexpr (kHasHttpWire<TypeParam>) {
    using namespace http_cases;
    auto w = Interpose<TypeParam>(this->address_);
    IPCH_ASSERT_OK(w);
    const Bytes first = MakeMessage(0, 1000, this->Seed());
    const HttpWireAnswer genuine = TypeParam::HttpReceiveAnswer(1, first);
    uint64_t forged = 0;
    for (auto framing : {toxics::HttpFraming::kContentLength, toxics::HttpFraming::kChunked}) {
      const std::string whole = toxics::FormatHttpAnswer(genuine, framing);
      const std::size_t body = whole.find("\r\n\r\n") + 4;
      const std::size_t cut = body + 1 + this->Seed() % (whole.size() - body - 10);
      SCOPED_TRACE(std::string(framing == toxics::HttpFraming::kChunked ? "chunked" : "Content-Length") +
                   " answer cut after " + std::to_string(cut) + " of " + std::to_string(whole.size()) + " bytes");
      auto p = w->Pair();
      IPCH_ASSERT_OK(p);
      IPCH_ASSERT_OK(p->server.Send(first, Settle()));
      w->Arm(HttpCall::kReceive, whole.substr(0, cut), After::kClose);
      Bytes got;
      const auto begin = Clock::now();
      EXPECT_TRUE(::ipch::testing::HasErrc(p->client.Receive(got, Settle()), Errc::PeerClosed)) << w->ip->Describe();
      EXPECT_TRUE(Prompt(begin));
      EXPECT_TRUE(got.empty()) << "a cut answer delivered " << got.size() << " bytes";
      ASSERT_EQ(w->ip->forged(), ++forged);
      EXPECT_TRUE(::ipch::testing::HasErrc(p->client.Receive(got, Settle()), Errc::PeerClosed)) << "sticky";
      EXPECT_TRUE(got.empty());
      EXPECT_TRUE(RoundTrip(p->client, p->server, MakeMessage(1, 100, this->Seed()))) << "the send direction";
    }
  }
}

// An answer that stops mid-body and stays open: the receive times out at its deadline (never a
// hang, never the part that came), and the next one gets the genuine message whole.
TYPED_TEST_P(Security, StalledHttpAnswerTimesOutThenTheMessageArrives) {
  IPCH_REQUIRE_HTTP_WIRE();
  if constexpr (kHasHttpWire<TypeParam>) {
    using namespace http_cases;
    auto w = Interpose<TypeParam>(this->address_);
    IPCH_ASSERT_OK(w);
    auto p = w->Pair();
    IPCH_ASSERT_OK(p);
    const Bytes first = MakeMessage(0, 1000, this->Seed());
    IPCH_ASSERT_OK(p->server.Send(first, Settle()));
    const std::string whole = toxics::FormatHttpAnswer(TypeParam::HttpReceiveAnswer(1, first));
    w->Arm(HttpCall::kReceive, whole.substr(0, whole.size() - 1 - this->Seed() % 900), After::kHold);
    Bytes got;
    const auto begin = Clock::now();
    EXPECT_TRUE(::ipch::testing::HasErrc(p->client.Receive(got, Deadline::After(ShortWait())), Errc::Timeout))
        << w->ip->Describe();
    EXPECT_LT(Clock::now() - begin, ShortWait() + PromptBound()) << "the deadline was overrun";
    EXPECT_TRUE(got.empty()) << "part of a stalled answer was delivered";
    ASSERT_EQ(w->ip->forged(), 1u);
    IPCH_ASSERT_OK(p->client.Receive(got, Settle())) << w->ip->Describe();
    EXPECT_EQ(got, first) << "the message behind the stalled answer";
    EXPECT_TRUE(RoundTrip(p->client, p->server, MakeMessage(1, 100, this->Seed())));
  }
}

// A send whose answer never comes (the server never saw the request, or queued the message and
// its answer was lost) times out at its deadline; its outcome is unknown, so the message may
// arrive, but once at most and before the next one, which arrives (no gap, no duplicate).
TYPED_TEST_P(Security, HttpSendWithoutAnAnswerIsNeverLostAfterOrTwice) {
  IPCH_REQUIRE_HTTP_WIRE();
  if constexpr (kHasHttpWire<TypeParam>) {
    using namespace http_cases;
    using Request = toxics::HttpInterposer::Request;
    auto w = Interpose<TypeParam>(this->address_);
    IPCH_ASSERT_OK(w);
    for (Request request : {Request::kSwallowed, Request::kForwarded}) {
      SCOPED_TRACE(request == Request::kSwallowed ? "the server never saw it"
                                                  : "the server queued it, the answer was lost");
      auto p = w->Pair();
      IPCH_ASSERT_OK(p);
      const Bytes first = MakeMessage(0, 300, this->Seed()), second = MakeMessage(1, 300, this->Seed()),
                  third = MakeMessage(2, 300, this->Seed());
      ASSERT_TRUE(RoundTrip(p->client, p->server, first));
      w->ip->Arm([](const toxics::HttpHead& h) { return TypeParam::HttpCallOf(h.method, h.target) == HttpCall::kSend; },
                 "", After::kHold, request);
      const auto begin = Clock::now();
      IPCH_EXPECT_ERRC(p->client.Send(second, Deadline::After(ShortWait())), Timeout) << w->ip->Describe();
      EXPECT_LT(Clock::now() - begin, ShortWait() + PromptBound()) << "the deadline was overrun";
      IPCH_ASSERT_OK(p->client.Send(third, Settle())) << "the next send; " << w->ip->Describe();
      Bytes got;
      IPCH_ASSERT_OK(p->server.Receive(got, Settle())) << w->ip->Describe();
      if (got == second) {
        EXPECT_TRUE(ArrivesAlone(p->server, third)) << "after the one whose send timed out";
      } else {
        EXPECT_EQ(got, third) << "neither the timed-out message nor the next: " << Describe(got);
        EXPECT_TRUE(NothingArrived(p->server)) << "the timed-out message came after the next one";
      }
    }
  }
}

// ---- a hostile client ----------------------------------------------------------------------

// Requests a misbehaving client makes with a live session: an unknown path, another or a
// malformed session id, a method the target does not take, each field missing, garbage or
// given twice, bytes that are not HTTP. Each gets its status and delivers nothing (a missing
// optional field: the message, once); the session goes on, and the accepted end sees its
// client close as PeerClosed.
TYPED_TEST_P(Security, MalformedHttpRequestsAreRefusedAndDeliverNothing) {
  IPCH_REQUIRE_HTTP_WIRE();
  if constexpr (kHasHttpWire<TypeParam>) {
    using namespace http_cases;
    IPCH_CONNECTED(p);
    const std::string at = p.listener.address();
    uint64_t n = 1;  // the number the next message of this session must carry
    const Bytes body = MakeMessage(0, 500, this->Seed());
    const HttpWireRequest genuine = TypeParam::HttpSendRequest(p.client, n, body);
    ASSERT_FALSE(genuine.session.empty()) << "HttpSendRequest names no session";
    ASSERT_NE(genuine.target.find(genuine.session), std::string::npos) << "the session is not in the target";
    // Another id of the same shape: the same characters, rotated by one.
    const std::string other = genuine.session.substr(1) + genuine.session.front();
    ASSERT_NE(other, genuine.session);
    using Mutation = std::function<void(HttpWireRequest&)>;
    struct Variant {
      std::string what;
      Mutation mutate;        // applied to the genuine request for message n
      std::vector<int> want;  // the statuses the contract allows; a 2xx only where a field is optional
    };
    auto session_to = [&](std::string id) {
      return [id](HttpWireRequest& r) { r.target.replace(r.target.find(r.session), r.session.size(), id); };
    };
    std::vector<Variant> variants;
    const uint64_t salt = this->Seed();
    variants.push_back({"an unknown path",
                        [salt](HttpWireRequest& r) { r.target = "/ipch-no-such-path-" + std::to_string(salt % 1000); },
                        {404}});
    variants.push_back({"another session's id", session_to(other), {404}});
    variants.push_back({"a malformed session id",
                        session_to(genuine.session.substr(0, genuine.session.size() / 2) + "!"),
                        {400, 404}});
    variants.push_back({"a method the target does not take", [](HttpWireRequest& r) { r.method = "PATCH"; }, {405}});
    for (std::size_t i = 0; i < genuine.fields.size(); ++i) {
      const HttpField f = genuine.fields[i];
      const auto at_i = [i](HttpWireRequest& r) { return r.fields.begin() + static_cast<std::ptrdiff_t>(i); };
      variants.push_back({"without " + f.name, [at_i](HttpWireRequest& r) { r.fields.erase(at_i(r)); },
                          f.optional ? std::vector<int>{200, 201, 202, 204} : std::vector<int>{400}});
      for (std::string garbage : {"", "x", "-1", "1 1"}) {
        // An empty value may count as none (HTTP servers may drop it): for an optional field, fine.
        std::vector<int> want = {400};
        if (garbage.empty() && f.optional) want.insert(want.end(), {200, 201, 202, 204});
        variants.push_back({f.name + ": \"" + garbage + "\"",
                            [at_i, garbage](HttpWireRequest& r) { at_i(r)->value = garbage; }, want});
      }
      variants.push_back({f.name + " twice, the second one garbage",
                          [at_i, f](HttpWireRequest& r) {
                            r.fields.insert(at_i(r) + 1, {f.name, "x", f.optional});
                          },
                          {400}});
      variants.push_back({f.name + " twice, the first one garbage",
                          [at_i, f](HttpWireRequest& r) {
                            r.fields.insert(at_i(r), {f.name, "x", f.optional});
                          },
                          {400}});
    }
    for (const Variant& v : variants) {
      HttpWireRequest req = TypeParam::HttpSendRequest(p.client, n, body);
      v.mutate(req);
      SCOPED_TRACE(v.what + ": " + DescribeRequest(req));
      auto reply = Call(at, toxics::FormatHttpRequest(req, at));
      IPCH_ASSERT_OK(reply);
      EXPECT_TRUE(std::find(v.want.begin(), v.want.end(), reply->status) != v.want.end())
          << "answered " << reply->status << " (" << reply->body.substr(0, 80) << "), the contract says "
          << v.want.front();
      if (reply->status >= 200 && reply->status < 300) {
        EXPECT_TRUE(ArrivesAlone(p.server, body)) << "accepted: the message, once";
        ++n;
      } else {
        EXPECT_TRUE(NothingArrived(p.server));
      }
    }
    {
      SCOPED_TRACE("bytes that are not HTTP");
      static const char kNotHttp[] = "\x16\x03\x01\x02\x00 not http at all\r\n\r\n";  // a TLS hello, say
      auto reply = Call(at, std::string(kNotHttp, sizeof kNotHttp - 1));
      IPCH_ASSERT_OK(reply);
      EXPECT_EQ(reply->status, 400) << reply->body;
      EXPECT_TRUE(NothingArrived(p.server));
    }
    const Bytes last = MakeMessage(1, 500, this->Seed());
    auto reply = Call(at, toxics::FormatHttpRequest(TypeParam::HttpSendRequest(p.client, n, last), at));
    IPCH_ASSERT_OK(reply);
    EXPECT_GE(reply->status, 200) << "the session goes on: a well-formed message " << n;
    EXPECT_LT(reply->status, 300) << reply->body;
    EXPECT_TRUE(ArrivesAlone(p.server, last));
    IPCH_ASSERT_OK(p.client.Close());
    Bytes got;
    IPCH_EXPECT_ERRC(p.server.Receive(got, Settle()), PeerClosed) << "the genuine client closed";
  }
}

// Message numbers a misbehaving client gets wrong: one already delivered, sent again with
// other bytes, is acknowledged and not delivered; one that skips ahead is refused (409) and not
// delivered, and the number it skipped is still taken.
TYPED_TEST_P(Security, ReplayedHttpMessageIsAcknowledgedSkippedOneRefused) {
  IPCH_REQUIRE_HTTP_WIRE();
  if constexpr (kHasHttpWire<TypeParam>) {
    using namespace http_cases;
    IPCH_CONNECTED(p);
    const std::string at = p.listener.address();
    const Bytes a = MakeMessage(0, 300, this->Seed()), b = MakeMessage(1, 300, this->Seed()),
                c = MakeMessage(2, 300, this->Seed()), d = MakeMessage(3, 300, this->Seed());
    auto send = [&](uint64_t n, const Bytes& body) {
      return Call(at, toxics::FormatHttpRequest(TypeParam::HttpSendRequest(p.client, n, body), at));
    };
    auto r = send(1, a);
    IPCH_ASSERT_OK(r);
    EXPECT_EQ(r->status / 100, 2) << "message 1: " << r->status << " " << r->body;
    EXPECT_TRUE(ArrivesAlone(p.server, a));
    r = send(1, b);
    IPCH_ASSERT_OK(r);
    EXPECT_EQ(r->status / 100, 2) << "a replay is acknowledged: " << r->status << " " << r->body;
    EXPECT_TRUE(NothingArrived(p.server)) << "a replayed message 1 was delivered again";
    r = send(3, c);
    IPCH_ASSERT_OK(r);
    EXPECT_EQ(r->status, 409) << "message 3 before 2: " << r->body;
    EXPECT_TRUE(NothingArrived(p.server)) << "a message that skipped ahead was delivered";
    r = send(2, d);
    IPCH_ASSERT_OK(r);
    EXPECT_EQ(r->status / 100, 2) << "message 2: " << r->status << " " << r->body;
    EXPECT_TRUE(ArrivesAlone(p.server, d));
  }
}

// A client that ignores max_message_size and sends one byte more (announced by Content-Length,
// or chunked): 413, nothing delivered, and the session goes on with the same number.
TYPED_TEST_P(Security, OversizeHttpMessageIsRefusedAndTheSessionGoesOn) {
  IPCH_REQUIRE_HTTP_WIRE();
  if constexpr (kHasHttpWire<TypeParam>) {
    using namespace http_cases;
    IPCH_CONNECTED(p);
    const std::string at = p.listener.address();
    const Bytes big(p.server.max_message_size() + 1, std::byte{0x5a});
    for (auto framing : {toxics::HttpFraming::kContentLength, toxics::HttpFraming::kChunked}) {
      SCOPED_TRACE(framing == toxics::HttpFraming::kChunked ? "chunked" : "Content-Length");
      auto r = Call(at, toxics::FormatHttpRequest(TypeParam::HttpSendRequest(p.client, 1, big), at, framing));
      IPCH_ASSERT_OK(r);
      EXPECT_EQ(r->status, 413) << r->body.substr(0, 80);
      EXPECT_TRUE(NothingArrived(p.server));
    }
    const Bytes small = MakeMessage(0, 100, this->Seed());
    auto r = Call(at, toxics::FormatHttpRequest(TypeParam::HttpSendRequest(p.client, 1, small), at));
    IPCH_ASSERT_OK(r);
    EXPECT_EQ(r->status / 100, 2) << "message 1 after the refusals: " << r->status << " " << r->body;
    EXPECT_TRUE(ArrivesAlone(p.server, small));
  }
}

// A client that hangs up mid-body (Content-Length or chunked): nothing delivered, and the
// number is still free for the whole message.
TYPED_TEST_P(Security, HttpClientHangingUpMidBodyDeliversNothing) {
  IPCH_REQUIRE_HTTP_WIRE();
  if constexpr (kHasHttpWire<TypeParam>) {
    using namespace http_cases;
    IPCH_CONNECTED(p);
    const std::string at = p.listener.address();
    const Bytes msg = MakeMessage(0, 1000, this->Seed());
    for (auto framing : {toxics::HttpFraming::kContentLength, toxics::HttpFraming::kChunked}) {
      const std::string whole = toxics::FormatHttpRequest(TypeParam::HttpSendRequest(p.client, 1, msg), at, framing);
      const std::size_t body = whole.find("\r\n\r\n") + 4;
      const std::size_t cut = body + this->Seed() % (whole.size() - body - 8);
      SCOPED_TRACE(std::string(framing == toxics::HttpFraming::kChunked ? "chunked" : "Content-Length") +
                   " request cut after " + std::to_string(cut) + " of " + std::to_string(whole.size()) + " bytes");
      auto r = Call(at, whole.substr(0, cut), /*hang_up=*/true);
      IPCH_ASSERT_OK(r);
      EXPECT_FALSE(r->status >= 200 && r->status < 300) << "a cut request was accepted: " << r->status;
      EXPECT_TRUE(NothingArrived(p.server)) << "part of a cut request was delivered";
    }
    auto r = Call(at, toxics::FormatHttpRequest(TypeParam::HttpSendRequest(p.client, 1, msg), at));
    IPCH_ASSERT_OK(r);
    EXPECT_EQ(r->status / 100, 2) << r->status << " " << r->body;
    EXPECT_TRUE(ArrivesAlone(p.server, msg));
  }
}

}  // namespace ipch::conformance
