#include "segment.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string_view>

#include "ipch/unique_fd.h"

namespace ipch::shm {
namespace {

Error SysError(const SegmentName& n, const char* call) {
  const int e = errno;
  std::string what = std::string(BackingName(n.backing)) + " " + n.ToString() + ": " + call;
  if (e == EACCES || e == EPERM) return MakeError(Errc::PermissionDenied, what + ": " + std::strerror(e));
  errno = e;
  return ErrnoError(what);
}

std::string Octal(mode_t m) {
  char b[8];
  std::snprintf(b, sizeof b, "%04o", static_cast<unsigned>(m & 07777));
  return b;
}

}  // namespace

const char* BackingName(Backing b) { return b == Backing::Posix ? "posix_shm" : "sysv_shm"; }

std::string SegmentName::ToString() const {
  if (backing == Backing::Posix) return posix;
  char b[64];
  std::snprintf(b, sizeof b, "key=0x%08x id=%d", static_cast<unsigned>(key), shmid);
  return b;
}

MappedRegion& MappedRegion::operator=(MappedRegion&& o) noexcept {
  if (this != &o) {
    reset();
    addr_ = std::exchange(o.addr_, nullptr);
    size_ = std::exchange(o.size_, 0);
  }
  return *this;
}

void MappedRegion::reset() {
  if (!addr_) return;
  // SysV segments are detached with munmap too: the kernel detaches an attachment whose mapping
  // goes away exactly as shmdt does (nattch drops), and ThreadSanitizer, which intercepts munmap
  // but not shmdt, then forgets the range. With shmdt, a later mapping at the same address
  // inherited stale shadow state and TSan reported races between unrelated segments.
  ::munmap(addr_, size_);
  addr_ = nullptr;
  size_ = 0;
}

std::string DraftName(const std::string& posix, long pid) { return posix + "." + std::to_string(pid) + ".new"; }

void SweepDrafts(const std::string& posix) {
  DIR* d = ::opendir("/dev/shm");
  if (!d) return;
  const std::string prefix = posix.substr(1);
  while (dirent* e = ::readdir(d)) {
    const std::string_view n = e->d_name;
    if (n.size() <= prefix.size() + 5 || n.compare(0, prefix.size(), prefix) != 0 || n[prefix.size()] != '.' ||
        n.substr(n.size() - 4) != ".new") {
      continue;
    }
    // The pid is the last component before ".new".
    const std::string_view rest = n.substr(0, n.size() - 4);
    const auto dot = rest.rfind('.');
    const std::string pid_text(rest.substr(dot + 1));
    char* end = nullptr;
    const long pid = std::strtol(pid_text.c_str(), &end, 10);
    if (pid <= 0 || *end != '\0') continue;
    if (::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) ::shm_unlink(("/" + std::string(n)).c_str());
  }
  ::closedir(d);
}

Result<Created> CreateSegment(SegmentName name, std::size_t size, const std::function<void(std::byte*)>& init) {
  if (name.backing == Backing::Posix) {
    const std::string draft = DraftName(name.posix, ::getpid());
    ::shm_unlink(draft.c_str());  // a draft of this process's own that an earlier call left
    UniqueFd fd(::shm_open(draft.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
    if (!fd) return SysError(name, "shm_open(O_CREAT|O_EXCL) of its draft");
    // From here on a failure must not leave the draft behind; once linked, the draft name goes.
    struct DraftGone {
      const std::string& draft;
      ~DraftGone() { ::shm_unlink(draft.c_str()); }
    } draft_gone{draft};
    if (::fchmod(fd.get(), 0600) != 0) return SysError(name, "fchmod");  // umask cannot widen it, only narrow
    if (RetryEintr([&] { return ::ftruncate(fd.get(), static_cast<off_t>(size)); }) != 0)
      return SysError(name, "ftruncate");
    // tmpfs hands out pages on first touch: on a full /dev/shm the first write to a page would be
    // SIGBUS. Taking them all now turns that into ENOSPC here, before anything is written.
    if (const int e = ::posix_fallocate(fd.get(), 0, static_cast<off_t>(size)); e != 0 && e != EOPNOTSUPP) {
      errno = e;
      return SysError(name, "fallocate");
    }
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) return SysError(name, "fstat");
    name.ino = st.st_ino;
    void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0);
    if (p == MAP_FAILED) return SysError(name, "mmap");
    MappedRegion region(p, size);
    if (init) init(region.data());
    if (::link(("/dev/shm" + draft).c_str(), ("/dev/shm" + name.posix).c_str()) != 0) {
      if (errno == EEXIST) return MakeError(Errc::AlreadyExists, "posix_shm " + name.posix + ": already exists");
      return SysError(name, "link of its draft");
    }
    return Created{std::move(region), std::move(name)};
  }
  int id = ::shmget(name.key, size, IPC_CREAT | IPC_EXCL | 0600);
  if (id < 0) {
    if (errno == EEXIST) return MakeError(Errc::AlreadyExists, "sysv_shm " + name.ToString() + ": already exists");
    return SysError(name, "shmget(IPC_CREAT|IPC_EXCL)");
  }
  name.shmid = id;
  void* p = ::shmat(id, nullptr, 0);
  if (p == reinterpret_cast<void*>(-1)) {
    Error e = SysError(name, "shmat");
    ::shmctl(id, IPC_RMID, nullptr);
    return e;
  }
  MappedRegion region(p, size);
  if (init) init(region.data());
  return Created{std::move(region), std::move(name)};
}

Status StatSegment(SegmentName& name, SegmentInfo* info) {
  if (name.backing == Backing::Posix) {
    UniqueFd fd(::shm_open(name.posix.c_str(), O_RDONLY | O_CLOEXEC, 0));
    if (!fd) {
      if (errno == ENOENT) return MakeError(Errc::PeerClosed, "posix_shm " + name.posix + ": does not exist");
      // glibc opens with O_NOFOLLOW: a link where the segment belongs is never ours.
      if (errno == ELOOP)
        return MakeError(Errc::PermissionDenied, "posix_shm " + name.posix + ": a symlink; not followed");
      return SysError(name, "shm_open");
    }
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) return SysError(name, "fstat");
    *info = SegmentInfo{st.st_uid, st.st_mode, static_cast<std::size_t>(st.st_size), 0, 0};
    return Ok();
  }
  if (name.shmid < 0) {
    int id = ::shmget(name.key, 0, 0);
    if (id < 0) {
      if (errno == ENOENT) return MakeError(Errc::PeerClosed, "sysv_shm " + name.ToString() + ": does not exist");
      return SysError(name, "shmget");
    }
    name.shmid = id;
  }
  shmid_ds ds{};
  if (::shmctl(name.shmid, IPC_STAT, &ds) != 0) {
    if (errno == EINVAL || errno == EIDRM)
      return MakeError(Errc::PeerClosed, "sysv_shm " + name.ToString() + ": removed");
    return SysError(name, "shmctl(IPC_STAT)");
  }
  if (name.key != IPC_PRIVATE && ds.shm_perm.__key != name.key) {
    return MakeError(Errc::PeerClosed, "sysv_shm " + name.ToString() + ": the key now names another segment");
  }
  *info = SegmentInfo{ds.shm_perm.uid, static_cast<mode_t>(ds.shm_perm.mode),   static_cast<std::size_t>(ds.shm_segsz),
                      ds.shm_cpid,     static_cast<std::size_t>(ds.shm_nattch), ds.shm_perm.__key != IPC_PRIVATE};
  // Owned means both the owner and the creator are us: report whichever is not.
  info->uid = ds.shm_perm.uid != ::geteuid() ? ds.shm_perm.uid : ds.shm_perm.cuid;
  return Ok();
}

