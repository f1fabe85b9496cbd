// Stream toxics: a fault proxy between the two ends of a byte-stream connection (tcp, unix).
// Clients connect to the proxy; for each one it connects upstream and forwards both directions,
// applying per-direction toxics: latency with jitter, a bandwidth limit, slicing into small
// segments, close or reset after N bytes, a stall, and bit flips. Every random choice comes from
// the seed (per connection and direction), so a run replays: the same bytes in give the same
// flips and the same segment sizes. Used as a library by the conformance Fault group, and from
// the command line as ipch_proxy. Grammar in docs/fault-model.md.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "ipch/deadline.h"
#include "ipch/result.h"

namespace ipch::toxics {

inline constexpr uint64_t kNever = UINT64_MAX;

// The toxics of one direction. Defaults forward bytes untouched.
struct Toxics {
  Clock::duration latency{};      // every chunk is held this long after it was read
  Clock::duration jitter{};       // plus 0..jitter more, drawn per chunk; order is kept
  uint64_t rate = 0;              // bytes per second; 0: unlimited
  std::size_t slice = 0;          // forward in segments of 1..slice bytes (drawn); 0: as read
  Clock::duration slice_delay{};  // pause between segments
  uint64_t close_after = kNever;  // forward this many bytes, then close the connection (FIN both ends)
  uint64_t reset_after = kNever;  // forward this many bytes, then reset it (RST both ends)
  uint64_t stall_after = kNever;  // forward this many bytes, then stop forwarding this direction
  Clock::duration stall_for{};    // how long a stall lasts; 0: until Proxy::Resume() or Stop()
  double flip = 0.0;              // probability, per byte, that one bit of it is flipped
  uint64_t flip_at = kNever;      // flip one bit of the byte at this offset of the stream

  bool operator==(const Toxics&) const = default;
};

// Client-to-upstream ("up") and upstream-to-client ("down").
enum class Direction { kUp = 0, kDown = 1 };

struct Spec {
  Toxics up;
  Toxics down;
  uint64_t seed = 0;
  bool operator==(const Spec&) const = default;
};

// Text form (docs/fault-model.md):
//   spec   := [seed=N ;] part { ; part }
//   part   := (up | down | both) : toxic { , toxic }
//   toxic  := latency=D | jitter=D | rate=BYTES_PER_S | slice=N | slice_delay=D | close_after=N |
//             reset_after=N | stall_after=N | stall_for=D | flip=P | flip_at=N
//   D      := <N>us | <N>ms | <N>s
// e.g. "seed=3;up:slice=1;down:latency=5ms,jitter=2ms,flip=0.001". On a parse error, returns
// false and names the offending part in `error`.
bool ParseSpec(std::string_view text, Spec* out, std::string* error);
// The canonical text; ParseSpec(FormatSpec(s)) gives s back.
std::string FormatSpec(const Spec& spec);

// A one-off event aimed at a point of one direction's bytes, counted over all its connections
// (Proxy::ArmEvent): how a test hits the inside of the next message it sends without knowing
// how the transport frames it, or over which connection (an HTTP client opens several).
enum class Event { kReset, kClose, kStall, kFlip };

// The threads of proxies started from now on are the harness's own: no fault plan or census of
// the fault library touches their calls (default). A test of the proxy's own error handling
// makes them faultable.
void SetThreadsFaultable(bool faultable);

// What the proxy did, for reports and tests.
struct Stats {
  uint64_t connections = 0;      // clients accepted
  uint64_t forwarded[2] = {};    // bytes written onward, per Direction
  uint64_t segments[2] = {};     // writes onward (one per slice), per Direction
  uint64_t flips[2] = {};        // bits flipped, per Direction
  uint64_t resets = 0;           // connections reset by reset_after (or upstream refusal)
  uint64_t closes = 0;           // connections closed by close_after
  uint64_t stalls = 0;           // stalls begun
  uint64_t receivers_gone = 0;   // writes onward that failed: that direction's receiver was gone
};

class Proxy {
 public:
  // Listens on `listen` (a socket address: HOST:PORT with port 0 for any, or a unix socket
  // path, created 0600 and removed by Stop) and forwards each client to `upstream`.
  static Result<std::unique_ptr<Proxy>> Start(const std::string& listen, const std::string& upstream, Spec spec);
  // The same toxics between the ends of a connection over two pipes (a FIFO pair), both ends in
  // this process: `up_fd` and `down_fd` are the write-only ends the client and the server write
  // to. Each keeps its number and flags but now leads into a pipe of the proxy, which forwards to
  // the original one: one connection ("conn 1"), no address. A close (armed or close_after) ends
  // both pipes, as a socket's close ends both directions: each reader sees the end of its
  // stream, each writer EPIPE; so does Stop. A pipe has no reset: reset_after and kReset end
  // the pipes just as a close does. InvalidArgument unless both are pipes' write-only ends.
  static Result<std::unique_ptr<Proxy>> Splice(int up_fd, int down_fd, Spec spec);
  // The write-only ends of pipes and FIFOs open in this process, lowest first: a test takes the
  // ones a connection opened (new since it looked before connecting) and Splices them.
  static std::vector<int> PipeWriteEnds();
  // Bytes waiting in the pipe `fd` belongs to (either end): which of two pipes a message is on.
  static std::size_t Buffered(int fd);
  ~Proxy();
  Proxy(const Proxy&) = delete;
  Proxy& operator=(const Proxy&) = delete;

  // The address clients connect to (the bound port when `listen` asked for port 0).
  const std::string& address() const;
  // Ends every stall in progress, and lets stall_after fire again only on new connections.
  void Resume();
  // Replaces the toxics for bytes read from now on (existing connections included).
  void Update(const Spec& spec);
  // Once `bytes` more bytes have been forwarded in `dir` (over all connections, counted from
  // now), the connection that carries the next one is reset or closed (counted in resets and
  // closes), stalls in that direction until Resume() (counted in stalls), or that byte has one
  // bit flipped (drawn from the seed; counted in flips). One event per direction at a time: a
  // second call replaces one not yet fired.
  void ArmEvent(Direction dir, uint64_t bytes, Event event);
  // Bytes taken for forwarding in `dir` over all connections so far (what ArmEvent counts
  // from): every byte a receiver has seen is counted, and none the sender has not sent yet.
  uint64_t Taken(Direction dir) const;
  Stats stats() const;
  // Waits until `done(stats())` holds (true) or the deadline passes (false): how a test knows a
  // stall has begun or N bytes went through, without sleeping.
  bool WaitFor(const std::function<bool(const Stats&)>& done, Deadline d) const;
  // One line per toxic event ("conn 1 up: flip bit 3 of byte 1234"), oldest first.
  std::vector<std::string> Log() const;
  // Closes every connection and the listener, joins all threads. Idempotent.
  void Stop();

  // A listen address of the same kind as `upstream` for a proxy in front of it: port 0 on the
  // same host, or `<path>.proxy` beside a unix socket path.
  static std::string FrontFor(const std::string& upstream);

  struct Impl;

 private:
  explicit Proxy(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace ipch::toxics
