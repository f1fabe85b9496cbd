// A peer for conformance tests: a forked child when the transport crosses processes (so that
// SIGKILL is real), a thread otherwise. Either way it talks to the test over a ControlChannel.
#pragma once

#include <sys/socket.h>

#include <future>
#include <memory>
#include <thread>

#include "ipch/child_process.h"
#include "ipch/transport.h"

namespace ipch::testing {

class Peer {
 public:
  using Body = std::function<Status(ControlChannel&)>;

  static Result<Peer> Start(bool cross_process, Body body) {
    Peer p;
    if (cross_process) {
      auto c = ChildProcess::Spawn(std::move(body));
      if (!c.ok()) return std::move(c).error();
      p.child_ = std::make_unique<ChildProcess>(std::move(*c));
      return p;
    }
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) return ErrnoError("socketpair");
    p.control_ = std::make_unique<ControlChannel>(UniqueFd(sv[0]));
    auto promise = std::make_shared<std::promise<Status>>();
    p.done_ = promise->get_future();
    p.thread_ = std::thread([promise, body = std::move(body), fd = sv[1]]() mutable {
      ControlChannel ch{UniqueFd(fd)};
      promise->set_value(body(ch));
    });
    return p;
  }

  Peer() = default;
  Peer(Peer&&) noexcept = default;
  Peer& operator=(Peer&&) noexcept = default;
  ~Peer() {
    if (thread_.joinable()) thread_.join();
  }

  bool is_process() const { return child_ != nullptr; }
  pid_t pid() const { return child_ ? child_->pid() : -1; }
  ControlChannel& control() { return child_ ? child_->control() : *control_; }
  ChildProcess* process() { return child_.get(); }

  // The body's outcome: OK only if it returned OK (and, for a process, exited 0).
  Status Join(Deadline d) {
    if (child_) {
      auto e = child_->Wait(d);
      if (!e.ok()) return std::move(e).error();
      if (e->Success()) return Ok();
      return MakeError(Errc::Corrupt, "peer failed: " + child_->Describe());
    }
    if (!thread_.joinable()) return MakeError(Errc::InvalidArgument, "peer already joined");
    if (!d.never() && done_.wait_until(d.at()) != std::future_status::ready) {
      return MakeError(Errc::Timeout, "peer thread still running");
    }
    thread_.join();
    return done_.get();
  }

  ExitInfo Kill() { return child_ ? child_->Kill() : ExitInfo{}; }

 private:
  std::unique_ptr<ChildProcess> child_;
  std::unique_ptr<ControlChannel> control_;
  std::thread thread_;
  std::future<Status> done_;
};

// For peer bodies, which cannot use gtest assertions: a failed expectation as a Status.
inline Status Check(bool cond, const std::string& what) {
  return cond ? Ok() : MakeError(Errc::Corrupt, "peer check failed: " + what);
}

}  // namespace ipch::testing
