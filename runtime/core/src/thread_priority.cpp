#include "outpost/core/thread_priority.h"

#include <sched.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cassert>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>

namespace outpost {

// PRIO_PROCESS with `who` 0 is the calling thread on Linux (each thread is its own task).
int ThreadNice() {
  errno = 0;
  const int n = getpriority(PRIO_PROCESS, 0);
  return errno == 0 ? n : 0;
}

Status LowerThreadPriority(int steps) {
  assert(steps >= 0);
  if (steps <= 0) return Status::Ok();
  const int from = ThreadNice();
  const int to = std::min(19, from + steps);
  if (to == from) return Status::Ok();
  if (setpriority(PRIO_PROCESS, 0, to) != 0) {
    const int e = errno;
    return Unavailable("cannot lower the thread's priority from nice " + std::to_string(from) +
                       " to " + std::to_string(to) + ": " + std::strerror(e));
  }
  return Status::Ok();
}

namespace {

// struct sched_attr of <linux/sched/types.h> (SCHED_ATTR_SIZE_VER1); glibc 2.36 wraps neither
// sched_setattr nor sched_getattr.
struct SchedAttr {
  uint32_t size;
  uint32_t sched_policy;
  uint64_t sched_flags;
  int32_t sched_nice;
  uint32_t sched_priority;
  uint64_t sched_runtime;
  uint64_t sched_deadline;
  uint64_t sched_period;
  uint32_t sched_util_min;
  uint32_t sched_util_max;
};

bool GetAttr(int tid, SchedAttr* a) {
  std::memset(a, 0, sizeof *a);
  return syscall(SYS_sched_getattr, tid, a, sizeof *a, 0) == 0;
}

bool FairPolicy(uint32_t policy) {
  return policy == SCHED_OTHER || policy == SCHED_BATCH || policy == SCHED_IDLE;
}

}  // namespace

Status SetThreadSlice(int slice_us) {
  if (slice_us < kMinThreadSliceUs || slice_us > kMaxThreadSliceUs) {
    return InvalidArgument("time slice of " + std::to_string(slice_us) + " µs outside " +
                           std::to_string(kMinThreadSliceUs) + ".." +
                           std::to_string(kMaxThreadSliceUs));
  }
  SchedAttr a;
  if (!GetAttr(0, &a)) {
    const int e = errno;
    return Unsupported(std::string("sched_getattr: ") + std::strerror(e));
  }
  if (!FairPolicy(a.sched_policy)) {
    return Unsupported("the thread runs under a real-time policy (" +
                       std::to_string(a.sched_policy) + "), which has no time slice to set");
  }
  // The policy and nice value go back as they were read: sched_setattr sets all of them.
  a.size = sizeof a;
  a.sched_flags = 0;
  a.sched_runtime = static_cast<uint64_t>(slice_us) * 1000;
  if (syscall(SYS_sched_setattr, 0, &a, 0) != 0) {
    const int e = errno;
    return Unsupported(std::string("sched_setattr: ") + std::strerror(e));
  }
  if (ThreadSliceUs() != slice_us) {
    return Unsupported("this kernel has no per-thread time slices (Linux 6.12 and later have)");
  }
  return Status::Ok();
}

int ThreadSliceUs(int tid) {
  SchedAttr a;
  if (!GetAttr(tid, &a) || !FairPolicy(a.sched_policy)) return 0;
  return static_cast<int>(a.sched_runtime / 1000);
}

}  // namespace outpost
