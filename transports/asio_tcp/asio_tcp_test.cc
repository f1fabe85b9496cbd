// Unit tests of the Boost.Asio transport: what its own thread does, which the conformance battery
// sees only from outside: the queue written before Close returns, a stalled peer's queue written
// in the background (and given up after the linger, with a reset), a write error of the I/O
// thread surfacing on a later Send.
#include "transports/asio_tcp/asio_tcp.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <thread>

#include "ipch/audit.h"
#include "ipch/fault.h"
#include "ipch/testing.h"

namespace ipch::asio_tcp {
namespace {

using ::ipch::testing::MakeMessage;
using ::ipch::testing::VerifyMessage;

Deadline Settle() { return Deadline::After(Scaled(std::chrono::seconds(10))); }

struct Pair {
  Listener listener;
  Connection client, server;
};
Pair Connected(const Options& o = {}) {
  auto l = Listen("127.0.0.1:0", o);
  EXPECT_TRUE(::ipch::testing::IsOk(l));
  auto c = Connect(l->address(), Settle(), o);
  EXPECT_TRUE(::ipch::testing::IsOk(c));
  auto s = l->Accept(Settle());
  EXPECT_TRUE(::ipch::testing::IsOk(s));
  return {std::move(*l), std::move(*c), std::move(*s)};
}

// Waits (by a bound) until the process has no more descriptors than `before`: a closed
// connection's I/O thread has finished with its queue and released its socket and io_context.
::testing::AssertionResult DescriptorsBackTo(std::size_t before) {
  const auto until = Deadline::After(Scaled(std::chrono::seconds(10)));
  std::size_t now = 0;
  while ((now = audit::OpenDescriptors().size()) > before && !until.expired()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));  // polling a count, not synchronising
  }
  if (now <= before) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << now << " descriptors open, " << before << " before";
}

// Sends messages of `size` until one times out (nobody reads): how many were accepted.
uint64_t FillUntilTimeout(Connection& c, std::size_t size, uint64_t salt) {
  uint64_t sent = 0;
  for (; sent < 100000; ++sent) {
    Status st = c.Send(MakeMessage(sent, size, salt), Deadline::After(std::chrono::milliseconds(50)));
    if (!st.ok()) {
      EXPECT_TRUE(::ipch::testing::HasErrc(st, Errc::Timeout));
      break;
    }
  }
  return sent;
}

// A process may exit as soon as Close returned: what its Sends accepted is written by then.
// 16 MiB is far more than the socket buffers take, so most of it is queued when Close is called.
TEST(AsioTcp, CloseWritesTheQueueBeforeAProcessMayExit) {
  auto l = Listen("127.0.0.1:0");
  IPCH_ASSERT_OK(l);
  const uint64_t salt = ::ipch::testing::Current().seed;
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    auto c = Connect(l->address(), Settle());
    int code = c.ok() ? 0 : 2;
    for (uint64_t i = 0; code == 0 && i < 4; ++i) code = c->Send(MakeMessage(i, 4 << 20, salt), Settle()).ok() ? 0 : 3;
    if (code == 0) code = c->Close().ok() ? 0 : 4;
    ::_exit(code);  // no destructors, no atexit: only what Close did counts
  }
  auto s = l->Accept(Settle());
  IPCH_ASSERT_OK(s);
  Bytes got;
  for (uint64_t i = 0; i < 4; ++i) {
    IPCH_ASSERT_OK(s->Receive(got, Settle())) << "message " << i;
    EXPECT_TRUE(VerifyMessage(got, i, 4 << 20, salt));
  }
  IPCH_EXPECT_ERRC(s->Receive(got, Settle()), PeerClosed);
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "child status " << status;
}

// A peer that takes nothing does not hold Close up: Close returns, the I/O thread writes the
// queue once the peer reads, then ends the stream, and releases what it held.
TEST(AsioTcp, AStalledPeersQueueIsWrittenInTheBackgroundAfterClose) {
  const std::size_t before = audit::OpenDescriptors().size();
  Options o;
  o.close_wait = std::chrono::milliseconds(20);
  auto p = Connected(o);
  const uint64_t salt = ::ipch::testing::Current().seed;
  const uint64_t sent = FillUntilTimeout(p.client, 64 * 1024, salt);
  ASSERT_GT(sent, 0u);
  IPCH_ASSERT_OK(p.client.Close());
  Bytes got;
  for (uint64_t i = 0; i < sent; ++i) {
    IPCH_ASSERT_OK(p.server.Receive(got, Settle())) << "message " << i << " of " << sent;
    ASSERT_TRUE(VerifyMessage(got, i, 64 * 1024, salt));
  }
  IPCH_EXPECT_ERRC(p.server.Receive(got, Settle()), PeerClosed);
  IPCH_ASSERT_OK(p.server.Close());
  IPCH_ASSERT_OK(p.listener.Close());
  EXPECT_TRUE(DescriptorsBackTo(before));
}

