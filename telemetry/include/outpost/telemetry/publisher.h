// The MQTT publisher: drains a DiskQueue to a broker with libmosquitto. QoS 1 with a bounded
// in-flight window tracked here (by PUBACK mids); a batch is acknowledged in the queue only after
// its PUBACK. Reconnects with exponential backoff and jitter; a retained birth/last-will status.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "outpost/core/status.h"
#include "outpost/telemetry/queue.h"

namespace outpost::config {
struct TelemetryConfig;
}

namespace outpost::telemetry {

struct MqttOptions {
  std::string host = "127.0.0.1";
  int port = 1883;
  bool tls = false;
  std::string ca_file, cert_file, key_file;  // TLS: CA bundle, client certificate and key
  std::string username, password;            // password: the content of the password file
  std::string device_id;                     // also the MQTT client id
  std::string fleet = "default";
  std::string topic_prefix = "outpost";
  int protocol_version = 5;  // 5 or 311 (MQTT 3.1.1)
  int qos = 1;               // 0 or 1 (2 is sent as 2 and acked on PUBCOMP)
  int keepalive_s = 60;
  int max_inflight = 16;           // batches published and not yet acknowledged
  size_t batch_max_records = 500;  // per MQTT message
  size_t batch_max_bytes = 256 * 1024;
  int backoff_initial_ms = 250;    // reconnect delay doubles up to backoff_max_ms,
  int backoff_max_ms = 30000;      // each drawn uniformly from [d/2, d] (jitter)
  int publish_timeout_ms = 30000;  // no PUBACK this long while connected: reconnect
  int connect_timeout_ms = 10000;  // TCP + CONNACK
};

// broker_url (mqtt://host[:port] | mqtts://host[:port]), credentials (the password file is
// read here), TLS files, device id (empty: the host name), fleet and topic prefix, QoS, keepalive.
Expected<MqttOptions> MqttOptionsFromConfig(const config::TelemetryConfig& cfg);

// "<prefix>/<fleet>/<device>/<leaf>"
std::string TopicFor(const MqttOptions& o, const std::string& leaf);

class Publisher {
 public:
  struct Stats {
    bool connected = false;
    uint64_t connects = 0;  // successful CONNACKs
    uint64_t connect_failures = 0;
    uint64_t published_batches = 0;  // PUBLISH sent
    uint64_t acked_batches = 0;      // PUBACK received
    uint64_t acked_records = 0;
    int inflight = 0;
  };

  Publisher(DiskQueue* queue, MqttOptions options);
  ~Publisher();  // Stop()
  Publisher(const Publisher&) = delete;
  Publisher& operator=(const Publisher&) = delete;

  Status Start();
  // Publishes the retained "offline" status (graceful), disconnects and joins the thread.
  void Stop();
  Stats stats() const;
  const MqttOptions& options() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace outpost::telemetry
