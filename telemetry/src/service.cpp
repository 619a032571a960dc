#include <spdlog/details/null_mutex.h>
#include <spdlog/sinks/base_sink.h>

#include <algorithm>
#include <array>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <thread>

#include "outpost/config/device_config.h"
#include "outpost/core/log.h"
#include "outpost/core/metrics.h"
#include "outpost/core/thread_name.h"
#include "outpost/telemetry/telemetry.h"
#include "payload.h"

namespace outpost::telemetry {

namespace {

FullPolicy PolicyFrom(const std::string& s) {
  if (s == "reject") return FullPolicy::kReject;
  if (s == "block") return FullPolicy::kBlock;
  return FullPolicy::kDropOldest;
}

}  // namespace

Expected<QueueOptions> QueueOptionsFromConfig(const config::TelemetryConfig& cfg) {
  QueueOptions q;
  q.dir = cfg.buffer_dir.empty() ? kDefaultBufferDir : cfg.buffer_dir;
  OP_ASSIGN_OR_RETURN(auto sync, ParseSyncPolicy(cfg.sync));
  q.sync = sync.first;
  if (sync.first == SyncPolicy::kInterval) q.sync_interval_ms = sync.second;
  struct Class {
    Stream stream;
    uint64_t max_bytes;
    const std::string& policy;
    int64_t ttl_s;
  };
  const Class classes[] = {
      {Stream::kMetrics, cfg.max_bytes_metrics, cfg.full_policy_metrics, cfg.ttl_s_metrics},
      {Stream::kEvents, cfg.max_bytes_events, cfg.full_policy_events, cfg.ttl_s_events},
      {Stream::kLogs, cfg.max_bytes_logs, cfg.full_policy_logs, cfg.ttl_s_logs}};
  for (const Class& c : classes) {
    if (c.max_bytes < 64 * 1024) return InvalidArgument("telemetry.max_bytes must be >= 64 KiB");
    StreamLimits& l = q.limits[static_cast<int>(c.stream)];
    l.max_bytes = c.max_bytes;
    l.full_policy = PolicyFrom(c.policy);
    l.block_timeout_ms = cfg.block_timeout_ms;
    l.ttl_ms = c.ttl_s * 1000;
  }
  q.live_share_percent = cfg.live_share_percent;
  return q;
}

namespace {

// Records posted by threads that must not wait (EmitAsync, LogAsync, the log sink), appended by
// the service thread. Shared with the log sink, which may outlive the service.
struct Inbox {
  std::mutex mu;
  std::condition_variable cv;  // wakes the service thread: a first record, or stop
  bool stop = false;           // the service thread exits
  bool closed = false;         // Stop() ran: posts are dropped
  size_t capacity = 4096;
  std::deque<std::pair<Stream, std::string>> items;
  std::array<uint64_t, kNumStreams> dropped{};  // not yet reported as gap markers

