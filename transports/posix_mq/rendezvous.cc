#include "rendezvous.h"

#include <algorithm>
#include <climits>
#include <cstring>

#include "../stream/wire.h"

namespace ipch::posix_mq::rendezvous {

using wire::GetU32;
using wire::PutU32;

bool ValidBase(const std::string& listen_name, const std::string& base) {
  if (base.size() <= listen_name.size() + 1 || base.compare(0, listen_name.size(), listen_name) != 0 ||
      base[listen_name.size()] != '.' || base.size() + 3 > NAME_MAX) {
    return false;
  }
  for (std::size_t i = listen_name.size(); i < base.size(); ++i) {
    const char c = base[i];
    if (!((c >= 'a' && c <= 'f') || (c >= '0' && c <= '9') || c == '.')) return false;
  }
  return true;
}

void EncodeRequest(const shm::ProcessIdentity& who, const std::string& base, unsigned char (&req)[kRequestSize]) {
  std::memset(req, 0, kRequestSize);
  PutU32(req, kRequestMagic);
  PutU32(req + 4, who.pid);
  PutU32(req + 8, static_cast<uint32_t>(who.start_time));
  PutU32(req + 12, static_cast<uint32_t>(who.start_time >> 32));
  std::memcpy(req + 16, base.data(), std::min(base.size(), kNameRoom - 1));
}

Result<Request> ParseRequest(const std::string& listen_name, const unsigned char* p, std::size_t n) {
  if (n != kRequestSize || GetU32(p) != kRequestMagic) return MakeError(Errc::Corrupt, "malformed connection request");
  Request r;
  r.client.pid = GetU32(p + 4);
  r.client.start_time = uint64_t{GetU32(p + 8)} | uint64_t{GetU32(p + 12)} << 32;
  const char* name = reinterpret_cast<const char*>(p + 16);
  const std::size_t len = strnlen(name, kNameRoom);
  if (len == kNameRoom) return MakeError(Errc::Corrupt, "request name not terminated");
  r.base.assign(name, len);
  if (!ValidBase(listen_name, r.base)) return MakeError(Errc::Corrupt, "request names no connection of this listener");
  return r;
}

void EncodeRecord(const shm::ProcessIdentity& owner, unsigned char (&b)[kRecordSize]) {
  std::memset(b, 0, sizeof b);
  PutU32(b, kRecordMagic);
  PutU32(b + 4, 1);
  PutU32(b + 8, owner.pid);
  PutU32(b + 16, static_cast<uint32_t>(owner.start_time));
  PutU32(b + 20, static_cast<uint32_t>(owner.start_time >> 32));
}

Result<shm::ProcessIdentity> DecodeRecord(const unsigned char* b, std::size_t n, const std::string& what) {
  if (n != kRecordSize || GetU32(b) != kRecordMagic || GetU32(b + 4) != 1) {
    return MakeError(Errc::Corrupt, what + " is not an owner record of ours");
  }
  shm::ProcessIdentity owner;
  owner.pid = GetU32(b + 8);
  owner.start_time = uint64_t{GetU32(b + 16)} | uint64_t{GetU32(b + 20)} << 32;
  return owner;
}

}  // namespace ipch::posix_mq::rendezvous
