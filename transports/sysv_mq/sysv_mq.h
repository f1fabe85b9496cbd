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
// Deadlines. msgrcv and msgsnd have no timeout. The first call for a chunk uses IPC_NOWAIT;
// then the call blocks, for 50 ms slices at most, bounded by a per-thread POSIX timer whose
// signal (SIGRTMAX-3, a handler that does nothing, no SA_RESTART) interrupts it. Between slices
// the shared core (transports/mq/connection.h) looks at the deadline and the peer. Where the
// signal is someone else's or blocked, the calls poll with a backoff instead (yielding, then
// sleeps doubling from 10 us to 1 ms); docs/architecture.md has the figures of both.
//
// Peer death. The kernel tells nothing, so each end watches the other's process (pidfd and
// start time, as the shm transports do): a dead peer is PeerClosed within one slice, after
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

#include "../mq/connection.h"
#include "ipch/closing_ptr.h"
#include "ipch/transport.h"

namespace ipch::sysv_mq {

inline constexpr std::size_t kDefaultMaxMessage = 1u << 20;

// A connection: the message-queue core (transports/mq/connection.h) over three SysV queues;
// incoming_queue() is the id of the queue it receives from.
using Connection = mq::Connection;

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
  ClosingPtr<State> s_;
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
  // The orphan policy (docs/architecture.md): a connector killed after making its private queues
  // and before its request reached the listener leaves them; only their ids name them, and only
  // it knew the ids (a queue records no creator).
  static constexpr std::string_view kKilledPeerLeaves = "sysv msg key=0 ";
  static constexpr std::string_view kKilledPeerLeavesWhy =
      "a connector killed between making its private queues and sending its request: nothing names the queues";
  using Connection = mq::Connection;
  using Listener = sysv_mq::Listener;
  static std::string Address(const EndpointSpec& s) { return AddressFor(s.token); }
  static Result<Listener> Listen(const std::string& a) { return sysv_mq::Listen(a); }
  static Result<Connection> Connect(const std::string& a, Deadline d) { return sysv_mq::Connect(a, d); }
  // Hostile-queue hooks (harness/conformance/hooks.h): a queue message put straight into the
  // queue `to` receives from, and the chunks a well-behaved peer would put.
  static Status PutQueueMessage(const Connection& to, ByteView message, QueueMessageType t);
  static std::vector<Bytes> QueueMessages(const Connection& to, const std::vector<Bytes>& messages);
  // Impostors at the key, for the security group: a live listen queue of another uid.
  static Status PlantImpostor(const std::string& address, Impostor kind);
  static void RemoveImpostor(const std::string& address);
  static std::string_view ImpostorDoesNotApply(Impostor kind);
  // Connection requests naming private queues of another uid, or keyed queues of ours (a
  // listener's kind, outside the private ones a connector makes).
  static Status PlantRequestImpostor(const Listener& l, RequestImpostor kind);
  static void RemoveRequestImpostors(const Listener& l);
  static std::string_view RequestImpostorDoesNotApply(RequestImpostor kind);
};

}  // namespace ipch::sysv_mq