  bool Post(Stream s, std::string payload) {
    std::lock_guard<std::mutex> lk(mu);
    if (closed) {  // no gap marker can go out any more: counted only
      MetricsRegistry::Global()
          .GetCounter("outpost_telemetry_records_dropped_total",
                      "Telemetry records lost before delivery, by stream and reason",
                      {{"stream", StreamName(s)}, {"reason", "after_stop"}})
          .Inc();
      return false;
    }
    if (items.size() >= capacity) {
      ++dropped[static_cast<int>(s)];
      return false;
    }
    items.emplace_back(s, std::move(payload));
    if (items.size() == 1) cv.notify_one();
    return true;
  }
};

// Appends what was posted, in order, one AppendBatch per run of one stream; reports what the
// inbox had to drop. Failed appends are counted by the queue itself (rejected, block_timeout,
// io_error) and not logged here: a log line would come back through the sink.
void DrainInbox(Inbox& in, DiskQueue& q) {
  std::deque<std::pair<Stream, std::string>> items;
  std::array<uint64_t, kNumStreams> dropped{};
  {
    std::lock_guard<std::mutex> lk(in.mu);
    items.swap(in.items);
    dropped.swap(in.dropped);
  }
  for (int s = 0; s < kNumStreams; ++s)
    q.ReportLoss(static_cast<Stream>(s), "buffer_full", dropped[s]);
  std::vector<std::string_view> run;
  for (size_t i = 0; i < items.size();) {
    const Stream s = items[i].first;
    run.clear();
    for (; i < items.size() && items[i].first == s && run.size() < 256; ++i)
      run.push_back(items[i].second);
    (void)q.AppendBatch(s, run);
  }
}

// The spdlog sink: posts records at or above its level into the inbox. Thread-safe without a
// sink mutex (the inbox has its own), so base_sink gets a null mutex.
class LogSink : public spdlog::sinks::base_sink<spdlog::details::null_mutex> {
 public:
  explicit LogSink(std::shared_ptr<Inbox> inbox) : inbox_(std::move(inbox)) {}

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    // The config's level names (spdlog says "warning").
    static constexpr std::string_view kNames[] = {"trace", "debug",    "info", "warn",
                                                  "error", "critical", "off"};
    const auto i = static_cast<size_t>(msg.level);
    const std::string_view level = i < std::size(kNames) ? kNames[i] : "unknown";
    const std::string_view text(msg.payload.data(), std::min<size_t>(msg.payload.size(), 4096));
    const int64_t ts =
        std::chrono::duration_cast<std::chrono::milliseconds>(msg.time.time_since_epoch()).count();
    inbox_->Post(Stream::kLogs, LogJson(level, text, ts));
  }
  void flush_() override {}

 private:
  std::shared_ptr<Inbox> inbox_;
};

}  // namespace

struct TelemetryService::Impl {
  config::TelemetryConfig cfg;
  ServiceOptions opts;
  std::unique_ptr<DiskQueue> queue;
  std::unique_ptr<Publisher> publisher;
  std::unique_ptr<InputStats> input_stats;  // null when disabled
  std::shared_ptr<Inbox> inbox = std::make_shared<Inbox>();
  std::shared_ptr<LogSink> sink;
  std::thread thread;
  bool started = false;  // Start() and Stop() are called from one thread

  struct Agg {
    std::string type;
    std::vector<std::pair<std::string, std::string>> labels;
    uint64_t count = 0;
  };
  std::mutex agg_mu;  // aggs, agg_start_ms, stats_start_ms
  std::map<std::string, Agg, std::less<>> aggs;
  int64_t agg_start_ms = 0;
  int64_t stats_start_ms = 0;

  Status AppendEvents(const std::vector<std::string>& payloads) {
    if (payloads.empty()) return Status::Ok();
    std::vector<std::string_view> views(payloads.begin(), payloads.end());
    return queue->AppendBatch(Stream::kEvents, views).status();
  }

  Status FlushAggregates() {
    std::map<std::string, Agg, std::less<>> taken;
    int64_t start = 0;
    const int64_t end = NowMs();
    {
      std::lock_guard<std::mutex> lk(agg_mu);
      taken.swap(aggs);
      start = agg_start_ms;
      agg_start_ms = end;
    }
    std::vector<std::string> payloads;
    for (auto& [key, a] : taken) {
      nlohmann::json fields = nlohmann::json::object();
      for (const auto& [k, v] : a.labels) fields[k] = v;
      fields["count"] = a.count;
      fields["interval_start"] = start;
      fields["interval_end"] = end;
      payloads.push_back(EventJson(a.type, fields, end));
    }
    return AppendEvents(payloads);
  }

  Status FlushInputStats() {
    if (!input_stats) return Status::Ok();
    const int64_t end = NowMs();
    int64_t start = 0;
    {
      std::lock_guard<std::mutex> lk(agg_mu);
      start = stats_start_ms;
      stats_start_ms = end;
    }
    std::vector<std::string> payloads;
    for (auto& r : input_stats->Flush(start, end))
      payloads.push_back(EventJson("input_stats", r, end));
    return AppendEvents(payloads);
  }

