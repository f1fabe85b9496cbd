#include "sysv_mq.h"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/ipc.h>
#include <sys/msg.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <thread>
#include <vector>

#include "../mq/connection.h"
#include "../shm_ring/liveness.h"
#include "../stream/wire.h"
#include "ipch/unique_fd.h"

namespace ipch::sysv_mq {
namespace {

// Message types. On the listen queue: the beacon Listen sends itself, and requests. On a
// connection's data queues: data chunks, then FIN. The token queue holds the close token.
constexpr long kBeacon = 1, kRequest = 2;
constexpr long kData = 1, kFin = 2, kToken = 3, kMark = 4;

constexpr uint32_t kRequestMagic = 0x5153514d;  // "MQSQ"
// A request: u32 magic | i32 to-server id | i32 to-client id | i32 token queue id | u32 pid |
// u64 start time.
constexpr std::size_t kRequestSize = 28;
// A call that moves a message we know is there (or into room we know exists) is retried this
// often on EAGAIN/ENOMSG before it counts as an error.
constexpr int kSureTries = 1000;
// The capacity we ask for per connection queue; above kernel.msgmnb this needs CAP_SYS_RESOURCE,
// and without it the kernel's default (16 KiB) stays.
constexpr msglen_t kWantQueueBytes = 1u << 20;
constexpr auto kTokenCheckEvery = std::chrono::milliseconds(10);
// How long a waiting call yields the CPU before it starts to sleep: long enough to cover a
// request/response exchange, so the reply of a busy peer is taken without a sleep's latency.
constexpr auto kYieldFor = std::chrono::microseconds(200);
// How long a blocking call first tries without blocking, yielding the CPU between tries, before
// it arms the wake timer: a chunk that comes within it costs no timer_settime (two per block)
// and no signal-mask look, and a peer on the same CPU gets to run and send it.
constexpr auto kSpinFor = std::chrono::microseconds(20);

using wire::GetU32;
using wire::PutU32;

// kernel.msgmax: the largest queue message, so the largest chunk.
std::size_t ChunkLimit() {
  static const std::size_t limit = [] {
    std::size_t v = 8192;
    std::ifstream in("/proc/sys/kernel/msgmax");
    if (!(in >> v) || v < 64) v = 8192;
    return std::min<std::size_t>(v, 1u << 20);
  }();
  return limit;
}

bool IsGone(int err) { return err == EIDRM || err == EINVAL; }

struct Empty {
  long type;
  char none[1];
};

// msgsnd/msgrcv of an empty control message that cannot meet a full or empty queue (a new
// queue, a message just sent): EAGAIN or ENOMSG there is transient and retried.
int SendSure(int q, long type) {
  Empty m{type, {0}};
  int r;
  int tries = 0;
  do {
    r = ::msgsnd(q, &m, 0, IPC_NOWAIT);
  } while (r != 0 && (errno == EINTR || (errno == EAGAIN && ++tries < kSureTries)));
  return r;
}
int ReceiveSure(int q, long type) {
  Empty m{};
  ssize_t r;
  int tries = 0;
  do {
    r = ::msgrcv(q, &m, 0, type, IPC_NOWAIT);
  } while (r < 0 && (errno == EINTR || (errno == ENOMSG && ++tries < kSureTries)));
  return r < 0 ? -1 : 0;
}

// Waiting without a timed call: yield for the first ~20 us, then sleep, doubling from 10 us
// to 1 ms, never past the deadline.
class Backoff {
 public:
  // Still within the short spin that begins every wait (kSpinFor).
  bool InSpin() const { return Clock::now() - start_ < kSpinFor; }
  void Wait(Deadline d) {
    const auto waited = Clock::now() - start_;
    if (waited < kYieldFor) {
      sched_yield();
      return;
    }
    auto nap = std::min<Clock::duration>(sleep_, d.remaining());
    std::this_thread::sleep_for(nap);
    sleep_ = std::min<Clock::duration>(sleep_ * 2, std::chrono::milliseconds(1));
  }

