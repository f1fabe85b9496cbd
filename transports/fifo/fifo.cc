#include "fifo.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <system_error>
#include <thread>

#include "../stream/socket_util.h"
#include "../stream/wire.h"

namespace ipch::fifo {
namespace {

constexpr uint32_t kMagic = 0x46435049;  // "IPCF" read as little-endian
constexpr uint32_t kVersion = 1;
constexpr unsigned char kAccepted = 'A';
constexpr const char* kListenName = "listen";
// A resource error (out of memory or descriptors) while taking a connection is retried after
// this pause, for as long as the connector waits; a connector that gave up is then dropped.
constexpr auto kRetryPause = std::chrono::milliseconds(50);
constexpr int kMaxResourceRetries = 200;

constexpr int kOpenFlags = O_NONBLOCK | O_CLOEXEC | O_NOFOLLOW;
constexpr int kPipeSize = 1 << 20;  // the default /proc/sys/fs/pipe-max-size

using wire::GetU32;
using wire::Hex;
using wire::PutU32;
using wire::RandomWord;

bool ValidName(const std::string& n) {
  if (n.size() < 3 || n.size() > kMaxNameLength || n.compare(0, 2, "c-") != 0) return false;
  for (char c : n) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) return false;
  }
  return true;
}

bool IsResourceError(int err) {
  return err == ENOMEM || err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOSPC;
}

// A FIFO of ours, closed to everyone else (checked on the open descriptor).
bool IsOurFifo(int fd) {
  struct stat st {};
  return ::fstat(fd, &st) == 0 && S_ISFIFO(st.st_mode) && st.st_uid == ::geteuid() && (st.st_mode & 077) == 0;
}

// Removes what connectors and dead listeners left in `dir`: connection FIFOs (ours, by name)
// and rendezvous FIFOs under a private name whose creator is gone.
void SweepLeftovers(const std::string& dir) {
  DIR* d = ::opendir(dir.c_str());
  if (!d) return;
  while (dirent* e = ::readdir(d)) {
    const std::string n = e->d_name;
    bool stale = n.compare(0, 2, "c-") == 0;
    if (n.compare(0, 7, "listen.") == 0) {
      const long pid = std::strtol(n.c_str() + 7, nullptr, 10);
      stale = pid > 0 && ::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH;
    }
    if (!stale) continue;
    struct stat st {};
    const std::string path = dir + "/" + n;
    if (::lstat(path.c_str(), &st) == 0 && S_ISFIFO(st.st_mode) && st.st_uid == ::geteuid()) ::unlink(path.c_str());
  }
  ::closedir(d);
}

// Writes all of `data` to a pipe, with SIGPIPE blocked; EAGAIN waits for room by `d`.
Status WriteAll(int fd, const unsigned char* data, std::size_t n, Deadline d, const std::string& label) {
  std::size_t off = 0;
  while (off < n) {
    iovec iov{const_cast<unsigned char*>(data + off), n - off};
    const ssize_t w = WritevNoSigpipe(fd, &iov, 1);
    if (w > 0) {
      off += static_cast<std::size_t>(w);
      continue;
    }
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      // The deadline is looked at on every turn: a poll may say "writable" when it is not.
      pollfd p{fd, POLLOUT, 0};
      if (d.expired() || (::poll(&p, 1, d.PollTimeoutMs()) == 0 && d.expired()))
        return MakeError(Errc::Timeout, label + ": the rendezvous FIFO stayed full");
      continue;
    }
    if (w < 0 && errno == EPIPE) return MakeError(Errc::PeerClosed, label + ": the listener is gone");
    return ErrnoError(label + ": write request");
  }
  return Ok();
}

struct PipePair {
  UniqueFd from_server;  // .dn, read end
  UniqueFd to_server;    // .up, write end
};

