// Unit tests of the shared-memory ring core and its two backings: the consumer's validation as
// pure functions, wraparound at every offset, both ends as threads (the TSan build checks the
// memory ordering), the peer-death bound, pid reuse, permissions and the orphan policy.
#include "transports/shm_ring/shm.h"

#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "ipch/child_process.h"
#include "ipch/testing.h"
#include "transports/shm_ring/liveness.h"
#include "transports/shm_ring/ring.h"

namespace ipch::shm {
namespace {

using ::ipch::testing::MakeMessage;
using ::ipch::testing::VerifyMessage;

Deadline Settle() { return Deadline::After(Scaled(std::chrono::seconds(10))); }

std::string Addr(Backing b, const std::string& suffix = "") {
  return AddressFor(b, ::ipch::testing::Current().token + suffix);
}

// Writes a record the way the producer does (for the decoder tests).
void PutRecord(std::span<std::byte> ring, uint64_t pos, uint32_t len, std::byte fill) {
  const std::byte h[4] = {std::byte(len & 0xff), std::byte(len >> 8 & 0xff), std::byte(len >> 16 & 0xff),
                          std::byte(len >> 24)};
  CopyIn(ring, pos, h, 4);
  Bytes payload(len, fill);
  CopyIn(ring, pos + 4, payload.data(), len);
}

// ---- the consumer's checks -------------------------------------------------------------------
TEST(ShmRing, RecordsWrapAtEveryOffset) {
  Bytes ring(kMinCapacity);
  for (uint64_t head = kMinCapacity - 12; head < kMinCapacity + 4; ++head) {
    SCOPED_TRACE("head " + std::to_string(head));
    std::fill(ring.begin(), ring.end(), std::byte{0xee});
    PutRecord(ring, head, 9, std::byte{0x5a});
    Bytes out;
    auto next = DecodeRecord(ring, head, head + 13, out);
    IPCH_ASSERT_OK(next);
    EXPECT_EQ(*next, head + 13);
    EXPECT_EQ(out, Bytes(9, std::byte{0x5a}));
  }
}

TEST(ShmRing, CountersNearTheTopOfTheirRangeWrapCleanly) {
  Bytes ring(kMinCapacity);
  const uint64_t head = ~uint64_t{0} - 5;  // the 64-bit counters themselves wrap mid-record
  PutRecord(ring, head, 20, std::byte{1});
  Bytes out;
  auto next = DecodeRecord(ring, head, head + 24, out);
  IPCH_ASSERT_OK(next);
  EXPECT_EQ(*next, head + 24);
  EXPECT_EQ(out.size(), 20u);
}

TEST(ShmRing, TailOutsideThePublishedWindowIsCorrupt) {
  Bytes ring(kMinCapacity), out;
  IPCH_EXPECT_ERRC(DecodeRecord(ring, 1000, 999, out), Corrupt);                      // behind head
  IPCH_EXPECT_ERRC(DecodeRecord(ring, 1000, 1000 + kMinCapacity + 1, out), Corrupt);  // more than the ring
  IPCH_EXPECT_ERRC(DecodeRecord(ring, 1000, 1003, out), Corrupt);                     // no room for a header
}

TEST(ShmRing, RecordLengthsAreBounded) {
  Bytes ring(kMinCapacity), out;
  PutRecord(ring, 0, 0, std::byte{0});
  ring[0] = ring[1] = ring[2] = ring[3] = std::byte{0xff};  // 4 GiB - 1
  IPCH_EXPECT_ERRC(DecodeRecord(ring, 0, kMinCapacity, out), Corrupt);
  PutRecord(ring, 0, 0, std::byte{0});  // a header claiming just over the maximum
  const uint32_t over = static_cast<uint32_t>(MaxMessage(kMinCapacity)) + 1;
  ring[0] = std::byte(over & 0xff);
  ring[1] = std::byte(over >> 8 & 0xff);
  IPCH_EXPECT_ERRC(DecodeRecord(ring, 0, kMinCapacity, out), Corrupt);
  PutRecord(ring, 0, 100, std::byte{0});  // longer than what was published
  IPCH_EXPECT_ERRC(DecodeRecord(ring, 0, 50, out), Corrupt);
  EXPECT_TRUE(out.empty()) << "nothing may be copied out of an invalid record";
  PutRecord(ring, 0, static_cast<uint32_t>(MaxMessage(kMinCapacity)), std::byte{3});  // exactly max: fine
  IPCH_EXPECT_OK(DecodeRecord(ring, 0, kMinCapacity, out));
}

TEST(ShmRing, HeadMustStayBetweenLastSeenAndTail) {
  IPCH_EXPECT_OK(CheckHead(100, 100, 200, kMinCapacity));
  IPCH_EXPECT_OK(CheckHead(100, 200, 200, kMinCapacity));
  IPCH_EXPECT_ERRC(CheckHead(100, 99, 200, kMinCapacity), Corrupt);   // went backwards
  IPCH_EXPECT_ERRC(CheckHead(100, 201, 200, kMinCapacity), Corrupt);  // consumed the unpublished
}

TEST(ShmRing, CapacityRules) {
  EXPECT_TRUE(ValidCapacity(4096));
  EXPECT_TRUE(ValidCapacity(1u << 20));
  EXPECT_FALSE(ValidCapacity(2048));
  EXPECT_FALSE(ValidCapacity(4096 + 4096 / 2));
  EXPECT_FALSE(ValidCapacity(uint64_t{1} << 31));
}

// ---- both backings ---------------------------------------------------------------------------
class ShmBacking : public ::testing::TestWithParam<Backing> {};
INSTANTIATE_TEST_SUITE_P(Both, ShmBacking, ::testing::Values(Backing::Posix, Backing::Sysv),
                         [](const auto& info) { return std::string(BackingName(info.param)); });

// Two threads per direction through a 4 KiB ring: every message wraps and both ends sleep and
// wake constantly. Under TSan this checks the ring's memory ordering (in-process only: TSan
// cannot see across processes).
TEST_P(ShmBacking, ThreadsStreamBothWaysThroughATinyRing) {
  auto l = Listen(GetParam(), Addr(GetParam()));
  IPCH_ASSERT_OK(l);
  Options o;
  o.ring_capacity = kMinCapacity;
  auto c = Connect(GetParam(), l->address(), Settle(), o);
  IPCH_ASSERT_OK(c);
  auto s = l->Accept(Settle());
  IPCH_ASSERT_OK(s);
  const uint64_t salt = ::ipch::testing::Current().seed;
  constexpr uint64_t kCount = 3000;
  auto size_of = [salt](uint64_t i) { return static_cast<std::size_t>((i * 2654435761u ^ salt) % 3000); };
  auto pump = [&](Connection& tx, Connection& rx, std::string* failure) {
    std::thread sender([&] {
      for (uint64_t i = 0; i < kCount; ++i) {
        Status st = tx.Send(MakeMessage(i, size_of(i), salt), Settle());
        if (!st.ok()) return;
      }
    });
    Bytes got;
    for (uint64_t i = 0; i < kCount && failure->empty(); ++i) {
      Status st = rx.Receive(got, Settle());
      if (!st.ok())
        *failure = "message " + std::to_string(i) + ": " + st.error().ToString();
      else if (!VerifyMessage(got, i, size_of(i), salt))
        *failure = "message " + std::to_string(i) + " damaged";
    }
    sender.join();
  };
  std::string up, down;
  std::thread a([&] { pump(*c, *s, &up); });
  std::thread b([&] { pump(*s, *c, &down); });
  a.join();
  b.join();
  EXPECT_EQ(up, "");
  EXPECT_EQ(down, "");
}

TEST_P(ShmBacking, SegmentsAreOwnerOnlyWhateverTheUmask) {
  const mode_t old = ::umask(0);
  auto l = Listen(GetParam(), Addr(GetParam()));
  ::umask(old);
  IPCH_ASSERT_OK(l);
  auto owners = l->resource_owners();
  ASSERT_EQ(owners.size(), 1u);
  EXPECT_EQ(owners[0].mode & 0777, 0600u) << owners[0].what;
}

TEST_P(ShmBacking, BadAddressesAndOptionsAreInvalidArgument) {
  for (const char* a : {"", "noslash", "/a/b", "sysv:", "sysv:0x0", "sysv:zz", "sysv:0x80000000", "sysv:0x10 "}) {
    IPCH_EXPECT_ERRC(Listen(GetParam(), a), InvalidArgument) << "'" << a << "'";
  }
  auto l = Listen(GetParam(), Addr(GetParam()));
  IPCH_ASSERT_OK(l);
  Options o;
  o.ring_capacity = 5000;
  IPCH_EXPECT_ERRC(Connect(GetParam(), l->address(), Settle(), o), InvalidArgument);
}

// A connector that offers a damaged segment gets it refused; the listener removes it and serves the next.
// A damaged offer is dropped (Accept goes on to the next one) and its segment removed.
TEST_P(ShmBacking, DamagedOfferIsDroppedAndRemoved) {
  auto l = Listen(GetParam(), Addr(GetParam()));
  IPCH_ASSERT_OK(l);
  auto bad = Connect(GetParam(), l->address(), Settle());
  IPCH_ASSERT_OK(bad);
  auto bytes = bad->shared_bytes();
  std::fill(bytes.begin(), bytes.begin() + 16, std::byte{0x41});  // magic, version, capacity
  IPCH_EXPECT_ERRC(l->Accept(Deadline::Expired()), WouldBlock);
  Bytes refused;
  IPCH_EXPECT_ERRC(bad->Receive(refused, Settle()), PeerClosed);
  if (GetParam() == Backing::Posix) {
    EXPECT_FALSE(std::filesystem::exists("/dev/shm" + l->address() + ".c0")) << "the refused offer was left behind";
  }
  auto good = Connect(GetParam(), l->address(), Settle());
  IPCH_ASSERT_OK(good);
  auto s = l->Accept(Settle());
  IPCH_ASSERT_OK(s);
  IPCH_ASSERT_OK(good->Send(MakeMessage(1, 10, 1), Settle()));
  Bytes got;
  IPCH_ASSERT_OK(s->Receive(got, Settle()));
  EXPECT_TRUE(VerifyMessage(got, 1, 10, 1));
}

// The survivor blocked in Receive learns of a SIGKILL within the documented bound.
TEST_P(ShmBacking, KilledPeerIsDetectedWithinTheBound) {
  for (auto interval : {std::chrono::milliseconds(50), std::chrono::milliseconds(10)}) {
    SCOPED_TRACE("liveness interval " + std::to_string(interval.count()) + " ms");
    Options o;
    o.liveness_interval = interval;
    auto l = Listen(GetParam(), Addr(GetParam(), "-" + std::to_string(interval.count())), o);
    IPCH_ASSERT_OK(l);
    const std::string address = l->address();
    const Backing b = GetParam();
    auto child = ChildProcess::Spawn([&](ControlChannel& ch) -> Status {
      auto c = Connect(b, address, Settle());
      if (!c.ok()) return std::move(c).error();
      IPCH_RETURN_IF_ERROR(ch.Signal());
      return ch.WaitSignal(Deadline::Never());
    });
    IPCH_ASSERT_OK(child);
    auto s = l->Accept(Settle());
    IPCH_ASSERT_OK(s);
    IPCH_ASSERT_OK(child->control().WaitSignal(Settle()));
    Status st;
    std::thread receiver([&] {
      Bytes got;
      st = s->Receive(got, Deadline::Never());
    });
    const auto killed = Clock::now();
    child->Kill();
    receiver.join();
    const auto took = Clock::now() - killed;
    IPCH_EXPECT_ERRC(st, PeerClosed);
    // The bound: one liveness interval plus the time the kernel takes to tear the process down,
    // well inside the 200 ms the transport promises (scaled under sanitizers).
    EXPECT_LE(took, Scaled(std::chrono::milliseconds(200)))
        << std::chrono::duration_cast<std::chrono::milliseconds>(took).count() << " ms";
  }
}

// A sender SIGKILLed wherever it happens to be (copying, publishing, waiting for space): the
// survivor gets an intact, in-order prefix of the stream and then PeerClosed, every time.
TEST_P(ShmBacking, SenderKilledAnywhereNeverTearsTheStream) {
  const uint64_t seed = ::ipch::testing::Current().seed;
  std::mt19937_64 rng(seed);
  for (int round = 0; round < 25; ++round) {
    SCOPED_TRACE("round " + std::to_string(round) + " (seed " + std::to_string(seed) + ")");
    Options o;
    o.ring_capacity = 16384;  // small: the sender is often blocked on space, or wrapping
    auto l = Listen(GetParam(), Addr(GetParam(), "-" + std::to_string(round)));
    IPCH_ASSERT_OK(l);
    const std::string address = l->address();
    const Backing b = GetParam();
    const uint64_t salt = rng();
    auto size_of = [salt](uint64_t i) { return static_cast<std::size_t>((i * 0x9e3779b97f4a7c15ull ^ salt) % 6000); };
    auto child = ChildProcess::Spawn([&](ControlChannel&) -> Status {
      auto c = Connect(b, address, Settle(), o);
      if (!c.ok()) return std::move(c).error();
      for (uint64_t i = 0;; ++i) IPCH_RETURN_IF_ERROR(c->Send(MakeMessage(i, size_of(i), salt), Settle()));
    });
    IPCH_ASSERT_OK(child);
    auto s = l->Accept(Settle());
    IPCH_ASSERT_OK(s);
    const uint64_t kill_after = rng() % 200;
    Bytes got;
    uint64_t i = 0;
    for (; i < kill_after; ++i) {
      IPCH_ASSERT_OK(s->Receive(got, Settle()));
      ASSERT_TRUE(VerifyMessage(got, i, size_of(i), salt)) << "message " << i;
    }
    child->Kill();
    // Whatever was fully published before the kill, then PeerClosed; never a torn record.
    Status st;
    while ((st = s->Receive(got, Settle())).ok()) {
      ASSERT_TRUE(VerifyMessage(got, i, size_of(i), salt)) << "message " << i << " after the kill";
      ++i;
    }
    IPCH_EXPECT_ERRC(st, PeerClosed);
  }
}

TEST(ShmLiveness, ARecycledPidIsNotThePeer) {
  const ProcessIdentity self = Self();
  EXPECT_TRUE(PeerWatch::Open(self).Alive());
  auto child = ChildProcess::Spawn([](ControlChannel& ch) -> Status { return ch.WaitSignal(Deadline::Never()); });
  IPCH_ASSERT_OK(child);
  auto start = StartTime(child->pid());
  IPCH_ASSERT_OK(start);
  const uint32_t pid = static_cast<uint32_t>(child->pid());
  EXPECT_TRUE(PeerWatch::Open({pid, *start}).Alive());
  // Same pid, different start time: what a recycled pid looks like. It is not our peer.
  EXPECT_FALSE(PeerWatch::Open({pid, *start + 1}).Alive());
  PeerWatch held = PeerWatch::Open({pid, *start});
  child->Kill();
  EXPECT_FALSE(held.Alive()) << "a watch must report its process's death";
  EXPECT_FALSE(PeerWatch::Open({pid, *start}).Alive());
  EXPECT_FALSE(PeerWatch::Open({0, 0}).Alive());
}

// ---- orphans ---------------------------------------------------------------------------------
TEST(ShmOrphans, KilledPosixListenerIsReclaimedWithItsPendingOffers) {
  const std::string address = Addr(Backing::Posix);
  const std::filesystem::path file = "/dev/shm" + address;
  auto child = ChildProcess::Spawn([&](ControlChannel& ch) -> Status {
    auto l = Listen(Backing::Posix, address);
    if (!l.ok()) return std::move(l).error();
    IPCH_RETURN_IF_ERROR(ch.Signal());
    return ch.WaitSignal(Deadline::Never());
  });
  IPCH_ASSERT_OK(child);
  IPCH_ASSERT_OK(child->control().WaitSignal(Settle()));
  // An offer the listener never accepted, from a connector that is gone as well.
  auto connector = ChildProcess::Spawn([&](ControlChannel& ch) -> Status {
    auto c = Connect(Backing::Posix, address, Settle());
    if (!c.ok()) return std::move(c).error();
    IPCH_RETURN_IF_ERROR(ch.Signal());
    return ch.WaitSignal(Deadline::Never());
  });
  IPCH_ASSERT_OK(connector);
  IPCH_ASSERT_OK(connector->control().WaitSignal(Settle()));
  connector->Kill();
  child->Kill();
  // The offer's segment is "<address>.c<ticket>", its ticket the generation's random first one.
  auto offers = [&] {
    std::vector<std::string> found;
    const std::string prefix = file.filename().string() + ".c";
    for (const auto& e : std::filesystem::directory_iterator("/dev/shm")) {
      if (e.path().filename().string().rfind(prefix, 0) == 0) found.push_back(e.path().string());
    }
    return found;
  };
  ASSERT_TRUE(std::filesystem::exists(file)) << "the killed listener should have left its segment";
  ASSERT_EQ(offers().size(), 1u) << "and the unaccepted offer its own";
  IPCH_EXPECT_ERRC(Connect(Backing::Posix, address, Settle()), PeerClosed);
  auto l = Listen(Backing::Posix, address);
  IPCH_ASSERT_OK(l);
  EXPECT_TRUE(offers().empty()) << "the dead offer was not reclaimed";
  auto c = Connect(Backing::Posix, address, Settle());
  IPCH_ASSERT_OK(c);
  IPCH_EXPECT_OK(l->Accept(Settle()));
}

TEST(ShmOrphans, UninitialisedSysvSegmentOfADeadCreatorIsReclaimed) {
  const std::string address = Addr(Backing::Sysv);
  auto child = ChildProcess::Spawn([&](ControlChannel&) -> Status {
    return PlantImpostor(Backing::Sysv, address, Impostor::Uninitialised);  // then exits: creator gone
  });
  IPCH_ASSERT_OK(child);
  IPCH_ASSERT_OK(child->Wait(Settle()));
  auto l = Listen(Backing::Sysv, address);
  IPCH_ASSERT_OK(l) << "SysV records the creator: a dead one's half-made segment is reclaimable";
  auto c = Connect(Backing::Sysv, address, Settle());
  IPCH_ASSERT_OK(c);
  IPCH_EXPECT_OK(l->Accept(Settle()));
}

TEST(ShmOrphans, SysvConnectionSegmentsVanishWhenBothEndsAreKilled) {
  const std::string address = Addr(Backing::Sysv);
  auto listener = ChildProcess::Spawn([&](ControlChannel& ch) -> Status {
    auto l = Listen(Backing::Sysv, address);
    if (!l.ok()) return std::move(l).error();
    IPCH_RETURN_IF_ERROR(ch.Signal());
    auto s = l->Accept(Settle());
    if (!s.ok()) return std::move(s).error();
    IPCH_RETURN_IF_ERROR(ch.Signal());
    return ch.WaitSignal(Deadline::Never());
  });
  IPCH_ASSERT_OK(listener);
  IPCH_ASSERT_OK(listener->control().WaitSignal(Settle()));
  auto connector = ChildProcess::Spawn([&](ControlChannel& ch) -> Status {
    auto c = Connect(Backing::Sysv, address, Settle());
    if (!c.ok()) return std::move(c).error();
    IPCH_RETURN_IF_ERROR(ch.Signal());
    return ch.WaitSignal(Deadline::Never());
  });
  IPCH_ASSERT_OK(connector);
  IPCH_ASSERT_OK(connector->control().WaitSignal(Settle()));
  IPCH_ASSERT_OK(listener->control().WaitSignal(Settle()));
  connector->Kill();
  listener->Kill();
  // The acceptor marked the connection segment IPC_RMID once attached: gone with its last user. The
  // rendezvous is the only leftover, and the next Listen reclaims it. The audit checks the rest.
  auto l = Listen(Backing::Sysv, address);
  IPCH_ASSERT_OK(l);
}

}  // namespace
}  // namespace ipch::shm
