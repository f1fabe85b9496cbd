// Round-trip latency of each transport beside a raw-kernel baseline of the same mechanism,
// in the same run. The echo peer is a forked process in both cases. The raw baseline is what a
// careful person writes by hand: blocking sockets, a 4-byte length, write-all / read-exact.
// At the end a table prints transport/baseline ratios from this run's own figures.
#include <benchmark/benchmark.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <string>

#include "ipch/child_process.h"
#include "ipch/temp_dir.h"
#include "transports/tcp/tcp.h"
#include "transports/unix/unix.h"

namespace {

using ipch::Bytes;
using ipch::Deadline;

// Both processes share one CPU unless IPCH_BENCH_PIN=0. On VMs, a cross-CPU wakeup costs tens
// of microseconds and depends on which kernel wait path sleeps, which swamps the code path we
// compare; pinned, the figures measure the user- and kernel-side work of each implementation.
void MaybePin() {
  const char* env = std::getenv("IPCH_BENCH_PIN");
  if (env != nullptr && std::string(env) == "0") return;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(0, &set);
  ::sched_setaffinity(0, sizeof set, &set);  // inherited by the forked echo peer
}

// ---- raw baseline --------------------------------------------------------------------------
bool WriteAll(int fd, const void* p, size_t n) {
  auto* c = static_cast<const char*>(p);
  while (n > 0) {
    ssize_t w = ::send(fd, c, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    c += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}
bool ReadExact(int fd, void* p, size_t n) {
  auto* c = static_cast<char*>(p);
  while (n > 0) {
    ssize_t r = ::read(fd, c, n);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    c += r;
    n -= static_cast<size_t>(r);
  }
  return true;
}
bool RawSend(int fd, const Bytes& m) {
  uint32_t n = static_cast<uint32_t>(m.size());  // little-endian hosts only, as the baseline
  iovec iov[2] = {{&n, 4}, {const_cast<std::byte*>(m.data()), m.size()}};
  msghdr mh{};
  mh.msg_iov = iov;
  mh.msg_iovlen = 2;
  ssize_t w = ::sendmsg(fd, &mh, MSG_NOSIGNAL);
  if (w < 0) return false;
  size_t total = 4 + m.size(), done = static_cast<size_t>(w);
  if (done < 4) return WriteAll(fd, reinterpret_cast<char*>(&n) + done, 4 - done) && WriteAll(fd, m.data(), m.size());
  return WriteAll(fd, m.data() + (done - 4), total - done);
}
bool RawReceive(int fd, Bytes& m) {
  uint32_t n;
  if (!ReadExact(fd, &n, 4)) return false;
  m.resize(n);
  return ReadExact(fd, m.data(), n);
}

struct RawEndpoint {
  ipch::UniqueFd listener;
  std::string path;  // unix only
  sockaddr_storage addr{};
  socklen_t len = 0;
  int family = AF_INET;
};

RawEndpoint RawListen(bool unix_sock, const std::filesystem::path& dir) {
  RawEndpoint e;
  e.family = unix_sock ? AF_UNIX : AF_INET;
  e.listener.reset(::socket(e.family, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (unix_sock) {
    auto* sa = reinterpret_cast<sockaddr_un*>(&e.addr);
    sa->sun_family = AF_UNIX;
    e.path = (dir / "raw.sock").string();
    std::snprintf(sa->sun_path, sizeof sa->sun_path, "%s", e.path.c_str());
    e.len = sizeof(sockaddr_un);
  } else {
    auto* sa = reinterpret_cast<sockaddr_in*>(&e.addr);
    sa->sin_family = AF_INET;
    sa->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    e.len = sizeof(sockaddr_in);
  }
  if (::bind(e.listener.get(), reinterpret_cast<sockaddr*>(&e.addr), e.len) != 0 ||
      ::listen(e.listener.get(), 4) != 0) {
    e.listener.reset();
    return e;
  }
  ::getsockname(e.listener.get(), reinterpret_cast<sockaddr*>(&e.addr), &e.len);
  return e;
}

void NoDelay(int fd, bool unix_sock) {
  int one = 1;
  if (!unix_sock) ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

template <bool kUnix>
void BM_Raw(benchmark::State& state) {
  auto dir = ipch::TempDir::Create("ipch-bench-");
  RawEndpoint e = RawListen(kUnix, dir->path());
  if (!e.listener) return state.SkipWithError("raw listen failed");
  auto child = ipch::ChildProcess::Spawn([&](ipch::ControlChannel&) -> ipch::Status {
    ipch::UniqueFd fd(::socket(e.family, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&e.addr), e.len) != 0) return ipch::ErrnoError("connect");
    NoDelay(fd.get(), kUnix);
    Bytes m;
    while (RawReceive(fd.get(), m) && RawSend(fd.get(), m)) {
    }
    return ipch::Ok();
  });
  if (!child.ok()) return state.SkipWithError("fork failed");
  ipch::UniqueFd s(::accept4(e.listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
  NoDelay(s.get(), kUnix);
  Bytes out(static_cast<size_t>(state.range(0)), std::byte{7}), in;
  for (auto _ : state) {
    if (!RawSend(s.get(), out) || !RawReceive(s.get(), in)) return state.SkipWithError("raw round trip failed");
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * state.range(0) * 2);
  s.reset();  // the echo loop ends on EOF
  (void)child->Wait(Deadline::After(std::chrono::seconds(10)));
}

// ---- ipch transports ----------------------------------------------------------------------
template <class Adapter>
void BM_Ipch(benchmark::State& state) {
  auto dir = ipch::TempDir::Create("ipch-bench-");
  auto l = Adapter::Listen(Adapter::Address(ipch::EndpointSpec{"bench", dir->path()}));
  if (!l.ok()) return state.SkipWithError(l.error().ToString().c_str());
  const std::string addr = l->address();
  auto child = ipch::ChildProcess::Spawn([addr](ipch::ControlChannel&) -> ipch::Status {
    auto c = Adapter::Connect(addr, Deadline::After(std::chrono::seconds(10)));
    if (!c.ok()) return std::move(c).error();
    Bytes m;
    while (c->Receive(m, Deadline::Never()).ok() && c->Send(m, Deadline::Never()).ok()) {
    }
    return ipch::Ok();
  });
  if (!child.ok()) return state.SkipWithError("fork failed");
  auto s = l->Accept(Deadline::After(std::chrono::seconds(10)));
  if (!s.ok()) return state.SkipWithError(s.error().ToString().c_str());
  Bytes out(static_cast<size_t>(state.range(0)), std::byte{7}), in;
  for (auto _ : state) {
    if (!s->Send(out, Deadline::Never()).ok() || !s->Receive(in, Deadline::Never()).ok()) {
      return state.SkipWithError("round trip failed");
    }
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * state.range(0) * 2);
  (void)s->Close();
  (void)child->Wait(Deadline::After(std::chrono::seconds(10)));
}

#define IPCH_SIZES Arg(64)->Arg(4096)->Arg(65536)->UseRealTime()
BENCHMARK(BM_Raw<false>)->Name("tcp/raw")->IPCH_SIZES;
BENCHMARK(BM_Ipch<ipch::tcp::Adapter<false>>)->Name("tcp/ipch")->IPCH_SIZES;
BENCHMARK(BM_Raw<true>)->Name("unix/raw")->IPCH_SIZES;
BENCHMARK(BM_Ipch<ipch::unix_sock::Adapter>)->Name("unix/ipch")->IPCH_SIZES;

// Collects each benchmark's time per iteration (the median when repeated) for the ratio table.
class RatioReporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const auto& r : runs) {
      if (r.error_occurred) continue;
      bool aggregate = r.run_type == Run::RT_Aggregate;
      if (aggregate && r.aggregate_name != "median") continue;
      std::string name = r.run_name.str();  // "tcp/raw/64/real_time"
      double ns = r.GetAdjustedRealTime();
      if (aggregate || !medians_.count(name)) medians_[name] = ns;
    }
  }
  void PrintRatios() const {
    std::printf("\nround trip: transport / raw baseline (same run, same mechanism; goal <= 1.15)\n");
    std::printf("%-6s %8s %14s %14s %8s\n", "mech", "bytes", "raw ns", "ipch ns", "ratio");
    for (const char* mech : {"tcp", "unix"}) {
      for (const char* size : {"64", "4096", "65536"}) {
        auto raw = medians_.find(std::string(mech) + "/raw/" + size + "/real_time");
        auto ours = medians_.find(std::string(mech) + "/ipch/" + size + "/real_time");
        if (raw == medians_.end() || ours == medians_.end()) continue;
        std::printf("%-6s %8s %14.0f %14.0f %8.3f\n", mech, size, raw->second, ours->second,
                    ours->second / raw->second);
      }
    }
  }

 private:
  std::map<std::string, double> medians_;
};

}  // namespace

int main(int argc, char** argv) {
  MaybePin();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  RatioReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  reporter.PrintRatios();
  benchmark::Shutdown();
  return 0;
}