// The connector's half of the rendezvous (see fifo.h).
Result<PipePair> Handshake(const std::string& dir, Deadline d, const std::string& label) {
  const bool probe = d.expired();  // "don't wait": no answer yet is WouldBlock, not Timeout
  const std::string listen_path = dir + "/" + kListenName;
  UniqueFd lfd(::open(listen_path.c_str(), O_WRONLY | kOpenFlags));
  if (!lfd) {
    if (errno == ENXIO || errno == ENOENT || errno == ENOTDIR) {
      return MakeError(Errc::PeerClosed, label + ": no listener at " + dir + " (" + std::strerror(errno) + ")");
    }
    if (errno == ELOOP)
      return MakeError(Errc::PermissionDenied, label + ": " + listen_path + " is a symlink; not followed");
    return ErrnoError(label + ": open " + listen_path);
  }
  struct stat st {};
  if (::fstat(lfd.get(), &st) != 0) return ErrnoError(label + ": fstat " + listen_path);
  if (!S_ISFIFO(st.st_mode)) return MakeError(Errc::Corrupt, label + ": " + listen_path + " is not a FIFO");
  // Our requests name our FIFOs: never hand them to a listener running as someone else.
  if (st.st_uid != ::geteuid()) {
    return MakeError(Errc::PermissionDenied,
                     label + ": " + listen_path + " is owned by uid " + std::to_string(st.st_uid) + ", not us");
  }

  static std::atomic<uint32_t> counter{0};
  const std::string name =
      "c-" + std::to_string(::getpid()) + "-" + std::to_string(counter.fetch_add(1)) + "-" + Hex(RandomWord(), 12);
  const std::string up = dir + "/" + name + ".up", dn = dir + "/" + name + ".dn";
  // Whatever happens, the names go: on success both ends have the FIFOs open.
  struct Unlinker {
    const std::string& a;
    const std::string& b;
    ~Unlinker() {
      ::unlink(a.c_str());
      ::unlink(b.c_str());
    }
  } unlink_names{up, dn};
  if (::mkfifo(up.c_str(), 0600) != 0) return ErrnoError(label + ": mkfifo " + up);
  if (::mkfifo(dn.c_str(), 0600) != 0) return ErrnoError(label + ": mkfifo " + dn);
  PipePair p;
  p.from_server = UniqueFd(::open(dn.c_str(), O_RDONLY | kOpenFlags));
  if (!p.from_server) return ErrnoError(label + ": open " + dn);
  UniqueFd up_rw(::open(up.c_str(), O_RDWR | kOpenFlags));  // a writer from the start: no false EOF
  if (!up_rw) return ErrnoError(label + ": open " + up);
  // Room for a whole 64 KiB message with its header in each direction, and fewer wake-ups for
  // streams. The size is a hint: a user over pipe-user-pages-soft keeps the default 64 KiB.
  for (int fd : {p.from_server.get(), up_rw.get()}) {
    for (int size : {kPipeSize, kPipeSize / 4}) {
      if (::fcntl(fd, F_SETPIPE_SZ, size) >= 0) break;
    }
  }

  unsigned char req[kRequestSize];
  EncodeRequest(static_cast<uint32_t>(::getpid()), name, req);
  IPCH_RETURN_IF_ERROR(WriteAll(lfd.get(), req, sizeof req, d, label));

  // The answer: one byte on .dn. Meanwhile `lfd` reports POLLERR if the listener dies.
  for (;;) {
    pollfd pf[2] = {{p.from_server.get(), POLLIN, 0}, {lfd.get(), 0, 0}};
    const int r = ::poll(pf, 2, d.PollTimeoutMs());
    if (r < 0) {
      if (errno == EINTR) continue;
      return ErrnoError(label + ": poll");
    }
    if (pf[0].revents != 0) {
      unsigned char b = 0;
      const ssize_t n = ::read(p.from_server.get(), &b, 1);
      if (n == 1 && b == kAccepted) break;
      if (n == 1) return MakeError(Errc::Corrupt, label + ": unexpected answer byte " + std::to_string(b));
      // End of file: the listener opened `.dn` and closed it again (the kernel then says POLLHUP),
      // or a readiness that was not (no writer yet: read says 0 before any writer came).
      if (n == 0 && (pf[0].revents & POLLHUP)) {
        return MakeError(Errc::PeerClosed, label + ": the listener closed before taking the connection");
      }
      if ((n == 0 || errno == EAGAIN) && d.expired()) {  // a spurious readiness, and no time left
        return MakeError(probe ? Errc::WouldBlock : Errc::Timeout, label + ": no answer from the listener");
      }
      if (n == 0 || errno == EINTR || errno == EAGAIN) continue;
      return ErrnoError(label + ": read answer");
    }
    if (pf[1].revents & (POLLERR | POLLHUP)) {
      return MakeError(Errc::PeerClosed, label + ": the listener died before taking the connection");
    }
    if (r == 0 && d.expired()) {
      return MakeError(probe ? Errc::WouldBlock : Errc::Timeout, label + ": no answer from the listener");
    }
  }
  // Write-only from now on, so that our exit is the server's EOF; the server's descriptor keeps
  // the pipe open while we swap.
  p.to_server = UniqueFd(::open(up.c_str(), O_WRONLY | kOpenFlags));
  if (!p.to_server) {
    if (errno == ENOENT) return MakeError(Errc::PeerClosed, label + ": the listener closed while connecting");
    return ErrnoError(label + ": reopen " + up);
  }
  return p;
}

}  // namespace

