#include "posix_mq.h"

#include <dirent.h>
#include <fcntl.h>
#include <mqueue.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <deque>
#include <fstream>
#include <map>
#include <mutex>
#include <string_view>

#include "../mq/connection.h"
#include "../shm_ring/liveness.h"
#include "../stream/wire.h"
#include "rendezvous.h"

namespace ipch::posix_mq {
namespace {

using rendezvous::kRecordSize;
using rendezvous::kRequestSize;
using rendezvous::Request;
constexpr int kSureTries = 1000;

using wire::GetU32;
using wire::Hex;
using wire::PutU32;
using wire::RandomWord;

long ProcLimit(const char* path, long fallback) {
  std::ifstream in(path);
  long v = 0;
  return (in >> v) && v > 0 ? v : fallback;
}

// The attributes of a connection's data queues: 64 KiB and a header unread in each direction.
mq_attr DataAttr() {
  static const mq_attr a = [] {
    mq_attr r{};
    r.mq_maxmsg = std::min(10L, ProcLimit("/proc/sys/fs/mqueue/msg_max", 10));
    r.mq_msgsize = std::min(8192L, ProcLimit("/proc/sys/fs/mqueue/msgsize_max", 8192));
    return r;
  }();
  return a;
}

// Why mq_open refused to create a queue, naming the limit behind the errno.
Error CreateError(const std::string& what, const mq_attr* a, int err) {
  std::string why;
  if (err == EINVAL && a != nullptr) {
    why = "; asked for mq_maxmsg " + std::to_string(a->mq_maxmsg) + ", mq_msgsize " + std::to_string(a->mq_msgsize) +
          " (limits: /proc/sys/fs/mqueue/msg_max " + std::to_string(ProcLimit("/proc/sys/fs/mqueue/msg_max", -1)) +
          ", /proc/sys/fs/mqueue/msgsize_max " + std::to_string(ProcLimit("/proc/sys/fs/mqueue/msgsize_max", -1)) + ")";
  } else if (err == EMFILE) {
    why = "; the user's POSIX queue memory, RLIMIT_MSGQUEUE (ulimit -q), is reached, or the process's descriptor "
          "limit, RLIMIT_NOFILE";
  } else if (err == ENOSPC) {
    why = "; the system's POSIX queue limit, fs.mqueue.queues_max (" +
          std::to_string(ProcLimit("/proc/sys/fs/mqueue/queues_max", -1)) + " queues), is reached";
  }
  return Error{std::error_code(err, std::system_category()), what + ": " + std::strerror(err) + why};
}

bool IsGone(int err) { return err == EBADF || err == ENOENT; }

timespec RealtimeAfter(Clock::duration d) {
  timespec now{};
  ::clock_gettime(CLOCK_REALTIME, &now);
  const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(d).count();
  long long total = static_cast<long long>(now.tv_nsec) + ns % 1000000000;
  timespec t{now.tv_sec + static_cast<time_t>(ns / 1000000000 + total / 1000000000),
             static_cast<long>(total % 1000000000)};
  return t;
}
// The end of the next wait: the deadline or a slice, whichever is first (in the past for an
// expired deadline: a non-blocking try).
timespec SliceEnd(Deadline d) {
  if (d.expired()) return timespec{0, 0};
  return RealtimeAfter(std::min<Clock::duration>(d.remaining(), mq::kSlice));
}

// Owner and mode of an open queue or shm object: ours, nobody else's bits.
Status CheckOwned(int fd, const std::string& what) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) return ErrnoError(what + ": fstat");
  if (st.st_uid != ::geteuid()) {
    return MakeError(Errc::PermissionDenied, what + " belongs to uid " + std::to_string(st.st_uid));
  }
  if ((st.st_mode & 077) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", st.st_mode & 0777);
    return MakeError(Errc::PermissionDenied, what + " has mode " + mode + ", open to group or others");
  }
  return Ok();
}

// Listen names this process has open (a record of ours whose name is not here was abandoned).
mq::OpenListeners<std::string> g_open_here;

struct Record {
  bool initialised = false;
  shm::ProcessIdentity owner;
  time_t ctime = 0;
};

