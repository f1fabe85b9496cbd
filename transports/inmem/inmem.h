// In-process reference transport: named listeners in a process-wide registry, connections as a
// pair of bounded message queues. It defines the contract by example: other transports are
// compared against its behaviour in the conformance battery.
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "ipch/transport.h"

namespace ipch::inmem {

inline constexpr std::size_t kDefaultMaxMessage = 1u << 20;
inline constexpr std::size_t kDefaultCapacityBytes = 4u << 20;  // per direction: backpressure

struct Pipe;
struct ListenerState;

class Connection {
 public:
  Connection() = default;
  Connection(Connection&&) noexcept = default;
  Connection& operator=(Connection&& o) noexcept;
  ~Connection() { (void)Close(); }

  Status Send(ByteView msg, Deadline d);
  Status Receive(Bytes& out, Deadline d);
  Status Close();
  std::size_t max_message_size() const { return max_; }

 private:
  friend class Listener;
  friend Result<Connection> Connect(const std::string&, Deadline);
  Connection(std::shared_ptr<Pipe> in, std::shared_ptr<Pipe> out, std::size_t max)
      : in_(std::move(in)), out_(std::move(out)), max_(max) {}
  std::shared_ptr<Pipe> in_, out_;
  std::size_t max_ = kDefaultMaxMessage;
};

class Listener {
 public:
  Listener() = default;
  Listener(Listener&&) noexcept = default;
  Listener& operator=(Listener&& o) noexcept;
  ~Listener() { (void)Close(); }

  Result<Connection> Accept(Deadline d);
  const std::string& address() const { return name_; }
  std::vector<std::filesystem::path> resource_paths() const { return {}; }
  Status Close();

 private:
  friend Result<Listener> Listen(const std::string&);
  std::shared_ptr<ListenerState> state_;
  std::string name_;
};

Result<Listener> Listen(const std::string& name);
Result<Connection> Connect(const std::string& name, Deadline d);

struct Adapter {
  static constexpr std::string_view kName = "inmem";
  static constexpr Caps kCaps = Cap::PeerDeathDetect;
  using Connection = inmem::Connection;
  using Listener = inmem::Listener;
  static std::string Address(const EndpointSpec& s) { return s.token; }
  static Result<Listener> Listen(const std::string& a) { return inmem::Listen(a); }
  static Result<Connection> Connect(const std::string& a, Deadline d) { return inmem::Connect(a, d); }
};

}  // namespace ipch::inmem