 private:
  Clock::time_point start_ = Clock::now();
  Clock::duration sleep_ = std::chrono::microseconds(10);
};

// Blocking msgsnd/msgrcv with a bound. Neither call has a timeout, so a per-thread POSIX timer
// (CLOCK_MONOTONIC, delivered to this thread) raises kWakeSignal when the slice ends; its
// handler does nothing and is installed without SA_RESTART, so the blocked call returns EINTR.
// The timer repeats every millisecond after the first expiry, so a signal that lands just
// before the call blocks is followed by another. Used only if the signal's disposition was the
// default (we install the handler) and it is not blocked in the thread; otherwise the calls
// fall back to polling with Backoff.
const int kWakeSignal = SIGRTMAX - 3;
void IgnoreWake(int) {}

bool WakeHandlerInstalled() {
  static const bool ok = [] {
    struct sigaction old {};
    if (::sigaction(kWakeSignal, nullptr, &old) != 0) return false;
    if (old.sa_handler == IgnoreWake) return true;
    if ((old.sa_flags & SA_SIGINFO) != 0 || old.sa_handler != SIG_DFL) return false;  // someone else's
    struct sigaction sa {};
    sa.sa_handler = IgnoreWake;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;  // no SA_RESTART: the blocked call must return
    return ::sigaction(kWakeSignal, &sa, nullptr) == 0;
  }();
  return ok;
}

struct ThreadTimer {
  timer_t id{};
  bool ok = false;
  pid_t pid = 0;  // timers are not inherited by fork: a child makes its own
  ~ThreadTimer() {
    if (ok && pid == ::getpid()) ::timer_delete(id);
  }
};

// The calling thread's wake timer, or null if blocking with a bound is not possible here.
ThreadTimer* WakeTimer() {
  thread_local ThreadTimer t;
  const pid_t pid = ::getpid();
  if (t.pid != pid) {
    t.pid = pid;
    t.ok = false;
    if (WakeHandlerInstalled()) {
      sigevent ev{};
      ev.sigev_notify = SIGEV_THREAD_ID;
      ev.sigev_signo = kWakeSignal;
      ev._sigev_un._tid = ::gettid();  // sigev_notify_thread_id, which glibc 2.36 does not name
      t.ok = ::timer_create(CLOCK_MONOTONIC, &ev, &t.id) == 0;
    }
  }
  if (!t.ok) return nullptr;
  sigset_t mask;
  if (::pthread_sigmask(SIG_BLOCK, nullptr, &mask) != 0 || sigismember(&mask, kWakeSignal)) return nullptr;
  return &t;
}

// Arms the thread's timer for `slice` on construction, disarms it on destruction.
class WakeAfter {
 public:
  WakeAfter(ThreadTimer* t, Clock::duration slice) : t_(t) {
    auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(slice).count();
    if (ns < 1000) ns = 1000;
    itimerspec its{};
    its.it_value.tv_sec = ns / 1000000000;
    its.it_value.tv_nsec = ns % 1000000000;
    its.it_interval.tv_nsec = 1000000;
    ::timer_settime(t_->id, 0, &its, nullptr);
  }
  ~WakeAfter() {
    const itimerspec off{};
    ::timer_settime(t_->id, 0, &off, nullptr);
  }
  WakeAfter(const WakeAfter&) = delete;
  WakeAfter& operator=(const WakeAfter&) = delete;

