#include <sys/ipc.h>
#include <sys/msg.h>

#include <cstring>
#include <random>

#include "ipch/fault.h"
#include "ipch/testing.h"
#include "transports/mq/chunk.h"
#include "transports/sysv_mq/sysv_mq.h"

namespace ipch {
namespace {

// ---- the chunk layer --------------------------------------------------------------------------

std::vector<Bytes> Chunks(mq::Chunker& c, const Bytes& msg, std::size_t room) {
  std::vector<Bytes> out;
  std::size_t off = 0;
  do {
    unsigned char h[mq::kChunkHeaderSize];
    const std::size_t n = c.Next(msg.size(), off, room, h);
    Bytes chunk(reinterpret_cast<std::byte*>(h), reinterpret_cast<std::byte*>(h) + sizeof h);
    chunk.insert(chunk.end(), msg.begin() + static_cast<std::ptrdiff_t>(off),
                 msg.begin() + static_cast<std::ptrdiff_t>(off + n));
    c.Sent();
    out.push_back(std::move(chunk));
    off += n;
  } while (off < msg.size());
  return out;
}

Status Feed(mq::Reassembler& r, const Bytes& chunk, bool* done, bool* fin) {
  return r.Feed(reinterpret_cast<const unsigned char*>(chunk.data()), chunk.size(), done, fin);
}

TEST(MqChunks, MessagesOfEverySizeSurviveChunking) {
  mq::Chunker tx;
  mq::Reassembler rx(1 << 20);
  for (std::size_t size : {0, 1, 99, 100, 101, 1000, 65536}) {
    const Bytes msg = testing::MakeMessage(size, size, testing::Current().seed);
    auto chunks = Chunks(tx, msg, 100);
    EXPECT_EQ(chunks.size(), std::max<std::size_t>(1, (size + 99) / 100));
    for (std::size_t i = 0; i < chunks.size(); ++i) {
      bool done = false, fin = false;
      IPCH_ASSERT_OK(Feed(rx, chunks[i], &done, &fin));
      EXPECT_EQ(done, i + 1 == chunks.size());
      EXPECT_FALSE(fin);
    }
    EXPECT_EQ(rx.message(), msg);
  }
}

TEST(MqChunks, ALostRepeatedOrForeignChunkIsCorrupt) {
  const Bytes msg = testing::MakeMessage(1, 350, testing::Current().seed);
  auto corrupt = [&](const char* what, auto mutate) {
    mq::Chunker tx;
    auto chunks = Chunks(tx, msg, 100);
    mutate(chunks);
    mq::Reassembler rx(1 << 20);
    Status st;
    bool done = false, fin = false;
    for (const auto& c : chunks) {
      st = Feed(rx, c, &done, &fin);
      if (!st.ok() || done) break;
    }
    EXPECT_TRUE(st.Is(Errc::Corrupt)) << what << ": " << (st.ok() ? "accepted" : st.error().ToString());
    EXPECT_FALSE(done) << what << ": a wrong message was delivered";
  };
  corrupt("lost", [](auto& c) { c.erase(c.begin() + 1); });
  corrupt("repeated", [](auto& c) { c.insert(c.begin() + 1, c[1]); });
  corrupt("reordered", [](auto& c) { std::swap(c[1], c[2]); });
  corrupt("bad magic", [](auto& c) { c[0][0] ^= std::byte{1}; });
  corrupt("unknown kind", [](auto& c) { c[1][2] = std::byte{9}; });
  corrupt("length changed mid-message", [](auto& c) { c[2][8] ^= std::byte{1}; });
  corrupt("payload longer than announced", [](auto& c) { c.back().push_back(std::byte{0}); });
  corrupt("header only", [](auto& c) { c[1].resize(mq::kChunkHeaderSize); });
  corrupt("short header", [](auto& c) { c[0].resize(5); });
}

TEST(MqChunks, LengthAboveTheMaximumIsCorruptBeforeAnyAllocation) {
  mq::Chunker tx;
  unsigned char h[mq::kChunkHeaderSize];
  tx.Next(0xfffffff0u, 0, 16, h);
  Bytes chunk(reinterpret_cast<std::byte*>(h), reinterpret_cast<std::byte*>(h) + sizeof h);
  chunk.resize(chunk.size() + 16);
  mq::Reassembler rx(1 << 20);
  bool done = false, fin = false;
  IPCH_EXPECT_ERRC(Feed(rx, chunk, &done, &fin), Corrupt);
}

TEST(MqChunks, FinMidMessageDropsThePartAndSaysSo) {
  mq::Chunker tx;
  auto chunks = Chunks(tx, testing::MakeMessage(1, 250, 7), 100);
  unsigned char h[mq::kChunkHeaderSize];
  mq::Chunker tail;  // the sender's sequence after the first chunk
  tail.Sent();
  tail.Fin(h);
  mq::Reassembler rx(1 << 20);
  bool done = false, fin = false;
  IPCH_ASSERT_OK(Feed(rx, chunks[0], &done, &fin));
  EXPECT_TRUE(rx.mid_message());
  IPCH_ASSERT_OK(Feed(rx, Bytes(reinterpret_cast<std::byte*>(h), reinterpret_cast<std::byte*>(h) + sizeof h), &done, &fin));
  EXPECT_TRUE(fin);
  EXPECT_FALSE(done);
  EXPECT_FALSE(rx.mid_message());
}

TEST(MqChunks, RandomChunksNeverCrashOrDeliverUnannouncedBytes) {
  std::mt19937_64 rng(testing::Current().seed);
  for (int i = 0; i < 20000; ++i) {
    mq::Reassembler rx(4096);
    Bytes c(rng() % 64);
    for (auto& b : c) b = static_cast<std::byte>(rng());
    if (c.size() >= 4 && rng() % 2) {  // often a valid magic and kind, to get past the first checks
      c[0] = std::byte{0x4d};
      c[1] = std::byte{0x51};
      c[2] = std::byte{1};
      c[3] = std::byte{0};
    }
    bool done = false, fin = false;
    Status st = Feed(rx, c, &done, &fin);
    if (st.ok() && done) {
      ASSERT_LE(rx.message().size(), c.size()) << "delivered bytes it never received";
    }
  }
}

// ---- sysv_mq against a hostile local process ------------------------------------------------

// The queue the server receives on, found through the listener's request it accepted.
struct SysvPair {
  sysv_mq::Listener l;
  sysv_mq::Connection c, s;
};
Result<SysvPair> SysvConnected() {
  auto l = sysv_mq::Listen(sysv_mq::AddressFor(testing::Current().token));
  if (!l.ok()) return std::move(l).error();
  auto c = sysv_mq::Connect(l->address(), Deadline::After(Scaled(Millis(2000))));
  if (!c.ok()) return std::move(c).error();
  auto s = l->Accept(Deadline::After(Scaled(Millis(2000))));
  if (!s.ok()) return std::move(s).error();
  return SysvPair{std::move(*l), std::move(*c), std::move(*s)};
}

TEST(SysvMq, AQueueMessageWithoutAChunkHeaderIsCorrupt) {
  auto p = SysvConnected();
  IPCH_ASSERT_OK(p);
  std::vector<char> raw(sizeof(long) + 8192, 'x');
  const long type = 1;
  std::memcpy(raw.data(), &type, sizeof type);
  ASSERT_EQ(::msgsnd(p->s.incoming_queue(), raw.data(), 8192, IPC_NOWAIT), 0) << std::strerror(errno);
  Bytes got;
  IPCH_EXPECT_ERRC(p->s.Receive(got, Deadline::After(Scaled(Millis(500)))), Corrupt);
}

// msgrcv without MSG_NOERROR: a queue message larger than the buffer fails with E2BIG (the
// kernel keeps it) and must be MessageTooLarge, never a truncated delivery. A sender can only
// make one larger than our buffer if kernel.msgmax grew after we read it, so E2BIG is injected.
TEST(SysvMq, E2bigFromMsgrcvIsMessageTooLargeAndSticky) {
  auto p = SysvConnected();
  IPCH_ASSERT_OK(p);
  IPCH_ASSERT_OK(p->c.Send(AsBytes("hello"), Deadline::After(Scaled(Millis(500)))));
  Bytes got;
  {
    fault::Plan plan;
    plan.rules.push_back({fault::kMsgrcv, fault::Kind::kErrno, E2BIG, 1, 0.0, 1});
    fault::ScopedPlan armed(plan);
    IPCH_EXPECT_ERRC(p->s.Receive(got, Deadline::After(Scaled(Millis(500)))), MessageTooLarge);
    EXPECT_EQ(fault::InjectedCount(), 1u);
  }
  EXPECT_TRUE(got.empty());
  IPCH_EXPECT_ERRC(p->s.Receive(got, Deadline::After(Scaled(Millis(500)))), MessageTooLarge) << "must stay";
}

TEST(SysvMq, AForeignChunkIsCorruptAndSticky) {
  auto p = SysvConnected();
  IPCH_ASSERT_OK(p);
  IPCH_ASSERT_OK(p->c.Send(AsBytes("first"), Deadline::After(Scaled(Millis(500)))));
  Bytes got;
  IPCH_ASSERT_OK(p->s.Receive(got, Deadline::After(Scaled(Millis(500)))));
  // A same-uid process replays a well-formed chunk with sequence 0 again.
  unsigned char h[mq::kChunkHeaderSize];
  mq::Chunker replay;
  replay.Next(3, 0, 100, h);
  struct {
    long type;
    unsigned char text[mq::kChunkHeaderSize + 3];
  } m{1, {}};
  std::memcpy(m.text, h, sizeof h);
  std::memcpy(m.text + sizeof h, "abc", 3);
  ASSERT_EQ(::msgsnd(p->s.incoming_queue(), &m, sizeof m.text, IPC_NOWAIT), 0);
  IPCH_EXPECT_ERRC(p->s.Receive(got, Deadline::After(Scaled(Millis(500)))), Corrupt);
  IPCH_EXPECT_ERRC(p->s.Receive(got, Deadline::After(Scaled(Millis(500)))), Corrupt) << "Corrupt must stay";
}

TEST(SysvMq, AddressesAreValidated) {
  for (const char* bad : {"", "sysvmsg:", "sysvmsg:0x", "sysvmsg:0xzz", "sysvmsg:0x123456789", "sysv:0x10", "0x10"}) {
    IPCH_EXPECT_ERRC(sysv_mq::Listen(bad), InvalidArgument) << bad;
    IPCH_EXPECT_ERRC(sysv_mq::Connect(bad, Deadline::Expired()), InvalidArgument) << bad;
  }
}

TEST(SysvMq, AQueueOfTheKeyOpenToOthersIsRefusedAndKept) {
  const std::string address = sysv_mq::AddressFor(testing::Current().token);
  auto key = sysv_mq::ParseAddress(address);
  IPCH_ASSERT_OK(key);
  const int q = ::msgget(*key, IPC_CREAT | IPC_EXCL | 0666);
  ASSERT_GE(q, 0) << std::strerror(errno);
  IPCH_EXPECT_ERRC(sysv_mq::Listen(address), PermissionDenied);
  IPCH_EXPECT_ERRC(sysv_mq::Connect(address, Deadline::After(Scaled(Millis(200)))), PermissionDenied);
  msqid_ds ds{};
  EXPECT_EQ(::msgctl(q, IPC_STAT, &ds), 0) << "the refused queue was removed";
  ::msgctl(q, IPC_RMID, nullptr);
}

}  // namespace
}  // namespace ipch
