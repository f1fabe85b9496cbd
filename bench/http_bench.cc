// Round-trip latency of the http transport beside a raw HTTP baseline of the same mechanism, in
// the same run. The echo peer is a forked process in both cases. The raw baseline is what a
// careful person writes by hand with the same libraries: a minimal cpp-httplib server whose
// handlers hand bodies to and from the benchmark thread through one mailbox each way, and a
// libcurl client reusing one easy handle per direction that long-polls GET and echoes by POST.
// No sessions, sequence numbers, acknowledgements or presence stream: what the transport adds
// for its guarantees is what the ratio measures. At the end a table prints transport/baseline
// ratios from this run's own figures.
#include <benchmark/benchmark.h>
#include <curl/curl.h>
#include <httplib.h>
#include <sched.h>

#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <map>
#include <mutex>
#include <string>
#include <thread>

#include "ipch/child_process.h"
#include "transports/http/http.h"

namespace {

using ipch::Bytes;
using ipch::Deadline;

// Both processes share one CPU unless IPCH_BENCH_PIN=0, as in roundtrip_bench.cc: on VMs a
// cross-CPU wakeup costs tens of microseconds and swamps the code path we compare.
void MaybePin() {
  const char* env = std::getenv("IPCH_BENCH_PIN");
  if (env != nullptr && std::string(env) == "0") return;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(0, &set);
  ::sched_setaffinity(0, sizeof set, &set);  // inherited by the forked echo peer
}

// ---- raw baseline --------------------------------------------------------------------------
struct Mailbox {
  std::mutex mu;
  std::condition_variable cv;
  std::deque<std::string> q;
  bool stop = false;
  void Put(std::string m) {
    std::lock_guard lk(mu);
    q.push_back(std::move(m));
    cv.notify_all();
  }
  bool Take(std::string* out) {
    std::unique_lock lk(mu);
    cv.wait(lk, [&] { return !q.empty() || stop; });
    if (q.empty()) return false;
    *out = std::move(q.front());
    q.pop_front();
    return true;
  }
  void Stop() {
    std::lock_guard lk(mu);
    stop = true;
    cv.notify_all();
  }
};

size_t Collect(char* p, size_t size, size_t n, void* ud) {
  static_cast<std::string*>(ud)->append(p, size * n);
  return size * n;
}

CURL* RawHandle(std::string* body) {
  CURL* h = curl_easy_init();
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_TCP_NODELAY, 1L);
  curl_easy_setopt(h, CURLOPT_PROXY, "");
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, &Collect);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, body);
  return h;
}

// The echo peer: GET a message (the server holds the request until there is one), POST it back.
ipch::Status RawEcho(int port) {
  const std::string url = "http://127.0.0.1:" + std::to_string(port) + "/m";
  std::string got, ignored;
  CURL* get = RawHandle(&got);
  CURL* post = RawHandle(&ignored);
  curl_easy_setopt(get, CURLOPT_URL, url.c_str());
  curl_easy_setopt(get, CURLOPT_HTTPGET, 1L);
  curl_easy_setopt(post, CURLOPT_URL, url.c_str());
  curl_slist* hdrs = curl_slist_append(nullptr, "Expect:");
  hdrs = curl_slist_append(hdrs, "Content-Type: application/octet-stream");
  curl_easy_setopt(post, CURLOPT_HTTPHEADER, hdrs);
  for (;;) {
    got.clear();
    long status = 0;
    if (curl_easy_perform(get) != CURLE_OK) break;
    curl_easy_getinfo(get, CURLINFO_RESPONSE_CODE, &status);
    if (status != 200) break;
    curl_easy_setopt(post, CURLOPT_POSTFIELDS, got.data());
    curl_easy_setopt(post, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(got.size()));
    if (curl_easy_perform(post) != CURLE_OK) break;
  }
  curl_slist_free_all(hdrs);
  curl_easy_cleanup(get);
  curl_easy_cleanup(post);
  return ipch::Ok();
}