  Expected<uint64_t> SnapshotMetrics() {
    OP_ASSIGN_OR_RETURN(std::string j,
                        MetricsSnapshotJson(MetricsRegistry::Global().RenderPrometheus(), NowMs()));
    return queue->Append(Stream::kMetrics, j);
  }

  // The service thread. Its failures are counted by the queue; they are not logged, since a log
  // line would come back here through the sink.
  void Loop() {
    using std::chrono::milliseconds;
    using SteadyClock = std::chrono::steady_clock;
    const auto t0 = SteadyClock::now();
    auto next_metrics = t0 + milliseconds(cfg.metrics_interval_ms);
    auto next_agg = t0 + milliseconds(cfg.aggregate_interval_ms);
    auto next_stats = t0 + std::chrono::seconds(cfg.input_stats.window_s);
    while (true) {
      {
        auto wake = std::min(next_metrics, next_agg);
        if (input_stats) wake = std::min(wake, next_stats);
        std::unique_lock<std::mutex> lk(inbox->mu);
        inbox->cv.wait_until(lk, wake, [&] { return inbox->stop || !inbox->items.empty(); });
        if (inbox->stop) return;
      }
      DrainInbox(*inbox, *queue);
      const auto now = SteadyClock::now();
      if (now >= next_metrics) {
        next_metrics = now + milliseconds(cfg.metrics_interval_ms);
        (void)SnapshotMetrics();
      }
      if (now >= next_agg) {
        next_agg = now + milliseconds(cfg.aggregate_interval_ms);
        (void)FlushAggregates();
      }
      if (input_stats && now >= next_stats) {
        next_stats = now + std::chrono::seconds(cfg.input_stats.window_s);
        (void)FlushInputStats();
      }
    }
  }

  bool AllAcked() const {
    for (int i = 0; i < kNumStreams; ++i) {
      const StreamStats st = queue->Stats(static_cast<Stream>(i));
      if (st.acked_seq + 1 < st.next_seq) return false;
    }
    return true;
  }
};

