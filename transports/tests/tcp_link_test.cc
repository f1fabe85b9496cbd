// Dropped links under the tcp transport: two network namespaces joined by a veth pair, the
// survivor's end in this process (its sockets made in namespace A), the peer's in forked children
// that enter namespace B. The link is cut under a live stream, or the peer's namespace goes, and
// the survivor must find out within Options::dead_link_timeout's bound (docs/architecture.md,
// tcp). Needs root; skipped with the reason otherwise. ctest label `netns`, run serially.
#include <fcntl.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <optional>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "ipch/child_process.h"
#include "ipch/testing.h"
#include "transports/tcp/tcp.h"

extern char** environ;

namespace ipch::tcp {
namespace {

using namespace std::chrono_literals;
using ipch::testing::MakeMessage;
using ipch::testing::VerifyMessage;

constexpr auto kDeadLinkTimeout = 2s;  // the shortest that keepalive's whole seconds express well
// The bounds tcp.h documents: an idle receiver, the timeout plus one keepalive interval (a sixth
// of it, at least 1 s); a blocked sender, twice the timeout.
constexpr auto kReceiveBound = kDeadLinkTimeout + 1s;
constexpr auto kSendBound = 2 * kDeadLinkTimeout;
constexpr char kAddrA[] = "10.203.0.1";
constexpr char kAddrB[] = "10.203.0.2";

Options LinkOptions() {
  Options o;
  o.dead_link_timeout = kDeadLinkTimeout;
  return o;
}
Deadline Settle() { return Deadline::After(Scaled(10s)); }
// What the survivor may take beyond the bound: being scheduled, not the kernel's detection.
Clock::duration Margin() { return Scaled(500ms); }
double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

struct CommandResult {
  int status = -1;  // exit code; 128+signal if killed; 127 if it could not be started
  std::string output;
  bool ok() const { return status == 0; }
};

// Runs a program from PATH and waits for it; stdout and stderr together in `output`.
CommandResult RunCommand(const std::vector<std::string>& argv) {
  CommandResult r;
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) return {127, std::string("pipe2: ") + std::strerror(errno)};
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&fa, p[1], 1);
  posix_spawn_file_actions_adddup2(&fa, p[1], 2);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = -1;
  const int rc = ::posix_spawnp(&pid, args[0], &fa, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  ::close(p[1]);
  if (rc != 0) {
    ::close(p[0]);
    return {127, argv[0] + ": " + std::strerror(rc)};
  }
  char buf[4096];
  for (;;) {
    const ssize_t n = ::read(p[0], buf, sizeof buf);
    if (n > 0) r.output.append(buf, static_cast<std::size_t>(n));
    if (n == 0 || (n < 0 && errno != EINTR)) break;
  }
  ::close(p[0]);
  int st = 0;
  while (::waitpid(pid, &st, 0) < 0 && errno == EINTR) {
  }
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  while (!r.output.empty() && r.output.back() == '\n') r.output.pop_back();
  return r;
}

std::string Describe(const std::vector<std::string>& argv, const CommandResult& r) {
  std::string s;
  for (const auto& a : argv) s += (s.empty() ? "" : " ") + a;
  return "`" + s + "` exited " + std::to_string(r.status) + ": " + r.output;
}

// Puts the calling thread into network namespace `name`; sockets it makes there stay there.
Status EnterNetns(const std::string& name) {
  UniqueFd ns(::open(("/run/netns/" + name).c_str(), O_RDONLY | O_CLOEXEC));
  if (!ns) return ErrnoError("open /run/netns/" + name);
  if (::setns(ns.get(), CLONE_NEWNET) != 0) return ErrnoError("setns " + name);
  return Ok();
}

// This thread in another namespace for a scope, then back in its own.
class ScopedNetns {
 public:
  ScopedNetns() = default;
  ScopedNetns(const ScopedNetns&) = delete;
  ScopedNetns& operator=(const ScopedNetns&) = delete;
  ~ScopedNetns() {
    if (home_ && ::setns(home_.get(), CLONE_NEWNET) != 0) {
      std::perror("setns back to the test's own network namespace");
      std::abort();  // every later test would run in the wrong namespace
    }
  }
  Status Enter(const std::string& name) {
    home_ = UniqueFd(::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC));
    if (!home_) return ErrnoError("open /proc/thread-self/ns/net");
    return EnterNetns(name);
  }

