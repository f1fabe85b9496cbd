// In-process syscall fault injection. libipch_fault.so interposes libc's IPC entry points
// (docs/fault-model.md lists them); a test arms a plan, runs the transport, and disarms. Calls on
// a descriptor are faulted only for sockets and FIFOs, and nothing is faulted while disarmed, so
// the harness's own file I/O is never disturbed.
// Forked children inherit the armed plan (and its counters, which reset per process).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ipch::fault {

// What a rule matches: the five byte-I/O classes, then one bit per other entry point.
enum Op : uint64_t {
  kRead = 1u << 0,     // read, readv, recv, recvfrom, recvmsg (+ __*_chk)
  kWrite = 1u << 1,    // write, writev, send, sendto, sendmsg
  kPoll = 1u << 2,     // poll, ppoll, select, epoll_wait
  kAccept = 1u << 3,   // accept, accept4
  kConnect = 1u << 4,  // connect
  kSocket = 1u << 5,
  kSocketpair = 1u << 6,
  kBind = 1u << 7,
  kListen = 1u << 8,
  kShutdown = 1u << 9,
  kOpen = 1u << 10,   // open, open64
  kClose = 1u << 11,  // close (sockets and FIFOs only; the descriptor is released, as Linux does)
  kPipe = 1u << 12,   // pipe, pipe2
  kMkfifo = 1u << 13,
  kMmap = 1u << 14,  // mmap, mmap64
  kMunmap = 1u << 15,
  kFtruncate = 1u << 16,  // ftruncate, ftruncate64
  kShmOpen = 1u << 17,
  kShmUnlink = 1u << 18,
  kMemfdCreate = 1u << 19,
  kShmget = 1u << 20,
  kShmat = 1u << 21,
  kShmdt = 1u << 22,
  kShmctl = 1u << 23,
  kMsgget = 1u << 24,
  kMsgsnd = 1u << 25,
  kMsgrcv = 1u << 26,
  kMsgctl = 1u << 27,
  kMqOpen = 1u << 28,
  kMqSend = 1u << 29,     // mq_send, mq_timedsend
  kMqReceive = 1u << 30,  // mq_receive, mq_timedreceive
  kMqUnlink = 1u << 31,
  // syscall(SYS_futex, ..., FUTEX_WAIT or FUTEX_WAIT_BITSET, ...): the wait a shared-memory ring
  // blocks in (libc has no futex function; the `syscall` entry point is interposed for it).
  kFutex = uint64_t{1} << 32,
  // syscall(SYS_futex, ..., FUTEX_WAKE or FUTEX_WAKE_BITSET, ...): a ring's wake of its waiting
  // peer. It cannot fail where a caller sees it: only an any_errno rule or a kill reaches it.
  kFutexWake = uint64_t{1} << 33,
};
// Every operation (the plan text's `all`).
inline constexpr uint64_t kAllOps = (kFutexWake << 1) - 1;
// Short I/O applies to these; every other entry point takes errno faults only.
inline constexpr uint64_t kByteIo = kRead | kWrite;
// Early wake-ups (Kind::kWake) apply to these: the waits that can come back with nothing.
inline constexpr uint64_t kWaits = kPoll | kFutex;

// kErrno: the call fails with `err`; kShort: byte I/O moves 1..n-1 bytes; kDelay: the call
// sleeps `delay_us` first, then runs normally (latency without failure); kWake: a wait comes back
// at once with nothing ready, and the caller must look again: a futex wait returns 0 (a spurious
// wake-up), a poll or select says its first non-blocking descriptor asked about input or output
// is ready though it is not (a spurious readiness: the read or write that follows would block). kKill: the process SIGKILLs itself
// at the call, before making it; kKillAfter: once the call has returned, before its caller sees
// the result (a peer killed at its Nth call, from outside its code). A kill rule matches every
// call of its operations, whatever the call could fail with.
enum class Kind { kErrno, kShort, kDelay, kWake, kKill, kKillAfter };

// An `err` that stands for each call's typical failure: the first of its PossibleErrnos().
inline constexpr int kTypicalErrno = -1;

