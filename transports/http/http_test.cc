// Unit tests of the HTTP transport: the request handler and the response decoder as plain
// functions (no sockets), then a few checks over loopback that the conformance battery does not
// make (local size check, address errors).
#include "transports/http/http.h"

#include <curl/curl.h>
#include <gtest/gtest.h>

#include <cstring>
#include <string>

#include "ipch/fault.h"
#include "ipch/testing.h"

namespace ipch::http {
namespace {

using ::ipch::testing::MakeMessage;

// ---- decoder -----------------------------------------------------------------------------------

TEST(HttpDecode, StatusCodesMapToPreciseErrc) {
  IPCH_EXPECT_ERRC(DecodeResponse(Op::Send, 413, {}, {}, nullptr, "t"), MessageTooLarge);
  IPCH_EXPECT_ERRC(DecodeResponse(Op::Send, 410, {}, {}, nullptr, "t"), PeerClosed);
  IPCH_EXPECT_ERRC(DecodeResponse(Op::Receive, 410, {}, {}, nullptr, "t"), PeerClosed);
  IPCH_EXPECT_ERRC(DecodeResponse(Op::Receive, 404, {}, {}, nullptr, "t"), PeerClosed);
  IPCH_EXPECT_ERRC(DecodeResponse(Op::Send, 503, {{"x-ipch-reason", "queue-full"}}, {}, nullptr, "t"), Timeout);
  IPCH_EXPECT_ERRC(DecodeResponse(Op::Send, 503, {{"x-ipch-reason", "listener-closed"}}, {}, nullptr, "t"), PeerClosed);
  IPCH_EXPECT_ERRC(DecodeResponse(Op::Connect, 503, {{"x-ipch-reason", "listener-closed"}}, {}, nullptr, "t"),
                   PeerClosed);
  IPCH_EXPECT_ERRC(DecodeResponse(Op::Send, 400, {}, "missing X-Ipch-Seq", nullptr, "t"), Corrupt);
  IPCH_EXPECT_ERRC(DecodeResponse(Op::Receive, 204, {}, {}, nullptr, "t"), Timeout);
  IPCH_EXPECT_OK(DecodeResponse(Op::Send, 204, {}, {}, nullptr, "t"));
  IPCH_EXPECT_OK(DecodeResponse(Op::Close, 204, {}, {}, nullptr, "t"));
}

TEST(HttpDecode, EveryOtherStatusHasAnErrcAndKeepsItInTheMessage) {
  Status st = DecodeResponse(Op::Send, 500, {}, "boom", nullptr, "http send 127.0.0.1:1");
  IPCH_EXPECT_ERRC(st, PeerClosed) << "a server that failed cannot vouch for the session";
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().ToString().find("HTTP 500"), std::string::npos) << st.error().ToString();
  EXPECT_NE(st.error().ToString().find("http send 127.0.0.1:1"), std::string::npos);
  IPCH_EXPECT_ERRC(DecodeResponse(Op::Receive, 502, {}, {}, nullptr, "t"), PeerClosed);
  IPCH_EXPECT_ERRC(DecodeResponse(Op::Receive, 409, {}, {}, nullptr, "t"), Corrupt) << "any other 4xx: not understood";
  IPCH_EXPECT_ERRC(DecodeResponse(Op::Send, 418, {}, {}, nullptr, "t"), Corrupt);
  IPCH_EXPECT_ERRC(DecodeResponse(Op::Receive, 302, {}, {}, nullptr, "t"), Corrupt) << "a status no call expects";
  IPCH_EXPECT_ERRC(DecodeResponse(Op::Send, 201, {}, {}, nullptr, "t"), Corrupt);
  IPCH_EXPECT_ERRC(DecodeResponse(Op::Receive, 413, {}, {}, nullptr, "t"), Corrupt) << "a GET sends no message";
  IPCH_EXPECT_ERRC(DecodeResponse(Op::Connect, 413, {}, {}, nullptr, "t"), Corrupt);
}

// The X-Ipch-Crc32c a genuine message carries for `body`.
std::string Checksum(std::string_view body) {
  return MessagePost("s", 1, AsBytes(body), std::chrono::milliseconds(0)).headers.at("x-ipch-crc32c");
}

TEST(HttpDecode, ReceiveNeedsASequenceNumber) {
  Decoded d;
  const std::string crc = Checksum("x");
  IPCH_EXPECT_ERRC(DecodeResponse(Op::Receive, 200, {{"x-ipch-crc32c", crc}}, "x", &d, "t"), Corrupt);
  IPCH_EXPECT_ERRC(DecodeResponse(Op::Receive, 200, {{"x-ipch-seq", "zz"}, {"x-ipch-crc32c", crc}}, "x", &d, "t"),
                   Corrupt);
  IPCH_EXPECT_ERRC(DecodeResponse(Op::Receive, 200, {{"x-ipch-seq", "0"}, {"x-ipch-crc32c", crc}}, "x", &d, "t"),
                   Corrupt);
  IPCH_ASSERT_OK(DecodeResponse(Op::Receive, 200, {{"x-ipch-seq", "7"}, {"x-ipch-crc32c", crc}}, "x", &d, "t"));
  EXPECT_EQ(d.seq, 7u);
}

// HTTP checks nothing it carries: a message's body goes with its CRC-32C, and one that does not
// match (a bit flipped on the way), or comes without it, is Corrupt, never delivered.
TEST(HttpDecode, AMessageWhoseChecksumDoesNotMatchIsCorrupt) {
  Decoded d;
  EXPECT_EQ(Checksum("123456789"), "e3069283") << "CRC-32C's check value";
  IPCH_EXPECT_ERRC(DecodeResponse(Op::Receive, 200, {{"x-ipch-seq", "1"}}, "x", &d, "t"), Corrupt);
  IPCH_EXPECT_ERRC(DecodeResponse(Op::Receive, 200, {{"x-ipch-seq", "1"}, {"x-ipch-crc32c", Checksum("y")}}, "x", &d,
                                  "t"),
                   Corrupt);
  IPCH_EXPECT_ERRC(DecodeResponse(Op::Receive, 200, {{"x-ipch-seq", "1"}, {"x-ipch-crc32c", "zz"}}, "x", &d, "t"),
                   Corrupt);
  IPCH_EXPECT_OK(DecodeResponse(Op::Receive, 200, {{"x-ipch-seq", "1"}, {"x-ipch-crc32c", Checksum("x")}}, "x", &d,
                                "t"));
}

TEST(HttpDecode, ConnectAnswer) {
  Decoded d;
  IPCH_ASSERT_OK(DecodeResponse(Op::Connect, 201, {}, "0123456789abcdef0123456789abcdef 1024\n.", &d, "t"));
  EXPECT_EQ(d.session, "0123456789abcdef0123456789abcdef");
  EXPECT_EQ(d.max_message, 1024u);
  IPCH_EXPECT_ERRC(DecodeResponse(Op::Connect, 201, {}, "nothex 1024\n", &d, "t"), Corrupt);
  IPCH_EXPECT_ERRC(DecodeResponse(Op::Connect, 201, {}, "0123456789abcdef0123456789abcdef 0\n", &d, "t"), Corrupt);
  IPCH_EXPECT_ERRC(DecodeResponse(Op::Connect, 201, {}, "0123456789abcdef0123456789abcdef 12", &d, "t"), Corrupt);
  EXPECT_FALSE(DecodeResponse(Op::Connect, 200, {}, "", &d, "t").ok()) << "200 is not 201";
}

TEST(HttpDecode, TransferErrors) {
  IPCH_EXPECT_ERRC(DecodeTransferError(CURLE_OPERATION_TIMEDOUT, 0, "", "t"), Timeout);
  IPCH_EXPECT_ERRC(DecodeTransferError(CURLE_COULDNT_CONNECT, ECONNREFUSED, "", "t"), PeerClosed);
  IPCH_EXPECT_ERRC(DecodeTransferError(CURLE_COULDNT_CONNECT, 0, "", "t"), PeerClosed);
  for (const int local : {EMFILE, ENFILE, ENOBUFS, ENOMEM, EADDRNOTAVAIL}) {
    EXPECT_EQ(DecodeTransferError(CURLE_COULDNT_CONNECT, local, "", "t").error().code,
              std::error_code(local, std::system_category()))
        << "this host's own shortage (" << std::strerror(local) << ") says nothing about the peer";
  }
  IPCH_EXPECT_ERRC(DecodeTransferError(CURLE_GOT_NOTHING, 0, "", "t"), PeerClosed);
  IPCH_EXPECT_ERRC(DecodeTransferError(CURLE_RECV_ERROR, ECONNRESET, "", "t"), PeerClosed);
  IPCH_EXPECT_ERRC(DecodeTransferError(CURLE_SEND_ERROR, EPIPE, "", "t"), PeerClosed);
  IPCH_EXPECT_ERRC(DecodeTransferError(CURLE_PARTIAL_FILE, 0, "", "t"), PeerClosed);
  IPCH_EXPECT_ERRC(DecodeTransferError(CURLE_RECV_ERROR, 0, "Illegal or missing hexadecimal sequence", "t"), Corrupt)
      << "curl refused the bytes: no OS error";
  IPCH_EXPECT_ERRC(DecodeTransferError(CURLE_UNSUPPORTED_PROTOCOL, 0, "Received HTTP/0.9", "t"), Corrupt);
  IPCH_EXPECT_ERRC(DecodeTransferError(CURLE_WEIRD_SERVER_REPLY, 0, "", "t"), Corrupt);
  Status st = DecodeTransferError(CURLE_READ_ERROR, EIO, "detail text", "http send x");
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code, std::error_code(EIO, std::system_category()));
  EXPECT_NE(st.error().ToString().find("detail text"), std::string::npos);
  EXPECT_EQ(DecodeTransferError(CURLE_OUT_OF_MEMORY, 0, "", "t").error().code,
            std::error_code(ENOMEM, std::system_category()));
}