 private:
  ThreadTimer* t_;
};

// How long one blocked call may last before we look at the deadline and the peer again.
Clock::duration Slice(Deadline d) { return std::min<Clock::duration>(d.remaining(), std::chrono::milliseconds(50)); }

// Boot time in seconds since the epoch (for comparing process start times with msg_rtime).
long BootTime() {
  static const long bt = [] {
    std::ifstream in("/proc/stat");
    std::string key;
    long v = 0;
    while (in >> key) {
      if (key == "btime" && (in >> v)) return v;
    }
    return 0L;
  }();
  return bt;
}

// The listener behind a listen queue: its last receiver, if that process started no later than
// the receive (a recycled pid started after it). Dead (pid 0) if unknown or gone.
Result<shm::ProcessIdentity> ListenerOf(const msqid_ds& ds) {
  if (ds.msg_lrpid <= 0) return shm::ProcessIdentity{};
  auto st = shm::StartTime(ds.msg_lrpid);
  if (!st.ok()) {
    if (st.error().code == std::error_code(ENOENT, std::system_category())) return shm::ProcessIdentity{};
    return std::move(st).error();  // could not look: not the same as dead
  }
  const long hz = ::sysconf(_SC_CLK_TCK);
  const long started = BootTime() + static_cast<long>(*st / static_cast<uint64_t>(hz > 0 ? hz : 100));
  if (started > ds.msg_rtime + 1) return shm::ProcessIdentity{};
  return shm::ProcessIdentity{static_cast<uint32_t>(ds.msg_lrpid), *st};
}

Status CheckOwned(const msqid_ds& ds, const std::string& what) {
  if (ds.msg_perm.uid != ::geteuid() || ds.msg_perm.cuid != ::geteuid()) {
    return MakeError(Errc::PermissionDenied, what + " belongs to uid " + std::to_string(ds.msg_perm.uid));
  }
  if ((ds.msg_perm.mode & 077) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", ds.msg_perm.mode & 0777);
    return MakeError(Errc::PermissionDenied, what + " has mode " + mode + ", open to group or others");
  }
  return Ok();
}

// A connection queue: private, ours, 0600, as large as we may make it.
Result<int> MakeQueue(const std::string& label) {
  const int q = ::msgget(IPC_PRIVATE, IPC_CREAT | 0600);
  if (q < 0) return ErrnoError(label + ": msgget");
  // One empty message through it makes us its last sender and receiver (msg_lspid/lrpid):
  // SysV queues record no creator, and this is how a resource audit can tell whose it is.
  if (SendSure(q, kMark) != 0 || ReceiveSure(q, kMark) != 0) {
    Error e = ErrnoError(label + ": marking a new queue");
    ::msgctl(q, IPC_RMID, nullptr);
    return e;
  }
  msqid_ds ds{};
  if (::msgctl(q, IPC_STAT, &ds) == 0 && ds.msg_qbytes < kWantQueueBytes) {
    ds.msg_qbytes = kWantQueueBytes;
    (void)::msgctl(q, IPC_SET, &ds);  // EPERM without CAP_SYS_RESOURCE: the default stays
  }
  return q;
}

struct Buffer {
  explicit Buffer(std::size_t payload) : bytes(sizeof(long) + payload) {}
  long& type() { return *reinterpret_cast<long*>(bytes.data()); }
  unsigned char* text() { return reinterpret_cast<unsigned char*>(bytes.data() + sizeof(long)); }
  void* raw() { return bytes.data(); }
  std::vector<std::byte> bytes;  // operator new's alignment suits the leading long
};

}  // namespace

std::string_view Adapter::ImpostorDoesNotApply(Impostor kind) {
  switch (kind) {
    case Impostor::WrongSize:
      return "a SysV queue has no size or kind to get wrong: whatever queue is at the key is a queue, and its "
             "owner, creator and mode are what is checked";
    case Impostor::Uninitialised:
      return "a queue whose listener never took its beacon is a listener starting while the key's starting lock "
             "is held (AlreadyExists), and one that died starting once it is not: it is reclaimed, never refused as "
             "orphaned (sysv_mq.h)";
    case Impostor::Symlink:
      return "a SysV queue is named by a key, not a path: nothing can be linked";
    case Impostor::OtherOwner:
      break;
  }
  return {};
}

Status Adapter::PlantImpostor(const std::string& address, Impostor kind) {
  if (kind != Impostor::OtherOwner) return MakeError(Errc::InvalidArgument, std::string(ImpostorDoesNotApply(kind)));
  auto key = ParseAddress(address);
  if (!key.ok()) return std::move(key).error();
  const int q = ::msgget(*key, IPC_CREAT | IPC_EXCL | 0600);
  if (q < 0) return ErrnoError("plant: msgget");
  msqid_ds ds{};
  if (::msgctl(q, IPC_STAT, &ds) != 0) return ErrnoError("plant: msgctl(IPC_STAT)");
  ds.msg_perm.uid = 65534;
  if (::msgctl(q, IPC_SET, &ds) != 0) return ErrnoError("plant: msgctl(IPC_SET)");
  return Ok();
}

void Adapter::RemoveImpostor(const std::string& address) {
  auto key = ParseAddress(address);
  if (!key.ok()) return;
  const int q = ::msgget(*key, 0);
  if (q >= 0) ::msgctl(q, IPC_RMID, nullptr);
}

// Data goes as type kData; a foreign writer's type is one no connection queue carries.
Status Adapter::PutQueueMessage(const Connection& to, ByteView message, QueueMessageType t) {
  Buffer b(message.size());
  b.type() = t == QueueMessageType::Peer ? kData : 9;
  if (!message.empty()) std::memcpy(b.text(), message.data(), message.size());
  if (::msgsnd(to.incoming_queue(), b.raw(), message.size(), IPC_NOWAIT) != 0) {
    return ErrnoError("sysv_mq: put a queue message of " + std::to_string(message.size()) + " bytes");
  }
  return Ok();
}

std::vector<Bytes> Adapter::QueueMessages(const Connection&, const std::vector<Bytes>& messages) {
  return mq::EncodeMessages(messages, ChunkLimit());
}

// ---- connection: the queues of one connection, behind the shared core (mq/connection.h) ----

namespace {

// The queues of connections this process closed first, left for their peer to remove, with who
// that peer is: a peer killed before its own close would leave them for ever (a SysV queue has
// no name to find it by). Every later Listen, Connect and close here removes those whose peer
// has died, and forgets those the peer removed. Identities, not pidfds, are kept: an entry
// holds no descriptor while its peer lives on.
class LeftForPeer {
 public:
  void Add(int send_q, int recv_q, int token_q, const shm::ProcessIdentity& peer) {
    std::lock_guard g(mu_);
    entries_.push_back({{send_q, recv_q, token_q}, peer});
  }
  void Reclaim() {
    std::lock_guard g(mu_);
    std::erase_if(entries_, [](const Entry& e) {
      msqid_ds ds{};
      if (::msgctl(e.queues[2], IPC_STAT, &ds) != 0) return IsGone(errno);  // the peer removed them
      auto watch = shm::PeerWatch::Watch(e.peer);
      if (!watch.ok() || watch->Alive()) return false;  // alive, or no way to tell now
      for (int q : e.queues) ::msgctl(q, IPC_RMID, nullptr);
      return true;
    });
  }

