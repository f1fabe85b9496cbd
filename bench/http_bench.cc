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

#include "bench_util.h"
#include "ipch/child_process.h"
#include "ipch/interrupt.h"
#include "transports/http/http.h"

namespace {

using ipch::Bytes;
using ipch::Deadline;

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
  ipch::bench::EchoRoundTrip<ipch::http::Adapter>(state, ipch::EndpointSpec{"bench", {}});
}

#define IPCH_SIZES Apply(ipch::bench::Sizes)
BENCHMARK(BM_Raw)->Name("http/raw")->IPCH_SIZES;
BENCHMARK(BM_Ipch)->Name("http/ipch")->IPCH_SIZES;

}  // namespace

int main(int argc, char** argv) {
  if (auto status = ipch::RunInterruptCleanupIfRequested(argc, argv)) return *status;
  ipch::InstallInterruptCleanup();
  ipch::bench::MaybePin();
  curl_global_init(CURL_GLOBAL_DEFAULT);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  ipch::bench::RatioReporter reporter({"http"}, {"64", "4096", "65536", "1048576"});
  benchmark::RunSpecifiedBenchmarks(&reporter);
  reporter.PrintRatios();
  benchmark::Shutdown();
  return 0;
}
