// A peer for conformance tests: a child process when the transport crosses processes (so that
// SIGKILL is real), a thread otherwise. Either way it talks to the test over a ControlChannel.
// The child is a fork running the body, or — for libraries that cannot go on in a forked copy of
// a threaded process — this same program exec'd in a peer role, which runs a body registered
// under an id (RegisterExecBody) with the bytes it is sent.
#pragma once

#include <signal.h>
#include <sys/socket.h>

#include <cstdio>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "ipch/child_process.h"
#include "ipch/harness_calls.h"
#include "ipch/transport.h"

namespace ipch::testing {

// How a cross-process peer is started. kAuto: exec'd when the process has other threads at that
// moment (a fork copies their locks, held, into a child where no one releases them), forked
// otherwise. An adapter may choose with static constexpr PeerMode kPeerMode; IPCH_PEER_MODE
// (auto, fork or exec; the test binaries' --ipch_peer_mode flag sets it) overrides both.
enum class PeerMode { kAuto, kFork, kExec };
// Resolves `adapter`'s choice, the environment's and kAuto's rule to fork (false) or exec (true).
bool ExecPeers(PeerMode adapter);

// A body an exec'd peer can run: given the bytes the test sent it and its control channel.
using ExecBody = Status (*)(std::string_view payload, ControlChannel& ch);
// Registers `body` under `id` (before main, from a static initialiser, so that the exec'd
// program has it too); returns `id`.
const char* RegisterExecBody(const char* id, ExecBody body);
// In main, first: if this program was started as an exec'd peer, runs its body and exits
// (_exit, as a forked peer does); otherwise returns.
void RunPeerIfRequested(int argc, char** argv);

class Peer {
 public:
  using Body = std::function<Status(ControlChannel&)>;

  // Starts this program again as a peer running the body registered as `id`, which receives
  // `payload`; `env` entries ("NAME=value") are added to its environment.
  static Result<Peer> StartExec(const char* id, const std::string& payload, const std::vector<std::string>& env) {
    auto c = ChildProcess::SpawnSelf({std::string("--ipch_peer=") + id}, env);
    if (!c.ok()) return std::move(c).error();
    Peer p;
    p.child_ = std::make_unique<ChildProcess>(std::move(*c));
    // A peer that ended before it took its payload (an unknown body, a failed exec) is still
    // started: its Join reports why it ended, as for a forked peer that fails at once.
    if (Status st = p.child_->control().SendString(payload); !st.ok() && !st.error().Is(Errc::PeerClosed)) {
      return Error{st.error().code, "exec'd peer: sending its payload: " + st.error().context};
    }
    return p;
  }

  static Result<Peer> Start(bool cross_process, Body body) {
    Peer p;
    if (cross_process) {
      auto c = ChildProcess::Spawn(std::move(body));
      if (!c.ok()) return std::move(c).error();
      p.child_ = std::make_unique<ChildProcess>(std::move(*c));
      return p;
    }
    int sv[2];
    {
      const HarnessCalls harness;  // the control channel is ours, not the transport's
      if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) return ErrnoError("socketpair");
    }
    p.control_ = std::make_unique<ControlChannel>(UniqueFd(sv[0]));
    auto promise = std::make_shared<std::promise<Status>>();
    p.done_ = promise->get_future();
    p.thread_ = std::thread([promise, body = std::move(body), fd = sv[1]]() mutable {
      std::optional<ControlChannel> ch(std::in_place, UniqueFd(fd));
      Status st = body(*ch);
      const HarnessCalls harness;  // the channel's close and the promise's wake are ours
      ch.reset();
      promise->set_value(std::move(st));
    });
    return p;
  }

  Peer() = default;
  Peer(Peer&&) noexcept = default;
  Peer& operator=(Peer&&) noexcept = default;
  ~Peer() {
    if (thread_.joinable()) thread_.join();
    // A peer that died by itself (a crash, a failed body) before the test looked is said, since
    // the case's own failure then reads only as the silence that followed.
    if (child_ && !joined_) {
      const ExitInfo e = child_->Kill();
      if (!e.Success() && !(!e.exited && e.signal == SIGKILL)) {
        std::fprintf(stderr, "ipch: a peer ended by itself before the test joined it: %s\n",
                     child_->Describe().c_str());
      }
    }
  }

  bool is_process() const { return child_ != nullptr; }
  pid_t pid() const { return child_ ? child_->pid() : -1; }
  ControlChannel& control() { return child_ ? child_->control() : *control_; }
  ChildProcess* process() { return child_.get(); }

  // The body's outcome: OK only if it returned OK (and, for a process, exited 0).
  Status Join(Deadline d) {
    if (child_) {
      joined_ = true;
      auto e = child_->Wait(d);
      if (!e.ok()) return std::move(e).error();
      if (e->Success()) return Ok();
      return MakeError(Errc::Corrupt, "peer failed: " + child_->Describe());
    }
    if (!thread_.joinable()) return MakeError(Errc::InvalidArgument, "peer already joined");
    const HarnessCalls harness;  // the wait for the peer thread is ours
    if (!d.never() && done_.wait_until(d.at()) != std::future_status::ready) {
      return MakeError(Errc::Timeout, "peer thread still running");
    }
    thread_.join();
    return done_.get();
  }

  ExitInfo Kill() {
    joined_ = true;  // how it ended is the test's to judge
    return child_ ? child_->Kill() : ExitInfo{};
  }

 private:
  std::unique_ptr<ChildProcess> child_;
  std::unique_ptr<ControlChannel> control_;
  std::thread thread_;
  std::future<Status> done_;
  bool joined_ = false;
};

// For peer bodies, which cannot use gtest assertions: a failed expectation as a Status.
inline Status Check(bool cond, const std::string& what) {
  return cond ? Ok() : MakeError(Errc::Corrupt, "peer check failed: " + what);
}

}  // namespace ipch::testing
