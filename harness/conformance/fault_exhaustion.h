// Fault group, real exhaustion: the limits themselves reached, not an errno injected. Out of
// descriptors (RLIMIT_NOFILE lowered step by step in this process), a full /dev/shm (a small
// tmpfs mounted over it in a child's private mount namespace) and the kernel's IPC limits
// (kernel.msgmni, kernel.shmmni, fs.mqueue.queues_max, RLIMIT_MSGQUEUE, set in a child's private
// IPC namespace, so the machine's own limits and objects are never touched). Each limit is
// tightened until a connection can be set up, used and torn down; at every tighter setting the
// step that fails must report the limit's errno with the limit named, never crash (a page of a
// full tmpfs touched is SIGBUS), and leave nothing behind.
#pragma once

#include <fcntl.h>
#include <linux/capability.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <system_error>
#include <vector>

#include "fault_fixture.h"
#include "fault_setup.h"
#include "fixture.h"
#include "ipch/audit.h"
#include "ipch/child_process.h"
#include "ipch/peer.h"
#include "ipch/fault.h"
#include "ipch/result.h"
#include "ipch/testing.h"
#include "ipch/transport.h"

namespace ipch::conformance {

// What a limit's failure must look like: one of `errnos`, its context naming `names`.
inline ::testing::AssertionResult NamesTheLimit(const Status& st, std::initializer_list<int> errnos,
                                                const std::string& names) {
  if (st.ok()) return ::testing::AssertionFailure() << "no error";
  bool errno_ok = false;
  for (int e : errnos) errno_ok = errno_ok || st.error().code == std::error_code(e, std::system_category());
  if (!errno_ok) return ::testing::AssertionFailure() << "not the limit's errno: " << st.error().ToString();
  if (st.error().context.find(names) == std::string::npos) {
    return ::testing::AssertionFailure() << "the error does not name " << names << ": " << st.error().ToString();
  }
  return ::testing::AssertionSuccess();
}

// The lowest descriptor number free now: what a new descriptor would get.
// (Raw calls: the harness's own, never counted as the transport's by the census.)
inline int LowestFreeFd() {
  int p[2];
  if (::syscall(SYS_pipe2, p, O_CLOEXEC) != 0) return 3;
  const int lowest = std::min(p[0], p[1]);
  ::syscall(SYS_close, p[0]);
  ::syscall(SYS_close, p[1]);
  return lowest;
}

// RLIMIT_NOFILE's soft limit, lowered for a scope.
class ScopedFdLimit {
 public:
  explicit ScopedFdLimit(rlim_t soft) {
    ::getrlimit(RLIMIT_NOFILE, &saved_);
    rlimit lowered = saved_;
    lowered.rlim_cur = soft;
    ok_ = ::setrlimit(RLIMIT_NOFILE, &lowered) == 0;
  }
  ~ScopedFdLimit() { ::setrlimit(RLIMIT_NOFILE, &saved_); }
  bool ok() const { return ok_; }

