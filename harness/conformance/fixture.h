// What every conformance group builds on: the time bounds, the typed fixture TransportTest,
// the generic macros and the helpers the cases share.
#pragma once

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>
#include <string_view>
#include <type_traits>
#include <typeinfo>
#include <utility>
#include <vector>

#include "ipch/child_process.h"
#include "ipch/deadline.h"
#include "ipch/fault.h"
#include "ipch/harness_calls.h"
#include "ipch/peer.h"
#include "ipch/result.h"
#include "ipch/testing.h"
#include "ipch/transport.h"

namespace ipch::conformance {

using ::ipch::testing::Check;
using ::ipch::testing::MakeMessage;
using ::ipch::testing::Peer;
using ::ipch::testing::VerifyMessage;

// Bounds: generous for what must succeed, short for what must time out. All scale under
// sanitizers (SlowdownFactor), so no case depends on the machine's speed.
// IPCH_SETTLE_MS overrides the success bound (the self-test shortens it for broken transports).
inline Clock::duration SettleBound() {
  static const Clock::duration bound = [] {
    const char* env = std::getenv("IPCH_SETTLE_MS");
    long ms = env ? std::atol(env) : 0;
    return ms > 0 ? Clock::duration(Millis(ms)) : Clock::duration(std::chrono::seconds(10));
  }();
  return bound;
}
inline Deadline Settle() { return Deadline::After(Scaled(SettleBound())); }
inline Clock::duration ShortWait() { return Scaled(Millis(100)); }
inline Clock::duration DeathBound() { return Scaled(std::chrono::seconds(2)); }
// What the battery knows can complete at once (a message sent before the receive began) must
// also be prompt: far above any honest cost, so that only a lost wake-up exceeds it — a receiver
// that notices a waiting message on some later timer instead of when it came.
inline Clock::duration PromptBound() {
  return std::min<Clock::duration>(Scaled(std::chrono::seconds(1)), Scaled(SettleBound()) / 2);
}
// A duration for messages, in seconds to the hundredth ("0.10"): gtest prints doubles to 17 digits.
inline std::string Seconds(Clock::duration d) {
  char text[32];
  std::snprintf(text, sizeof text, "%.2f", std::chrono::duration<double>(d).count());
  return text;
}

// Listeners that serve a limited number of peers at a time (an exclusive pair, as ZeroMQ's PAIR
// socket) say so with static constexpr std::size_t kMaxPeers = N; unlimited otherwise.
template <class T>
constexpr std::size_t MaxPeers() {
  if constexpr (requires { T::kMaxPeers; }) {
    return T::kMaxPeers;
  } else {
    return SIZE_MAX;
  }
}

// How an adapter's cross-process peers start: its static constexpr PeerMode kPeerMode (kExec for
// a library that cannot go on in a forked copy of a threaded process), kAuto otherwise.
template <class T>
constexpr ::ipch::testing::PeerMode PeerModeOf() {
  if constexpr (requires { T::kPeerMode; }) {
    return T::kPeerMode;
  } else {
    return ::ipch::testing::PeerMode::kAuto;
  }
}

// A peer connects to an address and runs its body on the connection, or listens on it and runs
// its body on the listener; with `plan` (a fault plan's text) armed first when it is not empty.
enum class PeerRole { kClient, kListener };
template <class T, PeerRole R, class F>
Status RunPeer(const std::string& address, const std::string& plan, F& body, ControlChannel& ch) {
  if (!plan.empty()) {
    fault::Plan p;
    std::string why;
    if (!fault::ParsePlan(plan, &p, &why)) return MakeError(Errc::InvalidArgument, "peer's plan: " + why);
    fault::Arm(p);
  }
  if constexpr (R == PeerRole::kClient) {
    auto c = T::Connect(address, Settle());
    if (!c.ok()) return std::move(c).error();
    return body(*c, ch);
  } else {
    auto l = T::Listen(address);
    if (!l.ok()) return std::move(l).error();
    return body(*l, ch);
  }
}

// A peer body as an exec'd peer runs it: the same program started again gets the address and the
// body's closure as bytes, so a body may capture plain values only (numbers, captureless
// lambdas) — no strings, containers, pointers or references, which mean nothing in another process.
template <class T, PeerRole R, class F>
struct ExecPeer {
  static_assert(std::is_trivially_copyable_v<F>,
                "a peer body may capture plain values only: an exec'd peer receives its closure as bytes");
  // The address and the plan, each behind its 32-bit length, then the closure's bytes.
  static std::string Payload(const std::string& address, const std::string& plan, const F& body) {
    std::string p;
    for (const std::string* part : {&address, &plan}) {
      const auto n = static_cast<uint32_t>(part->size());
      p.append(reinterpret_cast<const char*>(&n), sizeof n);
      p += *part;
    }
    p.append(reinterpret_cast<const char*>(&body), sizeof(F));
    return p;
  }
  static Status Run(std::string_view payload, ControlChannel& ch) {
    std::string parts[2];
    for (std::string& part : parts) {
      uint32_t n = 0;
      if (payload.size() < sizeof n) return MakeError(Errc::Corrupt, "exec'd peer: malformed payload");
      std::memcpy(&n, payload.data(), sizeof n);
      payload.remove_prefix(sizeof n);
      if (payload.size() < n) return MakeError(Errc::Corrupt, "exec'd peer: malformed payload");
      part = payload.substr(0, n);
      payload.remove_prefix(n);
    }
    if (payload.size() != sizeof(F)) return MakeError(Errc::Corrupt, "exec'd peer: malformed payload");
    alignas(F) unsigned char storage[sizeof(F)];
    std::memcpy(storage, payload.data(), sizeof(F));
    return RunPeer<T, R>(parts[0], parts[1], *std::launder(reinterpret_cast<F*>(storage)), ch);
  }
  static inline const char* const kId = ::ipch::testing::RegisterExecBody(typeid(ExecPeer).name(), &Run);
};

struct NameOf {
  template <class T>
  static std::string GetName(int) {
    return std::string(T::kName);
  }
};

template <class T>
class TransportTest : public ::testing::Test {
 protected:
  using Conn = typename T::Connection;
  using Lis = typename T::Listener;

