#include "asio_tcp.h"

// Boost 1.74's Asio uses std::exchange in a header it includes in C++20 without <utility>.
#include <utility>

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <climits>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <optional>
#include <system_error>
#include <thread>

#include <boost/asio/buffer.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include "ipch/socket_address.h"
#include "transports/stream/frame.h"
#include "transports/stream/socket_util.h"
#include "transports/stream/stream_connection.h"

namespace ipch::asio_tcp {
namespace {

namespace asio = boost::asio;
using boost::system::error_code;
using tcp = asio::ip::tcp;
using Frame = StreamConnection;  // the wire format: header size, encoding

constexpr std::size_t kReadChunk = 64 * 1024;
// As in the stream transports: a read before the next frame's size is known is capped, so
// that most of a large payload is read straight into the message, not copied from the buffer.
constexpr std::size_t kSpeculativeRead = 16 * 1024;
// At most this many queued frames go into one write.
constexpr std::size_t kMaxGather = 64;

// The peer is gone (closed, reset, or the kernel gave the link up): PeerClosed.
bool IsPeerGone(const error_code& ec) {
  return ec == asio::error::eof || ec == asio::error::broken_pipe || ec == asio::error::connection_reset ||
         ec == asio::error::not_connected || ec == asio::error::timed_out || ec == asio::error::host_unreachable ||
         ec == asio::error::network_unreachable || ec == asio::error::connection_aborted;
}
// "Not now": try again once the socket is ready (EINTR is retried at once).
bool IsWouldBlock(const error_code& ec) { return ec == asio::error::would_block || ec == asio::error::try_again; }

// An errno stays one (std::system_category); of Asio's own codes only end-of-stream reaches the
// callers, which is the peer gone.
Error ErrorOf(const error_code& ec, const std::string& what) {
  if (ec.category() == boost::system::system_category()) return ErrnoError(what, ec.value());
  return MakeError(Errc::PeerClosed, what + ": " + ec.message());
}

// A blocking call on Asio: an operation of `s` was started on `ctx`, whose only runner is the
// calling thread. Runs it until the operation's handler set `done`, or the deadline passed;
// then cancels the operation and runs until its handler has run (with operation_aborted, or
// with what completed first): the handler refers to the caller's stack.
template <class IoObject>
void RunUntilDone(asio::io_context& ctx, IoObject& s, const bool& done, Deadline d) {
  ctx.restart();
  while (!done) {
    if (d.never()) {
      ctx.run_one();
    } else if (ctx.run_one_until(d.at()) == 0 && !done && Clock::now() >= d.at()) {
      error_code ignored;
      s.cancel(ignored);
      ctx.restart();
      while (!done) ctx.run_one();
    }
  }
}

// Waits until `s` is ready for `what` (read, write, or a listener's accept), in this thread, by
// the deadline: Timeout. The wait is an async_wait, not an async read or write: each one
// re-arms the descriptor in the reactor (epoll_ctl), which then reports readiness that is
// already there. A speculative async_read_some that is told "would block" with bytes waiting
// (an interposer, a spurious EAGAIN) waits for the next edge of the edge-triggered reactor,
// which may never come.
template <class Socket>
Status WaitReady(asio::io_context& ctx, Socket& s, typename Socket::wait_type what, Deadline d,
                 const std::string& label) {
  if (d.expired()) return MakeError(Errc::Timeout, label);
  bool done = false;
  error_code wec;
  s.async_wait(what, [&](const error_code& ec) {
    done = true;
    wec = ec;
  });
  RunUntilDone(ctx, s, done, d);
  if (wec == asio::error::operation_aborted) return MakeError(Errc::Timeout, label);
  // An error condition on the socket is readiness too: the next read or write reports it.
  if (wec) return ErrorOf(wec, label + ": wait");
  return Ok();
}

Result<tcp::endpoint> ParseEndpoint(const std::string& address) {
  auto sa = ParseInetAddress(address, "asio_tcp");
  if (!sa.ok()) return std::move(sa).error();
  tcp::endpoint ep;
  std::memcpy(ep.data(), sa->get(), sa->len);
  ep.resize(sa->len);
  return ep;
}

// Runs `f`, turning what Asio and the standard library throw (an io_context that cannot get its
// descriptors, a thread that cannot start, memory) into the contract's errors.
template <class F>
auto Guarded(const std::string& label, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const boost::system::system_error& e) {
    return ErrorOf(e.code(), label + ": " + e.what());
  } catch (const std::system_error& e) {
    return ErrnoError(label + ": " + e.what(), e.code().value());
  } catch (const std::bad_alloc&) {
    return ErrnoError(label + ": out of memory", ENOMEM);
  }
}

}  // namespace