 private:
  struct Entry {
    std::array<int, 3> queues;
    shm::ProcessIdentity peer;
  };
  std::mutex mu_;
  std::vector<Entry> entries_;
};
LeftForPeer g_left_for_peer;

// One queue per direction and the token queue. A first attempt never blocks: bounding a block
// costs two timer_settime calls, and in request/response traffic the chunk is often there.
class SysvQueues final : public mq::Queues {
 public:
  SysvQueues(int send_q, int recv_q, int token_q) : send_q_(send_q), recv_q_(recv_q), token_q_(token_q) {}

  std::size_t chunk_size() const override { return ChunkLimit(); }
  unsigned char* send_buffer() override { return sbuf_.text(); }
  unsigned char* receive_buffer() override { return rbuf_.text(); }
  int incoming() const override { return recv_q_; }

  mq::QueueCall Put(std::size_t n, Deadline d, mq::Attempt a) override {
    sbuf_.type() = kData;
    return Call(d, a, send_wait_, EAGAIN, "msgsnd",
                [&](int flags) -> ssize_t { return ::msgsnd(send_q_, sbuf_.raw(), n, flags); });
  }
  mq::QueueCall Take(Deadline d, mq::Attempt a) override {
    // Data (type 1) before FIN (type 2): msgtyp -2 takes the lowest type first.
    return Call(d, a, receive_wait_, ENOMSG, "msgrcv",
                [&](int flags) { return ::msgrcv(recv_q_, rbuf_.raw(), ChunkLimit(), -kFin, flags); });
  }
  // The close token is gone. A look (IPC_STAT), so nothing changes hands; at most every 10 ms,
  // since the sender and the receiver thread both ask while they wait; a look that fails for
  // another reason says "not yet" and is asked again later.
  bool PeerTookToken() override {
    const Clock::rep now = Clock::now().time_since_epoch().count();
    if (now - last_token_check_.load() < std::chrono::duration_cast<Clock::duration>(kTokenCheckEvery).count()) {
      return false;
    }
    last_token_check_ = now;
    msqid_ds ds{};
    if (::msgctl(token_q_, IPC_STAT, &ds) != 0) return IsGone(errno);
    return ds.msg_qnum == 0;
  }
  // First to close takes the token and leaves removal to the peer; the last (no token left,
  // confirmed by a look, so a spurious ENOMSG cannot decide) or the survivor of a dead peer
  // removes the three queues.
  void Close(const unsigned char* fin, std::size_t n, const shm::PeerWatch& peer) override {
    g_left_for_peer.Reclaim();
    bool first = false;
    if (peer.Alive()) {
      for (int tries = 0; tries < kSureTries; ++tries) {
        Empty tok{};
        if (::msgrcv(token_q_, &tok, 0, kToken, IPC_NOWAIT) >= 0) {
          first = true;
          break;
        }
        if (errno == EINTR) continue;
        if (errno != ENOMSG) break;  // gone already, or unusable: remove what is left
        msqid_ds ds{};
        if (::msgctl(token_q_, IPC_STAT, &ds) != 0 || ds.msg_qnum == 0) break;
      }
    }
    if (first) {
      g_left_for_peer.Add(send_q_, recv_q_, token_q_, peer.identity());
      std::memcpy(sbuf_.text(), fin, n);
      sbuf_.type() = kFin;
      // Never blocks: if the queue is full, the peer learns from the missing token instead.
      (void)RetryEintr([&] { return ::msgsnd(send_q_, sbuf_.raw(), n, IPC_NOWAIT); });
    } else {
      for (int q : {send_q_, recv_q_, token_q_}) ::msgctl(q, IPC_RMID, nullptr);
    }
  }