// Reads the owner record of `name`. ENOENT keeps its errno (the caller decides what it means).
Result<Record> ReadRecord(const std::string& name, const std::string& label) {
  const std::string rec = name + ".owner";
  UniqueFd fd(::shm_open(rec.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW, 0));
  if (!fd && errno == ELOOP)
    return MakeError(Errc::PermissionDenied, label + ": " + rec + " is a symlink; not followed");
  if (!fd) return ErrnoError(label + ": shm_open " + rec);
  IPCH_RETURN_IF_ERROR(CheckOwned(fd.get(), label + ": the owner record " + rec));
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return ErrnoError(label + ": fstat " + rec);
  Record r;
  r.ctime = st.st_ctime;
  if (st.st_size == 0) return r;  // a Listen between create and write, or killed there
  if (st.st_size != static_cast<off_t>(kRecordSize)) {
    return MakeError(Errc::Corrupt,
                     label + ": " + rec + " is not an owner record of ours (size " + std::to_string(st.st_size) + ")");
  }
  unsigned char b[kRecordSize];
  if (::pread(fd.get(), b, sizeof b, 0) != static_cast<ssize_t>(sizeof b)) return ErrnoError(label + ": read " + rec);
  auto owner = rendezvous::DecodeRecord(b, sizeof b, label + ": " + rec);
  if (!owner.ok()) return std::move(owner).error();
  r.initialised = true;
  r.owner = *owner;
  return r;
}

// Removes the connection queues of `name` left by connectors that are gone (names carry the
// connector's pid). Needs /dev/mqueue mounted; without it they stay until the reboot.
void SweepConnections(const std::string& name) {
  DIR* d = ::opendir("/dev/mqueue");
  if (!d) return;
  const std::string prefix = name.substr(1) + ".";
  while (dirent* e = ::readdir(d)) {
    const std::string n = e->d_name;
    if (n.compare(0, prefix.size(), prefix) != 0) continue;
    const long pid = std::strtol(n.c_str() + prefix.size(), nullptr, 10);
    if (pid > 0 && pid != ::getpid() && ::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) {
      ::mq_unlink(("/" + n).c_str());
    }
  }
  ::closedir(d);
}

// The temporary name a Listen writes its owner record under before it links it into place
// (`name`.owner.<pid>.new): a record is never seen half written, and one a killed Listen left
// names its dead maker.
std::string RecordDraft(const std::string& name, long pid) { return name + ".owner." + std::to_string(pid) + ".new"; }

// Removes the drafts of `name`'s owner record whose makers are gone.
void SweepDrafts(const std::string& name) {
  DIR* d = ::opendir("/dev/shm");
  if (!d) return;
  const std::string prefix = name.substr(1) + ".owner.";
  while (dirent* e = ::readdir(d)) {
    const std::string n = e->d_name;
    if (n.compare(0, prefix.size(), prefix) != 0) continue;
    char* end = nullptr;
    const long pid = std::strtol(n.c_str() + prefix.size(), &end, 10);
    if (pid > 0 && std::string_view(end) == ".new" && ::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) {
      ::shm_unlink(("/" + n).c_str());
    }
  }
  ::closedir(d);
}

// A queue descriptor is a file descriptor on Linux, and mq_close is close(2): one UniqueFd owns
// it. Closing with close(2) also lets ThreadSanitizer see the descriptor released: it does not
// intercept mq_close, and a number reused by another thread's shm_open or mq_open was reported
// as a race.
using Queue = UniqueFd;

}  // namespace

std::size_t Adapter::UnreadMessages() { return static_cast<std::size_t>(DataAttr().mq_maxmsg); }

namespace {
std::mutex g_impostors_mu;
std::map<std::string, Listener> g_linked;  // the live listeners planted links point to
}  // namespace

std::string_view Adapter::ImpostorDoesNotApply(Impostor kind) {
  if (kind == Impostor::Uninitialised) {
    return "an owner record created but never written is a listener starting (AlreadyExists) for 2 s and "
           "reclaimed after that (posix_mq.h): it is never refused as orphaned";
  }
  return {};
}