void EncodeRequest(uint32_t pid, const std::string& name, unsigned char (&record)[kRequestSize]) {
  std::memset(record, 0, kRequestSize);
  PutU32(record, kMagic);
  PutU32(record + 4, kVersion);
  PutU32(record + 8, pid);
  std::memcpy(record + 16, name.data(), std::min(name.size(), kRequestSize - 16));
}

Result<std::string> ParseRequest(const unsigned char (&record)[kRequestSize]) {
  if (GetU32(record) != kMagic) return MakeError(Errc::Corrupt, "fifo request: bad magic");
  if (GetU32(record + 4) != kVersion) {
    return MakeError(Errc::Corrupt, "fifo request: unknown version " + std::to_string(GetU32(record + 4)));
  }
  const char* name = reinterpret_cast<const char*>(record + 16);
  const std::size_t len = strnlen(name, kRequestSize - 16);
  if (len == kRequestSize - 16) return MakeError(Errc::Corrupt, "fifo request: name not terminated");
  for (std::size_t i = len; i < kRequestSize - 16; ++i) {
    if (name[i] != 0) return MakeError(Errc::Corrupt, "fifo request: bytes after the name");
  }
  std::string n(name, len);
  if (!ValidName(n)) return MakeError(Errc::Corrupt, "fifo request: invalid connection name");
  return n;
}

struct Listener::State {
  Status Close();  // idempotent; the endpoint's ClosingPtr calls it

  std::string dir;
  std::size_t max = kDefaultMaxMessage;
  bool remove_dir = false;  // we made the directory, or reclaimed it from a dead listener
  UniqueFd listen_fd;       // `listen`, read-write
  dev_t dev = 0;
  ino_t ino = 0;
  UniqueFd stop_fd;  // eventfd: Close wakes the acceptor with it
  std::thread acceptor;
  std::mutex mu;
  std::condition_variable cv;
  std::deque<StreamConnection> ready;  // taken off the rendezvous, not yet accepted
  bool closed = false;
  // While the acceptor waits out a shortage (out of descriptors) to take a connection: the
  // error it keeps getting, which an Accept that finds nothing ready reports instead of Timeout.
  std::optional<Error> short_of;
  // A connection dropped after such a shortage (its connector gave up, or the acceptor did):
  // the next Accept reports it once, so that the listener learns why a client was not served.
  std::optional<Error> lost;
  std::atomic<uint64_t> rejected{0};
  std::atomic<bool> stopping{false};  // set by Close before it signals stop_fd

  std::string Label() const { return "fifo " + dir; }
  // Whether Close has asked the acceptor to stop (its eventfd counts; a poll that merely says
  // the eventfd is readable may be a spurious readiness).
  bool StopAsked() {
    uint64_t v = 0;
    return ::read(stop_fd.get(), &v, sizeof v) == sizeof v || stopping.load();
  }
  // Waits one retry pause; true if Close asked us to stop meanwhile.
  bool PauseOrStop() {
    pollfd p{stop_fd.get(), POLLIN, 0};
    return ::poll(&p, 1, static_cast<int>(kRetryPause.count())) > 0 && StopAsked();
  }
  void Run();
  // Takes one connection; false if Close asked us to stop.
  bool Take(const std::string& name);
};

