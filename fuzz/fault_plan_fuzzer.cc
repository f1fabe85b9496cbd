// Fuzzes the fault-plan text parser (fault::ParsePlan), which reads IPCH_FAULT_PLAN from the
// environment of every process the fault library loads into, and the plan lines users type.
// Invariants: a refusal names what it refused (a non-empty error) and leaves the output alone;
// an accepted plan holds at most kMaxPlanRules rules, each with operations; its canonical text
// (FormatPlan) parses back to exactly the same plan, and formats to the same text again.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "ipch/fault.h"

namespace {
void Require(bool ok) {
  if (!ok) std::abort();
}

bool SameRule(const ipch::fault::Rule& a, const ipch::fault::Rule& b) {
  return a.ops == b.ops && a.kind == b.kind && a.err == b.err && a.every_nth == b.every_nth &&
         a.probability == b.probability && a.max_fires == b.max_fires && a.delay_us == b.delay_us &&
         a.any_errno == b.any_errno && a.lookup_only == b.lookup_only && a.thread == b.thread;
}

bool SamePlan(const ipch::fault::Plan& a, const ipch::fault::Plan& b) {
  if (a.seed != b.seed || a.rules.size() != b.rules.size()) return false;
  for (std::size_t i = 0; i < a.rules.size(); ++i) {
    if (!SameRule(a.rules[i], b.rules[i])) return false;
  }
  return true;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ipch::fault;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  Plan plan;
  plan.seed = 77;  // a refusal must not touch it
  std::string error;
  if (!ParsePlan(text, &plan, &error)) {
    Require(!error.empty());
    Require(plan.seed == 77 && plan.rules.empty());
    return 0;
  }
  Require(plan.rules.size() <= kMaxPlanRules);
  for (const Rule& r : plan.rules) Require(r.ops != 0 && (r.ops & ~kAllOps) == 0);
  const std::string canonical = FormatPlan(plan);
  Plan again;
  std::string why;
  Require(ParsePlan(canonical, &again, &why));
  Require(SamePlan(plan, again));
  Require(FormatPlan(again) == canonical);
  return 0;
}
