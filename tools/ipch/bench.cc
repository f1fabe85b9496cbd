#include "bench.h"

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <map>

#include "battery.h"

namespace ipch::tool {
namespace {

using nlohmann::json;

// Goals (docs/benchmarks.md): a socket, pipe or queue transport within 15 % of its raw
// mechanism at 64 B and 4 KiB and 35 % at 64 KiB and 1 MiB, round trip or stream; a shared-memory round trip
// within 1.5x of the raw spin ping-pong; streaming at 60 % of memcpy at 4 KiB, 75 % from 64 KiB (cost 1/0.6, 1/0.75).
double Goal(const std::string& transport, const std::string& metric, const std::string& size) {
  const bool shm = transport == "posix_shm" || transport == "sysv_shm";
  if (metric == "idle receiver") return 0.01;
  if (shm && metric == "stream") return size == "4K" ? 1.0 / 0.6 : 1.0 / 0.75;
  if (shm) return 1.5;
  const bool large = size == "64K" || size == "1M";
  // An asynchronous transport (docs/benchmarks.md, asio_tcp): its reactor's waits, and a copy
  // of what the socket does not take at once for its I/O thread.
  if (transport == "asio_tcp") return large ? 1.35 : 1.3;
  return large ? 1.35 : 1.15;
}

std::string SizeName(long bytes) {
  if (bytes >= (1 << 20) && bytes % (1 << 20) == 0) return std::to_string(bytes >> 20) + "M";
  if (bytes >= 1024 && bytes % 1024 == 0) return std::to_string(bytes >> 10) + "K";
  return std::to_string(bytes);
}
// The bytes of a size as SizeName writes it ("64", "4K", "1M"): the benchmarks' argument.
std::string SizeArg(const std::string& size) {
  const long n = std::stol(size);
  return std::to_string(size.back() == 'M' ? n << 20 : size.back() == 'K' ? n << 10 : n);
}

const char* Baseline(const std::string& transport) {
  static const std::map<std::string, const char*> names = {{"tcp", "raw TCP socket"},
                                                           {"tcp6", "raw TCP socket (IPv6)"},
                                                           {"asio_tcp", "raw TCP socket"},
                                                           {"unix", "raw Unix socket"},
                                                           {"fifo", "raw FIFO pair"},
                                                           {"sysv_mq", "raw SysV queues"},
                                                           {"posix_mq", "raw POSIX queues"},
                                                           {"http", "raw libcurl + cpp-httplib"},
                                                           {"posix_shm", "raw spin ping-pong"},
                                                           {"sysv_shm", "raw spin ping-pong"}};
  const auto it = names.find(transport);
  return it == names.end() ? "raw" : it->second;
}

// A figure of one benchmark: the median when the run repeated, else its one run.
struct Figure {
  double ns = 0, bytes_per_s = 0;
  double cpu_pct = 0;  // the idle receiver's share of a core
  // A benchmark that measures its baseline itself, in blocks alternating with its own (the
  // shared-memory round trip): the baseline's time and the median of the blocks' ratios.
  double ipch_ns = 0, raw_ns = 0, paired_ratio = 0;
  // What a round trip (ns) or a stream (bytes/s) is measured in.
  double Of(bool stream) const { return stream ? bytes_per_s : ns; }
};

double ToNs(double t, const std::string& unit) {
  if (unit == "us") return t * 1e3;
  if (unit == "ms") return t * 1e6;
  if (unit == "s") return t * 1e9;
  return t;
}

}  // namespace

const std::vector<std::string>& BenchTransports() {
  static const std::vector<std::string> t = {"tcp",       "tcp6",     "asio_tcp", "unix",    "fifo",
                                             "posix_shm", "sysv_shm", "posix_mq", "sysv_mq", "http"};
  return t;
}

const std::vector<std::string>& BenchSizes() {
  static const std::vector<std::string> s = {"64", "4K", "64K", "1M"};
  return s;
}

std::string NormalizeSize(const std::string& in) {
  std::string s;
  for (char c : in) s += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  if (s.size() > 3 && s.compare(s.size() - 3, 3, "IB") == 0) s.erase(s.size() - 2);  // KiB -> K
  if (s.size() > 1 && s.back() == 'B') s.pop_back();
  long mult = 1;
  if (!s.empty() && (s.back() == 'K' || s.back() == 'M')) {
    mult = s.back() == 'K' ? 1024 : 1 << 20;
    s.pop_back();
  }
  if (s.empty() || s.size() > 8 || s.find_first_not_of("0123456789") != std::string::npos) return "";
  const std::string name = SizeName(std::stol(s) * mult);
  const auto& all = BenchSizes();
  return std::find(all.begin(), all.end(), name) != all.end() ? name : "";
}

std::vector<BenchRow> PairFigures(const std::vector<json>& outputs) {
  std::map<std::string, Figure> fig;
  for (const auto& out : outputs) {
    if (!out.contains("benchmarks")) continue;
    for (const auto& b : out["benchmarks"]) {
      const bool repeated = b.value("run_type", "") == "aggregate";
      if (repeated && b.value("aggregate_name", "") != "median") continue;
      std::string name = b.value("run_name", b.value("name", ""));
      for (const std::string suffix : {"/real_time", "/manual_time"}) {
        if (name.size() > suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0) {
          name.resize(name.size() - suffix.size());
        }
      }
      // A fixed iteration count (the idle receiver's; any, under IPCH_BENCH_ITERATIONS) is in the name.
      if (const auto it = name.rfind("/iterations:"); it != std::string::npos) name.resize(it);
      if (!repeated && fig.count(name)) continue;  // a repeated run's medians, once per name
      fig[name] = {ToNs(b.value("real_time", 0.0), b.value("time_unit", "ns")), b.value("bytes_per_second", 0.0),
                   b.value("cpu_pct", 0.0), b.value("ipch_ns", 0.0), b.value("raw_ns", 0.0), b.value("ratio", 0.0)};
    }
  }
  std::vector<BenchRow> rows;
  // Sockets, pipes, queues and http: "<t>/raw/<bytes>" beside "<t>/ipch/<bytes>", and for a
  // stream "<t>/raw-stream/<bytes>" beside "<t>/ipch-stream/<bytes>" (in bytes/s); the careful
  // baseline, where there is one, is "<t>/careful[-stream]/<bytes>".
  // The cost against a baseline (0 where either figure is missing): time over time, or for a
  // stream the baseline's rate over ours.
  const auto cost = [](const Figure& ours, const Figure& base, bool stream) {
    if (ours.Of(stream) <= 0 || base.Of(stream) <= 0) return 0.0;
    return stream ? base.bytes_per_s / ours.bytes_per_s : ours.ns / base.ns;
  };
  // The frame checksum alone: one pass per message and side, so four per round trip; shown
  // beside the raw unix round trip of the size, as the share four passes would add to it.
  for (const auto& size : BenchSizes()) {
    const auto crc = fig.find("crc32c/" + SizeArg(size));
    const auto rt = fig.find("unix/raw/" + SizeArg(size));
    if (crc == fig.end() || rt == fig.end() || rt->second.ns <= 0) continue;
    rows.push_back({"crc32c", "checksum", size, "4 passes vs raw unix round trip", crc->second.ns, rt->second.ns,
                    4 * crc->second.ns / rt->second.ns, 0});
  }
  for (const auto& t : BenchTransports()) {
    for (const auto& size : BenchSizes()) {
      for (const bool stream : {false, true}) {
        const std::string suffix = std::string(stream ? "-stream/" : "/") + SizeArg(size);
        const auto ipch = fig.find(t + "/ipch" + suffix);
        const auto raw = fig.find(t + "/raw" + suffix);
        if (ipch == fig.end() || raw == fig.end()) continue;
        const double ratio = cost(ipch->second, raw->second, stream);
        if (ratio <= 0) continue;
        BenchRow row{t,          stream ? "stream" : "round trip", size, Baseline(t), ipch->second.Of(stream),
                     raw->second.Of(stream), ratio, Goal(t, "round trip", size)};
        const auto careful = fig.find(t + "/careful" + suffix);
        if (careful != fig.end()) row.careful_ratio = cost(ipch->second, careful->second, stream);
        rows.push_back(std::move(row));
      }
    }
    // Shared memory: the 64-byte round trip beside the raw spin ping-pong, measured in the same
    // benchmark (paired blocks); streams beside memcpy.
    const auto rt = fig.find(t + "/RoundTrip64");
    if (rt != fig.end() && rt->second.ipch_ns > 0 && rt->second.raw_ns > 0 && rt->second.paired_ratio > 0) {
      rows.push_back({t, "round trip", "64", Baseline(t), rt->second.ipch_ns, rt->second.raw_ns,
                      rt->second.paired_ratio, Goal(t, "round trip", "64")});
    }
    // A receiver waiting with nothing to receive: its share of one core (goal: at most 1 %).
    const auto idle = fig.find(t + "/IdleReceiver");
    if (idle != fig.end()) {
      rows.push_back({t, "idle receiver", "-", "one core", idle->second.cpu_pct, 100.0, idle->second.cpu_pct / 100.0,
                      Goal(t, "idle receiver", "-")});
    }
    const auto memcpy_fig = fig.find("Memcpy64MiB");
    for (const auto& size : BenchSizes()) {  // 4 KiB and up: a 64-byte stream has no figure
      const auto st = fig.find(t + "/Stream/" + SizeArg(size));
      if (st == fig.end() || memcpy_fig == fig.end() || st->second.bytes_per_s <= 0) continue;
      rows.push_back({t, "stream", size, "memcpy", st->second.bytes_per_s, memcpy_fig->second.bytes_per_s,
                      memcpy_fig->second.bytes_per_s / st->second.bytes_per_s, Goal(t, "stream", size)});
    }
  }
  return rows;
}

Result<std::vector<BenchRow>> RunBench(const BenchOptions& o, const std::string& log) {
  const auto chosen = [](const std::vector<std::string>& picked, const std::string& x) {
    return picked.empty() || std::find(picked.begin(), picked.end(), x) != picked.end();
  };
  std::string sockets, shm, http;
  for (const auto& t : BenchTransports()) {
    if (!chosen(o.transports, t)) continue;
    std::string& into = t == "http" ? http : (t == "posix_shm" || t == "sysv_shm") ? shm : sockets;
    into += (into.empty() ? "" : "|") + t;
  }
  std::string bytes;         // the sizes as Google Benchmark's argument
  std::string stream_bytes;  // those a shared-memory stream has (4 KiB and up)
  for (const auto& s : BenchSizes()) {
    if (!chosen(o.sizes, s)) continue;
    bytes += (bytes.empty() ? "" : "|") + SizeArg(s);
    if (s != "64") stream_bytes += (stream_bytes.empty() ? "" : "|") + SizeArg(s);
  }
  struct Job {
    std::string binary, filter;
  };
  std::vector<Job> jobs;
  if (!sockets.empty()) {
    // With unix, the checksum's own cost (its rows compare it with the raw unix round trip).
    const std::string crc = chosen(o.transports, "unix") ? "|crc32c" : "";
    jobs.push_back({"ipch_bench", "^((" + sockets + ")/(raw|careful|ipch)(-stream)?" + crc + ")/(" + bytes + ")/"});
  }
  if (!http.empty()) jobs.push_back({"ipch_http_bench", "^http/(raw|ipch)/(" + bytes + ")/"});
  if (!shm.empty()) {
    // The rings' round trip is 64 bytes only, their streams 4 KiB and up: each with its baseline
    // when its size is chosen.
    std::string f;
    if (chosen(o.sizes, "64")) f = "(" + shm + ")/RoundTrip64";
    if (o.sizes.empty()) f += (f.empty() ? "" : "|") + std::string("(") + shm + ")/IdleReceiver";
    if (!stream_bytes.empty()) {
      f += (f.empty() ? "" : "|") + std::string("Memcpy64MiB|(") + shm + ")/Stream/(" + stream_bytes + ")$";
    }
    if (!f.empty()) jobs.push_back({"ipch_shm_bench", "^(" + f + ")"});
  }
  std::vector<json> outputs;
  for (const auto& j : jobs) {
    const std::string out = log + "." + j.binary + ".json";
    const std::string bin = o.bench_dir + "/" + j.binary;
    if (::access(bin.c_str(), X_OK) != 0) return MakeError(Errc::InvalidArgument, "no benchmark binary " + bin);
    auto run = RunLogged(
        {bin, "--benchmark_filter=" + j.filter, "--benchmark_min_time=" + std::to_string(o.min_time),
         "--benchmark_repetitions=" + std::to_string(o.repetitions), "--benchmark_enable_random_interleaving=true",
         "--benchmark_report_aggregates_only=" + std::string(o.repetitions > 1 ? "true" : "false"),
         "--benchmark_out=" + out, "--benchmark_out_format=json"},
        log);
    if (!run.ok()) return std::move(run).error();
    const int status = *run;
    std::ifstream f(out);
    json doc = json::parse(f, nullptr, false);
    std::remove(out.c_str());
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || doc.is_discarded()) {
      return MakeError(Errc::InvalidArgument, j.binary + " failed (status " + std::to_string(status) + "); see " + log);
    }
    outputs.push_back(std::move(doc));
  }
  return PairFigures(outputs);
}