// ---- the sending side: queue, own thread ---------------------------------------------------

// What Send hands to the connection's I/O thread. The calling thread writes while nothing is
// queued; once a message is queued (the socket took only part of it), the I/O thread owns the
// socket until the queue is empty again (`writing_`), so frames go out whole and in order.
class Writer : public std::enable_shared_from_this<Writer> {
 public:
  Writer(const Options& o, std::string label)
      : limit_(o.send_queue_limit),
        close_wait_(Scaled(o.close_wait)),
        linger_(o.linger),
        label_(std::move(label)) {}
  ~Writer() {
    if (thread_.joinable()) Stop();  // never closed
  }

  // Takes a duplicate of the connection's socket. The I/O thread starts when a first message
  // is queued: a connection whose writes all complete at once never has one (and a process
  // with one thread only takes no reference on a file per system call, as fdget does in one
  // with several: one more atomic operation per call of a round trip).
  Status Start(int fd, const tcp& protocol) {
    UniqueFd dup(::fcntl(fd, F_DUPFD_CLOEXEC, 0));
    if (!dup) return ErrnoError(label_ + ": dup");
    error_code ec;
    sock_.assign(protocol, dup.get(), ec);
    if (ec) return ErrorOf(ec, label_ + ": assign");
    dup.release();
    // The descriptor is O_NONBLOCK already; this tells Asio, whose synchronous calls would
    // otherwise wait in poll(2) when the kernel says "would block".
    sock_.non_blocking(true, ec);
    if (ec) return ErrorOf(ec, label_ + ": non_blocking");
    return Ok();
  }

  Status Send(const unsigned char* header, ByteView msg, Deadline d) {
    const std::size_t total = Frame::kHeaderSize + msg.size();
    std::unique_lock lk(mu_);
    if (error_) return *error_;
    if (writing_) {
      // Behind queued messages: wait for room, then queue a copy.
      auto room = [&] { return error_ || !writing_ || queued_ == 0 || queued_ + total <= limit_; };
      if (!room()) {
        if (d.expired()) return MakeError(Errc::WouldBlock, label_ + ": send queue full");
        if (d.never()) {
          room_.wait(lk, room);
        } else if (!room_.wait_until(lk, d.at(), room)) {
          return MakeError(Errc::Timeout, label_ + ": send: " + std::to_string(queued_) +
                                              " bytes queued, the peer is not reading");
        }
      }
      if (error_) return *error_;
      if (writing_) {
        Queue(header, msg, 0);
        return Ok();
      }
    }
    // Nothing queued: this thread writes. The socket is non-blocking; what it does not take is
    // queued for the I/O thread, and the message counts as sent.
    const std::array<asio::const_buffer, 2> frame{asio::buffer(header, Frame::kHeaderSize),
                                                 asio::buffer(msg.data(), msg.size())};
    std::size_t done = 0;
    for (;;) {
      error_code ec;
      done += sock_.write_some(Rest(frame, done), ec);
      if (done == total) return Ok();
      if (!ec || ec == asio::error::interrupted) continue;
      if (IsWouldBlock(ec)) break;
      if (IsPeerGone(ec)) return Fail(MakeError(Errc::PeerClosed, label_ + ": send: " + ec.message()));
      Error e = ErrorOf(ec, label_ + ": send");
      if (done == 0) return e;
      // Part of the frame is out: the stream cannot be resynchronised.
      error_code ignored;
      sock_.shutdown(tcp::socket::shutdown_both, ignored);
      Fail(MakeError(Errc::Closed, label_ + ": send failed mid-frame; connection shut down"));
      return e;
    }
    Queue(header, msg, done);
    try {
      asio::post(ctx_, [this] { WriteQueued(); });
      // The thread holds the writer (a closed connection's queue is written after Close
      // returned); handlers, which only it runs, hold `this`: a handler left pending when the
      // thread ends is destroyed with the io_context, and holds nothing up.
      if (!thread_.joinable()) thread_ = std::thread([self = shared_from_this()] { self->Run(); });
    } catch (const std::exception& e) {  // memory, or a thread: the frame is torn, nothing can follow it
      error_code ignored;
      sock_.shutdown(tcp::socket::shutdown_both, ignored);
      const int err = dynamic_cast<const std::system_error*>(&e) != nullptr
                          ? static_cast<const std::system_error&>(e).code().value()
                          : ENOMEM;
      return Fail(ErrnoError(label_ + ": send: handing the rest of a frame to the I/O thread: " + e.what(), err));
    }
    writing_ = true;
    lk.unlock();
    wake_.notify_one();
    return Ok();
  }