 private:
  // One msgsnd or msgrcv (`call(flags)`, >= 0 on success; `empty` is its "would block" errno).
  // kFirst and kTry do not wait; kAgain first spins (kSpinFor: tries without blocking, yielding
  // between them), then blocks for a slice bounded by the thread's wake timer, or, where no
  // timer can be had, waits with the backoff and tries again without blocking.
  template <class F>
  static mq::QueueCall Call(Deadline d, mq::Attempt a, Backoff& backoff, int empty, const char* name, F call) {
    if (a == mq::Attempt::kFirst) backoff = Backoff();
    const bool block = a == mq::Attempt::kAgain;
    for (;;) {
      ThreadTimer* timer = nullptr;
      ssize_t r;
      if (block && backoff.InSpin() && !d.expired()) {
        sched_yield();
        r = call(IPC_NOWAIT);
        if (r < 0 && errno == empty) continue;
      } else if ((timer = block ? WakeTimer() : nullptr) != nullptr) {
        WakeAfter wake(timer, Slice(d));
        r = call(0);
      } else {
        if (block) backoff.Wait(d);
        r = call(IPC_NOWAIT);
      }
      if (r >= 0) return {mq::QueueCall::kMoved, static_cast<std::size_t>(r)};
      int err = errno;
      if (err == EINTR && timer == nullptr) continue;
      if (err == EINTR) err = empty;  // the slice ended: the core looks at the deadline and the peer
      if (err == E2BIG) return {mq::QueueCall::kTooBig};
      if (IsGone(err)) return {mq::QueueCall::kGone};
      if (err == empty) {
        mq::QueueCall out{mq::QueueCall::kNotYet};
        out.waited = block;
        return out;
      }
      mq::QueueCall out{mq::QueueCall::kFailed};
      out.err = err;
      out.call = name;
      return out;
    }
  }

  int send_q_, recv_q_, token_q_;
  Buffer sbuf_{ChunkLimit()}, rbuf_{ChunkLimit()};
  Backoff send_wait_, receive_wait_;             // one per direction: a sender and a receiver thread
  std::atomic<Clock::rep> last_token_check_{0};  // both threads ask
};

}  // namespace

// ---- listener ----------------------------------------------------------------------------

namespace {
// Listen queues this process has open. A queue whose last receiver is this process but which no
// listener here has open was abandoned (its Close could not remove it): Listen reclaims it.
mq::OpenListeners<int> g_open_here;
}  // namespace

struct Listener::State {
  std::string address;
  key_t key = 0;
  int q = -1;
  std::size_t max = kDefaultMaxMessage;
  bool closed = false;