void Listener::State::Run() {
  // Our own thread: a connector that vanished must give EPIPE here, not a process-wide SIGPIPE.
  sigset_t pipe_only;
  sigemptyset(&pipe_only);
  sigaddset(&pipe_only, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe_only, nullptr);
  unsigned char buf[kRequestSize * 16];
  std::size_t have = 0;
  for (;;) {
    pollfd p[2] = {{listen_fd.get(), POLLIN, 0}, {stop_fd.get(), POLLIN, 0}};
    if (::poll(p, 2, -1) < 0) {
      if (errno != EINTR && PauseOrStop()) return;
      continue;
    }
    if (p[1].revents != 0 && StopAsked()) return;
    if ((p[0].revents & POLLIN) == 0) continue;
    const ssize_t n = ::read(listen_fd.get(), buf + have, sizeof buf - have);
    if (n < 0) {
      if (errno != EINTR && errno != EAGAIN && PauseOrStop()) return;
      continue;
    }
    have += static_cast<std::size_t>(n);
    std::size_t off = 0;
    while (have - off >= kRequestSize) {
      // Resynchronise on the magic after bytes that are not a request (a hostile writer).
      if (GetU32(buf + off) != kMagic) {
        ++off;
        ++rejected;
        continue;
      }
      unsigned char rec[kRequestSize];
      std::memcpy(rec, buf + off, kRequestSize);
      off += kRequestSize;
      auto name = ParseRequest(rec);
      if (!name.ok()) {
        ++rejected;
        continue;
      }
      if (!Take(*name)) return;
    }
    std::memmove(buf, buf + off, have - off);
    have -= off;
  }
}

bool Listener::State::Take(const std::string& name) {
  const std::string up = dir + "/" + name + ".up", dn = dir + "/" + name + ".dn";
  for (int attempt = 0;; ++attempt) {
    UniqueFd from_client(::open(up.c_str(), O_RDONLY | kOpenFlags));
    int err = errno;
    if (from_client) {
      if (!IsOurFifo(from_client.get())) break;  // not a connection FIFO of ours: never touched
      UniqueFd to_client(::open(dn.c_str(), O_WRONLY | kOpenFlags));
      err = errno;
      if (to_client) {
        if (!IsOurFifo(to_client.get())) break;
        ssize_t w;
        int tries = 0;
        do {
          w = ::write(to_client.get(), &kAccepted, 1);  // SIGPIPE is blocked in this thread
        } while (w < 0 && (errno == EINTR || errno == EAGAIN) && ++tries < 1000);
        err = errno;
        if (w == 1) {
          std::lock_guard<std::mutex> lock(mu);
          short_of.reset();
          ready.emplace_back(std::move(from_client), std::move(to_client), max, false, Label() + " (server)");
          cv.notify_all();
          return true;
        }
      }
    }
    if (!IsResourceError(err) || attempt >= kMaxResourceRetries) {
      // The connector is gone (ENXIO: no reader on .dn; ENOENT: names removed) or this cannot
      // work: drop it. Names a dead connector left are removed by the listener's Close.
      break;
    }
    {
      std::lock_guard<std::mutex> lock(mu);
      short_of = ErrnoError(Label() + ": taking a connection: open of its FIFO", err);
    }
    if (PauseOrStop()) return false;
  }
  std::lock_guard<std::mutex> lock(mu);
  if (short_of) {
    lost = Error{short_of->code, short_of->context + "; that connection was lost"};
    short_of.reset();
    cv.notify_all();
  }
  ++rejected;
  return true;
}

Listener::Listener() = default;
Listener::Listener(std::unique_ptr<State> s) : s_(std::move(s)) {}
Listener::Listener(Listener&& o) noexcept = default;
Listener& Listener::operator=(Listener&&) noexcept = default;
Listener::~Listener() = default;
Status Listener::Close() { return s_ ? s_->Close() : Ok(); }

const std::string& Listener::address() const {
  static const std::string kNone;
  return s_ ? s_->dir : kNone;
}

std::vector<std::filesystem::path> Listener::resource_paths() const {
  if (!s_) return {};
  return {s_->dir, s_->dir + "/" + kListenName};
}

uint64_t Listener::rejected_requests() const { return s_ ? s_->rejected.load() : 0; }

