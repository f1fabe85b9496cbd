// The battery over every reference transport. This binary is also the main job's matrix.
#include "conformance.h"
#include "transports/fifo/fifo.h"
#include "transports/http/http.h"
#include "transports/inmem/inmem.h"
#include "transports/posix_mq/posix_mq.h"
#include "transports/posix_shm/posix_shm.h"
#include "transports/sysv_mq/sysv_mq.h"
#include "transports/sysv_shm/sysv_shm.h"
#include "transports/tcp/tcp.h"
#include "transports/unix/unix.h"

IPCH_INSTANTIATE_CONFORMANCE(Conformance, ipch::inmem::Adapter, ipch::tcp::Adapter<false>, ipch::tcp::Adapter<true>,
                             ipch::unix_sock::Adapter, ipch::fifo::Adapter, ipch::posix_shm::Adapter, ipch::sysv_shm::Adapter,
                             ipch::posix_mq::Adapter, ipch::sysv_mq::Adapter, ipch::http::Adapter);
