// What a posix_mq listener reads that another process wrote: the connection requests on its
// listen queue, and the owner record at "/name.owner". Any process of the same uid can put
// bytes there, so both are decoded with every field checked (fuzz/posix_mq_request_fuzzer.cc).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "../shm_ring/liveness.h"
#include "ipch/result.h"

namespace ipch::posix_mq::rendezvous {

inline constexpr uint32_t kRecordMagic = 0x50435049;  // "IPCP"
// u32 magic | u32 version | u32 pid | u32 0 | u64 start time | 8 bytes 0
inline constexpr std::size_t kRecordSize = 32;
inline constexpr uint32_t kRequestMagic = 0x51504d51;  // "QMPQ"
// A request: u32 magic | u32 pid | u64 start time | the connection's base name, NUL-padded.
inline constexpr std::size_t kRequestSize = 256;
inline constexpr std::size_t kNameRoom = kRequestSize - 16;

struct Request {
  shm::ProcessIdentity client;
  std::string base;  // the connection's three queues are base + ".up", ".dn", ".tk"
};

// A connection base name of the listener at `listen_name`: "<listen_name>." then lower-case hex
// digits and dots, short enough for a queue name with its suffix.
bool ValidBase(const std::string& listen_name, const std::string& base);
// The request of connector `who` for the queues named by `base` (cut to kNameRoom - 1 bytes).
void EncodeRequest(const shm::ProcessIdentity& who, const std::string& base, unsigned char (&req)[kRequestSize]);
// Corrupt unless `p` is a whole request naming a connection base of `listen_name`.
Result<Request> ParseRequest(const std::string& listen_name, const unsigned char* p, std::size_t n);

void EncodeRecord(const shm::ProcessIdentity& owner, unsigned char (&b)[kRecordSize]);
// The owner a record names; Corrupt (with `what` in the message) unless `b` is a whole record of ours.
Result<shm::ProcessIdentity> DecodeRecord(const unsigned char* b, std::size_t n, const std::string& what);

}  // namespace ipch::posix_mq::rendezvous