  // A sticky error of the connection (the receiving side's PeerClosed or Corrupt), for Send.
  Error Fail(Error e) {
    if (!error_) error_ = e;
    return e;
  }
  void FailLocked(Error e) {
    std::lock_guard lk(mu_);
    Fail(std::move(e));
  }

  // The connection closed. What is queued is written first: Close waits while the peer takes
  // it (a process may exit once Close returned, and the I/O thread with it). A peer that takes
  // nothing for `close_wait` is left to the I/O thread, which goes on writing for `linger` at
  // most, then ends the stream on its own; the thread stops at once when nothing is queued.
  void Close() {
    std::unique_lock lk(mu_);
    closing_ = true;
    while (writing_ && !error_) {
      const uint64_t before = written_;
      if (!room_.wait_for(lk, close_wait_, [&] { return !writing_ || error_ || written_ != before; })) break;
    }
    const bool linger = writing_ && !error_;
    lk.unlock();
    if (linger) {
      asio::post(ctx_, [this] { StartLinger(); });
      thread_.detach();
      return;
    }
    Stop();
    error_code ignored;
    sock_.close(ignored);
  }

 private:
  template <std::size_t N>
  static std::array<asio::const_buffer, N> Rest(std::array<asio::const_buffer, N> bufs, std::size_t skip) {
    for (auto& b : bufs) {
      const std::size_t k = std::min(skip, b.size());
      b += k;
      skip -= k;
    }
    return bufs;
  }

  // Under mu_: a copy of the frame's bytes from `from` on.
  void Queue(const unsigned char* header, ByteView msg, std::size_t from) {
    const std::size_t total = Frame::kHeaderSize + msg.size();
    Bytes f(total - from);
    std::size_t at = 0;
    if (from < Frame::kHeaderSize) {
      std::memcpy(f.data(), header + from, Frame::kHeaderSize - from);
      at = Frame::kHeaderSize - from;
      from = Frame::kHeaderSize;
    }
    if (total > from) std::memcpy(f.data() + at, msg.data() + (from - Frame::kHeaderSize), total - from);
    queued_ += f.size();
    queue_.push_back(std::move(f));
  }

