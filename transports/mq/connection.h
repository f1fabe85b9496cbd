// The connection both message-queue transports share. A connection is two data queues (one per
// direction) and a close token, reached through one queue API (SysV msgsnd/msgrcv or POSIX
// mq_timedsend/mq_timedreceive): the backend, `Queues`, moves one chunk at a time and knows how
// its API blocks; this core owns everything else — chunking and reassembly (chunk.h), the
// sticky error, the deadline rules (WouldBlock for an expired deadline, Timeout otherwise, a
// send cut mid-message closes the connection), and peer death (pidfd + start time, the close
// token between slices, a last look at what a dead peer sent before it went).
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <mutex>
#include <set>
#include <string>

#include "../shm_ring/liveness.h"
#include "chunk.h"
#include "ipch/closing_ptr.h"
#include "ipch/transport.h"

namespace ipch::mq {

// How long one blocked queue call may last before the deadline, the peer's process and its
// close token are looked at again.
inline constexpr auto kSlice = std::chrono::milliseconds(50);

// How a queue call may wait.
enum class Attempt {
  kTry,    // never block (a last look, or a probe)
  kFirst,  // the first call for this chunk
  kAgain,  // the chunk did not move last time: wait for it (at most a slice, never past the deadline)
};

// What one queue call did.
struct QueueCall {
  enum Outcome {
    kMoved,    // the chunk was put, or one was taken (`size` bytes in the receive buffer)
    kNotYet,   // the queue stayed full (or empty) for as long as this call could wait
    kGone,     // the queue was removed: the peer is gone
    kTooBig,   // a queue message larger than the receive buffer (never truncated)
    kForeign,  // a queue message of a type or priority the peer never sends: not ours to read
    kFailed,   // another error: `err`, from `call`
  };
  Outcome outcome = kFailed;
  std::size_t size = 0;
  bool waited = false;  // the call blocked for a while (so the peer is worth a look)
  int err = 0;
  const char* call = "";
};

// The kernel side of one connection. One thread may Put while another Takes; Close runs once,
// when neither does.
class Queues {
 public:
  virtual ~Queues() = default;
  // The largest queue message, so the largest chunk: header and payload.
  virtual std::size_t chunk_size() const = 0;
  // Where the next chunk to Put is encoded, and where Take leaves one (chunk_size() bytes each).
  virtual unsigned char* send_buffer() = 0;
  virtual unsigned char* receive_buffer() = 0;
  // Puts the `n`-byte chunk in the send buffer on the outgoing queue.
  virtual QueueCall Put(std::size_t n, Deadline d, Attempt a) = 0;
  // Takes the next chunk of the incoming queue into the receive buffer (data before a FIN).
  virtual QueueCall Take(Deadline d, Attempt a) = 0;
  // Whether the peer took the close token: it closed, even if its FIN found no room.
  virtual bool PeerTookToken() = 0;
  // Ends this side: `fin` (a FIN chunk after everything sent) goes out if it can without
  // waiting; the token and the queues are handled as the backend's protocol says. `peer` tells
  // whether the other end is still alive.
  virtual void Close(const unsigned char* fin, std::size_t n, const shm::PeerWatch& peer) = 0;
  // The incoming data queue's kernel handle (a SysV queue id or a POSIX queue descriptor), for
  // tests that write into it as the peer would.
  virtual int incoming() const = 0;
};

class Connection {
 public:
  struct State;
  Connection();
  // `label` starts every error message ("posix_mq /name (client)").
  Connection(std::unique_ptr<Queues> queues, shm::PeerWatch peer, std::size_t max_message_size, std::string label);
  Connection(Connection&&) noexcept;
  Connection& operator=(Connection&&) noexcept;  // closes this end first
  ~Connection();                                 // closes

  Status Send(ByteView msg, Deadline d);
  Status Receive(Bytes& out, Deadline d);
  Status Close();
  std::size_t max_message_size() const;
  // See Queues::incoming(); -1 without a connection.
  int incoming_queue() const;

 private:
  ClosingPtr<State> s_;
};

// The listen queues this process has open, so that Listen can tell one this process abandoned
// (its removal failed) from one a live listener here still serves: both name us as the owner.
template <class Key>
class OpenListeners {
 public:
  void Set(const Key& k, bool open) {
    std::lock_guard<std::mutex> lock(mu_);
    if (open) {
      keys_.insert(k);
    } else {
      keys_.erase(k);
    }
  }
  bool Has(const Key& k) const {
    std::lock_guard<std::mutex> lock(mu_);
    return keys_.count(k) != 0;
  }

 private:
  mutable std::mutex mu_;
  std::set<Key> keys_;
};

}  // namespace ipch::mq
