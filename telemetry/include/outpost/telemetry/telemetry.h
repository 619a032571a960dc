// The telemetry service outpostd owns (queue + publisher + periodic metric snapshots + events),
// the record builders it uses, and the decoder/subscriber behind `outpost telemetry tail`.
#pragma once

#include <atomic>
#include <functional>
#include <initializer_list>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "outpost/core/status.h"
#include "outpost/core/tensor.h"
#include "outpost/telemetry/input_stats.h"
#include "outpost/telemetry/publisher.h"
#include "outpost/telemetry/queue.h"

namespace outpost::config {
struct TelemetryConfig;
}
namespace spdlog::sinks {
class sink;
}

namespace outpost::telemetry {

inline constexpr const char* kDefaultBufferDir = "/var/lib/outpost/telemetry";

// Queue options from the device config: buffer_dir (empty: kDefaultBufferDir), sync policy,
// and per class max_bytes, full_policy, block_timeout_ms and ttl_s; live_share_percent. The gaps
// stream keeps its own default (1 MiB, drop-oldest).
Expected<QueueOptions> QueueOptionsFromConfig(const config::TelemetryConfig& cfg);

// ---- record builders (the JSON stored in the queue, the "data" of each record upstream) ----
// A metric snapshot from Prometheus text exposition (what MetricsRegistry::RenderPrometheus
// writes): {"ts":ms,"metrics":[{"name":..,"type":"counter|gauge|histogram","labels":{..},
// "value":..}]}; histogram series keep their _bucket/_sum/_count names and the "le" label.
Expected<std::string> MetricsSnapshotJson(std::string_view prometheus_text, int64_t ts_ms);
// {"type":..,"ts":ms,"fields":{..}}
std::string EventJson(std::string_view type, const nlohmann::json& fields, int64_t ts_ms);
// {"level":..,"ts":ms,"message":..}
std::string LogJson(std::string_view level, std::string_view message, int64_t ts_ms);

struct ServiceOptions {
  // Stop(): how long to wait, while connected, for what is queued to be acknowledged before
  // the offline status is sent. What is left stays on disk for the next start.
  int stop_drain_ms = 2000;
  // EmitAsync()/LogAsync()/the log sink: records buffered in memory at most, all streams
  // together; the excess is dropped, counted and reported as a gap marker.
  size_t inbox_records = 4096;
  // Overrides applied after the config (tests, benches); unset = from the config.
  std::function<void(QueueOptions&)> tweak_queue;
  std::function<void(MqttOptions&)> tweak_mqtt;
};

// What outpostd owns: the disk queue, the publisher and one service thread that appends what
// was posted asynchronously, snapshots the metrics registry (metrics_interval_ms), queues the
// per-interval aggregates (aggregate_interval_ms) and the input statistics (input_stats.window_s).
class TelemetryService {
 public:
  // Opens (and recovers) the queue. Does not connect yet.
  static Expected<std::unique_ptr<TelemetryService>> Create(const config::TelemetryConfig& cfg,
                                                            ServiceOptions options = {});
  ~TelemetryService();  // Stop()
  // Starts the publisher and the service thread. Never waits for the broker.
  Status Start();
  // Appends what was posted, the aggregates and input statistics so far and one last metric
  // snapshot; waits up to stop_drain_ms for them to be acknowledged (only while connected);
  // then stops the publisher (retained "offline" status, reason "shutdown"). Later posts are
  // dropped (counted).
  void Stop();

  // ---- synchronous: append now, waiting as the sync and full policies say ----
  // Events: type plus free-form JSON fields. Returns the record's seq in the events stream.
  Expected<uint64_t> Emit(std::string_view type, nlohmann::json fields = nlohmann::json::object());
  Expected<uint64_t> Log(std::string_view level, std::string_view message);
  // Snapshots MetricsRegistry::Global() into the metrics stream now.
  Expected<uint64_t> SnapshotMetrics();

  // ---- asynchronous: for threads that must never wait on telemetry (requests, logging) ----
  // The record is built now (its timestamp is now) and buffered in memory; the service thread
  // appends it. Returns false when it was dropped because the buffer was full or the service
  // stopped (counted in outpost_telemetry_records_dropped_total{reason="buffer_full"} and
  // reported on the gaps stream). Never logs.
  bool EmitAsync(std::string_view type, nlohmann::json fields = nlohmann::json::object());
  bool LogAsync(std::string_view level, std::string_view message);

  // ---- aggregated events (overload, routing decisions) ----
  // Adds `n` to the count of (type, labels) in the current interval. At the end of the interval
  // one event per distinct (type, labels) seen is queued:
  // {"type":type,"fields":{<labels>...,"count":n,"interval_start":ms,"interval_end":ms}}.
  // Thread-safe; a short lock and no allocation once a key has been seen in the interval.
  using LabelList = std::initializer_list<std::pair<std::string_view, std::string_view>>;
  void Count(std::string_view type, LabelList labels, uint64_t n = 1);
  // Queues the current interval's aggregates now (also done each interval and by Stop()).
  Status FlushAggregates();

  // ---- drift: per-model input statistics (telemetry.input_stats) ----
  bool input_stats_enabled() const;
  // Adds one request's inputs (no-op when disabled). Thread-safe, no disk I/O.
  void ObserveInputs(std::string_view model, std::string_view version,
                     const std::vector<std::pair<std::string, Tensor>>& inputs);
  // Queues one "input_stats" event per (model, input) for the window so far and starts a new
  // window (done every input_stats.window_s and by Stop()).
  Status FlushInputStats();

  // An spdlog sink that sends records at or above telemetry.log_level on the logs stream through
  // LogAsync (never blocking). Add it to the logger; it may outlive the service (it goes inert
  // when the service stops).
  std::shared_ptr<spdlog::sinks::sink> log_sink();

  DiskQueue& queue();
  Publisher& publisher();

 private:
  struct Impl;
  explicit TelemetryService(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// ---- decoding and tailing (outpost telemetry tail) ----
struct DecodedMessage {
  std::string topic;
  std::string fleet, device, leaf;  // leaf: metrics | events | logs | gaps | status
  nlohmann::json body;              // the parsed payload
};

// Splits the topic and parses the payload; InvalidArgument for a topic or payload not ours.
Expected<DecodedMessage> DecodeMessage(std::string_view topic, std::string_view payload);
// Human-readable lines: one per record ("<device> <stream> #<seq> <time> <summary>"), one for a
// status or gap message.
std::string FormatMessage(const DecodedMessage& m);

struct TailOptions {
  MqttOptions mqtt;  // connection (host, port, TLS, credentials, prefix); device_id is ignored
  std::string fleet = "+";
  std::string device = "+";
  std::string topic;      // a topic filter of its own; empty: <prefix>/<fleet>/<device>/#
  std::string client_id;  // empty: "outpost-tail-<pid>"
  // Keep the MQTT session on the broker while disconnected (clean session off; with MQTT 5 a
  // session expiry of one day), so that what is published meanwhile is delivered on reconnect.
  // Needs client_id, and a broker with persistence to survive a broker restart.
  bool persistent_session = false;
  int timeout_ms = 0;  // 0 = until the callback returns false or *stop is set
};

// Subscribes to the topic filter (QoS 1) and calls on_message for each message until it returns
// false, the timeout passes or *stop becomes true; reconnects when the broker goes away.
// Messages that do not decode are passed with leaf "" and body {"raw": "...", "error": "..."}.
Status Tail(const TailOptions& options,
            const std::function<bool(const DecodedMessage&)>& on_message,
            const std::atomic<bool>* stop = nullptr);

}  // namespace outpost::telemetry