  struct Pair {
    Lis listener;
    Conn client;
    Conn server;
  };

  // A library's one-time global setup (a context, its threads and descriptors, kept for the
  // process's lifetime) belongs to no test: an adapter's optional static void WarmUp() runs it
  // here, before the first test's audit baseline is taken (gtest runs SetUpTestSuite before the
  // suite's first test starts). It may run more than once per process and must be idempotent.
  static void SetUpTestSuite() {
    if constexpr (requires { T::WarmUp(); }) T::WarmUp();
  }
  // Each case runs under a fault-space census: the entry points the transport called and the
  // faults they took go into the run's coverage map (docs/fault-model.md).
  void SetUp() override {
    address_ = T::Address(Spec());
    fault::BeginCensus();
  }
  void TearDown() override { ::ipch::testing::SetCaseCensus(fault::FormatCensus(fault::EndCensus())); }

  static EndpointSpec Spec(std::string token = "") {
    const auto& ctx = ::ipch::testing::Current();
    return {token.empty() ? ctx.token : token, ctx.scratch_dir};
  }
  static bool Has(Cap c) { return T::kCaps.Has(c); }
  static bool CrossProcess() { return Has(Cap::CrossProcess); }
  static uint64_t Seed() { return ::ipch::testing::Current().seed; }
  static std::size_t Max(const Conn& c) { return c.max_message_size(); }

  // Listen (on this test's address unless told otherwise), connect and accept, all in this process.
  Result<Pair> Connected(const std::string& address = "") {
    auto l = T::Listen(address.empty() ? address_ : address);
    if (!l.ok()) return std::move(l).error();
    auto c = T::Connect(l->address(), Settle());
    if (!c.ok()) return std::move(c).error();
    auto s = l->Accept(Settle());
    if (!s.ok()) return std::move(s).error();
    return Pair{std::move(*l), std::move(*c), std::move(*s)};
  }

  // A peer (child process or thread) that connects to `address` and runs body(connection,
  // control channel). The body captures plain values only (ExecPeer).
  template <class F>
  static Result<Peer> StartClient(const std::string& address, F body) {
    return StartPeer<PeerRole::kClient>(address, body);
  }
  // A peer that listens on `address` and runs body(listener, control channel).
  template <class F>
  static Result<Peer> StartListener(const std::string& address, F body) {
    return StartPeer<PeerRole::kListener>(address, body);
  }
  // As StartClient and StartListener, with `plan` armed in the peer (a process) before it
  // connects or listens, and not here: the peer's calls are counted and faulted, the test's not.
  template <PeerRole R, class F>
  Result<Peer> StartPeerUnder(const fault::Plan& plan, const std::string& address, F body) {
    return StartPeer<R>(address, body, fault::FormatPlan(plan));
  }

  std::string address_;