Status Listener::State::Close() {
  State& s = *this;
  {
    std::lock_guard<std::mutex> lock(s.mu);
    if (s.closed) return Ok();
    s.closed = true;
  }
  s.cv.notify_all();  // an Accept waiting in another thread returns Closed
  s.stopping.store(true);
  if (s.stop_fd) {
    const uint64_t one = 1;
    (void)!::write(s.stop_fd.get(), &one, sizeof one);
  }
  if (s.acceptor.joinable()) s.acceptor.join();
  s.ready.clear();  // their connectors see EOF and EPIPE: PeerClosed
  s.listen_fd.reset();
  const std::string listen_path = s.dir + "/" + kListenName;
  struct stat st {};
  // Unlink only the FIFO we linked: a new listener may have reclaimed the directory since.
  if (s.ino != 0 && ::lstat(listen_path.c_str(), &st) == 0 && st.st_dev == s.dev && st.st_ino == s.ino) {
    ::unlink(listen_path.c_str());
    SweepLeftovers(s.dir);
    if (s.remove_dir) ::rmdir(s.dir.c_str());  // fails harmlessly if someone else put files there
  } else if (s.ino == 0 && s.remove_dir) {
    ::rmdir(s.dir.c_str());  // Listen failed before the rendezvous was in place
  }
  return Ok();
}

Result<StreamConnection> Listener::Accept(Deadline d) {
  if (!s_) return MakeError(Errc::Closed, "fifo accept: listener is closed");
  State& s = *s_;
  std::unique_lock<std::mutex> lock(s.mu);
  const bool probe = d.expired();
  for (;;) {
    if (s.closed) return MakeError(Errc::Closed, s.Label() + ": accept: listener is closed");
    if (!s.ready.empty()) {
      StreamConnection c = std::move(s.ready.front());
      s.ready.pop_front();
      return c;
    }
    if (s.lost) {
      Error e = std::move(*s.lost);
      s.lost.reset();
      return e;
    }
    if (d.expired()) {
      if (s.short_of) return *s.short_of;  // a connection is there, and cannot be taken yet
      return MakeError(probe ? Errc::WouldBlock : Errc::Timeout, s.Label() + ": no connection to accept");
    }
    if (d.never()) {
      s.cv.wait(lock);
    } else {
      s.cv.wait_until(lock, d.at());
    }
  }
}

Result<Listener> Listen(const std::string& dir, std::size_t max_message_size) {
  const std::string label = "fifo listen " + dir;
  if (dir.empty() || dir.size() + kMaxNameLength + 8 >= PATH_MAX) {
    return MakeError(Errc::InvalidArgument, label + ": the directory path must be 1.." +
                                                std::to_string(PATH_MAX - kMaxNameLength - 9) + " bytes");
  }
  auto created = EnsurePrivateDir(dir, label);
  if (!created.ok()) return std::move(created).error();
  auto state = std::make_unique<Listener::State>();
  Listener::State& s = *state;
  s.dir = dir;
  s.max = max_message_size;
  s.remove_dir = *created;
  Listener l(std::move(state));  // from here on, its destructor undoes what we did

  // The rendezvous FIFO is made and opened under a private name, then linked into place.
  const std::string listen_path = dir + "/" + kListenName;
  const std::string tmp = listen_path + "." + std::to_string(::getpid()) + "." + Hex(RandomWord(), 12);
  if (::mkfifo(tmp.c_str(), 0600) != 0) return ErrnoError(label + ": mkfifo " + tmp);
  s.listen_fd = UniqueFd(::open(tmp.c_str(), O_RDWR | kOpenFlags));
  if (!s.listen_fd) {
    Error e = ErrnoError(label + ": open " + tmp);
    ::unlink(tmp.c_str());
    return e;
  }
  for (int attempt = 0;; ++attempt) {
    if (::link(tmp.c_str(), listen_path.c_str()) == 0) break;
    Error e = ErrnoError(label + ": link " + listen_path);
    if (errno != EEXIST || attempt >= 2) {
      ::unlink(tmp.c_str());
      return e;
    }
    // Taken: by a live listener (it reads `listen`), or left by a dead one (nobody does).
    UniqueFd probe(::open(listen_path.c_str(), O_WRONLY | kOpenFlags));
    const int err = errno;
    if (probe || (err != ENXIO && err != ENOENT)) {
      ::unlink(tmp.c_str());
      struct stat pst {};
      if (probe && ::fstat(probe.get(), &pst) == 0 && !S_ISFIFO(pst.st_mode)) {
        return MakeError(Errc::AlreadyExists, label + ": `listen` exists and is not a FIFO; refusing to remove it");
      }
      if (probe) return MakeError(Errc::AlreadyExists, label + ": a live listener owns this directory");
      if (err == ELOOP)
        return MakeError(Errc::PermissionDenied, label + ": `listen` is a symlink; refusing to touch it");
      return ErrnoError(label + ": probe " + listen_path, err);
    }
    struct stat st {};
    if (::lstat(listen_path.c_str(), &st) == 0) {
      if (!S_ISFIFO(st.st_mode)) {
        ::unlink(tmp.c_str());
        return MakeError(Errc::AlreadyExists, label + ": `listen` exists and is not a FIFO; refusing to remove it");
      }
      ::unlink(listen_path.c_str());  // a dead listener's: reclaim the directory
      SweepLeftovers(dir);
      s.remove_dir = true;
    }
  }
  ::unlink(tmp.c_str());
  struct stat st {};
  if (::fstat(s.listen_fd.get(), &st) != 0) return ErrnoError(label + ": fstat");
  s.dev = st.st_dev;
  s.ino = st.st_ino;
  s.stop_fd = UniqueFd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!s.stop_fd) return ErrnoError(label + ": eventfd");
  try {
    s.acceptor = std::thread([&s] { s.Run(); });
  } catch (const std::system_error& e) {
    return ErrnoError(label + ": starting the acceptor thread", e.code().value());
  }
  return l;
}

