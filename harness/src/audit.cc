#include "ipch/audit.h"

#include <dirent.h>
#include <fcntl.h>
#include <mqueue.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/msg.h>
#include <sys/sem.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <ctime>
#include <fstream>
#include <sstream>

#include "ipch/child_process.h"
#include "ipch/deadline.h"
#include "ipch/sweep.h"

// The fault library's log of the SysV queues a case's process tree created (a weak reference:
// the audit works without the fault library, and then cannot attribute a queue never used).
extern "C" int ipch_fault_created_queue(int msqid) __attribute__((weak));

namespace ipch::audit {
namespace {

std::set<std::string> ListWithPrefix(const char* dir, const std::string& prefix) {
  std::set<std::string> out;
  DIR* d = ::opendir(dir);
  if (!d) return out;
  while (dirent* e = ::readdir(d)) {
    std::string name = e->d_name;
    if (name.find(prefix) != std::string::npos) out.insert(std::string(dir) + "/" + name);
  }
  ::closedir(d);
  return out;
}

std::map<int, std::string> OpenFds() {
  std::map<int, std::string> out;
  DIR* d = ::opendir("/proc/self/fd");
  if (!d) return out;
  int self = ::dirfd(d);
  while (dirent* e = ::readdir(d)) {
    if (e->d_name[0] == '.') continue;
    int fd = std::atoi(e->d_name);
    if (fd == self) continue;
    char target[512] = {};
    std::string path = std::string("/proc/self/fd/") + e->d_name;
    ssize_t n = ::readlink(path.c_str(), target, sizeof target - 1);
    const std::string what = n > 0 ? std::string(target, static_cast<size_t>(n)) : "?";
    // The fault library's shared counters (made at the first plan or census, kept for the
    // process's life so that exec'd peers can count into them): the harness's, not a leak.
    if (what.rfind("/memfd:ipch-fault-shared", 0) == 0) continue;
    out[fd] = what;
  }
  ::closedir(d);
  return out;
}

std::map<pid_t, std::string> Children() {
  std::map<pid_t, std::string> out;
  pid_t self = ::getpid();
  DIR* d = ::opendir("/proc");
  if (!d) return out;
  while (dirent* e = ::readdir(d)) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    std::ifstream in(std::string("/proc/") + e->d_name + "/stat");
    std::string line;
    if (!std::getline(in, line)) continue;
    auto lp = line.find('('), rp = line.rfind(')');
    if (lp == std::string::npos || rp == std::string::npos) continue;
    std::istringstream rest(line.substr(rp + 2));
    char state = '?';
    pid_t ppid = 0;
    rest >> state >> ppid;
    if (ppid != self) continue;
    out[std::atoi(e->d_name)] =
        line.substr(lp + 1, rp - lp - 1) + " (state " + state + (state == 'Z' ? ", zombie" : "") + ")";
  }
  ::closedir(d);
  return out;
}

bool IsOursOrChild(pid_t pid) {
  if (pid == ::getpid()) return true;
  const auto spawned = SpawnedPids();
  return std::find(spawned.begin(), spawned.end(), pid) != spawned.end();
}

using sweep::SysvTable;

// The SysV queues the fault library saw this process tree create during the running case
// (ipch/fault.h's census), when it is loaded.
bool CreatedByOurTree(int msqid) { return ipch_fault_created_queue != nullptr && ipch_fault_created_queue(msqid) != 0; }

// SysV objects owned by our uid; new ones across a test are leaks of that test.
std::set<std::string> SysvObjects() {
  std::set<std::string> out;
  uid_t uid = ::getuid();
  for (const char* kind : {"shm", "msg", "sem"}) {
    for (auto& row : SysvTable(kind)) {
      if (row.count("uid") && std::stoul(row["uid"]) != uid) continue;
      // Segments carry their creator: keep only ours and our children's, so that parallel test
      // processes never see (or remove) each other's. Queues and semaphores have no creator
      // field and are attributed by uid (see docs/architecture.md).
      if (row.count("cpid") && !IsOursOrChild(static_cast<pid_t>(std::stol(row["cpid"])))) continue;
      // Queues have no creator either, but their last sender and receiver: a queue is ours if
      // we or our children used it last. One nobody ever used is ours if the fault library saw
      // our process tree create it during the case (its census log); else it is not attributed.
      if (row.count("lspid")) {
        const bool unused = row["lspid"] == "0" && row["lrpid"] == "0";
        if (unused ? !CreatedByOurTree(std::stoi(row["msqid"]))
                   : !IsOursOrChild(static_cast<pid_t>(std::stol(row["lspid"]))) &&
                         !IsOursOrChild(static_cast<pid_t>(std::stol(row["lrpid"])))) {
          continue;
        }
      }
      std::string id = row.count("shmid") ? row["shmid"] : row.count("msqid") ? row["msqid"] : row["semid"];
      out.insert(std::string("sysv ") + kind + " key=" + row["key"] + " id=" + id);
    }
  }
  return out;
}

template <class K, class V>
void DiffMap(const std::map<K, V>& a, const std::map<K, V>& b, const std::string& what, std::vector<std::string>& out) {
  for (const auto& [k, v] : b) {
    auto it = a.find(k);
    if (it == a.end() || it->second != v) {
      std::ostringstream s;
      s << what << " " << k << " -> " << v;
      out.push_back(s.str());
    }
  }
}

void DiffSet(const std::set<std::string>& a, const std::set<std::string>& b, const std::string& what,
             std::vector<std::string>& out) {
  for (const auto& v : b) {
    if (!a.count(v)) out.push_back(what + " " + v);
  }
}

}  // namespace