  Status Close();  // idempotent; the endpoint's ClosingPtr calls it
};

Listener::Listener() = default;
Listener::Listener(std::unique_ptr<State> s) : s_(std::move(s)) {}
Listener::Listener(Listener&&) noexcept = default;
Listener& Listener::operator=(Listener&&) noexcept = default;
Listener::~Listener() = default;
Status Listener::Close() { return s_ ? s_->Close() : Ok(); }

const std::string& Listener::address() const {
  static const std::string kNone;
  return s_ ? s_->address : kNone;
}

std::vector<ResourceOwner> Listener::resource_owners() const {
  if (!s_ || s_->q < 0) return {};
  msqid_ds ds{};
  if (::msgctl(s_->q, IPC_STAT, &ds) != 0) return {};
  return {{"sysv msg queue " + s_->address, ds.msg_perm.uid, static_cast<mode_t>(ds.msg_perm.mode)}};
}

namespace {

Result<Connection> MakeConnection(int send_q, int recv_q, int token_q, const shm::ProcessIdentity& peer,
                                  std::size_t max, std::string label) {
  auto watch = shm::PeerWatch::Watch(peer);
  if (!watch.ok()) return Error{watch.error().code, label + ": watching the peer: " + watch.error().context};
  return Connection(std::make_unique<SysvQueues>(send_q, recv_q, token_q), std::move(*watch), max, std::move(label));
}

struct Request {
  int to_server = -1, to_client = -1, token = -1;
  shm::ProcessIdentity client;
  Result<Connection> Connect(std::size_t max, std::string label) const {
    return MakeConnection(to_client, to_server, token, client, max, std::move(label));
  }
};

// A connector's request: its three queues (to the server, to the client, token) and this process.
Buffer EncodeRequest(const int queues[3]) {
  Buffer req(kRequestSize);
  req.type() = kRequest;
  const auto self = shm::Self();
  PutU32(req.text(), kRequestMagic);
  for (int i = 0; i < 3; ++i) PutU32(req.text() + 4 + 4 * i, static_cast<uint32_t>(queues[i]));
  PutU32(req.text() + 16, self.pid);
  PutU32(req.text() + 20, static_cast<uint32_t>(self.start_time));
  PutU32(req.text() + 24, static_cast<uint32_t>(self.start_time >> 32));
  return req;
}

Result<Request> ParseRequest(const unsigned char* p, std::size_t n) {
  if (n != kRequestSize || GetU32(p) != kRequestMagic) return MakeError(Errc::Corrupt, "malformed connection request");
  Request r;
  r.to_server = static_cast<int>(GetU32(p + 4));
  r.to_client = static_cast<int>(GetU32(p + 8));
  r.token = static_cast<int>(GetU32(p + 12));
  r.client.pid = GetU32(p + 16);
  r.client.start_time = uint64_t{GetU32(p + 20)} | uint64_t{GetU32(p + 24)} << 32;
  return r;
}

// Looks at a request's three queues: 0 if all are private queues of ours, else the errno of
// the look (EIDRM/EINVAL: gone) or EPERM (not ours).
int CheckRequestQueues(const Request& r) {
  for (int q : {r.to_server, r.to_client, r.token}) {
    msqid_ds ds{};
    if (::msgctl(q, IPC_STAT, &ds) != 0) return errno;
    if (!CheckOwned(ds, "queue").ok() || ds.msg_perm.__key != IPC_PRIVATE) return EPERM;
  }
  return 0;
}

}  // namespace

Result<Connection> Listener::Accept(Deadline d) {
  if (!s_ || s_->closed) return MakeError(Errc::Closed, "sysv_mq accept: listener is closed");
  State& s = *s_;
  const std::string label = "sysv_mq " + s.address;
  const bool probe = d.expired();
  Buffer buf(kRequestSize);
  Backoff backoff;
  for (;;) {
    const ssize_t n = ::msgrcv(s.q, buf.raw(), kRequestSize, kRequest, IPC_NOWAIT);
    if (n >= 0) {
      auto r = ParseRequest(buf.text(), static_cast<std::size_t>(n));
      if (!r.ok()) continue;  // not a request of ours: dropped
      // The queues must be private queues of ours before we touch them.
      const int err = CheckRequestQueues(*r);
      if (err == 0) return r->Connect(s.max, label + " (server)");
      if (err != EPERM && !IsGone(err)) {
        // We could not look (out of memory, say): refuse this one, so its connector sees
        // PeerClosed rather than waiting, and say why.
        auto refused = r->Connect(s.max, "refused");
        if (refused.ok()) (void)refused->Close();
        return ErrnoError(label + ": msgctl IPC_STAT on a connection queue", err);
      }
      continue;  // gone, or not a connection of ours: dropped untouched
    }
    if (errno == EINTR) continue;
    if (errno == E2BIG) {
      // A message too big to be a request: take it off (truncated on purpose) so it cannot
      // block the listen queue.
      (void)::msgrcv(s.q, buf.raw(), 0, kRequest, IPC_NOWAIT | MSG_NOERROR);
      continue;
    }
    if (IsGone(errno)) return MakeError(Errc::Closed, label + ": the listen queue was removed");
    if (errno != ENOMSG) return ErrnoError(label + ": msgrcv");
    if (d.expired()) return MakeError(probe ? Errc::WouldBlock : Errc::Timeout, label + ": no connection to accept");
    backoff.Wait(d);
  }
}

Status Listener::State::Close() {
  g_left_for_peer.Reclaim();
  if (closed) return Ok();
  State& s = *this;
  s.closed = true;
  if (s.q < 0) return Ok();
  // Requests never accepted: refused as a server end closing (the connector sees PeerClosed).
  Buffer buf(kRequestSize);
  for (;;) {
    const ssize_t n = ::msgrcv(s.q, buf.raw(), kRequestSize, kRequest, IPC_NOWAIT | MSG_NOERROR);
    if (n < 0) {
      if (errno == EINTR) continue;
      break;
    }
    auto r = ParseRequest(buf.text(), static_cast<std::size_t>(n));
    if (!r.ok() || CheckRequestQueues(*r) != 0) continue;
    auto c = r->Connect(s.max, "refused");
    if (c.ok()) (void)c->Close();
  }
  ::msgctl(s.q, IPC_RMID, nullptr);
  g_open_here.Set(s.q, false);
  s.q = -1;
  return Ok();
}

std::string AddressFor(const std::string& token) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : token) h = (h ^ c) * 1099511628211ull;
  char buf[32];
  std::snprintf(buf, sizeof buf, "sysvmsg:0x%08x", static_cast<uint32_t>(h & 0x7fffffff) | 0x10000000u);
  return buf;
}

Result<key_t> ParseAddress(const std::string& address) {
  const std::string prefix = "sysvmsg:0x";
  if (address.compare(0, prefix.size(), prefix) != 0 || address.size() == prefix.size() ||
      address.size() > prefix.size() + 8) {
    return MakeError(Errc::InvalidArgument, "sysv_mq address '" + address + "': expected sysvmsg:0x<hex key>");
  }
  char* end = nullptr;
  const unsigned long v = std::strtoul(address.c_str() + prefix.size(), &end, 16);
  if (*end != '\0' || v == 0) {
    return MakeError(Errc::InvalidArgument, "sysv_mq address '" + address + "': expected a non-zero hex key");
  }
  return static_cast<key_t>(v);
}

