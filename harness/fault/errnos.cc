// What each interposed entry point can really fail with on Linux, for the descriptors the engine
// faults (sockets and FIFOs) and the objects the other calls create: from the man pages (section
// 2 and 3) and, where those are silent, the kernel (e.g. connect and mq_timedsend allocate and
// can return ENOMEM). An errno outside its call's list is never injected unless a rule says
// any_errno: a library is right not to handle what the kernel never returns (close of a socket
// failing with EIO aborted a real library's whole run).
//
// The first errno of each list is the call's typical failure (a rule with kTypicalErrno injects
// it): resource exhaustion where the call has one, else its likeliest refusal (listen has only
// EADDRINUSE; what releases, EACCES).
#include <cerrno>
#include <cstring>
#include <iterator>
#include <string_view>
#include <vector>

#include "ipch/fault.h"

namespace ipch::fault {
namespace {

constexpr int kEnd = 0;

struct Entry {
  const char* name;
  int socket[14];  // also the list of calls that take no descriptor
  int fifo[4];     // byte I/O on a FIFO, where it differs (a pipe has no connection to lose)
};

// Byte-I/O lists shared by the aliases of one class.
#define IPCH_READS \
  { ECONNRESET, EINTR, EAGAIN, ENOMEM, ETIMEDOUT, ECONNREFUSED, ENOTCONN, EHOSTUNREACH, ENETUNREACH, kEnd }
#define IPCH_READS_FIFO \
  { EINTR, EAGAIN, kEnd }
#define IPCH_WRITES \
  { EPIPE, ECONNRESET, EINTR, EAGAIN, ENOBUFS, ENOMEM, ETIMEDOUT, ENOTCONN, EHOSTUNREACH, ENETUNREACH, ENETDOWN, kEnd }
#define IPCH_WRITES_FIFO \
  { EPIPE, EINTR, EAGAIN, kEnd }
#define IPCH_WAITS \
  { EINTR, ENOMEM, kEnd }

// clang-format off
constexpr Entry kTable[] = {
    {"read", IPCH_READS, IPCH_READS_FIFO},
    {"readv", IPCH_READS, IPCH_READS_FIFO},
    {"recv", IPCH_READS, IPCH_READS_FIFO},
    {"recvfrom", IPCH_READS, IPCH_READS_FIFO},
    {"recvmsg", IPCH_READS, IPCH_READS_FIFO},
    {"write", IPCH_WRITES, IPCH_WRITES_FIFO},
    {"writev", IPCH_WRITES, IPCH_WRITES_FIFO},
    {"send", IPCH_WRITES, IPCH_WRITES_FIFO},
    {"sendto", IPCH_WRITES, IPCH_WRITES_FIFO},
    {"sendmsg", IPCH_WRITES, IPCH_WRITES_FIFO},
    {"poll", IPCH_WAITS, IPCH_WAITS},
    {"ppoll", IPCH_WAITS, IPCH_WAITS},
    {"select", IPCH_WAITS, IPCH_WAITS},
    {"epoll_wait", IPCH_WAITS, IPCH_WAITS},
    {"accept", {EMFILE, ENFILE, ENOBUFS, ENOMEM, EINTR, EAGAIN, ECONNABORTED, EPROTO, EPERM, kEnd}, {kEnd}},
    {"accept4", {EMFILE, ENFILE, ENOBUFS, ENOMEM, EINTR, EAGAIN, ECONNABORTED, EPROTO, EPERM, kEnd}, {kEnd}},
    // Not EINPROGRESS: it is how a non-blocking connect succeeds, not a failure to inject.
    {"connect", {ENOMEM, ECONNREFUSED, ENOENT, EACCES, EAGAIN, EINTR, ETIMEDOUT, ENOBUFS, ENETUNREACH, EHOSTUNREACH, EADDRNOTAVAIL, EPERM, kEnd}, {kEnd}},
    {"socket", {EMFILE, ENFILE, ENOBUFS, ENOMEM, EACCES, kEnd}, {kEnd}},
    {"socketpair", {EMFILE, ENFILE, ENOMEM, kEnd}, {kEnd}},
    {"bind", {ENOMEM, EADDRINUSE, EACCES, ENOSPC, EADDRNOTAVAIL, ENOENT, EROFS, ELOOP, kEnd}, {kEnd}},
    {"listen", {EADDRINUSE, kEnd}, {kEnd}},
    {"shutdown", {ENOTCONN, kEnd}, {kEnd}},
    {"open", {EMFILE, ENFILE, ENOMEM, ENOSPC, EACCES, ENOENT, EEXIST, EINTR, ENXIO, ELOOP, EPERM, EROFS, kEnd}, {kEnd}},
    {"open64", {EMFILE, ENFILE, ENOMEM, ENOSPC, EACCES, ENOENT, EEXIST, EINTR, ENXIO, ELOOP, EPERM, EROFS, kEnd}, {kEnd}},
    // Linux releases the descriptor before anything can fail, and a socket or FIFO has nothing
    // to flush: their close never fails.
    {"close", {kEnd}, {kEnd}},
    {"pipe", {EMFILE, ENFILE, kEnd}, {kEnd}},
    {"pipe2", {EMFILE, ENFILE, kEnd}, {kEnd}},
    {"mkfifo", {ENOSPC, EDQUOT, EEXIST, EACCES, ENOENT, ELOOP, EROFS, kEnd}, {kEnd}},
    {"mmap", {ENOMEM, EAGAIN, ENFILE, EACCES, EPERM, kEnd}, {kEnd}},
    {"mmap64", {ENOMEM, EAGAIN, ENFILE, EACCES, EPERM, kEnd}, {kEnd}},
    // Unmapping part of a mapping splits it, which fails past vm.max_map_count.
    {"munmap", {ENOMEM, kEnd}, {kEnd}},
    {"ftruncate", {EFBIG, EINTR, EPERM, EIO, kEnd}, {kEnd}},
    {"ftruncate64", {EFBIG, EINTR, EPERM, EIO, kEnd}, {kEnd}},
    {"shm_open", {EMFILE, ENFILE, ENOSPC, EACCES, EEXIST, ENOENT, kEnd}, {kEnd}},
    {"shm_unlink", {EACCES, ENOENT, kEnd}, {kEnd}},
    {"memfd_create", {EMFILE, ENFILE, ENOMEM, kEnd}, {kEnd}},
    {"shmget", {ENOMEM, ENOSPC, EEXIST, ENOENT, EACCES, EPERM, kEnd}, {kEnd}},
    {"shmat", {ENOMEM, EACCES, EIDRM, EINVAL, kEnd}, {kEnd}},
    // Only EINVAL, for an address where no segment is attached: never for one that is.
    {"shmdt", {kEnd}, {kEnd}},
    {"shmctl", {EACCES, EPERM, EIDRM, EINVAL, kEnd}, {kEnd}},
    {"msgget", {ENOSPC, ENOMEM, EEXIST, ENOENT, EACCES, kEnd}, {kEnd}},
    {"msgsnd", {EAGAIN, EINTR, ENOMEM, EIDRM, EACCES, EINVAL, kEnd}, {kEnd}},
    {"msgrcv", {EINTR, ENOMSG, EIDRM, E2BIG, EACCES, EINVAL, kEnd}, {kEnd}},
    {"msgctl", {EACCES, EPERM, EIDRM, EINVAL, kEnd}, {kEnd}},
    {"mq_open", {EMFILE, ENFILE, ENOMEM, ENOSPC, EACCES, EEXIST, ENOENT, EINVAL, kEnd}, {kEnd}},
    // Without a timeout mq_send and mq_receive cannot time out.
    {"mq_send", {EAGAIN, EINTR, ENOMEM, kEnd}, {kEnd}},
    {"mq_timedsend", {EAGAIN, EINTR, ETIMEDOUT, ENOMEM, kEnd}, {kEnd}},
    {"mq_receive", {EAGAIN, EINTR, EMSGSIZE, kEnd}, {kEnd}},
    {"mq_timedreceive", {EAGAIN, EINTR, ETIMEDOUT, EMSGSIZE, kEnd}, {kEnd}},
    {"mq_unlink", {EACCES, ENOENT, kEnd}, {kEnd}},
    // futex(2) FUTEX_WAIT: a signal, the word no longer holding the value expected, the timeout.
    {"futex_wait", {EINTR, EAGAIN, ETIMEDOUT, kEnd}, {kEnd}},
    {"futex_wait_untimed", {EINTR, EAGAIN, kEnd}, {kEnd}},
    // FUTEX_WAKE fails only for a bad address or operation (EFAULT, EINVAL), never for a caller's
    // valid word.
    {"futex_wake", {kEnd}, {kEnd}},
};
// clang-format on

#undef IPCH_READS
#undef IPCH_READS_FIFO
#undef IPCH_WRITES
#undef IPCH_WRITES_FIFO
#undef IPCH_WAITS

}  // namespace

const int* ErrnosOf(const char* entry_point, bool fifo) {
  for (const Entry& e : kTable) {
    if (std::strcmp(e.name, entry_point) == 0) return fifo && e.fifo[0] != kEnd ? e.fifo : e.socket;
  }
  return nullptr;
}

std::vector<int> PossibleErrnos(std::string_view entry_point, bool fifo) {
  std::vector<int> out;
  for (const Entry& e : kTable) {
    if (entry_point != e.name) continue;
    for (const int* p = fifo && e.fifo[0] != kEnd ? e.fifo : e.socket; *p != kEnd; ++p) out.push_back(*p);
  }
  return out;
}

int EntryIndex(const char* entry_point) {
  for (std::size_t i = 0; i < std::size(kTable); ++i) {
    if (std::strcmp(kTable[i].name, entry_point) == 0) return static_cast<int>(i);
  }
  return -1;
}

std::vector<std::string_view> EntryPoints() {
  std::vector<std::string_view> out;
  for (const Entry& e : kTable) out.emplace_back(e.name);
  return out;
}

}  // namespace ipch::fault
