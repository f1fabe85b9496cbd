// Peers started as this same program in a peer role (ipch/peer.h): the body registry, the peer
// role's entry from main, and the choice between fork and exec.
#include <sys/syscall.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <string>

#include "ipch/child_process.h"
#include "ipch/deadline.h"
#include "ipch/peer.h"

namespace ipch::testing {
namespace {

std::mutex g_bodies_mu;
std::map<std::string, ExecBody>& Bodies() {
  static auto* bodies = new std::map<std::string, ExecBody>();  // filled before main, never destroyed
  return *bodies;
}

[[noreturn]] void EndPeer(int errors, const std::string& error) {
  if (!error.empty()) (void)!::syscall(SYS_write, errors, error.data(), error.size());
  std::fflush(stdout);
  std::fflush(stderr);
  ::_exit(error.empty() ? 0 : 1);
}

}  // namespace

const char* RegisterExecBody(const char* id, ExecBody body) {
  std::lock_guard lock(g_bodies_mu);
  Bodies()[id] = body;
  return id;
}

bool ExecPeers(PeerMode adapter) {
  PeerMode mode = adapter;
  if (const char* env = std::getenv("IPCH_PEER_MODE")) {
    if (std::strcmp(env, "fork") == 0) mode = PeerMode::kFork;
    if (std::strcmp(env, "exec") == 0) mode = PeerMode::kExec;
    if (std::strcmp(env, "auto") == 0) mode = PeerMode::kAuto;
  }
  if (mode == PeerMode::kAuto) return ThreadCount() > 1;
  return mode == PeerMode::kExec;
}

void RunPeerIfRequested(int argc, char** argv) {
  constexpr std::string_view kFlag = "--ipch_peer=";
  std::string id;
  int control = -1, errors = -1;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg.substr(0, kFlag.size()) == kFlag) id = arg.substr(kFlag.size());
    (void)ExecPeerFds(arg, &control, &errors);
  }
  if (id.empty()) return;
  if (control < 0 || errors < 0) {
    std::fprintf(stderr, "ipch: --ipch_peer needs --ipch_peer_fds=CONTROL,ERRORS (it is started by the battery)\n");
    ::_exit(2);
  }
  ExecBody body = nullptr;
  {
    std::lock_guard lock(g_bodies_mu);
    if (auto it = Bodies().find(id); it != Bodies().end()) body = it->second;
  }
  if (body == nullptr) EndPeer(errors, "this program has no peer body " + id);
  ControlChannel ch{UniqueFd(control)};
  // The test sends the payload as soon as the peer is started; it waits for nothing else.
  auto payload = ch.ReceiveString(Deadline::After(Scaled(std::chrono::seconds(60))));
  if (!payload.ok()) EndPeer(errors, "exec'd peer: no payload: " + payload.error().ToString());
  Status st = body(*payload, ch);
  EndPeer(errors, st.ok() ? std::string() : st.error().ToString());
}

}  // namespace ipch::testing
