// Conformance group Security: the fixture its parts share (raw connections, frames).
#pragma once

#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <utility>

#include "fixture.h"
#include "hooks.h"
#include "ipch/result.h"
#include "ipch/testing.h"
#include "ipch/transport.h"
#include "ipch/unique_fd.h"

namespace ipch::conformance {

template <class T>
class Security : public TransportTest<T> {
 protected:
  // Writes raw bytes into a connection to the listener and returns the accepted end.
  Result<typename T::Connection> HostileConnection(typename T::Listener& l, const Bytes& bytes, bool close_after,
                                                   UniqueFd* keep) {
    auto raw = ConnectRaw<T>(l.address(), Settle());
    if (!raw.ok()) return std::move(raw).error();
    std::size_t off = 0;
    while (off < bytes.size()) {
      ssize_t w = RetryEintr([&] { return RawWrite(raw->get(), bytes.data() + off, bytes.size() - off); });
      if (w < 0) return ErrnoError("raw send");
      off += static_cast<std::size_t>(w);
    }
    if (!close_after) *keep = std::move(*raw);
    return l.Accept(Settle());
  }
  // A well-formed header announcing `n` bytes whose payload is `payload`.
  static Bytes Header(uint32_t n, ByteView payload = {}) {
    if constexpr (kHasFrameHeader<T>) {
      return T::FrameHeader(n, payload);
    } else {
      return {};
    }
  }
  static Bytes Frame(ByteView payload) {
    Bytes f = Header(static_cast<uint32_t>(payload.size()), payload);
    f.insert(f.end(), payload.begin(), payload.end());
    return f;
  }
};
TYPED_TEST_SUITE_P(Security);

}  // namespace ipch::conformance