// A listen that fails says why: the errno of the call that failed (socket's EMFILE, bind's
// ENOMEM), not an address in use that a probe made up.
TEST(HttpListen, AFailedListenKeepsTheErrnoOfTheCallThatFailed) {
  for (const auto& [op, err] : {std::pair{fault::kSocket, EMFILE}, std::pair{fault::kBind, ENOMEM}}) {
    fault::ScopedPlan armed(fault::Plan{{fault::Rule{op, fault::Kind::kErrno, err, 1, 0.0, 1}}, 1});
    auto l = Listen("127.0.0.1:0");
    ASSERT_FALSE(l.ok());
    EXPECT_EQ(l.error().code, std::error_code(err, std::system_category())) << l.error().ToString();
    EXPECT_EQ(fault::InjectedCount(), 1u);
  }
  fault::ScopedPlan armed(fault::Plan{{fault::Rule{fault::kListen, fault::Kind::kErrno, EADDRINUSE, 1, 0.0, 1}}, 1});
  IPCH_EXPECT_ERRC(Listen("127.0.0.1:0"), AlreadyExists);
}

// ---- handler -----------------------------------------------------------------------------------

class HttpHandler : public ::testing::Test {
 protected:
  // Small limits so that queue-full and too-large cases need few bytes.
  HttpHandler() : state_(100, 150) {}

