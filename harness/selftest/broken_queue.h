// A small System V message-queue transport, in-process (one queue per direction, the chunk
// format of transports/mq/chunk.h), in two variants: NaiveQueueAdapter<true> checks every chunk
// against what it expects next (mq::Reassembler, the control), NaiveQueueAdapter<false> is the
// classic receiver that trusts the queue: it appends each chunk's payload until the announced
// length is there, never looking at sequence numbers or offsets. The Security group's hostile
// queue cases must catch the second and pass the first.
#pragma once

#include <sys/ipc.h>
#include <sys/msg.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "ipch/transport.h"
#include "transports/mq/chunk.h"

namespace ipch::selftest {

inline constexpr std::size_t kNaiveChunk = 1024;  // header and payload
inline constexpr std::size_t kNaiveMax = 64 * 1024;
inline constexpr long kNaiveData = 1, kNaiveForeign = 9;

struct NaiveQueuePair {
  int to_server = -1, to_client = -1;
  void Remove() const {
    ::msgctl(to_server, IPC_RMID, nullptr);
    ::msgctl(to_client, IPC_RMID, nullptr);
  }
};

template <bool kChecks>
class NaiveQueueConnection {
 public:
  NaiveQueueConnection() = default;
  NaiveQueueConnection(NaiveQueuePair q, bool server)
      : q_(q), out_(server ? q.to_client : q.to_server), in_(server ? q.to_server : q.to_client) {}
  NaiveQueueConnection(NaiveQueueConnection&& o) noexcept { *this = std::move(o); }
  NaiveQueueConnection& operator=(NaiveQueueConnection&& o) noexcept {
    if (this != &o) {
      (void)Close();
      q_ = std::exchange(o.q_, {});
      out_ = std::exchange(o.out_, -1);
      in_ = std::exchange(o.in_, -1);
      re_ = std::move(o.re_);
      chunker_ = o.chunker_;
      sticky_ = std::move(o.sticky_);
      blind_ = std::move(o.blind_);
    }
    return *this;
  }
  ~NaiveQueueConnection() { (void)Close(); }

  Status Send(ByteView msg, Deadline d) {
    if (out_ < 0) return MakeError(Errc::Closed, "naive queue: closed");
    if (sticky_) return *sticky_;
    if (msg.size() > kNaiveMax) return MakeError(Errc::MessageTooLarge, "naive queue: too large");
    std::size_t off = 0;
    do {
      Buffer b;
      const std::size_t n = chunker_.Next(msg.size(), off, kNaiveChunk - mq::kChunkHeaderSize, b.text);
      if (n > 0) std::memcpy(b.text + mq::kChunkHeaderSize, msg.data() + off, n);
      b.type = kNaiveData;
      for (;;) {
        if (::msgsnd(out_, &b, mq::kChunkHeaderSize + n, IPC_NOWAIT) == 0) break;
        if (errno == EINTR) continue;
        if (errno == EIDRM || errno == EINVAL) return Stick(MakeError(Errc::PeerClosed, "naive queue: peer gone"));
        if (errno != EAGAIN) return ErrnoError("naive queue: msgsnd");
        if (d.expired()) return MakeError(off == 0 ? Errc::WouldBlock : Errc::Timeout, "naive queue: full");
        std::this_thread::sleep_for(std::chrono::microseconds(200));  // the queue's only wait: poll
      }
      chunker_.Sent();
      off += n;
    } while (off < msg.size());
    return Ok();
  }

  Status Receive(Bytes& out, Deadline d) {
    if (in_ < 0) return MakeError(Errc::Closed, "naive queue: closed");
    if (sticky_) return *sticky_;
    const bool probe = d.expired();
    for (;;) {
      Buffer b;
      const ssize_t n = ::msgrcv(in_, &b, sizeof b.text, kNaiveData, IPC_NOWAIT);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == EIDRM || errno == EINVAL) return Stick(MakeError(Errc::PeerClosed, "naive queue: peer gone"));
        if (errno == E2BIG) return Stick(MakeError(Errc::Corrupt, "naive queue: a queue message over the chunk size"));
        if (errno != ENOMSG) return ErrnoError("naive queue: msgrcv");
        if (d.expired()) return MakeError(probe ? Errc::WouldBlock : Errc::Timeout, "naive queue: nothing ready");
        std::this_thread::sleep_for(std::chrono::microseconds(200));
        continue;
      }
      bool done = false;
      if constexpr (kChecks) {
        bool fin = false;
        Status st = re_.Feed(b.text, static_cast<std::size_t>(n), &done, &fin);
        if (!st.ok()) return Stick(std::move(st).error());
        if (fin) return Stick(MakeError(Errc::PeerClosed, "naive queue: peer closed"));
        if (done) out = std::move(re_.message());
      } else {
        // The planted bug: the header is read for the length only.
        if (n < static_cast<ssize_t>(mq::kChunkHeaderSize)) continue;
        uint32_t length = 0;
        std::memcpy(&length, b.text + 8, 4);
        if (length > kNaiveMax) return Stick(MakeError(Errc::Corrupt, "naive queue: message over max"));
        blind_.insert(blind_.end(), reinterpret_cast<const std::byte*>(b.text) + mq::kChunkHeaderSize,
                      reinterpret_cast<const std::byte*>(b.text) + n);
        if (blind_.size() >= length) {
          out.assign(blind_.begin(), blind_.begin() + length);
          blind_.clear();
          done = true;
        }
      }
      if (done) return Ok();
    }
  }

  Status Close() {
    if (out_ < 0) return Ok();
    q_.Remove();  // the peer's next call sees EIDRM: PeerClosed
    out_ = in_ = -1;
    return Ok();
  }
  std::size_t max_message_size() const { return kNaiveMax; }
  int incoming() const { return in_; }

 private:
  struct Buffer {
    long type = 0;
    unsigned char text[kNaiveChunk] = {};
  };
  Status Stick(Error e) {
    sticky_ = e;
    return e;
  }

  NaiveQueuePair q_;
  int out_ = -1, in_ = -1;
  mq::Reassembler re_{kNaiveMax};
  mq::Chunker chunker_;
  std::optional<Error> sticky_;
  Bytes blind_;
};

