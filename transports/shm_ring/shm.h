// Shared-memory message transport over the ring core, with a POSIX or a System V backing.
//
// Rendezvous. Listen creates a small named segment (the address) holding the listener's
// identity and a table of connection slots. Connect creates a connection segment (two rings and
// both ends' identities), claims a slot and rings the listener's doorbell (a futex); it returns
// at once, like a socket connect into a backlog, and may send before it is accepted. Accept maps
// the offered segment, validates it and writes its identity into it; an offer naming something
// else (a link, another uid's segment, a keyed one, one holding no connection) is dropped and
// the next one looked at.
//
// Cleanup. A connection segment is removed (shm_unlink / IPC_RMID) by the acceptor as soon as
// both ends have it mapped, so it goes away with the last of them whoever dies. An offer never
// accepted is removed by the listener's Close, by its connector if the listener is gone, or by
// the next Listen that reclaims a dead listener's rendezvous. The rendezvous segment lives
// until the listener's Close.
//
// Peer death. Each end records its pid and start time; the other end holds a pidfd on it,
// verified against the start time, so a recycled pid cannot pass for the peer. A blocked end
// sleeps in slices of `liveness_interval` and checks the peer between them: a SIGKILLed peer is
// reported as PeerClosed within about one interval (default 50 ms), after every message it had
// fully published. A record is published by one release store of `tail`, so a peer killed
// mid-publish leaves nothing torn behind.
//
// Orphans (policy, see docs/architecture.md): a rendezvous whose owner is dead (pid gone or
// recycled) or closed is reclaimed by the next Listen on the name. One that is not ours (other
// uid, group/other mode bits) is refused with PermissionDenied, one of the wrong size or contents
// with AlreadyExists, a half-initialised one whose creator cannot be identified (POSIX, killed
// between create and initialise) with OrphanedResource; none of these is ever removed.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "ipch/closing_ptr.h"
#include "ipch/transport.h"
#include "segment.h"

namespace ipch::shm {

class Listener;

struct Options {
  // Per direction, a power of two (4 KiB .. 1 GiB); a message is at most capacity - 16 bytes.
  // 256 KiB by default: both rings stay in the L2 caches of the two CPUs, and a stream of 4 KiB
  // messages ran twice as fast as through 1 MiB rings (docs/benchmarks.md). Raise it for
  // larger messages.
  uint32_t ring_capacity = 256u << 10;
  std::chrono::milliseconds liveness_interval{50};
};

class Connection {
 public:
  struct State;
  Connection();
  explicit Connection(std::unique_ptr<State> s);
  Connection(Connection&&) noexcept;
  Connection& operator=(Connection&&) noexcept;
  ~Connection();

  Status Send(ByteView msg, Deadline d);
  Status Receive(Bytes& out, Deadline d);
  Status Close();
  std::size_t max_message_size() const;
  // The whole shared segment: what a hostile peer can write. For tests.
  std::span<std::byte> shared_bytes() const;

 private:
  friend Status PlantRequestImpostor(Backing, const Listener&, RequestImpostor);
  ClosingPtr<State> s_;
};

class Listener {
 public:
  struct State;
  Listener();
  explicit Listener(std::unique_ptr<State> s);
  Listener(Listener&&) noexcept;
  Listener& operator=(Listener&&) noexcept;
  ~Listener();

  Result<Connection> Accept(Deadline d);
  const std::string& address() const;
  std::vector<std::filesystem::path> resource_paths() const;
  std::vector<ResourceOwner> resource_owners() const;
  // Refuses offers never accepted (their connectors see PeerClosed), removes the rendezvous.
  Status Close();