  std::string ConnectSession() {
    HttpResponse r = HandleRequest(state_, {"POST", "/v1/connect", {}, {}, {}});
    EXPECT_EQ(r.status, 201);
    EXPECT_TRUE(r.presence_stream);
    Decoded d;
    EXPECT_TRUE(::ipch::testing::IsOk(DecodeResponse(Op::Connect, r.status, r.headers, r.body, &d, "t")));
    EXPECT_EQ(d.session, r.session);
    EXPECT_EQ(d.max_message, 100u);
    return d.session;
  }
  HttpResponse Post(const std::string& id, const std::string& seq, std::string body, std::string wait = "0") {
    HeaderMap h{{"x-ipch-seq", seq}, {"x-ipch-wait-ms", wait}, {"x-ipch-crc32c", Checksum(body)}};
    return HandleRequest(state_, {"POST", "/v1/s/" + id + "/msg", {}, h, std::move(body)});
  }
  HttpResponse Get(const std::string& id, const std::string& after, std::string wait = "0") {
    return HandleRequest(state_, {"GET", "/v1/s/" + id + "/msg", {{"after", after}, {"wait_ms", wait}}, {}, {}});
  }
  Connection AcceptOne() {
    auto c = state_.Accept(Deadline::Expired(), "test");
    EXPECT_TRUE(::ipch::testing::IsOk(c));
    return c.ok() ? std::move(*c) : Connection();
  }
  static std::string Text(const Bytes& b) { return std::string(reinterpret_cast<const char*>(b.data()), b.size()); }

