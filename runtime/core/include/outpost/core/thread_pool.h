// Fixed-size thread pool. ParallelFor may be called from many threads at once; the calling
// thread always takes part, so a pool of size 1 runs everything inline. Idle workers poll for
// new work for a short while (200 us) before sleeping, so back-to-back loops skip the wake-up.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <type_traits>
#include <vector>

namespace outpost {

class ThreadPool {
 public:
  // `threads` is the total parallelism including the caller; 0 means hardware concurrency.
  // The workers run `nice_steps` nice steps below the thread that creates the pool
  // (outpost/core/thread_priority.h); the caller's own share runs at the caller's priority.
  explicit ThreadPool(int threads, int nice_steps = 0);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return static_cast<int>(workers_.size()) + 1; }
  // Calls fn(begin, end) over [0, n) split into chunks of at least `grain` items. `fn` is
  // referenced, not copied: no allocation per call (kernels call this on every run).
  template <typename F>
  void ParallelFor(int64_t n, int64_t grain, F&& fn) {
    using Fn = std::remove_reference_t<F>;
    Run(n, grain, RangeFn{const_cast<void*>(static_cast<const void*>(&fn)),
                          [](void* f, int64_t b, int64_t e) { (*static_cast<Fn*>(f))(b, e); }});
  }

 private:
  struct RangeFn {  // a non-owning reference to a callable(int64_t, int64_t)
    void* obj;
    void (*call)(void*, int64_t, int64_t);
    void operator()(int64_t b, int64_t e) const { call(obj, b, e); }
  };
  struct Job;
  void Run(int64_t n, int64_t grain, RangeFn fn);
  void WorkerLoop(int nice_steps);
  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Job*> jobs_;          // guarded by mu_
  std::atomic<int> queued_{0};     // jobs_.size(), readable without the lock
  int sleepers_ = 0;               // workers blocked on cv_, guarded by mu_
  bool stop_ = false;
};

}  // namespace outpost
