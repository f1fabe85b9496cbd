#include "ipch/sweep.h"

#include <dirent.h>
#include <fcntl.h>
#include <mqueue.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/msg.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

namespace ipch::sweep {
namespace {

constexpr long long kNs = 1000000000LL;

long long ToNs(timespec t) { return static_cast<long long>(t.tv_sec) * kNs + t.tv_nsec; }

long long NowNs(clockid_t clock) {
  timespec t{};
  ::clock_gettime(clock, &t);
  return ToNs(t);
}

// When `pid` started, in CLOCK_REALTIME nanoseconds, or -1 when it does not exist. The kernel
// records it in clock ticks since boot (/proc/<pid>/stat, field 22).
long long StartedAtNs(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(in, line)) return -1;
  const auto rp = line.rfind(')');
  if (rp == std::string::npos) return -1;
  std::istringstream rest(line.substr(rp + 2));
  std::string field;
  for (int i = 3; i < 22 && rest >> field; ++i) {
  }
  unsigned long long ticks = 0;
  if (!(rest >> ticks)) return -1;
  const long long boot = NowNs(CLOCK_REALTIME) - NowNs(CLOCK_BOOTTIME);
  return boot + static_cast<long long>(ticks) * (kNs / ::sysconf(_SC_CLK_TCK));
}

// When a file was made: its birth time where the filesystem records one, else its status
// change time (never earlier than its birth, so a process found to start after it started
// after the birth too).
bool MadeAt(const std::string& path, timespec* made, uid_t* uid) {
  struct statx sx {};
  if (::statx(AT_FDCWD, path.c_str(), AT_SYMLINK_NOFOLLOW, STATX_BTIME | STATX_CTIME | STATX_UID, &sx) != 0) {
    return false;
  }
  const auto& t = (sx.stx_mask & STATX_BTIME) ? sx.stx_btime : sx.stx_ctime;
  *made = timespec{static_cast<time_t>(t.tv_sec), static_cast<long>(t.tv_nsec)};
  // A filesystem that keeps whole seconds (mqueue) truncates: the object may be up to a second
  // younger than it says, and only its next second bounds it.
  if (made->tv_nsec == 0) made->tv_sec += 1;
  *uid = sx.stx_uid;
  return true;
}

long long Num(const std::map<std::string, std::string>& row, const char* col) {
  auto it = row.find(col);
  return it == row.end() ? -1 : std::strtoll(it->second.c_str(), nullptr, 10);
}

std::string KeyText(const std::map<std::string, std::string>& row) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "0x%08llx", static_cast<unsigned long long>(Num(row, "key")) & 0xffffffffULL);
  return buf;
}

std::string TempDirectory() {
  std::error_code ec;
  auto tmp = std::filesystem::temp_directory_path(ec);
  return ec ? "/tmp" : tmp.string();
}

struct NamedPlace {
  std::string dir;
  const char* kind_dir;   // for a directory entry
  const char* kind_file;  // for anything else
};

std::vector<NamedPlace> NamedPlaces() {
  return {{TempDirectory(), "scratch dir", "temp file"},
          {"/dev/shm", "posix shm", "posix shm"},
          {"/dev/mqueue", "posix mqueue", "posix mqueue"}};
}

// Calls `f(place, kind, name, path)` for every entry of the named places that starts with `prefix`.
template <class F>
void ForEachNamed(const std::string& prefix, F f) {
  for (const auto& place : NamedPlaces()) {
    DIR* d = ::opendir(place.dir.c_str());
    if (!d) continue;
    std::vector<std::pair<std::string, bool>> names;
    while (dirent* e = ::readdir(d)) {
      if (std::strncmp(e->d_name, prefix.c_str(), prefix.size()) == 0) names.emplace_back(e->d_name, e->d_type == DT_DIR);
    }
    ::closedir(d);
    for (const auto& [name, is_dir] : names) f(is_dir ? place.kind_dir : place.kind_file, place.dir + "/" + name);
  }
}

std::string Since(long long later_ns, long long earlier_ns) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.3f s", static_cast<double>(later_ns - earlier_ns) / kNs);
  return buf;
}