  // The I/O thread runs its io_context while it has a queue to write (and, after Close, its
  // linger), and sleeps on a condition variable otherwise, not in the reactor: the socket is
  // registered there for input too (as every Asio socket is), and each message the peer sends
  // would wake it for nothing.
  void Run() {
    std::unique_lock lk(mu_);
    for (;;) {
      wake_.wait(lk, [&] { return writing_ || stop_; });
      if (stop_) return;
      lk.unlock();
      try {
        ctx_.restart();
        ctx_.run();  // returns once nothing is pending: the queue written, or failed, or finished
        lk.lock();
      } catch (const std::exception& e) {  // a handler ran out of memory: the connection is lost
        lk.lock();
        Fail(MakeError(Errc::Closed, label_ + ": I/O thread: " + e.what()));
        queue_.clear();
        queued_ = sent_ = 0;
        writing_ = false;
        room_.notify_all();
        if (closing_) return;
      }
      if (finished_) return;
    }
  }

  // Ends the thread now, whatever it is doing (what is queued is dropped).
  void Stop() {
    if (!thread_.joinable()) return;
    {
      std::lock_guard lk(mu_);
      stop_ = true;
    }
    ctx_.stop();
    wake_.notify_one();
    thread_.join();
  }

  // I/O thread, owning the socket: writes the queue until it is empty, the socket is full (then
  // waits for it), or a write fails (the error is every later Send's answer).
  void WriteQueued() {
    for (;;) {
      gather_.clear();
      {
        std::lock_guard lk(mu_);
        // std::deque's push_back keeps references: the frames stay put while we write.
        for (std::size_t i = 0; i < queue_.size() && gather_.size() < kMaxGather; ++i) {
          gather_.push_back(asio::buffer(queue_[i]) + (i == 0 ? sent_ : 0));
        }
      }
      error_code ec;
      const std::size_t n = sock_.write_some(gather_, ec);
      if (n > 0) {
        std::lock_guard lk(mu_);
        Advance(n);
        written_ += n;
        room_.notify_all();
        if (queue_.empty()) {
          writing_ = false;
          if (closing_) Finish();
          return;
        }
        continue;
      }
      if (ec == asio::error::interrupted) continue;
      if (IsWouldBlock(ec)) {
        sock_.async_wait(tcp::socket::wait_write, [this](const error_code& wec) {
          if (wec != asio::error::operation_aborted) WriteQueued();
        });
        return;
      }
      std::lock_guard lk(mu_);
      const std::string lost = std::to_string(queue_.size()) + " queued message(s) not written";
      Fail(IsPeerGone(ec) ? MakeError(Errc::PeerClosed, label_ + ": send: " + ec.message() + "; " + lost)
                          : ErrorOf(ec, label_ + ": send (" + lost + ")"));
      queue_.clear();
      queued_ = sent_ = 0;
      writing_ = false;
      // A frame may be torn: the peer must see the stream end, not resynchronise on garbage.
      error_code ignored;
      sock_.shutdown(tcp::socket::shutdown_both, ignored);
      room_.notify_all();
      if (closing_) Finish();
      return;
    }
  }

  // Under mu_: `n` more bytes of the queue are written.
  void Advance(std::size_t n) {
    queued_ -= n;
    while (n > 0) {
      const std::size_t left = queue_.front().size() - sent_;
      if (n < left) {
        sent_ += n;
        return;
      }
      n -= left;
      sent_ = 0;
      queue_.pop_front();
    }
  }