Result<StreamConnection> Connect(const std::string& dir, Deadline d, std::size_t max_message_size) {
  const std::string label = "fifo " + dir + " (client)";
  auto p = Handshake(dir, d, label);
  if (!p.ok()) return std::move(p).error();
  return StreamConnection(std::move(p->from_server), std::move(p->to_server), max_message_size, false, label);
}

namespace {

// What a planted impostor holds open (a live reader makes a FIFO look served), by address.
std::mutex g_impostors_mu;
std::map<std::string, std::vector<UniqueFd>> g_impostors;

}  // namespace

std::string_view Adapter::ImpostorDoesNotApply(Impostor kind) {
  if (kind == Impostor::Uninitialised) {
    return "the rendezvous FIFO is made under a private name and linked into place whole, so a creator killed "
           "early leaves no half-made `listen` to refuse (its privately named leftovers are swept by Listen)";
  }
  return {};
}

Status Adapter::PlantImpostor(const std::string& dir, Impostor kind) {
  const std::string listen_path = dir + "/" + kListenName, target = dir + ".target";
  if (::mkdir(dir.c_str(), 0700) != 0) return ErrnoError("plant: mkdir " + dir);
  std::vector<UniqueFd> held;
  switch (kind) {
    case Impostor::OtherOwner: {
      constexpr uid_t kNobody = 65534;
      if (::mkfifo(listen_path.c_str(), 0600) != 0) return ErrnoError("plant: mkfifo " + listen_path);
      held.emplace_back(::open(listen_path.c_str(), O_RDWR | kOpenFlags));
      if (::chown(listen_path.c_str(), kNobody, kNobody) != 0 || ::chown(dir.c_str(), kNobody, kNobody) != 0) {
        return ErrnoError("plant: chown " + dir);
      }
      break;
    }
    case Impostor::WrongSize: {
      UniqueFd f(::open(listen_path.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600));
      if (!f) return ErrnoError("plant: create " + listen_path);
      break;
    }
    case Impostor::Symlink:
      if (::mkfifo(target.c_str(), 0600) != 0) return ErrnoError("plant: mkfifo " + target);
      held.emplace_back(::open(target.c_str(), O_RDWR | kOpenFlags));
      if (::symlink(target.c_str(), listen_path.c_str()) != 0) return ErrnoError("plant: symlink " + listen_path);
      break;
    case Impostor::Uninitialised:
      return MakeError(Errc::InvalidArgument, "plant: " + std::string(ImpostorDoesNotApply(kind)));
  }
  std::lock_guard<std::mutex> lock(g_impostors_mu);
  g_impostors[dir] = std::move(held);
  return Ok();
}

