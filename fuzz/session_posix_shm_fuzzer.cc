// The session fuzzer (ipch/fuzz_session.h) over the posix_shm transport, with 16 KiB rings.
// A connection's rings are taken whole when it is made (posix_fallocate: a full /dev/shm is
// ENOSPC then, never SIGBUS at a later write), so the default 1 MiB rings made each input cost
// two MiB of pages; 16 KiB still holds all a session leaves unread in a direction (8 KiB and
// framing), and its messages wrap around the ring every few sends.
#include "ipch/fuzz_session.h"
#include "transports/posix_shm/posix_shm.h"

namespace {

struct SmallRings : ipch::posix_shm::Adapter {
  static constexpr ipch::shm::Options kOptions{.ring_capacity = 16 * 1024};
  static ipch::Result<Listener> Listen(const std::string& a) {
    return ipch::shm::Listen(ipch::shm::Backing::Posix, a, kOptions);
  }
  static ipch::Result<Connection> Connect(const std::string& a, ipch::Deadline d) {
    return ipch::shm::Connect(ipch::shm::Backing::Posix, a, d, kOptions);
  }
};

}  // namespace

IPCH_FUZZ_SESSION(SmallRings)
