#include "outpost/core/thread_pool.h"

#include <algorithm>
#include <atomic>

namespace outpost {

struct ThreadPool::Job {
  const std::function<void(int64_t, int64_t)>* fn;
  int64_t n;
  int64_t chunk;
  std::atomic<int64_t> next{0};
  std::atomic<int> active{0};  // workers currently inside this job
  std::mutex done_mu;
  std::condition_variable done_cv;

  // Runs chunks until none are left.
  void Drain() {
    for (;;) {
      int64_t b = next.fetch_add(chunk);
      if (b >= n) return;
      (*fn)(b, std::min(n, b + chunk));
    }
  }
};

ThreadPool::ThreadPool(int threads) {
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  for (int i = 1; i < threads; ++i) workers_.emplace_back([this] { WorkerLoop(); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::WorkerLoop() {
  for (;;) {
    Job* job;
    {
      std::unique_lock<std::mutex> lk(mu_);
      cv_.wait(lk, [this] { return stop_ || !jobs_.empty(); });
      if (stop_ && jobs_.empty()) return;
      job = jobs_.front();
      if (job->next.load() >= job->n) {
        jobs_.pop_front();
        continue;
      }
      job->active.fetch_add(1);
    }
    job->Drain();
    {
      // Notify under the lock: once the caller sees active == 0 it destroys the job.
      std::lock_guard<std::mutex> lk(job->done_mu);
      job->active.fetch_sub(1);
      job->done_cv.notify_all();
    }
  }
}

void ThreadPool::ParallelFor(int64_t n, int64_t grain,
                             const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  grain = std::max<int64_t>(1, grain);
  int par = size();
  if (par == 1 || n <= grain) {
    fn(0, n);
    return;
  }
  int64_t chunks = std::min<int64_t>(par * 4, (n + grain - 1) / grain);
  Job job;
  job.fn = &fn;
  job.n = n;
  job.chunk = (n + chunks - 1) / chunks;
  {
    std::lock_guard<std::mutex> lk(mu_);
    jobs_.push_back(&job);
  }
  cv_.notify_all();
  job.Drain();
  {
    std::lock_guard<std::mutex> lk(mu_);
    auto it = std::find(jobs_.begin(), jobs_.end(), &job);
    if (it != jobs_.end()) jobs_.erase(it);
  }
  std::unique_lock<std::mutex> lk(job.done_mu);
  job.done_cv.wait(lk, [&] { return job.active.load() == 0; });
}

}  // namespace outpost
