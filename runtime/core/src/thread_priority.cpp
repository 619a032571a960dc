#include "outpost/core/thread_priority.h"

#include <sys/resource.h>

#include <algorithm>
#include <cassert>
#include <cerrno>
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

}  // namespace outpost
