// Optional adapter hooks (raw connect, frame header, socket address, HTTP wire, queue depth,
// shared bytes, impostors), detected at compile time: a case whose hook is missing says UNSUPPORTED, not pass.
#pragma once

#include <gtest/gtest.h>

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "fixture.h"
#include "ipch/deadline.h"
#include "ipch/http_wire.h"
#include "ipch/result.h"
#include "ipch/transport.h"
#include "ipch/unique_fd.h"

namespace ipch::conformance {

// A plain byte connection to `address`, for adapters with Cap::RawPeer (they provide
// static Result<UniqueFd> ConnectRaw(address, Deadline)); others never reach this.
template <class T>
Result<UniqueFd> ConnectRaw(const std::string& address, Deadline d) {
  if constexpr (requires { T::ConnectRaw(address, d); }) {
    return T::ConnectRaw(address, d);
  } else {
    return MakeError(Errc::InvalidArgument, std::string(T::kName) + " has no ConnectRaw");
  }
}

// Adapters with Cap::RawPeer also say how their frames look, so hostile-peer cases can write
// well-formed headers announcing any length: static Bytes FrameHeader(uint32_t length, ByteView payload).
template <class T>
constexpr bool kHasFrameHeader = requires(ByteView p) {
  { T::FrameHeader(uint32_t{0}, p) } -> std::same_as<Bytes>;
};
// Bytes a frame adds to its payload on the wire (0 without the hook).
template <class T>
std::size_t FrameOverhead() {
  if constexpr (kHasFrameHeader<T>) {
    return T::FrameHeader(0, {}).size();
  } else {
    return 0;
  }
}
// Adapters whose addresses are socket addresses (HOST:PORT or a unix socket path) that Connect
// accepts get the stream-toxics cases: static constexpr bool kSocketAddress = true.
template <class T>
constexpr bool kHasSocketAddress = requires {
  requires T::kSocketAddress;
};

// Adapters whose wire is HTTP/1.1 (with kSocketAddress: the interposer stands at a socket
// address in front of the listener) get the hostile-HTTP cases:
//   static constexpr bool kHttpWire = true;
//   static HttpCall HttpCallOf(std::string_view method, std::string_view target)
//     which call makes a request like this;
//   static HttpWireRequest HttpSendRequest(const Connection& client, uint64_t n, ByteView body)
//     the request `client` makes to send `body` as its n-th message (1 for the first);
//   static HttpWireAnswer HttpReceiveAnswer(uint64_t n, ByteView body)
//     a genuine server's answer to the receive that fetches message n.
template <class T>
constexpr bool kHasHttpWire = requires(const typename T::Connection& c, ByteView b, std::string_view s) {
  requires T::kHttpWire;
  { T::HttpCallOf(s, s) } -> std::same_as<HttpCall>;
  { T::HttpSendRequest(c, uint64_t{1}, b) } -> std::same_as<HttpWireRequest>;
  { T::HttpReceiveAnswer(uint64_t{1}, b) } -> std::same_as<HttpWireAnswer>;
};

// How many small messages can wait unread in one direction: unbounded (by count) unless the
// adapter says otherwise with static std::size_t UnreadMessages() (a POSIX queue holds
// mq_maxmsg messages whatever their size).
template <class T>
uint64_t UnreadMessages() {
  if constexpr (requires { T::UnreadMessages(); }) {
    return T::UnreadMessages();
  } else {
    return UINT64_MAX;
  }
}

// What a peer killed between making an object and handing it over leaves, when nothing can
// tell whose it is (a SysV private object names no maker, and nobody else knows its id): an
// adapter declares it, with the reason, and the kill cases' audit accepts it instead of
// failing (the objects are removed all the same). The kind is the audit's wording of the
// objects' leak lines ("sysv shm key=0 "; empty: none):
//   static constexpr std::string_view kKilledPeerLeaves = "sysv msg key=0 ";
//   static constexpr std::string_view kKilledPeerLeavesWhy = "...";
template <class T>
constexpr bool kHasKilledPeerLeftovers = requires {
  { T::kKilledPeerLeaves } -> std::convertible_to<std::string_view>;
  { T::kKilledPeerLeavesWhy } -> std::convertible_to<std::string_view>;
};

// Optional adapter hooks for the shared-memory and named-object cases. An adapter without a
// hook gets those cases reported UNSUPPORTED with the hook's name, never a silent pass.
template <class T>
constexpr bool kHasMidPublishHook = requires {
  T::SetMidPublishHook(std::function<void()>());
};
using ::ipch::kHasSharedBytes;  // ipch/transport.h
template <class T>
constexpr bool kHasImpostors = requires(const std::string& a) {
  { T::PlantImpostor(a, Impostor::WrongSize) } -> std::same_as<Status>;
  T::RemoveImpostor(a);
};

// Adapters over message queues (Cap::QueueIo) let hostile-queue cases act as the peer:
//   static Status PutQueueMessage(const Connection& to, ByteView message, QueueMessageType t)
//     puts one queue message, laid out as the transport lays out its chunks, into the queue
//     that `to` receives from, without waiting (a full queue is an error);
//   static std::vector<Bytes> QueueMessages(const Connection& to, const std::vector<Bytes>& messages)
//     the queue messages a well-behaved peer of `to` would put for `messages`, sent first on a
//     fresh connection, limits unchecked (a case can announce more than max_message_size).
template <class T>
constexpr bool kHasRawQueue = requires(const typename T::Connection& c, ByteView m, const std::vector<Bytes>& ms) {
  { T::PutQueueMessage(c, m, QueueMessageType::Peer) } -> std::same_as<Status>;
  { T::QueueMessages(c, ms) } -> std::same_as<std::vector<Bytes>>;
};

template <class T>
constexpr bool kHasRequestImpostors = requires(const typename T::Listener& l) {
  { T::PlantRequestImpostor(l, RequestImpostor::Symlink) } -> std::same_as<Status>;
  T::RemoveRequestImpostors(l);
};
template <class T>
std::string RequestImpostorDoesNotApply(RequestImpostor kind) {
  if constexpr (requires { T::RequestImpostorDoesNotApply(kind); }) {
    return std::string(T::RequestImpostorDoesNotApply(kind));
  } else {
    return {};
  }
}

// Why an adapter's mechanism cannot hold an impostor of `kind` (empty: it can).
template <class T>
std::string ImpostorDoesNotApply(Impostor kind) {
  if constexpr (requires { T::ImpostorDoesNotApply(kind); }) {
    return std::string(T::ImpostorDoesNotApply(kind));
  } else {
    return {};
  }
}

#define IPCH_REQUIRE_HOOK(flag, hook)                                                            \
  do {                                                                                           \
    if (!(flag)) GTEST_SKIP() << "UNSUPPORTED: " << TypeParam::kName << " has no " hook " hook"; \
  } while (0)

// Impostor cases need a named object to impersonate, the adapter's hook, and a kind its
// mechanism can hold.
#define IPCH_REQUIRE_IMPOSTOR(kind)                                                            \
  do {                                                                                         \
    IPCH_REQUIRE_CAP(NamedResource);                                                           \
    IPCH_REQUIRE_HOOK(kHasImpostors<TypeParam>, "PlantImpostor");                              \
    if (const std::string why = ImpostorDoesNotApply<TypeParam>(Impostor::kind); !why.empty()) \
      GTEST_SKIP() << "UNSUPPORTED: " << TypeParam::kName << ": " << why;                      \
  } while (0)

// Plants an impostor object at an address and removes it again when it goes out of scope.
template <class T>
class PlantedImpostor {
 public:
  PlantedImpostor(std::string address, Impostor kind) : address_(std::move(address)) {
    if constexpr (kHasImpostors<T>) status_ = T::PlantImpostor(address_, kind);
  }
  ~PlantedImpostor() {
    if constexpr (kHasImpostors<T>) T::RemoveImpostor(address_);
  }
  const Status& status() const { return status_; }

 private:
  std::string address_;
  Status status_;
};

// Plants `kind` at `address` and checks that Listen refuses it with `on_listen`, Connect with
// `on_connect`, and that the refusals left it in place (a second Listen is refused the same way).
template <class T>
::testing::AssertionResult ImpostorIsRefused(const std::string& address, Impostor kind, Errc on_listen,
                                             Errc on_connect) {
  PlantedImpostor<T> planted(address, kind);
  if (!planted.status().ok()) return ::testing::AssertionFailure() << "plant: " << planted.status().error().ToString();
  auto expect = [](const auto& r, Errc want, const char* what) -> ::testing::AssertionResult {
    if (r.Is(want)) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << what << ": expected " << make_error_code(want).message() << ", got "
                                         << (r.ok() ? std::string("OK") : r.error().ToString());
  };
  if (auto a = expect(T::Listen(address), on_listen, "listen"); !a) return a;
  if (auto a = expect(T::Connect(address, Settle()), on_connect, "connect"); !a) return a;
  return expect(T::Listen(address), on_listen, "listen again (the refusal must not remove the object)");
}

}  // namespace ipch::conformance
