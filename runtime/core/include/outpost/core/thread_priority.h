// Thread scheduling priority. outpostd runs its compute threads (model workers, the engine's
// pool) a few nice steps below its HTTP threads, and gives the HTTP threads a short time slice,
// so that on a saturated CPU the event loop (reading requests, refusing the excess, health
// probes) preempts inference as soon as a request arrives instead of waiting for the running
// compute thread's slice to end: a refusal under overload then takes microseconds, not a
// scheduler slice (bench/README.md, "2x overload"). On Linux both belong to each thread.
#pragma once

#include "outpost/core/status.h"

namespace outpost {

// The calling thread's nice value (-20..19).
int ThreadNice();

// Lowers the calling thread's priority by `steps` nice steps (clamped at 19). 0 does nothing;
// negative is an invariant violation (raising priority needs privileges we do not assume).
Status LowerThreadPriority(int steps);

// The range of a per-thread time slice that Linux accepts (sched_setattr's sched_runtime for a
// SCHED_OTHER thread): 100 µs .. 100 ms.
inline constexpr int kMinThreadSliceUs = 100;
inline constexpr int kMaxThreadSliceUs = 100'000;

// Asks the kernel to run the calling thread in time slices of `slice_us` µs (Linux 6.12 and later,
// EEVDF's custom slice; no privileges needed). The default slice is 0.7 ms times 1 + log2(CPUs).
// A waking thread whose slice is shorter than the running thread's may preempt it at once (the
// scheduler's PREEMPT_SHORT), which a thread with the default slice may not until the running
// one has used its slice up. The nice value and policy are kept.
// kInvalidArgument: `slice_us` outside [kMinThreadSliceUs, kMaxThreadSliceUs].
// kUnsupported: the kernel has no per-thread slices (before 6.12: it accepts the call and ignores
// it, which the read-back shows), or the thread runs under a real-time policy.
Status SetThreadSlice(int slice_us);

// The time slice in µs of thread `tid` (0: the calling thread) as the kernel reports it (Linux
// 6.12 and later: the default or the custom one); 0 when the kernel reports none, or for a thread
// that is gone or runs under a real-time policy.
int ThreadSliceUs(int tid = 0);

}  // namespace outpost
