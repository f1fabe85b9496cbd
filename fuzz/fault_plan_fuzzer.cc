// Fuzzes the fault-plan text parser (fault::ParsePlan), which reads IPCH_FAULT_PLAN from the
// environment of every process the fault library loads into, and the plan lines users type.
// Invariants: a refusal names what it refused (a non-empty error) and leaves the output alone;
// an accepted plan holds at most kMaxPlanRules rules, each with operations; its canonical text
// (FormatPlan) parses back to exactly the same plan, and formats to the same text again.
#include <cstdint>
#include <string>
#include <string_view>

#include "grammar_check.h"
#include "ipch/fault.h"

namespace {
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
  Plan untouched;
  untouched.seed = 77;
  ipch::fuzzing::CheckGrammar(
      std::string_view(reinterpret_cast<const char*>(data), size), untouched, ParsePlan, FormatPlan, SamePlan,
      [](const Plan& plan) {
        if (plan.rules.size() > kMaxPlanRules) return false;
        for (const Rule& r : plan.rules) {
          if (r.ops == 0 || (r.ops & ~kAllOps) != 0) return false;
        }
        return true;
      });
  return 0;
}