std::chrono::milliseconds SettleBound() { return std::chrono::milliseconds(200) * SlowdownFactor(); }

Settled AwaitSettled(const Snapshot& before, const std::string& token_prefix,
                     const std::filesystem::path& scratch_dir, Scope scope) {
  Settled s;
  const auto begin = Clock::now();
  const auto until = Deadline::After(SettleBound());
  for (int round = 0;; ++round) {
    if (round > 0) s.waited = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - begin);
    s.after = Take(token_prefix, scope);
    s.leaks = Leaks(before, s.after);
    if (!scratch_dir.empty()) {
      for (const auto& f : LeftoverFiles(scratch_dir)) s.leaks.push_back("file left in scratch dir: " + f);
    }
    if (s.leaks.empty() || until.expired()) break;
    timespec pause{0, 1000000};
    ::nanosleep(&pause, nullptr);
  }
  return s;
}

Snapshot Take(const std::string& token_prefix, Scope scope) {
  Snapshot s;
  s.fds = OpenFds();
  s.shm = ListWithPrefix("/dev/shm", token_prefix);
  s.mqueues = ListWithPrefix("/dev/mqueue", token_prefix);
  s.sysv = SysvObjects();
  if (scope == Scope::kWithChildren) s.children = Children();
  return s;
}

std::map<int, std::string> OpenDescriptors() { return OpenFds(); }

std::vector<std::string> Leaks(const Snapshot& before, const Snapshot& after) {
  std::vector<std::string> out;
  DiffMap(before.fds, after.fds, "leaked fd", out);
  DiffSet(before.shm, after.shm, "leaked POSIX shm", out);
  DiffSet(before.mqueues, after.mqueues, "leaked POSIX mqueue", out);
  DiffSet(before.sysv, after.sysv, "leaked", out);
  for (const auto& [pid, what] : after.children)
    out.push_back("child process left running: pid " + std::to_string(pid) + " " + what);
  return out;
}

std::vector<std::string> LeftoverFiles(const std::filesystem::path& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(dir, ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    out.push_back(std::filesystem::relative(it->path(), dir, ec).string());
  }
  return out;
}

namespace {
// Unmaps every mapping of SysV segment `shmid` in this process (/proc/self/maps names them
// "/SYSV<key>" with the shmid in the inode column).
void UnmapSysvSegment(int shmid) {
  std::ifstream maps("/proc/self/maps");
  std::string line;
  std::vector<std::pair<uintptr_t, uintptr_t>> ranges;
  while (std::getline(maps, line)) {
    if (line.find("/SYSV") == std::string::npos) continue;
    std::istringstream in(line);
    std::string range, perms, offset, dev;
    unsigned long inode = 0;
    in >> range >> perms >> offset >> dev >> inode;
    if (inode != static_cast<unsigned long>(shmid)) continue;
    const auto dash = range.find('-');
    ranges.emplace_back(std::stoull(range.substr(0, dash), nullptr, 16),
                        std::stoull(range.substr(dash + 1), nullptr, 16));
  }
  for (auto [lo, hi] : ranges) ::munmap(reinterpret_cast<void*>(lo), hi - lo);
}
}  // namespace

void CleanUp(const Snapshot& before, const Snapshot& after) {
  for (const auto& [pid, what] : after.children) {
    ::kill(pid, SIGKILL);
    int status;
    ::waitpid(pid, &status, 0);
  }
  auto base = [](const std::string& path) { return "/" + path.substr(path.rfind('/') + 1); };
  for (const auto& p : after.shm) {
    if (!before.shm.count(p)) ::shm_unlink(base(p).c_str());
  }
  for (const auto& p : after.mqueues) {
    if (!before.mqueues.count(p)) ::mq_unlink(base(p).c_str());
  }
  for (const auto& o : after.sysv) {
    if (before.sysv.count(o)) continue;
    // "sysv <kind> key=K id=I"
    int id = std::atoi(o.c_str() + o.rfind("id=") + 3);
    if (o.compare(0, 8, "sysv shm") == 0) {
      UnmapSysvSegment(id);  // a detach that failed keeps a removed segment alive
      ::shmctl(id, IPC_RMID, nullptr);
    }
    if (o.compare(0, 8, "sysv msg") == 0) ::msgctl(id, IPC_RMID, nullptr);
    if (o.compare(0, 8, "sysv sem") == 0) ::semctl(id, 0, IPC_RMID);
  }
}

std::vector<std::string> SweepDeadOwners(std::chrono::seconds sysv_min_age) {
  std::vector<std::string> removed;
  sweep::Options options;
  options.sysv_min_age = sysv_min_age;
  for (const auto& f : sweep::FindOrphans(options)) {
    if (sweep::Remove(f).ok()) removed.push_back(f.kind + " " + f.name);
  }
  return removed;
}

std::string EnsureMqueueMounted() {
  struct stat st {};
  if (::stat("/dev/mqueue", &st) == 0) {
    struct stat parent {};
    if (::stat("/dev", &parent) == 0 && st.st_dev != parent.st_dev) return "";  // a mount point
  }
  if (::geteuid() != 0) return "/dev/mqueue is not mounted and we are not root: POSIX queues are not audited";
  ::mkdir("/dev/mqueue", 01777);
  if (::mount("mqueue", "/dev/mqueue", "mqueue", 0, nullptr) != 0) {
    return std::string("mounting /dev/mqueue failed: ") + strerror(errno) + "; POSIX queues are not audited";
  }
  return "";
}

}  // namespace ipch::audit
