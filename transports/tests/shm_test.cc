// Unit tests of the shared-memory ring core and its two backings: the consumer's validation as
// pure functions, wraparound at every offset, both ends as threads (the TSan build checks the
// memory ordering), the peer-death bound, pid reuse, permissions and the orphan policy.
#include "transports/shm_ring/shm.h"

#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
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

// Writes a record of `len` bytes of `fill` the way the producer does; returns the new tail.
uint64_t Put(std::span<std::byte> ring, uint64_t pos, uint32_t len, std::byte fill) {
  const Bytes payload(len, fill);
  const uint64_t next = PutRecord(ring, pos, payload);
  PublishRecord(ring, pos, len);
  return next;
}

void PutWord(std::span<std::byte> ring, uint64_t pos, uint64_t word) {
  for (int b = 0; b < 8; ++b) ring[(pos + b) & (ring.size() - 1)] = std::byte(word >> (8 * b) & 0xff);
}

// ---- the consumer's checks -------------------------------------------------------------------
TEST(ShmRing, RecordsWrapAtEveryOffset) {
  Bytes ring(kMinCapacity);
  for (uint64_t head = kMinCapacity - 32; head <= kMinCapacity; head += kRecordAlign) {
    for (uint32_t len = 0; len <= 33; ++len) {
      SCOPED_TRACE("head " + std::to_string(head) + ", length " + std::to_string(len));
      std::fill(ring.begin(), ring.end(), std::byte{0xee});
      PutWord(ring, head, 0);
      EXPECT_EQ(LoadHeader(ring, head), 0u);
      const uint64_t tail = Put(ring, head, len, std::byte{0x5a});
      EXPECT_EQ(tail, head + RecordSize(len));
      EXPECT_EQ(tail % kRecordAlign, 0u);
      EXPECT_EQ(LoadHeader(ring, tail), 0u) << "the next record's header was not cleared";
      Bytes out;
      auto next = TakeRecord(ring, head, LoadHeader(ring, head), out);
      IPCH_ASSERT_OK(next);
      EXPECT_EQ(*next, tail);
      EXPECT_EQ(out, Bytes(len, std::byte{0x5a}));
    }
  }
}

TEST(ShmRing, CountersNearTheTopOfTheirRangeWrapCleanly) {
  Bytes ring(kMinCapacity);
  const uint64_t head = ~uint64_t{0} - 7;  // the 64-bit counters themselves wrap mid-record
  const uint64_t tail = Put(ring, head, 20, std::byte{1});
  EXPECT_EQ(tail, head + 32);
  Bytes out;
  auto next = TakeRecord(ring, head, LoadHeader(ring, head), out);
  IPCH_ASSERT_OK(next);
  EXPECT_EQ(*next, tail);
  EXPECT_EQ(out, Bytes(20, std::byte{1}));
}

// A payload of an earlier lap can hold, where a later record's header goes, exactly the header
// word that position expects. The producer clears that word before it publishes the record in
// front of it, so the consumer finds zero there, never the stale lookalike.
TEST(ShmRing, StalePayloadShapedLikeAHeaderIsNeverARecord) {
  Bytes ring(kMinCapacity);
  const uint64_t cap = kMinCapacity;
  for (uint64_t at : {uint64_t{8}, uint64_t{64}, cap - 16}) {
    SCOPED_TRACE("lookalike at offset " + std::to_string(at));
    // Lap 0: one record whose payload covers offset `at`, holding the header word that `at`
    // expects in lap 1 (a 5-byte record).
    Bytes payload(cap - 2 * kRecordHeader, std::byte{0});
    const uint64_t in_payload = at - kRecordHeader;
    for (int b = 0; b < 8; ++b) payload[in_payload + b] = std::byte(HeaderWord(cap + at, 5) >> (8 * b) & 0xff);
    std::fill(ring.begin(), ring.end(), std::byte{0});
    const uint64_t end0 = PutRecord(ring, 0, payload);
    PublishRecord(ring, 0, payload.size());
    Bytes out;
    IPCH_ASSERT_OK(TakeRecord(ring, 0, LoadHeader(ring, 0), out));
    ASSERT_EQ(end0, cap - kRecordHeader);
    // Lap 1 up to `at`: records of 8-byte payloads (16 bytes each), then one of 0 if needed.
    uint64_t tail = end0;
    while (tail + 16 <= cap + at) tail = Put(ring, tail, 8, std::byte{1});
    if (tail < cap + at) tail = Put(ring, tail, 0, std::byte{0});
    ASSERT_EQ(tail, cap + at);
    EXPECT_EQ(LoadHeader(ring, tail), 0u) << "a stale payload word would be read as a record";
  }
}

