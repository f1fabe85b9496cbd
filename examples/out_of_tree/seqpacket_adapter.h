// What the ipch battery needs to know about seqpacket: a name, what it can do, an address per
// test, and how to listen and connect. Nothing here knows how it is tested.
#pragma once

#include "seqpacket.h"

namespace demo {

struct SeqpacketAdapter {
  static constexpr std::string_view kName = "seqpacket";
  // Peers may be processes, a dead one is seen (its socket closes), the socket file is a named
  // resource, and all I/O is libc calls the fault engine can fail.
  static constexpr ipch::Caps kCaps =
      ipch::Cap::CrossProcess | ipch::Cap::PeerDeathDetect | ipch::Cap::NamedResource | ipch::Cap::SyscallIo;
  using Connection = demo::Connection;
  using Listener = demo::Listener;
  static std::string Address(const ipch::EndpointSpec& s) { return (s.scratch_dir / (s.token + ".sock")).string(); }
  static ipch::Result<Listener> Listen(const std::string& a) { return demo::Listen(a); }
  static ipch::Result<Connection> Connect(const std::string& a, ipch::Deadline d) { return demo::Connect(a, d); }
};
static_assert(ipch::Transport<SeqpacketAdapter>);

}  // namespace demo
