// Plumbing shared by the socket and pipe transports: non-blocking accept and connect with
// deadlines, the errno → Errc mapping for connection setup, private directories, and pipe
// writes that cannot raise SIGPIPE.
#pragma once

#include <sys/socket.h>
#include <sys/uio.h>

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
// Errors of connect(2) that mean "no live peer behind this address".
bool IsNoPeer(int err);

// The directory must be ours and closed to group and others; it is created (0700) if missing.
// Returns whether we created it. `label` starts the error messages ("unix listen").
Result<bool> EnsurePrivateDir(const std::filesystem::path& dir, const std::string& label);

// writev(2) with SIGPIPE blocked in the calling thread for the call: on a pipe whose reader is
// gone it fails with EPIPE instead of killing the process, and the SIGPIPE the kernel raised
// for this thread is taken off before the mask is restored. If the caller already blocks
// SIGPIPE, its mask and pending set are left alone (as a plain writev would).
ssize_t WritevNoSigpipe(int fd, const iovec* iov, int iovcnt);

}  // namespace ipch
