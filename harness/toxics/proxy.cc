// The stream toxics proxy. Threads: one acceptor; per connection, per direction, a reader (reads,
// flips bits, stamps each chunk with its release time) and a writer (waits for the release time,
// slices, paces to the rate, applies close/reset/stall limits, writes). A connection's four threads
// share an eventfd that becomes readable when it is torn down; the last thread out closes both
// sockets (with SO_LINGER 0 for a reset) and tells the acceptor to reap it.
//
// Spliced pipes (Proxy::Splice) are one connection of the same kind with no acceptor: each
// direction reads a pipe of the proxy's own, whose write end took the number of the sender's
// descriptor (dup3), and writes the pipe the sender used to write to.
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <dirent.h>
#include <list>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

#include "harness_thread.h"
#include "ipch/harness_calls.h"
#include "ipch/socket_address.h"
#include "ipch/toxics.h"
#include "ipch/unique_fd.h"

namespace ipch::toxics {

namespace {
std::atomic<bool> g_threads_faultable{false};
}  // namespace

void SetThreadsFaultable(bool faultable) { g_threads_faultable.store(faultable); }

bool ThreadsFaultable() { return g_threads_faultable.load(); }

void HarnessThread(bool faultable) {
  if (!faultable && ipch_fault_exempt_thread != nullptr) ipch_fault_exempt_thread();
}

namespace {
// A relay thread of spliced pipes writes into a pipe whose reader may be gone: EPIPE, never the
// process's SIGPIPE (a pending one is dropped with the thread).
void BlockSigpipe() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}
}  // namespace

using Bytes = std::vector<std::byte>;
namespace {

constexpr std::size_t kReadChunk = 64 * 1024;
constexpr std::size_t kMaxQueued = 4 * 1024 * 1024;  // per direction; the reader waits beyond it
constexpr std::size_t kMaxLog = 1000;

const char* DirName(int dir) { return dir == 0 ? "up" : "down"; }

uint64_t Mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

void SignalFd(int fd) {
  const uint64_t one = 1;
  while (::write(fd, &one, sizeof one) < 0 && errno == EINTR) {
  }
}

// Waits for `fd` to be ready for `events`, or for `wake` to become readable. True if `fd` is ready.
bool WaitReady(int fd, short events, int wake) {
  for (;;) {
    pollfd p[2] = {{fd, events, 0}, {wake, POLLIN, 0}};
    int r = ::poll(p, 2, -1);
    if (r < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (r < 0 || (p[1].revents & POLLIN)) return false;
    if (p[0].revents) return true;
  }
}

struct Chunk {
  enum Kind { kData, kEof, kReset } kind = kData;
  Clock::time_point due;
  Bytes data;
};

}  // namespace

struct Conn;

struct Proxy::Impl {
  std::string address;
  std::string upstream_text;
  SocketAddress upstream;
  std::string unix_path;  // removed by Stop
  UniqueFd listen_fd;
  UniqueFd stop_fd;  // eventfd: readable once Stop begins
  UniqueFd reap_fd;  // eventfd: a connection's last thread has exited
  std::thread acceptor;
  std::atomic<bool> stopped{false};
  bool faultable = ThreadsFaultable();  // SetThreadsFaultable when this proxy started
  std::atomic<uint64_t> resume_epoch{0};  // bumped by Resume; stalls wait for a change
  int listen_family = AF_INET;

  mutable std::mutex mu;  // guards everything below
  std::condition_variable changed;  // stats or log changed
  Spec spec;
  Stats stats;
  // ArmEvent: per direction, bytes handed to writers so far, and the event waiting for a byte.
  uint64_t handed[2] = {};
  struct Armed {
    bool armed = false;
    uint64_t at = 0;  // in `handed` terms
    Event event = Event::kReset;
  } pending[2];
  std::deque<std::string> log;
  std::list<std::unique_ptr<Conn>> conns;

