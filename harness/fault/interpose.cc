// libc interposition for ipch::fault. Pitfalls handled (see docs/fault-model.md):
// - the real functions are found with dlsym(RTLD_NEXT), which also works behind ASan/TSan
//   interceptors (they resolve their REAL() the same way and find us next);
// - no hook calls another hooked function (the log is a fixed in-memory ring);
// - only calls made while a plan is armed count, so sanitizer-internal calls never consume budget;
// - counters reset in a forked child (pthread_atfork), so "every Nth" counts per process;
// - fortified aliases (__read_chk, __recv_chk, __recvfrom_chk, __poll_chk) are hooked too.
#include <dlfcn.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <mqueue.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/msg.h>
#include <sys/select.h>
#include <sys/shm.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>

#include "ipch/fault.h"

namespace ipch::fault {

const int* ErrnosOf(const char* entry_point, bool fifo);  // errnos.cc
int EntryIndex(const char* entry_point);                  // errnos.cc: its row, or -1

namespace {

constexpr int kMaxRules = static_cast<int>(kMaxPlanRules);
constexpr int kLogSize = 64;
constexpr int kMaxEntries = 64;  // at least the rows of errnos.cc's table
constexpr int kMaxMaps = 32;     // shared or file mappings remembered for munmap's census

constexpr int kMaxCreated = 56;  // SysV queues created in a case, remembered for the audit

// The census counters, in a MAP_SHARED page: children forked during a census count into it.
// `created` holds the ids of the SysV queues the process tree created during the case: a queue
// records no creator, and one its creator never used (killed between msgget and its first
// msgsnd) is named by nothing else, so this is how the resource audit knows it is the case's.
struct CensusPage {
  std::atomic<uint64_t> calls[kMaxEntries];
  std::atomic<uint64_t> faults[kMaxEntries][kKinds];
  std::atomic<uint32_t> ncreated;
  std::atomic<int32_t> created[kMaxCreated];
};
static_assert(sizeof(CensusPage) <= 4096);

struct ArmedRule {
  Rule rule;
  std::atomic<uint64_t> calls{0};
  std::atomic<uint64_t> fires{0};
};

struct State {
  std::atomic<bool> armed{false};
  std::atomic<int> nrules{0};
  ArmedRule rules[kMaxRules];
  uint64_t seed = 0;
  std::atomic<uint64_t> injected{0};
  // Short transfers declined since Arm because the socket keeps message boundaries.
  std::atomic<uint64_t> declined_short{0};
  // Shared with the children forked while a plan is armed (MAP_SHARED survives fork): what
  // this process and they injected since Arm. tree_owner: the process whose Arm made it.
  std::atomic<uint64_t>* tree = nullptr;
  long tree_owner = 0;
  std::atomic<int> last_errno{0};
  std::atomic<bool> active{false};
  std::mutex log_mu;
  char log[kLogSize][64] = {};
  uint64_t log_next = 0;
  // The census (BeginCensus): its own page per process that began one, like `tree`.
  std::atomic<bool> census{false};
  CensusPage* census_page = nullptr;
  long census_owner = 0;
  // The tree counter and the census page of this process live in a memfd (two pages), so that a
  // peer exec'd as a new program can map them too (IPCH_FAULT_SHARED names the memfd through
  // /proc): `shared` is its mapping, `shared_fd` its descriptor, `shared_owner` whose it is.
  std::byte* shared = nullptr;
  int shared_fd = -1;
  long shared_owner = 0;
  bool tree_attached = false;  // `tree` is the parent's (AttachSharedFromEnvironment)
  std::atomic<uintptr_t> maps[kMaxMaps] = {};  // addresses of counted mappings, for munmap
};

// Initialised at compile time (constinit): no guard variable, no constructor. Hooks run inside
// sanitizer runtimes before those can track a thread (a guarded static crashed TSan there).
constinit State g_state;
State& S() { return g_state; }

uint64_t Mix(uint64_t x) {  // splitmix64 finaliser
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

enum class FdKind { kOther, kSocket, kFifo };
FdKind KindOf(int fd) {
  struct stat st;
  // Raw syscall: fstat is not hooked, but keep the hook path free of anything interposable.
  if (::syscall(SYS_fstat, fd, &st) != 0) return FdKind::kOther;
  return S_ISSOCK(st.st_mode) ? FdKind::kSocket : S_ISFIFO(st.st_mode) ? FdKind::kFifo : FdKind::kOther;
}

// A datagram or sequenced-packet socket (raw syscall, as above).
bool KeepsMessageBoundaries(int fd) {
  int type = 0;
  socklen_t len = sizeof type;
  if (::syscall(SYS_getsockopt, fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0) return false;
  return type == SOCK_SEQPACKET || type == SOCK_DGRAM;
}

// "Would block" (EAGAIN from byte I/O, accept, connect, msgsnd and the POSIX queue calls;
// ENOMSG from msgrcv) is what a call says only when it was asked not to wait: a blocking call
// waits instead (a socket's receive timeout aside, whose EAGAIN means that time has passed,
// which no injected fault can fake). `nowait` is what the hook knows: 1 a flag said so
// (MSG_DONTWAIT, IPC_NOWAIT, a queue opened O_NONBLOCK), 0 it blocks, -1 ask the descriptor.
bool WouldBlockErrno(uint64_t op, int err) {
  if (err == ENOMSG) return (op & kMsgrcv) != 0;
  return err == EAGAIN && (op & (kByteIo | kAccept | kConnect | kMsgsnd | kMqSend | kMqReceive)) != 0;
}
bool DoesNotWait(int nowait, int fd) {
  if (nowait >= 0) return nowait == 1;
  if (fd < 0) return true;
  const long flags = ::syscall(SYS_fcntl, fd, F_GETFL);
  return flags >= 0 && (flags & O_NONBLOCK) != 0;
}

// Whether `err` is among `list` (a 0-terminated PossibleErrnos list; null: an unknown name).
bool Among(const int* list, int err) {
  for (; list != nullptr && *list != 0; ++list) {
    if (*list == err) return true;
  }
  return false;
}

void Log(const char* op, uint64_t nth, const char* what) {
  State& s = S();
  std::lock_guard lk(s.log_mu);
  std::snprintf(s.log[s.log_next % kLogSize], 64, "%s #%llu -> %s", op, static_cast<unsigned long long>(nth), what);
  ++s.log_next;
}

// A kill_after decided in this thread: the hook's KillAfterCall guard ends the process once the
// real call has returned. Initial-exec TLS: no allocation, no lazy set-up inside a hook.
__attribute__((tls_model("initial-exec"))) thread_local bool t_kill_after = false;
// The harness's own threads (ipch_fault_exempt_thread): never faulted, never counted.
__attribute__((tls_model("initial-exec"))) thread_local bool t_exempt = false;
// The harness's own calls in a thread of the case's (ipch/harness_calls.h): not counted.
__attribute__((tls_model("initial-exec"))) thread_local int t_census_paused = 0;

[[noreturn]] void KillSelf() {
  // Through syscall(2), whose own hook runs this guard too: cleared first, or it would recurse.
  t_kill_after = false;
  for (;;) ::syscall(SYS_kill, ::syscall(SYS_getpid), SIGKILL);
}

// Declared first in every hook (IPCH_REAL): its destructor runs after the hook's return value,
// the real call's result, has been computed.
struct KillAfterCall {
  ~KillAfterCall() {
    if (t_kill_after) KillSelf();
  }
};

bool IsKill(Kind k) { return k == Kind::kKill || k == Kind::kKillAfter; }

void CountCall(const char* name) {
  if (t_census_paused > 0) return;
  CensusPage* page = S().census_page;
  const int i = EntryIndex(name);
  if (page != nullptr && i >= 0 && i < kMaxEntries) page->calls[i].fetch_add(1, std::memory_order_relaxed);
}
void CountFault(const char* name, Kind kind) {
  State& s = S();
  CensusPage* page = s.census_page;
  const int i = EntryIndex(name);
  if (!s.census.load(std::memory_order_relaxed) || t_census_paused > 0 || page == nullptr || i < 0 ||
      i >= kMaxEntries) {
    return;
  }
  page->faults[i][static_cast<int>(kind)].fetch_add(1, std::memory_order_relaxed);
}

struct Decision {
  bool fire = false;
  Kind kind = Kind::kErrno;
  int err = 0;
  uint64_t salt = 0;
};

// Decides whether this call (of class `op`, on `fd`; `nowait` as for DoesNotWait) gets a fault.
// `counted`: whether a census counts this call (false for a private anonymous mapping: malloc's).
// `lookup`: whether the call looks up an existing object (Rule::lookup_only). `wakeable`: whether
// a wait can say something is ready when it is not (a poll asked about input or output).
Decision Decide(uint64_t op, int fd, const char* name, int nowait = -1, bool counted = true, bool lookup = false,
                bool wakeable = true) {
  State& s = S();
  Decision d;
  if (t_exempt) return d;
  const bool armed = s.armed.load(std::memory_order_acquire);
  const bool census = s.census.load(std::memory_order_relaxed);
  if (!armed && !census) return d;
  if (armed) s.active.store(true, std::memory_order_relaxed);
  const FdKind fd_kind = fd >= 0 ? KindOf(fd) : FdKind::kOther;
  if (fd >= 0 && fd_kind == FdKind::kOther) return d;
  if (census && counted) CountCall(name);
  if (!armed) return d;
  // Whether this call was asked not to wait: found out once, and only if a rule needs to know.
  auto does_not_wait = [&] {
    if (nowait < 0) nowait = DoesNotWait(nowait, fd) ? 1 : 0;
    return nowait == 1;
  };
  int n = s.nrules.load(std::memory_order_acquire);
  for (int i = 0; i < n; ++i) {
    ArmedRule& r = s.rules[i];
    if ((r.rule.ops & op) == 0) continue;
    if (r.rule.lookup_only && !lookup) continue;
    if (r.rule.thread != 0 && (::syscall(SYS_gettid) == r.rule.thread) != (r.rule.thread > 0)) continue;
    if (r.rule.thread < 0 && ::syscall(SYS_gettid) == -r.rule.thread) continue;
    if (r.rule.kind == Kind::kShort && (op & kByteIo) == 0) continue;  // short I/O exists only for bytes
    // A socket that keeps message boundaries (SOCK_SEQPACKET, SOCK_DGRAM) sends a message whole
    // or not at all, and a read takes a whole one (cut only to a too small buffer, which the
    // caller chose): the kernel never moves part of one for the caller to complete.
    if (r.rule.kind == Kind::kShort && fd_kind == FdKind::kSocket && KeepsMessageBoundaries(fd)) {
      s.declined_short.fetch_add(1, std::memory_order_relaxed);
      continue;
    }
    if (r.rule.kind == Kind::kWake && ((op & kWaits) == 0 || !wakeable)) continue;  // a wake-up, for waits
    int err = r.rule.err;
    if (r.rule.kind == Kind::kErrno && (err == kTypicalErrno || !r.rule.any_errno)) {
      // Only what this call can really fail with (errnos.cc), in the mode it was made in:
      // another errno skips it, uncounted.
      const int* possible = ErrnosOf(name, fd_kind == FdKind::kFifo);
      if (err == kTypicalErrno) {
        err = 0;
        for (const int* e = possible; e != nullptr && *e != 0 && err == 0; ++e) {
          if (!WouldBlockErrno(op, *e) || does_not_wait()) err = *e;
        }
      }
      if (err == 0 || (!r.rule.any_errno && !Among(possible, err))) continue;
      if (!r.rule.any_errno && WouldBlockErrno(op, err) && !does_not_wait()) continue;
    }
    uint64_t k = r.calls.fetch_add(1, std::memory_order_relaxed) + 1;
    bool fire;
    if (r.rule.every_nth > 0) {
      fire = k % r.rule.every_nth == 0;
    } else {
      uint64_t h = Mix(s.seed ^ Mix(static_cast<uint64_t>(i) << 56 ^ k));
      fire = static_cast<double>(h >> 11) * 0x1.0p-53 < r.rule.probability;
    }
    if (!fire) continue;
    if (r.rule.max_fires > 0 && r.fires.load() >= r.rule.max_fires) continue;
    r.fires.fetch_add(1, std::memory_order_relaxed);
    s.injected.fetch_add(1, std::memory_order_relaxed);
    if (s.tree != nullptr) s.tree->fetch_add(1, std::memory_order_relaxed);
    CountFault(name, r.rule.kind);
    if (IsKill(r.rule.kind)) {
      const char* what = r.rule.kind == Kind::kKill ? "killed before the call" : "killed after the call";
      Log(name, k, what);
      // The log dies with the process: with IPCH_PRINT_FAULTS set, the kill is said on stderr.
      if (const char* print = ::getenv("IPCH_PRINT_FAULTS"); print != nullptr && *print != '\0') {
        char line[128];
        const int len = std::snprintf(line, sizeof line, "[ipch fault] pid %ld: %s #%llu -> %s\n",
                                      ::syscall(SYS_getpid), name, static_cast<unsigned long long>(k), what);
        if (len > 0) ::syscall(SYS_write, 2, line, static_cast<size_t>(std::min(len, int{sizeof line} - 1)));
      }
      if (r.rule.kind == Kind::kKill) KillSelf();
      t_kill_after = true;
      return d;
    }
    if (r.rule.kind == Kind::kDelay) {
      // Latency, not failure: sleep here (a raw syscall, never a hooked one) and let the call run.
      char what[32];
      std::snprintf(what, sizeof what, "delay %uus", r.rule.delay_us);
      Log(name, k, what);
      timespec ts{static_cast<time_t>(r.rule.delay_us / 1000000), static_cast<long>(r.rule.delay_us % 1000000) * 1000};
      while (::syscall(SYS_nanosleep, &ts, &ts) != 0 && errno == EINTR) {
      }
      return d;
    }
    d.fire = true;
    d.kind = r.rule.kind;
    d.err = err;
    if (d.kind == Kind::kErrno) s.last_errno.store(err, std::memory_order_relaxed);
    // A reset or a broken pipe ends a connection for every later call too, not only for the
    // one that saw it, and for both its ends: so the socket is shut for real, both ways (later
    // reads see the end of the stream, later writes EPIPE, the peer an end of file after what
    // was sent before). A fault that failed one call and left the connection healthy otherwise
    // would describe no connection the kernel can have: a library that, after a failed write,
    // waits for its reads to fail (libzmq) would wait for ever, and one whose later writes
    // still got through (libzmq's I/O thread did) could hang in its close.
    if (d.kind == Kind::kErrno && (op & kByteIo) != 0 && fd_kind == FdKind::kSocket &&
        (err == ECONNRESET || err == EPIPE)) {
      ::syscall(SYS_shutdown, fd, SHUT_RDWR);
    }
    d.salt = Mix(s.seed ^ k ^ (op << 40) ^ (op >> 24));
    char what[32];
    if (d.kind == Kind::kShort) {
      std::snprintf(what, sizeof what, "short");
    } else if (d.kind == Kind::kWake) {
      std::snprintf(what, sizeof what, "woken early");
    } else {
      std::snprintf(what, sizeof what, "errno %d", d.err);
    }
    Log(name, k, what);
    return d;
  }
  return d;
}

// What a call's flags say about waiting (for Decide): MSG_DONTWAIT does not wait; otherwise
// the descriptor decides.
int NoWait(int flags) { return (flags & MSG_DONTWAIT) != 0 ? 1 : -1; }
// Whether a POSIX queue descriptor was opened (or set) O_NONBLOCK: asked of the kernel directly.
// Only asked while a plan is armed: a disarmed queue call costs no extra syscall.
int QueueNoWait(mqd_t q) {
  if (!S().armed.load(std::memory_order_relaxed)) return -1;
  mq_attr a{};
  if (::syscall(SYS_mq_getsetattr, q, nullptr, &a) != 0) return -1;
  return (a.mq_flags & O_NONBLOCK) != 0 ? 1 : 0;
}

constexpr short kPollIo = POLLIN | POLLOUT;
// A spurious readiness is said only of a non-blocking descriptor: select(2) itself advises
// O_NONBLOCK to whoever must not block after a readiness that was not real, and a caller that
// reads a blocking descriptor after poll has made the other choice (as with EAGAIN, which the
// engine says only where the call does not wait). Asked only while a plan is armed.
bool NonBlocking(int fd) {
  if (!S().armed.load(std::memory_order_relaxed)) return false;
  const long flags = ::syscall(SYS_fcntl, fd, F_GETFL);
  return flags >= 0 && (flags & O_NONBLOCK) != 0;
}
// The first non-blocking descriptor a poll asks about input or output (n when none: no
// spurious readiness to say).
nfds_t FirstIo(const pollfd* fds, nfds_t n) {
  nfds_t i = 0;
  while (i < n && ((fds[i].events & kPollIo) == 0 || !NonBlocking(fds[i].fd))) ++i;
  return i;
}
// A spurious readiness for epoll instance `epfd`: the first non-blocking socket or FIFO it
// watches for input or output, with the events asked for among those and the caller's own data
// (false when there is none, or no plan is armed). The kernel's list (/proc/self/fdinfo) is
// the authority: a descriptor closed since it was registered is no longer in it. Raw syscalls:
// nothing here is interposed or counted.
bool SpuriousEpollEvent(int epfd, epoll_event* out) {
  State& s = S();
  if (!s.armed.load(std::memory_order_relaxed)) return false;
  // Only a plan that can wake a wait needs one (the kernel's list is three calls to read).
  bool wakes = false;
  for (int i = 0, n = s.nrules.load(std::memory_order_acquire); i < n && !wakes; ++i) {
    wakes = s.rules[i].rule.kind == Kind::kWake && (s.rules[i].rule.ops & kPoll) != 0;
  }
  if (!wakes) return false;
  char path[64];
  std::snprintf(path, sizeof path, "/proc/self/fdinfo/%d", epfd);
  const int f = static_cast<int>(::syscall(SYS_openat, AT_FDCWD, path, O_RDONLY | O_CLOEXEC));
  if (f < 0) return false;
  char buf[8192];
  std::size_t len = 0;
  for (long r; len + 1 < sizeof buf && (r = ::syscall(SYS_read, f, buf + len, sizeof buf - 1 - len)) > 0;) {
    len += static_cast<std::size_t>(r);
  }
  ::syscall(SYS_close, f);
  buf[len] = '\0';
  // Lines "tfd: <fd> events: <hex> data: <hex> ..." (fs/eventpoll.c, ep_show_fdinfo).
  for (const char* line = std::strstr(buf, "tfd:"); line != nullptr; line = std::strstr(line + 4, "tfd:")) {
    int fd = -1;
    unsigned events = 0;
    unsigned long long data = 0;
    if (std::sscanf(line, "tfd: %d events: %x data: %llx", &fd, &events, &data) != 3) continue;
    const uint32_t asked = events & (EPOLLIN | EPOLLOUT);
    if (asked == 0 || KindOf(fd) == FdKind::kOther || !NonBlocking(fd)) continue;
    out->events = asked;
    out->data.u64 = data;
    return true;
  }
  return false;
}
// The first non-blocking descriptor below n in `set` (n when none).
int FirstIn(const fd_set* set, int n) {
  int i = 0;
  while (set != nullptr && i < n && (!FD_ISSET(i, set) || !NonBlocking(i))) ++i;
  return set == nullptr ? n : i;
}

// A short count in [1, n-1] (n >= 2), chosen from the decision's salt.
size_t ShortLen(const Decision& d, size_t n) { return n < 2 ? n : 1 + d.salt % (n - 1); }

// The next definition of `name` (libc's, or the one after a sanitizer's interceptor). Cached
// in a constant-initialised atomic rather than a function-local static: the hooks run inside
// TSan's interceptors, where the static-init guard's synchronisation is invisible to TSan.
// Racing lookups are harmless: dlsym returns the same pointer.
template <class F>
F Real(std::atomic<void*>& slot, const char* name) {
  void* p = slot.load(std::memory_order_acquire);
  if (p == nullptr) {
    p = ::dlsym(RTLD_NEXT, name);
    slot.store(p, std::memory_order_release);
  }
  return reinterpret_cast<F>(p);
}

// The census counts the mappings a transport makes (of a file or shared memory, and SysV
// attachments), not malloc's private anonymous ones; a munmap is counted when it unmaps one of
// those.
bool CountedMapping(int flags, int fd) { return fd >= 0 || (flags & MAP_SHARED) != 0; }
void* Remembered(void* addr, bool counted) {
  State& s = S();
  if (!counted || addr == MAP_FAILED || !s.census.load(std::memory_order_relaxed)) return addr;
  for (auto& m : s.maps) {
    uintptr_t empty = 0;
    if (m.compare_exchange_strong(empty, reinterpret_cast<uintptr_t>(addr))) break;
  }
  return addr;
}
bool ForgetMapping(void* addr) {
  State& s = S();
  if (!s.census.load(std::memory_order_relaxed)) return false;
  for (auto& m : s.maps) {
    uintptr_t a = reinterpret_cast<uintptr_t>(addr);
    if (m.compare_exchange_strong(a, 0)) return true;
  }
  return false;
}

constexpr std::size_t kPage = 4096;
constexpr const char* kSharedEnv = "IPCH_FAULT_SHARED";
constexpr const char kSharedName[] = "ipch-fault-shared";
// Written at offset kMagicAt of the first page when the pages are made; the tree counter is the
// page's first word, and nothing else lives there.
constexpr uint64_t kSharedMagic = 0x4950434846535244ULL;  // "IPCHFSRD"
constexpr std::size_t kMagicAt = 64;

// This process's shared pages (made on first use; a forked child makes its own when it arms or
// counts for itself). Raw syscalls throughout: the hooks must not see these calls. Every
// argument of a syscall(2) is a long: an int passed where the kernel reads a long (mmap's offset)
// has undefined upper bits, and clang builds leave garbage there (the offset became
// 0x7ffe00000000 and the first write to the page was a SIGBUS).
std::byte* SharedPages() {
  State& s = S();
  const long self = ::syscall(SYS_getpid);
  if (s.shared != nullptr && s.shared_owner == self) return s.shared;
  const int fd = static_cast<int>(::syscall(SYS_memfd_create, kSharedName, MFD_CLOEXEC));
  if (fd < 0) return nullptr;
  void* p = MAP_FAILED;
  if (::syscall(SYS_ftruncate, fd, 2 * kPage) == 0) {
    p = reinterpret_cast<void*>(
        ::syscall(SYS_mmap, nullptr, 2 * kPage, PROT_READ | PROT_WRITE, MAP_SHARED, static_cast<long>(fd), 0L));
  }
  if (p == MAP_FAILED) {
    ::syscall(SYS_close, fd);
    return nullptr;
  }
  std::memcpy(static_cast<std::byte*>(p) + kMagicAt, &kSharedMagic, sizeof kSharedMagic);
  s.shared = static_cast<std::byte*>(p);
  s.shared_fd = fd;
  s.shared_owner = self;
  return s.shared;
}

// Whether `fd` is a parent's shared pages: a memfd of ours, two pages long, with the magic word.
// The name in IPCH_FAULT_SHARED is a descriptor number in another process, which may mean
// something else by now (the parent closed it, or exec'd itself and the loader reused the number
// for a shared library): mapped shared and counted into, that file would be written to.
bool IsSharedPages(int fd) {
  char self_path[64], target[128];
  std::snprintf(self_path, sizeof self_path, "/proc/self/fd/%d", fd);
  const long n = ::syscall(SYS_readlinkat, AT_FDCWD, self_path, target, sizeof target - 1);
  if (n <= 0) return false;
  target[n] = '\0';
  constexpr char kPrefix[] = "/memfd:";
  if (std::strncmp(target, kPrefix, sizeof kPrefix - 1) != 0 ||
      std::strncmp(target + sizeof kPrefix - 1, kSharedName, sizeof kSharedName - 1) != 0) {
    return false;
  }
  struct stat st {};
  if (::syscall(SYS_fstat, fd, &st) != 0 || st.st_size != static_cast<off_t>(2 * kPage)) return false;
  uint64_t magic = 0;
  return ::syscall(SYS_pread64, fd, &magic, sizeof magic, kMagicAt) == static_cast<long>(sizeof magic) &&
         magic == kSharedMagic;
}

// In a program exec'd with IPCH_FAULT_SHARED="/proc/<pid>/fd/<fd>" ("...:census" when a census
// runs): maps its parent's pages and counts into them. Returns whether it did.
bool AttachSharedFromEnvironment() {
  const char* v = ::getenv(kSharedEnv);
  if (v == nullptr || *v == '\0') return false;
  if (S().shared != nullptr && S().shared_owner == ::syscall(SYS_getpid)) return true;  // attached already
  char path[128];
  std::snprintf(path, sizeof path, "%s", v);
  char* census = std::strstr(path, ":census");
  if (census != nullptr) *census = '\0';
  const int fd = static_cast<int>(::syscall(SYS_openat, AT_FDCWD, path, O_RDWR | O_CLOEXEC));
  if (fd < 0) return false;
  if (!IsSharedPages(fd)) {
    ::syscall(SYS_close, fd);
    return false;
  }
  void* p = reinterpret_cast<void*>(
      ::syscall(SYS_mmap, nullptr, 2 * kPage, PROT_READ | PROT_WRITE, MAP_SHARED, static_cast<long>(fd), 0L));
  if (p == MAP_FAILED) {
    ::syscall(SYS_close, fd);
    return false;
  }
  State& s = S();
  const long self = ::syscall(SYS_getpid);
  s.shared = static_cast<std::byte*>(p);
  s.shared_fd = fd;
  s.shared_owner = self;
  s.tree = reinterpret_cast<std::atomic<uint64_t>*>(s.shared);
  s.tree_owner = self;
  s.tree_attached = true;
  s.census_page = reinterpret_cast<CensusPage*>(s.shared + kPage);
  s.census_owner = self;
  if (census != nullptr) s.census.store(true);
  return true;
}

void ResetCountersInChild() {
  State& s = S();
  for (auto& r : s.rules) {
    r.calls.store(0);
    r.fires.store(0);
  }
  s.injected.store(0);
  s.declined_short.store(0);
}

struct AtForkInit {
  AtForkInit() { ::pthread_atfork(nullptr, nullptr, &ResetCountersInChild); }
} g_atfork_init;

// Trims an iovec array to `len` bytes total (for a short writev/readv).
int TrimIov(const iovec* in, int cnt, size_t len, iovec* out) {
  int k = 0;
  for (; k < cnt && len > 0; ++k) {
    out[k] = in[k];
    if (out[k].iov_len > len) out[k].iov_len = len;
    len -= out[k].iov_len;
  }
  return k;
}

size_t IovLen(const iovec* iov, int cnt) {
  size_t n = 0;
  for (int i = 0; i < cnt; ++i) n += iov[i].iov_len;
  return n;
}

}  // namespace

namespace {
void ArmImpl(const Plan& plan, bool keep_tree);
}  // namespace

void Arm(const Plan& plan) { ArmImpl(plan, false); }

void ArmAttached(const Plan& plan) { ArmImpl(plan, AttachSharedFromEnvironment()); }

namespace {
void ArmImpl(const Plan& plan, bool keep_tree) {
  State& s = S();
  s.armed.store(false);
  int n = 0;
  for (const Rule& r : plan.rules) {
    if (n == kMaxRules) break;
    s.rules[n].rule = r;
    s.rules[n].calls.store(0);
    s.rules[n].fires.store(0);
    ++n;
  }
  s.seed = plan.seed;
  s.injected.store(0);
  s.declined_short.store(0);
  // A process's own counter for its tree: a forked child that arms a plan of its own counts
  // apart from its parent's. A program exec'd under its parent's plan counts into the parent's
  // (ArmAttached keeps it as it is).
  const long self = ::syscall(SYS_getpid);
  if (s.tree_attached && !keep_tree) {
    // An exec'd program arming a plan of its own: it counts apart from its parent from now on.
    void* page = reinterpret_cast<void*>(::syscall(SYS_mmap, nullptr, kPage, PROT_READ | PROT_WRITE,
                                                   MAP_SHARED | MAP_ANONYMOUS, -1L, 0L));
    if (page != MAP_FAILED) s.tree = new (page) std::atomic<uint64_t>(0);
    s.tree_attached = false;
  } else if (s.tree == nullptr || s.tree_owner != self) {
    if (std::byte* shared = SharedPages(); shared != nullptr) {
      s.tree = new (shared) std::atomic<uint64_t>(0);
      s.tree_owner = self;
    }
  }
  if (s.tree != nullptr && !keep_tree) s.tree->store(0);
  s.last_errno.store(0);
  {
    std::lock_guard lk(s.log_mu);
    s.log_next = 0;
  }
  s.nrules.store(n, std::memory_order_release);
  s.armed.store(true, std::memory_order_release);
}

// A program exec'd while its parent counted: attach to the parent's pages at load, plan or not.
__attribute__((constructor)) void AttachAtLoad() { AttachSharedFromEnvironment(); }
}  // namespace

void Disarm() { S().armed.store(false, std::memory_order_release); }
std::optional<Plan> ArmedPlan() {
  State& s = S();
  if (!s.armed.load(std::memory_order_acquire)) return std::nullopt;
  Plan p;
  p.seed = s.seed;
  for (int i = 0; i < s.nrules.load(std::memory_order_acquire); ++i) p.rules.push_back(s.rules[i].rule);
  return p;
}
std::vector<std::string> PlanEnvironment() {
  State& s = S();
  std::vector<std::string> env;
  auto plan = ArmedPlan();
  if (plan) env.push_back(std::string(kPlanEnv) + "=" + FormatPlan(*plan));
  const bool census = s.census.load();
  // The exec'd program counts into this process's pages, where they are the shared ones.
  if ((plan || census) && s.shared != nullptr && s.shared_owner == ::syscall(SYS_getpid) &&
      (!plan || s.tree == reinterpret_cast<std::atomic<uint64_t>*>(s.shared))) {
    env.push_back(std::string(kSharedEnv) + "=/proc/" + std::to_string(::syscall(SYS_getpid)) + "/fd/" +
                  std::to_string(s.shared_fd) + (census ? ":census" : ""));
  }
  return env;
}
bool Pause() { return S().armed.exchange(false, std::memory_order_acq_rel); }
void Unpause() { S().armed.store(true, std::memory_order_release); }
uint64_t InjectedCount() { return S().injected.load(); }
uint64_t DeclinedShortTransfers() { return S().declined_short.load(); }
uint64_t InjectedInTree() {
  State& s = S();
  return s.tree != nullptr ? s.tree->load() : s.injected.load();
}
int LastInjectedErrno() { return S().last_errno.load(); }
uint64_t MatchedCalls(std::size_t rule) {
  State& s = S();
  return rule < static_cast<std::size_t>(s.nrules.load()) ? s.rules[rule].calls.load() : 0;
}

uint64_t Enumerate(uint64_t ops, int err, const std::function<void(uint64_t n)>& scenario) {
  uint64_t total = 0;
  {
    // A rule that never fires still counts the calls it matches.
    ScopedPlan count(Plan{{Rule{ops, Kind::kErrno, err, 0, 0.0, 0, 0}}, 0});
    scenario(0);
    total = MatchedCalls(0);
  }
  for (uint64_t n = 1; n <= total; ++n) {
    ScopedPlan once(Plan{{Rule{ops, Kind::kErrno, err, static_cast<uint32_t>(n), 0.0, 1, 0}}, 0});
    scenario(n);
  }
  return total;
}
bool Active() { return S().active.load(); }
long ThisThread() { return ::syscall(SYS_gettid); }

const char* KindName(Kind kind) {
  switch (kind) {
    case Kind::kErrno:
      return "errno";
    case Kind::kShort:
      return "short";
    case Kind::kDelay:
      return "delay";
    case Kind::kWake:
      return "wake";
    case Kind::kKill:
      return "kill";
    case Kind::kKillAfter:
      return "kill_after";
  }
  return "?";
}

void BeginCensus() {
  State& s = S();
  s.census.store(false);
  // Raw syscalls: the hooks' own mmap must not see this one.
  const long self = ::syscall(SYS_getpid);
  if (s.census_page == nullptr || s.census_owner != self) {
    std::byte* shared = SharedPages();
    if (shared == nullptr) return;
    s.census_page = new (shared + kPage) CensusPage();
    s.census_owner = self;
  }
  for (auto& c : s.census_page->calls) c.store(0);
  for (auto& row : s.census_page->faults) {
    for (auto& f : row) f.store(0);
  }
  s.census_page->ncreated.store(0);
  for (auto& m : s.maps) m.store(0);
  s.census.store(true);
}

// A SysV queue this process made during the census (its id in the case's log).
int CreatedQueue(int id) {
  State& s = S();
  if (id >= 0 && s.census.load(std::memory_order_relaxed) && s.census_page != nullptr) {
    const uint32_t i = s.census_page->ncreated.fetch_add(1);
    if (i < kMaxCreated) s.census_page->created[i].store(id);
  }
  return id;
}

Census EndCensus() {
  State& s = S();
  Census out;
  if (!s.census.exchange(false) || s.census_page == nullptr) return out;
  const auto names = EntryPoints();
  for (std::size_t i = 0; i < names.size() && i < static_cast<std::size_t>(kMaxEntries); ++i) {
    CensusEntry e;
    e.entry_point = std::string(names[i]);
    e.calls = s.census_page->calls[i].load();
    for (std::size_t k = 0; k < kKinds; ++k) e.faults[k] = s.census_page->faults[i][k].load();
    if (e.calls > 0 || e.Faulted() > 0) out.push_back(std::move(e));
  }
  return out;
}

bool PauseCensus() { return S().census.exchange(false); }
void ResumeCensus() { S().census.store(true); }

std::vector<std::string> InjectedLog() {
  State& s = S();
  std::lock_guard lk(s.log_mu);
  std::vector<std::string> out;
  uint64_t first = s.log_next > kLogSize ? s.log_next - kLogSize : 0;
  for (uint64_t i = first; i < s.log_next; ++i) out.emplace_back(s.log[i % kLogSize]);
  return out;
}

}  // namespace ipch::fault

using ipch::fault::Decide;
using ipch::fault::Kind;
using ipch::fault::ShortLen;
namespace F = ipch::fault;

#define IPCH_REAL(name, type)                          \
  const F::KillAfterCall kill_after_guard_;            \
  static std::atomic<void*> real_slot_##name{nullptr}; \
  auto real_##name = F::Real<type>(real_slot_##name, #name)

#define IPCH_ERRNO_OR_SHORT(d, n_var)         \
  if ((d).fire && (d).kind == Kind::kErrno) { \
    errno = (d).err;                          \
    return -1;                                \
  }                                           \
  if ((d).fire && (d).kind == Kind::kShort) n_var = ShortLen((d), n_var)

// A poll's fault: an errno, or (kWake) a spurious readiness: at once, descriptor `io` (the first
// non-blocking one asked about input or output) is said to have it, though nothing changed
// (select(2), BUGS: data that arrived and was then discarded; the read that follows finds
// nothing). Never an early timeout: poll does not return 0 before its timeout, and a caller is
// right to rely on that.
#define IPCH_WAIT_FAULT(d, fds, n, io)                              \
  if ((d).fire && (d).kind == Kind::kErrno) {                       \
    errno = (d).err;                                                \
    return -1;                                                      \
  }                                                                 \
  if ((d).fire && (d).kind == Kind::kWake) {                        \
    for (nfds_t i_ = 0; i_ < (n); ++i_) (fds)[i_].revents = 0;      \
    (fds)[io].revents = static_cast<short>((fds)[io].events & F::kPollIo); \
    return 1;                                                       \
  }

extern "C" {

void ipch_fault_exempt_thread() { F::t_exempt = true; }
void ipch_fault_census_pause_thread(int delta) { F::t_census_paused += delta; }
int ipch_fault_created_queue(int id) {
  const F::CensusPage* page = F::S().census_page;
  if (page == nullptr) return 0;
  const uint32_t n = std::min<uint32_t>(page->ncreated.load(), F::kMaxCreated);
  for (uint32_t i = 0; i < n; ++i) {
    if (page->created[i].load() == id) return 1;
  }
  return 0;
}

ssize_t read(int fd, void* buf, size_t n) {
  IPCH_REAL(read, ssize_t(*)(int, void*, size_t));
  auto d = Decide(F::kRead, fd, "read");
  IPCH_ERRNO_OR_SHORT(d, n);
  return real_read(fd, buf, n);
}
ssize_t __read_chk(int fd, void* buf, size_t n, size_t) { return read(fd, buf, n); }

ssize_t write(int fd, const void* buf, size_t n) {
  IPCH_REAL(write, ssize_t(*)(int, const void*, size_t));
  auto d = Decide(F::kWrite, fd, "write");
  IPCH_ERRNO_OR_SHORT(d, n);
  return real_write(fd, buf, n);
}

ssize_t recv(int fd, void* buf, size_t n, int flags) {
  IPCH_REAL(recv, ssize_t(*)(int, void*, size_t, int));
  auto d = Decide(F::kRead, fd, "recv", F::NoWait(flags));
  IPCH_ERRNO_OR_SHORT(d, n);
  return real_recv(fd, buf, n, flags);
}
ssize_t __recv_chk(int fd, void* buf, size_t n, size_t, int flags) { return recv(fd, buf, n, flags); }

ssize_t send(int fd, const void* buf, size_t n, int flags) {
  IPCH_REAL(send, ssize_t(*)(int, const void*, size_t, int));
  auto d = Decide(F::kWrite, fd, "send", F::NoWait(flags));
  IPCH_ERRNO_OR_SHORT(d, n);
  return real_send(fd, buf, n, flags);
}

ssize_t recvfrom(int fd, void* buf, size_t n, int flags, sockaddr* a, socklen_t* al) {
  IPCH_REAL(recvfrom, ssize_t(*)(int, void*, size_t, int, sockaddr*, socklen_t*));
  auto d = Decide(F::kRead, fd, "recvfrom", F::NoWait(flags));
  IPCH_ERRNO_OR_SHORT(d, n);
  return real_recvfrom(fd, buf, n, flags, a, al);
}
ssize_t __recvfrom_chk(int fd, void* buf, size_t n, size_t, int flags, sockaddr* a, socklen_t* al) {
  return recvfrom(fd, buf, n, flags, a, al);
}

ssize_t sendto(int fd, const void* buf, size_t n, int flags, const sockaddr* a, socklen_t al) {
  IPCH_REAL(sendto, ssize_t(*)(int, const void*, size_t, int, const sockaddr*, socklen_t));
  auto d = Decide(F::kWrite, fd, "sendto", F::NoWait(flags));
  IPCH_ERRNO_OR_SHORT(d, n);
  return real_sendto(fd, buf, n, flags, a, al);
}

ssize_t readv(int fd, const iovec* iov, int cnt) {
  IPCH_REAL(readv, ssize_t(*)(int, const iovec*, int));
  auto d = Decide(F::kRead, fd, "readv");
  size_t n = F::IovLen(iov, cnt), full = n;
  IPCH_ERRNO_OR_SHORT(d, n);
  if (n < full && cnt <= 64) {
    iovec t[64];
    return real_readv(fd, t, F::TrimIov(iov, cnt, n, t));
  }
  return real_readv(fd, iov, cnt);
}

ssize_t writev(int fd, const iovec* iov, int cnt) {
  IPCH_REAL(writev, ssize_t(*)(int, const iovec*, int));
  auto d = Decide(F::kWrite, fd, "writev");
  size_t n = F::IovLen(iov, cnt), full = n;
  IPCH_ERRNO_OR_SHORT(d, n);
  if (n < full && cnt <= 64) {
    iovec t[64];
    return real_writev(fd, t, F::TrimIov(iov, cnt, n, t));
  }
  return real_writev(fd, iov, cnt);
}

ssize_t sendmsg(int fd, const msghdr* m, int flags) {
  IPCH_REAL(sendmsg, ssize_t(*)(int, const msghdr*, int));
  auto d = Decide(F::kWrite, fd, "sendmsg", F::NoWait(flags));
  int cnt = static_cast<int>(m->msg_iovlen);
  size_t n = F::IovLen(m->msg_iov, cnt), full = n;
  IPCH_ERRNO_OR_SHORT(d, n);
  if (n < full && cnt <= 64) {
    iovec t[64];
    msghdr copy = *m;
    copy.msg_iov = t;
    copy.msg_iovlen = static_cast<size_t>(F::TrimIov(m->msg_iov, cnt, n, t));
    return real_sendmsg(fd, &copy, flags);
  }
  return real_sendmsg(fd, m, flags);
}

ssize_t recvmsg(int fd, msghdr* m, int flags) {
  IPCH_REAL(recvmsg, ssize_t(*)(int, msghdr*, int));
  auto d = Decide(F::kRead, fd, "recvmsg", F::NoWait(flags));
  int cnt = static_cast<int>(m->msg_iovlen);
  size_t n = F::IovLen(m->msg_iov, cnt), full = n;
  IPCH_ERRNO_OR_SHORT(d, n);
  if (n < full && cnt <= 64) {
    iovec t[64];
    iovec* orig = m->msg_iov;
    size_t orig_len = m->msg_iovlen;
    m->msg_iov = t;
    m->msg_iovlen = static_cast<size_t>(F::TrimIov(orig, cnt, n, t));
    ssize_t r = real_recvmsg(fd, m, flags);
    m->msg_iov = orig;
    m->msg_iovlen = orig_len;
    return r;
  }
  return real_recvmsg(fd, m, flags);
}

int poll(pollfd* fds, nfds_t n, int timeout) {
  IPCH_REAL(poll, int (*)(pollfd*, nfds_t, int));
  const nfds_t io = F::FirstIo(fds, n);
  auto d = Decide(F::kPoll, n > 0 ? fds[0].fd : -1, "poll", -1, true, false, io < n);
  IPCH_WAIT_FAULT(d, fds, n, io);
  return real_poll(fds, n, timeout);
}
int __poll_chk(pollfd* fds, nfds_t n, int timeout, size_t) { return poll(fds, n, timeout); }

int ppoll(pollfd* fds, nfds_t n, const timespec* ts, const sigset_t* mask) {
  IPCH_REAL(ppoll, int (*)(pollfd*, nfds_t, const timespec*, const sigset_t*));
  const nfds_t io = F::FirstIo(fds, n);
  auto d = Decide(F::kPoll, n > 0 ? fds[0].fd : -1, "ppoll", -1, true, false, io < n);
  IPCH_WAIT_FAULT(d, fds, n, io);
  return real_ppoll(fds, n, ts, mask);
}

int accept(int fd, sockaddr* a, socklen_t* al) {
  IPCH_REAL(accept, int (*)(int, sockaddr*, socklen_t*));
  auto d = Decide(F::kAccept, fd, "accept");
  if (d.fire) {
    errno = d.err;
    return -1;
  }
  return real_accept(fd, a, al);
}

int accept4(int fd, sockaddr* a, socklen_t* al, int flags) {
  IPCH_REAL(accept4, int (*)(int, sockaddr*, socklen_t*, int));
  auto d = Decide(F::kAccept, fd, "accept4");
  if (d.fire) {
    errno = d.err;
    return -1;
  }
  return real_accept4(fd, a, al, flags);
}

int connect(int fd, const sockaddr* a, socklen_t al) {
  IPCH_REAL(connect, int (*)(int, const sockaddr*, socklen_t));
  auto d = Decide(F::kConnect, fd, "connect", -1, true, true);
  if (d.fire) {
    errno = d.err;
    return -1;
  }
  return real_connect(fd, a, al);
}

// ---- the other entry points: errno faults only (a `short` rule never matches them) -----------
#define IPCH_FAIL_IF(decision, failure)            \
  do {                                             \
    const auto d_ = (decision); /* decided once */ \
    if (d_.fire && d_.kind == Kind::kErrno) {      \
      errno = d_.err;                              \
      return failure;                              \
    }                                              \
  } while (0)

int select(int n, fd_set* r, fd_set* w, fd_set* e, timeval* t) {
  IPCH_REAL(select, int (*)(int, fd_set*, fd_set*, fd_set*, timeval*));
  const int ready_r = F::FirstIn(r, n), ready_w = F::FirstIn(w, n);
  const auto d = Decide(F::kPoll, -1, "select", -1, true, false, ready_r < n || ready_w < n);
  IPCH_FAIL_IF(d, -1);
  if (d.fire && d.kind == Kind::kWake) {  // a spurious readiness, as for poll: one descriptor said ready
    for (fd_set* set : {r, w, e}) {
      if (set != nullptr) FD_ZERO(set);
    }
    FD_SET(ready_r < n ? ready_r : ready_w, ready_r < n ? r : w);
    return 1;
  }
  return real_select(n, r, w, e, t);
}

int epoll_wait(int epfd, epoll_event* ev, int max, int timeout) {
  IPCH_REAL(epoll_wait, int (*)(int, epoll_event*, int, int));
  // A spurious readiness, as for poll: a descriptor the instance watches (with the data its
  // caller registered, EPOLLIN or EPOLLOUT as it asked) is said ready though nothing changed.
  epoll_event spurious{};
  const bool wakeable = max > 0 && F::SpuriousEpollEvent(epfd, &spurious);
  const auto d = Decide(F::kPoll, -1, "epoll_wait", -1, true, false, wakeable);
  IPCH_FAIL_IF(d, -1);
  if (d.fire && d.kind == Kind::kWake) {
    ev[0] = spurious;
    return 1;
  }
  return real_epoll_wait(epfd, ev, max, timeout);
}

int socket(int domain, int type, int protocol) {
  IPCH_REAL(socket, int (*)(int, int, int));
  IPCH_FAIL_IF(Decide(F::kSocket, -1, "socket"), -1);
  return real_socket(domain, type, protocol);
}

int socketpair(int domain, int type, int protocol, int sv[2]) {
  IPCH_REAL(socketpair, int (*)(int, int, int, int*));
  IPCH_FAIL_IF(Decide(F::kSocketpair, -1, "socketpair"), -1);
  return real_socketpair(domain, type, protocol, sv);
}

int bind(int fd, const sockaddr* a, socklen_t al) {
  IPCH_REAL(bind, int (*)(int, const sockaddr*, socklen_t));
  IPCH_FAIL_IF(Decide(F::kBind, fd, "bind"), -1);
  return real_bind(fd, a, al);
}

int listen(int fd, int backlog) {
  IPCH_REAL(listen, int (*)(int, int));
  IPCH_FAIL_IF(Decide(F::kListen, fd, "listen"), -1);
  return real_listen(fd, backlog);
}

// shutdown fails on Linux only with ENOTCONN, for a socket no longer connected (its peer reset
// it), and shuts it all the same (the kernel wakes its waiters, then reports ENOTCONN); on a
// listening socket, where it is how a server wakes its blocked accept, it never fails. So the
// fault is reported after the real call, and a listening socket is never faulted.
int shutdown(int fd, int how) {
  IPCH_REAL(shutdown, int (*)(int, int));
  if (!F::S().armed.load(std::memory_order_acquire) && !F::S().census.load(std::memory_order_relaxed)) {
    return real_shutdown(fd, how);  // no extra syscall disarmed
  }
  int listening = 0;
  socklen_t len = sizeof listening;
  if (::syscall(SYS_getsockopt, fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) == 0 && listening != 0) {
    return real_shutdown(fd, how);
  }
  const auto d = Decide(F::kShutdown, fd, "shutdown");
  const int r = real_shutdown(fd, how);
  if (d.fire) {
    errno = d.err;
    return -1;
  }
  return r;
}

static mode_t ModeArg(int flags, va_list ap) {
  return (flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE ? static_cast<mode_t>(va_arg(ap, int)) : 0;
}

int open(const char* path, int flags, ...) {
  IPCH_REAL(open, int (*)(const char*, int, ...));
  va_list ap;
  va_start(ap, flags);
  const mode_t mode = ModeArg(flags, ap);
  va_end(ap);
  IPCH_FAIL_IF(Decide(F::kOpen, -1, "open", -1, true, (flags & O_CREAT) == 0), -1);
  return real_open(path, flags, mode);
}

int open64(const char* path, int flags, ...) {
  IPCH_REAL(open64, int (*)(const char*, int, ...));
  va_list ap;
  va_start(ap, flags);
  const mode_t mode = ModeArg(flags, ap);
  va_end(ap);
  IPCH_FAIL_IF(Decide(F::kOpen, -1, "open64", -1, true, (flags & O_CREAT) == 0), -1);
  return real_open64(path, flags, mode);
}

int close(int fd) {
  IPCH_REAL(close, int (*)(int));
  auto d = Decide(F::kClose, fd, "close");
  const int r = real_close(fd);  // Linux releases the descriptor even when close reports an error
  if (d.fire && d.kind == Kind::kErrno) {
    errno = d.err;
    return -1;
  }
  return r;
}

int pipe(int fds[2]) {
  IPCH_REAL(pipe, int (*)(int*));
  IPCH_FAIL_IF(Decide(F::kPipe, -1, "pipe"), -1);
  return real_pipe(fds);
}

int pipe2(int fds[2], int flags) {
  IPCH_REAL(pipe2, int (*)(int*, int));
  IPCH_FAIL_IF(Decide(F::kPipe, -1, "pipe2"), -1);
  return real_pipe2(fds, flags);
}

int mkfifo(const char* path, mode_t mode) {
  IPCH_REAL(mkfifo, int (*)(const char*, mode_t));
  IPCH_FAIL_IF(Decide(F::kMkfifo, -1, "mkfifo"), -1);
  return real_mkfifo(path, mode);
}

void* mmap(void* addr, size_t len, int prot, int flags, int fd, off_t off) {
  IPCH_REAL(mmap, void* (*)(void*, size_t, int, int, int, off_t));
  const bool counted = F::CountedMapping(flags, fd);
  IPCH_FAIL_IF(Decide(F::kMmap, -1, "mmap", -1, counted), MAP_FAILED);
  return F::Remembered(real_mmap(addr, len, prot, flags, fd, off), counted);
}

void* mmap64(void* addr, size_t len, int prot, int flags, int fd, off64_t off) {
  IPCH_REAL(mmap64, void* (*)(void*, size_t, int, int, int, off64_t));
  const bool counted = F::CountedMapping(flags, fd);
  IPCH_FAIL_IF(Decide(F::kMmap, -1, "mmap64", -1, counted), MAP_FAILED);
  return F::Remembered(real_mmap64(addr, len, prot, flags, fd, off), counted);
}

int munmap(void* addr, size_t len) {
  IPCH_REAL(munmap, int (*)(void*, size_t));
  IPCH_FAIL_IF(Decide(F::kMunmap, -1, "munmap", -1, F::ForgetMapping(addr)), -1);
  return real_munmap(addr, len);
}

int ftruncate(int fd, off_t len) {
  IPCH_REAL(ftruncate, int (*)(int, off_t));
  IPCH_FAIL_IF(Decide(F::kFtruncate, -1, "ftruncate"), -1);
  return real_ftruncate(fd, len);
}

int ftruncate64(int fd, off64_t len) {
  IPCH_REAL(ftruncate64, int (*)(int, off64_t));
  IPCH_FAIL_IF(Decide(F::kFtruncate, -1, "ftruncate64"), -1);
  return real_ftruncate64(fd, len);
}

int shm_open(const char* name, int flags, mode_t mode) {
  IPCH_REAL(shm_open, int (*)(const char*, int, mode_t));
  IPCH_FAIL_IF(Decide(F::kShmOpen, -1, "shm_open", -1, true, (flags & O_CREAT) == 0), -1);
  return real_shm_open(name, flags, mode);
}

int shm_unlink(const char* name) {
  IPCH_REAL(shm_unlink, int (*)(const char*));
  IPCH_FAIL_IF(Decide(F::kShmUnlink, -1, "shm_unlink"), -1);
  return real_shm_unlink(name);
}

int memfd_create(const char* name, unsigned flags) {
  IPCH_REAL(memfd_create, int (*)(const char*, unsigned));
  IPCH_FAIL_IF(Decide(F::kMemfdCreate, -1, "memfd_create"), -1);
  return real_memfd_create(name, flags);
}

int shmget(key_t key, size_t size, int flags) {
  IPCH_REAL(shmget, int (*)(key_t, size_t, int));
  IPCH_FAIL_IF(Decide(F::kShmget, -1, "shmget", -1, true, (flags & IPC_CREAT) == 0), -1);
  return real_shmget(key, size, flags);
}

void* shmat(int id, const void* addr, int flags) {
  IPCH_REAL(shmat, void* (*)(int, const void*, int));
  IPCH_FAIL_IF(Decide(F::kShmat, -1, "shmat"), reinterpret_cast<void*>(-1));
  // Remembered as a mapping: a SysV attachment may be detached with munmap as well as shmdt.
  return F::Remembered(real_shmat(id, addr, flags), true);
}

int shmdt(const void* addr) {
  IPCH_REAL(shmdt, int (*)(const void*));
  IPCH_FAIL_IF(Decide(F::kShmdt, -1, "shmdt"), -1);
  (void)F::ForgetMapping(const_cast<void*>(addr));
  return real_shmdt(addr);
}

int shmctl(int id, int cmd, shmid_ds* buf) {
  IPCH_REAL(shmctl, int (*)(int, int, shmid_ds*));
  IPCH_FAIL_IF(Decide(F::kShmctl, -1, "shmctl"), -1);
  return real_shmctl(id, cmd, buf);
}

int msgget(key_t key, int flags) {
  IPCH_REAL(msgget, int (*)(key_t, int));
  IPCH_FAIL_IF(Decide(F::kMsgget, -1, "msgget", -1, true, (flags & IPC_CREAT) == 0), -1);
  const int q = real_msgget(key, flags);
  return (flags & IPC_CREAT) != 0 ? F::CreatedQueue(q) : q;
}

int msgsnd(int id, const void* msg, size_t n, int flags) {
  IPCH_REAL(msgsnd, int (*)(int, const void*, size_t, int));
  IPCH_FAIL_IF(Decide(F::kMsgsnd, -1, "msgsnd", (flags & IPC_NOWAIT) != 0 ? 1 : 0), -1);
  return real_msgsnd(id, msg, n, flags);
}

ssize_t msgrcv(int id, void* msg, size_t n, long type, int flags) {
  IPCH_REAL(msgrcv, ssize_t(*)(int, void*, size_t, long, int));
  IPCH_FAIL_IF(Decide(F::kMsgrcv, -1, "msgrcv", (flags & IPC_NOWAIT) != 0 ? 1 : 0), -1);
  return real_msgrcv(id, msg, n, type, flags);
}

int msgctl(int id, int cmd, msqid_ds* buf) {
  IPCH_REAL(msgctl, int (*)(int, int, msqid_ds*));
  IPCH_FAIL_IF(Decide(F::kMsgctl, -1, "msgctl"), -1);
  return real_msgctl(id, cmd, buf);
}

mqd_t mq_open(const char* name, int flags, ...) {
  IPCH_REAL(mq_open, mqd_t(*)(const char*, int, ...));
  mode_t mode = 0;
  mq_attr* attr = nullptr;
  if (flags & O_CREAT) {
    va_list ap;
    va_start(ap, flags);
    mode = static_cast<mode_t>(va_arg(ap, int));
    attr = va_arg(ap, mq_attr*);
    va_end(ap);
  }
  IPCH_FAIL_IF(Decide(F::kMqOpen, -1, "mq_open", -1, true, (flags & O_CREAT) == 0), static_cast<mqd_t>(-1));
  return (flags & O_CREAT) ? real_mq_open(name, flags, mode, attr) : real_mq_open(name, flags);
}

int mq_send(mqd_t q, const char* msg, size_t n, unsigned prio) {
  IPCH_REAL(mq_send, int (*)(mqd_t, const char*, size_t, unsigned));
  IPCH_FAIL_IF(Decide(F::kMqSend, -1, "mq_send", F::QueueNoWait(q)), -1);
  return real_mq_send(q, msg, n, prio);
}

int mq_timedsend(mqd_t q, const char* msg, size_t n, unsigned prio, const timespec* t) {
  IPCH_REAL(mq_timedsend, int (*)(mqd_t, const char*, size_t, unsigned, const timespec*));
  IPCH_FAIL_IF(Decide(F::kMqSend, -1, "mq_timedsend", F::QueueNoWait(q)), -1);
  return real_mq_timedsend(q, msg, n, prio, t);
}

ssize_t mq_receive(mqd_t q, char* msg, size_t n, unsigned* prio) {
  IPCH_REAL(mq_receive, ssize_t(*)(mqd_t, char*, size_t, unsigned*));
  IPCH_FAIL_IF(Decide(F::kMqReceive, -1, "mq_receive", F::QueueNoWait(q)), -1);
  return real_mq_receive(q, msg, n, prio);
}

ssize_t mq_timedreceive(mqd_t q, char* msg, size_t n, unsigned* prio, const timespec* t) {
  IPCH_REAL(mq_timedreceive, ssize_t(*)(mqd_t, char*, size_t, unsigned*, const timespec*));
  IPCH_FAIL_IF(Decide(F::kMqReceive, -1, "mq_timedreceive", F::QueueNoWait(q)), -1);
  return real_mq_timedreceive(q, msg, n, prio, t);
}

int mq_unlink(const char* name) {
  IPCH_REAL(mq_unlink, int (*)(const char*));
  IPCH_FAIL_IF(Decide(F::kMqUnlink, -1, "mq_unlink"), -1);
  return real_mq_unlink(name);
}

// libc's generic syscall(2): a futex wait has no libc function of its own, so a shared-memory
// ring waits and wakes through this one. Only the futex waits and wakes are faulted; every other
// call (the harness's own raw syscalls among them) goes straight through. Six arguments are
// taken whatever the call passed, as libc's own syscall(2) does: its assembly loads the sixth
// from the caller's stack, where a call with fewer arguments has none. That read of the
// caller's frame is the calling convention's, not a bug, so this one function is exempt from
// ASan's checks (which reported it as a stack-buffer-underflow for a three-argument call).
__attribute__((no_sanitize("address"))) long syscall(long number, ...) {
  IPCH_REAL(syscall, long (*)(long, ...));
  va_list ap;
  va_start(ap, number);
  long a[6];
  for (long& x : a) x = va_arg(ap, long);
  va_end(ap);
  if (number == SYS_futex) {
    const int cmd = static_cast<int>(a[1]) & FUTEX_CMD_MASK;
    if (cmd == FUTEX_WAIT || cmd == FUTEX_WAIT_BITSET) {
      // Without a timeout a futex wait cannot time out: another entry point, without ETIMEDOUT.
      const auto d = Decide(F::kFutex, -1, a[3] != 0 ? "futex_wait" : "futex_wait_untimed");
      IPCH_FAIL_IF(d, -1);
      if (d.fire && d.kind == Kind::kWake) return 0;  // woken, with nothing changed
    } else if (cmd == FUTEX_WAKE || cmd == FUTEX_WAKE_BITSET) {
      IPCH_FAIL_IF(Decide(F::kFutexWake, -1, "futex_wake"), -1);
    }
  }
  return real_syscall(number, a[0], a[1], a[2], a[3], a[4], a[5]);
}

}  // extern "C"
