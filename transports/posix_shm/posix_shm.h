// The posix_shm adapter: the shared-memory ring transport (transports/shm_ring) over
// POSIX shared memory (shm_open + ftruncate + mmap); the address is the
// rendezvous name, "/name".
#pragma once

#include "../shm_ring/shm.h"

namespace ipch::posix_shm {

using Adapter = shm::Adapter<shm::Backing::Posix>;

}  // namespace ipch::posix_shm