struct Rule {
  uint64_t ops = 0;
  Kind kind = Kind::kErrno;
  int err = 0;               // for kErrno: an errno, or kTypicalErrno
  uint32_t every_nth = 0;    // fire on calls n, 2n, 3n ... (counted per rule) ; 0: use probability
  double probability = 0.0;  // per matching call, decided by the plan's seed
  uint32_t max_fires = 0;    // 0: unlimited
  uint32_t delay_us = 0;     // for kDelay
  // kErrno rules fault only the calls that can really fail with `err` (PossibleErrnos): others
  // are neither faulted nor counted. any_errno lifts that, for a plan that means it.
  bool any_errno = false;
  // Only calls that look up an existing object rather than make one: connect, and open,
  // shm_open, mq_open without O_CREAT, msgget and shmget without IPC_CREAT (how a connector
  // finds its listener's socket, rendezvous or queue). Others are neither faulted nor counted.
  bool lookup_only = false;
  // Only calls made by this thread (a kernel thread id), or with a negative id, by every thread
  // but that one; 0: any. Not in the text form: a thread id means nothing to another run. How a
  // case faults the connector's calls alone, or the listener's threads' alone, when both work
  // in the same process.
  long thread = 0;
};
// The calling thread's kernel id, for Rule::thread.
long ThisThread();

// The errnos `entry_point` (read, connect, shmget, ... as docs/fault-model.md lists them) can
// really fail with on Linux, for the descriptors the engine faults (`fifo`: a FIFO rather than a
// socket; it matters for byte I/O only) and the objects the other calls create; the first is
// its typical failure. Empty for calls that cannot fail where a caller sees it (close of a
// socket or FIFO, shmdt of an attached segment) and for names that are not entry points.
std::vector<int> PossibleErrnos(std::string_view entry_point, bool fifo = false);
// Every interposed entry point's name, in the order of the table behind PossibleErrnos.
std::vector<std::string_view> EntryPoints();
// The errno of the last errno fault injected since Arm (0 if none): what a kTypicalErrno rule chose.
int LastInjectedErrno();

struct Plan {
  std::vector<Rule> rules;
  uint64_t seed = 0;
};

// The most rules one plan can hold.
inline constexpr std::size_t kMaxPlanRules = 8;

// Text form of a plan (docs/fault-model.md):
//   plan   := [seed=N ;] rule { ; rule }
//   rule   := ops : effect { , option }
//   ops    := op { | op }        op: read write poll accept connect (classes), any entry point by
//             name (socket, bind, close, mmap, shmget, msgsnd, mq_open, futex, ...), or a group: io
//             (the five classes), sockets, files, shm, sysv_shm, sysv_msg, mq, all
//   effect := short (read/write only) | wake (poll/futex only) | kill | kill_after | delay=<N>ms | delay=<N>us | EINTR | EAGAIN |
//   ECONNRESET | ... | <errno number> effect := ... | typical (each call's own typical errno, the first of its
//   PossibleErrnos) option := every=N (calls N, 2N, ...; the default is every=1) | p=P (probability, decided by
//             the seed) | max=N (at most N fires) | any_errno (also where the call could never
//             fail with that errno) | lookup (only calls that look up an existing object)
// e.g. "seed=7;read|write:EINTR,every=3;write:short,p=0.25,max=100". On a parse error, returns
// false and names the offending part in `error`.
bool ParsePlan(std::string_view text, Plan* out, std::string* error);
// The canonical text of a plan; ParsePlan(FormatPlan(p)) gives p back.
std::string FormatPlan(const Plan& plan);
// A process whose environment holds a plan under this name arms it when the library loads:
// forked children inherit the armed plan, exec'd ones (linked or LD_PRELOADed) re-read it.
inline constexpr const char* kPlanEnv = "IPCH_FAULT_PLAN";

