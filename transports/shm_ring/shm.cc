#include "shm.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <type_traits>
#include <vector>

#include "ipch/unique_fd.h"
#include "liveness.h"
#include "ring.h"

namespace ipch::shm {
namespace {

constexpr char kRendezvousMagic[8] = {'I', 'P', 'C', 'H', 'R', 'D', 'V', '1'};
constexpr char kConnMagic[8] = {'I', 'P', 'C', 'H', 'C', 'O', 'N', '1'};
constexpr uint32_t kVersion = 2;  // 2: records published by their header word, no shared tail
constexpr uint32_t kSlots = 60;
constexpr std::size_t kPage = 4096;

// One end's identity and state in a connection segment, in its own 128-byte block.
struct Side {
  alignas(128) std::atomic<uint32_t> pid;  // stored last (release): non-zero means the rest is valid
  std::atomic<uint32_t> closed;            // 0 open, 1 closed; anything else is corrupt
  std::atomic<uint64_t> start_time;
};

struct ConnHeader {
  char magic[8];
  uint32_t version;
  uint32_t capacity;
  uint64_t segment_size;
  Side side[2];  // [0] the connector (creator), [1] the acceptor
};
static_assert(sizeof(ConnHeader) <= kPage);
constexpr std::size_t kCtlOffset = kPage;       // RingControl[2]: [0] client→server, [1] server→client
constexpr std::size_t kDataOffset = 2 * kPage;  // ring data, client→server then server→client
static_assert(2 * sizeof(RingControl) <= kPage);

// Slot word: state in the low 8 bits; the rest is the claimer's pid (Claimed) or the offer's
// ticket (Offered, Accepting, Refused). Tickets are unique per rendezvous, so a compare-and-swap
// on the word can never act on a later offer that reused the slot.
enum SlotState : uint64_t { kFree = 0, kClaimed = 1, kOffered = 2, kAccepting = 3, kRefused = 4 };
inline uint64_t Word(uint64_t hi, SlotState s) { return hi << 8 | s; }

struct Slot {
  alignas(64) std::atomic<uint64_t> word;
  std::atomic<int64_t> handle;  // SysV: the connection segment's shmid; POSIX: unused (the ticket names it)
  std::atomic<uint32_t> capacity;
  std::atomic<uint32_t> pid;  // the connector, which created the segment
};

struct RendezvousHeader {
  char magic[8];
  uint32_t version;
  uint32_t slot_count;
  std::atomic<uint32_t> owner_pid;
  std::atomic<uint32_t> closed;
  std::atomic<uint64_t> owner_start;
  std::atomic<uint64_t> next_ticket;
  alignas(64) std::atomic<uint32_t> doorbell;  // +1 per offer; the acceptor sleeps on it
  std::atomic<uint32_t> acceptor_waiting;
  alignas(64) std::atomic<uint32_t> slot_freed;  // +1 per freed slot; connectors with a full table sleep on it
  std::atomic<uint32_t> connector_waiting;
  Slot slots[kSlots];
};
constexpr std::size_t kRendezvousSize = (sizeof(RendezvousHeader) + kPage - 1) / kPage * kPage;

std::atomic<bool> g_hook_armed{false};
std::function<void()>& Hook() {
  static std::function<void()> f;
  return f;
}

// Ring publication (see ring.h): after a seq_cst store of the counter, the sequence word is
// bumped only if the other end may be asleep.
void WakeIfWaiting(std::atomic<uint32_t>& seq, std::atomic<uint32_t>& waiting) {
  if (waiting.load(std::memory_order_seq_cst) != 0) {
    seq.fetch_add(1, std::memory_order_seq_cst);
    FutexWake(seq);
  }
}

// Rendezvous words: the condition is a slot word, so the sequence word is always bumped after it.
void Bump(std::atomic<uint32_t>& seq, std::atomic<uint32_t>& waiting) {
  seq.fetch_add(1, std::memory_order_seq_cst);
  if (waiting.load(std::memory_order_seq_cst) != 0) FutexWake(seq);
}

// Sleeps until `attempt` reports done (true) or an error, `check` reports an error, or the
// deadline passes (WouldBlock if it had passed on entry, else Timeout). See ring.h for why no
// wake-up can be lost between the last attempt and the futex wait. With a spinner, it first
// spins polling `ready` (a look of one or two loads, nothing to undo, that says when `attempt`
// is worth calling), or `attempt` itself when `ready` is nullptr.
template <class Ready, class Attempt, class Check>
Status WaitFor(std::atomic<uint32_t>& seq, std::atomic<uint32_t>& waiting, Spinner* spinner, Ready ready, Deadline d,
               std::chrono::milliseconds slice, const char* what, Attempt attempt, Check check) {
  // One attempt, then the peer check; if the check fails, one more attempt, because the peer
  // may have published and then closed (its messages come first).
  auto attempt_then_check = [&]() -> Result<bool> {
    Result<bool> r = attempt();
    if (!r.ok() || *r) return r;
    Status c = check();
    if (c.ok()) return false;
    r = attempt();
    if (!r.ok() || *r) return r;
    return std::move(c).error();
  };
  Result<bool> r = attempt();
  if (!r.ok() || *r) return r.ok() ? Ok() : Status(std::move(r).error());
  if (d.expired()) {
    r = attempt_then_check();
    if (!r.ok() || *r) return r.ok() ? Ok() : Status(std::move(r).error());
    return MakeError(Errc::WouldBlock, std::string(what) + ": nothing ready and the deadline has passed");
  }
  if constexpr (std::is_null_pointer_v<Ready>) {
    if (spinner && spinner->Spin([&] {
          r = attempt();
          return !r.ok() || *r;
        })) {
      return r.ok() ? Ok() : Status(std::move(r).error());
    }
  } else if (spinner && spinner->Spin(ready)) {
    r = attempt();
    if (!r.ok() || *r) return r.ok() ? Ok() : Status(std::move(r).error());
  }
  for (;;) {
    waiting.fetch_add(1, std::memory_order_seq_cst);
    const uint32_t s = seq.load(std::memory_order_seq_cst);
    r = attempt_then_check();
    if (!r.ok() || *r) {
      waiting.fetch_sub(1, std::memory_order_relaxed);
      return r.ok() ? Ok() : Status(std::move(r).error());
    }
    if (d.expired()) {
      waiting.fetch_sub(1, std::memory_order_relaxed);
      return MakeError(Errc::Timeout, std::string(what) + ": deadline passed");
    }
    auto left = d.never() ? Clock::duration(slice) : std::min<Clock::duration>(d.remaining(), slice);
    FutexWait(seq, s, std::chrono::duration_cast<std::chrono::nanoseconds>(left));
    waiting.fetch_sub(1, std::memory_order_relaxed);
  }
}

bool ProcessGone(uint32_t pid) {
  if (pid == 0 || pid > static_cast<uint32_t>(INT32_MAX)) return true;
  return ::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH;
}

uint64_t Fnv1a(const std::string& s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}

SegmentName ConnName(const SegmentName& rdv, uint64_t ticket, int64_t shmid) {
  SegmentName n;
  n.backing = rdv.backing;
  if (rdv.backing == Backing::Posix) {
    n.posix = rdv.posix + ".c" + std::to_string(ticket);
  } else {
    n.key = IPC_PRIVATE;
    n.shmid = static_cast<int>(shmid);
  }
  return n;
}

// Removes the connection segment of an offer nobody will accept. A SysV id comes from shared
// memory, so it is removed only if it really is such a segment: private, ours, of the offered
// size, created by the connector that offered it.
void RemoveOffered(const SegmentName& rdv, const Slot& slot, uint64_t ticket) {
  const int64_t handle = slot.handle.load(std::memory_order_relaxed);
  SegmentName cn = ConnName(rdv, ticket, handle);
  if (rdv.backing == Backing::Sysv) {
    const uint32_t cap = slot.capacity.load(std::memory_order_relaxed);
    SegmentInfo info;
    if (handle < 0 || handle > INT32_MAX || !ValidCapacity(cap) || !StatSegment(cn, &info).ok() ||
        !CheckOwnerOnly(cn, info).ok() || info.keyed || info.size != kDataOffset + 2 * std::size_t{cap} ||
        static_cast<uint32_t>(info.creator) != slot.pid.load(std::memory_order_relaxed)) {
      return;
    }
  }
  (void)RemoveSegment(cn);
}

uint64_t RandomTicket() {
  uint64_t t = 0;
  if (::getrandom(&t, sizeof t, 0) != static_cast<ssize_t>(sizeof t)) t = static_cast<uint64_t>(::getpid()) << 32;
  return t & ((uint64_t{1} << 48) - 1);  // room for 2^56 - 2^48 connections before the mask wraps
}

// Whether a slot of `rh` offers (or is accepting) the segment of `ticket`.
bool Offered(const RendezvousHeader* rh, uint64_t ticket) {
  for (uint32_t i = 0; i < kSlots; ++i) {
    const uint64_t w = rh->slots[i].word.load(std::memory_order_acquire);
    if (((w & 0xff) == kOffered || (w & 0xff) == kAccepting) && (w >> 8) == ticket) return true;
  }
  return false;
}

// Removes the POSIX connection segments of rendezvous `rdv` ("<name>.c<ticket>") whose connector
// is dead and that were never accepted, unless a slot of `rh` offers them (null: none can be, the
// rendezvous being new or closed): what a connector killed between making its segment and
// offering it leaves. The drafts of dead makers go too. A SysV connection segment is private:
// nothing names it but the offer, so one never offered is beyond reach (docs/architecture.md).
void SweepDeadConnectors(const SegmentName& rdv, const RendezvousHeader* rh) {
  if (rdv.backing != Backing::Posix) return;
  SweepDrafts(rdv.posix);
  DIR* d = ::opendir("/dev/shm");
  if (!d) return;
  const std::string prefix = rdv.posix.substr(1) + ".c";
  std::vector<uint64_t> tickets;
  while (dirent* e = ::readdir(d)) {
    const std::string n = e->d_name;
    if (n.size() <= prefix.size() || n.compare(0, prefix.size(), prefix) != 0) continue;
    char* end = nullptr;
    const uint64_t t = std::strtoull(n.c_str() + prefix.size(), &end, 10);
    if (*end == '\0' && std::isdigit(static_cast<unsigned char>(n[prefix.size()]))) tickets.push_back(t);
  }
  ::closedir(d);
  for (const uint64_t t : tickets) {
    if (rh != nullptr && Offered(rh, t)) continue;
    SegmentName cn = ConnName(rdv, t, -1);
    UniqueFd fd(::shm_open(cn.posix.c_str(), O_RDONLY | O_CLOEXEC, 0));
    struct stat st {};
    if (!fd || ::fstat(fd.get(), &st) != 0 || st.st_uid != ::geteuid() ||
        st.st_size < static_cast<off_t>(sizeof(ConnHeader))) {
      continue;
    }
    void* p = ::mmap(nullptr, sizeof(ConnHeader), PROT_READ, MAP_SHARED, fd.get(), 0);
    if (p == MAP_FAILED) continue;
    const auto* h = static_cast<const ConnHeader*>(p);
    const bool ours = std::memcmp(h->magic, kConnMagic, sizeof kConnMagic) == 0;
    const ProcessIdentity maker{h->side[0].pid.load(std::memory_order_acquire), h->side[0].start_time.load()};
    const bool accepted = h->side[1].pid.load(std::memory_order_acquire) != 0;
    ::munmap(p, sizeof(ConnHeader));
    if (!ours || accepted || maker.pid == 0 || PeerWatch::Open(maker).Alive()) continue;
    cn.ino = st.st_ino;  // never another's segment that took the name since
    (void)RemoveSegment(cn);
  }
}

Status CheckConnHeader(const ConnHeader* h, uint32_t capacity, std::size_t size, const std::string& what) {
  if (std::memcmp(h->magic, kConnMagic, sizeof kConnMagic) != 0 || h->version != kVersion || h->capacity != capacity ||
      h->segment_size != size) {
    return MakeError(Errc::Corrupt, what + ": not a valid ipch connection segment (magic, version or sizes)");
  }
  return Ok();
}

// A connector's half of a fresh connection header, written before anyone can see the segment.
void InitConnHeader(ConnHeader* h, uint32_t capacity, std::size_t size, const ProcessIdentity& self) {
  std::memcpy(h->magic, kConnMagic, sizeof kConnMagic);
  h->version = kVersion;
  h->capacity = capacity;
  h->segment_size = size;
  h->side[0].start_time.store(self.start_time, std::memory_order_relaxed);
  h->side[0].pid.store(self.pid, std::memory_order_release);
}

// Offers the segment in a slot the connector `pid` has claimed, and rings the doorbell.
void PublishOffer(RendezvousHeader* rh, Slot& slot, int64_t handle, uint32_t capacity, uint32_t pid, uint64_t ticket) {
  slot.handle.store(handle, std::memory_order_relaxed);
  slot.capacity.store(capacity, std::memory_order_relaxed);
  slot.pid.store(pid, std::memory_order_relaxed);
  slot.word.store(Word(ticket, kOffered), std::memory_order_release);
  Bump(rh->doorbell, rh->acceptor_waiting);
}

}  // namespace

// ---------------------------------------------------------------------------------------------
struct Connection::State {
  Status Close();  // idempotent; the endpoint's ClosingPtr calls it

