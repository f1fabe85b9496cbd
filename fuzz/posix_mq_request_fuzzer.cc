// Fuzzes what a posix_mq listener decodes from bytes another process of the same uid wrote
// (transports/posix_mq/rendezvous.h): a connection request taken off the listen queue, and the
// owner record at "/name.owner". The first input byte picks which; the rest is the message (a
// request of any size: mq_receive hands over whatever was put) or the record's bytes.
// Invariants: a refusal is Corrupt; an accepted request names a connection base under the
// listen name (never another path: the listener opens and unlinks the queues it names) that,
// with its suffixes, fits a queue name; what is accepted encodes back to the same fields.
#include <climits>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "transports/posix_mq/rendezvous.h"

namespace {
void Require(bool ok) {
  if (!ok) std::abort();
}
const std::string kListen = "/ipch-fuzz-listen";
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ipch::posix_mq::rendezvous;
  if (size == 0) return 0;
  const unsigned char* p = data + 1;
  const std::size_t n = size - 1;
  if (data[0] & 1) {
    auto owner = DecodeRecord(p, n, "fuzz");
    if (!owner.ok()) {
      Require(owner.Is(ipch::Errc::Corrupt));
      return 0;
    }
    unsigned char again[kRecordSize];
    EncodeRecord(*owner, again);
    auto back = DecodeRecord(again, sizeof again, "fuzz");
    Require(back.ok() && back->pid == owner->pid && back->start_time == owner->start_time);
    return 0;
  }
  auto r = ParseRequest(kListen, p, n);
  if (!r.ok()) {
    Require(r.Is(ipch::Errc::Corrupt));
    return 0;
  }
  Require(r->base.compare(0, kListen.size() + 1, kListen + ".") == 0);
  Require(r->base.find('/', 1) == std::string::npos);  // one flat queue name, no path
  Require(r->base.size() + 3 <= NAME_MAX);
  for (std::size_t i = kListen.size(); i < r->base.size(); ++i) {
    const char c = r->base[i];
    Require((c >= 'a' && c <= 'f') || (c >= '0' && c <= '9') || c == '.');
  }
  unsigned char again[kRequestSize];
  EncodeRequest(r->client, r->base, again);
  auto back = ParseRequest(kListen, again, sizeof again);
  Require(back.ok() && back->base == r->base && back->client.pid == r->client.pid &&
          back->client.start_time == r->client.start_time);
  return 0;
}
