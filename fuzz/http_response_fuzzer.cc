// Fuzzes the http client's decoding of what a server answers (http::DecodeResponse) and of a
// failed transfer (http::DecodeTransferError), against the mapping documented at the top of
// transports/http/http.h, which this target states again as its oracle.
// Input: [flags u8][status u16 LE][curl code u8][os errno u8], then "name: value" header lines
// up to an empty line, then the body. flags & 3 is the call (connect, send, receive, close);
// flags & 4 puts the body's true X-Ipch-Crc32c in, so the fuzzer gets past the checksum.
// Invariants: the outcome is exactly the documented one for the status and call; a receive is
// delivered only with a sequence number and a matching checksum, a connect only with a session
// id of 32 hex digits and a maximum above 0; a failed transfer is never OK and is only Timeout,
// PeerClosed, Corrupt, this host's own errno, or Closed for a transfer our own Close aborted.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "transports/http/http.h"
#include "transports/stream/crc32c.h"

namespace {
using ipch::Errc;
using ipch::Status;
using ipch::http::Op;

void Require(bool ok) {
  if (!ok) std::abort();
}

bool IsHex(std::string_view s, std::size_t n) {
  if (s.size() != n) return false;
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

// The documented outcome of `status` to `op`, for statuses that decide it alone; OK otherwise
// (the body and fields decide).
bool Expected(Op op, long status, const ipch::http::HeaderMap& h, Errc* want) {
  auto reason = h.find("x-ipch-reason");
  if (status == 413) *want = op == Op::Send ? Errc::MessageTooLarge : Errc::Corrupt;
  else if (status == 410 || status == 404) *want = Errc::PeerClosed;
  else if (status == 503) *want = op == Op::Send && reason != h.end() && reason->second == "queue-full" ? Errc::Timeout : Errc::PeerClosed;
  else if (status >= 400 && status < 500) *want = Errc::Corrupt;
  else if (status >= 500 && status < 600) *want = Errc::PeerClosed;
  else if (op == Op::Receive && status == 204) *want = Errc::Timeout;
  else if ((op == Op::Send || op == Op::Close) && (status == 200 || status == 204)) return false;
  else if (op == Op::Connect && status == 201) return false;
  else if (op == Op::Receive && status == 200) return false;
  else *want = Errc::Corrupt;
  return true;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ipch::http;
  if (size < 5) return 0;
  const Op op = static_cast<Op>(data[0] & 3);
  const long status = (data[1] | data[2] << 8) % 1000;
  const int curl_code = data[3];
  const long os_errno = data[4];
  std::string_view in(reinterpret_cast<const char*>(data + 5), size - 5);
  HeaderMap headers;
  for (;;) {
    const auto nl = in.find('\n');
    const std::string_view line = in.substr(0, nl);
    in = nl == std::string_view::npos ? std::string_view() : in.substr(nl + 1);
    if (line.empty()) break;
    const auto colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    std::string_view value = line.substr(colon + 1);
    while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
    headers[std::string(line.substr(0, colon))] = std::string(value);
    if (nl == std::string_view::npos) break;
  }
  const std::string_view body = in;
  if (data[0] & 4) {
    char hex[9];
    std::snprintf(hex, sizeof hex, "%08x", static_cast<unsigned>(ipch::Crc32c(body.data(), body.size())));
    headers["x-ipch-crc32c"] = hex;
  }

  Decoded d;
  const Status st = DecodeResponse(op, status, headers, body, &d, "fuzz");
  Errc want{};
  if (Expected(op, status, headers, &want)) {
    Require(st.Is(want));
  } else if (op == Op::Connect) {
    // "<32 hex> <max>\n"
    if (st.ok()) {
      Require(IsHex(d.session, 32) && d.max_message > 0);
      Require(body.substr(0, 33) == d.session + " ");
    } else {
      Require(st.Is(Errc::Corrupt));
    }
  } else if (op == Op::Receive) {
    if (st.ok()) {
      auto crc = headers.find("x-ipch-crc32c");
      char hex[9];
      std::snprintf(hex, sizeof hex, "%08x", static_cast<unsigned>(ipch::Crc32c(body.data(), body.size())));
      Require(d.seq > 0 && crc != headers.end() && crc->second == hex);
    } else {
      Require(st.Is(Errc::Corrupt));
    }
  } else {
    Require(st.ok());
  }
  if (!st.ok()) Require(st.error().context.compare(0, 4, "fuzz") == 0);

  const Status failed = DecodeTransferError(curl_code, os_errno, std::string(body.substr(0, 64)), "fuzz");
  Require(!failed.ok());
  Require(failed.Is(Errc::Timeout) || failed.Is(Errc::PeerClosed) || failed.Is(Errc::Corrupt) ||
          failed.error().code.category() == std::system_category() ||
          (failed.Is(Errc::Closed) && curl_code == 42 /* CURLE_ABORTED_BY_CALLBACK */));
  return 0;
}
