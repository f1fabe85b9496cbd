// Plumbing shared by the socket and pipe transports: non-blocking accept and connect with
// deadlines, the errno → Errc mapping for connection setup, private directories, and pipe
// writes that cannot raise SIGPIPE.
#pragma once

#include <sys/socket.h>
#include <sys/uio.h>

#include <chrono>
#include <filesystem>
#include <string>

#include "ipch/deadline.h"
#include "ipch/result.h"
#include "ipch/unique_fd.h"

namespace ipch {

// accept4(NONBLOCK|CLOEXEC) after waiting for readiness; Timeout/WouldBlock by deadline.
Result<UniqueFd> AcceptWithDeadline(int listen_fd, Deadline d, const std::string& label);
// Non-blocking connect completed within the deadline. Refused/reset/missing → PeerClosed.
Result<UniqueFd> ConnectWithDeadline(int family, const sockaddr* addr, socklen_t len, Deadline d,
                                     const std::string& label);
// Bounds how long a dead TCP link (a cable pulled, a peer's host gone without a FIN) goes
// unnoticed: TCP_USER_TIMEOUT and keepalive probes from a third of `timeout` on, a sixth apart
// (tcp::Options::dead_link_timeout says what calls then see). Zero keeps the kernel's defaults.
Status SetTcpDeadLinkTimeout(int fd, std::chrono::milliseconds timeout, const std::string& label);
// Errors of connect(2) that mean "no live peer behind this address".
bool IsNoPeer(int err);

// The directory must be ours and closed to group and others; it is created (0700) if missing.
// Returns whether we created it. `label` starts the error messages ("unix listen").
Result<bool> EnsurePrivateDir(const std::filesystem::path& dir, const std::string& label);

// writev(2) that never raises SIGPIPE: on a pipe whose reader is gone it fails with EPIPE
// instead of killing the process. Pipes have no MSG_NOSIGNAL, so the calling thread's SIGPIPE
// is blocked at its first call and stays blocked (one pthread_sigmask per thread, none per
// write: what libraries that write to pipes commonly do); after an EPIPE, the SIGPIPE the
// kernel queued for the thread is taken off (sigpending + sigtimedwait), so none accumulates.
// A thread that blocked SIGPIPE itself before its first call keeps its mask and its pending
// signals as they are (as a plain writev would leave them). A thread that unblocks SIGPIPE
// after its first call takes the signal back: a later write to a pipe without reader raises it.
// A program this thread forks and execs inherits the mask, as it inherits an ignored SIGPIPE:
// one that relies on dying of SIGPIPE (`yes | head`) should get its mask reset before exec
// (posix_spawnattr_setsigmask, or pthread_sigmask in the child).
ssize_t WritevNoSigpipe(int fd, const iovec* iov, int iovcnt);

}  // namespace ipch
