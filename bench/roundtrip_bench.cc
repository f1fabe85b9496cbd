// Round-trip latency and streams of each transport beside raw-kernel baselines of the same
// mechanism, in the same run. The echo peer is a forked process in every case.
//  - "<mech>/raw" is the mechanism's limit, the fewest calls a framed message can cost: for
//    sockets and pipes the 4-byte length and the payload in one sendmsg/writev, and one read
//    into a reused 64 KiB buffer that takes the whole message when it fits (several, in a
//    stream), read-exact into the message only for the remainder; for queues one msgsnd or
//    mq_send and one receive per queue message. Blocking, no checks, no deadlines.
//  - "<mech>/careful" (sockets and pipes) is what a careful person writes by hand: the same
//    frame, read back with two read-exact calls (the length, then the payload).
// The ratio that counts is against the limit; ipch bench prints both.
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <mqueue.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/msg.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <string>

#include "bench_util.h"
#include "ipch/child_process.h"
#include "ipch/interrupt.h"
#include "ipch/temp_dir.h"
#include "transports/asio_tcp/asio_tcp.h"
#include "transports/fifo/fifo.h"
#include "transports/stream/crc32c.h"
#include "transports/posix_mq/posix_mq.h"
#include "transports/sysv_mq/sysv_mq.h"
#include "transports/tcp/tcp.h"
#include "transports/unix/unix.h"

namespace {

using ipch::Bytes;
using ipch::Deadline;

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
bool CarefulReceive(int fd, Bytes& m) {
  uint32_t n;
  if (!ReadExact(fd, &n, 4)) return false;
  m.resize(n);
  return ReadExact(fd, m.data(), n);
}

// The limit: one read into a reused buffer takes the whole frame when it fits (and, in a
// stream, the frames behind it); only a frame larger than what the read brought is completed
// by reading straight into the message.
class MinReader {
 public:
  bool Receive(int fd, Bytes& m) {
    while (end_ - pos_ < 4) {
      if (pos_ > 0) Compact();
      if (!Fill(fd)) return false;
    }
    uint32_t n;
    std::memcpy(&n, buf_.data() + pos_, 4);
    pos_ += 4;
    m.resize(n);  // the caller reuses `m`: same size, nothing cleared
    const size_t have = std::min<size_t>(n, end_ - pos_);
    std::memcpy(m.data(), buf_.data() + pos_, have);
    pos_ += have;
    return ReadExact(fd, m.data() + have, n - have);
  }

