// Security group, named objects and shared segments: owner-only resources, impostor objects at
// the address, hostile bytes written into shared memory.
#pragma once

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <ios>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "fixture.h"
#include "hooks.h"
#include "ipch/deadline.h"
#include "ipch/result.h"
#include "ipch/testing.h"
#include "ipch/transport.h"
#include "security_fixture.h"

namespace ipch::conformance {

TYPED_TEST_P(Security, NamedResourcesAreOwnerOnly) {
  IPCH_REQUIRE_CAP(NamedResource);
  auto l = TypeParam::Listen(this->address_);
  IPCH_ASSERT_OK(l);
  std::vector<ResourceOwner> owners;
  for (const auto& p : l->resource_paths()) {
    struct stat st {};
    ASSERT_EQ(::lstat(p.c_str(), &st), 0) << p;
    owners.push_back({p.string(), st.st_uid, st.st_mode});
  }
  // Objects without a path (SysV) are listed with their owner and mode by the listener.
  if constexpr (requires { l->resource_owners(); }) {
    for (auto& o : l->resource_owners()) owners.push_back(o);
  }
  ASSERT_FALSE(owners.empty()) << "a NamedResource transport must list what it created";
  for (const auto& o : owners) {
    EXPECT_EQ(o.uid, ::geteuid()) << o.what;
    EXPECT_EQ(o.mode & 077, 0u) << o.what << " is open to group/others: mode " << std::oct << (o.mode & 07777);
  }
}

TYPED_TEST_P(Security, ObjectOfAnotherOwnerIsRefused) {
  IPCH_REQUIRE_IMPOSTOR(OtherOwner);
  if (::geteuid() != 0) GTEST_SKIP() << "UNSUPPORTED here: planting an object of another uid needs root";
  EXPECT_TRUE(ImpostorIsRefused<TypeParam>(this->address_, Impostor::OtherOwner, Errc::PermissionDenied,
                                           Errc::PermissionDenied));
}

TYPED_TEST_P(Security, ObjectOfTheWrongSizeIsRefused) {
  IPCH_REQUIRE_IMPOSTOR(WrongSize);
  // Connect checks the size (or kind) before using it: a short segment must not become a SIGBUS.
  EXPECT_TRUE(ImpostorIsRefused<TypeParam>(this->address_, Impostor::WrongSize, Errc::AlreadyExists, Errc::Corrupt));
}

// A link is never followed: Listen does not create or reclaim through it, Connect does not
// reach the object it points to (which is live, so a transport that follows it connects).
TYPED_TEST_P(Security, ObjectBehindASymlinkIsRefused) {
  IPCH_REQUIRE_IMPOSTOR(Symlink);
  EXPECT_TRUE(
      ImpostorIsRefused<TypeParam>(this->address_, Impostor::Symlink, Errc::PermissionDenied, Errc::PermissionDenied));
}

// A connection request naming impostors (links, regular files, another uid's objects, names
// leading out of the listener's place), then a genuine connector behind it: the genuine one is
// the connection Accept returns, and nothing else is ever accepted.
TYPED_TEST_P(Security, ConnectionRequestNamingAnImpostorIsRefused) {
  IPCH_REQUIRE_CAP(NamedResource);
  const std::pair<RequestImpostor, const char*> kinds[] = {{RequestImpostor::Symlink, "symlinks"},
                                                           {RequestImpostor::RegularFile, "regular files"},
                                                           {RequestImpostor::OtherOwner, "another uid's objects"},
                                                           {RequestImpostor::Outside, "a path outside"}};
  // Kinds the mechanism cannot hold are left out, each with its reason; none left: UNSUPPORTED.
  std::vector<std::pair<std::string, std::string>> reasons;  // reason, the kinds it leaves out
  std::size_t applicable = 0;
  for (const auto& [kind, what] : kinds) {
    const std::string why = RequestImpostorDoesNotApply<TypeParam>(kind);
    if (why.empty()) {
      ++applicable;
      continue;
    }
    auto it = std::find_if(reasons.begin(), reasons.end(), [&](const auto& r) { return r.first == why; });
    if (it == reasons.end()) {
      reasons.emplace_back(why, what);
    } else {
      it->second += std::string(", ") + what;
    }
  }
  std::string left_out;
  for (const auto& [why, what] : reasons) left_out += (left_out.empty() ? "" : "; ") + what + ": " + why;
  if (applicable == 0) GTEST_SKIP() << "UNSUPPORTED: " << TypeParam::kName << ": " << left_out;
  IPCH_REQUIRE_HOOK(kHasRequestImpostors<TypeParam>, "PlantRequestImpostor");
  if constexpr (kHasRequestImpostors<TypeParam>) {
    if (!left_out.empty()) std::printf("[ipch] request impostors left out (%s)\n", left_out.c_str());
    auto l = TypeParam::Listen(this->address_);
    IPCH_ASSERT_OK(l);
    uint64_t seq = 0;
    for (const auto& [kind, what] : kinds) {
      SCOPED_TRACE(std::string("a request naming ") + what);
      if (!RequestImpostorDoesNotApply<TypeParam>(kind).empty()) continue;
      if (kind == RequestImpostor::OtherOwner && ::geteuid() != 0) continue;  // planting it needs root
      IPCH_ASSERT_OK(TypeParam::PlantRequestImpostor(*l, kind));
      // Requests are taken in order: once the genuine one is accepted, the hostile one was seen.
      auto c = TypeParam::Connect(l->address(), Settle());
      IPCH_ASSERT_OK(c);
      auto s = l->Accept(Settle());
      IPCH_ASSERT_OK(s);
      EXPECT_TRUE(RoundTrip(*c, *s, MakeMessage(seq++, 64, this->Seed())))
          << "Accept returned the connection the hostile request named";
      IPCH_EXPECT_ERRC(l->Accept(Deadline::Expired()), WouldBlock) << "a hostile request was accepted";
      TypeParam::RemoveRequestImpostors(*l);
    }
  }
}

TYPED_TEST_P(Security, HostileSegmentBytesAreCorrupt) {
  IPCH_REQUIRE_CAP(SharedMemory);
  IPCH_REQUIRE_HOOK(kHasSharedBytes<TypeParam>, "SharedBytes");
  if constexpr (kHasSharedBytes<TypeParam>) {
    IPCH_CONNECTED(p);
    EXPECT_TRUE(RoundTrip(p.client, p.server, MakeMessage(0, 100, this->Seed())));
    IPCH_ASSERT_OK(p.client.Send(MakeMessage(1, 100, this->Seed()), Settle()));
    // Every index, length and flag now holds 0xff..: out of range everywhere.
    auto bytes = TypeParam::SharedBytes(p.server);
    ASSERT_FALSE(bytes.empty());
    std::fill(bytes.begin(), bytes.end(), std::byte{0xff});
    Bytes got;
    IPCH_EXPECT_ERRC(p.server.Receive(got, Settle()), Corrupt);
    IPCH_EXPECT_ERRC(p.server.Receive(got, Settle()), Corrupt) << "a corrupt segment must stay failed";
    IPCH_EXPECT_ERRC(p.client.Send(MakeMessage(2, 100, this->Seed()), Settle()), Corrupt);
    IPCH_EXPECT_ERRC(p.client.Receive(got, Settle()), Corrupt);
  }
}

TYPED_TEST_P(Security, RandomSegmentScribblesNeverCrashOrHang) {
  IPCH_REQUIRE_CAP(SharedMemory);
  IPCH_REQUIRE_HOOK(kHasSharedBytes<TypeParam>, "SharedBytes");
  if constexpr (kHasSharedBytes<TypeParam>) {
    std::mt19937_64 rng(this->Seed());
    int corrupt_seen = 0;
    for (int round = 0; round < 40; ++round) {
      SCOPED_TRACE("round " + std::to_string(round));
      IPCH_CONNECTED(p);
      // Find the live words without knowing the layout: the bytes that one-byte messages
      // change are the counters, sequence words and record framing (little payload), those of
      // messages still in flight too: what the next receives read. Most scribbles go there.
      auto bytes = TypeParam::SharedBytes(p.server);
      const Bytes before(bytes.begin(), bytes.end());
      EXPECT_TRUE(RoundTrip(p.client, p.server, Bytes{std::byte{7}}));
      EXPECT_TRUE(RoundTrip(p.server, p.client, Bytes{std::byte{8}}));
      for (int i = 0; i < 3; ++i) {
        IPCH_ASSERT_OK(p.client.Send(Bytes{std::byte{9}}, Settle()));
        IPCH_ASSERT_OK(p.server.Send(Bytes{std::byte{10}}, Settle()));
      }
      std::vector<std::size_t> live;
      for (std::size_t i = 0; i < bytes.size(); ++i) {
        if (bytes[i] != before[i]) live.push_back(i);
      }
      ASSERT_FALSE(live.empty());
      // Longer messages in flight behind them both ways, one message already consumed.
      for (uint64_t i = 0; i < 3; ++i) {
        IPCH_ASSERT_OK(p.client.Send(MakeMessage(i, 200 + i * 900, this->Seed()), Settle()));
        IPCH_ASSERT_OK(p.server.Send(MakeMessage(i, 300 + i * 500, this->Seed()), Settle()));
      }
      Bytes got;
      IPCH_ASSERT_OK(p.server.Receive(got, Settle()));
      // A hostile peer writes whole words: a random 8-byte word over a live position (aligned),
      // or a random byte anywhere.
      const int n = 1 + static_cast<int>(rng() % 4);
      for (int k = 0; k < n; ++k) {
        if (rng() % 5 != 0) {
          const std::size_t at = live[rng() % live.size()] & ~std::size_t{7};
          const uint64_t word = rng();
          for (std::size_t b = 0; b < 8 && at + b < bytes.size(); ++b)
            bytes[at + b] = std::byte(word >> (8 * b) & 0xff);
        } else {
          bytes[rng() % bytes.size()] = std::byte(rng() & 0xff);
        }
      }
      // Whatever was hit, each operation ends in one of these, at once (expired deadlines).
      auto acceptable = [&](const Status& st, const char* op) {
        if (st.Is(Errc::Corrupt)) ++corrupt_seen;
        EXPECT_TRUE(st.ok() || st.Is(Errc::Corrupt) || st.Is(Errc::WouldBlock) || st.Is(Errc::PeerClosed))
            << op << ": " << st.error().ToString();
      };
      for (int k = 0; k < 4; ++k) {
        acceptable(p.server.Receive(got, Deadline::Expired()), "server receive");
        acceptable(p.client.Receive(got, Deadline::Expired()), "client receive");
        acceptable(p.client.Send(MakeMessage(9, 64, this->Seed()), Deadline::Expired()), "client send");
        acceptable(p.server.Send(MakeMessage(9, 64, this->Seed()), Deadline::Expired()), "server send");
      }
    }
    // Some scribbles must have been caught, or the checks above could not have failed.
    EXPECT_GT(corrupt_seen, 0) << "no scribble was ever detected as Corrupt (seed " << this->Seed() << ")";
  }
}

}  // namespace ipch::conformance
