#include "unix.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <map>
#include <mutex>

#include "../stream/socket_util.h"

namespace ipch::unix_sock {
namespace {

Result<sockaddr_un> MakeAddr(const std::string& path, const char* what) {
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof sa.sun_path) {
    return MakeError(Errc::InvalidArgument, std::string("unix ") + what + " '" + path + "': path must be 1.." +
                                                std::to_string(sizeof sa.sun_path - 1) + " bytes");
  }
  std::memcpy(sa.sun_path, path.c_str(), path.size() + 1);
  return sa;
}

}  // namespace

Listener::Listener(Listener&& o) noexcept { *this = std::move(o); }

Listener& Listener::operator=(Listener&& o) noexcept {
  if (this != &o) {
    (void)Close();
    fd_ = std::move(o.fd_);
    path_ = std::exchange(o.path_, {});
    dev_ = o.dev_;
    ino_ = o.ino_;
    created_dir_ = std::exchange(o.created_dir_, {});
    max_ = o.max_;
  }
  return *this;
}

std::vector<std::filesystem::path> Listener::resource_paths() const {
  if (path_.empty()) return {};
  return {std::filesystem::path(path_).parent_path(), path_};
}

Status Listener::Close() {
  fd_.reset();
  if (!path_.empty()) {
    // Unlink only the file we bound: a new listener may have reclaimed the path since.
    struct stat st {};
    if (::lstat(path_.c_str(), &st) == 0 && st.st_dev == dev_ && st.st_ino == ino_) ::unlink(path_.c_str());
    path_.clear();
  }
  if (!created_dir_.empty()) {
    ::rmdir(created_dir_.c_str());  // fails harmlessly if someone else put files there
    created_dir_.clear();
  }
  return Ok();
}

Result<Listener> Listen(const std::string& path, std::size_t max_message_size) {
  auto sa = MakeAddr(path, "listen");
  if (!sa.ok()) return std::move(sa).error();
  auto created = EnsurePrivateDir(std::filesystem::path(path).parent_path(), "unix listen");
  if (!created.ok()) return std::move(created).error();
  Listener l;  // from here on, its destructor undoes what we did
  if (*created) l.created_dir_ = std::filesystem::path(path).parent_path().string();
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd) return ErrnoError("unix listen " + path + ": socket");
  auto addr = reinterpret_cast<const sockaddr*>(&*sa);
  for (int attempt = 0;; ++attempt) {
    if (::bind(fd.get(), addr, sizeof *sa) == 0) break;
    if (errno != EADDRINUSE || attempt > 0) return ErrnoError("unix listen " + path + ": bind");
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0) continue;  // vanished meanwhile: retry
    if (S_ISLNK(st.st_mode)) {
      return MakeError(Errc::PermissionDenied, "unix listen " + path + ": the path is a symlink; refusing to touch it");
    }
    if (!S_ISSOCK(st.st_mode)) {
      return MakeError(Errc::AlreadyExists,
                       "unix listen " + path + ": path exists and is not a socket; refusing to remove it");
    }
    if (st.st_uid != ::geteuid()) {
      return MakeError(Errc::PermissionDenied, "unix listen " + path + ": the socket file belongs to uid " +
                                                   std::to_string(st.st_uid) + "; refusing to touch it");
    }
    // A socket file: live if someone accepts connections on it, stale if refused.
    auto probe = ConnectWithDeadline(AF_UNIX, addr, sizeof *sa, Deadline::After(Scaled(Millis(500))), "unix probe");
    if (probe.ok() || !probe.Is(Errc::PeerClosed)) {
      return MakeError(Errc::AlreadyExists, "unix listen " + path + ": a live listener owns this path");
    }
    if (::unlink(path.c_str()) != 0 && errno != ENOENT)
      return ErrnoError("unix listen " + path + ": unlink stale socket");
  }
  l.path_ = path;
  struct stat st {};
  if (::chmod(path.c_str(), 0600) != 0 || ::lstat(path.c_str(), &st) != 0) {
    return ErrnoError("unix listen " + path + ": chmod");
  }
  l.dev_ = st.st_dev;
  l.ino_ = st.st_ino;
  if (::listen(fd.get(), SOMAXCONN) != 0) return ErrnoError("unix listen " + path + ": listen");
  l.fd_ = std::move(fd);
  l.max_ = max_message_size;
  return l;
}

