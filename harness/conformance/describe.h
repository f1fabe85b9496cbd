// What IPCH_INSTANTIATE_CONFORMANCE registers about each adapter (ipch::testing::AdapterInfo):
// its capabilities and the optional hooks it provides, as `--ipch_describe` and `ipch list`
// show them.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "fixture.h"
#include "hooks.h"
#include "ipch/testing.h"
#include "ipch/transport.h"

namespace ipch::conformance {

// Every Cap with its name (a new Cap belongs here too).
inline const std::vector<std::pair<Cap, const char*>>& CapNames() {
  static const std::vector<std::pair<Cap, const char*>> names = {{Cap::Stream, "Stream"},
                                                                 {Cap::CrossProcess, "CrossProcess"},
                                                                 {Cap::NamedResource, "NamedResource"},
                                                                 {Cap::PeerDeathDetect, "PeerDeathDetect"},
                                                                 {Cap::RawPeer, "RawPeer"},
                                                                 {Cap::SyscallIo, "SyscallIo"},
                                                                 {Cap::SharedMemory, "SharedMemory"},
                                                                 {Cap::QueueIo, "QueueIo"},
                                                                 {Cap::HttpWire, "HttpWire"},
                                                                 {Cap::AsyncIo, "AsyncIo"},
                                                                 {Cap::Reconnects, "Reconnects"}};
  return names;
}

template <class T>
testing::AdapterInfo Describe(const char* prefix) {
  testing::AdapterInfo info{prefix, std::string(T::kName), {}, {}};
  for (const auto& [cap, name] : CapNames()) {
    if (T::kCaps.Has(cap)) info.caps.emplace_back(name);
  }
  const auto hook = [&](bool has, const char* name) {
    if (has) info.hooks.emplace_back(name);
  };
  hook(
      requires(const std::string& a, Deadline d) { T::ConnectRaw(a, d); }, "ConnectRaw");
  hook(kHasFrameHeader<T>, "FrameHeader");
  hook(kHasSocketAddress<T>, "SocketAddress");
  hook(kHasHttpWire<T>, "HttpWire");
  hook(kHasSharedBytes<T>, "SharedBytes");
  hook(kHasImpostors<T>, "Impostors");
  hook(kHasRequestImpostors<T>, "RequestImpostors");
  hook(kHasRawQueue<T>, "RawQueue");
  hook(kHasMidPublishHook<T>, "MidPublishHook");
  hook(kHasKilledPeerLeftovers<T>, "KilledPeerLeaves");
  hook(
      requires { T::UnreadMessages(); }, "UnreadMessages");
  hook(
      requires { T::kMaxPeers; }, "MaxPeers");
  return info;
}

template <class... Ts>
bool RegisterAdapters(const char* prefix) {
  (testing::RegisterAdapter(Describe<Ts>(prefix)), ...);
  return true;
}

}  // namespace ipch::conformance