  // I/O thread, after Close with messages queued: bound the time the writes may take.
  void StartLinger() {
    if (finished_) return;
    linger_timer_.expires_after(linger_);
    linger_timer_.async_wait([this](const error_code& ec) {
      if (ec || finished_) return;
      // The peer took nothing for `linger`: reset the stream (what is queued is lost).
      const ::linger reset{1, 0};
      ::setsockopt(sock_.native_handle(), SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
      Finish(/*reset=*/true);
    });
  }

  // I/O thread, the connection closed and nothing more to write: end the stream (a FIN after
  // the last byte, or with `reset` an RST) and the thread.
  void Finish(bool reset = false) {
    finished_ = true;
    error_code ignored;
    if (!reset) sock_.shutdown(tcp::socket::shutdown_send, ignored);
    sock_.close(ignored);
    linger_timer_.cancel();
  }

  const std::size_t limit_;
  const Clock::duration close_wait_;
  const std::chrono::milliseconds linger_;
  const std::string label_;
  asio::io_context ctx_{1};
  tcp::socket sock_{ctx_};
  asio::steady_timer linger_timer_{ctx_};
  std::thread thread_;
  std::vector<asio::const_buffer> gather_;  // I/O thread
  bool finished_ = false;                   // I/O thread

  std::mutex mu_;
  std::condition_variable room_;  // Send and Close wait on it for the queue to move
  std::condition_variable wake_;  // the I/O thread waits on it for a queue to write
  bool stop_ = false;
  std::deque<Bytes> queue_;  // frames not yet written; the first sent_ bytes of the front are out
  std::size_t sent_ = 0, queued_ = 0;
  uint64_t written_ = 0;  // bytes the I/O thread wrote, ever: Close watches it move
  bool writing_ = false;  // the I/O thread owns the socket
  bool closing_ = false;
  std::optional<Error> error_;
};

// ---- the connection: receiving in the caller's thread --------------------------------------

struct Connection::Impl {
  Impl(const Options& o, std::string l)
      : max(std::min<std::size_t>(o.max_message_size, UINT32_MAX)),  // the header holds a u32
        label(std::move(l)),
        writer(std::make_shared<Writer>(o, label)) {}
  ~Impl() { Close(); }

  // The socket is connected: its options, then the writer's duplicate of it.
  Status Start(const Options& o) {
    auto& sock = io->sock;
    const int fd = sock.native_handle();
    error_code ec;
    sock.non_blocking(true, ec);  // as in Writer::Start
    if (ec) return ErrorOf(ec, label + ": non_blocking");
    int one = 1;
    // Latency over batching: one message is one request; Nagle would hold small frames back.
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    IPCH_RETURN_IF_ERROR(SetTcpDeadLinkTimeout(fd, o.dead_link_timeout, label));
    IPCH_RETURN_IF_ERROR(writer->Start(fd, sock.local_endpoint().protocol()));
    open = true;
    return Ok();
  }

  // Releases everything now: the socket and the io_context's descriptors, and the writer's,
  // unless its thread still writes a stalled peer's queue (it releases them when it ends).
  void Close() {
    if (!open) return;
    open = false;
    writer->Close();
    writer.reset();
    io.reset();
  }

  Error Fail(Error e) {
    sticky = e;
    writer->FailLocked(e);
    return e;
  }

  Status Receive(Bytes& out, Deadline d) {
    if (!open) return MakeError(Errc::Closed, label + ": connection is closed");
    if (sticky) return *sticky;
    const bool probe = d.expired();
    Status st = ReceiveFrame(out, d);
    if (probe && st.Is(Errc::Timeout)) return MakeError(Errc::WouldBlock, label + ": no complete message ready");
    return st;
  }

  Status ReceiveFrame(Bytes& out, Deadline d) {
    while (!have_header) {
      if (rend - rpos >= Frame::kHeaderSize) {
        auto h = frame::DecodeHeader(reinterpret_cast<const unsigned char*>(rbuf.get() + rpos), max, label);
        if (!h.ok()) return Fail(std::move(h).error());
        want_crc = h->payload_crc;
        rpos += Frame::kHeaderSize;
        have_header = true;
        want = h->length;
        got = 0;
        partial.resize(want);
        break;
      }
      IPCH_RETURN_IF_ERROR(Fill(d));
    }
    while (got < want) {
      const std::size_t need = want - got;
      if (rend > rpos) {
        const std::size_t take = std::min(need, rend - rpos);
        std::memcpy(partial.data() + got, rbuf.get() + rpos, take);
        got += take;
        rpos += take;
      } else if (need >= kSpeculativeRead) {
        auto r = ReadSome(partial.data() + got, need, d);  // large remainder: straight into the message
        if (!r.ok()) return std::move(r).error();
        got += *r;
      } else {
        IPCH_RETURN_IF_ERROR(Fill(d));
      }
    }
    have_header = false;
    if (Status st = frame::CheckPayload(partial.data(), want, want_crc, label); !st.ok()) return Fail(std::move(st).error());
    out.swap(partial);  // the caller's buffer is the next frame's
    return Ok();
  }