 private:
  void Compact() {
    std::memmove(buf_.data(), buf_.data() + pos_, end_ - pos_);
    end_ -= pos_;
    pos_ = 0;
  }
  bool Fill(int fd) {
    ssize_t r;
    do r = ::read(fd, buf_.data() + end_, buf_.size() - end_);
    while (r < 0 && errno == EINTR);
    if (r <= 0) return false;
    end_ += static_cast<size_t>(r);
    return true;
  }
  std::vector<char> buf_ = std::vector<char>(64 * 1024);
  size_t pos_ = 0, end_ = 0;
};

// A receiving end of a raw baseline: the limit, or the careful two reads.
template <bool kCareful>
struct RawReceiver {
  MinReader min;
  bool operator()(int fd, Bytes& m) { return kCareful ? CarefulReceive(fd, m) : min.Receive(fd, m); }
};

struct RawEndpoint {
  ipch::UniqueFd listener;
  std::string path;  // unix only
  sockaddr_storage addr{};
  socklen_t len = 0;
  int family = AF_INET;
};

RawEndpoint RawListen(bool unix_sock, const std::filesystem::path& dir, bool v6 = false) {
  RawEndpoint e;
  e.family = unix_sock ? AF_UNIX : v6 ? AF_INET6 : AF_INET;
  e.listener.reset(::socket(e.family, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (unix_sock) {
    auto* sa = reinterpret_cast<sockaddr_un*>(&e.addr);
    sa->sun_family = AF_UNIX;
    e.path = (dir / "raw.sock").string();
    std::snprintf(sa->sun_path, sizeof sa->sun_path, "%s", e.path.c_str());
    e.len = sizeof(sockaddr_un);
  } else if (v6) {
    auto* sa = reinterpret_cast<sockaddr_in6*>(&e.addr);
    sa->sin6_family = AF_INET6;
    sa->sin6_addr = in6addr_loopback;
    e.len = sizeof(sockaddr_in6);
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

template <bool kUnix, bool kV6 = false, bool kStream = false, bool kCareful = false>
void BM_Raw(benchmark::State& state) {
  auto dir = ipch::TempDir::Create("ipch-" + std::to_string(::getpid()) + "-bench-");
  RawEndpoint e = RawListen(kUnix, dir->path(), kV6);
  if (!e.listener) return state.SkipWithError("raw listen failed");
  auto child = ipch::ChildProcess::Spawn([&](ipch::ControlChannel&) -> ipch::Status {
    ipch::UniqueFd fd(::socket(e.family, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&e.addr), e.len) != 0) return ipch::ErrnoError("connect");
    NoDelay(fd.get(), kUnix);
    RawReceiver<kCareful> rx;
    ipch::bench::Serve(
        kStream, [&](Bytes& m) { return rx(fd.get(), m); },
        [&](const Bytes& m) { return RawSend(fd.get(), m); });
    return ipch::Ok();
  });
  if (!child.ok()) return state.SkipWithError("fork failed");
  ipch::UniqueFd s(::accept4(e.listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
  NoDelay(s.get(), kUnix);
  RawReceiver<kCareful> rx;
  ipch::bench::Drive(
      state, kStream, [&](const Bytes& m) { return RawSend(s.get(), m); },
      [&](Bytes& m) { return rx(s.get(), m); });
  s.reset();  // the echo loop ends on EOF
  (void)child->Wait(Deadline::After(std::chrono::seconds(10)));
}

// The same by hand over two FIFOs (blocking, writev of length + payload, read-exact).
bool PipeSend(int fd, const Bytes& m) {
  uint32_t n = static_cast<uint32_t>(m.size());
  iovec iov[2] = {{&n, 4}, {const_cast<std::byte*>(m.data()), m.size()}};
  ssize_t w = ::writev(fd, iov, 2);
  if (w < 0) return false;
  size_t done = static_cast<size_t>(w);
  if (done < 4) return false;  // a pipe moves at least PIPE_BUF at once when it has room
  const char* rest = reinterpret_cast<const char*>(m.data()) + (done - 4);
  for (size_t left = m.size() - (done - 4); left > 0;) {
    ssize_t k = ::write(fd, rest, left);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) return false;
    rest += k;
    left -= static_cast<size_t>(k);
  }
  return true;
}

template <bool kStream = false, bool kCareful = false>
void BM_RawFifo(benchmark::State& state) {
  auto dir = ipch::TempDir::Create("ipch-" + std::to_string(::getpid()) + "-bench-");
  const std::string up = (dir->path() / "up").string(), dn = (dir->path() / "dn").string();
  if (::mkfifo(up.c_str(), 0600) != 0 || ::mkfifo(dn.c_str(), 0600) != 0) return state.SkipWithError("mkfifo");
  ::signal(SIGPIPE, SIG_IGN);
  auto child = ipch::ChildProcess::Spawn([&](ipch::ControlChannel&) -> ipch::Status {
    ipch::UniqueFd in(::open(up.c_str(), O_RDONLY | O_CLOEXEC)), out(::open(dn.c_str(), O_WRONLY | O_CLOEXEC));
    RawReceiver<kCareful> rx;
    ipch::bench::Serve(
        kStream, [&](Bytes& m) { return rx(in.get(), m); },
        [&](const Bytes& m) { return PipeSend(out.get(), m); });
    return ipch::Ok();
  });
  if (!child.ok()) return state.SkipWithError("fork failed");
  ipch::UniqueFd out(::open(up.c_str(), O_WRONLY | O_CLOEXEC)), in(::open(dn.c_str(), O_RDONLY | O_CLOEXEC));
  for (int fd : {out.get(), in.get()}) ::fcntl(fd, F_SETPIPE_SZ, 1 << 20);  // as the transport does
  RawReceiver<kCareful> rx;
  ipch::bench::Drive(
      state, kStream, [&](const Bytes& m) { return PipeSend(out.get(), m); },
      [&](Bytes& m) { return rx(in.get(), m); });
  out.reset();
  (void)child->Wait(Deadline::After(std::chrono::seconds(10)));
}

// The same by hand over two SysV queues: blocking msgsnd/msgrcv, messages cut at msgmax with
// the length in front of the first piece.
constexpr size_t kMsgMax = 8192;
struct RawMsg {
  long type = 1;
  char text[kMsgMax];
};
bool MsgSend(int q, const Bytes& m, RawMsg& buf) {
  uint32_t n = static_cast<uint32_t>(m.size());
  size_t off = 0;
  bool first = true;
  do {
    size_t head = first ? 4 : 0, take = std::min(m.size() - off, kMsgMax - head);
    if (first) std::memcpy(buf.text, &n, 4);
    std::memcpy(buf.text + head, m.data() + off, take);
    if (::msgsnd(q, &buf, head + take, 0) != 0) return false;
    off += take;
    first = false;
  } while (off < m.size());
  return true;
}
bool MsgReceive(int q, Bytes& m, RawMsg& buf) {
  ssize_t r = ::msgrcv(q, &buf, kMsgMax, 1, 0);
  if (r < 4) return false;
  uint32_t n;
  std::memcpy(&n, buf.text, 4);
  m.resize(n);
  size_t off = std::min<size_t>(n, static_cast<size_t>(r) - 4);
  std::memcpy(m.data(), buf.text + 4, off);
  while (off < n) {
    r = ::msgrcv(q, &buf, kMsgMax, 1, 0);
    if (r <= 0) return false;
    std::memcpy(m.data() + off, buf.text, static_cast<size_t>(r));
    off += static_cast<size_t>(r);
  }
  return true;
}

template <bool kStream = false>
void BM_RawSysvMq(benchmark::State& state) {
  const int up = ::msgget(IPC_PRIVATE, IPC_CREAT | 0600), dn = ::msgget(IPC_PRIVATE, IPC_CREAT | 0600);
  if (up < 0 || dn < 0) return state.SkipWithError("msgget");
  auto child = ipch::ChildProcess::Spawn([&](ipch::ControlChannel&) -> ipch::Status {
    auto buf = std::make_unique<RawMsg>();
    ipch::bench::Serve(
        kStream, [&](Bytes& m) { return MsgReceive(up, m, *buf); },
        [&](const Bytes& m) { return MsgSend(dn, m, *buf); });
    return ipch::Ok();
  });
  if (!child.ok()) return state.SkipWithError("fork failed");
  auto buf = std::make_unique<RawMsg>();
  ipch::bench::Drive(
      state, kStream, [&](const Bytes& m) { return MsgSend(up, m, *buf); },
      [&](Bytes& m) { return MsgReceive(dn, m, *buf); });
  ::msgctl(up, IPC_RMID, nullptr);  // the echo loop ends on EIDRM
  ::msgctl(dn, IPC_RMID, nullptr);
  (void)child->Wait(Deadline::After(std::chrono::seconds(10)));
}

// The same by hand over two POSIX queues: blocking mq_send/mq_receive, messages cut at the
// queue's mq_msgsize with the length in front of the first piece (the transport's geometry).
struct PosixQueues {
  std::string up = "/ipch-" + std::to_string(::getpid()) + "-bench-raw-up";
  std::string dn = "/ipch-" + std::to_string(::getpid()) + "-bench-raw-dn";
  ~PosixQueues() {
    ::mq_unlink(up.c_str());
    ::mq_unlink(dn.c_str());
  }
};
bool MqSendAll(mqd_t q, const Bytes& m, std::vector<char>& buf) {
  uint32_t n = static_cast<uint32_t>(m.size());
  size_t off = 0;
  bool first = true;
  do {
    size_t head = first ? 4 : 0, take = std::min(m.size() - off, buf.size() - head);
    if (first) std::memcpy(buf.data(), &n, 4);
    std::memcpy(buf.data() + head, m.data() + off, take);
    if (::mq_send(q, buf.data(), head + take, 0) != 0) return false;
    off += take;
    first = false;
  } while (off < m.size());
  return true;
}
bool MqReceiveAll(mqd_t q, Bytes& m, std::vector<char>& buf) {
  ssize_t r = ::mq_receive(q, buf.data(), buf.size(), nullptr);
  if (r < 4) return false;
  uint32_t n;
  std::memcpy(&n, buf.data(), 4);
  m.resize(n);
  size_t off = std::min<size_t>(n, static_cast<size_t>(r) - 4);
  std::memcpy(m.data(), buf.data() + 4, off);
  while (off < n) {
    r = ::mq_receive(q, buf.data(), buf.size(), nullptr);
    if (r <= 0) return false;
    std::memcpy(m.data() + off, buf.data(), static_cast<size_t>(r));
    off += static_cast<size_t>(r);
  }
  return true;
}

template <bool kStream = false>
void BM_RawPosixMq(benchmark::State& state) {
  PosixQueues names;
  mq_attr a{};
  a.mq_maxmsg = 10;
  a.mq_msgsize = 8192;
  mqd_t up = ::mq_open(names.up.c_str(), O_CREAT | O_EXCL | O_RDWR, 0600, &a);
  mqd_t dn = ::mq_open(names.dn.c_str(), O_CREAT | O_EXCL | O_RDWR, 0600, &a);
  if (up == -1 || dn == -1) return state.SkipWithError("mq_open");
  auto child = ipch::ChildProcess::Spawn([&](ipch::ControlChannel&) -> ipch::Status {
    std::vector<char> buf(8192);
    ipch::bench::Serve(
        kStream, [&](Bytes& m) { return MqReceiveAll(up, m, buf) && m.size() != 1; },
        [&](const Bytes& m) { return MqSendAll(dn, m, buf); });
    return ipch::Ok();
  });
  if (!child.ok()) return state.SkipWithError("fork failed");
  std::vector<char> buf(8192);
  ipch::bench::Drive(
      state, kStream, [&](const Bytes& m) { return MqSendAll(up, m, buf); },
      [&](Bytes& m) { return MqReceiveAll(dn, m, buf); });
  (void)MqSendAll(up, Bytes(1), buf);  // a 1-byte message ends the echo loop
  (void)child->Wait(Deadline::After(std::chrono::seconds(10)));
  ::mq_close(up);
  ::mq_close(dn);
}

// ---- ipch transports ----------------------------------------------------------------------
template <class Adapter, bool kStream = false>
void BM_Ipch(benchmark::State& state) {
  auto dir = ipch::TempDir::Create("ipch-" + std::to_string(::getpid()) + "-bench-");
  ipch::bench::EchoRoundTrip<Adapter>(state, ipch::EndpointSpec{"bench", dir->path()}, kStream);
}

#define IPCH_SIZES Apply(ipch::bench::Sizes)
BENCHMARK(BM_Raw<false>)->Name("tcp/raw")->IPCH_SIZES;
BENCHMARK(BM_Ipch<ipch::tcp::Adapter<false>>)->Name("tcp/ipch")->IPCH_SIZES;
BENCHMARK(BM_Raw<false, true>)->Name("tcp6/raw")->IPCH_SIZES;
BENCHMARK(BM_Ipch<ipch::tcp::Adapter<true>>)->Name("tcp6/ipch")->IPCH_SIZES;
// The Boost.Asio transport against the same raw TCP limit (measured again, beside it).
BENCHMARK(BM_Raw<false>)->Name("asio_tcp/raw")->IPCH_SIZES;
BENCHMARK(BM_Ipch<ipch::asio_tcp::Adapter>)->Name("asio_tcp/ipch")->IPCH_SIZES;
BENCHMARK(BM_Raw<true>)->Name("unix/raw")->IPCH_SIZES;
BENCHMARK(BM_Ipch<ipch::unix_sock::Adapter>)->Name("unix/ipch")->IPCH_SIZES;
BENCHMARK(BM_RawFifo<>)->Name("fifo/raw")->IPCH_SIZES;
BENCHMARK(BM_Ipch<ipch::fifo::Adapter>)->Name("fifo/ipch")->IPCH_SIZES;
BENCHMARK(BM_RawSysvMq<>)->Name("sysv_mq/raw")->IPCH_SIZES;
BENCHMARK(BM_Ipch<ipch::sysv_mq::Adapter>)->Name("sysv_mq/ipch")->IPCH_SIZES;
BENCHMARK(BM_RawPosixMq<>)->Name("posix_mq/raw")->IPCH_SIZES;
BENCHMARK(BM_Ipch<ipch::posix_mq::Adapter>)->Name("posix_mq/ipch")->IPCH_SIZES;

// The careful hand-written baselines (two reads per message), a second column.
BENCHMARK(BM_Raw<false, false, false, true>)->Name("tcp/careful")->IPCH_SIZES;
BENCHMARK(BM_Raw<false, true, false, true>)->Name("tcp6/careful")->IPCH_SIZES;
BENCHMARK(BM_Raw<false, false, false, true>)->Name("asio_tcp/careful")->IPCH_SIZES;
BENCHMARK(BM_Raw<true, false, false, true>)->Name("unix/careful")->IPCH_SIZES;
BENCHMARK(BM_RawFifo<false, true>)->Name("fifo/careful")->IPCH_SIZES;
BENCHMARK(BM_Raw<false, false, true, true>)->Name("tcp/careful-stream")->IPCH_SIZES;
BENCHMARK(BM_Raw<false, true, true, true>)->Name("tcp6/careful-stream")->IPCH_SIZES;
BENCHMARK(BM_Raw<false, false, true, true>)->Name("asio_tcp/careful-stream")->IPCH_SIZES;
BENCHMARK(BM_Raw<true, false, true, true>)->Name("unix/careful-stream")->IPCH_SIZES;
BENCHMARK(BM_RawFifo<true, true>)->Name("fifo/careful-stream")->IPCH_SIZES;

// Streams: messages one way, back to back (ipch::bench::Drive), "<mech>/raw-stream" beside "<mech>/ipch-stream".
BENCHMARK(BM_Raw<false, false, true>)->Name("tcp/raw-stream")->IPCH_SIZES;
BENCHMARK(BM_Ipch<ipch::tcp::Adapter<false>, true>)->Name("tcp/ipch-stream")->IPCH_SIZES;
BENCHMARK(BM_Raw<false, true, true>)->Name("tcp6/raw-stream")->IPCH_SIZES;
BENCHMARK(BM_Ipch<ipch::tcp::Adapter<true>, true>)->Name("tcp6/ipch-stream")->IPCH_SIZES;
BENCHMARK(BM_Raw<false, false, true>)->Name("asio_tcp/raw-stream")->IPCH_SIZES;
BENCHMARK(BM_Ipch<ipch::asio_tcp::Adapter, true>)->Name("asio_tcp/ipch-stream")->IPCH_SIZES;
BENCHMARK(BM_Raw<true, false, true>)->Name("unix/raw-stream")->IPCH_SIZES;
BENCHMARK(BM_Ipch<ipch::unix_sock::Adapter, true>)->Name("unix/ipch-stream")->IPCH_SIZES;
BENCHMARK(BM_RawFifo<true>)->Name("fifo/raw-stream")->IPCH_SIZES;
BENCHMARK(BM_Ipch<ipch::fifo::Adapter, true>)->Name("fifo/ipch-stream")->IPCH_SIZES;
BENCHMARK(BM_RawSysvMq<true>)->Name("sysv_mq/raw-stream")->IPCH_SIZES;
BENCHMARK(BM_Ipch<ipch::sysv_mq::Adapter, true>)->Name("sysv_mq/ipch-stream")->IPCH_SIZES;
BENCHMARK(BM_RawPosixMq<true>)->Name("posix_mq/raw-stream")->IPCH_SIZES;
BENCHMARK(BM_Ipch<ipch::posix_mq::Adapter, true>)->Name("posix_mq/ipch-stream")->IPCH_SIZES;

// ---- the frame checksum alone -----------------------------------------------------------------
// One CRC-32C pass over a message of each size, as the stream transports make on each side
// (a round trip makes four); "crc32c" is the way Crc32c picks on this CPU, "crc32c-instruction"
// the crc32 instruction's three lanes alone, for comparison.
template <ipch::Crc32cWay kWay>
void BM_Crc32c(benchmark::State& state) {
  // kFolding is Crc32c itself, whatever this CPU has; the instruction alone is measured only
  // where it is there (else it would be the table under its name).
  if (kWay == ipch::Crc32cWay::kInstruction && !ipch::Crc32cHas(kWay)) return state.SkipWithError("no crc32 here");
  const Bytes m(static_cast<size_t>(state.range(0)), std::byte{7});
  uint32_t c = 0;
  for (auto _ : state) {
    c = ipch::Crc32cBy(kWay, m.data(), m.size(), c);
    benchmark::DoNotOptimize(c);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * state.range(0));
}
BENCHMARK(BM_Crc32c<ipch::Crc32cWay::kFolding>)->Name("crc32c")->IPCH_SIZES;
BENCHMARK(BM_Crc32c<ipch::Crc32cWay::kInstruction>)->Name("crc32c-instruction")->IPCH_SIZES;

}  // namespace

int main(int argc, char** argv) {
  if (auto status = ipch::RunInterruptCleanupIfRequested(argc, argv)) return *status;
  ipch::InstallInterruptCleanup();  // Ctrl-C stops the peers and removes the queues and sockets
  ipch::bench::MaybePin();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  ipch::bench::RatioReporter reporter({"tcp", "tcp6", "asio_tcp", "unix", "fifo", "sysv_mq", "posix_mq"},
                                      {"64", "4096", "65536", "1048576"});
  benchmark::RunSpecifiedBenchmarks(&reporter);
  reporter.PrintRatios();
  benchmark::Shutdown();
  return 0;
}