// Another uid's live record and queue; a record of the wrong size; the record's name linked to
// a live listener's record elsewhere (queue names cannot be links: /dev/mqueue holds none).
Status Adapter::PlantImpostor(const std::string& name, Impostor kind) {
  const std::string rec = name + ".owner";
  if (kind == Impostor::Symlink) {
    auto target = posix_mq::Listen(name + "-target");
    if (!target.ok()) return std::move(target).error();
    const std::string link = "/dev/shm" + rec, to = "/dev/shm" + name + "-target.owner";
    if (::symlink(to.c_str(), link.c_str()) != 0) return ErrnoError("plant: symlink " + link);
    std::lock_guard<std::mutex> lock(g_impostors_mu);
    g_linked[name] = std::move(*target);
    return Ok();
  }
  if (kind == Impostor::Uninitialised) return MakeError(Errc::InvalidArgument, std::string(ImpostorDoesNotApply(kind)));
  UniqueFd fd(::shm_open(rec.c_str(), O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (!fd) return ErrnoError("plant: shm_open " + rec);
  unsigned char b[kRecordSize];
  rendezvous::EncodeRecord(shm::Self(), b);
  const std::size_t n = kind == Impostor::WrongSize ? kRecordSize / 2 : kRecordSize;
  if (::pwrite(fd.get(), b, n, 0) != static_cast<ssize_t>(n)) return ErrnoError("plant: write " + rec);
  if (kind == Impostor::OtherOwner) {
    mq_attr attr{};
    attr.mq_maxmsg = 1;
    attr.mq_msgsize = kRequestSize;
    Queue q(::mq_open(name.c_str(), O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600, &attr));
    if (!q.valid()) return ErrnoError("plant: mq_open " + name);
    if (::fchown(fd.get(), 65534, 65534) != 0 || ::fchown(q.get(), 65534, 65534) != 0) {
      return ErrnoError("plant: chown " + name);
    }
  }
  return Ok();
}

void Adapter::RemoveImpostor(const std::string& name) {
  {
    std::lock_guard<std::mutex> lock(g_impostors_mu);
    g_linked.erase(name);  // closes the listener a link pointed to
  }
  ::shm_unlink((name + ".owner").c_str());
  ::mq_unlink(name.c_str());
}

// Data goes at priority 0; a foreign writer's message at a higher one overtakes it.
Status Adapter::PutQueueMessage(const Connection& to, ByteView message, QueueMessageType t) {
  const timespec now{0, 0};  // long past: never wait
  const unsigned prio = t == QueueMessageType::Peer ? 0 : 7;
  if (::mq_timedsend(to.incoming_queue(), reinterpret_cast<const char*>(message.data()), message.size(), prio, &now) !=
      0) {
    return ErrnoError("posix_mq: put a queue message of " + std::to_string(message.size()) + " bytes");
  }
  return Ok();
}

std::vector<Bytes> Adapter::QueueMessages(const Connection& to, const std::vector<Bytes>& messages) {
  mq_attr a{};
  if (::mq_getattr(to.incoming_queue(), &a) != 0) return {};
  return mq::EncodeMessages(messages, static_cast<std::size_t>(a.mq_msgsize));
}

// ---- connection: the queues of one connection, behind the shared core (mq/connection.h) ----

namespace {

// Two data queues and a one-message token queue. The timed calls block natively, so even a
// first attempt waits (for a slice at most): there is nothing to save by trying without it.
class PosixQueues final : public mq::Queues {
 public:
  explicit PosixQueues(std::size_t chunk) : sbuf_(chunk), rbuf_(chunk) {}

  Queue send_q, recv_q, token_q;
  std::vector<std::string> names;  // a connector's, unlinked at Close if nobody will accept

  std::size_t chunk_size() const override { return sbuf_.size(); }
  unsigned char* send_buffer() override { return sbuf_.data(); }
  unsigned char* receive_buffer() override { return rbuf_.data(); }
  int incoming() const override { return recv_q.get(); }

  mq::QueueCall Put(std::size_t n, Deadline d, mq::Attempt a) override {
    for (;;) {
      const timespec until = Until(d, a);
      if (::mq_timedsend(send_q.get(), reinterpret_cast<const char*>(sbuf_.data()), n, 0, &until) == 0) {
        return {mq::QueueCall::kMoved};
      }
      if (errno != EINTR) return Failed(errno, "mq_timedsend", until);
    }
  }
  mq::QueueCall Take(Deadline d, mq::Attempt a) override {
    for (;;) {
      const timespec until = Until(d, a);
      unsigned prio = 0;
      const ssize_t n =
          ::mq_timedreceive(recv_q.get(), reinterpret_cast<char*>(rbuf_.data()), rbuf_.size(), &prio, &until);
      // The peer sends everything at priority 0; anything else was written by someone else.
      if (n >= 0) return {prio == 0 ? mq::QueueCall::kMoved : mq::QueueCall::kForeign, static_cast<std::size_t>(n)};
      if (errno == EMSGSIZE) return {mq::QueueCall::kTooBig};
      if (errno != EINTR) return Failed(errno, "mq_timedreceive", until);
    }
  }
  bool PeerTookToken() override {
    mq_attr a{};
    return ::mq_getattr(token_q.get(), &a) == 0 && a.mq_curmsgs == 0;
  }
  void Close(const unsigned char* fin, std::size_t n, const shm::PeerWatch& peer) override {
    // FIN after everything we sent (never blocks: if the queue is full, the taken token says it).
    const timespec now{0, 0};
    (void)RetryEintr([&] { return ::mq_timedsend(send_q.get(), reinterpret_cast<const char*>(fin), n, 0, &now); });
    // Take one token: the peer sees the token queue empty once it was ours to take. A peer that
    // closed first took it already, and that is fine too.
    char tok[1];
    (void)RetryEintr([&] { return ::mq_timedreceive(token_q.get(), tok, 1, nullptr, &now); });
    // Names are the acceptor's to unlink, unless nobody will accept: the listener is gone.
    if (!peer.Alive()) {
      for (const auto& name : names) ::mq_unlink(name.c_str());  // ENOENT once accepted: harmless
    }
    send_q.reset();
    recv_q.reset();
    token_q.reset();
  }

 private:
  // The end of this call's wait: a slice or the deadline, whichever is first (now for a try or
  // an expired deadline: a non-blocking call).
  static timespec Until(Deadline d, mq::Attempt a) { return a == mq::Attempt::kTry ? timespec{0, 0} : SliceEnd(d); }
  static mq::QueueCall Failed(int err, const char* call, const timespec& until) {
    if (IsGone(err)) return {mq::QueueCall::kGone};
    if (err == ETIMEDOUT || err == EAGAIN) {
      mq::QueueCall r{mq::QueueCall::kNotYet};
      r.waited = until.tv_sec != 0 || until.tv_nsec != 0;
      return r;
    }
    mq::QueueCall r{mq::QueueCall::kFailed};
    r.err = err;
    r.call = call;
    return r;
  }

  std::vector<unsigned char> sbuf_, rbuf_;
};

}  // namespace

// ---- listener --------------------------------------------------------------------------------

struct Listener::State {
  std::string name;
  Queue q;
  bool record_ours = false;
  std::size_t max = kDefaultMaxMessage;
  bool closed = false;
  // Requests taken off the listen queue that an Accept could not take up for want of memory or
  // descriptors here: their connectors wait on, and the next Accept tries them first.
  std::deque<Request> pending;

  Status Close();  // idempotent; the endpoint's ClosingPtr calls it
};

namespace {

// Opens the three queues a request names, checks they are ours, and builds the server end.
// `refuse` closes it at once (the connector sees PeerClosed). Names are unlinked either way.
Result<Connection> TakeRequest(const Request& r, std::size_t max, const std::string& label) {
  const std::string names[3] = {r.base + ".up", r.base + ".dn", r.base + ".tk"};
  Queue qs[3];
  Status st;
  for (int i = 0; i < 3 && st.ok(); ++i) {
    qs[i] = Queue(::mq_open(names[i].c_str(), O_RDWR | O_CLOEXEC));
    if (!qs[i].valid()) {
      st = errno == ENOENT ? MakeError(Errc::PeerClosed, label + ": the connector is gone")
                           : ErrnoError(label + ": mq_open " + names[i]);
    } else {
      st = CheckOwned(qs[i].get(), label + ": " + names[i]);
    }
  }
  // Both ends have them, or nobody will; but another's queues are not ours to remove, and a
  // request this process was too short of memory or descriptors to take up stays takeable.
  if (st.ok() || st.Is(Errc::PeerClosed) || st.Is(Errc::Corrupt)) {
    for (const auto& n : names) ::mq_unlink(n.c_str());
  }
  if (!st.ok()) return std::move(st).error();
  mq_attr a{};
  if (::mq_getattr(qs[0].get(), &a) != 0 || a.mq_msgsize < static_cast<long>(mq::kChunkHeaderSize + 1)) {
    return MakeError(Errc::Corrupt, label + ": the connection queues are not ours");
  }
  auto watch = shm::PeerWatch::Watch(r.client);
  if (!watch.ok()) return Error{watch.error().code, label + ": watching the peer: " + watch.error().context};
  auto q = std::make_unique<PosixQueues>(static_cast<std::size_t>(a.mq_msgsize));
  q->send_q = std::move(qs[1]);
  q->recv_q = std::move(qs[0]);
  q->token_q = std::move(qs[2]);
  return Connection(std::move(q), std::move(*watch), max, label);
}

}  // namespace

Listener::Listener() = default;
Listener::Listener(std::unique_ptr<State> s) : s_(std::move(s)) {}
Listener::Listener(Listener&&) noexcept = default;
Listener& Listener::operator=(Listener&&) noexcept = default;
Listener::~Listener() = default;
Status Listener::Close() { return s_ ? s_->Close() : Ok(); }

const std::string& Listener::address() const {
  static const std::string kNone;
  return s_ ? s_->name : kNone;
}

std::vector<std::filesystem::path> Listener::resource_paths() const {
  if (!s_) return {};
  std::vector<std::filesystem::path> out{"/dev/shm" + s_->name + ".owner"};
  struct stat st {};
  if (::stat("/dev/mqueue", &st) == 0) out.emplace_back("/dev/mqueue" + s_->name);
  return out;
}

Result<Connection> Listener::Accept(Deadline d) {
  if (!s_ || s_->closed) return MakeError(Errc::Closed, "posix_mq accept: listener is closed");
  State& s = *s_;
  const std::string label = "posix_mq " + s.name;
  const bool probe = d.expired();
  unsigned char buf[kRequestSize];
  // One this process could not take up before, first: it is the oldest.
  while (!s.pending.empty()) {
    auto c = TakeRequest(s.pending.front(), s.max, label + " (server)");
    if (!c.ok() && !(c.Is(Errc::PeerClosed) || c.Is(Errc::PermissionDenied) || c.Is(Errc::Corrupt))) {
      return std::move(c).error();  // still short: it waits on
    }
    s.pending.pop_front();
    if (c.ok()) return c;
  }
  for (;;) {
    const timespec until = d.expired() ? timespec{0, 0} : RealtimeAfter(d.remaining());
    const ssize_t n = ::mq_timedreceive(s.q.get(), reinterpret_cast<char*>(buf), sizeof buf, nullptr, &until);
    if (n < 0) {
      const int err = errno;
      if (err == EINTR || err == EAGAIN) continue;
      if (err == ETIMEDOUT) {
        if (!d.expired()) continue;  // CLOCK_REALTIME stepped: wait out the steady deadline
        return MakeError(probe ? Errc::WouldBlock : Errc::Timeout, label + ": no connection to accept");
      }
      return ErrnoError(label + ": mq_timedreceive", err);
    }
    auto r = rendezvous::ParseRequest(s.name, buf, static_cast<std::size_t>(n));
    if (!r.ok()) continue;  // not a request of ours: dropped
    auto c = TakeRequest(*r, s.max, label + " (server)");
    if (c.ok()) return c;
    if (c.Is(Errc::PeerClosed) || c.Is(Errc::PermissionDenied) || c.Is(Errc::Corrupt)) continue;
    // We could not take it up (out of memory, descriptors): say so, and keep it for the next
    // Accept; its connector waits on.
    s.pending.push_back(std::move(*r));
    return std::move(c).error();
  }
}

Status Listener::State::Close() {
  if (closed) return Ok();
  State& s = *this;
  s.closed = true;
  if (s.q.valid()) {
    // Requests never accepted: refused as a server end closing (the connector sees PeerClosed).
    for (const auto& r : s.pending) {
      auto c = TakeRequest(r, s.max, "refused");
      if (c.ok()) (void)c->Close();
      for (const char* end : {".up", ".dn", ".tk"}) ::mq_unlink((r.base + end).c_str());  // taken up or not
    }
    s.pending.clear();
    unsigned char buf[kRequestSize];
    const timespec now{0, 0};
    for (;;) {
      const ssize_t n = ::mq_timedreceive(s.q.get(), reinterpret_cast<char*>(buf), sizeof buf, nullptr, &now);
      if (n < 0) {
        if (errno == EINTR) continue;
        break;
      }
      auto r = rendezvous::ParseRequest(s.name, buf, static_cast<std::size_t>(n));
      if (!r.ok()) continue;
      auto c = TakeRequest(*r, s.max, "refused");
      if (c.ok()) (void)c->Close();
    }
    s.q.reset();
    ::mq_unlink(s.name.c_str());
    // The queues of connectors killed before their request came count against this user's
    // RLIMIT_MSGQUEUE until someone removes them: now nobody will accept them. (Not at Accept:
    // a dead connector's request may be waiting in the listen queue, and must still be heard.)
    SweepConnections(s.name);
  }
  if (s.record_ours) ::shm_unlink((s.name + ".owner").c_str());
  g_open_here.Set(s.name, false);
  return Ok();
}

Result<Listener> Listen(const std::string& name, std::size_t max_message_size) {
  const std::string label = "posix_mq listen " + name;
  if (name.size() < 2 || name[0] != '/' || name.find('/', 1) != std::string::npos || name.size() + 40 > NAME_MAX) {
    return MakeError(Errc::InvalidArgument, label + ": expected \"/name\" of at most " + std::to_string(NAME_MAX - 40) +
                                                " bytes, without further slashes");
  }
  const std::string rec = name + ".owner";
  auto st = std::make_unique<Listener::State>();
  Listener::State& s = *st;
  s.name = name;
  s.max = max_message_size;
  Listener l(std::move(st));  // from here on, its destructor undoes what we did
  SweepDrafts(name);
  // The record is written whole under this process's draft name, then linked into place: the
  // name is taken only by a complete record, and a Listen killed before the link leaves a draft
  // that names its dead maker (swept above by the next Listen).
  const std::string draft = RecordDraft(name, ::getpid());
  {
    ::shm_unlink(draft.c_str());  // a draft of ours from a Listen that failed: this pid is alive, it is us
    UniqueFd fd(::shm_open(draft.c_str(), O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC | O_NOFOLLOW, 0600));
    if (!fd) return ErrnoError(label + ": shm_open " + draft);
    unsigned char b[kRecordSize];
    rendezvous::EncodeRecord(shm::Self(), b);
    if (RetryEintr([&] { return ::pwrite(fd.get(), b, sizeof b, 0); }) != static_cast<ssize_t>(sizeof b)) {
      const int err = errno;
      ::shm_unlink(draft.c_str());
      return ErrnoError(label + ": write " + draft, err);
    }
  }
  struct DraftGone {
    const std::string& draft;
    ~DraftGone() { ::shm_unlink(draft.c_str()); }
  } draft_gone{draft};
  for (int attempt = 0;; ++attempt) {
    if (::link(("/dev/shm" + draft).c_str(), ("/dev/shm" + rec).c_str()) == 0) break;
    if (errno != EEXIST || attempt >= 2) return ErrnoError(label + ": link " + draft + " to " + rec);
    // Taken: by a live listener, or left by a dead one (or abandoned by this process).
    auto r = ReadRecord(name, label);
    if (!r.ok()) {
      if (r.error().code == std::error_code(ENOENT, std::system_category())) continue;  // gone meanwhile
      // Not a record of ours: a foreign object holds the name, and it is not ours to remove.
      if (r.error().Is(Errc::Corrupt)) return MakeError(Errc::AlreadyExists, r.error().context);
      return std::move(r).error();
    }
    if (!r->initialised) {
      if (::time(nullptr) - r->ctime < 2) {
        return MakeError(Errc::AlreadyExists, label + ": another listener is starting on this name");
      }
    } else {
      auto w = shm::PeerWatch::Watch(r->owner);
      if (!w.ok()) return Error{w.error().code, label + ": " + w.error().context};
      const bool abandoned_here = r->owner.pid == static_cast<uint32_t>(::getpid()) && !g_open_here.Has(name);
      if (w->Alive() && !abandoned_here) {
        return MakeError(Errc::AlreadyExists, label + ": a live listener owns this name");
      }
    }
    ::mq_unlink(name.c_str());  // its listen queue, and the queues of its dead connectors
    SweepConnections(name);
    ::shm_unlink(rec.c_str());
  }
  s.record_ours = true;
  g_open_here.Set(name, true);
  mq_attr attr{};
  attr.mq_maxmsg = std::min(10L, ProcLimit("/proc/sys/fs/mqueue/msg_max", 10));
  attr.mq_msgsize = kRequestSize;
  for (int attempt = 0;; ++attempt) {
    s.q = Queue(::mq_open(name.c_str(), O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600, &attr));
    if (s.q.valid()) break;
    if (errno != EEXIST || attempt >= 1) return CreateError(label + ": mq_open", &attr, errno);
    ::mq_unlink(name.c_str());  // a queue without its record: a dead listener's, the name is ours now
  }
  return l;
}

Result<Connection> Connect(const std::string& name, Deadline d, std::size_t max_message_size) {
  const std::string label = "posix_mq " + name + " (client)";
  if (name.size() < 2 || name[0] != '/' || name.find('/', 1) != std::string::npos || name.size() + 40 > NAME_MAX) {
    return MakeError(Errc::InvalidArgument, label + ": expected \"/name\" without further slashes");
  }
  auto r = ReadRecord(name, label);
  if (!r.ok()) {
    if (r.error().code == std::error_code(ENOENT, std::system_category())) {
      return MakeError(Errc::PeerClosed, label + ": no listener");
    }
    return std::move(r).error();
  }
  if (!r->initialised) return MakeError(Errc::PeerClosed, label + ": the listener is not ready (or died starting)");
  auto watch = shm::PeerWatch::Watch(r->owner);
  if (!watch.ok()) return Error{watch.error().code, label + ": watching the listener: " + watch.error().context};
  if (!watch->Alive()) return MakeError(Errc::PeerClosed, label + ": the listener is gone");
  Queue lq(::mq_open(name.c_str(), O_WRONLY | O_CLOEXEC));
  if (!lq.valid()) {
    if (errno == ENOENT) return MakeError(Errc::PeerClosed, label + ": no listener");
    return ErrnoError(label + ": mq_open " + name);
  }
  IPCH_RETURN_IF_ERROR(CheckOwned(lq.get(), label + ": the listen queue"));

  static std::atomic<uint32_t> counter{0};
  const std::string base =
      name + "." + std::to_string(::getpid()) + "." + std::to_string(counter.fetch_add(1)) + "." + Hex(RandomWord(), 8);
  mq_attr data = DataAttr(), token{};
  token.mq_maxmsg = 1;
  token.mq_msgsize = 1;
  auto cs = std::make_unique<PosixQueues>(static_cast<std::size_t>(data.mq_msgsize));
  cs->names = {base + ".up", base + ".dn", base + ".tk"};
  // On any failure below, the names made so far go (the queues close with `cs`).
  auto fail = [&](Error e) -> Result<Connection> {
    for (const auto& n : cs->names) ::mq_unlink(n.c_str());
    return e;
  };
  Queue* slots[3] = {&cs->send_q, &cs->recv_q, &cs->token_q};
  for (int i = 0; i < 3; ++i) {
    mq_attr* a = i < 2 ? &data : &token;
    *slots[i] = Queue(::mq_open(cs->names[i].c_str(), O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600, a));
    if (!slots[i]->valid()) return fail(CreateError(label + ": mq_open " + cs->names[i], a, errno));
  }
  const timespec now{0, 0};
  for (int tries = 0; ::mq_timedsend(cs->token_q.get(), "", 0, 0, &now) != 0;) {
    // A new, empty one-message queue has room: anything but an interruption is an error, and a
    // "full" answer is retried a while (only an injected fault can give it).
    if (errno != EINTR && !((errno == ETIMEDOUT || errno == EAGAIN) && ++tries < kSureTries)) {
      return fail(ErrnoError(label + ": the close token"));
    }
  }
  unsigned char req[kRequestSize];
  rendezvous::EncodeRequest(shm::Self(), base, req);
  const bool probe = d.expired();
  for (;;) {
    const timespec until = SliceEnd(d);
    if (::mq_timedsend(lq.get(), reinterpret_cast<const char*>(req), sizeof req, 0, &until) == 0) break;
    const int err = errno;
    if (err == EINTR) continue;
    if (err != ETIMEDOUT && err != EAGAIN) return fail(ErrnoError(label + ": mq_timedsend request", err));
    if (!watch->Alive()) return fail(MakeError(Errc::PeerClosed, label + ": the listener is gone"));
    if (d.expired()) {
      return fail(MakeError(probe ? Errc::WouldBlock : Errc::Timeout, label + ": the listen queue stayed full"));
    }
  }
  return Connection(std::move(cs), std::move(*watch), max_message_size, label);
}

namespace {
std::map<std::string, std::vector<std::string>> g_request_names;  // by listener: queues planted
}  // namespace

std::string_view Adapter::RequestImpostorDoesNotApply(RequestImpostor kind) {
  if (kind == RequestImpostor::Symlink || kind == RequestImpostor::RegularFile) {
    return "a request names POSIX queues, and the queue filesystem holds nothing but queues: no name there "
           "can be a link or a regular file";
  }
  return {};
}

Status Adapter::PlantRequestImpostor(const Listener& l, RequestImpostor kind) {
  if (!RequestImpostorDoesNotApply(kind).empty()) {
    return MakeError(Errc::InvalidArgument, std::string(RequestImpostorDoesNotApply(kind)));
  }
  static std::atomic<uint32_t> counter{0};
  const std::string& name = l.address();
  // Another uid's: a base a connector of this listener could have made. Outside: live queues of
  // ours under another listen name.
  const std::string base = name + (kind == RequestImpostor::Outside ? "-outside." : ".") + std::to_string(::getpid()) +
                           "." + std::to_string(counter.fetch_add(1)) + ".badc0de";
  std::lock_guard<std::mutex> lock(g_impostors_mu);
  std::vector<std::string>& planted = g_request_names[name];
  for (const char* suffix : {".up", ".dn", ".tk"}) {
    const std::string q = base + suffix;
    mq_attr attr{};
    attr.mq_maxmsg = 1;
    attr.mq_msgsize = 64;
    Queue made(::mq_open(q.c_str(), O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600, &attr));
    if (!made.valid()) return ErrnoError("plant: mq_open " + q);
    planted.push_back(q);
    if (kind == RequestImpostor::OtherOwner && ::fchown(made.get(), 65534, 65534) != 0) {
      return ErrnoError("plant: chown " + q);
    }
  }
  unsigned char req[kRequestSize];
  rendezvous::EncodeRequest(shm::Self(), base, req);
  Queue lq(::mq_open(name.c_str(), O_WRONLY | O_CLOEXEC));
  if (!lq.valid()) return ErrnoError("plant: mq_open " + name);
  const timespec now{0, 0};
  if (::mq_timedsend(lq.get(), reinterpret_cast<const char*>(req), sizeof req, 0, &now) != 0) {
    return ErrnoError("plant: the request on " + name);
  }
  return Ok();
}

void Adapter::RemoveRequestImpostors(const Listener& l) {
  std::lock_guard<std::mutex> lock(g_impostors_mu);
  auto it = g_request_names.find(l.address());
  if (it == g_request_names.end()) return;
  for (const std::string& q : it->second) ::mq_unlink(q.c_str());
  g_request_names.erase(it);
}

}  // namespace ipch::posix_mq
