// The posix_shm adapter: the shared-memory ring transport (transports/shm_ring) over
// POSIX shared memory (shm_open + ftruncate + mmap); the address is the rendezvous name, "/name".
#pragma once

#include <functional>
#include <span>
#include <string>

#include "../shm_ring/shm.h"

namespace ipch::posix_shm {

struct Adapter {
  static constexpr std::string_view kName = "posix_shm";
  static constexpr Caps kCaps = Cap::CrossProcess | Cap::NamedResource | Cap::PeerDeathDetect | Cap::SharedMemory;
  static constexpr shm::Backing kBacking = shm::Backing::Posix;
  using Connection = shm::Connection;
  using Listener = shm::Listener;
  static std::string Address(const EndpointSpec& s) { return shm::AddressFor(kBacking, s.token); }
  static Result<Listener> Listen(const std::string& a) { return shm::Listen(kBacking, a); }
  static Result<Connection> Connect(const std::string& a, Deadline d) { return shm::Connect(kBacking, a, d); }

  // Hooks for the shared-memory cases of the conformance battery.
  static std::span<std::byte> SharedBytes(const Connection& c) { return c.shared_bytes(); }
  static void SetMidPublishHook(std::function<void()> f) { shm::SetMidPublishHook(std::move(f)); }
  static Status PlantImpostor(const std::string& a, Impostor k) { return shm::PlantImpostor(kBacking, a, k); }
  static void RemoveImpostor(const std::string& a) { shm::RemoveImpostor(kBacking, a); }
};

}  // namespace ipch::posix_shm
