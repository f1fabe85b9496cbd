// Named pipes. The address is a private directory (created 0700, refused if group or others
// can enter it). In it the listener keeps a rendezvous FIFO, `listen`, open for reading and
// writing, so that it exists and has a reader exactly as long as the listener lives.
//
// Connecting. The connector makes a pair of FIFOs, `c-<pid>-<n>-<random>.up` and `.dn` (0600):
// it opens `.dn` for reading and `.up` for reading and writing (so the pipe has a writer from
// the start, and the listener never reads a false EOF), then writes a fixed 64-byte request
// naming the pair into `listen` (one write of less than PIPE_BUF: requests from concurrent
// connectors never interleave). The listener's acceptor thread opens `.up` for reading and
// `.dn` for writing and answers with one byte on `.dn`. The connector then reopens `.up`
// write-only, drops its read-write descriptor and unlinks both names: from here the pair is an
// ordinary pipe pair, and a closed, exited or killed end is seen by the kernel (EOF, EPIPE).
//
// Why a thread. A FIFO drops its buffered bytes when its last descriptor closes. A connector
// that sends and exits before Accept is called must still be heard (as a socket's backlog
// keeps its bytes), so the listener takes each connection off the rendezvous at once, as the
// kernel's accept queue does for sockets, and Accept pops it from an in-process queue.
//
// Peer death before the answer: the connector polls its `listen` descriptor too, which
// reports POLLERR once no reader is left (the listener died), giving PeerClosed. A listener
// that is killed leaves `listen` without a reader: the next Listen on the directory detects
// that (open for writing fails with ENXIO) and reclaims the directory. A live one gives
// AlreadyExists. The rendezvous FIFO is made under a private name and hard-linked into place,
// so `listen` never exists without its reader.
//
// Framing is the stream framing shared with tcp and unix (12-byte header with CRC-32C). A
// frame of at most PIPE_BUF bytes goes out in one write and is atomic; larger ones are framed
// across writes, which is safe because each pipe has one writer. Writes run with SIGPIPE
// blocked, so a vanished reader is EPIPE (PeerClosed), never a signal.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "../stream/stream_connection.h"
#include "ipch/closing_ptr.h"
#include "ipch/transport.h"

namespace ipch::fifo {

inline constexpr std::size_t kDefaultMaxMessage = 16u << 20;
// The connection request a connector writes into `listen` (little-endian):
//   u32 magic "IPCF" | u32 version (1) | u32 connector pid | u32 reserved | char name[48]
inline constexpr std::size_t kRequestSize = 64;
inline constexpr std::size_t kMaxNameLength = 47;

class Listener {
 public:
  struct State;
  Listener();
  explicit Listener(std::unique_ptr<State> s);
  Listener(Listener&&) noexcept;
  Listener& operator=(Listener&&) noexcept;
  ~Listener();

  Result<StreamConnection> Accept(Deadline d);
  const std::string& address() const;
  // The directory and the rendezvous FIFO.
  std::vector<std::filesystem::path> resource_paths() const;
  // Stops the acceptor thread; connections never accepted are closed (their connectors see
  // PeerClosed); removes `listen`, leftover connection FIFOs, and the directory if we made it.
  Status Close();
  // Requests the acceptor dropped (malformed, naming something that is not our FIFO, or whose
  // connector was gone). For tests.
  uint64_t rejected_requests() const;

 private:
  ClosingPtr<State> s_;
};

Result<Listener> Listen(const std::string& dir, std::size_t max_message_size = kDefaultMaxMessage);
Result<StreamConnection> Connect(const std::string& dir, Deadline d, std::size_t max_message_size = kDefaultMaxMessage);

// Checks a request and returns the FIFO base name it carries, or why it is refused. Pure; the
// acceptor thread runs every request through it.
Result<std::string> ParseRequest(const unsigned char (&record)[kRequestSize]);
void EncodeRequest(uint32_t pid, const std::string& name, unsigned char (&record)[kRequestSize]);

struct Adapter {
  static constexpr std::string_view kName = "fifo";
  static constexpr Caps kCaps =
      Cap::Stream | Cap::CrossProcess | Cap::NamedResource | Cap::PeerDeathDetect | Cap::RawPeer | Cap::SyscallIo;
  using Connection = StreamConnection;
  using Listener = fifo::Listener;
  static std::string Address(const EndpointSpec& s) { return (s.scratch_dir / (s.token + ".fifo")).string(); }
  static Result<Listener> Listen(const std::string& a) { return fifo::Listen(a); }
  static Result<Connection> Connect(const std::string& a, Deadline d) { return fifo::Connect(a, d); }
  // A connection whose only descriptor is the write end into the server (blocking), for
  // hostile-peer tests; the server's replies find no reader (EPIPE, PeerClosed).
  static Result<UniqueFd> ConnectRaw(const std::string& a, Deadline d);
  static Bytes FrameHeader(uint32_t length, ByteView payload) { return StreamConnection::FrameHeader(length, payload); }
  // Impostors at the rendezvous, for the security group: a directory and live `listen` of
  // another uid, a regular file as `listen`, `listen` as a link to a live FIFO elsewhere.
  static Status PlantImpostor(const std::string& dir, Impostor kind);
  static void RemoveImpostor(const std::string& dir);
  static std::string_view ImpostorDoesNotApply(Impostor kind);
  // A request in the listener's rendezvous naming a FIFO pair that is a pair of links to live
  // FIFOs, regular files, another uid's live FIFOs, or live FIFOs outside the directory.
  static Status PlantRequestImpostor(const Listener& l, RequestImpostor kind);
  static void RemoveRequestImpostors(const Listener& l);
};

}  // namespace ipch::fifo