void Adapter::RemoveImpostor(const std::string& dir) {
  {
    std::lock_guard<std::mutex> lock(g_impostors_mu);
    g_impostors.erase(dir);
  }
  ::unlink((dir + "/" + kListenName).c_str());
  ::unlink((dir + ".target").c_str());
  ::rmdir(dir.c_str());
}

namespace {

struct PlantedRequest {
  std::vector<UniqueFd> held;  // live ends, so that a listener that opens them would succeed
  std::vector<std::string> paths;
};
std::map<std::string, std::vector<PlantedRequest>> g_requests;  // by listener directory

// A FIFO at `path` with both ends held open by `p`.
Status LiveFifo(const std::string& path, PlantedRequest& p) {
  if (::mkfifo(path.c_str(), 0600) != 0) return ErrnoError("plant: mkfifo " + path);
  p.paths.push_back(path);
  UniqueFd fd(::open(path.c_str(), O_RDWR | kOpenFlags));
  if (!fd) return ErrnoError("plant: open " + path);
  p.held.push_back(std::move(fd));
  return Ok();
}

Status PlantPair(const std::string& dir, const std::string& name, RequestImpostor kind, PlantedRequest& p) {
  for (const char* end : {".up", ".dn"}) {
    const std::string path = dir + "/" + name + end;
    switch (kind) {
      case RequestImpostor::Symlink: {
        const std::string target = dir + ".link-target" + end;
        IPCH_RETURN_IF_ERROR(LiveFifo(target, p));
        if (::symlink(target.c_str(), path.c_str()) != 0) return ErrnoError("plant: symlink " + path);
        p.paths.push_back(path);
        break;
      }
      case RequestImpostor::RegularFile: {
        UniqueFd f(::open(path.c_str(), O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600));
        if (!f) return ErrnoError("plant: create " + path);
        p.paths.push_back(path);
        break;
      }
      case RequestImpostor::OtherOwner:
        IPCH_RETURN_IF_ERROR(LiveFifo(path, p));
        if (::chown(path.c_str(), 65534, 65534) != 0) return ErrnoError("plant: chown " + path);
        break;
      case RequestImpostor::Outside:
        IPCH_RETURN_IF_ERROR(LiveFifo(path, p));  // `dir` is the directory's parent here
        break;
    }
  }
  return Ok();
}

}  // namespace

Status Adapter::PlantRequestImpostor(const Listener& l, RequestImpostor kind) {
  const std::string& dir = l.address();
  static std::atomic<uint32_t> counter{0};
  const std::string name = "c-1-" + std::to_string(counter.fetch_add(1)) + "-impostor";
  std::lock_guard<std::mutex> lock(g_impostors_mu);
  PlantedRequest& p = g_requests[dir].emplace_back();
  // The outside pair sits beside the directory; the request reaches it by "../".
  const std::string parent = std::filesystem::path(dir).parent_path().string();
  IPCH_RETURN_IF_ERROR(PlantPair(kind == RequestImpostor::Outside ? parent : dir, name, kind, p));
  const std::string named = kind == RequestImpostor::Outside ? "../" + name : name;
  unsigned char req[kRequestSize];
  std::memset(req, 0, sizeof req);
  EncodeRequest(static_cast<uint32_t>(::getpid()), named, req);
  UniqueFd lfd(::open((dir + "/" + kListenName).c_str(), O_WRONLY | kOpenFlags));
  if (!lfd) return ErrnoError("plant: open the rendezvous of " + dir);
  if (::write(lfd.get(), req, sizeof req) != static_cast<ssize_t>(sizeof req))
    return ErrnoError("plant: write request");
  return Ok();
}

void Adapter::RemoveRequestImpostors(const Listener& l) {
  std::lock_guard<std::mutex> lock(g_impostors_mu);
  auto it = g_requests.find(l.address());
  if (it == g_requests.end()) return;
  for (const PlantedRequest& p : it->second) {
    for (const std::string& path : p.paths) ::unlink(path.c_str());
  }
  g_requests.erase(it);
}

Result<UniqueFd> Adapter::ConnectRaw(const std::string& a, Deadline d) {
  auto p = Handshake(a, d, "fifo " + a + " (raw client)");
  if (!p.ok()) return std::move(p).error();
  const int fd = p->to_server.get();
  if (::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK) != 0) return ErrnoError("fifo raw client: fcntl");
  return std::move(p->to_server);
}

}  // namespace ipch::fifo