namespace {
// A key's starting lock: a Listen holds it (flock) from its msgget to its beacon, so a queue
// without a beacon is a Listen starting only while the lock is held, and one whose maker died
// starting once it is not (the kernel drops a dead holder's lock). The lock file goes when the
// Listen is done; a Listen killed while holding it leaves the file, which the next takes.
class StartingLock {
 public:
  static Result<StartingLock> Take(key_t key, const std::string& label) {
    char path[64];
    std::snprintf(path, sizeof path, "/dev/shm/ipch-sysvmsg-%08x.starting", static_cast<unsigned>(key));
    for (;;) {
      UniqueFd fd(::open(path, O_CREAT | O_RDWR | O_CLOEXEC | O_NOFOLLOW, 0600));
      if (!fd) return ErrnoError(label + ": the starting lock " + path);
      if (RetryEintr([&] { return ::flock(fd.get(), LOCK_EX | LOCK_NB); }) != 0) {
        if (errno == EWOULDBLOCK)
          return MakeError(Errc::AlreadyExists, label + ": another listener is starting on this key");
        return ErrnoError(label + ": flock " + path);
      }
      struct stat held {
      }, named{};
      if (::fstat(fd.get(), &held) != 0) return ErrnoError(label + ": fstat " + path);
      // Its last holder may have removed it after we opened it: then the lock is on nothing.
      if (::stat(path, &named) != 0 || named.st_ino != held.st_ino) continue;
      if (held.st_uid != ::geteuid() || (held.st_mode & 077) != 0) {
        return MakeError(Errc::PermissionDenied, label + ": the starting lock " + path + " is not ours alone");
      }
      StartingLock l;
      l.path_ = path;
      l.fd_ = std::move(fd);
      return l;
    }
  }
  StartingLock() = default;
  StartingLock(StartingLock&&) noexcept = default;
  StartingLock& operator=(StartingLock&&) noexcept = default;
  ~StartingLock() {
    if (fd_) ::unlink(path_.c_str());  // held: nobody else is between msgget and beacon
  }

 private:
  std::string path_;
  UniqueFd fd_;
};

Listener MakeListener(const std::string& address, key_t key, int q, std::size_t max) {
  auto st = std::make_unique<Listener::State>();
  st->address = address;
  st->key = key;
  st->q = q;
  st->max = max;
  return Listener(std::move(st));
}
}  // namespace

Result<Listener> Listen(const std::string& address, std::size_t max_message_size) {
  g_left_for_peer.Reclaim();
  auto key = ParseAddress(address);
  if (!key.ok()) return std::move(key).error();
  const std::string label = "sysv_mq listen " + address;
  auto starting = StartingLock::Take(*key, label);
  if (!starting.ok()) return std::move(starting).error();
  int q = -1;
  for (int attempt = 0; q < 0; ++attempt) {
    q = ::msgget(*key, IPC_CREAT | IPC_EXCL | 0600);
    if (q >= 0) break;
    if (errno != EEXIST || attempt >= 2) return ErrnoError(label + ": msgget");
    // Taken: by a live listener, or left by a dead one.
    const int old = ::msgget(*key, 0);
    if (old < 0) continue;  // removed meanwhile
    msqid_ds ds{};
    if (::msgctl(old, IPC_STAT, &ds) != 0) continue;
    IPCH_RETURN_IF_ERROR(CheckOwned(ds, label + ": the queue at this key"));
    const auto who = ListenerOf(ds);
    if (!who.ok()) return Error{who.error().code, label + ": " + who.error().context};
    const uint32_t owner = who->pid;
    const bool abandoned_here = owner == static_cast<uint32_t>(::getpid()) && !g_open_here.Has(old);
    if (owner != 0 && !abandoned_here) {
      return MakeError(Errc::AlreadyExists, label + ": a live listener owns this key");
    }
    // Its listener is gone, or (no beacon, and we hold the starting lock) died starting: refuse
    // what it never accepted, then remove it.
    (void)MakeListener(address, *key, old, max_message_size).Close();
  }
  g_open_here.Set(q, true);
  Listener l = MakeListener(address, *key, q, max_message_size);
  // The beacon: receiving it makes us the queue's last receiver (msg_lrpid), which is how
  // connectors and later Listens know who listens.
  if (SendSure(q, kBeacon) != 0 || ReceiveSure(q, kBeacon) != 0) return ErrnoError(label + ": the beacon");
  return l;
}

