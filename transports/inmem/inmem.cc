#include "inmem.h"

#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>

namespace ipch::inmem {

// One direction of a connection.
struct Pipe {
  std::mutex mu;
  std::condition_variable cv;  // signalled on every state change; both sides wait on it
  std::deque<Bytes> queue;
  std::size_t bytes = 0;
  bool writer_closed = false;
  bool reader_closed = false;
};

struct ListenerState {
  std::mutex mu;
  std::condition_variable cv;
  std::deque<Connection> backlog;
  bool closed = false;
};

namespace {

std::mutex g_registry_mu;
std::map<std::string, std::weak_ptr<ListenerState>>& Registry() {
  static auto* r = new std::map<std::string, std::weak_ptr<ListenerState>>();  // never destroyed: safe at exit
  return *r;
}

// Waits on cv until pred() or the deadline; false on timeout.
template <class Pred>
bool WaitUntil(std::condition_variable& cv, std::unique_lock<std::mutex>& lk, Deadline d, Pred pred) {
  if (d.never()) {
    cv.wait(lk, pred);
    return true;
  }
  return cv.wait_until(lk, d.at(), pred);
}

}  // namespace

Connection& Connection::operator=(Connection&& o) noexcept {
  if (this != &o) {
    (void)Close();
    in_ = std::move(o.in_);
    out_ = std::move(o.out_);
    max_ = o.max_;
  }
  return *this;
}

Status Connection::Send(ByteView msg, Deadline d) {
  if (!out_) return MakeError(Errc::Closed, "inmem send: connection is closed");
  if (msg.size() > max_) {
    return MakeError(Errc::MessageTooLarge,
                     "inmem send: " + std::to_string(msg.size()) + " bytes > max_message_size " + std::to_string(max_));
  }
  Pipe& p = *out_;
  std::unique_lock lk(p.mu);
  auto room = [&] { return p.reader_closed || p.bytes + msg.size() <= kDefaultCapacityBytes || p.queue.empty(); };
  if (!room()) {
    if (d.expired()) return MakeError(Errc::WouldBlock, "inmem send: queue full");
    if (!WaitUntil(p.cv, lk, d, room)) return MakeError(Errc::Timeout, "inmem send: queue full");
  }
  if (p.reader_closed) return MakeError(Errc::PeerClosed, "inmem send: peer closed");
  p.queue.emplace_back(msg.begin(), msg.end());
  p.bytes += msg.size();
  p.cv.notify_all();
  return Ok();
}

Status Connection::Receive(Bytes& out, Deadline d) {
  if (!in_) return MakeError(Errc::Closed, "inmem receive: connection is closed");
  Pipe& p = *in_;
  std::unique_lock lk(p.mu);
  auto ready = [&] { return !p.queue.empty() || p.writer_closed; };
  if (!ready()) {
    if (d.expired()) return MakeError(Errc::WouldBlock, "inmem receive: no message ready");
    if (!WaitUntil(p.cv, lk, d, ready)) return MakeError(Errc::Timeout, "inmem receive");
  }
  if (p.queue.empty()) return MakeError(Errc::PeerClosed, "inmem receive: peer closed");
  out = std::move(p.queue.front());
  p.queue.pop_front();
  p.bytes -= out.size();
  p.cv.notify_all();
  return Ok();
}

Status Connection::Close() {
  if (out_) {
    std::lock_guard lk(out_->mu);
    out_->writer_closed = true;
    out_->cv.notify_all();
  }
  if (in_) {
    std::lock_guard lk(in_->mu);
    in_->reader_closed = true;
    in_->queue.clear();  // unread messages die with the reader, as in a socket
    in_->bytes = 0;
    in_->cv.notify_all();
  }
  in_.reset();
  out_.reset();
  return Ok();
}

Listener& Listener::operator=(Listener&& o) noexcept {
  if (this != &o) {
    (void)Close();
    state_ = std::move(o.state_);
    name_ = std::move(o.name_);
  }
  return *this;
}

Result<Listener> Listen(const std::string& name) {
  if (name.empty()) return MakeError(Errc::InvalidArgument, "inmem listen: empty name");
  std::lock_guard lk(g_registry_mu);
  auto& slot = Registry()[name];
  if (!slot.expired()) return MakeError(Errc::AlreadyExists, "inmem listen " + name + ": name taken");
  Listener l;
  l.state_ = std::make_shared<ListenerState>();
  l.name_ = name;
  slot = l.state_;
  return l;
}

Result<Connection> Listener::Accept(Deadline d) {
  if (!state_) return MakeError(Errc::Closed, "inmem accept: listener is closed");
  std::unique_lock lk(state_->mu);
  auto ready = [&] { return !state_->backlog.empty(); };
  if (!ready()) {
    if (d.expired()) return MakeError(Errc::WouldBlock, "inmem accept " + name_ + ": no connection");
    if (!WaitUntil(state_->cv, lk, d, ready)) return MakeError(Errc::Timeout, "inmem accept " + name_);
  }
  Connection c = std::move(state_->backlog.front());
  state_->backlog.pop_front();
  return c;
}

Status Listener::Close() {
  if (!state_) return Ok();
  {
    std::lock_guard lk(g_registry_mu);
    auto it = Registry().find(name_);
    if (it != Registry().end() && it->second.lock() == state_) Registry().erase(it);
  }
  std::deque<Connection> pending;
  {
    std::lock_guard lk(state_->mu);
    state_->closed = true;
    pending.swap(state_->backlog);  // closed outside the lock: their peers see PeerClosed
  }
  state_.reset();
  return Ok();
}

Result<Connection> Connect(const std::string& name, Deadline) {
  std::shared_ptr<ListenerState> ls;
  {
    std::lock_guard lk(g_registry_mu);
    auto it = Registry().find(name);
    if (it != Registry().end()) ls = it->second.lock();
  }
  if (!ls) return MakeError(Errc::PeerClosed, "inmem connect " + name + ": no listener");
  auto a = std::make_shared<Pipe>(), b = std::make_shared<Pipe>();
  Connection client(a, b, kDefaultMaxMessage), server(b, a, kDefaultMaxMessage);
  std::lock_guard lk(ls->mu);
  if (ls->closed) return MakeError(Errc::PeerClosed, "inmem connect " + name + ": listener closed");
  ls->backlog.push_back(std::move(server));
  ls->cv.notify_all();
  return client;
}

}  // namespace ipch::inmem