 private:
  UniqueFd home_;
};

// A listener, or a connection, whose socket lives in namespace `ns`.
Result<Listener> ListenIn(const std::string& ns, const std::string& address, const Options& o) {
  ScopedNetns in;
  IPCH_RETURN_IF_ERROR(in.Enter(ns));
  return Listen(address, o);
}
Result<StreamConnection> ConnectIn(const std::string& ns, const std::string& address, const Options& o) {
  ScopedNetns in;
  IPCH_RETURN_IF_ERROR(in.Enter(ns));
  return Connect(address, Settle(), o);
}

// A peer process in namespace `ns` that connects to `address` and echoes every message.
Result<ChildProcess> SpawnEcho(const std::string& ns, const std::string& address, const Options& o) {
  return ChildProcess::Spawn([ns, address, o](ControlChannel&) -> Status {
    IPCH_RETURN_IF_ERROR(EnterNetns(ns));
    auto c = Connect(address, Settle(), o);
    if (!c.ok()) return std::move(c).error();
    for (Bytes m;;) {
      IPCH_RETURN_IF_ERROR(c->Receive(m, Deadline::Never()));
      IPCH_RETURN_IF_ERROR(c->Send(m, Deadline::Never()));
    }
  });
}

// Namespaces ipch-<pid>-a and ipch-<pid>-b joined by a veth pair (kAddrA/30 in a, kAddrB in
// b). The destructor removes whatever was made, so a failing test leaves nothing behind.
class NetnsPair {
 public:
  NetnsPair()
      : a_("ipch-" + std::to_string(::getpid()) + "-a"),
        b_("ipch-" + std::to_string(::getpid()) + "-b"),
        veth_a_("ipch" + std::to_string(::getpid()) + "a"),
        veth_b_("ipch" + std::to_string(::getpid()) + "b") {}
  NetnsPair(const NetnsPair&) = delete;
  NetnsPair& operator=(const NetnsPair&) = delete;
  ~NetnsPair() {
    // A veth pair goes with either end; the namespaces go once their last user has.
    if (made_a_) (void)RunCommand({"ip", "-n", a_, "link", "del", veth_a_});
    if (made_a_) (void)RunCommand({"ip", "netns", "del", a_});
    if (made_b_) (void)RunCommand({"ip", "netns", "del", b_});
  }

  // Why the environment cannot exist on this machine (the skip reason), or nullopt.
  std::optional<std::string> Unavailable() {
    if (::geteuid() != 0) {
      return "needs root for `ip netns add` and a veth pair (euid " + std::to_string(::geteuid()) + ")";
    }
    const CommandResult version = RunCommand({"ip", "-V"});
    if (version.status == 127) return "no `ip` (iproute2): " + version.output;
    SweepDeadRuns();
    const std::vector<std::string> add_a{"ip", "netns", "add", a_};
    const CommandResult r = RunCommand(add_a);
    if (!r.ok()) return "network namespaces unavailable: " + Describe(add_a, r);
    made_a_ = true;
    return std::nullopt;
  }

  // The rest of the set-up; an error here is a failure, not a skip, except a kernel without veth.
  ::testing::AssertionResult Build(std::string* skip) {
    if (auto r = Ip({"ip", "netns", "add", b_}); !r) return r;
    made_b_ = true;
    const std::vector<std::string> veth{"ip",   "-n",   a_,     "link",  "add",   veth_a_, "type",
                                        "veth", "peer", "name", veth_b_, "netns", b_};
    const CommandResult r = RunCommand(veth);
    if (!r.ok()) {
      *skip = "no veth pair: " + Describe(veth, r);
      return ::testing::AssertionSuccess();
    }
    for (const auto& step : std::vector<std::vector<std::string>>{
             {"ip", "-n", a_, "addr", "add", std::string(kAddrA) + "/30", "dev", veth_a_},
             {"ip", "-n", b_, "addr", "add", std::string(kAddrB) + "/30", "dev", veth_b_},
             {"ip", "-n", a_, "link", "set", veth_a_, "up"},
             {"ip", "-n", b_, "link", "set", veth_b_, "up"}}) {
      if (auto r = Ip(step); !r) return r;
    }
    return ::testing::AssertionSuccess();
  }

