// Shared by the round-trip benchmarks: CPU pinning, the transport echo round trip, and the
// reporter that prints transport / raw-baseline ratios from the run's own figures.
#pragma once

#include <benchmark/benchmark.h>
#include <sched.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

#include "ipch/child_process.h"
#include "ipch/transport.h"

namespace ipch::bench {

// Both processes share one CPU unless IPCH_BENCH_PIN=0. On VMs, a cross-CPU wakeup costs tens
// of microseconds and depends on which kernel wait path sleeps, which swamps the code path we
// compare; pinned, the figures measure the user- and kernel-side work of each implementation.
inline void MaybePin() {
  const char* env = std::getenv("IPCH_BENCH_PIN");
  if (env != nullptr && std::string(env) == "0") return;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(0, &set);
  ::sched_setaffinity(0, sizeof set, &set);  // inherited by the forked echo peer
}

// The sizes every socket, pipe, queue and http benchmark runs (BENCHMARK(...)->Apply(Sizes)).
// IPCH_BENCH_ITERATIONS=N runs each exactly N iterations, for counting the system calls of a
// message (scripts/bench-syscalls: the difference between N and 1 iterations, over N - 1).
inline void Sizes(benchmark::internal::Benchmark* b) {
  b->Arg(64)->Arg(4096)->Arg(65536)->Arg(1 << 20)->UseRealTime();
  if (const char* n = std::getenv("IPCH_BENCH_ITERATIONS"); n != nullptr && std::atoll(n) > 0) {
    b->Iterations(std::atoll(n));
  }
}

// Two patterns, for the transports and their raw baselines alike. A round trip: the peer echoes
// each message. A stream: messages go one way back to back, and the peer answers one byte per
// kStreamBatch received, so the sender never runs more than a batch ahead; bytes/s is the
// payload's. `receive` and `send` are the mechanism's own calls (bool: went through).
inline constexpr uint64_t kStreamBatch = 64;

template <class Receive, class Send>
void Serve(bool stream, Receive receive, Send send) {
  Bytes m;
  const Bytes ack(2, std::byte{1});  // 2 bytes: a 1-byte message ends a POSIX-queue peer
  for (uint64_t n = 1; receive(m); ++n) {
    if (!(stream ? n % kStreamBatch != 0 || send(ack) : send(m))) return;
  }
}

template <class Send, class Receive>
void Drive(benchmark::State& state, bool stream, Send send, Receive receive) {
  const Bytes out(static_cast<size_t>(state.range(0)), std::byte{7});
  Bytes in;
  uint64_t n = 0;
  for (auto _ : state) {
    const bool ok = send(out) && (stream ? ++n % kStreamBatch != 0 || receive(in) : receive(in));
    if (!ok) return state.SkipWithError(stream ? "stream failed" : "round trip failed");
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * state.range(0) * (stream ? 1 : 2));
}

// A round trip (or, with `stream`, a stream) of state.range(0) bytes through `Adapter` to a
// forked peer.
template <class Adapter>
void EchoRoundTrip(benchmark::State& state, const EndpointSpec& spec, bool stream = false) {
  auto l = Adapter::Listen(Adapter::Address(spec));
  if (!l.ok()) return state.SkipWithError(l.error().ToString().c_str());
  const std::string addr = l->address();
  auto child = ChildProcess::Spawn([addr, stream](ControlChannel&) -> Status {
    auto c = Adapter::Connect(addr, Deadline::After(std::chrono::seconds(10)));
    if (!c.ok()) return std::move(c).error();
    Serve(
        stream, [&](Bytes& m) { return c->Receive(m, Deadline::Never()).ok(); },
        [&](const Bytes& m) { return c->Send(m, Deadline::Never()).ok(); });
    return Ok();
  });
  if (!child.ok()) return state.SkipWithError("fork failed");
  auto s = l->Accept(Deadline::After(std::chrono::seconds(10)));
  if (!s.ok()) return state.SkipWithError(s.error().ToString().c_str());
  Drive(
      state, stream, [&](const Bytes& m) { return s->Send(m, Deadline::Never()).ok(); },
      [&](Bytes& m) { return s->Receive(m, Deadline::Never()).ok(); });
  (void)s->Close();  // the peer's Receive gets PeerClosed and it exits
  (void)child->Wait(Deadline::After(std::chrono::seconds(10)));
}

// Collects each benchmark's time per iteration (the median when repeated) and prints, per
// mechanism and size, "<mech>/ipch" over "<mech>/raw".
class RatioReporter : public benchmark::ConsoleReporter {
 public:
  RatioReporter(std::vector<std::string> mechs, std::vector<std::string> sizes)
      : mechs_(std::move(mechs)), sizes_(std::move(sizes)) {}
  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const auto& r : runs) {
      if (r.error_occurred) continue;
      const bool aggregate = r.run_type == Run::RT_Aggregate;
      if (aggregate && r.aggregate_name != "median") continue;
      const std::string name = r.run_name.str();  // "tcp/raw/64/real_time"
      if (aggregate || !medians_.count(name)) medians_[name] = r.GetAdjustedRealTime();
    }
  }
  void PrintRatios() const {
    std::printf("\nround trip: transport / raw baseline (same run, same mechanism; goal <= 1.15)\n");
    std::printf("%-8s %8s %14s %14s %8s\n", "mech", "bytes", "raw ns", "ipch ns", "ratio");
    for (const auto& mech : mechs_) {
      for (const auto& size : sizes_) {
        auto raw = medians_.find(mech + "/raw/" + size + "/real_time");
        auto ours = medians_.find(mech + "/ipch/" + size + "/real_time");
        if (raw == medians_.end() || ours == medians_.end()) continue;
        std::printf("%-8s %8s %14.0f %14.0f %8.3f\n", mech.c_str(), size.c_str(), raw->second, ours->second,
                    ours->second / raw->second);
      }
    }
  }

 private:
  std::vector<std::string> mechs_, sizes_;
  std::map<std::string, double> medians_;
};

}  // namespace ipch::bench
