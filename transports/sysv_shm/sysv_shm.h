// The sysv_shm adapter: the shared-memory ring transport (transports/shm_ring) over
// System V shared memory (shmget + shmat); the address is the rendezvous
// key, "sysv:0x<key>".
#pragma once

#include "../shm_ring/shm.h"

namespace ipch::sysv_shm {

using Adapter = shm::Adapter<shm::Backing::Sysv>;

}  // namespace ipch::sysv_shm
