// Shared-memory segments for the ring transports, behind one small interface with two
// backings: POSIX (shm_open + ftruncate + mmap; named "/name") and System V (shmget + shmat;
// named by a key, or IPC_PRIVATE and passed by id).
//
// Every segment is created exclusively (O_EXCL / IPC_EXCL) with mode 0600. Opening an existing
// one checks its owner, mode and size *before* mapping it (fstat / IPC_STAT), so a short or
// foreign segment is refused with a precise error instead of a SIGBUS or a takeover.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <string>

#include "ipch/result.h"

namespace ipch::shm {

enum class Backing { Posix, Sysv };
const char* BackingName(Backing b);

// A mapped (or attached) segment; unmaps on destruction (munmap detaches SysV attachments too).
class MappedRegion {
 public:
  MappedRegion() = default;
  MappedRegion(void* addr, std::size_t size) : addr_(addr), size_(size) {}
  MappedRegion(MappedRegion&& o) noexcept { *this = std::move(o); }
  MappedRegion& operator=(MappedRegion&& o) noexcept;
  ~MappedRegion() { reset(); }
  void reset();
  std::byte* data() const { return static_cast<std::byte*>(addr_); }
  std::size_t size() const { return size_; }
  std::span<std::byte> bytes() const { return {data(), size_}; }
  explicit operator bool() const { return addr_ != nullptr; }

 private:
  void* addr_ = nullptr;
  std::size_t size_ = 0;
};

// Where a segment lives: a POSIX name, or a SysV key / id.
struct SegmentName {
  Backing backing = Backing::Posix;
  std::string posix;  // "/name"
  key_t key = 0;      // SysV key; IPC_PRIVATE (0) for anonymous segments
  int shmid = -1;     // SysV id once known
  ino_t ino = 0;      // POSIX: the object we created or mapped; removal checks it is still that one
  std::string ToString() const;
};

struct Created {
  MappedRegion region;
  SegmentName name;  // with shmid filled in for SysV
};

// Creates a new segment of `size` bytes, zero-filled, mode 0600, and runs `init` on its bytes.
// AlreadyExists if the name is taken. A POSIX segment is made and initialised under a draft name
// (DraftName) and only then linked to its own: the name never holds a segment half made, and a
// creator killed on the way leaves a draft that names it (SweepDrafts). A SysV key cannot be
// given to a segment afterwards: a keyed segment is visible from shmget on, and its creator is
// shm_cpid.
Result<Created> CreateSegment(SegmentName name, std::size_t size,
                              const std::function<void(std::byte*)>& init = nullptr);
// "<posix name>.<pid>.new": where process `pid` makes the segment `posix` before linking it.
std::string DraftName(const std::string& posix, long pid);
// Removes the drafts left by dead processes of the segments named `posix` or `posix` + a suffix
// beginning with '.' (a rendezvous and its connection segments).
void SweepDrafts(const std::string& posix);

// What an existing segment is, checked before it is mapped.
struct SegmentInfo {
  uid_t uid = 0;
  mode_t mode = 0;
  std::size_t size = 0;
  pid_t creator = 0;         // SysV only (shm_cpid)
  std::size_t attached = 0;  // SysV only (shm_nattch)
  bool keyed = false;        // SysV only: the segment has a key (it is not IPC_PRIVATE)
};
// Looks an existing segment up (PeerClosed if it does not exist) and fills `info`.
Status StatSegment(SegmentName& name, SegmentInfo* info);
// Refusals shared by every open: another owner or mode bits for group/other → PermissionDenied.
Status CheckOwnerOnly(const SegmentName& name, const SegmentInfo& info);
// Maps an existing segment of exactly `size` bytes (POSIX: checks owner, mode and size on the
// descriptor it maps and records its inode in `name`; SysV: by id, after StatSegment).
Result<MappedRegion> MapSegment(SegmentName& name, std::size_t size);
// Removes the name (POSIX: shm_unlink, only if it still names the object in `name.ino`;
// SysV: IPC_RMID). Missing is not an error.
Status RemoveSegment(const SegmentName& name);

}  // namespace ipch::shm
