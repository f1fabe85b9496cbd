// An in-process transport with the classic lost wake-up: its Send notifies the receiver before
// it queues the message (the predicate is set after the notify). A receiver already waiting
// wakes, finds nothing, waits again, and sleeps through the message until its deadline. The
// control differs only by queueing first. For the property battery's self-test: the bug shows
// only when a receive is waiting as the send runs.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "ipch/transport.h"

namespace ipch::selftest {

struct WakeChannel {
  std::mutex mu;
  std::condition_variable cv;
  std::deque<Bytes> queue[2];  // [0]: client -> server, [1]: server -> client
  bool closed[2] = {};
};

template <bool kLosesNotify>
class WakeConnection {
 public:
  static constexpr std::size_t kMax = 1 << 20;
  WakeConnection() = default;
  WakeConnection(std::shared_ptr<WakeChannel> ch, int side) : ch_(std::move(ch)), side_(side) {}
  WakeConnection(WakeConnection&&) noexcept = default;
  WakeConnection& operator=(WakeConnection&& o) noexcept {
    (void)Close();
    ch_ = std::move(o.ch_);
    side_ = o.side_;
    return *this;
  }
  ~WakeConnection() { (void)Close(); }

  Status Send(ByteView msg, Deadline) {
    if (!ch_) return MakeError(Errc::Closed, "wake: closed");
    if (msg.size() > kMax) return MakeError(Errc::MessageTooLarge, "wake: too large");
    std::unique_lock lk(ch_->mu);
    if (ch_->closed[1 - side_]) return MakeError(Errc::PeerClosed, "wake: peer closed");
    if (kLosesNotify) {  // the planted bug: the notify goes out before the message is there
      lk.unlock();
      ch_->cv.notify_all();
      std::this_thread::yield();
      lk.lock();
    }
    ch_->queue[side_].emplace_back(msg.begin(), msg.end());
    if (!kLosesNotify) ch_->cv.notify_all();
    return Ok();
  }
  Status Receive(Bytes& out, Deadline d) {
    if (!ch_) return MakeError(Errc::Closed, "wake: closed");
    std::unique_lock lk(ch_->mu);
    auto& q = ch_->queue[1 - side_];
    auto ready = [&] { return !q.empty() || ch_->closed[1 - side_]; };
    if (!ready()) {
      if (d.expired()) return MakeError(Errc::WouldBlock, "wake: nothing ready");
      if (d.never()) {
        ch_->cv.wait(lk, ready);
      } else if (!ch_->cv.wait_until(lk, d.at(), ready)) {
        return MakeError(Errc::Timeout, "wake: receive");
      }
    }
    if (q.empty()) return MakeError(Errc::PeerClosed, "wake: peer closed");
    out = std::move(q.front());
    q.pop_front();
    return Ok();
  }
  Status Close() {
    if (!ch_) return Ok();
    {
      std::lock_guard g(ch_->mu);
      ch_->closed[side_] = true;
      ch_->queue[1 - side_].clear();
    }
    ch_->cv.notify_all();
    ch_.reset();
    return Ok();
  }
  std::size_t max_message_size() const { return kMax; }

 private:
  std::shared_ptr<WakeChannel> ch_;
  int side_ = 0;
};

// Listeners by address, in this process.
struct WakeRendezvous {
  std::mutex mu;
  std::condition_variable cv;
  std::deque<std::shared_ptr<WakeChannel>> pending;
  bool closed = false;
};
inline std::mutex& WakeRegistryMutex() {
  static std::mutex mu;
  return mu;
}
inline std::map<std::string, std::shared_ptr<WakeRendezvous>>& WakeRegistry() {
  static std::map<std::string, std::shared_ptr<WakeRendezvous>> registry;
  return registry;
}

template <bool kLosesNotify>
class WakeListener {
 public:
  WakeListener() = default;
  WakeListener(std::string address, std::shared_ptr<WakeRendezvous> r) : address_(std::move(address)), r_(std::move(r)) {}
  WakeListener(WakeListener&&) noexcept = default;
  WakeListener& operator=(WakeListener&& o) noexcept {
    (void)Close();
    address_ = std::move(o.address_);
    r_ = std::move(o.r_);
    return *this;
  }
  ~WakeListener() { (void)Close(); }

  Result<WakeConnection<kLosesNotify>> Accept(Deadline d) {
    if (!r_) return MakeError(Errc::Closed, "wake: listener closed");
    std::unique_lock lk(r_->mu);
    auto ready = [&] { return !r_->pending.empty(); };
    if (d.never()) {
      r_->cv.wait(lk, ready);
    } else if (!r_->cv.wait_until(lk, d.at(), ready)) {
      return MakeError(Errc::Timeout, "wake: accept");
    }
    auto ch = std::move(r_->pending.front());
    r_->pending.pop_front();
    return WakeConnection<kLosesNotify>(std::move(ch), 1);
  }
  const std::string& address() const { return address_; }
  std::vector<std::filesystem::path> resource_paths() const { return {}; }
  Status Close() {
    if (!r_) return Ok();
    {
      std::lock_guard g(WakeRegistryMutex());
      WakeRegistry().erase(address_);
    }
    // The last reference may be ours: it must outlive the lock taken on its mutex.
    const std::shared_ptr<WakeRendezvous> r = std::move(r_);
    std::lock_guard g(r->mu);
    r->closed = true;
    for (auto& ch : r->pending) {  // never accepted: their connectors see PeerClosed
      std::lock_guard cg(ch->mu);
      ch->closed[1] = true;
      ch->cv.notify_all();
    }
    r->pending.clear();
    return Ok();
  }

 private:
  std::string address_;
  std::shared_ptr<WakeRendezvous> r_;
};

template <bool kLosesNotify, const char* kLabel>
struct WakeAdapter {
  static constexpr std::string_view kName = kLabel;
  static constexpr Caps kCaps{};
  using Connection = WakeConnection<kLosesNotify>;
  using Listener = WakeListener<kLosesNotify>;
  static std::string Address(const EndpointSpec& s) { return s.token; }
  static Result<Listener> Listen(const std::string& a) {
    std::lock_guard g(WakeRegistryMutex());
    auto& slot = WakeRegistry()[a];
    if (slot) return MakeError(Errc::AlreadyExists, "wake: " + a + " is taken");
    slot = std::make_shared<WakeRendezvous>();
    return Listener(a, slot);
  }
  static Result<Connection> Connect(const std::string& a, Deadline) {
    std::shared_ptr<WakeRendezvous> r;
    {
      std::lock_guard g(WakeRegistryMutex());
      auto it = WakeRegistry().find(a);
      if (it == WakeRegistry().end()) return MakeError(Errc::PeerClosed, "wake: nobody listens at " + a);
      r = it->second;
    }
    auto ch = std::make_shared<WakeChannel>();
    {
      std::lock_guard g(r->mu);
      if (r->closed) return MakeError(Errc::PeerClosed, "wake: listener closed");
      r->pending.push_back(ch);
    }
    r->cv.notify_all();
    return Connection(std::move(ch), 0);
  }
};

inline constexpr char kWakeControl[] = "notify_control";
inline constexpr char kLosesNotifyName[] = "notifies_before_queueing";

}  // namespace ipch::selftest
