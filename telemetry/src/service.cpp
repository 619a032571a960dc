#include <condition_variable>
#include <mutex>
#include <thread>

#include "outpost/config/device_config.h"
#include "outpost/core/log.h"
#include "outpost/core/metrics.h"
#include "outpost/telemetry/telemetry.h"
#include "payload.h"

namespace outpost::telemetry {

Expected<QueueOptions> QueueOptionsFromConfig(const config::TelemetryConfig& cfg) {
  QueueOptions q;
  q.dir = cfg.buffer_dir.empty() ? kDefaultBufferDir : cfg.buffer_dir;
  OP_ASSIGN_OR_RETURN(auto sync, ParseSyncPolicy(cfg.sync));
  q.sync = sync.first;
  if (sync.first == SyncPolicy::kInterval) q.sync_interval_ms = sync.second;
  q.limits[static_cast<int>(Stream::kMetrics)].max_bytes = cfg.max_bytes_metrics;
  q.limits[static_cast<int>(Stream::kEvents)].max_bytes = cfg.max_bytes_events;
  q.limits[static_cast<int>(Stream::kLogs)].max_bytes = cfg.max_bytes_logs;
  for (auto& l : q.limits) {
    if (l.max_bytes < 64 * 1024) return InvalidArgument("telemetry.max_bytes must be >= 64 KiB");
  }
  return q;
}

struct TelemetryService::Impl {
  config::TelemetryConfig cfg;
  std::unique_ptr<DiskQueue> queue;
  std::unique_ptr<Publisher> publisher;
  std::thread ticker;
  std::mutex mu;
  std::condition_variable cv;
  bool stop = false;
  bool started = false;
};

TelemetryService::TelemetryService(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Expected<std::unique_ptr<TelemetryService>> TelemetryService::Create(
    const config::TelemetryConfig& cfg, ServiceOptions options) {
  OP_ASSIGN_OR_RETURN(QueueOptions qo, QueueOptionsFromConfig(cfg));
  OP_ASSIGN_OR_RETURN(MqttOptions mo, MqttOptionsFromConfig(cfg));
  mo.protocol_version = options.mqtt_protocol_version;
  mo.max_inflight = options.max_inflight;
  if (options.tweak_queue) options.tweak_queue(qo);
  if (options.tweak_mqtt) options.tweak_mqtt(mo);
  auto impl = std::make_unique<Impl>();
  impl->cfg = cfg;
  OP_ASSIGN_OR_RETURN(impl->queue, DiskQueue::Open(std::move(qo)));
  impl->publisher = std::make_unique<Publisher>(impl->queue.get(), std::move(mo));
  return std::unique_ptr<TelemetryService>(new TelemetryService(std::move(impl)));
}

TelemetryService::~TelemetryService() { Stop(); }

Status TelemetryService::Start() {
  if (impl_->started) return Status::Ok();
  OP_RETURN_IF_ERROR(impl_->publisher->Start());
  impl_->started = true;
  impl_->stop = false;
  int period = impl_->cfg.metrics_interval_ms;
  if (period > 0) {
    impl_->ticker = std::thread([this, period] {
      std::unique_lock<std::mutex> lk(impl_->mu);
      while (!impl_->stop) {
        if (impl_->cv.wait_for(lk, std::chrono::milliseconds(period), [&] { return impl_->stop; }))
          break;
        lk.unlock();
        auto r = SnapshotMetrics();
        if (!r.ok()) OP_LOG_WARN("telemetry: metric snapshot: {}", r.status().ToString());
        lk.lock();
      }
    });
  }
  return Status::Ok();
}

void TelemetryService::Stop() {
  {
    std::lock_guard<std::mutex> lk(impl_->mu);
    impl_->stop = true;
  }
  impl_->cv.notify_all();
  if (impl_->ticker.joinable()) impl_->ticker.join();
  impl_->publisher->Stop();
  impl_->started = false;
}

Expected<uint64_t> TelemetryService::Emit(std::string_view type, nlohmann::json fields) {
  return impl_->queue->Append(Stream::kEvents, EventJson(type, fields, NowMs()));
}

Expected<uint64_t> TelemetryService::Log(std::string_view level, std::string_view message) {
  return impl_->queue->Append(Stream::kLogs, LogJson(level, message, NowMs()));
}

Expected<uint64_t> TelemetryService::SnapshotMetrics() {
  OP_ASSIGN_OR_RETURN(std::string j,
                      MetricsSnapshotJson(MetricsRegistry::Global().RenderPrometheus(), NowMs()));
  return impl_->queue->Append(Stream::kMetrics, j);
}

DiskQueue& TelemetryService::queue() { return *impl_->queue; }
Publisher& TelemetryService::publisher() { return *impl_->publisher; }

}  // namespace outpost::telemetry