  // Reads at least one more byte into the buffer.
  Status Fill(Deadline d) {
    if (!rbuf) rbuf = std::make_unique_for_overwrite<std::byte[]>(kReadChunk);
    if (rpos == rend) rpos = rend = 0;
    if (rend == kReadChunk) {
      std::memmove(rbuf.get(), rbuf.get() + rpos, rend - rpos);
      rend -= rpos;
      rpos = 0;
    }
    auto r = ReadSome(rbuf.get() + rend, std::min(kReadChunk - rend, kSpeculativeRead), d);
    if (!r.ok()) return std::move(r).error();
    rend += *r;
    return Ok();
  }

  // One read of up to `n` bytes, waiting for readability (by the deadline) when none are there.
  // The read comes first when the last one filled all it asked for (more is probably waiting),
  // the wait first otherwise (in request/response traffic the answer is not there yet).
  Result<std::size_t> ReadSome(std::byte* p, std::size_t n, Deadline d) {
    bool wait_first = !read_was_full && !d.expired();
    for (;;) {
      if (wait_first) IPCH_RETURN_IF_ERROR(WaitReady(io->ctx, io->sock, tcp::socket::wait_read, d, label + ": receive"));
      wait_first = true;
      error_code ec;
      const std::size_t k = io->sock.read_some(asio::buffer(p, n), ec);
      if (!ec) {
        read_was_full = k == n;
        return k;
      }
      if (ec == asio::error::interrupted) {
        wait_first = false;
        continue;
      }
      read_was_full = false;
      if (IsWouldBlock(ec)) {
        if (d.expired()) return MakeError(Errc::Timeout, label + ": receive");
        continue;
      }
      if (IsPeerGone(ec)) {
        const bool mid = have_header || rend > rpos;
        return Fail(MakeError(Errc::PeerClosed, label + ": " +
                                                    (ec == asio::error::eof ? std::string("peer closed")
                                                                            : "read: " + ec.message()) +
                                                    (mid ? " mid-frame (" + std::to_string(got) + " of " +
                                                               std::to_string(want) + " payload bytes)"
                                                         : "")));
      }
      return ErrorOf(ec, label + ": read");
    }
  }

  // The socket and the io_context that receiving runs (in the receiving thread only).
  struct Io {
    asio::io_context ctx{1};
    tcp::socket sock{ctx};
  };
  const std::size_t max;
  const std::string label;
  std::unique_ptr<Io> io = std::make_unique<Io>();
  std::shared_ptr<Writer> writer;
  bool open = false;
  std::optional<Error> sticky;  // receiving side; Writer has its own copy for Send

