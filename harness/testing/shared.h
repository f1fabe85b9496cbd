// What a direct run prints that the isolating supervisor prints too, for a case whose process
// died before it could.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace ipch::testing {

// The case's seed: IPCH_SEED (BaseSeed) mixed with its full name.
uint64_t TestSeed(const std::string& full_name);
// This program's path (/proc/self/exe).
std::string SelfExe();

// "[  REPLAY  ] IPCH_SEED=<base> <this binary> --gtest_filter='<name>'  (test seed <s>)\n"
std::string ReplayLine(const std::string& full_name);
// "ipch: removed X, left by a test process that died" on stderr, one line per object.
void PrintSweep(const std::vector<std::string>& removed);
// The running (or just finished) case's census, as SetCaseCensus left it ("" if none).
const std::string& CaseCensus();

}  // namespace ipch::testing
