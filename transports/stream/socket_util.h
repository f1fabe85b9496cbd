// Socket plumbing shared by the socket transports: non-blocking accept and connect with
// deadlines, and the errno → Errc mapping for connection setup.
#pragma once

#include <sys/socket.h>

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

}  // namespace ipch