Result<StreamConnection> Listener::Accept(Deadline d) {
  auto fd = AcceptWithDeadline(fd_.get(), d, "unix accept " + path_);
  if (!fd.ok()) return std::move(fd).error();
  return StreamConnection(std::move(*fd), UniqueFd(), max_, true, "unix " + path_ + " (server)");
}

// What Connect refuses to connect to; a path that does not exist is left to connect(2).
Status CheckSocketFile(const std::string& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) return Ok();
  if (S_ISLNK(st.st_mode))
    return MakeError(Errc::PermissionDenied, "unix connect " + path + ": a symlink; not followed");
  if (!S_ISSOCK(st.st_mode)) return MakeError(Errc::Corrupt, "unix connect " + path + ": not a socket");
  if (st.st_uid != ::geteuid()) {
    return MakeError(Errc::PermissionDenied,
                     "unix connect " + path + ": the socket file belongs to uid " + std::to_string(st.st_uid));
  }
  return Ok();
}

Result<StreamConnection> Connect(const std::string& path, Deadline d, std::size_t max_message_size) {
  auto sa = MakeAddr(path, "connect");
  if (!sa.ok()) return std::move(sa).error();
  IPCH_RETURN_IF_ERROR(CheckSocketFile(path));
  auto fd =
      ConnectWithDeadline(AF_UNIX, reinterpret_cast<const sockaddr*>(&*sa), sizeof *sa, d, "unix connect " + path);
  if (!fd.ok()) return std::move(fd).error();
  return StreamConnection(std::move(*fd), UniqueFd(), max_message_size, true, "unix " + path + " (client)");
}

Result<UniqueFd> Adapter::ConnectRaw(const std::string& a, Deadline d) {
  auto sa = MakeAddr(a, "connect");
  if (!sa.ok()) return std::move(sa).error();
  return ConnectWithDeadline(AF_UNIX, reinterpret_cast<const sockaddr*>(&*sa), sizeof *sa, d, "unix raw connect " + a);
}

namespace {

// Listening sockets a planted impostor holds, by path (a live listener behind the file).
std::mutex g_impostors_mu;
std::map<std::string, UniqueFd> g_impostors;

Result<UniqueFd> ListeningSocketAt(const std::string& path) {
  auto sa = MakeAddr(path, "plant");
  if (!sa.ok()) return std::move(sa).error();
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return ErrnoError("plant: socket");
  if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&*sa), sizeof *sa) != 0)
    return ErrnoError("plant: bind " + path);
  if (::listen(fd.get(), 8) != 0) return ErrnoError("plant: listen " + path);
  return fd;
}

}  // namespace

std::string_view Adapter::ImpostorDoesNotApply(Impostor kind) {
  if (kind == Impostor::Uninitialised) {
    return "a socket file has no contents to initialise: one nobody listens on is a dead listener's and is "
           "reclaimed (PeerDeath.OrphanedListenerIsReportedAndReclaimed)";
  }
  return {};
}

Status Adapter::PlantImpostor(const std::string& path, Impostor kind) {
  UniqueFd held;
  switch (kind) {
    case Impostor::OtherOwner: {
      auto fd = ListeningSocketAt(path);
      if (!fd.ok()) return std::move(fd).error();
      held = std::move(*fd);
      if (::chown(path.c_str(), 65534, 65534) != 0) return ErrnoError("plant: chown " + path);
      break;
    }
    case Impostor::WrongSize: {
      UniqueFd f(::open(path.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600));
      if (!f) return ErrnoError("plant: create " + path);
      break;
    }
    case Impostor::Symlink: {
      auto fd = ListeningSocketAt(path + ".target");
      if (!fd.ok()) return std::move(fd).error();
      held = std::move(*fd);
      if (::symlink((path + ".target").c_str(), path.c_str()) != 0) return ErrnoError("plant: symlink " + path);
      break;
    }
    case Impostor::Uninitialised:
      return MakeError(Errc::InvalidArgument, "plant: " + std::string(ImpostorDoesNotApply(kind)));
  }
  std::lock_guard<std::mutex> lock(g_impostors_mu);
  g_impostors[path] = std::move(held);
  return Ok();
}

void Adapter::RemoveImpostor(const std::string& path) {
  {
    std::lock_guard<std::mutex> lock(g_impostors_mu);
    g_impostors.erase(path);
  }
  ::unlink(path.c_str());
  ::unlink((path + ".target").c_str());
}

}  // namespace ipch::unix_sock