  MappedRegion seg;
  ConnHeader* hdr = nullptr;
  int me = 0;  // 0 connector, 1 acceptor
  RingControl* tx = nullptr;
  RingControl* rx = nullptr;
  std::span<std::byte> tx_data, rx_data;
  uint32_t capacity = 0;
  Options opts;
  std::string what;

  // Producer side (Send): our own tail, the last head we validated.
  uint64_t tail = 0;
  uint64_t head_seen = 0;
  Spinner tx_spin;
  // Consumer side (Receive): our own head.
  uint64_t head = 0;
  Spinner rx_spin;

  std::atomic<bool> closed{false};
  std::atomic<bool> corrupt{false};
  std::string corrupt_why;  // written once, before `corrupt` is set

  // Peer liveness (slow path, either thread).
  std::mutex mu;
  bool watching = false;
  PeerWatch watch;
  // Connector, until it learns it was accepted: the rendezvous and its offer.
  MappedRegion rdv;
  RendezvousHeader* rh = nullptr;
  int slot = -1;
  uint64_t ticket = 0;
  SegmentName conn_name;
  PeerWatch listener;

  Side& mine() { return hdr->side[me]; }
  Side& peer() { return hdr->side[1 - me]; }

  Status Corrupt(Error e) {
    if (!corrupt.load(std::memory_order_acquire)) {
      std::lock_guard<std::mutex> lock(mu);
      if (!corrupt.load(std::memory_order_relaxed)) {
        corrupt_why = e.context;
        corrupt.store(true, std::memory_order_release);
      }
    }
    return e;
  }
  Status Sticky() const {
    if (closed.load(std::memory_order_relaxed)) return MakeError(Errc::Closed, what + ": connection is closed");
    if (corrupt.load(std::memory_order_acquire)) return MakeError(Errc::Corrupt, what + ": " + corrupt_why);
    return Ok();
  }

