// Ctrl-C, SIGTERM and SIGHUP in a program of the harness (a test binary running its cases, one
// case under the isolating supervisor, a benchmark): the run stops, its peers are killed,
// everything it made is removed, what was interrupted is said, and it exits with 128+signal.
//
// The handler does one async-signal-safe thing: it execs this binary again, in the same process
// (same pid, so its children are still its children and its objects still carry its pid),
// with the signal and the running case as arguments. That fresh image, with no test threads
// and no half-done state, does the cleaning (RunInterruptCleanupIfRequested).
#pragma once

#include <functional>
#include <optional>
#include <string>

namespace ipch {

// "SIGINT"; "signal N" for a number with no name.
std::string SignalName(int sig);

// Installs the handler for SIGINT, SIGTERM and SIGHUP where each is at its default
// disposition (an ignored SIGHUP, under nohup, stays ignored).
void InstallInterruptCleanup();
// What is running now (a case's full name, a benchmark's), named in the interruption's
// message; "" when nothing is.
void SetRunning(const std::string& what);
// In the image the handler started: kills the process's descendants, removes what it made,
// reports (then calls `after_report` with what was running, when something was), and returns
// the exit status (128+signal). Otherwise nullopt.
std::optional<int> RunInterruptCleanupIfRequested(int argc, char** argv,
                                                  const std::function<void(const std::string&)>& after_report = {});

}  // namespace ipch