  // Runs a set-up command (ip, tc) that must succeed.
  static ::testing::AssertionResult Ip(const std::vector<std::string>& argv) {
    const CommandResult r = RunCommand(argv);
    if (r.ok()) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << Describe(argv, r);
  }

  const std::string& a() const { return a_; }
  const std::string& b() const { return b_; }
  const std::string& veth_a() const { return veth_a_; }
  const std::string& veth_b() const { return veth_b_; }

 private:
  // Namespaces of runs that were killed before their destructors ran (ipch-<dead pid>-a/b).
  static void SweepDeadRuns() {
    static const std::regex kOurs("ipch-([0-9]+)-[ab]");
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator("/run/netns", ec)) {
      const std::string name = e.path().filename().string();
      std::smatch m;
      if (!std::regex_match(name, m, kOurs)) continue;
      const pid_t pid = static_cast<pid_t>(std::stol(m[1].str()));
      if (::kill(pid, 0) != 0 && errno == ESRCH) (void)RunCommand({"ip", "netns", "del", name});
    }
  }

  std::string a_, b_, veth_a_, veth_b_;
  bool made_a_ = false, made_b_ = false;
};

#define IPCH_NETNS_PAIR(env)                              \
  NetnsPair env;                                          \
  if (auto why = env.Unavailable()) GTEST_SKIP() << *why; \
  {                                                       \
    std::string skip;                                     \
    ASSERT_TRUE(env.Build(&skip));                        \
    if (!skip.empty()) GTEST_SKIP() << skip;              \
  }

// A listener in namespace a, an echo peer in b connected to it, and the connection accepted.
struct EchoLink {
  Listener listener;
  ChildProcess peer;
  StreamConnection conn;
};
Result<EchoLink> AcceptEchoPeer(const NetnsPair& env, const Options& o) {
  auto l = ListenIn(env.a(), std::string(kAddrA) + ":0", o);
  if (!l.ok()) return std::move(l).error();
  auto peer = SpawnEcho(env.b(), l->address(), o);
  if (!peer.ok()) return std::move(peer).error();
  auto r = l->Accept(Settle());
  if (!r.ok()) return Error{r.error().code, r.error().context + "; " + peer->Describe()};
  return EchoLink{std::move(*l), std::move(*peer), std::move(*r)};
}

// A connection the kernel has given up on is PeerClosed, its message keeping the kernel's
// reason: ETIMEDOUT, or the unreachable error a failed transmission left behind.
::testing::AssertionResult IsDeadLinkError(const Status& st) {
  if (st.ok()) return ::testing::AssertionFailure() << "expected a dead-link error, got OK";
  if (!st.Is(Errc::PeerClosed)) return ::testing::AssertionFailure() << "expected PeerClosed, got " << st.error().ToString();
  for (const char* why : {"timed out", "No route to host", "Network is unreachable"}) {
    if (st.error().context.find(why) != std::string::npos) return ::testing::AssertionSuccess();
  }
  return ::testing::AssertionFailure() << "PeerClosed without the kernel's reason: " << st.error().ToString();
}

::testing::AssertionResult IsClosed(int fd) {
  if (::fcntl(fd, F_GETFD) == -1 && errno == EBADF) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "descriptor " << fd << " is still open after Close";
}

// ---- the link cut under a live stream -----------------------------------------------------------

enum class Cut { kPeerSideDown, kOurSideDown, kVethDeleted };

std::string CutName(Cut c) {
  switch (c) {
    case Cut::kPeerSideDown:
      return "PeerSideDown";
    case Cut::kOurSideDown:
      return "OurSideDown";
    case Cut::kVethDeleted:
      return "VethDeleted";
  }
  return "?";
}