// After `linger` the I/O thread gives a peer that still takes nothing up: it resets the stream.
// The peer then reads whole messages, a prefix of those sent, and PeerClosed: never a torn one.
TEST(AsioTcp, TheLingerEndsWithAResetNeverATornMessage) {
  Options o;
  o.close_wait = std::chrono::milliseconds(20);
  o.linger = std::chrono::milliseconds(50);
  auto l = Listen("127.0.0.1:0", o);
  IPCH_ASSERT_OK(l);
  const std::size_t without_client = audit::OpenDescriptors().size();
  auto c = Connect(l->address(), Settle(), o);
  IPCH_ASSERT_OK(c);
  const std::size_t client_fds = audit::OpenDescriptors().size() - without_client;
  auto s = l->Accept(Settle());
  IPCH_ASSERT_OK(s);
  const uint64_t salt = ::ipch::testing::Current().seed;
  const uint64_t sent = FillUntilTimeout(*c, 64 * 1024, salt);
  const std::size_t with_client = audit::OpenDescriptors().size();
  IPCH_ASSERT_OK(c->Close());
  // The client's I/O thread gave up and released what it held; only then does the server read.
  ASSERT_TRUE(DescriptorsBackTo(with_client - client_fds));
  const auto until = Deadline::After(Scaled(std::chrono::seconds(10)));
  Bytes got;
  uint64_t received = 0;
  Status st;
  while ((st = s->Receive(got, Settle())).ok()) {
    ASSERT_TRUE(VerifyMessage(got, received, 64 * 1024, salt));
    ++received;
    ASSERT_FALSE(until.expired());
  }
  IPCH_EXPECT_ERRC(st, PeerClosed);
  EXPECT_LT(received, sent) << "the reset lost nothing: the linger did not run out";
}

// Cap::AsyncIo: a message queued for the I/O thread, whose write then fails, makes that error the
// answer of a later Send (the errno kept), and of every Send after.
TEST(AsioTcp, AnErrorOfTheIoThreadIsTheAnswerOfALaterSend) {
  auto p = Connected();
  const uint64_t salt = ::ipch::testing::Current().seed;
  const uint64_t sent = FillUntilTimeout(p.client, 64 * 1024, salt);
  ASSERT_GT(sent, 0u);
  // Only the I/O thread's writes fail (every thread but this one): the server reads, the socket
  // drains, the I/O thread writes the queue and gets EIO.
  fault::Plan plan;
  plan.rules.push_back({fault::kWrite, fault::Kind::kErrno, EIO, 0, 1.0, 0});
  plan.rules[0].any_errno = true;
  plan.rules[0].thread = -fault::ThisThread();
  fault::ScopedPlan armed(plan);
  std::thread reader([&] {
    Bytes got;
    while (p.server.Receive(got, Settle()).ok()) {
    }
  });
  Status st;
  const auto until = Deadline::After(Scaled(std::chrono::seconds(10)));
  while ((st = p.client.Send(MakeMessage(sent, 64 * 1024, salt), Deadline::After(std::chrono::milliseconds(50)))).ok() ||
         st.Is(Errc::Timeout)) {
    if (until.expired()) break;
  }
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code, std::error_code(EIO, std::system_category())) << st.error().ToString();
  const Status again = p.client.Send(AsBytes("x"), Settle());
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().code, std::error_code(EIO, std::system_category())) << again.error().ToString();
  IPCH_ASSERT_OK(p.client.Close());
  reader.join();
}

// Close releases the socket, both io_contexts and the thread at once when nothing is left to
// write, even with a write still pending in the I/O thread: here the queue waits for room (the
// peer reads nothing) when a Corrupt frame fails the connection.
TEST(AsioTcp, CloseReleasesEverythingAtOnceWhenNothingIsLeftToWrite) {
  const std::size_t before = audit::OpenDescriptors().size();
  UniqueFd raw_listener(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  ASSERT_TRUE(raw_listener.valid());
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof sa;
  ASSERT_EQ(::bind(raw_listener.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
  ASSERT_EQ(::listen(raw_listener.get(), 1), 0);
  ASSERT_EQ(::getsockname(raw_listener.get(), reinterpret_cast<sockaddr*>(&sa), &len), 0);
  auto c = Connect("127.0.0.1:" + std::to_string(ntohs(sa.sin_port)), Settle());
  IPCH_ASSERT_OK(c);
  UniqueFd peer(::accept4(raw_listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
  ASSERT_TRUE(peer.valid());
  const uint64_t sent = FillUntilTimeout(*c, 64 * 1024, ::ipch::testing::Current().seed);
  ASSERT_GT(sent, 0u);
  const unsigned char garbage[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};  // a header whose check fails
  ASSERT_EQ(::write(peer.get(), garbage, sizeof garbage), 12);
  Bytes got;
  IPCH_ASSERT_ERRC(c->Receive(got, Settle()), Corrupt);
  IPCH_EXPECT_ERRC(c->Send(AsBytes("x"), Settle()), Corrupt) << "sticky for Send too";
  IPCH_ASSERT_OK(c->Close());
  peer.reset();
  raw_listener.reset();
  EXPECT_EQ(audit::OpenDescriptors().size(), before) << "Close left descriptors open";
}

// The battery runs the IPv4 adapter; the transport takes tcp's IPv6 addresses as well.
TEST(AsioTcp, Ipv6LoopbackCarriesMessages) {
  auto l = Listen("[::1]:0");
  IPCH_ASSERT_OK(l);
  ASSERT_EQ(l->address().rfind("[::1]:", 0), 0u) << l->address();
  auto c = Connect(l->address(), Settle());
  IPCH_ASSERT_OK(c);
  auto s = l->Accept(Settle());
  IPCH_ASSERT_OK(s);
  const uint64_t salt = ::ipch::testing::Current().seed;
  IPCH_ASSERT_OK(c->Send(MakeMessage(0, 5000, salt), Settle()));
  Bytes got;
  IPCH_ASSERT_OK(s->Receive(got, Settle()));
  EXPECT_TRUE(VerifyMessage(got, 0, 5000, salt));
  IPCH_EXPECT_ERRC(Listen(l->address()), AlreadyExists);
}

TEST(AsioTcp, BadAddressesAreInvalidArgument) {
  IPCH_EXPECT_ERRC(Listen("localhost"), InvalidArgument);
  IPCH_EXPECT_ERRC(Connect("127.0.0.1:notaport", Settle()), InvalidArgument);
}

}  // namespace
}  // namespace ipch::asio_tcp