  void Note(const std::string& line) {
    std::lock_guard<std::mutex> g(mu);
    log.push_back(line);
    if (log.size() > kMaxLog) log.pop_front();
    changed.notify_all();
  }
  // Updates the stats under the lock and wakes WaitFor.
  template <class F>
  void Count(F f) {
    std::lock_guard<std::mutex> g(mu);
    f(stats);
    changed.notify_all();
  }
  Toxics ToxicsFor(int dir) const {
    std::lock_guard<std::mutex> g(mu);
    return dir == 0 ? spec.up : spec.down;
  }
  void AcceptLoop();
  // Seeds `c` (connection number `id`), keeps it, and starts its four threads.
  void Launch(std::unique_ptr<Conn> c, uint64_t id);
  void Reap(bool all);
};

// One direction of a connection.
struct Pipe {
  std::mutex mu;
  std::condition_variable cv;
  std::deque<Chunk> queue;
  std::size_t queued = 0;
  uint64_t in_off = 0;   // reader: bytes read so far
  uint64_t out_off = 0;  // writer: bytes forwarded so far
  std::mt19937_64 reader_rng, writer_rng;
  Clock::time_point last_due{};
  Clock::time_point next_send{};
  uint64_t next_flip = kNever;  // offset of the next probabilistic flip
  double flip_p = 0.0;          // the probability next_flip was drawn with
  bool stalled = false;         // stall_after has fired on this direction
  bool write_failed = false;    // the direction's receiver is gone (its writer's only)
};

struct Conn {
  enum End { kRunning, kFinished, kClosed, kReset };
  Proxy::Impl* proxy = nullptr;
  uint64_t id = 0;
  UniqueFd fd[2];  // sockets: [0] client, [1] upstream; direction d reads fd[d] and writes fd[1 - d]
  bool pipes = false;  // spliced pipes: direction d reads in[d] and writes out[d]
  UniqueFd in[2], out[2];
  UniqueFd wake;   // eventfd: readable once the connection is torn down
  std::atomic<int> end{kRunning};
  std::atomic<int> eof_done{0};  // directions ended: the connection ends with the second
  std::atomic<int> live{4};
  Pipe pipe[2];
  std::thread threads[4];

  std::string Tag(int dir) const { return "conn " + std::to_string(id) + " " + DirName(dir); }

  // Ends the connection once: wakes every thread; the last one out closes the sockets.
  void Teardown(End how, const std::string& why) {
    int expect = kRunning;
    if (!end.compare_exchange_strong(expect, how)) return;
    if (!why.empty()) proxy->Note(why);
    SignalFd(wake.get());
    for (auto& p : pipe) {
      std::lock_guard<std::mutex> g(p.mu);
      p.cv.notify_all();
    }
  }
  bool Dead() const { return end.load() != kRunning; }
  // One direction is over; the second to end ends the connection, in order: what was written
  // onward is still delivered (a reset would discard what the kernel has not sent yet).
  void EndDirection() {
    if (eof_done.fetch_add(1) == 1) Teardown(kFinished, "");
  }
  void Sink(int dir);
  int Src(int dir) const { return pipes ? in[dir].get() : fd[dir].get(); }
  int Dst(int dir) const { return pipes ? out[dir].get() : fd[1 - dir].get(); }