  // The peer's state: cheap flag check always, liveness (a syscall) only when `slow`.
  Status PeerState(bool slow) {
    const uint32_t c = peer().closed.load(std::memory_order_acquire);
    if (c > 1) return Corrupt(MakeError(Errc::Corrupt, what + ": peer's closed flag holds " + std::to_string(c)));
    if (c == 1) return MakeError(Errc::PeerClosed, what + ": peer closed the connection");
    if (!slow) return Ok();
    std::lock_guard<std::mutex> lock(mu);
    if (!watching) {
      const uint32_t pid = peer().pid.load(std::memory_order_acquire);
      if (pid == 0) {
        if (me == 1) return MakeError(Errc::Corrupt, what + ": peer's pid was erased");
        return PendingState();
      }
      watch = PeerWatch::Open({pid, peer().start_time.load(std::memory_order_relaxed)});
      watching = true;
      ReleaseOffer(false);  // accepted: the rendezvous is no longer needed
    }
    if (!watch.Alive()) {
      return MakeError(Errc::PeerClosed, what + ": peer process " + std::to_string(watch.pid()) + " died");
    }
    return Ok();
  }

  // Connector not yet accepted: the listener must still be there.
  Status PendingState() {
    if (!rh) return MakeError(Errc::PeerClosed, what + ": listener went away before accepting");
    const uint64_t w = rh->slots[slot].word.load(std::memory_order_acquire);
    if (w == Word(ticket, kRefused) || rh->closed.load(std::memory_order_acquire) != 0) {
      return MakeError(Errc::PeerClosed, what + ": listener closed before accepting this connection");
    }
    if (!listener.Alive()) {
      return MakeError(Errc::PeerClosed,
                       what + ": listener process " + std::to_string(listener.pid()) + " died before accepting");
    }
    return Ok();
  }

