// ipch_proxy: the stream toxics proxy from the command line. Runs until SIGINT, SIGTERM or SIGHUP,
// then closes its connections, removes its unix socket file if it made one, prints what it did
// and exits with 128+signal, as the harness's programs do. 1 if it could not start, 2 for bad usage.
#include <signal.h>

#include <cstdio>
#include <cstring>
#include <string>

#include "ipch/toxics.h"

namespace {

constexpr const char* kUsage =
    "usage: ipch_proxy --listen ADDR --upstream ADDR [--toxics SPEC] [--seed N] [--quiet]\n"
    "  ADDR   HOST:PORT (port 0: any free port), [V6]:PORT, or a unix socket path\n"
    "  SPEC   e.g. 'up:slice=1;down:latency=5ms,jitter=2ms,flip=0.001' (docs/fault-model.md)\n"
    "  --seed overrides a seed= in SPEC; --quiet prints no event log at exit\n";

int Usage(const std::string& why) {
  std::fprintf(stderr, "ipch_proxy: %s\n%s", why.c_str(), kUsage);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::string listen, upstream, spec_text, seed_text;
  bool quiet = false;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    }
    if (arg == "--quiet") {
      quiet = true;
      continue;
    }
    std::string* target = arg == "--listen"     ? &listen
                          : arg == "--upstream" ? &upstream
                          : arg == "--toxics"   ? &spec_text
                          : arg == "--seed"     ? &seed_text
                                                : nullptr;
    if (!target) return Usage("unknown option '" + arg + "'");
    if (i + 1 >= argc) return Usage("option " + arg + " needs a value");
    *target = argv[++i];
  }
  if (listen.empty()) return Usage("--listen is required");
  if (upstream.empty()) return Usage("--upstream is required");
  ipch::toxics::Spec spec;
  std::string error;
  if (!spec_text.empty() && !ipch::toxics::ParseSpec(spec_text, &spec, &error)) return Usage("--toxics: " + error);
  if (!seed_text.empty()) {
    ipch::toxics::Spec seeded;
    if (!ipch::toxics::ParseSpec("seed=" + seed_text, &seeded, &error)) return Usage("--seed: " + error);
    spec.seed = seeded.seed;
  }

  // Signals are taken synchronously by this thread; the proxy's threads inherit the mask.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  signal(SIGPIPE, SIG_IGN);

  auto proxy = ipch::toxics::Proxy::Start(listen, upstream, spec);
  if (!proxy.ok()) {
    std::fprintf(stderr, "ipch_proxy: %s\n", proxy.error().ToString().c_str());
    return 1;
  }
  std::printf("ipch_proxy: listening on %s -> %s (%s)\n", (*proxy)->address().c_str(), upstream.c_str(),
              ipch::toxics::FormatSpec(spec).c_str());
  std::fflush(stdout);
  int sig = 0;
  sigwait(&set, &sig);
  (*proxy)->Stop();
  const auto st = (*proxy)->stats();
  std::printf("ipch_proxy: %s; connections %llu, forwarded up %llu down %llu bytes, flips %llu/%llu, resets %llu, "
              "closes %llu, stalls %llu, receivers gone %llu\n",
              strsignal(sig), static_cast<unsigned long long>(st.connections),
              static_cast<unsigned long long>(st.forwarded[0]), static_cast<unsigned long long>(st.forwarded[1]),
              static_cast<unsigned long long>(st.flips[0]), static_cast<unsigned long long>(st.flips[1]),
              static_cast<unsigned long long>(st.resets), static_cast<unsigned long long>(st.closes),
              static_cast<unsigned long long>(st.stalls), static_cast<unsigned long long>(st.receivers_gone));
  if (!quiet) {
    for (const auto& line : (*proxy)->Log()) std::printf("  %s\n", line.c_str());
  }
  return 128 + sig;
}
