// System V message queues. The address names the listener's queue by key, "sysvmsg:0x<key>".
//
// Queues. Listen creates the listen queue with IPC_CREAT|IPC_EXCL, mode 0600. Connect creates
// three private queues (IPC_PRIVATE, 0600): one per direction and one holding the close token,
// and asks for them to be accepted with a request on the listen queue (message type 2: the
// three ids and the connector's pid and start time). One queue per direction, not one queue
// with a message type per direction: a queue's byte limit is shared by everything in it, so
// one end filling it with unread messages would block the other end's sends too, and two
// peers that both send before they receive would wait on each other until their deadlines.
// Message types tell data (1) from FIN (2); msgrcv with type -2 takes data first. Messages are
// sent as chunks (transports/mq/chunk.h), so a message may exceed the kernel's msgmax; msgrcv
// is never given MSG_NOERROR, so a queue message larger than the chunk buffer is
// MessageTooLarge (sticky), never a silent truncation.
//
// Deadlines. msgrcv and msgsnd have no timeout. Both run with IPC_NOWAIT and, while the queue
// is empty (or full), wait with a backoff: about 20 us of yielding, then sleeps doubling from
// 10 us to 1 ms, checking the deadline and the peer's liveness in between. The cost is up to
// 1 ms of extra latency for a message that arrives after a long idle period, and wake-ups of
// the waiting thread (about 1000 per second at the cap); docs/architecture.md has the figures.
//
// Peer death. The kernel tells nothing, so each end watches the other's process (pidfd and
// start time, as the shm transports do): a dead peer is PeerClosed within one backoff cap, after
// everything it sent. Before Accept, the connector watches the listener, whose identity is the
// listen queue's last receiver (msg_lrpid: only the listener receives there, and Listen
// receives once at once) checked against msg_rtime, so a recycled pid is not taken for it.
//
// Removal. The token queue holds one close token from creation. The first end to close takes it
// and sends FIN; the second finds it gone (confirmed by IPC_STAT, so a spurious ENOMSG cannot
// decide) and removes the three queues (IPC_RMID); an end whose peer is dead removes them at
// once. A peer that closed without its FIN getting through (its queue was full) is noticed by
// the missing token, looked at (IPC_STAT) every 10 ms while waiting. A queue removed under a
// call (EIDRM) is PeerClosed. The listen queue is removed by the listener's Close, which
// refuses every request never accepted; a listen queue whose listener died, or that this
// process abandoned (its removal failed), is reclaimed by the next Listen.
//
// Audits. SysV queues record no creator; every queue we make has one empty message sent and
// received through it at once, so its last sender and receiver (msg_lspid, msg_lrpid) name the
// creating process, which is how the harness's resource audit attributes queues.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "ipch/transport.h"

namespace ipch::sysv_mq {

inline constexpr std::size_t kDefaultMaxMessage = 1u << 20;

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
  // The connection queue's id (for tests).
  int queue_id() const;

 private:
  std::unique_ptr<State> s_;
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
  std::vector<std::filesystem::path> resource_paths() const { return {}; }
  // The listen queue's owner and mode (it has no path).
  std::vector<ResourceOwner> resource_owners() const;
  Status Close();

 private:
  std::unique_ptr<State> s_;
};

Result<Listener> Listen(const std::string& address, std::size_t max_message_size = kDefaultMaxMessage);
Result<Connection> Connect(const std::string& address, Deadline d, std::size_t max_message_size = kDefaultMaxMessage);
// "sysvmsg:0x<FNV-1a of token>".
std::string AddressFor(const std::string& token);
// The key an address names, or InvalidArgument.
Result<key_t> ParseAddress(const std::string& address);

struct Adapter {
  static constexpr std::string_view kName = "sysv_mq";
  static constexpr Caps kCaps = Cap::CrossProcess | Cap::NamedResource | Cap::PeerDeathDetect | Cap::QueueIo;
  using Connection = sysv_mq::Connection;
  using Listener = sysv_mq::Listener;
  static std::string Address(const EndpointSpec& s) { return AddressFor(s.token); }
  static Result<Listener> Listen(const std::string& a) { return sysv_mq::Listen(a); }
  static Result<Connection> Connect(const std::string& a, Deadline d) { return sysv_mq::Connect(a, d); }
};

}  // namespace ipch::sysv_mq
