#include "connection.h"

#include <atomic>
#include <cstring>
#include <optional>

namespace ipch::mq {

struct Connection::State {
  std::unique_ptr<Queues> q;
  shm::PeerWatch peer;
  std::size_t max;
  std::string label;
  bool open = true;
  std::mutex mu;  // guards sticky (one sender and one receiver thread may run at once)
  std::optional<Error> sticky;
  std::atomic<bool> peer_closed{false};
  Chunker chunker;  // sender's
  Reassembler rx;   // receiver's

  State(std::unique_ptr<Queues> queues, shm::PeerWatch w, std::size_t max_message, std::string l)
      : q(std::move(queues)), peer(std::move(w)), max(max_message), label(std::move(l)), rx(max_message) {}

  Status Usable() {
    if (!open) return MakeError(Errc::Closed, label + ": connection is closed");
    std::lock_guard<std::mutex> lock(mu);
    if (sticky) return *sticky;
    return Ok();
  }
  Status Fail(Error e) {
    std::lock_guard<std::mutex> lock(mu);
    if (!sticky) sticky = e;
    return e;
  }
  // The peer is dead, or took its close token.
  bool PeerGone() {
    if (!peer.Alive() || peer_closed) return true;
    if (q->PeerTookToken()) peer_closed = true;
    return peer_closed;
  }
  Status Close() {  // idempotent; the endpoint's ClosingPtr calls it
    if (!open) return Ok();
    open = false;
    unsigned char fin[kChunkHeaderSize];
    chunker.Fin(fin);
    q->Close(fin, sizeof fin, peer);
    return Ok();
  }
};

Connection::Connection() = default;
Connection::Connection(std::unique_ptr<Queues> queues, shm::PeerWatch peer, std::size_t max_message_size,
                       std::string label)
    : s_(std::make_unique<State>(std::move(queues), std::move(peer), max_message_size, std::move(label))) {}
Connection::Connection(Connection&&) noexcept = default;
Connection& Connection::operator=(Connection&&) noexcept = default;
Connection::~Connection() = default;

std::size_t Connection::max_message_size() const { return s_ ? s_->max : 0; }
int Connection::incoming_queue() const { return s_ ? s_->q->incoming() : -1; }

Status Connection::Close() { return s_ ? s_->Close() : Ok(); }

Status Connection::Send(ByteView msg, Deadline d) {
  if (!s_) return MakeError(Errc::Closed, "message-queue connection is closed");
  State& s = *s_;
  IPCH_RETURN_IF_ERROR(s.Usable());
  if (msg.size() > s.max) {
    return MakeError(Errc::MessageTooLarge, s.label + ": " + std::to_string(msg.size()) + " bytes > max_message_size " +
                                                std::to_string(s.max));
  }
  const bool probe = d.expired();
  unsigned char* const buf = s.q->send_buffer();
  const std::size_t room = s.q->chunk_size() - kChunkHeaderSize;
  std::size_t off = 0;
  bool first = true;
  do {
    const std::size_t n = s.chunker.Next(msg.size(), off, room, buf);
    if (n > 0) std::memcpy(buf + kChunkHeaderSize, msg.data() + off, n);  // an empty message has no data()
    for (Attempt a = Attempt::kFirst;; a = Attempt::kAgain) {
      const QueueCall r = s.q->Put(kChunkHeaderSize + n, d, a);
      if (r.outcome == QueueCall::kMoved) {
        s.chunker.Sent();
        break;
      }
      if (r.outcome == QueueCall::kGone) {
        return s.Fail(MakeError(Errc::PeerClosed, s.label + ": send: the queue was removed"));
      }
      if (r.outcome != QueueCall::kNotYet) {
        Error e = ErrnoError(s.label + ": " + r.call, r.err);
        if (first) return e;
        return s.Fail(e);  // part of the message is out: the stream cannot be resynchronised
      }
      if (s.PeerGone()) return s.Fail(MakeError(Errc::PeerClosed, s.label + ": send: the peer is gone"));
      if (d.expired()) {
        if (first) return MakeError(probe ? Errc::WouldBlock : Errc::Timeout, s.label + ": send: the queue is full");
        // The reader holds part of the message; the FIN at our Close tells it to drop that part.
        (void)s.Fail(MakeError(Errc::Closed, s.label + ": a send timed out mid-message; connection closed"));
        return MakeError(Errc::Timeout, s.label + ": send deadline passed mid-message");
      }
    }
    first = false;
    off += n;
  } while (off < msg.size());
  return Ok();
}

Status Connection::Receive(Bytes& out, Deadline d) {
  if (!s_) return MakeError(Errc::Closed, "message-queue connection is closed");
  State& s = *s_;
  IPCH_RETURN_IF_ERROR(s.Usable());
  const bool probe = d.expired();
  bool last_look = false;  // the peer is gone: drain once more, then PeerClosed
  Attempt a = Attempt::kFirst;
  for (;;) {
    const QueueCall r = s.q->Take(d, last_look ? Attempt::kTry : a);
    if (r.outcome == QueueCall::kMoved) {
      bool done = false, fin = false;
      Status st = s.rx.Feed(s.q->receive_buffer(), r.size, &done, &fin);
      if (!st.ok()) return s.Fail(MakeError(Errc::Corrupt, s.label + ": " + st.error().context));
      if (fin) return s.Fail(MakeError(Errc::PeerClosed, s.label + ": the peer closed"));
      if (done) {
        out.swap(s.rx.message());
        return Ok();
      }
      a = Attempt::kFirst;  // the next chunk is usually there already
      continue;
    }
    if (r.outcome == QueueCall::kTooBig) {
      return s.Fail(MakeError(Errc::MessageTooLarge, s.label + ": a queue message exceeds the chunk buffer of " +
                                                         std::to_string(s.q->chunk_size()) +
                                                         " bytes (never truncated)"));
    }
    if (r.outcome == QueueCall::kForeign) {
      return s.Fail(MakeError(Errc::Corrupt, s.label + ": a queue message of a type or priority the peer never sends"));
    }
    if (r.outcome == QueueCall::kGone) return s.Fail(MakeError(Errc::PeerClosed, s.label + ": the queue was removed"));
    if (r.outcome != QueueCall::kNotYet) return ErrnoError(s.label + ": " + r.call, r.err);
    if (last_look) {
      return s.Fail(MakeError(Errc::PeerClosed,
                              s.label + (s.rx.mid_message() ? ": the peer died mid-message" : ": the peer is gone")));
    }
    // The peer is looked at once a call has waited (or for a probe), not after a first look
    // that did not wait: in request/response traffic the answer is usually just not there yet.
    if ((r.waited || d.expired()) && s.PeerGone()) {
      last_look = true;  // what it sent before going is in the queue already
      continue;
    }
    if (d.expired()) return MakeError(probe ? Errc::WouldBlock : Errc::Timeout, s.label + ": no message");
    a = Attempt::kAgain;
  }
}

}  // namespace ipch::mq
