#include "outpost/serve/model_runner.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "outpost/core/log.h"
#include "outpost/core/metrics.h"
#include "outpost/core/thread_name.h"
#include "outpost/core/thread_priority.h"

namespace outpost::serve {
namespace {

double Micros(Clock::duration d) { return std::chrono::duration<double, std::micro>(d).count(); }

// Copies rows [row0, row0 + rows) of `src` (leading dim) into `dst` at row `dst_row`.
void CopyRows(const Tensor& src, int64_t row0, int64_t rows, Tensor* dst, int64_t dst_row) {
  const int64_t row_elems = src.rank() == 0 ? 1 : src.numel() / std::max<int64_t>(1, src.dim(0));
  if (src.dtype() == DataType::kString) {
    const std::string* s = src.data<std::string>() + row0 * row_elems;
    std::string* d = dst->data<std::string>() + dst_row * row_elems;
    std::copy(s, s + rows * row_elems, d);
    return;
  }
  const size_t es = DataTypeSize(src.dtype());
  std::memcpy(static_cast<char*>(dst->raw()) + dst_row * row_elems * es,
              static_cast<const char*>(src.raw()) + row0 * row_elems * es,
              static_cast<size_t>(rows * row_elems) * es);
}

}  // namespace

ModelRunner::ModelRunner(std::string name, std::string version,
                         std::shared_ptr<engine::Session> session, RunnerOptions options)
    : name_(std::move(name)),
      version_(std::move(version)),
      session_(std::move(session)),
      opts_(options) {
  // Batching needs a leading dynamic dim on every input and output: requests are stacked along
  // it and the outputs split back by the same counts.
  batchable_ = !session_->inputs().empty() && !session_->outputs().empty();
  for (const auto& v : session_->inputs())
    batchable_ = batchable_ && !v.dims.empty() && v.dims[0] < 0;
  // Outputs whose shape the model does not declare: learn it from two runs of zeros, with one and
  // with two rows (a dim that changes between them follows the batch and reads -1).
  output_dims_.clear();
  bool outputs_unknown = false;
  for (const auto& v : session_->outputs()) {
    output_dims_.push_back(v.dims);
    outputs_unknown = outputs_unknown || v.dims.empty();
  }
  if (outputs_unknown) {
    auto run_rows = [&](int64_t rows) -> Expected<std::vector<Tensor>> {
      std::vector<std::pair<std::string, Tensor>> probe;
      for (const auto& v : session_->inputs()) {
        std::vector<int64_t> dims;
        for (size_t d = 0; d < v.dims.size(); ++d)
          dims.push_back(v.dims[d] >= 0 ? v.dims[d] : d == 0 ? rows : 1);
        OP_ASSIGN_OR_RETURN(Shape shape, Shape::From(dims));
        OP_ASSIGN_OR_RETURN(Tensor t, Tensor::Allocate(v.dtype, shape));
        probe.push_back({v.name, std::move(t)});
      }
      return session_->Run(probe);
    };
    auto one = run_rows(1);
    auto two = batchable_ ? run_rows(2) : Expected<std::vector<Tensor>>(Internal("not batched"));
    for (size_t i = 0; i < output_dims_.size(); ++i) {
      if (!output_dims_[i].empty() || !one.ok()) continue;
      const Tensor& a = (*one)[i];
      std::vector<int64_t> dims(a.shape().begin(), a.shape().end());
      if (two.ok()) {
        const Tensor& b = (*two)[i];
        if (b.rank() == a.rank())
          for (int d = 0; d < a.rank(); ++d)
            if (a.dim(d) != b.dim(d)) dims[d] = -1;
      }
      output_dims_[i] = dims;
    }
  }
  for (const auto& dims : output_dims_) batchable_ = batchable_ && !dims.empty() && dims[0] < 0;
  if (!batchable_ && opts_.max_batch_size > 1)
    OP_LOG_WARN(
        "model '{}': its inputs and outputs do not all have a leading batch dimension; "
        "requests run one at a time (max batch size ignored)",
        name_);
  auto& m = MetricsRegistry::Global();
  const Labels l = {{"model", name_}, {"version", version_}};
  auto with = [&](const char* reason) {
    Labels r = l;
    r.push_back({"reason", reason});
    return r;
  };
  inline_runs_ =
      &m.GetCounter("outpost_serve_inline_runs_total",
                    "Requests run on the submitting thread (model idle, cheap batch)", l);
  rejected_full_ = &m.GetCounter("outpost_serve_rejected_total",
                                 "Requests refused at once, by reason", with("queue_full"));
  rejected_deadline_ = &m.GetCounter("outpost_serve_rejected_total",
                                     "Requests refused at once, by reason", with("deadline"));
  expired_ = &m.GetCounter("outpost_serve_expired_total",
                           "Accepted requests whose deadline passed while queued", l);
  cancelled_ = &m.GetCounter("outpost_serve_cancelled_total",
                             "Queued requests dropped because the client disconnected", l);
  depth_gauge_ =
      &m.GetGauge("outpost_serve_queue_depth", "Requests waiting in the model's queue", l);
  batch_hist_ = &m.GetHistogram("outpost_serve_batch_size", "Requests per executed batch",
                                {1, 2, 4, 8, 16, 32, 64, 128}, l);
  const int n = std::max(1, opts_.workers);
  for (int i = 0; i < n; ++i) workers_.emplace_back([this] { WorkerLoop(); });
}

ModelRunner::~ModelRunner() { Stop(); }

size_t ModelRunner::queue_depth() const { return depth_.load(std::memory_order_relaxed); }

int ModelRunner::RetryAfterSeconds() const {
  // Time to work off the current queue, rounded up to whole seconds (HTTP's unit).
  const double batch_us = std::max(1.0, average_compute_us());
  const double batches =
      std::ceil(static_cast<double>(queue_depth() + 1) / std::max(1, opts_.max_batch_size));
  return std::max(1, static_cast<int>(std::ceil(batches * batch_us / 1e6)));
}

Status ModelRunner::Admit() const {
  if (depth_.load(std::memory_order_relaxed) < opts_.queue_size) return Status::Ok();
  rejected_full_->Inc();
  return QueueFull();
}

Status ModelRunner::QueueFull() const {
  return ResourceExhausted("model '" + name_ + "' queue is full (" +
                           std::to_string(opts_.queue_size) + " requests)");
}

Status ModelRunner::Submit(InferCall&& call) {
  // `call` is moved from only once accepted: a refused call stays with the caller (who may
  // retry it elsewhere, e.g. on the version that replaced this one).
  int64_t rows = 1;
  if (batching()) {
    if (call.inputs.empty() || call.inputs.front().second.rank() == 0)
      return InvalidArgument("inputs need a leading batch dimension");
    rows = call.inputs.front().second.dim(0);
    for (const auto& [n, t] : call.inputs)
      if (t.rank() == 0 || t.dim(0) != rows)
        return InvalidArgument("input '" + n + "' has a batch dimension of " +
                               (t.rank() ? std::to_string(t.dim(0)) : std::string("none")) +
                               ", other inputs have " + std::to_string(rows));
  }
  const Clock::time_point now = Clock::now();
  std::unique_lock<std::mutex> lock(mu_);
  if (stopping_) return Unavailable("model '" + name_ + "' is shutting down");
  if (queue_.size() >= opts_.queue_size) {
    rejected_full_->Inc();
    return QueueFull();
  }
  if (call.deadline != Clock::time_point::max()) {
    // Expected finish: the batches ahead of this one, plus its own, at the recent batch time.
    const double batch_us = ewma_compute_us_.load(std::memory_order_relaxed);
    const int per_batch = batching() ? opts_.max_batch_size : 1;
    const double ahead = std::ceil(static_cast<double>(queue_.size() + 1) / per_batch) +
                         (running_ > 0 ? 1.0 : 0.0) / std::max(1, opts_.workers);
    const double expect_us = ahead * batch_us;
    const double left_us = Micros(call.deadline - now);
    if (left_us <= 0 || expect_us > left_us) {
      rejected_deadline_->Inc();
      char buf[160];
      std::snprintf(buf, sizeof buf,
                    "deadline cannot be met: %.0f us left, about %.0f us expected (%zu queued)",
                    std::max(0.0, left_us), expect_us, queue_.size());
      return DeadlineExceeded(buf);
    }
  }
  Pending p{std::move(call), now, rows};
  // Run-to-completion on the caller's thread when the model is idle and one batch is cheap:
  // no handoff to a worker and back. Queued calls keep going to the workers, in order.
  const double ewma_us = ewma_compute_us_.load(std::memory_order_relaxed);
  if (p.call.may_run_inline && queue_.empty() && running_ == 0 &&
      opts_.inline_max_compute.count() > 0 && ewma_us > 0 &&
      ewma_us < static_cast<double>(opts_.inline_max_compute.count()) &&
      (!batching() || opts_.max_queue_delay.count() == 0)) {
    ++running_;
    lock.unlock();
    inline_runs_->Inc();
    std::vector<Pending> one;
    one.push_back(std::move(p));
    RunBatch(one);
    lock.lock();
    --running_;
    const bool wake = stopping_ || !queue_.empty();  // calls queued meanwhile; Drain waits
    lock.unlock();
    if (wake) cv_.notify_all();
    return Status::Ok();
  }
  queue_.push_back(std::move(p));
  depth_.store(queue_.size(), std::memory_order_relaxed);
  depth_gauge_->Set(static_cast<double>(queue_.size()));
  lock.unlock();
  cv_.notify_one();
  return Status::Ok();
}

bool ModelRunner::Compatible(const Pending& a, const Pending& b) const {
  if (a.call.inputs.size() != b.call.inputs.size()) return false;
  for (size_t i = 0; i < a.call.inputs.size(); ++i) {
    const auto& [na, ta] = a.call.inputs[i];
    const auto& [nb, tb] = b.call.inputs[i];
    if (na != nb || ta.dtype() != tb.dtype() || ta.rank() != tb.rank()) return false;
    for (int d = 1; d < ta.rank(); ++d)
      if (ta.dim(d) != tb.dim(d)) return false;
  }
  return true;
}

void ModelRunner::WorkerLoop() {
  SetThreadName("op-run-" + name_);
  // It started at its creator's nice value (Linux); now the steps below it.
  if (Status st = LowerThreadPriority(opts_.worker_nice_steps); !st.ok())
    OP_LOG_WARN("model '{}' worker keeps its priority: {}", name_, st.message());
  std::vector<Pending> batch;
  for (;;) {
    batch.clear();
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping and drained
      batch.push_back(std::move(queue_.front()));
      queue_.pop_front();
      if (batching()) {
        // Gather compatible requests until the batch is full or the first one has waited
        // max_queue_delay. Order is kept: an incompatible request at the head ends the batch.
        const Clock::time_point flush = batch[0].enqueued + opts_.max_queue_delay;
        int64_t rows = batch[0].rows;
        for (;;) {
          while (!queue_.empty() && static_cast<int>(batch.size()) < opts_.max_batch_size &&
                 Compatible(batch[0], queue_.front())) {
            rows += queue_.front().rows;
            batch.push_back(std::move(queue_.front()));
            queue_.pop_front();
          }
          const bool full = static_cast<int>(batch.size()) >= opts_.max_batch_size;
          const bool blocked = !queue_.empty();  // head is incompatible
          if (full || blocked || stopping_ || Clock::now() >= flush) break;
          cv_.wait_until(lock, flush, [&] { return stopping_ || !queue_.empty(); });
          if (queue_.empty() && Clock::now() >= flush) break;
        }
        (void)rows;
      }
      ++running_;
      depth_.store(queue_.size(), std::memory_order_relaxed);
      depth_gauge_->Set(static_cast<double>(queue_.size()));
    }
    RunBatch(batch);
    {
      std::lock_guard<std::mutex> lock(mu_);
      --running_;
    }
    cv_.notify_all();  // Drain waits for running_ to reach zero
  }
}