Result<Connection> Connect(const std::string& address, Deadline d, std::size_t max_message_size) {
  g_left_for_peer.Reclaim();
  auto key = ParseAddress(address);
  if (!key.ok()) return std::move(key).error();
  const std::string label = "sysv_mq " + address + " (client)";
  const int lq = ::msgget(*key, 0);
  if (lq < 0) {
    if (errno == ENOENT) return MakeError(Errc::PeerClosed, label + ": no listener");
    return ErrnoError(label + ": msgget");
  }
  msqid_ds ds{};
  if (::msgctl(lq, IPC_STAT, &ds) != 0) {
    if (IsGone(errno)) return MakeError(Errc::PeerClosed, label + ": no listener");
    return ErrnoError(label + ": msgctl IPC_STAT");
  }
  IPCH_RETURN_IF_ERROR(CheckOwned(ds, label + ": the listen queue"));
  auto listener = ListenerOf(ds);
  if (!listener.ok()) return Error{listener.error().code, label + ": " + listener.error().context};
  if (listener->pid == 0) return MakeError(Errc::PeerClosed, label + ": the listener is gone");

  int queues[3] = {-1, -1, -1};  // to the server, to the client, token
  auto fail = [&](Error e) -> Result<Connection> {
    for (int q : queues) {
      if (q >= 0) ::msgctl(q, IPC_RMID, nullptr);
    }
    return e;
  };
  for (int& q : queues) {
    auto made = MakeQueue(label);
    if (!made.ok()) return fail(std::move(made).error());
    q = *made;
  }
  if (SendSure(queues[2], kToken) != 0) return fail(ErrnoError(label + ": msgsnd token"));

  Buffer req = EncodeRequest(queues);
  const bool probe = d.expired();
  auto watch = shm::PeerWatch::Watch(*listener);
  if (!watch.ok()) return fail(Error{watch.error().code, label + ": watching the listener: " + watch.error().context});
  Backoff backoff;
  for (;;) {
    if (::msgsnd(lq, req.raw(), kRequestSize, IPC_NOWAIT) == 0) break;
    if (errno == EINTR) continue;
    if (IsGone(errno)) return fail(MakeError(Errc::PeerClosed, label + ": the listener closed"));
    if (errno != EAGAIN) return fail(ErrnoError(label + ": msgsnd request"));
    if (!watch->Alive()) return fail(MakeError(Errc::PeerClosed, label + ": the listener is gone"));
    if (d.expired()) {
      return fail(MakeError(probe ? Errc::WouldBlock : Errc::Timeout, label + ": the listen queue stayed full"));
    }
    backoff.Wait(d);
  }
  auto conn = MakeConnection(queues[0], queues[1], queues[2], *listener, max_message_size, label);
  if (!conn.ok()) return fail(std::move(conn).error());
  return conn;
}

namespace {
std::mutex g_request_mu;
std::map<std::string, std::vector<int>> g_request_queues;  // by listener address: queues planted
}  // namespace

std::string_view Adapter::RequestImpostorDoesNotApply(RequestImpostor kind) {
  if (kind == RequestImpostor::Symlink || kind == RequestImpostor::RegularFile) {
    return "a request names SysV queues by id, not by path: nothing it names can be a link or a file";
  }
  return {};
}

Status Adapter::PlantRequestImpostor(const Listener& l, RequestImpostor kind) {
  if (!RequestImpostorDoesNotApply(kind).empty()) {
    return MakeError(Errc::InvalidArgument, std::string(RequestImpostorDoesNotApply(kind)));
  }
  auto lkey = ParseAddress(l.address());
  if (!lkey.ok()) return std::move(lkey).error();
  const int lq = ::msgget(*lkey, 0);
  if (lq < 0) return ErrnoError("plant: msgget " + l.address());
  std::lock_guard<std::mutex> lock(g_request_mu);
  std::vector<int>& planted = g_request_queues[l.address()];
  int ids[3];
  for (int& q : ids) {
    if (kind == RequestImpostor::OtherOwner) {
      auto made = MakeQueue("plant");
      if (!made.ok()) return std::move(made).error();
      q = *made;
      planted.push_back(q);
      msqid_ds ds{};
      if (::msgctl(q, IPC_STAT, &ds) != 0) return ErrnoError("plant: msgctl(IPC_STAT)");
      ds.msg_perm.uid = 65534;
      if (::msgctl(q, IPC_SET, &ds) != 0) return ErrnoError("plant: msgctl(IPC_SET)");
    } else {
      // Keyed, as a listen queue is; marked as ours like every queue we make.
      for (;;) {
        const key_t key = static_cast<key_t>(0x1c000000u | (wire::RandomWord() & 0xffffffu));
        q = ::msgget(key, IPC_CREAT | IPC_EXCL | 0600);
        if (q >= 0 || errno != EEXIST) break;
      }
      if (q < 0) return ErrnoError("plant: msgget");
      planted.push_back(q);
      if (SendSure(q, kMark) != 0 || ReceiveSure(q, kMark) != 0) return ErrnoError("plant: marking a queue");
    }
  }
  Buffer req = EncodeRequest(ids);
  if (::msgsnd(lq, req.raw(), kRequestSize, IPC_NOWAIT) != 0) return ErrnoError("plant: msgsnd request");
  return Ok();
}

void Adapter::RemoveRequestImpostors(const Listener& l) {
  std::lock_guard<std::mutex> lock(g_request_mu);
  auto it = g_request_queues.find(l.address());
  if (it == g_request_queues.end()) return;
  for (int q : it->second) ::msgctl(q, IPC_RMID, nullptr);
  g_request_queues.erase(it);
}

}  // namespace ipch::sysv_mq