  ServerState state_;
};

TEST_F(HttpHandler, AcceptQueueHonoursDeadlines) {
  IPCH_EXPECT_ERRC(state_.Accept(Deadline::Expired(), "t"), WouldBlock);
  IPCH_EXPECT_ERRC(state_.Accept(Deadline::After(std::chrono::milliseconds(20)), "t"), Timeout);
  ConnectSession();
  IPCH_EXPECT_OK(state_.Accept(Deadline::Expired(), "t"));
  state_.StopAccepting();
  IPCH_EXPECT_ERRC(state_.Accept(Deadline::Expired(), "t"), Closed);
  EXPECT_EQ(HandleRequest(state_, {"POST", "/v1/connect", {}, {}, {}}).status, 503);
}

TEST_F(HttpHandler, SequenceNumberThatSkipsAheadIs409AndNothingQueued) {
  std::string id = ConnectSession();
  Connection s = AcceptOne();
  EXPECT_EQ(Post(id, "2", "second").status, 409) << "1 never came";
  EXPECT_EQ(Post(id, "1", "first").status, 204);
  EXPECT_EQ(Post(id, "3", "third").status, 409);
  EXPECT_EQ(Post(id, "2", "second").status, 204) << "the skipped-to number is still free";
  Bytes got;
  IPCH_ASSERT_OK(s.Receive(got, Deadline::Expired()));
  EXPECT_EQ(Text(got), "first");
  IPCH_ASSERT_OK(s.Receive(got, Deadline::Expired()));
  EXPECT_EQ(Text(got), "second");
  IPCH_EXPECT_ERRC(s.Receive(got, Deadline::Expired()), WouldBlock);
}

// A body that does not match its X-Ipch-Crc32c (damaged on the way), or comes without one, is
// refused 400 and nothing is queued; the same message intact is then taken under its number.
TEST_F(HttpHandler, ABodyThatDoesNotMatchItsChecksumIs400AndNothingQueued) {
  std::string id = ConnectSession();
  Connection s = AcceptOne();
  HeaderMap damaged{{"x-ipch-seq", "1"}, {"x-ipch-wait-ms", "0"}, {"x-ipch-crc32c", Checksum("first")}};
  EXPECT_EQ(HandleRequest(state_, {"POST", "/v1/s/" + id + "/msg", {}, damaged, "firsT"}).status, 400);
  HeaderMap without{{"x-ipch-seq", "1"}, {"x-ipch-wait-ms", "0"}};
  EXPECT_EQ(HandleRequest(state_, {"POST", "/v1/s/" + id + "/msg", {}, without, "first"}).status, 400);
  Bytes got;
  IPCH_EXPECT_ERRC(s.Receive(got, Deadline::Expired()), WouldBlock) << "a refused body was queued";
  EXPECT_EQ(Post(id, "1", "first").status, 204);
  IPCH_ASSERT_OK(s.Receive(got, Deadline::Expired()));
  EXPECT_EQ(Text(got), "first");
}