  void ThreadExit() {
    if (live.fetch_sub(1) != 1) return;
    if (end.load() == kReset && !pipes) {
      linger lg{1, 0};  // close with RST instead of FIN
      for (auto& f : fd) ::setsockopt(f.get(), SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    }
    for (auto* set : {fd, in, out}) {
      set[0].reset();
      set[1].reset();
    }
    SignalFd(proxy->reap_fd.get());
  }

  void Reader(int dir);
  void Writer(int dir);
  bool WriteAll(int dir, const std::byte* p, std::size_t n);
  bool ApplyLimits(int dir, const Toxics& t);
  bool Stall(int dir, const Toxics& t);
  // Hands `*seg` bytes of `dir` to the writer, trimmed to end where an armed event waits; true
  // with `*event` set when that event is due now (before this segment's first byte).
  bool TakeSegment(int dir, std::size_t* seg, Event* event);
  void Flip(int dir, Bytes& data, const Toxics& t);
};

void Conn::Flip(int dir, Bytes& data, const Toxics& t) {
  Pipe& p = pipe[dir];
  const uint64_t begin = p.in_off, end_off = p.in_off + data.size();
  auto flip_one = [&](uint64_t off) {
    const int bit = static_cast<int>(p.reader_rng() % 8);
    data[off - begin] ^= std::byte(1u << bit);
    proxy->Count([&](Stats& st) { ++st.flips[dir]; });
    proxy->Note(Tag(dir) + ": flip bit " + std::to_string(bit) + " of byte " + std::to_string(off));
  };
  if (t.flip_at != kNever && t.flip_at >= begin && t.flip_at < end_off) flip_one(t.flip_at);
  if (t.flip <= 0.0) {
    p.flip_p = 0.0;
    return;
  }
  // The gap to the next flip is geometric, so flips depend on stream offsets, not read sizes.
  auto draw = [&](uint64_t from) {
    if (t.flip >= 1.0) return from;
    const double u = (static_cast<double>(p.reader_rng() >> 11) + 0.5) / 9007199254740992.0;
    const double gap = std::floor(std::log(u) / std::log1p(-t.flip));
    return gap > 1e18 ? kNever : from + static_cast<uint64_t>(gap);
  };
  if (p.flip_p != t.flip) {
    p.flip_p = t.flip;
    p.next_flip = draw(begin);
  }
  while (p.next_flip < end_off) {
    if (p.next_flip != t.flip_at) flip_one(p.next_flip);
    p.next_flip = draw(p.next_flip + 1);
  }
}

void Conn::Reader(int dir) {
  Pipe& p = pipe[dir];
  const int src = Src(dir);
  Bytes buf(kReadChunk);
  while (!Dead()) {
    {
      std::unique_lock<std::mutex> lk(p.mu);
      p.cv.wait(lk, [&] { return Dead() || p.queued < kMaxQueued; });
    }
    if (Dead() || !WaitReady(src, POLLIN, wake.get())) break;
    ssize_t n = pipes ? ::read(src, buf.data(), buf.size()) : ::recv(src, buf.data(), buf.size(), MSG_DONTWAIT);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    Chunk c;
    if (n <= 0) {
      c.kind = n == 0 ? Chunk::kEof : Chunk::kReset;
      if (n < 0) proxy->Note(Tag(dir) + ": read failed (" + std::strerror(errno) + "): the direction ends");
    } else {
      const Toxics t = proxy->ToxicsFor(dir);
      c.data.assign(buf.begin(), buf.begin() + n);
      Flip(dir, c.data, t);
      auto delay = t.latency;
      if (t.jitter > Clock::duration{}) {
        delay += Clock::duration(static_cast<Clock::rep>(p.reader_rng() % (static_cast<uint64_t>(t.jitter.count()) + 1)));
      }
      c.due = std::max(Clock::now() + delay, p.last_due);  // jitter never reorders
      p.last_due = c.due;
      p.in_off += static_cast<uint64_t>(n);
    }
    const bool last = c.kind != Chunk::kData;
    {
      std::lock_guard<std::mutex> g(p.mu);
      p.queued += c.data.size();
      p.queue.push_back(std::move(c));
      p.cv.notify_all();
    }
    if (last) break;
  }
  ThreadExit();
}

bool Conn::WriteAll(int dir, const std::byte* data, std::size_t n) {
  const int dst = Dst(dir);
  while (n > 0) {
    ssize_t w = pipes ? ::write(dst, data, n) : ::send(dst, data, n, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w > 0) {
      data += w;
      n -= static_cast<std::size_t>(w);
      continue;
    }
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && errno == EAGAIN) {
      if (!WaitReady(dst, POLLOUT, wake.get())) return false;
      continue;
    }
    proxy->Note(Tag(dir) + ": write failed (" + std::strerror(errno) + "): the direction ends");
    proxy->Count([](Stats& st) { ++st.receivers_gone; });
    pipe[dir].write_failed = true;
    return false;
  }
  return true;
}

// Fires the limit the direction has reached, if any. False when the connection is over.
bool Conn::ApplyLimits(int dir, const Toxics& t) {
  Pipe& p = pipe[dir];
  if (p.out_off == t.reset_after) {
    proxy->Count([](Stats& st) { ++st.resets; });
    Teardown(kReset, Tag(dir) + ": reset after " + std::to_string(p.out_off) + " bytes");
    return false;
  }
  if (p.out_off == t.close_after) {
    proxy->Count([](Stats& st) { ++st.closes; });
    Teardown(kClosed, Tag(dir) + ": close after " + std::to_string(p.out_off) + " bytes");
    return false;
  }
  if (p.out_off == t.stall_after && !p.stalled) {
    p.stalled = true;
    return Stall(dir, t);
  }
  return true;
}

// Holds this direction until Resume(), stall_for, or the end. False when the connection is over.
bool Conn::Stall(int dir, const Toxics& t) {
  Pipe& p = pipe[dir];
  const uint64_t epoch = proxy->resume_epoch.load();
  proxy->Count([](Stats& st) { ++st.stalls; });
  proxy->Note(Tag(dir) + ": stall after " + std::to_string(p.out_off) + " bytes");
  std::unique_lock<std::mutex> lk(p.mu);
  auto done = [&] { return Dead() || proxy->resume_epoch.load() != epoch; };
  if (t.stall_for > Clock::duration{}) {
    p.cv.wait_until(lk, Clock::now() + t.stall_for, done);
  } else {
    p.cv.wait(lk, done);
  }
  lk.unlock();  // Note takes the proxy's lock, which is never taken inside a pipe's
  if (Dead()) return false;
  proxy->Note(Tag(dir) + ": stall ends");
  return true;
}

bool Conn::TakeSegment(int dir, std::size_t* seg, Event* event) {
  std::lock_guard<std::mutex> g(proxy->mu);
  auto& armed = proxy->pending[dir];
  uint64_t& handed = proxy->handed[dir];
  if (armed.armed && armed.at == handed) {
    armed.armed = false;
    *event = armed.event;
    return true;
  }
  if (armed.armed && armed.at > handed && armed.at - handed < *seg) *seg = static_cast<std::size_t>(armed.at - handed);
  handed += *seg;
  return false;
}

void Conn::Writer(int dir) {
  Pipe& p = pipe[dir];
  bool go = ApplyLimits(dir, proxy->ToxicsFor(dir));
  while (go) {
    Chunk c;
    {
      std::unique_lock<std::mutex> lk(p.mu);
      for (;;) {
        if (Dead()) break;
        if (p.queue.empty()) {
          p.cv.wait(lk);
          continue;
        }
        if (p.queue.front().kind == Chunk::kData && Clock::now() < p.queue.front().due) {
          p.cv.wait_until(lk, p.queue.front().due);
          continue;
        }
        c = std::move(p.queue.front());
        p.queue.pop_front();
        p.queued -= c.data.size();
        p.cv.notify_all();  // the reader may wait for room
        break;
      }
    }
    if (Dead()) break;
    // A source that ended, in order or by a reset: its receiver gets what it sent, then the end.
    if (c.kind == Chunk::kEof || c.kind == Chunk::kReset) {
      if (pipes) {
        out[dir].reset();  // this direction's reader sees the end; only this thread uses it
      } else {
        ::shutdown(fd[1 - dir].get(), SHUT_WR);
      }
      EndDirection();
      break;
    }
    std::size_t off = 0;
    while (go && off < c.data.size()) {
      const Toxics t = proxy->ToxicsFor(dir);
      std::size_t seg = c.data.size() - off;
      if (t.slice) seg = std::min<std::size_t>(seg, 1 + p.writer_rng() % t.slice);
      if (t.rate) seg = std::min<std::size_t>(seg, std::max<uint64_t>(1, t.rate / 100));  // <= 10 ms of budget
      for (uint64_t limit : {t.close_after, t.reset_after, p.stalled ? kNever : t.stall_after}) {
        if (limit > p.out_off) seg = static_cast<std::size_t>(std::min<uint64_t>(seg, limit - p.out_off));
      }
      if (Event event = Event::kReset; TakeSegment(dir, &seg, &event)) {
        const std::string where = " at byte " + std::to_string(p.out_off) + " (an armed event)";
        if (event == Event::kReset || event == Event::kClose) {
          const bool reset = event == Event::kReset;
          proxy->Count([&](Stats& st) { ++(reset ? st.resets : st.closes); });
          Teardown(reset ? kReset : kClosed, Tag(dir) + (reset ? ": reset" : ": close") + where);
          go = false;
          break;
        }
        if (event == Event::kStall) {
          go = Stall(dir, Toxics{});
          if (!go) break;
        } else {
          const int bit = static_cast<int>(p.writer_rng() % 8);
          c.data[off] ^= std::byte(1u << bit);
          proxy->Count([&](Stats& st) { ++st.flips[dir]; });
          proxy->Note(Tag(dir) + ": flip bit " + std::to_string(bit) + " of byte " + std::to_string(p.out_off) +
                      " (an armed event)");
        }
        continue;
      }
      Clock::time_point start{};
      if (t.rate) {
        std::unique_lock<std::mutex> lk(p.mu);
        p.cv.wait_until(lk, p.next_send, [&] { return Dead(); });
        if (Dead()) break;
        start = std::max(p.next_send, Clock::now());
      }
      if (!WriteAll(dir, c.data.data() + off, seg)) {
        go = false;
        break;
      }
      off += seg;
      p.out_off += seg;
      proxy->Count([&](Stats& st) {
        st.forwarded[dir] += seg;
        ++st.segments[dir];
      });
      if (t.rate) {
        const auto cost = std::chrono::nanoseconds(static_cast<int64_t>(1e9 * static_cast<double>(seg) / static_cast<double>(t.rate)));
        p.next_send = start + cost;
      }
      go = ApplyLimits(dir, t);
      if (go && off < c.data.size() && t.slice_delay > Clock::duration{}) {
        std::unique_lock<std::mutex> lk(p.mu);
        p.cv.wait_until(lk, Clock::now() + t.slice_delay, [&] { return Dead(); });
      }
    }
  }
  if (p.write_failed && !Dead()) Sink(dir);
  ThreadExit();
}

// The direction's receiver is gone: what comes after is dropped, as a closed socket drops what
// reaches it, while the other direction still delivers what its sender sent before (a reader
// closing with bytes unread must not cost its peer what was already on the way). The connection
// ends once that direction ends too.
void Conn::Sink(int dir) {
  Pipe& p = pipe[dir];
  EndDirection();
  std::unique_lock<std::mutex> lk(p.mu);
  while (!Dead()) {
    p.queue.clear();
    p.queued = 0;
    p.cv.notify_all();  // the reader may wait for room
    p.cv.wait(lk);
  }
}

void Proxy::Impl::AcceptLoop() {
  uint64_t next_id = 0;
  for (;;) {
    pollfd p[3] = {{listen_fd.get(), POLLIN, 0}, {stop_fd.get(), POLLIN, 0}, {reap_fd.get(), POLLIN, 0}};
    int r = ::poll(p, 3, -1);
    if (r < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      break;
    }
    if (p[1].revents) break;
    if (p[2].revents) {
      uint64_t v;
      while (::read(reap_fd.get(), &v, sizeof v) < 0 && errno == EINTR) {
      }
      Reap(false);
    }
    if (!(p[0].revents & POLLIN)) continue;
    UniqueFd client(::accept4(listen_fd.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
    if (!client) {
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        // Out of descriptors or memory: the client stays queued; retry after a pause (or Stop)
        // instead of spinning on a listener that stays readable.
        Note(std::string("accept failed (") + std::strerror(errno) + "), retrying in 50 ms");
        pollfd sp{stop_fd.get(), POLLIN, 0};
        ::poll(&sp, 1, 50);
      }
      continue;  // EAGAIN, EINTR, a client that gave up while queued
    }
    const uint64_t id = ++next_id;
    UniqueFd up(::socket(upstream.family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    bool connected = false;
    if (up) {
      int rc = ::connect(up.get(), upstream.get(), upstream.len);
      if (rc == 0) {
        connected = true;
      } else if (errno == EINPROGRESS || errno == EINTR) {
        if (WaitReady(up.get(), POLLOUT, stop_fd.get())) {
          int err = 0;
          socklen_t len = sizeof err;
          connected = ::getsockopt(up.get(), SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0;
        }
      }
    }
    int one = 1;
    if (listen_family != AF_UNIX) ::setsockopt(client.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (up && upstream.family != AF_UNIX) ::setsockopt(up.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (!connected) {
      linger lg{1, 0};
      ::setsockopt(client.get(), SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
      Note("conn " + std::to_string(id) + ": upstream " + upstream_text + " unreachable, resetting the client");
      Count([](Stats& st) {
        ++st.connections;
        ++st.resets;
      });
      continue;
    }
    auto c = std::make_unique<Conn>();
    c->fd[0] = std::move(client);
    c->fd[1] = std::move(up);
    Launch(std::move(c), id);
  }
}

void Proxy::Impl::Launch(std::unique_ptr<Conn> c, uint64_t id) {
  c->proxy = this;
  c->id = id;
  c->wake = UniqueFd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  uint64_t seed = 0;
  Count([&](Stats& st) {
    ++st.connections;
    seed = spec.seed;
  });
  for (int d = 0; d < 2; ++d) {
    c->pipe[d].reader_rng.seed(Mix(seed ^ Mix(id * 4 + static_cast<uint64_t>(d) * 2)));
    c->pipe[d].writer_rng.seed(Mix(seed ^ Mix(id * 4 + static_cast<uint64_t>(d) * 2 + 1)));
  }
  Conn* raw = c.get();
  {
    std::lock_guard<std::mutex> g(mu);
    conns.push_back(std::move(c));
  }
  for (int d = 0; d < 2; ++d) {
    for (int writer = 0; writer < 2; ++writer) {
      raw->threads[2 * d + writer] = std::thread([raw, d, writer] {
        HarnessThread(raw->proxy->faultable);
        if (raw->pipes) BlockSigpipe();
        if (writer) {
          raw->Writer(d);
        } else {
          raw->Reader(d);
        }
      });
    }
  }
}

void Proxy::Impl::Reap(bool all) {
  std::list<std::unique_ptr<Conn>> done;
  {
    std::lock_guard<std::mutex> g(mu);
    for (auto it = conns.begin(); it != conns.end();) {
      if (all || (*it)->live.load() == 0) {
        done.push_back(std::move(*it));
        it = conns.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (auto& c : done) {
    if (all) c->Teardown(Conn::kClosed, "");
    for (auto& t : c->threads) {
      if (t.joinable()) t.join();
    }
  }
}

Proxy::Proxy(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Proxy::~Proxy() { Stop(); }

Result<std::unique_ptr<Proxy>> Proxy::Start(const std::string& listen, const std::string& upstream, Spec spec) {
  auto up = ParseSocketAddress(upstream, "proxy upstream");
  if (!up.ok()) return std::move(up).error();
  auto la = ParseSocketAddress(listen, "proxy listen");
  if (!la.ok()) return std::move(la).error();
  auto impl = std::make_unique<Impl>();
  impl->upstream = *up;
  impl->upstream_text = upstream;
  impl->spec = spec;
  impl->listen_family = la->family;
  impl->listen_fd = UniqueFd(::socket(la->family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!impl->listen_fd) return ErrnoError("proxy listen " + listen + ": socket");
  int one = 1;
  if (la->family != AF_UNIX) ::setsockopt(impl->listen_fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (la->family == AF_INET6) ::setsockopt(impl->listen_fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  if (::bind(impl->listen_fd.get(), la->get(), la->len) != 0) {
    if (errno == EADDRINUSE) return MakeError(Errc::AlreadyExists, "proxy listen " + listen + ": address in use");
    return ErrnoError("proxy listen " + listen + ": bind");
  }
  if (la->family == AF_UNIX) {
    impl->unix_path = listen;
    if (::chmod(listen.c_str(), 0600) != 0) {
      auto e = ErrnoError("proxy listen " + listen + ": chmod 0600");
      ::unlink(listen.c_str());
      return e;
    }
  }
  auto fail = [&](const char* what) {
    auto e = ErrnoError("proxy listen " + listen + ": " + what);
    if (!impl->unix_path.empty()) ::unlink(impl->unix_path.c_str());
    return e;
  };
  if (::listen(impl->listen_fd.get(), SOMAXCONN) != 0) return fail("listen");
  sockaddr_storage bound{};
  socklen_t blen = sizeof bound;
  if (::getsockname(impl->listen_fd.get(), reinterpret_cast<sockaddr*>(&bound), &blen) != 0) return fail("getsockname");
  impl->address = la->family == AF_UNIX ? listen : FormatSocketAddress(bound, blen);
  impl->stop_fd = UniqueFd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  impl->reap_fd = UniqueFd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!impl->stop_fd || !impl->reap_fd) return fail("eventfd");
  Impl* raw = impl.get();
  impl->acceptor = std::thread([raw] {
    HarnessThread(raw->faultable);
    raw->AcceptLoop();
  });
  return std::unique_ptr<Proxy>(new Proxy(std::move(impl)));
}

Result<std::unique_ptr<Proxy>> Proxy::Splice(int up_fd, int down_fd, Spec spec) {
  const HarnessCalls harness;  // splicing is the harness's doing, not the transport's
  const int ends[2] = {up_fd, down_fd};
  if (up_fd == down_fd) return MakeError(Errc::InvalidArgument, "splice: one descriptor for both directions");
  struct Prepared {
    UniqueFd orig, r, w;
    int status = 0, cloexec = 0;
  } prep[2];
  for (int d = 0; d < 2; ++d) {
    const std::string what = "splice: descriptor " + std::to_string(ends[d]) + " (" + DirName(d) + ")";
    struct stat st {};
    if (::fstat(ends[d], &st) != 0) return ErrnoError(what);
    if (!S_ISFIFO(st.st_mode)) return MakeError(Errc::InvalidArgument, what + " is not a pipe");
    Prepared& p = prep[d];
    p.status = ::fcntl(ends[d], F_GETFL);
    p.cloexec = ::fcntl(ends[d], F_GETFD) & FD_CLOEXEC;
    if (p.status < 0 || (p.status & O_ACCMODE) != O_WRONLY) {
      return MakeError(Errc::InvalidArgument, what + " is not a pipe's write-only end");
    }
    p.orig = UniqueFd(::fcntl(ends[d], F_DUPFD_CLOEXEC, 0));
    int pp[2];
    if (!p.orig || ::pipe2(pp, O_CLOEXEC | O_NONBLOCK) != 0) return ErrnoError(what);
    p.r = UniqueFd(pp[0]);
    p.w = UniqueFd(pp[1]);
    // The sender's descriptor keeps its blocking mode; the relay reads without blocking.
    if (::fcntl(p.w.get(), F_SETFL, p.status & O_NONBLOCK) != 0) return ErrnoError(what);
  }
  for (int d = 0; d < 2; ++d) {
    if (::dup3(prep[d].w.get(), ends[d], prep[d].cloexec ? O_CLOEXEC : 0) < 0) {
      auto e = ErrnoError("splice: dup3 onto descriptor " + std::to_string(ends[d]));
      if (d == 1) ::dup3(prep[0].orig.get(), ends[0], prep[0].cloexec ? O_CLOEXEC : 0);  // as it was
      return e;
    }
  }
  auto impl = std::make_unique<Impl>();
  impl->spec = spec;
  impl->address = "pipes spliced at descriptors " + std::to_string(up_fd) + " (up) and " + std::to_string(down_fd) +
                  " (down)";
  impl->stop_fd = UniqueFd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  impl->reap_fd = UniqueFd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  auto c = std::make_unique<Conn>();
  c->pipes = true;
  for (int d = 0; d < 2; ++d) {
    // Only the relay holds the original description now: its writes must not block.
    ::fcntl(prep[d].orig.get(), F_SETFL, prep[d].status | O_NONBLOCK);
    c->in[d] = std::move(prep[d].r);
    c->out[d] = std::move(prep[d].orig);
  }
  impl->Launch(std::move(c), 1);
  return std::unique_ptr<Proxy>(new Proxy(std::move(impl)));
}

std::vector<int> Proxy::PipeWriteEnds() {
  const HarnessCalls harness;
  std::vector<int> out;
  DIR* dir = ::opendir("/proc/self/fd");
  if (dir == nullptr) return out;
  const int own = ::dirfd(dir);
  while (dirent* e = ::readdir(dir)) {
    char* end = nullptr;
    const long fd = std::strtol(e->d_name, &end, 10);
    if (end == e->d_name || *end != '\0' || fd == own) continue;
    struct stat st {};
    const int fl = ::fcntl(static_cast<int>(fd), F_GETFL);
    if (::fstat(static_cast<int>(fd), &st) == 0 && S_ISFIFO(st.st_mode) && fl >= 0 && (fl & O_ACCMODE) == O_WRONLY) {
      out.push_back(static_cast<int>(fd));
    }
  }
  ::closedir(dir);
  std::sort(out.begin(), out.end());
  return out;
}

std::size_t Proxy::Buffered(int fd) {
  const HarnessCalls harness;
  int n = 0;
  return ::ioctl(fd, FIONREAD, &n) == 0 && n > 0 ? static_cast<std::size_t>(n) : 0;
}

const std::string& Proxy::address() const { return impl_->address; }

void Proxy::Resume() {
  ++impl_->resume_epoch;
  // Connections live until Reap, which needs impl_->mu: holding it keeps them alive here.
  std::lock_guard<std::mutex> g(impl_->mu);
  for (auto& c : impl_->conns) {
    for (auto& p : c->pipe) {
      std::lock_guard<std::mutex> pg(p.mu);
      p.cv.notify_all();
    }
  }
}

void Proxy::Update(const Spec& spec) {
  std::lock_guard<std::mutex> g(impl_->mu);
  impl_->spec = spec;
}

uint64_t Proxy::Taken(Direction dir) const {
  std::lock_guard<std::mutex> g(impl_->mu);
  return impl_->handed[static_cast<int>(dir)];
}

void Proxy::ArmEvent(Direction dir, uint64_t bytes, Event event) {
  const int d = static_cast<int>(dir);
  std::lock_guard<std::mutex> g(impl_->mu);
  impl_->pending[d] = {true, impl_->handed[d] + bytes, event};
}

Stats Proxy::stats() const {
  std::lock_guard<std::mutex> g(impl_->mu);
  return impl_->stats;
}

bool Proxy::WaitFor(const std::function<bool(const Stats&)>& done, Deadline d) const {
  std::unique_lock<std::mutex> lk(impl_->mu);
  auto pred = [&] { return done(impl_->stats); };
  if (d.never()) {
    impl_->changed.wait(lk, pred);
    return true;
  }
  return impl_->changed.wait_until(lk, d.at(), pred);
}

std::vector<std::string> Proxy::Log() const {
  std::lock_guard<std::mutex> g(impl_->mu);
  return {impl_->log.begin(), impl_->log.end()};
}

void Proxy::Stop() {
  if (!impl_ || impl_->stopped.exchange(true)) return;
  SignalFd(impl_->stop_fd.get());
  if (impl_->acceptor.joinable()) impl_->acceptor.join();
  impl_->Reap(true);
  impl_->listen_fd.reset();
  if (!impl_->unix_path.empty()) ::unlink(impl_->unix_path.c_str());
}

std::string Proxy::FrontFor(const std::string& upstream) {
  if (upstream.find('/') != std::string::npos) return upstream + ".proxy";
  const auto colon = upstream.rfind(':');
  return (colon == std::string::npos ? upstream : upstream.substr(0, colon)) + ":0";
}

}  // namespace ipch::toxics