  // Forgets the offer. An offer nobody accepted stays for the listener to accept (it may hold
  // messages, like a closed socket in a backlog) unless the listener is dead or closed: then we
  // withdraw it and remove its segment name. Caller holds `mu` or is the only user.
  void ReleaseOffer(bool withdraw_if_listener_gone) {
    if (!rh) return;
    auto& s = rh->slots[slot];
    const bool gone = rh->closed.load(std::memory_order_acquire) != 0 || !listener.Alive();
    uint64_t w = Word(ticket, kOffered);
    if (withdraw_if_listener_gone && gone && s.word.compare_exchange_strong(w, kFree, std::memory_order_acq_rel)) {
      (void)RemoveSegment(conn_name);
      Bump(rh->slot_freed, rh->connector_waiting);
    } else {
      w = Word(ticket, kRefused);
      s.word.compare_exchange_strong(w, kFree, std::memory_order_acq_rel);
    }
    rh = nullptr;
    rdv.reset();
  }
};

Connection::Connection() = default;
Connection::Connection(std::unique_ptr<State> s) : s_(std::move(s)) {}
Connection::Connection(Connection&&) noexcept = default;
Connection& Connection::operator=(Connection&&) noexcept = default;
Connection::~Connection() = default;
Status Connection::Close() { return s_ ? s_->Close() : Ok(); }

std::size_t Connection::max_message_size() const { return s_ ? MaxMessage(s_->capacity) : 0; }
std::span<std::byte> Connection::shared_bytes() const { return s_ ? s_->seg.bytes() : std::span<std::byte>(); }

void SetMidPublishHook(std::function<void()> f) {
  Hook() = std::move(f);
  g_hook_armed.store(true, std::memory_order_release);
}

Status Connection::Send(ByteView msg, Deadline d) {
  if (!s_) return MakeError(Errc::Closed, "shm send: connection is closed");
  State& s = *s_;
  IPCH_RETURN_IF_ERROR(s.Sticky());
  if (msg.size() > MaxMessage(s.capacity)) {
    return MakeError(Errc::MessageTooLarge, s.what + ": message of " + std::to_string(msg.size()) +
                                                " bytes exceeds the maximum " + std::to_string(MaxMessage(s.capacity)));
  }
  IPCH_RETURN_IF_ERROR(s.PeerState(false));
  const uint64_t need = RoomFor(msg.size());
  auto fits_behind = [&](uint64_t head) { return s.capacity - (s.tail - head) >= need; };
  auto has_room = [&]() -> Result<bool> {
    if (fits_behind(s.head_seen)) return true;
    const uint64_t h = s.tx->head.load(std::memory_order_seq_cst);
    Status ok = CheckHead(s.head_seen, h, s.tail, s.capacity);
    if (!ok.ok()) return s.Corrupt(std::move(ok).error()).error();
    s.head_seen = h;
    return fits_behind(h);
  };
  // The spin's look: the published head taken on trust; has_room checks it before it counts.
  auto room_published = [&] { return fits_behind(s.tx->head.load(std::memory_order_acquire)); };
  IPCH_RETURN_IF_ERROR(WaitFor(s.tx->space_seq, s.tx->producer_waiting, &s.tx_spin, room_published, d,
                               s.opts.liveness_interval, "shm send", has_room, [&] { return s.PeerState(true); }));
  const uint64_t next = PutRecord(s.tx_data, s.tail, msg);
  if (g_hook_armed.load(std::memory_order_acquire) && g_hook_armed.exchange(false)) Hook()();
  PublishRecord(s.tx_data, s.tail, msg.size());  // the header word, last: the record is whole
  s.tail = next;
  WakeIfWaiting(s.tx->data_seq, s.tx->consumer_waiting);
  return Ok();
}

Status Connection::Receive(Bytes& out, Deadline d) {
  if (!s_) return MakeError(Errc::Closed, "shm receive: connection is closed");
  State& s = *s_;
  IPCH_RETURN_IF_ERROR(s.Sticky());
  auto take = [&]() -> Result<bool> {
    const uint64_t word = LoadHeader(s.rx_data, s.head);
    if (word == 0) return false;
    auto next = TakeRecord(s.rx_data, s.head, word, out);
    if (!next.ok()) return s.Corrupt(std::move(next).error()).error();
    s.head = *next;
    s.rx->head.store(s.head, std::memory_order_seq_cst);  // the space may now be reused
    WakeIfWaiting(s.rx->space_seq, s.rx->producer_waiting);
    return true;
  };
  auto published = [&] { return LoadHeader(s.rx_data, s.head) != 0; };
  return WaitFor(s.rx->data_seq, s.rx->consumer_waiting, &s.rx_spin, published, d, s.opts.liveness_interval,
                 "shm receive", take, [&] { return s.PeerState(true); });
}

Status Connection::State::Close() {
  if (closed.exchange(true)) return Ok();
  State& s = *this;
  s.mine().closed.store(1, std::memory_order_release);
  // Wake the peer wherever it sleeps: for data on our outgoing ring, for space on our incoming one.
  s.tx->data_seq.fetch_add(1, std::memory_order_seq_cst);
  FutexWake(s.tx->data_seq);
  s.rx->space_seq.fetch_add(1, std::memory_order_seq_cst);
  FutexWake(s.rx->space_seq);
  {
    std::lock_guard<std::mutex> lock(s.mu);
    s.ReleaseOffer(/*withdraw_if_listener_gone=*/s.hdr->side[1].pid.load(std::memory_order_acquire) == 0);
  }
  s.seg.reset();
  return Ok();
}

// ---------------------------------------------------------------------------------------------
struct Listener::State {
  SegmentName name;
  MappedRegion seg;
  RendezvousHeader* rh = nullptr;
  std::string address;
  Options opts;
  bool closed = false;
  Spinner spin;