// Arms `plan` process-wide. Not reentrant with another armed plan.
void Arm(const Plan& plan);
void Disarm();
// The plan armed now (not paused), if any.
std::optional<Plan> ArmedPlan();
// The environment entries that make a program exec'd now arm the plan armed here, as a forked
// child inherits it ("IPCH_FAULT_PLAN=<text>"), and count its faults and calls into this
// process's InjectedInTree() and census ("IPCH_FAULT_SHARED=/proc/<pid>/fd/<n>[:census]");
// none when no plan is armed and no census runs.
std::vector<std::string> PlanEnvironment();
// Arms `plan` in a program exec'd under its parent's plan: as Arm, but its faults count into
// the parent's tree when IPCH_FAULT_SHARED names it (the library's load does this).
void ArmAttached(const Plan& plan);
// Number of faults injected since the last Arm (in this process).
uint64_t InjectedCount();
// Faults injected since the last Arm here and in the children forked under that plan (one
// counter, shared across fork), and in the programs exec'd with PlanEnvironment(). A child that
// arms a plan of its own counts apart.
uint64_t InjectedInTree();
// Short transfers declined since the last Arm (in this process) because the call was on a socket
// that keeps message boundaries (SOCK_SEQPACKET, SOCK_DGRAM), which the kernel never cuts.
uint64_t DeclinedShortTransfers();
// Calls that matched rule `rule`'s operations since the last Arm, fired or not.
uint64_t MatchedCalls(std::size_t rule = 0);
// Systematic enumeration: runs `scenario(0)` once with nothing injected, counting the calls that
// match `ops`, then `scenario(n)` for n = 1 .. that count with errno `err` injected at exactly
// the n-th matching call, so every call site gets its turn. Returns the count. The scenario
// asserts what must happen; it must make the same calls each time up to the fault.
uint64_t Enumerate(uint64_t ops, int err, const std::function<void(uint64_t n)>& scenario);
// Human-readable log of the last injected faults ("write #3 -> EINTR"), newest last.
std::vector<std::string> InjectedLog();
// True if the interposer is actually in the call path (a self-check run by Arm's callers).
bool Active();

// ---- The fault-space census: which entry points the code under test calls, and which faults
// each of them took. While a census runs, every call of an interposed entry point that a plan
// could fault (on a socket or FIFO for the calls on a descriptor; a shared or file mapping for
// mmap, and its munmap) is counted, armed plan or not, in this process and in the children
// forked while it runs (the counters live in a shared page); each injected fault is counted by
// entry point and Kind. A program exec'd with PlanEnvironment() (the harness's exec'd peers)
// counts into it too; one the code under test execs by itself counts apart (not here).
inline constexpr std::size_t kKinds = 6;  // the Kind values, in order
const char* KindName(Kind kind);          // "errno", "short", "delay", "wake", "kill", "kill_after"

struct CensusEntry {
  std::string entry_point;
  uint64_t calls = 0;               // calls made (faulted or not)
  uint64_t faults[kKinds] = {};     // faults injected, by Kind
  uint64_t Faulted() const {
    uint64_t n = 0;
    for (uint64_t f : faults) n += f;
    return n;
  }
};
// Entry points with a call or a fault, in the order of EntryPoints().
using Census = std::vector<CensusEntry>;

// Starts counting from zero (a census already running restarts).
void BeginCensus();
// Stops counting and returns what was counted since BeginCensus (empty if none ran).
Census EndCensus();
// Text form, one entry per ';': "read=12:errno 3,short 1;write=9" (the harness's reports
// parse it back: ipch::testing::ParseCensus).
std::string FormatCensus(const Census& c);

// Stops injecting and counting until Unpause, keeping the armed plan's counters (a scenario
// under Enumerate pauses around its own bookkeeping, e.g. a resource snapshot). Returns
// whether a plan was armed.
bool Pause();
void Unpause();
// Stops the census counting until ResumeCensus (the harness's own calls inside a case are not
// the transport's). Returns whether a census was counting.
bool PauseCensus();
void ResumeCensus();
// Pauses both the plan and the census.
class ScopedPause {
 public:
  ScopedPause() : was_armed_(Pause()), was_counting_(PauseCensus()) {}
  ~ScopedPause() {
    if (was_counting_) ResumeCensus();
    if (was_armed_) Unpause();
  }
  ScopedPause(const ScopedPause&) = delete;
  ScopedPause& operator=(const ScopedPause&) = delete;

 private:
  bool was_armed_;
  bool was_counting_;
};

// Arms in the constructor, disarms in the destructor.
class ScopedPlan {
 public:
  explicit ScopedPlan(const Plan& p) { Arm(p); }
  ~ScopedPlan() { Disarm(); }
  ScopedPlan(const ScopedPlan&) = delete;
  ScopedPlan& operator=(const ScopedPlan&) = delete;
};

}  // namespace ipch::fault

// Marks the calling thread as the harness's own (a toxics proxy's, an HTTP interposer's): its
// calls are never faulted nor counted by a census. A C symbol, so that a library of the
// harness can call it through a weak reference without linking the fault library.
extern "C" void ipch_fault_exempt_thread();
// Adds `delta` to the calling thread's census pause (ipch/harness_calls.h): while above zero,
// the thread's calls are not counted by a census (a plan still faults them).
extern "C" void ipch_fault_census_pause_thread(int delta);
