// The isolating supervisor: runs every selected case of this binary in its own child process
// (see docs/architecture.md, "Crash isolation"), so a crash or hang is one failed case.
#pragma once

#include "invocation.h"

namespace ipch::testing {

// Lists the cases, runs them `options.jobs` at a time, prints progress, failures, the summary
// and the verdict matrix, writes the XML report. Exit status: 0 iff no case failed; 128+N
// when stopped by signal N.
int RunIsolated(const IsolateOptions& options, const Invocation& invocation);

}  // namespace ipch::testing
