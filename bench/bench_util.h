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

// A round trip of state.range(0) bytes through `Adapter` to an echoing forked peer.
template <class Adapter>
void EchoRoundTrip(benchmark::State& state, const EndpointSpec& spec) {
  auto l = Adapter::Listen(Adapter::Address(spec));
  if (!l.ok()) return state.SkipWithError(l.error().ToString().c_str());
  const std::string addr = l->address();
  auto child = ChildProcess::Spawn([addr](ControlChannel&) -> Status {
    auto c = Adapter::Connect(addr, Deadline::After(std::chrono::seconds(10)));
    if (!c.ok()) return std::move(c).error();
    Bytes m;
    while (c->Receive(m, Deadline::Never()).ok() && c->Send(m, Deadline::Never()).ok()) {
    }
    return Ok();
  });
  if (!child.ok()) return state.SkipWithError("fork failed");
  auto s = l->Accept(Deadline::After(std::chrono::seconds(10)));
  if (!s.ok()) return state.SkipWithError(s.error().ToString().c_str());
  Bytes out(static_cast<size_t>(state.range(0)), std::byte{7}), in;
  for (auto _ : state) {
    if (!s->Send(out, Deadline::Never()).ok() || !s->Receive(in, Deadline::Never()).ok()) {
      state.SkipWithError("round trip failed");
      break;
    }
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * state.range(0) * 2);
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
