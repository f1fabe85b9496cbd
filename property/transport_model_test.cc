// Stateful property test: random sequences of sends, receives, closes and oversize sends on a
// connected pair, checked step by step against a model of the contract (two FIFO queues and
// two closed flags). The same model runs over inmem, tcp and unix. Counterexamples are shrunk
// and shown as command lists. Seeded: RC_PARAMS="seed=N" replays a run (ctest sets one).
#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/state.h>

#include <algorithm>
#include <array>
#include <deque>

#include "ipch/testing.h"
#include "transports/inmem/inmem.h"
#include "transports/posix_shm/posix_shm.h"
#include "transports/sysv_shm/sysv_shm.h"
#include "transports/tcp/tcp.h"
#include "transports/unix/unix.h"

namespace ipch::property {
namespace {

constexpr std::size_t kQueueBudget = 64 * 1024;  // keeps every send non-blocking in any transport

struct Model {
  std::array<std::deque<Bytes>, 2> queue;  // [0]: client -> server, [1]: server -> client
  std::array<bool, 2> closed{};
  std::size_t Queued(int dir) const {
    std::size_t n = 0;
    for (const auto& m : queue[dir]) n += m.size();
    return n;
  }
};

template <class C>
struct Sut {
  C end[2];  // 0: client, 1: server
};

const char* Side(int s) { return s == 0 ? "client" : "server"; }
// Bound for receives the model expects to succeed. A correct transport never waits it out;
// the broken-transport test shortens it so that shrinking a failure stays quick.
Clock::duration g_expected_bound = std::chrono::seconds(10);
Deadline Settle() { return Deadline::After(Scaled(g_expected_bound)); }

Bytes GenPayload() {
  // Mostly small, sometimes up to 16 KiB: boundaries matter more than bulk.
  auto size = *rc::gen::weightedOneOf<std::size_t>({{6, rc::gen::inRange<std::size_t>(0, 65)},
                                                    {3, rc::gen::inRange<std::size_t>(0, 4097)},
                                                    {1, rc::gen::inRange<std::size_t>(0, 16385)}});
  auto raw = *rc::gen::container<std::vector<uint8_t>>(size, rc::gen::arbitrary<uint8_t>());
  Bytes b(raw.size());
  std::transform(raw.begin(), raw.end(), b.begin(), [](uint8_t x) { return std::byte{x}; });
  return b;
}

template <class C>
struct Send : rc::state::Command<Model, Sut<C>> {
  int side;
  Bytes payload;
  Send() : side(*rc::gen::inRange(0, 2)), payload(GenPayload()) {}
  void checkPreconditions(const Model& m) const override {
    RC_PRE(!m.closed[0] && !m.closed[1]);
    RC_PRE(m.Queued(side) + payload.size() <= kQueueBudget);
  }
  void apply(Model& m) const override { m.queue[side].push_back(payload); }
  void run(const Model&, Sut<C>& s) const override {
    Status st = s.end[side].Send(payload, Settle());
    RC_ASSERT(st.ok());
  }
  void show(std::ostream& os) const override { os << "Send(" << Side(side) << ", " << payload.size() << " bytes)"; }
};

template <class C>
struct Receive : rc::state::Command<Model, Sut<C>> {
  int side;
  Receive() : side(*rc::gen::inRange(0, 2)) {}  // the receiving end
  void checkPreconditions(const Model& m) const override { RC_PRE(!m.closed[side]); }
  void apply(Model& m) const override {
    auto& q = m.queue[1 - side];
    if (!q.empty()) q.pop_front();
  }
  void run(const Model& m, Sut<C>& s) const override {
    const auto& q = m.queue[1 - side];
    Bytes got;
    if (!q.empty()) {
      Status st = s.end[side].Receive(got, Settle());
      RC_ASSERT(st.ok());
      RC_ASSERT(got == q.front());
    } else if (m.closed[1 - side]) {
      RC_ASSERT(s.end[side].Receive(got, Settle()).Is(Errc::PeerClosed));
    } else {
      // Nothing queued and nothing in flight: an expired deadline must not block or invent data.
      RC_ASSERT(s.end[side].Receive(got, Deadline::Expired()).Is(Errc::WouldBlock));
    }
  }
  void show(std::ostream& os) const override { os << "Receive(" << Side(side) << ")"; }
};

template <class C>
struct Close : rc::state::Command<Model, Sut<C>> {
  int side;
  Close() : side(*rc::gen::inRange(0, 2)) {}
  void checkPreconditions(const Model& m) const override { RC_PRE(!m.closed[side]); }
  void apply(Model& m) const override {
    m.closed[side] = true;
    m.queue[1 - side].clear();  // unread messages die with the closed reader
  }
  void run(const Model&, Sut<C>& s) const override {
    RC_ASSERT(s.end[side].Close().ok());
    Bytes got;
    RC_ASSERT(s.end[side].Receive(got, Deadline::Expired()).Is(Errc::Closed));
    RC_ASSERT(s.end[side].Send(Bytes{}, Deadline::Expired()).Is(Errc::Closed));
  }
  void show(std::ostream& os) const override { os << "Close(" << Side(side) << ")"; }
};

template <class C>
struct SendOversize : rc::state::Command<Model, Sut<C>> {
  int side;
  SendOversize() : side(*rc::gen::inRange(0, 2)) {}
  void checkPreconditions(const Model& m) const override { RC_PRE(!m.closed[0] && !m.closed[1]); }
  void apply(Model&) const override {}  // nothing may be sent
  void run(const Model&, Sut<C>& s) const override {
    Bytes big(s.end[side].max_message_size() + 1);
    RC_ASSERT(s.end[side].Send(big, Settle()).Is(Errc::MessageTooLarge));
  }
  void show(std::ostream& os) const override { os << "SendOversize(" << Side(side) << ")"; }
};

// Runs the model over connections made by `connect_pair()` for every generated case.
template <class C, class MakePair>
bool CheckModel(const std::string& what, MakePair connect_pair) {
  return rc::check(what, [&]() {
    Sut<C> sut;
    const bool connected = connect_pair(sut);
    RC_ASSERT(connected);
    const Model initial;
    // Listed more than once = drawn more often: long runs of traffic before a close, or loss
    // and reordering deep in a stream would hardly ever be reached.
    rc::state::check(initial, sut,
                     rc::state::gen::execOneOfWithArgs<Send<C>, Send<C>, Send<C>, Receive<C>, Receive<C>, Receive<C>,
                                                       Close<C>, SendOversize<C>>());
  });
}

// The transports, with a small max_message_size where the API allows it (cheap oversize).
template <class T>
bool ConnectVia(Sut<typename T::Connection>& sut, const std::string& address,
                Result<typename T::Listener> (*listen)(const std::string&),
                Result<typename T::Connection> (*connect)(const std::string&, Deadline)) {
  auto l = listen(address);
  if (!l.ok()) return false;
  auto c = connect(l->address(), Settle());
  if (!c.ok()) return false;
  auto s = l->Accept(Settle());
  if (!s.ok()) return false;
  sut.end[0] = std::move(*c);
  sut.end[1] = std::move(*s);
  return true;
}

std::string FreshUnixPath() { return (testing::Current().scratch_dir / (testing::NewToken() + ".sock")).string(); }

Result<tcp::Listener> TcpListen(const std::string& a) { return tcp::Listen(a, 64 * 1024); }
Result<StreamConnection> TcpConnect(const std::string& a, Deadline d) { return tcp::Connect(a, d, 64 * 1024); }
Result<unix_sock::Listener> UnixListen(const std::string& a) { return unix_sock::Listen(a, 64 * 1024); }
Result<StreamConnection> UnixConnect(const std::string& a, Deadline d) { return unix_sock::Connect(a, d, 64 * 1024); }

TEST(TransportModel, Inmem) {
  EXPECT_TRUE(CheckModel<inmem::Connection>("inmem follows the model", [](Sut<inmem::Connection>& sut) {
    return ConnectVia<inmem::Adapter>(sut, testing::NewToken(), &inmem::Listen, &inmem::Connect);
  }));
}

TEST(TransportModel, Tcp) {
  EXPECT_TRUE(CheckModel<StreamConnection>("tcp follows the model", [](Sut<StreamConnection>& sut) {
    return ConnectVia<tcp::Adapter<false>>(sut, "127.0.0.1:0", &TcpListen, &TcpConnect);
  }));
}

TEST(TransportModel, Unix) {
  EXPECT_TRUE(CheckModel<StreamConnection>("unix follows the model", [](Sut<StreamConnection>& sut) {
    // The listener is gone after connect; its socket file is unlinked as it closes.
    return ConnectVia<unix_sock::Adapter>(sut, FreshUnixPath(), &UnixListen, &UnixConnect);
  }));
}

// Shared memory with a 128 KiB ring: the queue budget fits, and messages wrap constantly.
template <shm::Backing B>
Result<shm::Listener> ShmListen(const std::string& a) {
  return shm::Listen(B, a);
}
template <shm::Backing B>
Result<shm::Connection> ShmConnect(const std::string& a, Deadline d) {
  shm::Options o;
  o.ring_capacity = 128 * 1024;
  return shm::Connect(B, a, d, o);
}

TEST(TransportModel, PosixShm) {
  EXPECT_TRUE(CheckModel<shm::Connection>("posix_shm follows the model", [](Sut<shm::Connection>& sut) {
    return ConnectVia<posix_shm::Adapter>(sut, shm::AddressFor(shm::Backing::Posix, testing::NewToken()),
                                          &ShmListen<shm::Backing::Posix>, &ShmConnect<shm::Backing::Posix>);
  }));
}

TEST(TransportModel, SysvShm) {
  EXPECT_TRUE(CheckModel<shm::Connection>("sysv_shm follows the model", [](Sut<shm::Connection>& sut) {
    return ConnectVia<sysv_shm::Adapter>(sut, shm::AddressFor(shm::Backing::Sysv, testing::NewToken()),
                                         &ShmListen<shm::Backing::Sysv>, &ShmConnect<shm::Backing::Sysv>);
  }));
}

// The model must be able to fail: a connection that silently drops every 5th message.
class DropsMessages {
 public:
  DropsMessages() = default;
  explicit DropsMessages(inmem::Connection c) : inner_(std::move(c)) {}
  // Loses every 5th valid message and is otherwise correct.
  Status Send(ByteView m, Deadline d) {
    bool valid = !closed_ && m.size() <= inner_.max_message_size();
    return valid && ++sent_ % 5 == 0 ? Ok() : inner_.Send(m, d);
  }
  Status Receive(Bytes& out, Deadline d) { return inner_.Receive(out, d); }
  Status Close() {
    closed_ = true;
    return inner_.Close();
  }
  std::size_t max_message_size() const { return inner_.max_message_size(); }

 private:
  inmem::Connection inner_;
  int sent_ = 0;
  bool closed_ = false;
};

TEST(TransportModel, CatchesADroppingTransport) {
  g_expected_bound = Millis(50);  // inmem delivers synchronously: a missing message is lost
  bool passed =
      CheckModel<DropsMessages>("a transport that drops messages (expected to FAIL)", [](Sut<DropsMessages>& sut) {
        auto l = inmem::Listen(testing::NewToken());
        if (!l.ok()) return false;
        auto c = inmem::Connect(l->address(), Settle());
        auto s = l->Accept(Settle());
        if (!c.ok() || !s.ok()) return false;
        sut.end[0] = DropsMessages(std::move(*c));
        sut.end[1] = DropsMessages(std::move(*s));
        return true;
      });
  g_expected_bound = std::chrono::seconds(10);
  EXPECT_FALSE(passed) << "the model did not notice lost messages";
}

}  // namespace
}  // namespace ipch::property