class DeadLink : public ::testing::TestWithParam<Cut> {};

// Two connections over the link: R, accepted here, into which a peer streams 4 KiB messages,
// and S, connected from here to a peer that reads, into which a thread streams 64 KiB messages.
// The link is cut mid-stream. R's Receive takes what had arrived (whole, in order), then waits
// and must end with a dead-link error within the bound (keepalive: R has nothing in flight);
// S's Send must as well (unacknowledged data: TCP_USER_TIMEOUT). Without the settings both
// wait until the test gives up. Afterwards both fail at once, and Close frees the descriptors.
TEST_P(DeadLink, SurvivorDetectsItWithinTheBound) {
  IPCH_NETNS_PAIR(env);
  const Options o = LinkOptions();
  const uint64_t salt = ipch::testing::Current().seed;
  constexpr std::size_t kStreamed = 4096, kSent = 64 * 1024;

  auto l = ListenIn(env.a(), std::string(kAddrA) + ":0", o);
  IPCH_ASSERT_OK(l);
  const std::string our_address = l->address();
  auto streamer = ChildProcess::Spawn([&](ControlChannel&) -> Status {
    IPCH_RETURN_IF_ERROR(EnterNetns(env.b()));
    auto c = Connect(our_address, Settle(), o);
    if (!c.ok()) return std::move(c).error();
    for (uint64_t i = 0;; ++i) IPCH_RETURN_IF_ERROR(c->Send(MakeMessage(i, kStreamed, salt), Deadline::Never()));
  });
  IPCH_ASSERT_OK(streamer);
  auto sink = ChildProcess::Spawn([&](ControlChannel& ch) -> Status {
    IPCH_RETURN_IF_ERROR(EnterNetns(env.b()));
    auto sl = Listen(std::string(kAddrB) + ":0", o);
    if (!sl.ok()) return std::move(sl).error();
    IPCH_RETURN_IF_ERROR(ch.SendString(sl->address()));
    auto c = sl->Accept(Settle());
    if (!c.ok()) return std::move(c).error();
    for (Bytes got;;) IPCH_RETURN_IF_ERROR(c->Receive(got, Deadline::Never()));
  });
  IPCH_ASSERT_OK(sink);
  auto sink_address = sink->control().ReceiveString(Settle());
  IPCH_ASSERT_OK(sink_address);

  auto r = l->Accept(Settle());
  IPCH_ASSERT_OK(r) << streamer->Describe();
  auto s = ConnectIn(env.a(), *sink_address, o);
  IPCH_ASSERT_OK(s) << sink->Describe();

  // Mid-stream in both directions before the cut.
  Bytes got;
  uint64_t next = 0;
  for (; next < 16; ++next) {
    IPCH_ASSERT_OK(r->Receive(got, Settle()));
    ASSERT_TRUE(VerifyMessage(got, next, kStreamed, salt)) << "message " << next;
  }
  // Every wait after this ends by `give_up`, well past the bound: only a survivor that cannot
  // find out waits that long (and fails).
  const Deadline give_up = Deadline::After(2 * kSendBound + Scaled(2s));
  std::atomic<uint64_t> sent{0};
  Status send_status;
  Clock::time_point send_failed{};
  std::jthread sender([&] {
    for (uint64_t i = 0;; ++i) {
      send_status = s->Send(MakeMessage(i, kSent, salt), give_up);
      if (!send_status.ok()) break;
      sent.store(i + 1);
    }
    send_failed = Clock::now();
  });
  while (sent.load() < 4) {  // S flows too
    IPCH_ASSERT_OK(r->Receive(got, Settle()));
    ASSERT_TRUE(VerifyMessage(got, next, kStreamed, salt)) << "message " << next;
    ++next;
  }

  std::vector<std::string> cut;
  switch (GetParam()) {
    case Cut::kPeerSideDown:
      cut = {"ip", "-n", env.b(), "link", "set", env.veth_b(), "down"};
      break;
    case Cut::kOurSideDown:
      cut = {"ip", "-n", env.a(), "link", "set", env.veth_a(), "down"};
      break;
    case Cut::kVethDeleted:
      cut = {"ip", "-n", env.a(), "link", "del", env.veth_a()};
      break;
  }
  const Clock::time_point cut_at = Clock::now();
  ASSERT_TRUE(env.Ip(cut));

  Status receive_status;
  const uint64_t before_cut = next;
  for (;;) {
    receive_status = r->Receive(got, give_up);
    if (!receive_status.ok()) break;
    ASSERT_TRUE(VerifyMessage(got, next, kStreamed, salt)) << "message " << next << " (the stream must stay whole)";
    ++next;
  }
  const Clock::duration receive_took = Clock::now() - cut_at;
  sender.join();
  const Clock::duration send_took = send_failed - cut_at;

  std::printf(
      "[ DETECTED ] %s: receive %.2f s (%s; %llu messages drained after the cut; bound %.0f s), "
      "send %.2f s (%s; bound %.0f s)\n",
      CutName(GetParam()).c_str(), Seconds(receive_took),
      receive_status.ok() ? "ok" : receive_status.error().ToString().c_str(),
      static_cast<unsigned long long>(next - before_cut), Seconds(kReceiveBound), Seconds(send_took),
      send_status.ok() ? "ok" : send_status.error().ToString().c_str(), Seconds(kSendBound));
  RecordProperty("receive_detect_ms", std::to_string(std::chrono::duration_cast<Millis>(receive_took).count()));
  RecordProperty("send_detect_ms", std::to_string(std::chrono::duration_cast<Millis>(send_took).count()));

  // Not too late, and not too soon either: a link silent for less than the timeout may be alive
  // (a slow reader, a congested path), and ending it is the other failure.
  EXPECT_TRUE(IsDeadLinkError(receive_status)) << "the blocked receive";
  EXPECT_LE(receive_took, kReceiveBound + Margin()) << "receive detected in " << Seconds(receive_took) << " s";
  EXPECT_GE(receive_took, kDeadLinkTimeout / 2) << "receive declared the link dead too soon";
  EXPECT_TRUE(IsDeadLinkError(send_status)) << "the blocked send";
  EXPECT_LE(send_took, kSendBound + Margin()) << "send detected in " << Seconds(send_took) << " s";
  EXPECT_GE(send_took, kDeadLinkTimeout / 2) << "send declared the link dead too soon";

  // The connections are over for good: every later call fails at once. R's end came while it
  // held no partial frame of ours; S's send was most likely cut mid-frame, which closes it.
  const Deadline prompt = Deadline::After(Scaled(1s));
  IPCH_EXPECT_ERRC(r->Receive(got, prompt), PeerClosed);
  IPCH_EXPECT_ERRC(r->Send(MakeMessage(0, 16, salt), prompt), PeerClosed);
  for (Status st : {s->Send(MakeMessage(0, 16, salt), prompt), s->Receive(got, prompt)}) {
    EXPECT_TRUE(st.Is(Errc::Closed) || st.Is(Errc::PeerClosed)) << st.error().ToString();
  }
  EXPECT_FALSE(prompt.expired()) << "calls on a dead connection must not wait";

  const int r_fd = r->read_fd(), s_fd = s->read_fd();
  IPCH_EXPECT_OK(r->Close());
  IPCH_EXPECT_OK(s->Close());
  EXPECT_TRUE(IsClosed(r_fd));
  EXPECT_TRUE(IsClosed(s_fd));
}