 private:
  friend Status PlantRequestImpostor(Backing, const Listener&, RequestImpostor);
  ClosingPtr<State> s_;
};

Result<Listener> Listen(Backing b, const std::string& address, Options o = {});
Result<Connection> Connect(Backing b, const std::string& address, Deadline d, Options o = {});

// The name an address denotes ("/name" for POSIX, "sysv:0x<key>" for SysV), or InvalidArgument.
Result<SegmentName> ParseAddress(Backing b, const std::string& address);
// An address derived from a test token: "/<token>" or "sysv:0x<FNV-1a of token>".
std::string AddressFor(Backing b, const std::string& token);

// Sizes of the two segment kinds (exposed for tests that plant impostors).
std::size_t RendezvousSize();
std::size_t ConnectionSize(uint32_t ring_capacity);

// Test hook: runs `f` inside the next Send of this process after the record is copied into the
// ring and before it is published (a peer can be killed exactly mid-publish). One-shot.
void SetMidPublishHook(std::function<void()> f);

// Creates the impostor (OtherOwner needs root to chown; Symlink, POSIX only, links the name to
// a live listener's segment elsewhere); RemoveImpostor deletes it again.
Status PlantImpostor(Backing b, const std::string& address, Impostor kind);
void RemoveImpostor(Backing b, const std::string& address);
// Offers naming impostors, put in a free slot of `l`'s table as a connector would: a link to a
// live connector's segment elsewhere (POSIX), a segment holding no connection, one of another
// uid, a keyed segment (SysV: a connector's is private). RemoveRequestImpostors deletes them.
Status PlantRequestImpostor(Backing b, const Listener& l, RequestImpostor kind);
void RemoveRequestImpostors(Backing b, const Listener& l);
std::string_view RequestImpostorDoesNotApply(Backing b, RequestImpostor kind);

// The adapter for the conformance battery; posix_shm.h and sysv_shm.h name the two instances.
template <Backing B>
struct Adapter {
  static constexpr std::string_view kName = B == Backing::Posix ? "posix_shm" : "sysv_shm";
  static constexpr Caps kCaps = Cap::CrossProcess | Cap::NamedResource | Cap::PeerDeathDetect | Cap::SharedMemory;
  // The orphan policy (docs/architecture.md): a SysV connector killed after shmget and before its
  // offer leaves a private segment only its id names, and only it knew the id. (POSIX segments
  // have names, and the listener removes a dead connector's.)
  static constexpr std::string_view kKilledPeerLeaves = B == Backing::Sysv ? "sysv shm key=0 " : "";
  static constexpr std::string_view kKilledPeerLeavesWhy =
      "a SysV connector killed between making its private segment and offering it: nothing names the segment";
  using Connection = shm::Connection;
  using Listener = shm::Listener;
  static std::string Address(const EndpointSpec& s) { return AddressFor(B, s.token); }
  static Result<Listener> Listen(const std::string& a) { return shm::Listen(B, a); }
  static Result<Connection> Connect(const std::string& a, Deadline d) { return shm::Connect(B, a, d); }

  // Hooks for the shared-memory cases of the battery (docs/new-transport.md).
  static std::span<std::byte> SharedBytes(const Connection& c) { return c.shared_bytes(); }
  static void SetMidPublishHook(std::function<void()> f) { shm::SetMidPublishHook(std::move(f)); }
  static Status PlantImpostor(const std::string& a, Impostor k) { return shm::PlantImpostor(B, a, k); }
  static void RemoveImpostor(const std::string& a) { shm::RemoveImpostor(B, a); }
  static Status PlantRequestImpostor(const Listener& l, RequestImpostor k) {
    return shm::PlantRequestImpostor(B, l, k);
  }
  static void RemoveRequestImpostors(const Listener& l) { shm::RemoveRequestImpostors(B, l); }
  static std::string_view RequestImpostorDoesNotApply(RequestImpostor k) {
    return shm::RequestImpostorDoesNotApply(B, k);
  }
  static std::string_view ImpostorDoesNotApply(Impostor k) {
    if (B == Backing::Sysv && k == Impostor::Symlink)
      return "a SysV segment is named by a key, not a path: nothing can be linked";
    return {};
  }
};

}  // namespace ipch::shm