Status CheckOwnerOnly(const SegmentName& name, const SegmentInfo& info) {
  const std::string what = std::string(BackingName(name.backing)) + " " + name.ToString();
  if (info.uid != ::geteuid()) {
    return MakeError(Errc::PermissionDenied,
                     what + " is owned by uid " + std::to_string(info.uid) + ", not us; refusing to use it");
  }
  if ((info.mode & 077) != 0) {
    return MakeError(Errc::PermissionDenied,
                     what + " has mode " + Octal(info.mode) + ": open to group or others; refusing to use it");
  }
  return Ok();
}

Result<MappedRegion> MapSegment(SegmentName& name, std::size_t size) {
  if (name.backing == Backing::Posix) {
    UniqueFd fd(::shm_open(name.posix.c_str(), O_RDWR | O_CLOEXEC, 0));
    if (!fd) {
      if (errno == ENOENT) return MakeError(Errc::PeerClosed, "posix_shm " + name.posix + ": does not exist");
      // glibc opens with O_NOFOLLOW: a link where the segment belongs is never ours.
      if (errno == ELOOP)
        return MakeError(Errc::PermissionDenied, "posix_shm " + name.posix + ": a symlink; not followed");
      return SysError(name, "shm_open");
    }
    // Re-check on the descriptor we map: the name may have been replaced since it was looked up.
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) return SysError(name, "fstat");
    SegmentInfo info{st.st_uid, st.st_mode, static_cast<std::size_t>(st.st_size), 0, 0};
    IPCH_RETURN_IF_ERROR(CheckOwnerOnly(name, info));
    if (info.size != size) {
      return MakeError(Errc::Corrupt, "posix_shm " + name.posix + ": size " + std::to_string(info.size) +
                                          ", expected " + std::to_string(size));
    }
    void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0);
    if (p == MAP_FAILED) return SysError(name, "mmap");
    name.ino = st.st_ino;
    return MappedRegion(p, size);
  }
  void* p = ::shmat(name.shmid, nullptr, 0);
  if (p == reinterpret_cast<void*>(-1)) {
    if (errno == EINVAL || errno == EIDRM)
      return MakeError(Errc::PeerClosed, "sysv_shm " + name.ToString() + ": removed");
    return SysError(name, "shmat");
  }
  return MappedRegion(p, size);
}

Status RemoveSegment(const SegmentName& name) {
  if (name.backing == Backing::Posix) {
    if (name.ino != 0) {
      // Another listener may have reclaimed the name since: never unlink its object. stat(2) on
      // the name under /dev/shm (where glibc's shm_open keeps it) needs no descriptor, so the
      // check, and the removal, still work when the process is out of fds.
      struct stat st {};
      if (::stat(("/dev/shm" + name.posix).c_str(), &st) != 0) {
        if (errno == ENOENT) return Ok();
        UniqueFd fd(::shm_open(name.posix.c_str(), O_RDONLY | O_CLOEXEC, 0));
        if (!fd || ::fstat(fd.get(), &st) != 0) return Ok();
      }
      if (st.st_ino != name.ino) return Ok();
    }
    if (::shm_unlink(name.posix.c_str()) != 0 && errno != ENOENT) return SysError(name, "shm_unlink");
    return Ok();
  }
  if (name.shmid >= 0 && ::shmctl(name.shmid, IPC_RMID, nullptr) != 0 && errno != EINVAL && errno != EIDRM)
    return SysError(name, "shmctl(IPC_RMID)");
  return Ok();
}

}  // namespace ipch::shm