TEST_F(HttpHandler, DuplicateSequenceNumberIsNotDeliveredTwice) {
  std::string id = ConnectSession();
  Connection s = AcceptOne();
  EXPECT_EQ(Post(id, "1", "first").status, 204);
  HttpResponse again = Post(id, "1", "first");
  EXPECT_EQ(again.status, 204);
  EXPECT_EQ(again.headers["x-ipch-duplicate"], "1");
  EXPECT_EQ(Post(id, "2", "second").status, 204);
  EXPECT_EQ(Post(id, "1", "first").status, 204) << "an old retry is acknowledged too";
  Bytes got;
  IPCH_ASSERT_OK(s.Receive(got, Deadline::Expired()));
  EXPECT_EQ(Text(got), "first");
  IPCH_ASSERT_OK(s.Receive(got, Deadline::Expired()));
  EXPECT_EQ(Text(got), "second");
  IPCH_EXPECT_ERRC(s.Receive(got, Deadline::Expired()), WouldBlock);
}

TEST_F(HttpHandler, TooLargeIs413AndNothingQueued) {
  std::string id = ConnectSession();
  Connection s = AcceptOne();
  HttpResponse r = Post(id, "1", std::string(101, 'x'));
  EXPECT_EQ(r.status, 413);
  IPCH_EXPECT_ERRC(DecodeResponse(Op::Send, r.status, r.headers, r.body, nullptr, "t"), MessageTooLarge);
  EXPECT_EQ(Post(id, "1", std::string(100, 'y')).status, 204) << "the maximum itself fits, under the refused number";
  Bytes got;
  IPCH_ASSERT_OK(s.Receive(got, Deadline::Expired()));
  EXPECT_EQ(got.size(), 100u);
  IPCH_EXPECT_ERRC(s.Receive(got, Deadline::Expired()), WouldBlock);
  IPCH_EXPECT_ERRC(s.Send(Bytes(101), Deadline::Expired()), MessageTooLarge);
}

TEST_F(HttpHandler, MalformedRequestsGet4xxAndChangeNothing) {
  std::string id = ConnectSession();
  Connection s = AcceptOne();
  const std::string msg = "/v1/s/" + id + "/msg";
  struct Case {
    HttpRequest req;
    int want;
  };
  const std::string x = Checksum("x");  // each case breaks one thing only
  const Case cases[] = {
      {{"POST", msg, {}, {{"x-ipch-crc32c", x}}, "x"}, 400},  // no sequence number
      {{"POST", msg, {}, {{"x-ipch-seq", "1"}}, "x"}, 400},   // no checksum
      {{"POST", msg, {}, {{"x-ipch-seq", "abc"}, {"x-ipch-crc32c", x}}, "x"}, 400},                      // not a number
      {{"POST", msg, {}, {{"x-ipch-seq", "0"}, {"x-ipch-crc32c", x}}, "x"}, 400},                        // sequence starts at 1
      {{"POST", msg, {}, {{"x-ipch-seq", "-1"}, {"x-ipch-crc32c", x}}, "x"}, 400},                       // negative
      {{"POST", msg, {}, {{"x-ipch-seq", "99999999999999999999999"}, {"x-ipch-crc32c", x}}, "x"}, 400},  // overflow
      {{"POST", msg, {}, {{"x-ipch-seq", "1"}, {"x-ipch-wait-ms", "soon"}, {"x-ipch-crc32c", x}}, "x"}, 400},
      {{"POST", "/v1/s/NOTHEX/msg", {}, {{"x-ipch-seq", "1"}, {"x-ipch-crc32c", x}}, "x"}, 400},
      {{"POST", "/v1/s/" + std::string(32, 'a') + "/msg", {}, {{"x-ipch-seq", "1"}, {"x-ipch-crc32c", x}}, "x"}, 404},  // unknown session
      {{"PUT", msg, {}, {{"x-ipch-seq", "1"}, {"x-ipch-crc32c", x}}, "x"}, 405},
      {{"GET", "/v1/connect", {}, {}, {}}, 405},
      {{"POST", "/v1/s/" + id, {}, {}, {}}, 405},
      {{"POST", "/v2/connect", {}, {}, {}}, 404},
      {{"POST", "/", {}, {}, {}}, 404},
      {{"POST", "", {}, {}, {}}, 404},
      {{"POST", "/v1/s/" + id + "/msg/extra", {}, {{"x-ipch-seq", "1"}, {"x-ipch-crc32c", x}}, "x"}, 404},
      {{"GET", msg, {{"after", "x"}}, {}, {}}, 400},
      {{"GET", msg, {{"after", "5"}}, {}, {}}, 400},  // acknowledges a message never sent
      {{"GET", msg, {{"wait_ms", "-3"}}, {}, {}}, 400},
  };
  for (const auto& c : cases) {
    HttpResponse r = HandleRequest(state_, c.req);
    EXPECT_EQ(r.status, c.want) << c.req.method << " " << c.req.path;
    EXPECT_GE(r.status, 400);
    EXPECT_LT(r.status, 500);
  }
  Bytes got;
  IPCH_EXPECT_ERRC(s.Receive(got, Deadline::Expired()), WouldBlock) << "a malformed request queued something";
  // The session still works, starting at sequence number 1.
  EXPECT_EQ(Post(id, "1", "ok").status, 204);
  IPCH_ASSERT_OK(s.Receive(got, Deadline::Expired()));
  EXPECT_EQ(Text(got), "ok");
}