// SysV segments of our uid that start with the "IPCH" magic (attached read-only to look).
bool HasIpchMagic(int shmid, size_t size) {
  if (size < 4) return false;
  void* p = ::shmat(shmid, nullptr, SHM_RDONLY);
  if (p == reinterpret_cast<void*>(-1)) return false;
  const bool ours = std::memcmp(p, "IPCH", 4) == 0;
  ::munmap(p, size);  // detaches; and TSan, which does not see shmdt, forgets the range
  return ours;
}

}  // namespace

std::vector<std::map<std::string, std::string>> SysvTable(const char* kind) {
  std::vector<std::map<std::string, std::string>> rows;
  std::ifstream in(std::string("/proc/sysvipc/") + kind);
  std::string header, line;
  std::getline(in, header);
  std::istringstream hs(header);
  std::vector<std::string> cols;
  for (std::string c; hs >> c;) cols.push_back(c);
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    auto& row = rows.emplace_back();
    for (const auto& c : cols) ls >> row[c];
  }
  return rows;
}

pid_t OwnerInName(const std::string& name) {
  const std::string base = name.substr(name.rfind('/') + 1);
  const auto at = base.find("ipch-");
  if (at == std::string::npos) return 0;
  char* end = nullptr;
  const long pid = std::strtol(base.c_str() + at + 5, &end, 10);
  if (pid <= 0 || end == nullptr || *end != '-') return 0;
  return static_cast<pid_t>(pid);
}

Owner JudgeOwner(pid_t pid, timespec made) {
  // A start time is known to a clock tick, and the boot time behind it to a few microseconds.
  const long long margin = 2 * (kNs / ::sysconf(_SC_CLK_TCK)) + 1000000;
  const long long started = StartedAtNs(pid);
  if (started < 0) {
    if (::kill(pid, 0) != 0 && errno == ESRCH) return {true, "pid " + std::to_string(pid) + " does not exist"};
    return {false, "pid " + std::to_string(pid) + " is alive"};
  }
  if (started > ToNs(made) + margin) {
    return {true, "pid " + std::to_string(pid) + " was reused: the process with it started " +
                      Since(started, ToNs(made)) + " after the object was made"};
  }
  return {false, "pid " + std::to_string(pid) + " is alive"};
}

std::vector<Found> FindOrphans(const Options& options) {
  std::vector<Found> out;
  const uid_t me = ::geteuid();
  ForEachNamed(options.prefix, [&](const char* kind, const std::string& path) {
    const pid_t owner = OwnerInName(path);
    timespec made{};
    uid_t uid = 0;
    if (owner <= 0 || !MadeAt(path, &made, &uid) || uid != me) return;
    if (Owner o = JudgeOwner(owner, made); o.dead) out.push_back({kind, path, owner, o.why});
  });
  if (!options.sysv) return out;
  const long long now = NowNs(CLOCK_REALTIME) / kNs;
  for (auto& row : SysvTable("shm")) {
    if (Num(row, "uid") != static_cast<long long>(me) || Num(row, "nattch") != 0) continue;
    const long long last_use = std::max({Num(row, "atime"), Num(row, "dtime"), Num(row, "ctime")});
    if (now - last_use < options.sysv_min_age.count()) continue;
    const auto cpid = static_cast<pid_t>(Num(row, "cpid"));
    // ctime is in whole seconds and never earlier than the creation: its next second bounds it.
    const Owner o = JudgeOwner(cpid, timespec{static_cast<time_t>(Num(row, "ctime") + 1), 0});
    const int id = static_cast<int>(Num(row, "shmid"));
    if (!o.dead || !HasIpchMagic(id, static_cast<size_t>(Num(row, "size")))) continue;
    out.push_back({"sysv shm", "id=" + std::to_string(id) + " key=" + KeyText(row), cpid,
                   "its creator " + o.why + ", nobody has it attached, idle " + std::to_string(now - last_use) + " s"});
  }
  return out;
}