 private:
  rlimit saved_{};
  bool ok_ = false;
};

// UBSan's vptr check, on a type-cache miss, probes the vtable's memory by writing it into a pipe
// it opens then: with no descriptor left, it reports every object it looks at as invalid. Its
// handler is a symbol of the runtime, present only where the check was compiled in.
extern "C" void __ubsan_handle_dynamic_type_cache_miss_abort(void*, void*, void*) __attribute__((weak));
extern "C" void __ubsan_handle_dynamic_type_cache_miss(void*, void*, void*) __attribute__((weak));
inline bool UbsanChecksVptrs() {
  return &__ubsan_handle_dynamic_type_cache_miss_abort != nullptr || &__ubsan_handle_dynamic_type_cache_miss != nullptr;
}

// The descriptor limit at each setting from "no descriptor free" up, until everything works.
TYPED_TEST_P(Fault, OutOfDescriptorsIsEmfileNamedAndLeavesNothingBehind) {
  if (UbsanChecksVptrs()) {
    GTEST_SKIP() << "UNSUPPORTED in this build: UBSan's vptr check opens a pipe for its own probe, and with no "
                 << "descriptor left reports every object as invalid (runs in builds without -fsanitize=vptr)";
  }
  const Bytes msg = MakeMessage(1, 100, this->Seed());
  const int lowest = LowestFreeFd();
  int failures = 0;
  for (int room = 0; room <= 64; ++room) {
    SCOPED_TRACE("RLIMIT_NOFILE " + std::to_string(lowest + room) + ": room for " + std::to_string(room) +
                 " descriptor(s)");
    std::optional<StepAudit> step;
    {
      fault::ScopedPause pause;  // the audit's own calls are not the transport's
      step.emplace();
    }
    Status st;
    std::string failed;
    {
      ScopedFdLimit limit(static_cast<rlim_t>(lowest + room));
      ASSERT_TRUE(limit.ok()) << std::strerror(errno);
      failed = SetUpAndTearDown<TypeParam>(this->address_, msg, &st, Scaled(std::chrono::seconds(1)));
    }
    {
      fault::ScopedPause pause;
      EXPECT_EQ(step->Leaks(), std::vector<std::string>{}) << "left behind after " << failed << " failed";
    }
    if (failed.empty()) {
      if (failures == 0) IPCH_NOT_APPLICABLE("it needs no descriptor to connect and exchange");
      return;
    }
    ++failures;
    EXPECT_TRUE(NamesTheLimit(st, {EMFILE}, "RLIMIT_NOFILE")) << failed << " failed";
    // Nothing half-built stays: with the limit back, the address serves a connection again.
    if (room % 8 == 0 || this->HasFailure()) {
      Status again;
      EXPECT_EQ(SetUpAndTearDown<TypeParam>(this->address_, msg, &again), "") << again.error().ToString();
    }
    if (this->HasFailure()) return;
  }
  ADD_FAILURE() << "still failing with room for 64 descriptors";
}

// Runs `body` in a forked child that first gives itself private namespaces (`flags` of
// unshare(2)) with a private copy of the mount tree; the body returns the step that failed,
// "", or a setup problem prefixed "setup: ". The child's error text carries the Status.
// What the namespace cases need: root for `what`, and a transport that can run in a forked child
// (one whose peers are exec'd, a threaded or fork-unsafe library, cannot).
#define IPCH_REQUIRE_PRIVATE_NAMESPACES(what)                                                                   \
  do {                                                                                                         \
    if (::geteuid() != 0) GTEST_SKIP() << "UNSUPPORTED here: " << (what) << " needs root";                      \
    if (::ipch::testing::ExecPeers(PeerModeOf<TypeParam>())) {                                                 \
      GTEST_SKIP() << "UNSUPPORTED: " << TypeParam::kName << "'s peers are exec'd (a threaded or fork-unsafe "  \
                   << "library), and this case runs the transport in a forked child with namespaces of its own"; \
    }                                                                                                          \
  } while (0)

struct ChildOutcome {
  bool ran = false;     // the child answered
  std::string died;     // how it ended, when it did not answer
  std::string step;     // "" when everything worked
  std::string error;    // the failed step's Status
  int err = 0;          // its errno, when a system error
  std::string leftover; // what the child found left in its namespaces after closing
};

template <class Body>
ChildOutcome InPrivateNamespaces(int flags, Body body) {
  ChildOutcome out;
  auto child = ChildProcess::Spawn([&](ControlChannel& ch) -> Status {
    if (::unshare(flags | CLONE_NEWNS) != 0) return ErrnoError("unshare");
    if (::mount("none", "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) return ErrnoError("make / private");
    std::string leftover;
    Status st;
    std::string step = body(&st, &leftover);
    const int err = !st.ok() && st.error().code.category() == std::system_category() ? st.error().code.value() : 0;
    return ch.SendString(step + "\n" + (st.ok() ? "" : st.error().ToString()) + "\n" + std::to_string(err) + "\n" +
                         leftover);
  });
  if (!child.ok()) {
    out.died = child.error().ToString();
    return out;
  }
  auto answer = child->control().ReceiveString(Deadline::After(Scaled(std::chrono::seconds(60))));
  auto ended = child->Wait(Deadline::After(Scaled(std::chrono::seconds(10))));
  if (!answer.ok()) {
    out.died = child->Describe();
    return out;
  }
  std::istringstream in(*answer);
  std::string err;
  std::getline(in, out.step);
  std::getline(in, out.error);
  std::getline(in, err);
  out.err = std::atoi(err.c_str());
  std::getline(in, out.leftover, '\0');
  out.ran = true;
  (void)ended;
  return out;
}

inline std::string DirEntries(const char* dir) {
  std::string out;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) out += e.path().string() + " ";
  return out;
}

inline bool WriteProc(const std::string& path, const std::string& value) {
  std::ofstream f(path);
  f << value;
  f.flush();
  return static_cast<bool>(f);
}

// /dev/shm as a tmpfs of each size from 16 KiB up (by fours) until a connection fits.
TYPED_TEST_P(Fault, FullDevShmIsEnospcNamedNeverSigbus) {
  if (!this->CrossProcess()) IPCH_NOT_APPLICABLE("it makes nothing in /dev/shm: its ends are in one process");
  IPCH_REQUIRE_PRIVATE_NAMESPACES("a private tmpfs over /dev/shm");
  const Bytes msg = MakeMessage(1, 100, this->Seed());
  const std::string address = this->address_;
  int failures = 0;
  for (size_t kib = 16; kib <= 64 * 1024; kib *= 4) {
    SCOPED_TRACE("/dev/shm a tmpfs of " + std::to_string(kib) + " KiB");
    const ChildOutcome o = InPrivateNamespaces(0, [&](Status* st, std::string* leftover) -> std::string {
      const std::string opts = "size=" + std::to_string(kib) + "k,mode=1777";
      if (::mount("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, opts.c_str()) != 0) {
        *st = ErrnoError("mount tmpfs on /dev/shm");
        return "setup";
      }
      const std::string step = SetUpAndTearDown<TypeParam>(address, msg, st);
      fault::ScopedPause pause;
      *leftover = DirEntries("/dev/shm");
      return step;
    });
    ASSERT_TRUE(o.ran) << "the child did not answer: " << o.died;
    ASSERT_NE(o.step, "setup") << o.error;
    EXPECT_EQ(o.leftover, "") << "left in /dev/shm after " << o.step << " failed";
    if (o.step.empty()) {
      if (failures == 0) IPCH_NOT_APPLICABLE("it makes nothing in /dev/shm");
      return;
    }
    ++failures;
    EXPECT_EQ(o.err, ENOSPC) << o.step << " failed: " << o.error;
    EXPECT_NE(o.error.find("/dev/shm is full"), std::string::npos) << o.step << " failed: " << o.error;
    if (this->HasFailure()) return;
  }
  ADD_FAILURE() << "a connection does not fit in 64 MiB of /dev/shm";
}

// One kernel IPC limit, set in a fresh IPC namespace at 0, 1, 2, ... until a connection fits.
struct IpcLimit {
  const char* name;      // as the error must name it
  const char* proc;      // its file under /proc/sys, or "" for RLIMIT_MSGQUEUE
  int err;               // the errno reaching it gives
  long unit;             // each step raises it by this much
};

inline bool DropSysResource() {
  __user_cap_header_struct head{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2]{};
  if (::syscall(SYS_capget, &head, data) != 0) return false;
  data[CAP_SYS_RESOURCE / 32].effective &= ~(1u << (CAP_SYS_RESOURCE % 32));
  data[CAP_SYS_RESOURCE / 32].permitted &= ~(1u << (CAP_SYS_RESOURCE % 32));
  return ::syscall(SYS_capset, &head, data) == 0;
}

TYPED_TEST_P(Fault, KernelIpcLimitsReachedAreNamed) {
  if (!this->CrossProcess()) IPCH_NOT_APPLICABLE("it makes no kernel IPC object: its ends are in one process");
  IPCH_REQUIRE_PRIVATE_NAMESPACES("a private IPC namespace with its own limits");
  const Bytes msg = MakeMessage(1, 100, this->Seed());
  const std::string address = this->address_;
  const IpcLimit limits[] = {{"kernel.msgmni", "/proc/sys/kernel/msgmni", ENOSPC, 1},
                             {"kernel.shmmni", "/proc/sys/kernel/shmmni", ENOSPC, 1},
                             {"fs.mqueue.queues_max", "/proc/sys/fs/mqueue/queues_max", ENOSPC, 1},
                             {"RLIMIT_MSGQUEUE", "", EMFILE, 65536}};
  int reached = 0;
  std::string never;
  for (const IpcLimit& limit : limits) {
    int failures = 0;
    for (long value = 0; value <= 16 * limit.unit; value += limit.unit) {
      SCOPED_TRACE(std::string(limit.name) + " = " + std::to_string(value));
      const ChildOutcome o = InPrivateNamespaces(CLONE_NEWIPC, [&](Status* st, std::string* leftover) -> std::string {
        // The namespace's own queues, visible where the audit and the transports look.
        ::umount2("/dev/mqueue", MNT_DETACH);
        if (::mount("mqueue", "/dev/mqueue", "mqueue", 0, nullptr) != 0) {
          *st = ErrnoError("mount mqueue");
          return "setup";
        }
        // A fresh namespace starts at the kernel's defaults: give queues the room the scripts give.
        bool set = true;
        {
          fault::ScopedPause pause;
          WriteProc("/proc/sys/kernel/msgmnb", "1048576");
          if (*limit.proc != '\0') {
            set = WriteProc(limit.proc, std::to_string(value));
          } else {
            const rlimit r{static_cast<rlim_t>(value), static_cast<rlim_t>(value)};
            set = ::setrlimit(RLIMIT_MSGQUEUE, &r) == 0;
          }
        }
        // Root may pass fs.mqueue.queues_max (CAP_SYS_RESOURCE): as a user would not.
        if (!set || !DropSysResource()) {
          *st = ErrnoError(std::string("set ") + limit.name);
          return "setup";
        }
        const std::string step = SetUpAndTearDown<TypeParam>(address, msg, st);
        fault::ScopedPause pause;
        *leftover = DirEntries("/dev/mqueue");
        for (const char* kind : {"msg", "shm", "sem"}) {
          std::ifstream in(std::string("/proc/sysvipc/") + kind);
          std::string line;
          std::getline(in, line);
          while (std::getline(in, line)) *leftover += std::string("sysv ") + kind + ": " + line + " ";
        }
        return step;
      });
      ASSERT_TRUE(o.ran) << "the child did not answer: " << o.died;
      ASSERT_NE(o.step, "setup") << o.error;
      EXPECT_EQ(o.leftover, "") << "left in the namespace after " << (o.step.empty() ? "success" : o.step);
      if (o.step.empty()) break;
      ++failures;
      EXPECT_EQ(o.err, limit.err) << o.step << " failed: " << o.error;
      EXPECT_NE(o.error.find(limit.name), std::string::npos) << o.step << " failed without naming the limit: " << o.error;
      if (this->HasFailure()) return;
      if (value == 16 * limit.unit) ADD_FAILURE() << "still failing at " << value;
    }
    if (failures > 0) {
      ++reached;
    } else {
      never += std::string(never.empty() ? "" : ", ") + limit.name;
    }
  }
  if (reached == 0) IPCH_NOT_APPLICABLE("it makes no SysV or POSIX IPC object (" + never + " never reached)");
  std::printf("[   INFO   ] limits reached: %d; never reached: %s\n", reached, never.empty() ? "-" : never.c_str());
}

}  // namespace ipch::conformance
