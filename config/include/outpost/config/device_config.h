// The device config of outpostd: plain structs, their defaults, and the YAML loader that fills
// them. Every key is documented in config/README.md. Errors name file, line and key:
//   device.yaml:12: server.port: expected an integer in 0..65535, got "80a"
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>
#include <string_view>

#include "outpost/core/status.h"

namespace outpost::config {

// `server:` the HTTP listener and its limits.
struct ServerConfig {
  std::string listen_address = "127.0.0.1";  // IPv4/IPv6 literal (no brackets) or host name
  uint16_t port = 8080;                      // 0 = any free port
  int io_threads = 1;
  size_t max_header_bytes = 16 * 1024;
  size_t max_body_bytes = 64 * 1024 * 1024;
  int max_connections = 1024;
  int header_timeout_ms = 10000;  // whole request head must arrive within this (slowloris)
  int idle_timeout_ms = 60000;    // keep-alive connection with no request
  int drain_timeout_ms = 30000;   // on shutdown, wait this long for in-flight requests
  // Overload shedding on the I/O threads: refuse inference requests that waited in their socket
  // longer than this while the wait stayed above it for shed_interval_ms (0 = off).
  int shed_target_us = 500;
  int shed_interval_ms = 10;
  // The HTTP threads' scheduler time slice in µs (0, or 100..100000; 0 = the kernel's default):
  // short, so that they preempt running compute at once (Linux 6.12 and later).
  int io_slice_us = 100;
};

// `compute:` how the engine uses the hardware.
struct ComputeConfig {
  int threads = 0;                      // 0 = all cores
  int nice_offset = 5;                  // compute threads run this many nice steps below HTTP
  std::string default_backend = "cpu";  // "cpu" | "opencl"
  int opencl_platform = -1;             // index; -1 = first platform (or by name below)
  std::string opencl_platform_name;     // substring match; empty = any
  int opencl_device = -1;               // index within the platform; -1 = first (or by name)
  std::string opencl_device_name;       // substring match; empty = any
  std::string kernel_cache_dir;         // OpenCL program cache; empty = the engine's default
};

// `models:` where manifests and model files live, and per-model defaults.
struct ModelsConfig {
  std::string model_dir;     // empty = outpostd's bundled example models
  std::string manifest_dir;  // empty = outpostd's bundled example manifests
  int default_queue_size = 64;
  int default_max_batch_size = 1;  // 1 = no batching
  int64_t default_max_queue_delay_us = 0;
  int64_t default_timeout_ms = 0;  // 0 = no deadline
  bool watch = true;               // reload when manifests change
  int watch_interval_ms = 2000;
};

// `log:`
struct LogConfig {
  std::string level = "info";   // trace | debug | info | warn | error | critical | off
  std::string format = "text";  // text | json
};

// `telemetry.input_stats:` per-model input statistics for drift monitoring.
struct InputStatsConfig {
  bool enabled = false;
  int window_s = 60;  // statistics cover this window and are sent at its end
  int histogram_bins = 10;
  double histogram_min = 0.0;  // fixed bins over [min, max); values outside are counted apart
  double histogram_max = 1.0;
  int max_features = 256;  // features (last-dim elements) tracked per input; the rest ignored
  int sample_every = 1;    // look at one request in N (per model); 1 = every request
};

// `telemetry:` parsed and validated here, consumed by telemetry/.
struct TelemetryConfig {
  bool enabled = false;
  std::string broker_url;  // mqtt://host[:port] | mqtts://host[:port]; required when enabled
  std::string device_id;   // empty = the host name
  std::string fleet = "default";
  std::string topic_prefix = "outpost";
  std::string username;
  std::string password_file;
  std::string tls_ca_file;  // `tls.ca_file`
  std::string tls_cert_file;
  std::string tls_key_file;
  int qos = 1;  // MQTT QoS 0..2
  int keepalive_s = 60;
  std::string buffer_dir;  // on-disk queue; empty = the telemetry subsystem's default
  uint64_t max_bytes_metrics = 16ull << 20;  // `max_bytes.metrics`: on-disk cap per class
  uint64_t max_bytes_events = 16ull << 20;
  uint64_t max_bytes_logs = 32ull << 20;
  // `full_policy.<class>`: what an append does when the class is at max_bytes:
  // "drop-oldest" | "reject" | "block" (waits up to block_timeout_ms for the publisher).
  std::string full_policy_metrics = "drop-oldest";
  std::string full_policy_events = "block";
  std::string full_policy_logs = "drop-oldest";
  int block_timeout_ms = 1000;
  // `ttl_s.<class>`: records older than this are not sent (counted as expired); 0 = no TTL.
  int64_t ttl_s_metrics = 0;
  int64_t ttl_s_events = 0;
  int64_t ttl_s_logs = 0;
  std::string sync = "every-batch";  // "every-batch" | "interval=<N>ms" | "never"
  int sync_interval_ms = 0;          // parsed from "interval=<N>ms"; 0 otherwise
  int metrics_interval_ms = 10000;
  int aggregate_interval_ms = 10000;  // per-interval event aggregates (overload, routing)
  int mqtt_version = 5;               // `mqtt_version`: 5 or 311 (written "3.1.1")
  int max_inflight = 16;              // MQTT batches published and not yet acknowledged
  int live_share_percent = 75;        // share of live batches while a backlog drains; 0 = strict
  std::string log_level = "warn";     // log records at or above this go upstream; "off" = none
  InputStatsConfig input_stats;
};

// `ota:` parsed and validated here, consumed by ota/.
struct OtaConfig {
  bool enabled = false;
  std::string remote_url;  // http(s):// or file://; required when enabled
  std::string ref;         // OSTree ref; required when enabled
  int check_interval_s = 3600;
  int jitter_s = 300;
  std::string trusted_keys_dir;    // required when enabled
  std::string maintenance_window;  // "" = any time, else "HH:MM-HH:MM" (may wrap midnight)
  int maintenance_start_min = -1;  // minutes after 00:00, parsed; -1 when no window
  int maintenance_end_min = -1;
  int health_deadline_s = 300;
  int max_boot_attempts = 3;
  int64_t rate_limit_kbps = 0;  // 0 = unlimited
  int health_gate_runs = 20;      // timed golden calls per model in the health gate
  std::string state_dir = "/var/lib/outpost/ota";
  std::string reboot_command = "systemctl reboot";  // run by `outpost ota agent` (sh -c)
  int idle_wait_s = 300;     // before a reboot: longest wait for outpostd's in-flight requests
  int retry_max = 5;         // retries of a step that failed on the network, then the interval
  int retry_base_s = 30;     // first retry delay; doubles, each drawn from [d/2, d]
  int retry_max_delay_s = 1800;
  // Model-only updates on the agent's schedule: each name's ref <model_ref_prefix>/<name>
  // (image/README.md's layout) checked with the OS ref.
  std::vector<std::string> models;  // model names (DNS-1123 labels); empty = none
  std::string model_ref_prefix;     // default <dirname of ref>/models, as `outpost image` commits
  std::string models_dir = "/var/lib/outpost/models";  // checkouts; repository <models_dir>/.repo
};

struct DeviceConfig {
  std::string source = "<defaults>";  // the file it came from
  ServerConfig server;
  ComputeConfig compute;
  ModelsConfig models;
  LogConfig log;
  TelemetryConfig telemetry;
  OtaConfig ota;
};

// The embedded defaults: what outpostd runs with when given no config file.
DeviceConfig DefaultDeviceConfig();

// Reads and validates a device config file. Missing file: kNotFound; unreadable: kIoError; any
// content error: kInvalidArgument "FILE:LINE: KEY: what". Keys not given keep their defaults;
// relative paths are resolved against the directory of the file.
Expected<DeviceConfig> LoadDeviceConfig(const std::string& path);

// Same, from text. `source_name` is used in messages and, when it has a directory part, as the
// base for relative paths (otherwise they are resolved against the working directory).
Expected<DeviceConfig> ParseDeviceConfig(std::string_view yaml_text, std::string_view source_name);

// Applies outpostd's `--listen ADDR:PORT`: "127.0.0.1:8080", "[::1]:8080", "0.0.0.0:0",
// "localhost:9000". On error (kInvalidArgument) `cfg` is unchanged.
Status ApplyListenOverride(DeviceConfig& cfg, std::string_view addr_port);

}  // namespace outpost::config
