// Conformance group Concurrency: one sender and one receiver thread per connection; connections
// in parallel.
#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "fixture.h"
#include "ipch/deadline.h"
#include "ipch/result.h"
#include "ipch/testing.h"
#include "ipch/transport.h"

namespace ipch::conformance {

template <class T>
class Concurrency : public TransportTest<T> {};
TYPED_TEST_SUITE_P(Concurrency);

TYPED_TEST_P(Concurrency, SenderAndReceiverThreadsShareAConnection) {
  IPCH_CONNECTED(p);
  constexpr uint64_t kCount = 2000;
  const uint64_t salt = this->Seed();
  // server echoes on its own thread; client sends on one thread and receives on another.
  std::thread echo([&] {
    Bytes m;
    for (uint64_t i = 0; i < kCount; ++i) {
      if (!p.server.Receive(m, Settle()).ok() || !p.server.Send(m, Settle()).ok()) return;
    }
  });
  Status send_status;
  std::thread sender([&] {
    for (uint64_t i = 0; i < kCount && send_status.ok(); ++i)
      send_status = p.client.Send(MakeMessage(i, i % 700, salt), Settle());
  });
  Bytes got;
  for (uint64_t i = 0; i < kCount; ++i) {
    Status st = p.client.Receive(got, Settle());
    if (!st.ok()) {
      ADD_FAILURE() << "receive " << i << ": " << st.error().ToString();
      break;
    }
    auto v = VerifyMessage(got, i, i % 700, salt);
    if (!v) {
      ADD_FAILURE() << v.message();
      break;
    }
  }
  sender.join();
  (void)p.client.Close();  // unblocks the echo thread if the loop above stopped early
  echo.join();
  IPCH_EXPECT_OK(send_status);
}

TYPED_TEST_P(Concurrency, ParallelConnectionsFromThreads) {
  IPCH_REQUIRE_PEERS(4);
  auto l = TypeParam::Listen(this->address_);
  IPCH_ASSERT_OK(l);
  constexpr int kThreads = 4, kCount = 300;
  std::vector<typename TypeParam::Connection> servers;
  std::vector<std::thread> clients;
  // Every thread's failure counts; the first one seen is reported, with its connection.
  std::mutex mu;
  int failures = 0;
  std::string first;
  auto fail = [&](std::string what) {
    std::lock_guard<std::mutex> lock(mu);
    if (failures++ == 0) first = std::move(what);
  };
  const std::string addr = l->address();
  const uint64_t salt = this->Seed();
  for (int t = 0; t < kThreads; ++t) {
    clients.emplace_back([&, t] {
      const std::string who = "client " + std::to_string(t);
      auto c = TypeParam::Connect(addr, Settle());
      if (!c.ok()) return fail(who + ": connect: " + c.error().ToString());
      Bytes m;
      for (int i = 0; i < kCount; ++i) {
        const std::string at = who + ", message " + std::to_string(i) + ": ";
        Bytes out = MakeMessage(i, 32 + t, salt ^ t);
        if (Status st = c->Send(out, Settle()); !st.ok()) return fail(at + "send: " + st.error().ToString());
        if (Status st = c->Receive(m, Settle()); !st.ok()) return fail(at + "receive: " + st.error().ToString());
        if (m != out) {
          return fail(at + "the echo of " + std::to_string(out.size()) + " bytes came back as " +
                      std::to_string(m.size()) + " different bytes");
        }
      }
    });
  }
  std::vector<std::thread> echoes;
  for (int t = 0; t < kThreads; ++t) {
    auto s = l->Accept(Settle());
    if (!s.ok()) {
      ADD_FAILURE() << "accept " << t << ": " << s.error().ToString();
      break;
    }
    echoes.emplace_back([&, t, conn = std::move(*s)]() mutable {
      const std::string who = "echo of accepted connection " + std::to_string(t);
      Bytes m;
      for (int i = 0; i < kCount; ++i) {
        const std::string at = who + ", message " + std::to_string(i) + ": ";
        if (Status st = conn.Receive(m, Settle()); !st.ok()) return fail(at + "receive: " + st.error().ToString());
        if (Status st = conn.Send(m, Settle()); !st.ok()) return fail(at + "send: " + st.error().ToString());
      }
      // Then its client closes: that, and nothing else, is what comes next.
      if (Status st = conn.Receive(m, Settle()); !st.Is(Errc::PeerClosed)) {
        fail(who + ": after the last message expected PeerClosed, got " +
             (st.ok() ? "a " + std::to_string(m.size()) + "-byte message" : st.error().ToString()));
      }
    });
  }
  for (auto& c : clients) c.join();
  for (auto& e : echoes) e.join();
  EXPECT_EQ(failures, 0) << failures << " of " << 2 * kThreads << " threads (" << kThreads << " clients, " << kThreads
                         << " echoes) failed; the first: " << first;
}

REGISTER_TYPED_TEST_SUITE_P(Concurrency, SenderAndReceiverThreadsShareAConnection, ParallelConnectionsFromThreads);

}  // namespace ipch::conformance