INSTANTIATE_TEST_SUITE_P(TcpLink, DeadLink, ::testing::Values(Cut::kPeerSideDown, Cut::kOurSideDown, Cut::kVethDeleted),
                         [](const ::testing::TestParamInfo<Cut>& p) { return CutName(p.param); });

// ---- the peer's namespace deleted -----------------------------------------------------------------

// Watches a namespace for the removal of one interface (RTM_DELLINK), from the moment it is opened.
class LinkRemovalWatch {
 public:
  Status Open(const std::string& ns, const std::string& ifname) {
    ScopedNetns in;
    IPCH_RETURN_IF_ERROR(in.Enter(ns));
    fd_ = UniqueFd(::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_ROUTE));
    if (!fd_) return ErrnoError("netlink socket");
    sockaddr_nl sa{};
    sa.nl_family = AF_NETLINK;
    sa.nl_groups = RTMGRP_LINK;
    if (::bind(fd_.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) return ErrnoError("netlink bind");
    index_ = static_cast<int>(::if_nametoindex(ifname.c_str()));
    if (index_ == 0) return ErrnoError("if_nametoindex " + ifname);
    return Ok();
  }
  Status Wait(Deadline d) {
    alignas(nlmsghdr) char buf[16384];
    for (;;) {
      pollfd pfd{fd_.get(), POLLIN, 0};
      const int p = ::poll(&pfd, 1, d.PollTimeoutMs());
      if (p < 0 && errno != EINTR) return ErrnoError("poll netlink");
      if (p == 0 && d.expired()) return MakeError(Errc::Timeout, "the interface was not removed");
      const ssize_t n = ::recv(fd_.get(), buf, sizeof buf, 0);
      if (n < 0) {
        if (errno == EINTR || errno == EAGAIN) continue;
        return ErrnoError("recv netlink");
      }
      int left = static_cast<int>(n);
      for (auto* h = reinterpret_cast<nlmsghdr*>(buf); NLMSG_OK(h, left); h = NLMSG_NEXT(h, left)) {
        if (h->nlmsg_type != RTM_DELLINK) continue;
        const auto* ifi = static_cast<const ifinfomsg*>(NLMSG_DATA(h));
        if (ifi->ifi_index == index_) return Ok();
      }
    }
  }