// Listeners live in this process only: Connect makes the two queues and hands the server's
// end to the listener named by the address.
struct NaiveQueueHub {
  std::mutex mu;
  std::condition_variable cv;
  std::map<std::string, std::deque<NaiveQueuePair>*> listeners;
  static NaiveQueueHub& Get() {
    static NaiveQueueHub hub;
    return hub;
  }
};

template <bool kChecks>
class NaiveQueueListener {
 public:
  NaiveQueueListener() = default;
  explicit NaiveQueueListener(std::string address)
      : address_(std::move(address)), pending_(std::make_unique<std::deque<NaiveQueuePair>>()) {}
  NaiveQueueListener(NaiveQueueListener&&) noexcept = default;
  NaiveQueueListener& operator=(NaiveQueueListener&& o) noexcept {
    if (this != &o) {
      (void)Close();
      address_ = std::move(o.address_);
      pending_ = std::move(o.pending_);
    }
    return *this;
  }
  ~NaiveQueueListener() { (void)Close(); }

  Result<NaiveQueueConnection<kChecks>> Accept(Deadline d) {
    if (!pending_) return MakeError(Errc::Closed, "naive queue: listener closed");
    NaiveQueueHub& hub = NaiveQueueHub::Get();
    std::unique_lock<std::mutex> lock(hub.mu);
    const bool probe = d.expired();
    while (pending_->empty()) {
      if (d.expired()) return MakeError(probe ? Errc::WouldBlock : Errc::Timeout, "naive queue: nothing to accept");
      hub.cv.wait_for(lock, d.never() ? std::chrono::milliseconds(50) : d.remaining());
    }
    NaiveQueuePair q = pending_->front();
    pending_->pop_front();
    return NaiveQueueConnection<kChecks>(q, true);
  }
  std::string address() const { return address_; }
  std::vector<std::filesystem::path> resource_paths() const { return {}; }
  Status Close() {
    if (!pending_) return Ok();
    NaiveQueueHub& hub = NaiveQueueHub::Get();
    std::lock_guard<std::mutex> lock(hub.mu);
    hub.listeners.erase(address_);
    for (const NaiveQueuePair& q : *pending_) q.Remove();
    pending_.reset();
    return Ok();
  }

 private:
  template <bool>
  friend struct NaiveQueueAdapter;
  std::string address_;
  std::unique_ptr<std::deque<NaiveQueuePair>> pending_;
};

template <bool kChecks>
struct NaiveQueueAdapter {
  static constexpr std::string_view kName = kChecks ? "naive_queue_control" : "naive_queue_trusts_chunks";
  static constexpr Caps kCaps = Cap::QueueIo;
  using Connection = NaiveQueueConnection<kChecks>;
  using Listener = NaiveQueueListener<kChecks>;
  static std::string Address(const EndpointSpec& s) { return "naiveq:" + s.token; }
  static Result<Listener> Listen(const std::string& a) {
    NaiveQueueHub& hub = NaiveQueueHub::Get();
    Listener l(a);
    std::lock_guard<std::mutex> lock(hub.mu);
    if (!hub.listeners.emplace(a, l.pending_.get()).second) {
      return MakeError(Errc::AlreadyExists, "naive queue: " + a + " is taken");
    }
    return l;
  }
  static Result<Connection> Connect(const std::string& a, Deadline) {
    NaiveQueuePair q;
    q.to_server = ::msgget(IPC_PRIVATE, IPC_CREAT | 0600);
    q.to_client = ::msgget(IPC_PRIVATE, IPC_CREAT | 0600);
    if (q.to_server < 0 || q.to_client < 0) {
      Error e = ErrnoError("naive queue: msgget");
      q.Remove();
      return e;
    }
    NaiveQueueHub& hub = NaiveQueueHub::Get();
    {
      std::lock_guard<std::mutex> lock(hub.mu);
      auto it = hub.listeners.find(a);
      if (it == hub.listeners.end()) {
        q.Remove();
        return MakeError(Errc::PeerClosed, "naive queue: no listener at " + a);
      }
      it->second->push_back(q);
    }
    hub.cv.notify_all();
    return Connection(q, false);
  }
  // The hostile-queue hooks.
  static Status PutQueueMessage(const Connection& to, ByteView message, QueueMessageType t) {
    struct {
      long type;
      unsigned char text[kNaiveChunk * 2];
    } b{};
    if (message.size() > sizeof b.text) return MakeError(Errc::MessageTooLarge, "naive queue: put");
    b.type = t == QueueMessageType::Peer ? kNaiveData : kNaiveForeign;
    if (!message.empty()) std::memcpy(b.text, message.data(), message.size());
    if (::msgsnd(to.incoming(), &b, message.size(), IPC_NOWAIT) != 0) return ErrnoError("naive queue: put");
    return Ok();
  }
  static std::vector<Bytes> QueueMessages(const Connection&, const std::vector<Bytes>& messages) {
    return mq::EncodeMessages(messages, kNaiveChunk);
  }
};

inline constexpr char kNaiveQueueControl[] = "naive_queue_control";
inline constexpr char kNaiveQueueTrustsChunks[] = "naive_queue_trusts_chunks";

}  // namespace ipch::selftest