 private:
  template <PeerRole R, class F>
  static Result<Peer> StartPeer(const std::string& address, F body, std::string plan = "") {
    using Exec = ExecPeer<T, R, F>;
    if (CrossProcess() && ::ipch::testing::ExecPeers(PeerModeOf<T>())) {
      // The exec'd peer arms the plan armed here, as a forked one inherits it.
      return Peer::StartExec(Exec::kId, Exec::Payload(address, plan, body), fault::PlanEnvironment());
    }
    return Peer::Start(CrossProcess(), [address, plan, body](ControlChannel& ch) mutable {
      return RunPeer<T, R>(address, plan, body, ch);
    });
  }
};

// A case that cannot apply to the transport's mechanism (not a hook or capability missing, but a
// fault its kind of IPC cannot have): skipped as "N/A: <name>: <why>", counted apart from
// UNSUPPORTED in the verdict table (docs/fault-model.md lists every such reason).
#define IPCH_NOT_APPLICABLE(why) GTEST_SKIP() << "N/A: " << TypeParam::kName << ": " << why

#define IPCH_REQUIRE_CAP(cap)                                                           \
  do {                                                                                  \
    if (!TypeParam::kCaps.Has(::ipch::Cap::cap)) {                                      \
      GTEST_SKIP() << "UNSUPPORTED: " << TypeParam::kName << " lacks capability " #cap; \
    }                                                                                   \
  } while (0)

// A case that needs `n` peers connected to one listener at once.
#define IPCH_REQUIRE_PEERS(n)                                                                               \
  do {                                                                                                      \
    if (::ipch::conformance::MaxPeers<TypeParam>() < (n)) {                                                 \
      GTEST_SKIP() << "UNSUPPORTED: " << TypeParam::kName << " listeners take at most "                     \
                   << ::ipch::conformance::MaxPeers<TypeParam>() << " peer(s) at a time (kMaxPeers); this " \
                   << "case needs " << (n);                                                                 \
    }                                                                                                       \
  } while (0)

#define IPCH_CONNECTED(var)         \
  auto var##_r = this->Connected(); \
  IPCH_ASSERT_OK(var##_r);          \
  auto& var = *var##_r

#define IPCH_ASSERT_PEER_OK(peer) IPCH_ASSERT_OK((peer).Join(Settle()))

// Receives on `c` a message that was sent (completely, by `sent`) before this call: it must
// arrive, and promptly (PromptBound).
template <class C>
::testing::AssertionResult ReceiveWaiting(C& c, Bytes& got, Clock::time_point sent) {
  const auto begin = Clock::now();
  Status s = c.Receive(got, Settle());
  const auto end = Clock::now();
  if (!s.ok()) return ::testing::AssertionFailure() << "receive: " << s.error().ToString();
  if (end - begin > PromptBound()) {
    return ::testing::AssertionFailure() << "receive took " << Seconds(end - begin)
                                         << " s although the message was sent " << Seconds(end - sent)
                                         << " s earlier: a lost wake-up? (bound " << Seconds(PromptBound()) << " s)";
  }
  return ::testing::AssertionSuccess();
}

// Where a message goes: straight to the other end, where it waits once Send returns (so the
// receive must be prompt), or through a relay that may still hold it (the toxics proxy).
enum class Path { kDirect, kRelayed };

// Sends `msg` from a to b and checks it arrives intact.
template <class C>
::testing::AssertionResult RoundTrip(C& a, C& b, const Bytes& msg, Path path = Path::kDirect) {
  Status s = a.Send(msg, Settle());
  if (!s.ok()) return ::testing::AssertionFailure() << "send " << msg.size() << " bytes: " << s.error().ToString();
  Bytes got;
  if (path == Path::kDirect) {
    if (auto r = ReceiveWaiting(b, got, Clock::now()); !r) return r << " (" << msg.size() << " bytes)";
  } else if (s = b.Receive(got, Settle()); !s.ok()) {
    return ::testing::AssertionFailure() << "receive " << msg.size() << " bytes: " << s.error().ToString();
  }
  if (got != msg)
    return ::testing::AssertionFailure() << "message of " << msg.size() << " bytes arrived as " << got.size()
                                         << " different bytes";
  return ::testing::AssertionSuccess();
}

// A peer body that echoes `count` messages back.
inline auto EchoPeer(int count) {
  return [count](auto& c, ControlChannel&) -> Status {
    Bytes m;
    for (int i = 0; i < count; ++i) {
      IPCH_RETURN_IF_ERROR(c.Receive(m, Settle()));
      IPCH_RETURN_IF_ERROR(c.Send(m, Settle()));
    }
    return Ok();
  };
}

// A peer body that connects, signals, and then stays parked (connection open) until killed.
inline auto ParkedPeer() {
  return [](auto&, ControlChannel& ch) -> Status {
    IPCH_RETURN_IF_ERROR(ch.Signal());
    return ch.WaitSignal(Deadline::Never());
  };
}

// One write of hostile bytes on a raw connection: send(MSG_NOSIGNAL) on a socket, write on a
// pipe (whose reader, the listener, is alive while these tests write).
inline ssize_t RawWrite(int fd, const void* data, std::size_t n) {
  const HarnessCalls harness;  // the hostile peer's write, not the transport's
  ssize_t w = ::send(fd, data, n, MSG_NOSIGNAL);
  if (w < 0 && errno == ENOTSOCK) w = ::write(fd, data, n);
  return w;
}

// Sends `msg` to an echoing peer and checks the echo.
template <class C>
::testing::AssertionResult RoundTripVia(C& c, const Bytes& msg) {
  Status s = c.Send(msg, Settle());
  if (!s.ok()) return ::testing::AssertionFailure() << "send: " << s.error().ToString();
  Bytes got;
  s = c.Receive(got, Settle());
  if (!s.ok()) return ::testing::AssertionFailure() << "receive echo: " << s.error().ToString();
  if (got != msg)
    return ::testing::AssertionFailure() << "echo of " << msg.size() << " bytes came back as " << got.size()
                                         << " different bytes";
  return ::testing::AssertionSuccess();
}

}  // namespace ipch::conformance
