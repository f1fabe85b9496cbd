// The transport contract. An adapter is a type satisfying ipch::Transport; the conformance
// battery is instantiated over a list of such types (see docs/new-transport.md).
#pragma once

#include <sys/types.h>

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ipch/deadline.h"
#include "ipch/result.h"

namespace ipch {

using Bytes = std::vector<std::byte>;
using ByteView = std::span<const std::byte>;

// Capabilities decide which conformance cases run; a case needing a missing one is skipped
// with the capability's name as the reason.
enum class Cap : uint32_t {
  Stream = 1u << 0,           // a byte stream underneath (framing can tear, short I/O exists)
  CrossProcess = 1u << 1,     // the peer can live in another process (fork-based tests)
  NamedResource = 1u << 2,    // Listen creates filesystem or kernel objects with names
  PeerDeathDetect = 1u << 3,  // a killed peer is reported as PeerClosed within a bound
  RawPeer = 1u << 4,          // adapter can open a raw byte connection for hostile-peer tests
  SyscallIo = 1u << 5,        // I/O goes through libc calls the fault engine can interpose
  SharedMemory = 1u << 6,     // the peers share a mapped segment a hostile peer can scribble on
  QueueIo = 1u << 7,          // I/O goes through SysV or POSIX message-queue calls the fault engine interposes
  HttpWire = 1u << 8,         // the wire is HTTP/1.1 at a socket address: hostile HTTP peers (the kHttpWire hooks)
  AsyncIo = 1u << 9,          // the transport's own threads do the I/O: an injected error may surface on a later call
  // A connection broken underneath is not the end of the session: the transport opens another
  // and carries on (an HTTP client sends a request again on a new TCP connection). It owes
  // every message once and in order, or PeerClosed; a cut or reset is not necessarily PeerClosed.
  Reconnects = 1u << 10,
};

class Caps {
 public:
  constexpr Caps() = default;
  constexpr Caps(Cap c) : bits_(static_cast<uint32_t>(c)) {}  // NOLINT: implicit by design
  constexpr Caps operator|(Caps o) const { return Caps(bits_ | o.bits_); }
  constexpr bool Has(Cap c) const { return (bits_ & static_cast<uint32_t>(c)) != 0; }
  constexpr uint32_t bits() const { return bits_; }

 private:
  constexpr explicit Caps(uint32_t b) : bits_(b) {}
  uint32_t bits_ = 0;
};
constexpr Caps operator|(Cap a, Cap b) { return Caps(a) | Caps(b); }

// What the harness hands to Address(): a token unique to this test and process, and a
// private (0700) scratch directory that the audit checks for leftovers.
struct EndpointSpec {
  std::string token;
  std::filesystem::path scratch_dir;
};

// Owner and mode of a kernel object a listener created that has no filesystem path (SysV);
// listeners may list them through an optional resource_owners() for the security group.
struct ResourceOwner {
  std::string what;
  uid_t uid = 0;
  mode_t mode = 0;
};

// What the security group plants at an address before Listen/Connect, through an adapter's
// optional static PlantImpostor(address, Impostor) / RemoveImpostor(address). A kind the
// mechanism cannot hold is declined with a reason by an optional
// static std::string_view ImpostorDoesNotApply(Impostor) (empty when it applies).
enum class Impostor {
  OtherOwner,     // the right kind of object, owned by another uid (needs root to plant)
  WrongSize,      // owned by us but not what the transport creates: the wrong size, or a
                  // regular file where a socket or FIFO belongs
  Uninitialised,  // the right size, all zeros: a creator killed before initialising it
  Symlink,        // a symbolic link where the object belongs, to a live one of ours elsewhere
};

// What the security group plants in a listener's rendezvous: a connection request naming
// objects that a connector of ours never names, through an adapter's optional static
// PlantRequestImpostor(const Listener&, RequestImpostor) / RemoveRequestImpostors(const Listener&)
// (and static std::string_view RequestImpostorDoesNotApply(RequestImpostor), as for Impostor).
enum class RequestImpostor {
  Symlink,      // the named objects are links to live objects of ours elsewhere
  RegularFile,  // the named objects are regular files
  OtherOwner,   // the named objects belong to another uid (needs root to plant)
  Outside,      // the name leads out of the listener's private place ("../", "/")
};

// How a hostile-queue case puts a queue message, through an adapter's optional static
// PutQueueMessage(const Connection& to, ByteView message, QueueMessageType) (Cap::QueueIo).
enum class QueueMessageType {
  Peer,     // the type (SysV mtype) or priority (POSIX) the connection's peer sends data with
  Foreign,  // one the peer never uses: another program writing into the queue
};

// A connected endpoint. Message semantics: whole messages, in order, no loss, no
// duplication; one thread may send while another receives; Close() is idempotent.
template <class C>
concept Connection = std::movable<C> && requires(C c, ByteView msg, Bytes& out, Deadline d) {
  { c.Send(msg, d) } -> std::same_as<Status>;
  { c.Receive(out, d) } -> std::same_as<Status>;
  { c.Close() } -> std::same_as<Status>;
  { c.max_message_size() } -> std::convertible_to<std::size_t>;
};

template <class L, class C>
concept Listener = std::movable<L> && requires(L l, Deadline d) {
  { l.Accept(d) } -> std::same_as<Result<C>>;
  { l.address() } -> std::convertible_to<std::string>;
  // Filesystem paths this listener created; the security group checks their modes.
  { l.resource_paths() } -> std::convertible_to<std::vector<std::filesystem::path>>;
  { l.Close() } -> std::same_as<Status>;
};

template <class T>
concept Transport = requires(const EndpointSpec& spec, const std::string& address, Deadline d) {
  { T::kName } -> std::convertible_to<std::string_view>;
  { T::kCaps } -> std::convertible_to<Caps>;
  typename T::Connection;
  typename T::Listener;
  requires Connection<typename T::Connection>;
  requires Listener<typename T::Listener, typename T::Connection>;
  { T::Address(spec) } -> std::convertible_to<std::string>;
  { T::Listen(address) } -> std::same_as<Result<typename T::Listener>>;
  { T::Connect(address, d) } -> std::same_as<Result<typename T::Connection>>;
};

// The optional SharedBytes hook: static std::span<std::byte> SharedBytes(const Connection&), the
// segment a hostile peer can write (the security group and the session fuzzer scribble on it).
template <class T>
constexpr bool kHasSharedBytes = requires(const typename T::Connection& c) {
  { T::SharedBytes(c) } -> std::convertible_to<std::span<std::byte>>;
};

inline ByteView AsBytes(std::string_view s) { return {reinterpret_cast<const std::byte*>(s.data()), s.size()}; }

}  // namespace ipch
