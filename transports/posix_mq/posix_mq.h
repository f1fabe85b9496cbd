// POSIX message queues. The address is the listen queue's name, "/name".
//
// Objects. Listen creates an owner record first, a 32-byte POSIX shared-memory object named
// "/name.owner" (O_CREAT|O_EXCL, 0600: the lock on the name, holding the listener's pid and
// start time, because a queue records no owner process), then the listen queue "/name"
// (O_CREAT|O_EXCL, 0600, mq_msgsize = one request). Connect creates three queues named
// "/name.<pid>.<n>.<random>.up|dn|tk" (0600): one per direction, sized to hold a 64 KiB message
// unread (mq_maxmsg = min(10, fs.mqueue.msg_max), mq_msgsize = min(8192, fs.mqueue.msgsize_max))
// and a one-message token queue, and sends a request naming them. Accept opens the three and
// unlinks their names: from then on the queues live exactly as long as a descriptor of either
// end, so nothing is left whoever dies. A connector that is never accepted unlinks its names
// at Close if its listener is gone (a live one still accepts it: what the connector sent before
// exiting is heard, as from a socket's backlog, or refuses it at its Close, unlinking either way).
//
// Messages are chunks (transports/mq/chunk.h) of at most mq_msgsize, every field checked. FIN
// goes at the same priority as data, so it arrives after everything sent before it.
//
// Deadlines and peer death: mq_timedsend/mq_timedreceive bounded by the deadline and by a
// 50 ms slice, between which the peer is looked at: its pidfd (checked against its start time)
// and the token queue, which the peer empties when it closes (so a close is seen even when the
// FIN could not be queued). An expired deadline is a non-blocking probe (WouldBlock).
//
// Limits. Queue sizes are capped by fs.mqueue.msg_max / msgsize_max and the bytes of all a
// user's queues by RLIMIT_MSGQUEUE (800 KiB by default: about four connections at once); each
// refusal names the limit it met. A dead listener's record and queue, and the connection
// queues of dead connectors, are reclaimed by the next Listen on the name (listing /dev/mqueue
// when it is mounted).
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "../mq/connection.h"
#include "ipch/closing_ptr.h"
#include "ipch/transport.h"

namespace ipch::posix_mq {

inline constexpr std::size_t kDefaultMaxMessage = 1u << 20;

// A connection: the message-queue core (transports/mq/connection.h) over three POSIX queues.
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
  // The listen queue and the owner record, as files under /dev/mqueue and /dev/shm.
  std::vector<std::filesystem::path> resource_paths() const;
  Status Close();

 private:
  ClosingPtr<State> s_;
};

Result<Listener> Listen(const std::string& name, std::size_t max_message_size = kDefaultMaxMessage);
Result<Connection> Connect(const std::string& name, Deadline d, std::size_t max_message_size = kDefaultMaxMessage);

struct Adapter {
  static constexpr std::string_view kName = "posix_mq";
  static constexpr Caps kCaps = Cap::CrossProcess | Cap::NamedResource | Cap::PeerDeathDetect | Cap::QueueIo;
  using Connection = mq::Connection;
  using Listener = posix_mq::Listener;
  static std::string Address(const EndpointSpec& s) { return "/" + s.token; }
  static Result<Listener> Listen(const std::string& a) { return posix_mq::Listen(a); }
  static Result<Connection> Connect(const std::string& a, Deadline d) { return posix_mq::Connect(a, d); }
  // A queue holds mq_maxmsg messages, whatever their size: that many can wait unread.
  static std::size_t UnreadMessages();
  // Hostile-queue hooks (harness/conformance/hooks.h): a queue message put straight into the
  // queue `to` receives from, and the chunks a well-behaved peer would put.
  static Status PutQueueMessage(const Connection& to, ByteView message, QueueMessageType t);
  static std::vector<Bytes> QueueMessages(const Connection& to, const std::vector<Bytes>& messages);
  // Impostors at the name, for the security group (posix_mq.cc says which).
  static Status PlantImpostor(const std::string& name, Impostor kind);
  static void RemoveImpostor(const std::string& name);
  static std::string_view ImpostorDoesNotApply(Impostor kind);
  // Connection requests naming another uid's queues, or live queues of ours outside the
  // listener's names (a request names its three queues by a base name under the listen name).
  static Status PlantRequestImpostor(const Listener& l, RequestImpostor kind);
  static void RemoveRequestImpostors(const Listener& l);
  static std::string_view RequestImpostorDoesNotApply(RequestImpostor kind);
};

}  // namespace ipch::posix_mq
