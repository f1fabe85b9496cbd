// Fuzzes the fifo listener's request check (fifo::ParseRequest): 64 bytes a hostile local
// process can write into the rendezvous FIFO. Shorter inputs are zero-padded.
// Invariants: an accepted name is a connection name (starts "c-", only [a-z0-9-], at most
// kMaxNameLength bytes: never a path), and encoding it again gives a request that parses to it.
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "transports/fifo/fifo.h"

namespace {
void Require(bool ok) {
  if (!ok) std::abort();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  unsigned char rec[ipch::fifo::kRequestSize] = {};
  std::memcpy(rec, data, std::min(size, sizeof rec));
  auto name = ipch::fifo::ParseRequest(rec);
  if (!name.ok()) {
    Require(name.Is(ipch::Errc::Corrupt));
    return 0;
  }
  Require(name->size() <= ipch::fifo::kMaxNameLength && name->compare(0, 2, "c-") == 0);
  for (char c : *name) Require((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-');
  unsigned char again[ipch::fifo::kRequestSize];
  ipch::fifo::EncodeRequest(1, *name, again);
  auto reparsed = ipch::fifo::ParseRequest(again);
  Require(reparsed.ok() && *reparsed == *name);
  return 0;
}