TEST_F(HttpHandler, GetKeepsMessagesUntilAcknowledged) {
  std::string id = ConnectSession();
  Connection s = AcceptOne();
  IPCH_ASSERT_OK(s.Send(AsBytes("one"), Deadline::Expired()));
  IPCH_ASSERT_OK(s.Send(AsBytes("two"), Deadline::Expired()));
  HttpResponse r = Get(id, "0");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "one");
  EXPECT_EQ(r.headers["x-ipch-seq"], "1");
  r = Get(id, "0");  // the answer was lost: asking again gives the same message
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "one");
  r = Get(id, "1");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "two");
  EXPECT_EQ(r.headers["x-ipch-seq"], "2");
  EXPECT_EQ(Get(id, "2").status, 204);
  IPCH_EXPECT_ERRC(DecodeResponse(Op::Receive, 204, {}, {}, nullptr, "t"), Timeout);
}

TEST_F(HttpHandler, QueueFullIs503ThenAdmitsOnceDrained) {
  std::string id = ConnectSession();
  Connection s = AcceptOne();
  EXPECT_EQ(Post(id, "1", std::string(100, 'a')).status, 204);
  HttpResponse full = Post(id, "2", std::string(100, 'b'));
  EXPECT_EQ(full.status, 503);
  IPCH_EXPECT_ERRC(DecodeResponse(Op::Send, full.status, full.headers, full.body, nullptr, "t"), Timeout);
  Bytes got;
  IPCH_ASSERT_OK(s.Receive(got, Deadline::Expired()));
  EXPECT_EQ(Post(id, "2", std::string(100, 'b')).status, 204) << "the retry with the same seq is admitted";
  IPCH_ASSERT_OK(s.Receive(got, Deadline::Expired()));
  EXPECT_EQ(got[0], std::byte{'b'});
  // Server -> client: the unacknowledged message counts until the client's next GET.
  IPCH_ASSERT_OK(s.Send(Bytes(100), Deadline::Expired()));
  IPCH_EXPECT_ERRC(s.Send(Bytes(100), Deadline::Expired()), WouldBlock);
  IPCH_EXPECT_ERRC(s.Send(Bytes(100), Deadline::After(std::chrono::milliseconds(20))), Timeout);
  EXPECT_EQ(Get(id, "0").status, 200);
  EXPECT_EQ(Get(id, "1").status, 204);
  IPCH_EXPECT_OK(s.Send(Bytes(100), Deadline::Expired()));
}