 private:
  UniqueFd fd_;
  int index_ = 0;
};

// `ip netns del` removes the name only: the namespace lives while the peer in it does, and so
// does the link (the connection still carries messages, and an idle wait past the bound is a
// Timeout: keepalive probes are answered, a live link is never declared dead). Once the peer,
// its last user, is killed, its socket's FIN goes out before the namespace and its veth end go
// (which takes ours along): the survivor's Receive and Send are PeerClosed at once.
TEST(TcpLink, PeerNamespaceDeletedWhileConnected) {
  IPCH_NETNS_PAIR(env);
  const Options o = LinkOptions();
  const uint64_t salt = ipch::testing::Current().seed;
  auto link = AcceptEchoPeer(env, o);
  IPCH_ASSERT_OK(link);
  ChildProcess* peer = &link->peer;
  StreamConnection* r = &link->conn;
  Bytes got;
  IPCH_ASSERT_OK(r->Send(MakeMessage(0, 1000, salt), Settle()));
  IPCH_ASSERT_OK(r->Receive(got, Settle()));
  ASSERT_TRUE(VerifyMessage(got, 0, 1000, salt));

  ASSERT_TRUE(env.Ip({"ip", "netns", "del", env.b()}));
  ASSERT_FALSE(std::filesystem::exists("/run/netns/" + env.b())) << "the name is gone";
  IPCH_ASSERT_OK(r->Send(MakeMessage(1, 1000, salt), Settle()));
  IPCH_ASSERT_OK(r->Receive(got, Settle())) << "the namespace lives while the peer in it does";
  ASSERT_TRUE(VerifyMessage(got, 1, 1000, salt));
  const Clock::time_point idle_from = Clock::now();
  IPCH_ASSERT_ERRC(r->Receive(got, Deadline::After(kReceiveBound + Margin())), Timeout)
      << "a live, idle link was declared dead after " << Seconds(Clock::now() - idle_from) << " s";

  LinkRemovalWatch watch;
  IPCH_ASSERT_OK(watch.Open(env.a(), env.veth_a()));
  const Clock::time_point killed_at = Clock::now();
  peer->Kill();
  Status receive_status = r->Receive(got, Deadline::At(killed_at + 2 * kReceiveBound + Margin()));
  const Clock::duration receive_took = Clock::now() - killed_at;
  const Status removed = watch.Wait(Deadline::At(killed_at + Scaled(10s)));
  std::printf("[ DETECTED ] PeerNamespaceDeleted: receive %.3f s (%s); namespace destroyed with its veth: %s\n",
              Seconds(receive_took), receive_status.ok() ? "ok" : receive_status.error().ToString().c_str(),
              removed.ok() ? "yes" : removed.error().ToString().c_str());
  RecordProperty("receive_detect_ms", std::to_string(std::chrono::duration_cast<Millis>(receive_took).count()));
  IPCH_EXPECT_ERRC(receive_status, PeerClosed);
  EXPECT_LE(receive_took, kReceiveBound + Margin());
  IPCH_EXPECT_OK(removed) << "the peer's namespace, its last user gone, takes the veth pair with it";
  IPCH_EXPECT_ERRC(r->Send(MakeMessage(2, 1000, salt), Deadline::After(Scaled(1s))), PeerClosed);

  const int r_fd = r->read_fd();
  IPCH_EXPECT_OK(r->Close());
  EXPECT_TRUE(IsClosed(r_fd));
}