  // Buffered bytes [rpos, rend) of rbuf, and a frame in progress (its payload in `partial`).
  std::unique_ptr<std::byte[]> rbuf;
  std::size_t rpos = 0, rend = 0;
  bool read_was_full = false;
  bool have_header = false;
  std::size_t want = 0, got = 0;
  uint32_t want_crc = 0;
  Bytes partial;
};

Connection::Connection() = default;
Connection::Connection(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Connection::Connection(Connection&&) noexcept = default;
Connection& Connection::operator=(Connection&&) noexcept = default;
Connection::~Connection() = default;

Status Connection::Send(ByteView msg, Deadline d) {
  if (!impl_ || !impl_->open) return MakeError(Errc::Closed, (impl_ ? impl_->label : "asio_tcp") + ": connection is closed");
  if (msg.size() > impl_->max) {
    return MakeError(Errc::MessageTooLarge, impl_->label + ": " + std::to_string(msg.size()) +
                                                " bytes > max_message_size " + std::to_string(impl_->max));
  }
  unsigned char header[Frame::kHeaderSize];
  Frame::EncodeHeader(static_cast<uint32_t>(msg.size()), msg, header);
  return Guarded(impl_->label + ": send", [&] { return impl_->writer->Send(header, msg, d); });
}

Status Connection::Receive(Bytes& out, Deadline d) {
  if (!impl_) return MakeError(Errc::Closed, "asio_tcp: connection is closed");
  return Guarded(impl_->label + ": receive", [&] { return impl_->Receive(out, d); });
}

Status Connection::Close() {
  if (impl_) impl_->Close();
  return Ok();
}

std::size_t Connection::max_message_size() const { return impl_ ? impl_->max : 0; }

// ---- listener and connector ----------------------------------------------------------------

struct Listener::Impl {
  explicit Impl(const Options& o) : options(o) {}
  Options options;
  asio::io_context ctx{1};  // run by the accepting thread only
  tcp::acceptor acceptor{ctx};
};

Listener::Listener() = default;
Listener::Listener(std::unique_ptr<Impl> impl, std::string address)
    : impl_(std::move(impl)), address_(std::move(address)) {}
Listener::Listener(Listener&&) noexcept = default;
Listener& Listener::operator=(Listener&&) noexcept = default;
Listener::~Listener() = default;

Status Listener::Close() {
  impl_.reset();
  return Ok();
}

Result<Listener> Listen(const std::string& address, const Options& options) {
  const std::string label = "asio_tcp listen " + address;
  auto ep = ParseEndpoint(address);
  if (!ep.ok()) return std::move(ep).error();
  return Guarded(label, [&]() -> Result<Listener> {
    auto impl = std::make_unique<Listener::Impl>(options);
    // The socket is opened here for SOCK_CLOEXEC (Asio opens without it), then handed to Asio.
    UniqueFd fd(::socket(ep->protocol().family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!fd) return ErrnoError(label + ": socket");
    error_code ec;
    impl->acceptor.assign(ep->protocol(), fd.get(), ec);
    if (ec) return ErrorOf(ec, label + ": assign");
    fd.release();
    // Lets a restarted listener rebind while old connections sit in TIME_WAIT; Linux still
    // refuses a port that a live listener holds (EADDRINUSE).
    impl->acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
    if (ep->protocol() == tcp::v6()) impl->acceptor.set_option(asio::ip::v6_only(true), ec);
    impl->acceptor.bind(*ep, ec);
    if (ec == asio::error::address_in_use) return MakeError(Errc::AlreadyExists, label + ": address in use");
    if (ec == asio::error::access_denied) return MakeError(Errc::PermissionDenied, label + ": " + ec.message());
    if (ec.value() == EADDRNOTAVAIL) return MakeError(Errc::InvalidArgument, label + ": address not local");
    if (ec) return ErrorOf(ec, label + ": bind");
    impl->acceptor.listen(SOMAXCONN, ec);
    if (ec) return ErrorOf(ec, label + ": listen");
    const auto bound = impl->acceptor.local_endpoint(ec);
    if (ec) return ErrorOf(ec, label + ": local_endpoint");
    sockaddr_storage ss{};
    std::memcpy(&ss, bound.data(), bound.size());
    return Listener(std::move(impl), FormatSocketAddress(ss, static_cast<socklen_t>(bound.size())));
  });
}

Result<Connection> Listener::Accept(Deadline d) {
  const std::string label = "asio_tcp accept " + address_;
  if (!impl_) return MakeError(Errc::Closed, label + ": listener is closed");
  return Guarded(label, [&]() -> Result<Connection> {
    // The connection's io_context and writer first: if they cannot get their descriptors, the
    // client stays queued for a later Accept.
    auto conn = std::make_unique<Connection::Impl>(impl_->options, "asio_tcp " + address_ + " (server)");
    const auto protocol = impl_->acceptor.local_endpoint().protocol();
    bool first = true;
    for (;;) {
      const int fd = ::accept4(impl_->acceptor.native_handle(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd >= 0) {
        error_code ec;
        conn->io->sock.assign(protocol, fd, ec);
        if (ec) {
          ::close(fd);
          return ErrorOf(ec, label + ": assign");
        }
        IPCH_RETURN_IF_ERROR(conn->Start(impl_->options));
        return Connection(std::move(conn));
      }
      if (errno == EINTR || errno == ECONNABORTED) continue;  // a client gave up while queued
      if (errno != EAGAIN && errno != EWOULDBLOCK) return ErrnoError(label + ": accept");
      if (d.expired()) return MakeError(first ? Errc::WouldBlock : Errc::Timeout, label + ": no connection to accept");
      first = false;
      IPCH_RETURN_IF_ERROR(
          WaitReady(impl_->ctx, impl_->acceptor, tcp::acceptor::wait_read, d, label + ": no connection to accept"));
    }
  });
}

Result<Connection> Connect(const std::string& address, Deadline d, const Options& options) {
  const std::string label = "asio_tcp connect " + address;
  auto ep = ParseEndpoint(address);
  if (!ep.ok()) return std::move(ep).error();
  return Guarded(label, [&]() -> Result<Connection> {
    auto conn = std::make_unique<Connection::Impl>(options, "asio_tcp " + address + " (client)");
    UniqueFd fd(::socket(ep->protocol().family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!fd) return ErrnoError(label + ": socket");
    error_code ec;
    auto& [ctx, sock] = *conn->io;
    sock.assign(ep->protocol(), fd.get(), ec);
    if (ec) return ErrorOf(ec, label + ": assign");
    fd.release();
    bool done = false;
    error_code cec;
    sock.async_connect(*ep, [&](const error_code& e) {
      done = true;
      cec = e;
    });
    RunUntilDone(ctx, sock, done, d);
    if (cec == asio::error::operation_aborted) return MakeError(Errc::Timeout, label);
    // Interrupted or "try again" (connect(2)'s EINTR and EAGAIN): on Linux the connection goes
    // on; it is connected once the socket is writable and has a peer.
    while (cec == asio::error::interrupted || IsWouldBlock(cec)) {
      IPCH_RETURN_IF_ERROR(WaitReady(ctx, sock, tcp::socket::wait_write, d, label));
      int err = 0;
      socklen_t len = sizeof err;
      if (::getsockopt(sock.native_handle(), SOL_SOCKET, SO_ERROR, &err, &len) != 0) {
        return ErrnoError(label + ": SO_ERROR");
      }
      cec = err != 0 ? error_code(err, boost::system::system_category()) : error_code();
      if (!cec) sock.remote_endpoint(cec);  // ENOTCONN: still in progress
      if (cec == asio::error::not_connected) cec = asio::error::would_block;
    }
    if (cec) {
      if (cec.category() == boost::system::system_category() && IsNoPeer(cec.value())) {
        return MakeError(Errc::PeerClosed, label + ": connect: " + cec.message());
      }
      if (cec == asio::error::access_denied || cec == asio::error::no_permission) {
        return MakeError(Errc::PermissionDenied, label + ": connect: " + cec.message());
      }
      return ErrorOf(cec, label + ": connect");
    }
    IPCH_RETURN_IF_ERROR(conn->Start(options));
    return Connection(std::move(conn));
  });
}

Result<UniqueFd> Adapter::ConnectRaw(const std::string& a, Deadline d) {
  auto sa = ParseInetAddress(a, "asio_tcp");
  if (!sa.ok()) return std::move(sa).error();
  return ConnectWithDeadline(sa->family, sa->get(), sa->len, d, "asio_tcp raw connect " + a);
}

Bytes Adapter::FrameHeader(uint32_t length, ByteView payload) { return Frame::FrameHeader(length, payload); }

}  // namespace ipch::asio_tcp
