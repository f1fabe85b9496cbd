// The conformance battery: typed suites, one per group, run against any ipch::Transport.
// Instantiate for your adapter with IPCH_INSTANTIATE_CONFORMANCE (see docs/new-transport.md).
// One header per group (fixture.h and hooks.h hold what they share). Adding a group is one new
// file (its fixture, cases and REGISTER_TYPED_TEST_SUITE_P), its include here and its name in
// IPCH_CONFORMANCE_GROUPS.
#pragma once

#include <gtest/gtest.h>

#include "basic.h"
#include "concurrency.h"
#include "deadlines.h"
#include "describe.h"
#include "fault.h"
#include "fixture.h"
#include "lifecycle.h"
#include "ordering.h"
#include "peer_death.h"
#include "property.h"
#include "security.h"

// Every group, in instantiation order (the order suites run and the verdict table reads):
// X(arg, Group) for each.
#define IPCH_CONFORMANCE_GROUPS(X, arg) \
  X(arg, Basic)                         \
  X(arg, Ordering)                      \
  X(arg, Deadlines)                     \
  X(arg, Lifecycle)                     \
  X(arg, PeerDeath)                     \
  X(arg, Security)                      \
  X(arg, Concurrency)                   \
  X(arg, Fault)                         \
  X(arg, Property)

// One group over Prefix##IpchTypes; only for IPCH_INSTANTIATE_CONFORMANCE.
#define IPCH_CONFORMANCE_INSTANTIATE_GROUP(Prefix, Group) \
  INSTANTIATE_TYPED_TEST_SUITE_P(Prefix, Group, Prefix##IpchTypes, ::ipch::conformance::NameOf);

// Runs the whole battery over the listed adapter types. Test names read
// Prefix/Group/<kName>.Case, e.g. Conformance/Basic/tcp.RoundTripMaxSize.
// Expands inside namespace ipch::conformance (gtest requires it): qualify the adapter types.
#define IPCH_INSTANTIATE_CONFORMANCE(Prefix, ...)                     \
  namespace ipch::conformance {                                       \
  using Prefix##IpchTypes = ::testing::Types<__VA_ARGS__>;            \
  IPCH_CONFORMANCE_GROUPS(IPCH_CONFORMANCE_INSTANTIATE_GROUP, Prefix) \
  [[maybe_unused]] static const bool Prefix##IpchDescribed =          \
      ::ipch::conformance::RegisterAdapters<__VA_ARGS__>(#Prefix);    \
  } /* namespace ipch::conformance */                                 \
  static_assert(true, "require a semicolon")