void BM_Raw(benchmark::State& state) {
  Mailbox down, up;  // down: to the peer (served by GET), up: from the peer (filled by POST)
  httplib::Server svr;
  svr.set_tcp_nodelay(true);
  svr.set_keep_alive_max_count(1u << 30);
  svr.Get("/m", [&](const httplib::Request&, httplib::Response& res) {
    std::string m;
    if (!down.Take(&m)) {
      res.status = 503;
      return;
    }
    res.body = std::move(m);
    res.set_header("Content-Type", "application/octet-stream");
  });
  svr.Post("/m", [&](const httplib::Request& req, httplib::Response& res) {
    up.Put(req.body);
    res.status = 204;
  });
  const int port = svr.bind_to_any_port("127.0.0.1");
  if (port < 0) return state.SkipWithError("raw listen failed");
  std::thread server([&] { svr.listen_after_bind(); });
  while (!svr.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  auto child = ipch::ChildProcess::Spawn([port](ipch::ControlChannel&) { return RawEcho(port); });
  if (!child.ok()) {
    svr.stop();
    server.join();
    return state.SkipWithError("fork failed");
  }
  const std::string out(static_cast<size_t>(state.range(0)), '\7');
  std::string in;
  for (auto _ : state) {
    down.Put(out);
    if (!up.Take(&in) || in.size() != out.size()) {
      state.SkipWithError("raw round trip failed");
      break;
    }
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * state.range(0) * 2);
  down.Stop();  // the peer's pending GET gets 503 and it exits
  up.Stop();
  (void)child->Wait(Deadline::After(std::chrono::seconds(10)));
  svr.stop();
  server.join();
}

// ---- the transport ---------------------------------------------------------------------------
void BM_Ipch(benchmark::State& state) {
  using Adapter = ipch::http::Adapter;
  auto l = Adapter::Listen(Adapter::Address(ipch::EndpointSpec{"bench", {}}));
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
      state.SkipWithError("round trip failed");
      break;
    }
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * state.range(0) * 2);
  (void)s->Close();  // the peer's Receive gets PeerClosed and it exits
  (void)child->Wait(Deadline::After(std::chrono::seconds(10)));
}

#define IPCH_SIZES Arg(64)->Arg(4096)->UseRealTime()
BENCHMARK(BM_Raw)->Name("http/raw")->IPCH_SIZES;
BENCHMARK(BM_Ipch)->Name("http/ipch")->IPCH_SIZES;

// Collects each benchmark's time per iteration (the median when repeated) for the ratio table.
class RatioReporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const auto& r : runs) {
      if (r.error_occurred) continue;
      bool aggregate = r.run_type == Run::RT_Aggregate;
      if (aggregate && r.aggregate_name != "median") continue;
      std::string name = r.run_name.str();  // "http/raw/64/real_time"
      double ns = r.GetAdjustedRealTime();
      if (aggregate || !medians_.count(name)) medians_[name] = ns;
    }
  }
  void PrintRatios() const {
    std::printf("\nround trip: transport / raw baseline (same run, same mechanism)\n");
    std::printf("%-6s %8s %14s %14s %8s\n", "mech", "bytes", "raw ns", "ipch ns", "ratio");
    for (const char* size : {"64", "4096"}) {
      auto raw = medians_.find(std::string("http/raw/") + size + "/real_time");
      auto ours = medians_.find(std::string("http/ipch/") + size + "/real_time");
      if (raw == medians_.end() || ours == medians_.end()) continue;
      std::printf("%-6s %8s %14.0f %14.0f %8.3f\n", "http", size, raw->second, ours->second,
                  ours->second / raw->second);
    }
  }

 private:
  std::map<std::string, double> medians_;
};

}  // namespace

int main(int argc, char** argv) {
  MaybePin();
  curl_global_init(CURL_GLOBAL_DEFAULT);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  RatioReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  reporter.PrintRatios();
  benchmark::Shutdown();
  return 0;
}
