// ModelRunner: one loaded model version behind a bounded request queue, with per-request
// deadlines and dynamic batching along the batch dimension. The HTTP layer submits calls and gets
// its answer through the call's callback, on a worker thread.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "outpost/core/status.h"
#include "outpost/core/tensor.h"
#include "outpost/engine/session.h"

namespace outpost {
class Counter;
class Gauge;
class Histogram;
}  // namespace outpost

namespace outpost::serve {

using Clock = std::chrono::steady_clock;

struct RunnerOptions {
  int max_batch_size = 1;                        // 1: every request runs alone
  std::chrono::microseconds max_queue_delay{0};  // how long a batch waits to fill
  size_t queue_size = 64;                        // queued requests (not counting running ones)
  int workers = 1;                               // threads taking batches off the queue
  int worker_nice_steps = 0;  // the workers run this many nice steps below the creating thread
  std::chrono::microseconds default_timeout{0};  // deadline of requests that set none; 0: none
  // Run-to-completion: when the model is idle (nothing queued or running), batching waits for
  // nothing (max_queue_delay 0 or batching off) and its recent batches took less than this, a
  // call runs on the submitting thread instead of being handed to a worker and back: two thread
  // handoffs saved on a request of tens of microseconds. 0 turns it off.
  std::chrono::microseconds inline_max_compute{200};
};

struct CallTiming {
  double queue_us = 0;    // submit to the start of its batch
  double compute_us = 0;  // its batch's Session::Run
  int batch_size = 0;     // requests in its batch
};

struct InferCall {
  std::vector<std::pair<std::string, Tensor>> inputs;  // host tensors
  Clock::time_point deadline = Clock::time_point::max();
  // False when the submitting thread has other work waiting (an I/O thread with more ready
  // connections): then the call is never run inline (RunnerOptions::inline_max_compute), so that
  // load beyond one thread's worth queues where it can be batched and refused.
  bool may_run_inline = true;
  // Set by the HTTP layer when the client goes away; the call is then dropped unanswered.
  std::shared_ptr<std::atomic<bool>> cancelled;
  // Called exactly once when Submit accepted the call, from a worker thread, or from the
  // submitting thread before Submit returns when the call ran inline (see
  // RunnerOptions::inline_max_compute): with the outputs, or with kDeadlineExceeded (expired
  // while queued), kCancelled (client gone) or kUnavailable (drained). A call Submit refuses is
  // never passed to `done`.
  std::function<void(Expected<std::vector<Tensor>>, const CallTiming&)> done;
};

class ModelRunner {
 public:
  ModelRunner(std::string name, std::string version, std::shared_ptr<engine::Session> session,
              RunnerOptions options);
  ~ModelRunner();  // Stop()
  ModelRunner(const ModelRunner&) = delete;
  ModelRunner& operator=(const ModelRunner&) = delete;

  // Queues the call (or runs it inline), or refuses it at once: kResourceExhausted when the
  // queue is full, kDeadlineExceeded when the expected wait plus compute time overruns its
  // deadline, kInvalidArgument when its inputs cannot be batched with the model's inputs,
  // kUnavailable once draining. `call` is moved from only when accepted; a refused call is left
  // intact with the caller.
  Status Submit(InferCall&& call);

  // Stops taking calls, finishes the queued ones (up to `timeout`; the rest are answered
  // kUnavailable) and joins the workers.
  void Drain(std::chrono::milliseconds timeout);
  void Stop() { Drain(std::chrono::milliseconds(0)); }

  const std::string& name() const { return name_; }
  const RunnerOptions& options() const { return opts_; }
  const std::string& version() const { return version_; }
  const engine::Session& session() const { return *session_; }
  std::shared_ptr<engine::Session> shared_session() const { return session_; }
  bool batching() const { return batchable_ && opts_.max_batch_size > 1; }
  // Output dims as declared, or as observed at load when the model declares none (-1: follows
  // the batch).
  const std::vector<std::vector<int64_t>>& output_dims() const { return output_dims_; }
  size_t queue_depth() const;
  // kResourceExhausted (counted like Submit's) when the queue is full, so that Submit would
  // refuse. Lock-free: the HTTP layer asks before decoding a request body, so that the excess
  // under overload is refused for the price of an HTTP parse.
  Status Admit() const;
  // Moving average of one batch's compute time, in microseconds (0 before the first run).
  double average_compute_us() const { return ewma_compute_us_.load(std::memory_order_relaxed); }
  // Suggested Retry-After (whole seconds, at least 1) when refusing for overload.
  int RetryAfterSeconds() const;

 private:
  struct Pending {
    InferCall call;
    Clock::time_point enqueued;
    int64_t rows = 1;  // batch-dim extent of this call's inputs
  };
  void WorkerLoop();
  Status QueueFull() const;
  bool Compatible(const Pending& a, const Pending& b) const;
  void RunBatch(std::vector<Pending>& batch);
  void Finish(Pending& p, Expected<std::vector<Tensor>> result, const CallTiming& t);

  const std::string name_, version_;
  const std::shared_ptr<engine::Session> session_;
  const RunnerOptions opts_;
  bool batchable_ = false;  // every input and output has a leading dynamic batch dim
  std::vector<std::vector<int64_t>> output_dims_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Pending> queue_;
  bool stopping_ = false;
  int running_ = 0;               // batches being computed (by workers or inline)
  std::atomic<size_t> depth_{0};  // queue_.size(), readable without mu_
  std::vector<std::thread> workers_;
  std::atomic<double> ewma_compute_us_{0};

  Counter* inline_runs_;
  Counter* rejected_full_;
  Counter* rejected_deadline_;
  Counter* expired_;
  Counter* cancelled_;
  Gauge* depth_gauge_;
  Histogram* batch_hist_;
};

}  // namespace outpost::serve