std::vector<Found> OwnedBy(pid_t pid, const std::set<pid_t>& tree) {
  std::vector<Found> out;
  const uid_t me = ::geteuid();
  const std::string mark = "ipch-" + std::to_string(pid) + "-";
  ForEachNamed(mark, [&](const char* kind, const std::string& path) {
    timespec made{};
    uid_t uid = 0;
    if (MadeAt(path, &made, &uid) && uid == me) out.push_back({kind, path, pid, "named for pid " + std::to_string(pid)});
  });
  auto in_tree = [&](long long p) { return p > 0 && tree.count(static_cast<pid_t>(p)) > 0; };
  for (auto& row : SysvTable("shm")) {
    if (Num(row, "uid") != static_cast<long long>(me) || !in_tree(Num(row, "cpid"))) continue;
    out.push_back({"sysv shm", "id=" + row["shmid"] + " key=" + KeyText(row), static_cast<pid_t>(Num(row, "cpid")),
                   "made by pid " + row["cpid"]});
  }
  for (auto& row : SysvTable("msg")) {
    if (Num(row, "uid") != static_cast<long long>(me)) continue;
    const long long user = in_tree(Num(row, "lspid")) ? Num(row, "lspid") : Num(row, "lrpid");
    if (!in_tree(user)) continue;
    out.push_back({"sysv msg", "id=" + row["msqid"] + " key=" + KeyText(row), static_cast<pid_t>(user),
                   "last used by pid " + std::to_string(user)});
  }
  return out;
}

Status Remove(const Found& f) {
  const std::string base = "/" + f.name.substr(f.name.rfind('/') + 1);
  int rc = 0;
  if (f.kind == "scratch dir" || f.kind == "temp file") {
    std::error_code ec;
    std::filesystem::remove_all(f.name, ec);
    if (ec) return ErrnoError("remove " + f.name, ec.value());
    return Ok();
  }
  if (f.kind == "posix shm") rc = ::shm_unlink(base.c_str());
  if (f.kind == "posix mqueue") rc = ::mq_unlink(base.c_str());
  const int id = f.kind.rfind("sysv", 0) == 0 ? std::atoi(f.name.c_str() + 3) : -1;
  if (f.kind == "sysv shm") rc = ::shmctl(id, IPC_RMID, nullptr);
  if (f.kind == "sysv msg") rc = ::msgctl(id, IPC_RMID, nullptr);
  if (rc != 0 && errno != ENOENT && errno != EINVAL && errno != EIDRM) return ErrnoError("remove " + Describe(f));
  return Ok();
}

namespace {

struct ProcStat {
  pid_t pid, ppid, pgid;
};

// Every process's pid, parent and group, from /proc/<pid>/stat.
std::vector<ProcStat> Processes() {
  std::vector<ProcStat> out;
  if (DIR* d = ::opendir("/proc")) {
    while (dirent* e = ::readdir(d)) {
      if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
      std::ifstream in(std::string("/proc/") + e->d_name + "/stat");
      std::string line;
      if (!std::getline(in, line)) continue;
      const auto rp = line.rfind(')');
      if (rp == std::string::npos) continue;
      std::istringstream rest(line.substr(rp + 2));
      char state = '?';
      pid_t ppid = 0, pgid = 0;
      rest >> state >> ppid >> pgid;
      out.push_back({static_cast<pid_t>(std::atoi(e->d_name)), ppid, pgid});
    }
    ::closedir(d);
  }
  return out;
}

}  // namespace

std::set<pid_t> ProcessGroup(pid_t pgid) {
  std::set<pid_t> out;
  for (const auto& p : Processes()) {
    if (p.pgid == pgid) out.insert(p.pid);
  }
  return out;
}

std::set<pid_t> Descendants(pid_t root) {
  std::multimap<pid_t, pid_t> children;  // ppid -> pid
  for (const auto& p : Processes()) children.emplace(p.ppid, p.pid);
  std::set<pid_t> out;
  std::vector<pid_t> todo{root};
  while (!todo.empty()) {
    const pid_t p = todo.back();
    todo.pop_back();
    auto [lo, hi] = children.equal_range(p);
    for (auto it = lo; it != hi; ++it) {
      if (out.insert(it->second).second) todo.push_back(it->second);
    }
  }
  return out;
}

std::string Describe(const Found& f) { return f.kind + " " + f.name + " (" + f.why + ")"; }

}  // namespace ipch::sweep
