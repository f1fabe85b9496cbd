// `ipch bench`: the benchmark binaries (bench/) run and read back, each transport's figure beside
// the raw baseline of its mechanism measured in the same run, as ratios with their goals.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "ipch/result.h"

namespace ipch::tool {

struct BenchRow {
  std::string transport;
  std::string metric;                    // "round trip" (latency, ns) or "stream" (bytes/s)
  std::string size;                      // "64", "4K", "64K", "1M"
  std::string baseline;                  // what the transport is compared with ("raw unix socket", "memcpy", ...)
  double value = 0, baseline_value = 0;  // ns, or bytes/s
  double ratio = 0;                      // cost against the baseline: >1 is slower (for a stream, baseline rate / rate)
  double goal = 0;                       // the ratio the transport should stay under (docs/benchmarks.md), 0 for none
  // Sockets and pipes also have a "careful" hand-written baseline (two reads per message): the
  // ratio against it, shown beside the one that counts; 0 where there is none.
  double careful_ratio = 0;
  bool Met() const { return goal <= 0 || ratio <= goal; }
};

// The transports the benchmarks cover, and the sizes.
const std::vector<std::string>& BenchTransports();
const std::vector<std::string>& BenchSizes();
// "64", "4K", "64K", "1M" from what a user writes ("4096", "4k", "4KiB", "1MiB"); "" if none.
std::string NormalizeSize(const std::string& s);

struct BenchOptions {
  std::string bench_dir;                       // where ipch_bench, ipch_shm_bench and ipch_http_bench are
  std::vector<std::string> transports, sizes;  // empty: all
  int repetitions = 3;                         // medians of these, interleaved
  double min_time = 0.5;
};

// Runs the binaries the selection needs (their own output goes to `log`) and pairs the figures.
Result<std::vector<BenchRow>> RunBench(const BenchOptions& o, const std::string& log);
// Pairs the figures of Google Benchmark JSON outputs (each {"benchmarks": [...]}).
std::vector<BenchRow> PairFigures(const std::vector<nlohmann::json>& outputs);

std::string BenchTable(const std::vector<BenchRow>& rows);
nlohmann::json BenchJson(const std::vector<BenchRow>& rows, const std::string& command);

}  // namespace ipch::tool