  Status Close();  // idempotent; the endpoint's ClosingPtr calls it
};

Listener::Listener() = default;
Listener::Listener(std::unique_ptr<State> s) : s_(std::move(s)) {}
Listener::Listener(Listener&&) noexcept = default;
Listener& Listener::operator=(Listener&&) noexcept = default;
Listener::~Listener() = default;
Status Listener::Close() { return s_ ? s_->Close() : Ok(); }

const std::string& Listener::address() const {
  static const std::string empty;
  return s_ ? s_->address : empty;
}

std::vector<std::filesystem::path> Listener::resource_paths() const {
  if (!s_ || s_->closed || s_->name.backing != Backing::Posix) return {};
  return {std::filesystem::path("/dev/shm") / s_->name.posix.substr(1)};
}

std::vector<ResourceOwner> Listener::resource_owners() const {
  if (!s_ || s_->closed) return {};
  SegmentName n = s_->name;
  SegmentInfo info;
  if (!StatSegment(n, &info).ok()) return {};
  return {ResourceOwner{std::string(BackingName(n.backing)) + " " + n.ToString(), info.uid, info.mode}};
}

Status Listener::State::Close() {
  if (closed) return Ok();
  State& s = *this;
  s.closed = true;
  RendezvousHeader* rh = s.rh;
  rh->closed.store(1, std::memory_order_seq_cst);
  // Refuse every offer nobody accepted and remove its segment; its connector sees PeerClosed.
  for (uint32_t i = 0; i < kSlots; ++i) {
    auto& slot = rh->slots[i];
    uint64_t w = slot.word.load(std::memory_order_acquire);
    if ((w & 0xff) != kOffered) continue;
    if (slot.word.compare_exchange_strong(w, Word(w >> 8, kRefused), std::memory_order_acq_rel)) {
      RemoveOffered(s.name, slot, w >> 8);
    }
  }
  Bump(rh->slot_freed, rh->connector_waiting);
  Status st = RemoveSegment(s.name);
  SweepDeadConnectors(s.name, nullptr);  // every offer is refused: none is offered any more
  s.seg.reset();
  s.rh = nullptr;
  return st;
}

Result<Connection> Listener::Accept(Deadline d) {
  if (!s_ || s_->closed) return MakeError(Errc::Closed, "shm accept: listener is closed");
  State& ls = *s_;
  RendezvousHeader* rh = ls.rh;
  const std::string what = std::string(BackingName(ls.name.backing)) + " accept " + ls.address;
  Result<Connection> accepted = MakeError(Errc::Timeout, what);
  // A connector killed before it offered its segment leaves it behind; each Accept clears them.
  SweepDeadConnectors(ls.name, rh);

  auto free_slot = [&](Slot& slot) {
    slot.word.store(kFree, std::memory_order_release);
    Bump(rh->slot_freed, rh->connector_waiting);
  };
  // Takes over the offer in `slot` (already marked Accepting) and maps its segment.
  auto take = [&](Slot& slot, uint64_t ticket) -> Result<Connection> {
    const uint32_t cap = slot.capacity.load(std::memory_order_relaxed);
    const int64_t handle = slot.handle.load(std::memory_order_relaxed);
    if (!ValidCapacity(cap))
      return MakeError(Errc::Corrupt, what + ": offer with ring capacity " + std::to_string(cap));
    if (ls.name.backing == Backing::Sysv && (handle < 0 || handle > INT32_MAX))
      return MakeError(Errc::Corrupt, what + ": offer with segment id " + std::to_string(handle));
    SegmentName cn = ConnName(ls.name, ticket, handle);
    const std::size_t size = ConnectionSize(cap);
    if (cn.backing == Backing::Sysv) {
      SegmentInfo info;
      IPCH_RETURN_IF_ERROR(StatSegment(cn, &info));
      IPCH_RETURN_IF_ERROR(CheckOwnerOnly(cn, info));
      if (info.keyed) {
        return MakeError(Errc::Corrupt, what + ": offered segment " + cn.ToString() +
                                            " has a key: a connector's segment is private, this one is someone's");
      }
      if (info.size != size) {
        return MakeError(Errc::Corrupt, what + ": offered segment has " + std::to_string(info.size) +
                                            " bytes, expected " + std::to_string(size));
      }
    }
    auto region = MapSegment(cn, size);
    if (!region.ok()) return std::move(region).error();
    auto* h = reinterpret_cast<ConnHeader*>(region->data());
    IPCH_RETURN_IF_ERROR(CheckConnHeader(h, cap, size, what));
    auto st = std::make_unique<Connection::State>();
    st->me = 1;
    st->hdr = h;
    st->capacity = cap;
    st->opts = ls.opts;
    st->what = std::string(BackingName(cn.backing)) + " " + ls.address + " (server)";
    auto* ctl = reinterpret_cast<RingControl*>(region->data() + kCtlOffset);
    st->rx = &ctl[0];
    st->tx = &ctl[1];
    st->rx_data = {region->data() + kDataOffset, cap};
    st->tx_data = {region->data() + kDataOffset + cap, cap};
    // Both rings start at position 0. The connector may have sent already (records in our
    // incoming ring), but it never consumes from or writes into the ring we produce on, and no
    // one consumes from ours before we exist.
    if (st->rx->head.load(std::memory_order_acquire) != 0 || st->tx->head.load(std::memory_order_acquire) != 0 ||
        LoadHeader(st->tx_data, 0) != 0) {
      return MakeError(Errc::Corrupt, what + ": fresh connection segment has non-zero acceptor counters or records");
    }
    const uint32_t peer_pid = h->side[0].pid.load(std::memory_order_acquire);
    st->watch = PeerWatch::Open({peer_pid, h->side[0].start_time.load(std::memory_order_relaxed)});
    st->watching = true;
    const ProcessIdentity self = Self();
    h->side[1].start_time.store(self.start_time, std::memory_order_relaxed);
    h->side[1].pid.store(self.pid, std::memory_order_release);
    (void)RemoveSegment(cn);  // both ends have it mapped: it goes away with the last of them
    st->seg = std::move(*region);
    return Connection(std::move(st));
  };
  auto attempt = [&]() -> Result<bool> {
    for (uint32_t i = 0; i < kSlots; ++i) {
      Slot& slot = rh->slots[i];
      uint64_t w = slot.word.load(std::memory_order_acquire);
      switch (w & 0xff) {
        case kFree:
        case kAccepting:
          continue;
        case kRefused:  // freed by its connector; one that died first leaves it to us
          if (ProcessGone(slot.pid.load(std::memory_order_relaxed)) &&
              slot.word.compare_exchange_strong(w, kFree, std::memory_order_acq_rel)) {
            Bump(rh->slot_freed, rh->connector_waiting);
          }
          continue;
        case kClaimed:  // a connector died between claiming and offering: free the slot
          if (ProcessGone(static_cast<uint32_t>(w >> 8)) &&
              slot.word.compare_exchange_strong(w, kFree, std::memory_order_acq_rel)) {
            Bump(rh->slot_freed, rh->connector_waiting);
          }
          continue;
        case kOffered:
          if (!slot.word.compare_exchange_strong(w, Word(w >> 8, kAccepting), std::memory_order_acq_rel)) continue;
          accepted = take(slot, w >> 8);
          if (accepted.ok()) {
            free_slot(slot);
            return true;
          }
          if (!(accepted.Is(Errc::Corrupt) || accepted.Is(Errc::PermissionDenied) || accepted.Is(Errc::PeerClosed))) {
            // This process is short of memory or descriptors: the offer is good, so it stays
            // offered (its connector waits on) for the next Accept, and this one says why.
            slot.word.store(w, std::memory_order_release);
            return true;
          }
          // A hostile or vanished offer is refused (its connector, if it is one, sees PeerClosed
          // and frees the slot) and removed, and the next one looked at.
          RemoveOffered(ls.name, slot, w >> 8);  // a bad offer must not linger
          slot.word.store(Word(w >> 8, kRefused), std::memory_order_release);
          continue;
        default:  // garbage from a hostile connector: reset the slot, keep serving
          if (slot.word.compare_exchange_strong(w, kFree, std::memory_order_acq_rel)) {
            Bump(rh->slot_freed, rh->connector_waiting);
          }
          continue;
      }
    }
    return false;
  };
  IPCH_RETURN_IF_ERROR(WaitFor(rh->doorbell, rh->acceptor_waiting, &ls.spin, nullptr, d, ls.opts.liveness_interval,
                               "shm accept", attempt, [] { return Ok(); }));
  return accepted;
}

// ---------------------------------------------------------------------------------------------
std::size_t RendezvousSize() { return kRendezvousSize; }
std::size_t ConnectionSize(uint32_t cap) { return kDataOffset + 2 * std::size_t{cap}; }

std::string AddressFor(Backing b, const std::string& token) {
  if (b == Backing::Posix) return "/" + token;
  uint32_t key = static_cast<uint32_t>(Fnv1a(token) & 0x7fffffff);
  if (key == 0) key = 1;
  char buf[32];
  std::snprintf(buf, sizeof buf, "sysv:0x%08x", key);
  return buf;
}

Result<SegmentName> ParseAddress(Backing b, const std::string& address) {
  SegmentName n;
  n.backing = b;
  if (b == Backing::Posix) {
    // One leading '/', no other; short enough to leave room for the ".c<ticket>" suffix.
    if (address.size() < 2 || address[0] != '/' || address.find('/', 1) != std::string::npos || address.size() > 200) {
      return MakeError(Errc::InvalidArgument,
                       "posix_shm address '" + address + "': must be '/name' (1..199 bytes, no further '/')");
    }
    n.posix = address;
    return n;
  }
  unsigned long long key = 0;
  char tail = 0;
  if (address.rfind("sysv:", 0) != 0 || std::sscanf(address.c_str() + 5, "%llx%c", &key, &tail) != 1 || key == 0 ||
      key > 0x7fffffffull) {
    return MakeError(Errc::InvalidArgument,
                     "sysv_shm address '" + address + "': must be 'sysv:0x<key>' with a key in 1..0x7fffffff");
  }
  n.key = static_cast<key_t>(key);
  return n;
}

Result<Listener> Listen(Backing b, const std::string& address, Options o) {
  auto parsed = ParseAddress(b, address);
  if (!parsed.ok()) return std::move(parsed).error();
  const std::string what = std::string(BackingName(b)) + " listen " + address;
  if (b == Backing::Posix) SweepDrafts(parsed->posix);
  for (int attempt = 0; attempt < 3; ++attempt) {
    auto created = CreateSegment(*parsed, kRendezvousSize, [](std::byte* bytes) {
      auto* rh = reinterpret_cast<RendezvousHeader*>(bytes);
      std::memcpy(rh->magic, kRendezvousMagic, sizeof kRendezvousMagic);
      rh->version = kVersion;
      rh->slot_count = kSlots;
      // Tickets name POSIX connection segments: a generation starts from a random one, so that a
      // segment a killed connector of an earlier generation left never holds a new one's name.
      rh->next_ticket.store(RandomTicket(), std::memory_order_relaxed);
      const ProcessIdentity self = Self();
      rh->owner_start.store(self.start_time, std::memory_order_relaxed);
      rh->owner_pid.store(self.pid, std::memory_order_release);  // last: a non-zero owner means initialised
    });
    if (created.ok()) {
      auto st = std::make_unique<Listener::State>();
      st->name = created->name;
      st->seg = std::move(created->region);
      st->address = address;
      st->opts = o;
      st->rh = reinterpret_cast<RendezvousHeader*>(st->seg.data());
      SweepDeadConnectors(st->name, nullptr);  // a dead generation's: nothing of it is offered any more
      return Listener(std::move(st));
    }
    if (!created.Is(Errc::AlreadyExists)) return std::move(created).error();
    // Something holds the name: ours to reclaim only if it is our kind and its owner is gone.
    SegmentName existing = *parsed;
    SegmentInfo info;
    Status st = StatSegment(existing, &info);
    if (st.Is(Errc::PeerClosed)) continue;  // vanished meanwhile
    IPCH_RETURN_IF_ERROR(st);
    IPCH_RETURN_IF_ERROR(CheckOwnerOnly(existing, info));
    if (info.size != kRendezvousSize) {
      return MakeError(Errc::AlreadyExists, what + ": " + existing.ToString() + " exists with " +
                                                std::to_string(info.size) +
                                                " bytes; not an ipch rendezvous, refusing to remove it");
    }
    auto region = MapSegment(existing, kRendezvousSize);
    if (region.Is(Errc::PeerClosed)) continue;
    if (!region.ok()) return std::move(region).error();
    auto* rh = reinterpret_cast<RendezvousHeader*>(region->data());
    const uint32_t owner_pid = rh->owner_pid.load(std::memory_order_acquire);
    static const char kBlank[8] = {};
    const bool ours = std::memcmp(rh->magic, kRendezvousMagic, sizeof kRendezvousMagic) == 0;
    const bool blank = std::memcmp(rh->magic, kBlank, sizeof kBlank) == 0;
    if ((!ours && !blank) || (ours && rh->version != kVersion)) {
      return MakeError(Errc::AlreadyExists, what + ": " + existing.ToString() +
                                                " exists and is not an ipch rendezvous of this version; refusing to "
                                                "remove it");
    }
    if (blank || owner_pid == 0) {
      // Never initialised: its creator died between creating and initialising it, or is doing so now.
      if (b == Backing::Sysv && ProcessGone(static_cast<uint32_t>(info.creator))) {
        region->reset();
        IPCH_RETURN_IF_ERROR(RemoveSegment(existing));
        continue;
      }
      const std::string why = b == Backing::Sysv
                                  ? "its creator (pid " + std::to_string(info.creator) + ") is still alive"
                                  : "POSIX records no creator to check";
      const std::string how =
          b == Backing::Sysv ? "ipcrm -m " + std::to_string(existing.shmid) : "rm /dev/shm" + existing.posix;
      return MakeError(Errc::OrphanedResource, what + ": " + existing.ToString() +
                                                   " was created but never initialised and " + why + "; remove it (" +
                                                   how + ") if no listener is starting there");
    }
    const PeerWatch owner = PeerWatch::Open({owner_pid, rh->owner_start.load()});
    if (owner.Alive() && rh->closed.load() == 0) {
      return MakeError(Errc::AlreadyExists, what + ": a live listener (pid " + std::to_string(owner.pid()) + ") owns " +
                                                existing.ToString());
    }
    // Dead or closed owner: reclaim, with the segments of offers it never accepted.
    for (uint32_t i = 0; i < kSlots; ++i) {
      const uint64_t w = rh->slots[i].word.load(std::memory_order_acquire);
      const uint64_t state = w & 0xff;
      if (state == kOffered || state == kAccepting || state == kRefused) RemoveOffered(existing, rh->slots[i], w >> 8);
    }
    region->reset();
    IPCH_RETURN_IF_ERROR(RemoveSegment(existing));
  }
  return MakeError(Errc::AlreadyExists, what + ": the name keeps being taken");
}

Result<Connection> Connect(Backing b, const std::string& address, Deadline d, Options o) {
  auto parsed = ParseAddress(b, address);
  if (!parsed.ok()) return std::move(parsed).error();
  if (!ValidCapacity(o.ring_capacity)) {
    return MakeError(Errc::InvalidArgument, "shm connect: ring capacity " + std::to_string(o.ring_capacity) +
                                                " is not a power of two in [4096, 2^30]");
  }
  const std::string what = std::string(BackingName(b)) + " connect " + address;
  SegmentName rname = *parsed;
  SegmentInfo info;
  IPCH_RETURN_IF_ERROR(StatSegment(rname, &info));
  IPCH_RETURN_IF_ERROR(CheckOwnerOnly(rname, info));
  if (info.size != kRendezvousSize) {
    return MakeError(Errc::Corrupt, what + ": " + rname.ToString() + " has " + std::to_string(info.size) +
                                        " bytes; not an ipch rendezvous");
  }
  auto rdv = MapSegment(rname, kRendezvousSize);
  if (!rdv.ok()) return std::move(rdv).error();
  auto* rh = reinterpret_cast<RendezvousHeader*>(rdv->data());
  const uint32_t owner_pid = rh->owner_pid.load(std::memory_order_acquire);  // non-zero: initialised
  if (owner_pid == 0 || std::memcmp(rh->magic, kRendezvousMagic, sizeof kRendezvousMagic) != 0 ||
      rh->version != kVersion || rh->slot_count != kSlots) {
    return MakeError(Errc::Corrupt, what + ": " + rname.ToString() + " is not an initialised ipch rendezvous");
  }
  if (rh->closed.load(std::memory_order_acquire) != 0)
    return MakeError(Errc::PeerClosed, what + ": the listener has closed");
  PeerWatch listener = PeerWatch::Open({owner_pid, rh->owner_start.load()});
  if (!listener.Alive())
    return MakeError(Errc::PeerClosed, what + ": the listener (pid " + std::to_string(listener.pid()) + ") is dead");

  // Our connection segment, initialised before anyone can see it.
  const std::size_t size = ConnectionSize(o.ring_capacity);
  const ProcessIdentity self = Self();
  uint64_t ticket = 0;
  Result<Created> created = MakeError(Errc::AlreadyExists, what);
  for (int i = 0; i < 3 && created.Is(Errc::AlreadyExists); ++i) {
    ticket = rh->next_ticket.fetch_add(1, std::memory_order_relaxed) & ((uint64_t{1} << 56) - 1);
    created = CreateSegment(ConnName(rname, ticket, -1), size, [&](std::byte* bytes) {
      InitConnHeader(reinterpret_cast<ConnHeader*>(bytes), o.ring_capacity, size, self);
    });
  }
  if (!created.ok()) return std::move(created).error();
  SegmentName cname = created->name;
  auto st = std::make_unique<Connection::State>();
  st->seg = std::move(created->region);
  auto* h = reinterpret_cast<ConnHeader*>(st->seg.data());
  st->me = 0;
  st->hdr = h;
  st->capacity = o.ring_capacity;
  st->opts = o;
  st->what = std::string(BackingName(b)) + " " + address + " (client)";
  auto* ctl = reinterpret_cast<RingControl*>(st->seg.data() + kCtlOffset);
  st->tx = &ctl[0];
  st->rx = &ctl[1];
  st->tx_data = {st->seg.data() + kDataOffset, o.ring_capacity};
  st->rx_data = {st->seg.data() + kDataOffset + o.ring_capacity, o.ring_capacity};
  auto remove_on_failure = [&](Error e) -> Error {
    (void)RemoveSegment(cname);
    return e;
  };

  // Claim a slot, fill it, offer it.
  int claimed = -1;
  auto claim = [&]() -> Result<bool> {
    for (uint32_t i = 0; i < kSlots; ++i) {
      uint64_t expected = kFree;
      if (rh->slots[i].word.compare_exchange_strong(expected, Word(self.pid, kClaimed), std::memory_order_acq_rel)) {
        claimed = static_cast<int>(i);
        return true;
      }
    }
    return false;
  };
  auto listener_state = [&]() -> Status {
    if (rh->closed.load(std::memory_order_acquire) != 0)
      return MakeError(Errc::PeerClosed, what + ": the listener has closed");
    if (!listener.Alive()) return MakeError(Errc::PeerClosed, what + ": the listener died");
    return Ok();
  };
  Status got = WaitFor(rh->slot_freed, rh->connector_waiting, nullptr, nullptr, d, o.liveness_interval, "shm connect",
                       claim, listener_state);
  if (!got.ok()) {
    if (got.Is(Errc::Timeout) || got.Is(Errc::WouldBlock)) {
      return remove_on_failure(MakeError(got.Is(Errc::Timeout) ? Errc::Timeout : Errc::WouldBlock,
                                         what + ": all " + std::to_string(kSlots) + " backlog slots are taken"));
    }
    return remove_on_failure(std::move(got).error());
  }
  Slot& slot = rh->slots[claimed];
  PublishOffer(rh, slot, b == Backing::Sysv ? cname.shmid : 0, o.ring_capacity, self.pid, ticket);

  st->rdv = std::move(*rdv);
  st->rh = rh;
  st->slot = claimed;
  st->ticket = ticket;
  st->conn_name = cname;
  st->listener = std::move(listener);
  return Connection(std::move(st));
}

// ---------------------------------------------------------------------------------------------
namespace {
std::mutex g_linked_mu;
std::map<std::string, Listener> g_linked;  // the live listeners planted links point to
}  // namespace

Status PlantImpostor(Backing b, const std::string& address, Impostor kind) {
  auto parsed = ParseAddress(b, address);
  if (!parsed.ok()) return std::move(parsed).error();
  if (kind == Impostor::Symlink) {
    if (b != Backing::Posix) return MakeError(Errc::InvalidArgument, "plant: SysV segments have no paths to link");
    auto target = Listen(b, address + "-target");
    if (!target.ok()) return std::move(target).error();
    const std::string path = "/dev/shm" + parsed->posix;
    if (::symlink(("/dev/shm" + parsed->posix + "-target").c_str(), path.c_str()) != 0) {
      return ErrnoError("plant: symlink " + path);
    }
    std::lock_guard<std::mutex> lock(g_linked_mu);
    g_linked[address] = std::move(*target);
    return Ok();
  }
  const std::size_t size = kind == Impostor::WrongSize ? kRendezvousSize / 2 : kRendezvousSize;
  auto created = CreateSegment(*parsed, size);
  if (!created.ok()) return std::move(created).error();
  if (kind != Impostor::OtherOwner) return Ok();
  constexpr uid_t kNobody = 65534;
  if (b == Backing::Posix) {
    const std::string path = "/dev/shm" + parsed->posix;
    if (::chown(path.c_str(), kNobody, kNobody) != 0) return ErrnoError("chown " + path);
    return Ok();
  }
  shmid_ds ds{};
  if (::shmctl(created->name.shmid, IPC_STAT, &ds) != 0) return ErrnoError("shmctl(IPC_STAT)");
  ds.shm_perm.uid = kNobody;
  if (::shmctl(created->name.shmid, IPC_SET, &ds) != 0) return ErrnoError("shmctl(IPC_SET)");
  return Ok();
}

void RemoveImpostor(Backing b, const std::string& address) {
  auto parsed = ParseAddress(b, address);
  if (!parsed.ok()) return;
  {
    std::lock_guard<std::mutex> lock(g_linked_mu);
    g_linked.erase(address);  // closes the listener a link pointed to
  }
  if (b == Backing::Posix) {
    ::shm_unlink(parsed->posix.c_str());
    return;
  }
  int id = ::shmget(parsed->key, 0, 0);
  if (id >= 0) ::shmctl(id, IPC_RMID, nullptr);
}

// ---------------------------------------------------------------------------------------------
namespace {
struct PlantedOffers {
  std::vector<SegmentName> segments;  // what the offers named (the listener may have removed some)
  std::vector<std::string> links;
  std::vector<Listener> targets;  // live listeners, and connections to them, that links point to
  std::vector<Connection> target_connections;
};
std::map<std::string, PlantedOffers> g_offers;  // by listener address; under g_linked_mu
}  // namespace

std::string_view RequestImpostorDoesNotApply(Backing b, RequestImpostor kind) {
  if (b == Backing::Sysv && kind == RequestImpostor::Symlink)
    return "an offer names a SysV segment by id, not by path: nothing it names can be a link";
  if (b == Backing::Posix && kind == RequestImpostor::Outside) {
    return "an offer names its POSIX segment by a ticket under the listener's own name, so it cannot name "
           "one elsewhere (a link there to one elsewhere is the symlinks kind)";
  }
  return {};
}

Status PlantRequestImpostor(Backing b, const Listener& l, RequestImpostor kind) {
  if (const auto why = RequestImpostorDoesNotApply(b, kind); !why.empty()) {
    return MakeError(Errc::InvalidArgument, std::string(why));
  }
  if (!l.s_) return MakeError(Errc::Closed, "plant: the listener is closed");
  Listener::State& ls = *l.s_;
  RendezvousHeader* rh = ls.rh;
  const uint32_t cap = Options{}.ring_capacity;
  const std::size_t size = ConnectionSize(cap);
  const ProcessIdentity self = Self();
  std::lock_guard<std::mutex> lock(g_linked_mu);
  PlantedOffers& planted = g_offers[ls.address];
  const uint64_t ticket = rh->next_ticket.fetch_add(1, std::memory_order_relaxed) & ((uint64_t{1} << 56) - 1);
  SegmentName cn = ConnName(ls.name, ticket, -1);
  // A genuine connection header, as a connector writes it: only the named object is wrong.
  auto init = [&](MappedRegion& region) {
    InitConnHeader(reinterpret_cast<ConnHeader*>(region.data()), cap, size, self);
  };
  if (kind == RequestImpostor::Symlink) {
    // A link where the offered segment belongs, to a live connector's segment of ours elsewhere.
    auto target = Listen(b, ls.address + "-offer-target");
    if (!target.ok()) return std::move(target).error();
    auto c = Connect(b, target->address(), Deadline::Expired());
    if (!c.ok()) return std::move(c).error();
    const std::string link = "/dev/shm" + cn.posix, to = "/dev/shm" + c->s_->conn_name.posix;
    if (::symlink(to.c_str(), link.c_str()) != 0) return ErrnoError("plant: symlink " + link);
    planted.links.push_back(link);
    planted.targets.push_back(std::move(*target));
    planted.target_connections.push_back(std::move(*c));
  } else {
    SegmentName made = cn;
    if (kind == RequestImpostor::Outside) {  // SysV: a keyed segment, as a listener's is
      Result<Created> created = MakeError(Errc::AlreadyExists, "plant");
      for (uint32_t attempt = 0; attempt < 16 && created.Is(Errc::AlreadyExists); ++attempt) {
        const uint64_t h = Fnv1a(ls.address + "/" + std::to_string(ticket) + "/" + std::to_string(attempt));
        made.key = static_cast<key_t>(0x1d000000u | (h & 0xffffffu));
        created = CreateSegment(made, size);
      }
      if (!created.ok()) return std::move(created).error();
      init(created->region);
      made = created->name;
    } else {
      auto created = CreateSegment(made, size);
      if (!created.ok()) return std::move(created).error();
      if (kind == RequestImpostor::OtherOwner) init(created->region);  // RegularFile: zeros, no connection
      made = created->name;
    }
    planted.segments.push_back(made);
    if (kind == RequestImpostor::OtherOwner) {
      constexpr uid_t kNobody = 65534;
      if (b == Backing::Posix) {
        const std::string path = "/dev/shm" + made.posix;
        if (::chown(path.c_str(), kNobody, kNobody) != 0) return ErrnoError("plant: chown " + path);
      } else {
        shmid_ds ds{};
        if (::shmctl(made.shmid, IPC_STAT, &ds) != 0) return ErrnoError("plant: shmctl(IPC_STAT)");
        ds.shm_perm.uid = kNobody;
        if (::shmctl(made.shmid, IPC_SET, &ds) != 0) return ErrnoError("plant: shmctl(IPC_SET)");
      }
    }
    cn = made;
  }
  // Claim a slot and offer it, as Connect does.
  for (uint32_t i = 0; i < kSlots; ++i) {
    Slot& slot = rh->slots[i];
    uint64_t expected = kFree;
    if (!slot.word.compare_exchange_strong(expected, Word(self.pid, kClaimed), std::memory_order_acq_rel)) continue;
    PublishOffer(rh, slot, b == Backing::Sysv ? cn.shmid : 0, cap, self.pid, ticket);
    return Ok();
  }
  return MakeError(Errc::Timeout, "plant: every backlog slot of " + ls.address + " is taken");
}

void RemoveRequestImpostors(Backing, const Listener& l) {
  std::lock_guard<std::mutex> lock(g_linked_mu);
  auto it = g_offers.find(l.address());
  if (it == g_offers.end()) return;
  for (const std::string& link : it->second.links) ::unlink(link.c_str());
  for (SegmentName& n : it->second.segments) {
    if (n.backing == Backing::Posix) {
      ::shm_unlink(n.posix.c_str());
    } else if (n.shmid >= 0) {
      ::shmctl(n.shmid, IPC_RMID, nullptr);
    }
  }
  g_offers.erase(it);  // closes the link targets
}

}  // namespace ipch::shm