TelemetryService::TelemetryService(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Expected<std::unique_ptr<TelemetryService>> TelemetryService::Create(
    const config::TelemetryConfig& cfg, ServiceOptions options) {
  OP_ASSIGN_OR_RETURN(QueueOptions qo, QueueOptionsFromConfig(cfg));
  OP_ASSIGN_OR_RETURN(MqttOptions mo, MqttOptionsFromConfig(cfg));
  if (options.tweak_queue) options.tweak_queue(qo);
  if (options.tweak_mqtt) options.tweak_mqtt(mo);
  auto impl = std::make_unique<Impl>();
  impl->cfg = cfg;
  impl->opts = std::move(options);
  impl->inbox->capacity = std::max<size_t>(1, impl->opts.inbox_records);
  OP_ASSIGN_OR_RETURN(impl->queue, DiskQueue::Open(std::move(qo)));
  impl->publisher = std::make_unique<Publisher>(impl->queue.get(), std::move(mo));
  if (cfg.input_stats.enabled) {
    InputStatsOptions io;
    io.histogram_bins = cfg.input_stats.histogram_bins;
    io.histogram_min = cfg.input_stats.histogram_min;
    io.histogram_max = cfg.input_stats.histogram_max;
    io.max_features = cfg.input_stats.max_features;
    io.sample_every = cfg.input_stats.sample_every;
    impl->input_stats = std::make_unique<InputStats>(io);
  }
  impl->sink = std::make_shared<LogSink>(impl->inbox);
  impl->sink->set_level(spdlog::level::from_str(cfg.log_level));
  impl->agg_start_ms = impl->stats_start_ms = NowMs();
  return std::unique_ptr<TelemetryService>(new TelemetryService(std::move(impl)));
}

TelemetryService::~TelemetryService() {
  Stop();
  // Never started (or already stopped): the sink may outlive us; make sure it stays inert.
  std::lock_guard<std::mutex> lk(impl_->inbox->mu);
  impl_->inbox->closed = true;
}

Status TelemetryService::Start() {
  if (impl_->started) return Status::Ok();
  OP_RETURN_IF_ERROR(impl_->publisher->Start());
  {
    std::lock_guard<std::mutex> lk(impl_->inbox->mu);
    impl_->inbox->stop = false;
  }
  impl_->started = true;
  impl_->thread = std::thread([this] {
    SetThreadName("op-telemetry");
    impl_->Loop();
  });
  return Status::Ok();
}

void TelemetryService::Stop() {
  if (!impl_->started) return;
  {
    std::lock_guard<std::mutex> lk(impl_->inbox->mu);
    impl_->inbox->stop = true;
  }
  impl_->inbox->cv.notify_all();
  if (impl_->thread.joinable()) impl_->thread.join();
  // Last words: what was posted or counted so far, and one more snapshot. Posts from now on
  // are dropped (and counted).
  (void)impl_->FlushAggregates();
  (void)impl_->FlushInputStats();
  DrainInbox(*impl_->inbox, *impl_->queue);
  {
    std::lock_guard<std::mutex> lk(impl_->inbox->mu);
    impl_->inbox->closed = true;
  }
  DrainInbox(*impl_->inbox, *impl_->queue);  // what came in meanwhile, and the drop count
  (void)impl_->SnapshotMetrics();
  const auto until = std::chrono::steady_clock::now() +
                     std::chrono::milliseconds(std::max(0, impl_->opts.stop_drain_ms));
  while (impl_->publisher->stats().connected && !impl_->AllAcked() &&
         std::chrono::steady_clock::now() < until)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  impl_->publisher->Stop();
  (void)impl_->queue->Sync();
  impl_->started = false;
}

Expected<uint64_t> TelemetryService::Emit(std::string_view type, nlohmann::json fields) {
  return impl_->queue->Append(Stream::kEvents, EventJson(type, fields, NowMs()));
}

Expected<uint64_t> TelemetryService::Log(std::string_view level, std::string_view message) {
  return impl_->queue->Append(Stream::kLogs, LogJson(level, message, NowMs()));
}

Expected<uint64_t> TelemetryService::SnapshotMetrics() { return impl_->SnapshotMetrics(); }

bool TelemetryService::EmitAsync(std::string_view type, nlohmann::json fields) {
  return impl_->inbox->Post(Stream::kEvents, EventJson(type, fields, NowMs()));
}

bool TelemetryService::LogAsync(std::string_view level, std::string_view message) {
  return impl_->inbox->Post(Stream::kLogs, LogJson(level, message, NowMs()));
}

void TelemetryService::Count(std::string_view type, LabelList labels, uint64_t n) {
  // The key is built in a per-thread buffer: no allocation once it has grown.
  thread_local std::string key;
  key.assign(type);
  for (const auto& [k, v] : labels) {
    key.push_back('\0');
    key.append(k);
    key.push_back('=');
    key.append(v);
  }
  std::lock_guard<std::mutex> lk(impl_->agg_mu);
  auto it = impl_->aggs.find(std::string_view(key));
  if (it == impl_->aggs.end()) {
    Impl::Agg a;
    a.type = std::string(type);
    for (const auto& [k, v] : labels) a.labels.emplace_back(std::string(k), std::string(v));
    it = impl_->aggs.emplace(key, std::move(a)).first;
  }
  it->second.count += n;
}

Status TelemetryService::FlushAggregates() { return impl_->FlushAggregates(); }

bool TelemetryService::input_stats_enabled() const { return impl_->input_stats != nullptr; }

void TelemetryService::ObserveInputs(std::string_view model, std::string_view version,
                                     const std::vector<std::pair<std::string, Tensor>>& inputs) {
  if (impl_->input_stats) impl_->input_stats->Observe(model, version, inputs);
}

Status TelemetryService::FlushInputStats() { return impl_->FlushInputStats(); }

std::shared_ptr<spdlog::sinks::sink> TelemetryService::log_sink() { return impl_->sink; }

DiskQueue& TelemetryService::queue() { return *impl_->queue; }
Publisher& TelemetryService::publisher() { return *impl_->publisher; }

}  // namespace outpost::telemetry