TEST_F(HttpHandler, ServerCloseDrainsThenGone) {
  std::string id = ConnectSession();
  Connection s = AcceptOne();
  IPCH_ASSERT_OK(s.Send(AsBytes("last words"), Deadline::Expired()));
  IPCH_ASSERT_OK(s.Close());
  HttpResponse r = Get(id, "0");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "last words");
  r = Get(id, "1");
  EXPECT_EQ(r.status, 410);
  IPCH_EXPECT_ERRC(DecodeResponse(Op::Receive, r.status, r.headers, r.body, nullptr, "t"), PeerClosed);
  EXPECT_EQ(Post(id, "1", "x").status, 410);
  IPCH_EXPECT_ERRC(s.Send(AsBytes("x"), Deadline::Expired()), Closed);
}

TEST_F(HttpHandler, ClientDeleteIsPeerClosedAfterPending) {
  std::string id = ConnectSession();
  Connection s = AcceptOne();
  EXPECT_EQ(Post(id, "1", "a").status, 204);
  EXPECT_EQ(HandleRequest(state_, {"DELETE", "/v1/s/" + id, {}, {}, {}}).status, 204);
  EXPECT_EQ(HandleRequest(state_, {"DELETE", "/v1/s/" + id, {}, {}, {}}).status, 204) << "idempotent";
  Bytes got;
  IPCH_ASSERT_OK(s.Receive(got, Deadline::Expired()));
  EXPECT_EQ(Text(got), "a");
  IPCH_EXPECT_ERRC(s.Receive(got, Deadline::Expired()), PeerClosed);
  IPCH_EXPECT_ERRC(s.Receive(got, Deadline::Expired()), PeerClosed) << "sticky";
  IPCH_EXPECT_ERRC(s.Send(AsBytes("x"), Deadline::Expired()), PeerClosed);
  EXPECT_FALSE(state_.PresenceStep(id, std::chrono::milliseconds(0))) << "the presence stream ends";
  IPCH_ASSERT_OK(s.Close());
  EXPECT_EQ(state_.session_count(), 0u) << "both sides done: the session is forgotten";
}

TEST_F(HttpHandler, BrokenPresenceIsPeerClosed) {
  std::string id = ConnectSession();
  Connection s = AcceptOne();
  EXPECT_TRUE(state_.PresenceStep(id, std::chrono::milliseconds(0)));
  EXPECT_EQ(Post(id, "1", "before death").status, 204);
  state_.PresenceEnded(id, /*broken=*/true);
  Bytes got;
  IPCH_ASSERT_OK(s.Receive(got, Deadline::Expired()));
  EXPECT_EQ(Text(got), "before death");
  IPCH_EXPECT_ERRC(s.Receive(got, Deadline::Expired()), PeerClosed);
}

TEST_F(HttpHandler, StopAcceptingEndsSessionsNeverAccepted) {
  std::string id = ConnectSession();
  state_.StopAccepting();
  EXPECT_EQ(Get(id, "0").status, 410);
  EXPECT_EQ(Post(id, "1", "x").status, 410);
}

TEST_F(HttpHandler, StopWakesWaitersAndRefusesNewWork) {
  std::string id = ConnectSession();
  Connection s = AcceptOne();
  state_.Stop();
  Bytes got;
  IPCH_EXPECT_ERRC(s.Receive(got, Deadline::After(std::chrono::seconds(5))), PeerClosed);
  EXPECT_EQ(Get(id, "0", "5000").status, 503);
  EXPECT_EQ(HandleRequest(state_, {"POST", "/v1/connect", {}, {}, {}}).status, 503);
}

// ---- over loopback ----------------------------------------------------------------------------