std::string BenchTable(const std::vector<BenchRow>& rows) {
  std::string out =
      "transport  metric      size  transport          baseline           ratio   goal     careful  baseline is\n";
  char line[256];
  for (const auto& r : rows) {
    const bool stream = r.metric == "stream";
    const auto shown = [&](double v) {
      char b[32];
      if (r.metric == "idle receiver")
        std::snprintf(b, sizeof b, "%.2f %% CPU", v);
      else if (stream)
        std::snprintf(b, sizeof b, "%.2f GB/s", v / 1e9);
      else
        std::snprintf(b, sizeof b, "%.2f us", v / 1e3);
      return std::string(b);
    };
    char careful[16] = "-";
    if (r.careful_ratio > 0) std::snprintf(careful, sizeof careful, "%.2f", r.careful_ratio);
    char goal[16] = "-";
    if (r.goal > 0) std::snprintf(goal, sizeof goal, "<=%.2f", r.goal);
    std::snprintf(line, sizeof line, "%-10s %-11s %-5s %-18s %-18s %5.2f   %-6s %-7s %-8s %s\n", r.transport.c_str(),
                  r.metric.c_str(), r.size.c_str(), shown(r.value).c_str(), shown(r.baseline_value).c_str(), r.ratio,
                  goal, r.goal <= 0 ? "" : r.Met() ? "met" : "MISSED", careful, r.baseline.c_str());
    out += line;
  }
  return out;
}

json BenchJson(const std::vector<BenchRow>& rows, const std::string& command) {
  json results = json::array();
  for (const auto& r : rows) {
    results.push_back({{"transport", r.transport},
                       {"metric", r.metric},
                       {"size", r.size},
                       {"baseline", r.baseline},
                       {"value", r.value},
                       {"baseline_value", r.baseline_value},
                       {"unit", r.metric == "stream" ? "bytes/s" : r.metric == "idle receiver" ? "% of a core" : "ns"},
                       {"ratio", r.ratio},
                       {"goal", r.goal},
                       {"met", r.Met()}});
    if (r.careful_ratio > 0) results.back()["careful_ratio"] = r.careful_ratio;
  }
  return {{"format", "ipch-bench-1"}, {"command", command}, {"results", std::move(results)}};
}

}  // namespace ipch::tool
