// Decoding the stream frame's header (stream_connection.h gives the format): shared by the
// transports that read frames from a byte stream, so that each says Corrupt for the same bytes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "crc32c.h"
#include "ipch/result.h"
#include "wire.h"

namespace ipch::frame {

struct Header {
  uint32_t length = 0;       // of the payload
  uint32_t payload_crc = 0;  // its CRC-32C
};

// The 12 header bytes at `h`, checked: Corrupt when their own checksum fails (a damaged length)
// or the length is above `max` (the receiver's max_message_size).
inline Result<Header> DecodeHeader(const unsigned char* h, std::size_t max, const std::string& label) {
  if (wire::GetU32(h + 8) != Crc32c(h, 8)) {
    return MakeError(Errc::Corrupt, label + ": frame header checksum mismatch (damaged length)");
  }
  const uint32_t n = wire::GetU32(h);
  if (n > max) {
    return MakeError(Errc::Corrupt, label + ": peer announced " + std::to_string(n) + " bytes > max_message_size " +
                                        std::to_string(max));
  }
  return Header{n, wire::GetU32(h + 4)};
}

// Corrupt when a whole payload does not match its header's checksum.
inline Status CheckPayload(const void* payload, std::size_t n, uint32_t crc, const std::string& label) {
  if (Crc32c(payload, n) == crc) return Ok();
  return MakeError(Errc::Corrupt, label + ": payload checksum mismatch in a frame of " + std::to_string(n) + " bytes");
}

}  // namespace ipch::frame
