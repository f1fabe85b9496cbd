// Conformance group Concurrency: one sender and one receiver thread per connection; connections
// in parallel.
#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
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
  auto l = TypeParam::Listen(this->address_);
  IPCH_ASSERT_OK(l);
  constexpr int kThreads = 4, kCount = 300;
  std::vector<typename TypeParam::Connection> servers;
  std::vector<std::thread> clients;
  std::atomic<int> failures{0};
  const std::string addr = l->address();
  const uint64_t salt = this->Seed();
  for (int t = 0; t < kThreads; ++t) {
    clients.emplace_back([&, t] {
      auto c = TypeParam::Connect(addr, Settle());
      if (!c.ok()) {
        ++failures;
        return;
      }
      Bytes m;
      for (int i = 0; i < kCount; ++i) {
        Bytes out = MakeMessage(i, 32 + t, salt ^ t);
        if (!c->Send(out, Settle()).ok() || !c->Receive(m, Settle()).ok() || m != out) {
          ++failures;
          return;
        }
      }
    });
  }
  std::vector<std::thread> echoes;
  for (int t = 0; t < kThreads; ++t) {
    auto s = l->Accept(Settle());
    if (!s.ok()) {
      ADD_FAILURE() << s.error().ToString();
      break;
    }
    echoes.emplace_back([conn = std::move(*s)]() mutable {
      Bytes m;
      while (conn.Receive(m, Settle()).ok() && conn.Send(m, Settle()).ok()) {
      }
    });
  }
  for (auto& c : clients) c.join();
  for (auto& e : echoes) e.join();
  EXPECT_EQ(failures.load(), 0);
}

REGISTER_TYPED_TEST_SUITE_P(Concurrency, SenderAndReceiverThreadsShareAConnection, ParallelConnectionsFromThreads);

}  // namespace ipch::conformance
