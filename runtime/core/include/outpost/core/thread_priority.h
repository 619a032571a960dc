// Thread scheduling priority. outpostd runs its compute threads (model workers, the engine's
// pool) a few nice steps below its HTTP threads, so that on a saturated CPU the event loop
// (reading requests, refusing the excess, health probes) preempts inference instead of waiting
// for a time slice: a refusal under overload then takes microseconds, not a scheduler slice
// (bench/README.md, "2x overload"). On Linux the nice value belongs to each thread.
#pragma once

#include "outpost/core/status.h"

namespace outpost {

// The calling thread's nice value (-20..19).
int ThreadNice();

// Lowers the calling thread's priority by `steps` nice steps (clamped at 19). 0 does nothing;
// negative is an invariant violation (raising priority needs privileges we do not assume).
Status LowerThreadPriority(int steps);

}  // namespace outpost