// ---- loss and delay (tc netem) -------------------------------------------------------------------

// With netem on both ends (10 ms each way, 2 % loss) messages still arrive whole and in order,
// and nothing is declared dead; at 100 % loss the blocked receive finds the dead link within the
// bound. Skipped where the kernel has no netem qdisc (tc says so; asked at run time).
TEST(TcpLink, NetemLossAndDelay) {
  IPCH_NETNS_PAIR(env);
  const std::vector<std::string> probe{"tc",   "-n",    env.a(), "qdisc", "add",  "dev", env.veth_a(),
                                       "root", "netem", "delay", "10ms",  "loss", "2%"};
  const CommandResult pr = RunCommand(probe);
  if (pr.status == 127) GTEST_SKIP() << "no `tc` (iproute2): " << pr.output;
  if (!pr.ok() && pr.output.find("Specified qdisc kind is unknown") != std::string::npos) {
    GTEST_SKIP() << "the kernel has no netem qdisc (sch_netem): " << Describe(probe, pr);
  }
  ASSERT_TRUE(pr.ok()) << Describe(probe, pr);
  ASSERT_TRUE(env.Ip(
      {"tc", "-n", env.b(), "qdisc", "add", "dev", env.veth_b(), "root", "netem", "delay", "10ms", "loss", "2%"}));

  const Options o = LinkOptions();
  const uint64_t salt = ipch::testing::Current().seed;
  auto link = AcceptEchoPeer(env, o);
  IPCH_ASSERT_OK(link);
  StreamConnection* r = &link->conn;
  Bytes got;
  for (uint64_t i = 0; i < 10; ++i) {
    const std::size_t size = i % 2 ? 100 : 16 * 1024;
    IPCH_ASSERT_OK(r->Send(MakeMessage(i, size, salt), Settle()));
    IPCH_ASSERT_OK(r->Receive(got, Settle())) << "message " << i;
    ASSERT_TRUE(VerifyMessage(got, i, size, salt)) << "message " << i;
  }

  const Clock::time_point cut_at = Clock::now();
  ASSERT_TRUE(env.Ip({"tc", "-n", env.b(), "qdisc", "change", "dev", env.veth_b(), "root", "netem", "loss", "100%"}));
  const Status receive_status = r->Receive(got, Deadline::At(cut_at + 2 * kReceiveBound + Margin()));
  const Clock::duration receive_took = Clock::now() - cut_at;
  std::printf("[ DETECTED ] NetemLoss100: receive %.2f s (%s)\n", Seconds(receive_took),
              receive_status.ok() ? "ok" : receive_status.error().ToString().c_str());
  EXPECT_TRUE(IsDeadLinkError(receive_status));
  EXPECT_LE(receive_took, kReceiveBound + Margin());
  EXPECT_GE(receive_took, kDeadLinkTimeout / 2) << "declared the link dead too soon";
  const int r_fd = r->read_fd();
  IPCH_EXPECT_OK(r->Close());
  EXPECT_TRUE(IsClosed(r_fd));
}

}  // namespace
}  // namespace ipch::tcp