TEST(HttpLoopback, RoundTripBothWays) {
  auto l = Listen("127.0.0.1:0");
  IPCH_ASSERT_OK(l);
  auto c = Connect(l->address(), Deadline::After(std::chrono::seconds(5)));
  IPCH_ASSERT_OK(c);
  auto s = l->Accept(Deadline::After(std::chrono::seconds(5)));
  IPCH_ASSERT_OK(s);
  Bytes m = MakeMessage(1, 5000, 42), got;
  IPCH_ASSERT_OK(c->Send(m, Deadline::After(std::chrono::seconds(5))));
  IPCH_ASSERT_OK(s->Receive(got, Deadline::After(std::chrono::seconds(5))));
  EXPECT_EQ(got, m);
  IPCH_ASSERT_OK(s->Send(m, Deadline::After(std::chrono::seconds(5))));
  IPCH_ASSERT_OK(c->Receive(got, Deadline::After(std::chrono::seconds(5))));
  EXPECT_EQ(got, m);
  IPCH_EXPECT_ERRC(c->Receive(got, Deadline::Expired()), WouldBlock);
}

TEST(HttpLoopback, ClientChecksSizeBeforeSending) {
  auto l = Listen("127.0.0.1:0", 1000);
  IPCH_ASSERT_OK(l);
  auto c = Connect(l->address(), Deadline::After(std::chrono::seconds(5)));
  IPCH_ASSERT_OK(c);
  EXPECT_EQ(c->max_message_size(), 1000u) << "the client learns the server's maximum at connect";
  auto s = l->Accept(Deadline::After(std::chrono::seconds(5)));
  IPCH_ASSERT_OK(s);
  IPCH_EXPECT_ERRC(c->Send(Bytes(1001), Deadline::After(std::chrono::seconds(5))), MessageTooLarge);
  IPCH_EXPECT_OK(c->Send(Bytes(1000), Deadline::After(std::chrono::seconds(5))));
  Bytes got;
  IPCH_ASSERT_OK(s->Receive(got, Deadline::After(std::chrono::seconds(5))));
  EXPECT_EQ(got.size(), 1000u);
}

TEST(HttpLoopback, AddressErrors) {
  IPCH_EXPECT_ERRC(Listen("not an address"), InvalidArgument);
  IPCH_EXPECT_ERRC(Connect("127.0.0.1", Deadline::After(std::chrono::seconds(1))), InvalidArgument);
  IPCH_EXPECT_ERRC(Listen("192.0.2.1:0"), InvalidArgument) << "not a local address";
  auto l = Listen("127.0.0.1:0");
  IPCH_ASSERT_OK(l);
  IPCH_EXPECT_ERRC(Listen(l->address()), AlreadyExists);
  std::string addr = l->address();
  IPCH_ASSERT_OK(l->Close());
  IPCH_EXPECT_ERRC(Connect(addr, Deadline::After(std::chrono::seconds(5))), PeerClosed);
}

TEST(HttpLoopback, ListenerCloseKeepsAcceptedSessionsServed) {
  auto l = Listen("127.0.0.1:0");
  IPCH_ASSERT_OK(l);
  auto c = Connect(l->address(), Deadline::After(std::chrono::seconds(5)));
  IPCH_ASSERT_OK(c);
  auto s = l->Accept(Deadline::After(std::chrono::seconds(5)));
  IPCH_ASSERT_OK(s);
  const std::string addr = l->address();
  IPCH_ASSERT_OK(l->Close());
  IPCH_EXPECT_ERRC(Connect(addr, Deadline::After(std::chrono::seconds(5))), PeerClosed) << "no new sessions";
  Bytes got;
  IPCH_ASSERT_OK(c->Send(AsBytes("still here"), Deadline::After(std::chrono::seconds(5))));
  IPCH_ASSERT_OK(s->Receive(got, Deadline::After(std::chrono::seconds(5))));
  IPCH_ASSERT_OK(s->Close());  // the last user: the server stops
  IPCH_EXPECT_ERRC(c->Receive(got, Deadline::After(std::chrono::seconds(5))), PeerClosed);
}

}  // namespace
}  // namespace ipch::http
