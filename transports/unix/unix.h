// Unix-domain stream sockets. The socket file lives in a private directory (created 0700 if
// absent, refused if group/other can enter it); the file itself is 0600. A stale socket file
// left by a dead listener is detected (connect is refused) and reclaimed; a live listener or a
// non-socket file at the path is never touched (AlreadyExists), nor is a socket file of another
// uid (PermissionDenied). Connect looks at the path first: a link is not followed and a file of
// another uid is not connected to (PermissionDenied); a path that is no socket is Corrupt.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <string>
#include <vector>

#include "../stream/stream_connection.h"
#include "ipch/transport.h"

namespace ipch::unix_sock {

inline constexpr std::size_t kDefaultMaxMessage = 16u << 20;

class Listener {
 public:
  Listener() = default;
  Listener(Listener&& o) noexcept;
  Listener& operator=(Listener&& o) noexcept;
  ~Listener() { (void)Close(); }

  Result<StreamConnection> Accept(Deadline d);
  const std::string& address() const { return path_; }
  std::vector<std::filesystem::path> resource_paths() const;
  // Unlinks the socket file (only if it is still ours) and the directory if we created it.
  Status Close();
  int fd() const { return fd_.get(); }

 private:
  friend Result<Listener> Listen(const std::string&, std::size_t);
  UniqueFd fd_;
  std::string path_;
  dev_t dev_ = 0;
  ino_t ino_ = 0;
  std::string created_dir_;  // set if Listen made the directory: removed again by Close
  std::size_t max_ = kDefaultMaxMessage;
};

Result<Listener> Listen(const std::string& path, std::size_t max_message_size = kDefaultMaxMessage);
Result<StreamConnection> Connect(const std::string& path, Deadline d,
                                 std::size_t max_message_size = kDefaultMaxMessage);

struct Adapter {
  static constexpr std::string_view kName = "unix";
  static constexpr Caps kCaps =
      Cap::Stream | Cap::CrossProcess | Cap::NamedResource | Cap::PeerDeathDetect | Cap::RawPeer | Cap::SyscallIo;
  using Connection = StreamConnection;
  using Listener = unix_sock::Listener;
  static std::string Address(const EndpointSpec& s) { return (s.scratch_dir / (s.token + ".sock")).string(); }
  static Result<Listener> Listen(const std::string& a) { return unix_sock::Listen(a); }
  static Result<Connection> Connect(const std::string& a, Deadline d) { return unix_sock::Connect(a, d); }
  static Result<UniqueFd> ConnectRaw(const std::string& a, Deadline d);
  // The wire format, for hostile-peer tests that write frames through ConnectRaw.
  static Bytes FrameHeader(uint32_t length, ByteView payload) { return StreamConnection::FrameHeader(length, payload); }
  // The address is a socket address the stream toxics proxy can stand in front of.
  static constexpr bool kSocketAddress = true;
  // Impostors at the path, for the security group: a live socket whose file belongs to another
  // uid, a regular file, a link to a live socket of ours elsewhere.
  static Status PlantImpostor(const std::string& path, Impostor kind);
  static void RemoveImpostor(const std::string& path);
  static std::string_view ImpostorDoesNotApply(Impostor kind);
  static std::string_view RequestImpostorDoesNotApply(RequestImpostor) {
    return "a connection is made by connect(2) on the socket file: no request names an object";
  }
};

}  // namespace ipch::unix_sock
