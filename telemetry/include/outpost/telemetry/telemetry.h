// The telemetry service outpostd owns (queue + publisher + periodic metric snapshots + events),
// the record builders it uses, and the decoder/subscriber behind `outpost telemetry tail`.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "outpost/core/status.h"
#include "outpost/telemetry/publisher.h"
#include "outpost/telemetry/queue.h"

namespace outpost::config {
struct TelemetryConfig;
}

namespace outpost::telemetry {

inline constexpr const char* kDefaultBufferDir = "/var/lib/outpost/telemetry";

// Queue options from the device config: buffer_dir (empty: kDefaultBufferDir), sync policy,
// max_bytes per class. Events use kBlock (1 s) when full, metrics and logs drop-oldest.
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
  int mqtt_protocol_version = 5;  // 5 or 311: TelemetryConfig has no such field yet
  int max_inflight = 16;
  // Overrides applied after the config (tests, benches); unset = from the config.
  std::function<void(QueueOptions&)> tweak_queue;
  std::function<void(MqttOptions&)> tweak_mqtt;
};

class TelemetryService {
 public:
  // Opens (and recovers) the queue. Does not connect yet.
  static Expected<std::unique_ptr<TelemetryService>> Create(const config::TelemetryConfig& cfg,
                                                            ServiceOptions options = {});
  ~TelemetryService();  // Stop()
  // Starts the publisher and the metric snapshot timer (metrics_interval_ms).
  Status Start();
  void Stop();

  // Events: type plus free-form JSON fields. Returns the record's seq in the events stream.
  Expected<uint64_t> Emit(std::string_view type, nlohmann::json fields = nlohmann::json::object());
  Expected<uint64_t> Log(std::string_view level, std::string_view message);
  // Snapshots MetricsRegistry::Global() into the metrics stream now.
  Expected<uint64_t> SnapshotMetrics();

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
  std::string client_id;  // empty: "outpost-tail-<pid>"
  int timeout_ms = 0;     // 0 = until the callback returns false or *stop is set
};

// Subscribes to <prefix>/<fleet>/<device>/# (QoS 1) and calls on_message for each message until
// it returns false, the timeout passes or *stop becomes true. Messages that do not decode are
// passed with leaf "" and body {"raw": "..."}.
Status Tail(const TailOptions& options,
            const std::function<bool(const DecodedMessage&)>& on_message,
            const std::atomic<bool>* stop = nullptr);

}  // namespace outpost::telemetry