// The streaming copy for large messages: every destination alignment in a 16-byte unit,
// lengths around whole lines, and through CopyIn across the end of a ring, byte for byte.
TEST(ShmRing, StreamingCopiesEveryByteAtEveryAlignment) {
  const Bytes src = MakeMessage(1, 4096 + 64, 7);
  Bytes dst(4096 + 128);
  for (std::size_t align = 0; align < 16; ++align) {
    for (std::size_t n : {std::size_t{0}, std::size_t{1}, std::size_t{15}, std::size_t{63}, std::size_t{64},
                          std::size_t{65}, std::size_t{127}, std::size_t{4096 + 63}}) {
      SCOPED_TRACE("alignment " + std::to_string(align) + ", length " + std::to_string(n));
      std::fill(dst.begin(), dst.end(), std::byte{0xee});
      StreamingCopy(dst.data() + align, src.data() + 1, n);
      EXPECT_TRUE(std::equal(src.begin() + 1, src.begin() + 1 + n, dst.begin() + align));
      EXPECT_TRUE(std::all_of(dst.begin(), dst.begin() + align, [](std::byte b) { return b == std::byte{0xee}; }));
      EXPECT_TRUE(std::all_of(dst.begin() + align + n, dst.end(), [](std::byte b) { return b == std::byte{0xee}; }))
          << "written past the end";
    }
  }
  // A message the size of the streaming threshold, wrapped by a ring twice its size.
  const std::size_t n = StreamingFrom() + 3;
  std::size_t cap = kMinCapacity;
  while (cap < 2 * n) cap *= 2;
  Bytes ring(cap), big = MakeMessage(2, n, 9), back(n);
  const uint64_t pos = cap - 1000 + 5;
  CopyIn(ring, pos, big.data(), n);
  CopyOut(ring, pos, back.data(), n);
  EXPECT_EQ(back, big);
}

TEST(ShmRing, HeaderWordsMustNameTheirPositionAndABoundedLength) {
  const uint64_t cap = kMinCapacity, head = 3 * cap + 64;
  const uint32_t max = static_cast<uint32_t>(MaxMessage(kMinCapacity));
  IPCH_EXPECT_OK(RecordLength(head, HeaderWord(head, 0), cap));
  IPCH_EXPECT_OK(RecordLength(head, HeaderWord(head, max), cap));
  Result<uint32_t> len = RecordLength(head, HeaderWord(head, 77), cap);
  IPCH_ASSERT_OK(len);
  EXPECT_EQ(*len, 77u);
  IPCH_EXPECT_ERRC(RecordLength(head, HeaderWord(head, max + 1), cap), Corrupt);
  IPCH_EXPECT_ERRC(RecordLength(head, HeaderWord(head, 0xffffffffu), cap), Corrupt);
  IPCH_EXPECT_ERRC(RecordLength(head, ~uint64_t{0}, cap), Corrupt);
  IPCH_EXPECT_ERRC(RecordLength(head, HeaderWord(head + 8, 5), cap), Corrupt);    // the next position's
  IPCH_EXPECT_ERRC(RecordLength(head, HeaderWord(head - cap, 5), cap), Corrupt);  // the last lap's
  IPCH_EXPECT_ERRC(RecordLength(head, 5, cap), Corrupt);                          // no tag at all
  Bytes ring(kMinCapacity), out;
  PutWord(ring, head, HeaderWord(head, max + 1));
  IPCH_EXPECT_ERRC(TakeRecord(ring, head, LoadHeader(ring, head), out), Corrupt);
  EXPECT_TRUE(out.empty()) << "nothing may be copied out of an invalid record";
}

TEST(ShmRing, HeadMustStayBetweenLastSeenAndTail) {
  IPCH_EXPECT_OK(CheckHead(96, 96, 200, kMinCapacity));
  IPCH_EXPECT_OK(CheckHead(96, 200, 200, kMinCapacity));
  IPCH_EXPECT_ERRC(CheckHead(96, 88, 200, kMinCapacity), Corrupt);   // went backwards
  IPCH_EXPECT_ERRC(CheckHead(96, 208, 200, kMinCapacity), Corrupt);  // consumed the unpublished
  IPCH_EXPECT_ERRC(CheckHead(96, 100, 200, kMinCapacity), Corrupt);  // inside a record
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