void ModelRunner::Finish(Pending& p, Expected<std::vector<Tensor>> result, const CallTiming& t) {
  if (p.call.done) p.call.done(std::move(result), t);
}

void ModelRunner::RunBatch(std::vector<Pending>& batch) {
  const Clock::time_point start = Clock::now();
  // Drop what nobody waits for any more, and answer what can no longer make its deadline.
  std::vector<Pending> live;
  live.reserve(batch.size());
  for (Pending& p : batch) {
    CallTiming t{Micros(start - p.enqueued), 0, 0};
    if (p.call.cancelled && p.call.cancelled->load(std::memory_order_relaxed)) {
      cancelled_->Inc();
      Finish(p, Cancelled("client disconnected"), t);
    } else if (start >= p.call.deadline) {
      expired_->Inc();
      Finish(
          p,
          DeadlineExceeded("deadline passed after " +
                           std::to_string(static_cast<int64_t>(t.queue_us)) + " us in the queue"),
          t);
    } else {
      live.push_back(std::move(p));
    }
  }
  if (live.empty()) return;
  batch_hist_->Observe(static_cast<double>(live.size()));

  if (live.size() == 1) {
    const Clock::time_point t0 = Clock::now();
    auto out = session_->Run(live[0].call.inputs);
    const double us = Micros(Clock::now() - t0);
    const double prev = ewma_compute_us_.load(std::memory_order_relaxed);
    ewma_compute_us_.store(prev == 0 ? us : 0.8 * prev + 0.2 * us, std::memory_order_relaxed);
    Finish(live[0], std::move(out), CallTiming{Micros(start - live[0].enqueued), us, 1});
    return;
  }

  // Stack the inputs along dim 0.
  int64_t rows = 0;
  for (const Pending& p : live) rows += p.rows;
  std::vector<std::pair<std::string, Tensor>> stacked;
  Status st;
  for (size_t i = 0; i < live[0].call.inputs.size() && st.ok(); ++i) {
    const Tensor& first = live[0].call.inputs[i].second;
    Shape s = first.shape();
    s[0] = rows;
    auto t = Tensor::Allocate(first.dtype(), s);
    if (!t.ok()) {
      st = t.status();
      break;
    }
    int64_t at = 0;
    for (const Pending& p : live) {
      const Tensor& src = p.call.inputs[i].second;
      CopyRows(src, 0, p.rows, &*t, at);
      at += p.rows;
    }
    stacked.push_back({live[0].call.inputs[i].first, std::move(t).value()});
  }
  const Clock::time_point t0 = Clock::now();
  Expected<std::vector<Tensor>> out =
      st.ok() ? session_->Run(stacked) : Expected<std::vector<Tensor>>(st);
  const double us = Micros(Clock::now() - t0);
  const double prev = ewma_compute_us_.load(std::memory_order_relaxed);
  ewma_compute_us_.store(prev == 0 ? us : 0.8 * prev + 0.2 * us, std::memory_order_relaxed);
  const int n = static_cast<int>(live.size());
  if (!out.ok()) {
    for (Pending& p : live) Finish(p, out.status(), CallTiming{Micros(start - p.enqueued), us, n});
    return;
  }
  // Split every output back by each request's rows.
  for (const Tensor& o : *out) {
    if (o.rank() == 0 || o.dim(0) != rows) {
      Status bad = Internal("model '" + name_ + "' output " + o.Describe() +
                            " does not keep the batch dimension of its inputs (" +
                            std::to_string(rows) + " rows)");
      OP_LOG_ERROR("{}", bad.message());
      for (Pending& p : live) Finish(p, bad, CallTiming{Micros(start - p.enqueued), us, n});
      return;
    }
  }
  int64_t at = 0;
  for (Pending& p : live) {
    std::vector<Tensor> mine;
    mine.reserve(out->size());
    Status split;
    for (const Tensor& o : *out) {
      Shape s = o.shape();
      s[0] = p.rows;
      auto t = Tensor::Allocate(o.dtype(), s);
      if (!t.ok()) {
        split = t.status();
        break;
      }
      CopyRows(o, at, p.rows, &*t, 0);
      mine.push_back(std::move(t).value());
    }
    at += p.rows;
    CallTiming timing{Micros(start - p.enqueued), us, n};
    if (split.ok())
      Finish(p, std::move(mine), timing);
    else
      Finish(p, split, timing);
  }
}

void ModelRunner::Drain(std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  stopping_ = true;
  cv_.notify_all();
  const Clock::time_point until = Clock::now() + timeout;
  cv_.wait_until(lock, until, [&] { return queue_.empty() && running_ == 0; });
  std::deque<Pending> left;
  left.swap(queue_);
  depth_.store(0, std::memory_order_relaxed);
  depth_gauge_->Set(0);
  lock.unlock();
  cv_.notify_all();
  for (Pending& p : left)
    Finish(p, Unavailable("model '" + name_ + "' was unloaded before this request ran"),
           CallTiming{Micros(Clock::now() - p.enqueued), 0, 0});
  for (auto& w : workers_)
    if (w.joinable()) w.join();
  workers_.clear();
}

}  // namespace outpost::serve
