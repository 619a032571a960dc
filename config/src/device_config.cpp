#include "outpost/config/device_config.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <utility>

#include "net_util.h"
#include "outpost/core/thread_priority.h"
#include "yaml_util.h"

namespace outpost::config {

namespace fs = std::filesystem;
using internal::MapView;
using internal::Quote;

DeviceConfig DefaultDeviceConfig() { return DeviceConfig{}; }

namespace {

// Relative paths in the config are relative to the config file's directory.
void ResolvePath(const fs::path& base, std::string* p) {
  if (p->empty()) return;
  fs::path path(*p);
  if (path.is_relative()) path = base / path;
  *p = path.lexically_normal().string();
}

Status ParseServer(const MapView& m, ServerConfig* s) {
  OP_RETURN_IF_ERROR(
      m.RejectUnknown({"listen_address", "port", "io_threads", "max_header_bytes", "max_body_bytes",
                       "max_connections", "header_timeout_ms", "idle_timeout_ms",
                       "drain_timeout_ms", "shed_target_us", "shed_interval_ms", "io_slice_us"}));
  if (const auto* e = m.Find("listen_address")) {
    std::string a;
    OP_RETURN_IF_ERROR(m.ScalarOf(*e, "an IP address or host name", &a));
    const std::string why = internal::CheckListenHost(a);
    if (!why.empty()) return m.Error(*e, why);
    s->listen_address = a;
  }
  int port = s->port;
  OP_RETURN_IF_ERROR(m.Int("port", 0, 65535, &port));
  s->port = static_cast<uint16_t>(port);
  OP_RETURN_IF_ERROR(m.Int("io_threads", 1, 256, &s->io_threads));
  uint64_t v = s->max_header_bytes;
  OP_RETURN_IF_ERROR(m.Bytes("max_header_bytes", 1024, 16ull << 20, &v));
  s->max_header_bytes = v;
  v = s->max_body_bytes;
  OP_RETURN_IF_ERROR(m.Bytes("max_body_bytes", 1024, 4ull << 30, &v));
  s->max_body_bytes = v;
  OP_RETURN_IF_ERROR(m.Int("max_connections", 1, 1000000, &s->max_connections));
  OP_RETURN_IF_ERROR(m.Int("header_timeout_ms", 1, 86400000, &s->header_timeout_ms));
  OP_RETURN_IF_ERROR(m.Int("idle_timeout_ms", 1, 86400000, &s->idle_timeout_ms));
  OP_RETURN_IF_ERROR(m.Int("drain_timeout_ms", 0, 3600000, &s->drain_timeout_ms));
  OP_RETURN_IF_ERROR(m.Int("shed_target_us", 0, 10000000, &s->shed_target_us));
  OP_RETURN_IF_ERROR(m.Int("shed_interval_ms", 1, 60000, &s->shed_interval_ms));
  // What Linux takes (sched_setattr), or 0: the kernel's default.
  if (const auto* e = m.Find("io_slice_us")) {
    const std::string what = "0 (the kernel's default) or an integer in " +
                             std::to_string(kMinThreadSliceUs) + ".." +
                             std::to_string(kMaxThreadSliceUs);
    std::string raw;
    OP_RETURN_IF_ERROR(m.ScalarOf(*e, what, &raw));
    int64_t v = 0;
    if (!internal::ParseInt64(raw, &v) ||
        (v != 0 && (v < kMinThreadSliceUs || v > kMaxThreadSliceUs))) {
      return m.Error(*e, "expected " + what + ", got " + Quote(raw));
    }
    s->io_slice_us = static_cast<int>(v);
  }
  return Status::Ok();
}

Status ParseCompute(const MapView& m, const fs::path& base, ComputeConfig* c) {
  OP_RETURN_IF_ERROR(
      m.RejectUnknown({"threads", "nice_offset", "default_backend", "opencl_platform",
                       "opencl_platform_name", "opencl_device", "opencl_device_name",
                       "kernel_cache_dir"}));
  OP_RETURN_IF_ERROR(m.Int("threads", 0, 1024, &c->threads));
  OP_RETURN_IF_ERROR(m.Int("nice_offset", 0, 19, &c->nice_offset));
  OP_RETURN_IF_ERROR(m.Enum("default_backend", {"cpu", "opencl"}, &c->default_backend));
  OP_RETURN_IF_ERROR(m.Int("opencl_platform", -1, 255, &c->opencl_platform));
  OP_RETURN_IF_ERROR(m.String("opencl_platform_name", &c->opencl_platform_name));
  OP_RETURN_IF_ERROR(m.Int("opencl_device", -1, 255, &c->opencl_device));
  OP_RETURN_IF_ERROR(m.String("opencl_device_name", &c->opencl_device_name));
  if (c->opencl_platform >= 0 && !c->opencl_platform_name.empty()) {
    return m.Error(*m.Find("opencl_platform_name"),
                   "give opencl_platform (an index) or opencl_platform_name, not both");
  }
  if (c->opencl_device >= 0 && !c->opencl_device_name.empty()) {
    return m.Error(*m.Find("opencl_device_name"),
                   "give opencl_device (an index) or opencl_device_name, not both");
  }
  OP_RETURN_IF_ERROR(m.String("kernel_cache_dir", &c->kernel_cache_dir));
  ResolvePath(base, &c->kernel_cache_dir);
  return Status::Ok();
}

Status ParseModels(const MapView& m, const fs::path& base, ModelsConfig* c) {
  OP_RETURN_IF_ERROR(m.RejectUnknown({"model_dir", "manifest_dir", "default_queue_size",
                                      "default_max_batch_size", "default_max_queue_delay_us",
                                      "default_timeout_ms", "watch", "watch_interval_ms"}));
  OP_RETURN_IF_ERROR(m.String("model_dir", &c->model_dir));
  ResolvePath(base, &c->model_dir);
  OP_RETURN_IF_ERROR(m.String("manifest_dir", &c->manifest_dir));
  ResolvePath(base, &c->manifest_dir);
  OP_RETURN_IF_ERROR(m.Int("default_queue_size", 1, 1000000, &c->default_queue_size));
  OP_RETURN_IF_ERROR(m.Int("default_max_batch_size", 1, 65536, &c->default_max_batch_size));
  OP_RETURN_IF_ERROR(
      m.Int("default_max_queue_delay_us", 0, 60000000, &c->default_max_queue_delay_us));
  OP_RETURN_IF_ERROR(m.Int("default_timeout_ms", 0, 3600000, &c->default_timeout_ms));
  OP_RETURN_IF_ERROR(m.Bool("watch", &c->watch));
  OP_RETURN_IF_ERROR(m.Int("watch_interval_ms", 100, 3600000, &c->watch_interval_ms));
  return Status::Ok();
}

Status ParseLog(const MapView& m, LogConfig* c) {
  OP_RETURN_IF_ERROR(m.RejectUnknown({"level", "format"}));
  OP_RETURN_IF_ERROR(
      m.Enum("level", {"trace", "debug", "info", "warn", "error", "critical", "off"}, &c->level));
  OP_RETURN_IF_ERROR(m.Enum("format", {"text", "json"}, &c->format));
  return Status::Ok();
}

// "every-batch" | "never" | "interval=<N>ms"; returns "" or why not.
std::string ParseSyncPolicy(const std::string& s, int* interval_ms) {
  if (s == "every-batch" || s == "never") {
    *interval_ms = 0;
    return "";
  }
  const std::string_view sv(s);
  int64_t n = 0;
  if (sv.starts_with("interval=") && sv.ends_with("ms") &&
      internal::ParseInt64(sv.substr(9, sv.size() - 11), &n) && n >= 1 && n <= 3600000) {
    *interval_ms = static_cast<int>(n);
    return "";
  }
  return "expected \"every-batch\", \"never\" or \"interval=<N>ms\" with N in 1..3600000, got " +
         Quote(s);
}

// A finite real number (YAML int or float).
Status Double(const MapView& m, std::string_view key, double* out) {
  const auto* e = m.Find(key);
  if (e == nullptr) return Status::Ok();
  std::string s;
  OP_RETURN_IF_ERROR(m.ScalarOf(*e, "a number", &s));
  char* end = nullptr;
  const double v = std::strtod(s.c_str(), &end);
  if (s.empty() || end != s.c_str() + s.size() || !std::isfinite(v))
    return m.Error(*e, "expected a number, got " + Quote(s));
  *out = v;
  return Status::Ok();
}

Status ParseTelemetry(const MapView& m, const fs::path& base, TelemetryConfig* c) {
  OP_RETURN_IF_ERROR(m.RejectUnknown({"enabled", "broker_url", "device_id", "fleet", "topic_prefix",
                                      "username", "password_file", "tls", "qos", "keepalive_s",
                                      "buffer_dir", "max_bytes", "full_policy",
                                      "block_timeout_ms", "ttl_s", "sync", "metrics_interval_ms",
                                      "aggregate_interval_ms", "mqtt_version", "max_inflight",
                                      "live_share_percent", "log_level", "input_stats"}));
  OP_RETURN_IF_ERROR(m.Bool("enabled", &c->enabled));
  if (const auto* e = m.Find("broker_url")) {
    std::string u;
    if (!e->value.IsNull()) OP_RETURN_IF_ERROR(m.ScalarOf(*e, "an MQTT URL", &u));
    if (!u.empty()) {
      const std::string why = internal::CheckUrl(u, {"mqtt", "mqtts"});
      if (!why.empty()) return m.Error(*e, why);
    }
    c->broker_url = u;
  }
  OP_RETURN_IF_ERROR(m.String("device_id", &c->device_id));
  OP_RETURN_IF_ERROR(m.String("fleet", &c->fleet));
  OP_RETURN_IF_ERROR(m.String("topic_prefix", &c->topic_prefix));
  // These three become parts of MQTT topic names.
  const std::pair<const char*, const std::string*> topic_parts[] = {
      {"device_id", &c->device_id}, {"fleet", &c->fleet}, {"topic_prefix", &c->topic_prefix}};
  for (const auto& [key, value] : topic_parts) {
    const auto* e = m.Find(key);
    if (e == nullptr) continue;
    if (value->find_first_of(std::string_view("+#/ \0", 5)) != std::string::npos) {
      return m.Error(*e,
                     "must not contain '/', '+', '#', spaces or NUL (it is part of MQTT "
                     "topic names), got " +
                         Quote(*value));
    }
    if (value->empty() && key != std::string_view("device_id")) {
      return m.Error(*e, "must not be empty");
    }
  }
  OP_RETURN_IF_ERROR(m.String("username", &c->username));
  OP_RETURN_IF_ERROR(m.String("password_file", &c->password_file));
  ResolvePath(base, &c->password_file);
  MapView tls;
  OP_RETURN_IF_ERROR(m.Section("tls", &tls));
  OP_RETURN_IF_ERROR(tls.RejectUnknown({"ca_file", "cert_file", "key_file"}));
  OP_RETURN_IF_ERROR(tls.String("ca_file", &c->tls_ca_file));
  OP_RETURN_IF_ERROR(tls.String("cert_file", &c->tls_cert_file));
  OP_RETURN_IF_ERROR(tls.String("key_file", &c->tls_key_file));
  if (c->tls_cert_file.empty() != c->tls_key_file.empty()) {
    return tls.ErrorHere("cert_file and key_file go together (client certificate and its key)");
  }
  ResolvePath(base, &c->tls_ca_file);
  ResolvePath(base, &c->tls_cert_file);
  ResolvePath(base, &c->tls_key_file);
  const bool any_tls =
      !c->tls_ca_file.empty() || !c->tls_cert_file.empty() || !c->tls_key_file.empty();
  if (any_tls && c->broker_url.rfind("mqtt://", 0) == 0) {
    return tls.ErrorHere("TLS files are set but broker_url is mqtt:// (plain TCP); use mqtts://");
  }
  OP_RETURN_IF_ERROR(m.Int("qos", 0, 2, &c->qos));
  OP_RETURN_IF_ERROR(m.Int("keepalive_s", 5, 3600, &c->keepalive_s));
  OP_RETURN_IF_ERROR(m.String("buffer_dir", &c->buffer_dir));
  ResolvePath(base, &c->buffer_dir);
  MapView mb;
  OP_RETURN_IF_ERROR(m.Section("max_bytes", &mb));
  OP_RETURN_IF_ERROR(mb.RejectUnknown({"metrics", "events", "logs"}));
  // The queue keeps at least a few segments per class: 64 KiB is the smallest useful cap.
  constexpr uint64_t kMinClass = 64ull << 10, kMaxClass = 1ull << 40;
  OP_RETURN_IF_ERROR(mb.Bytes("metrics", kMinClass, kMaxClass, &c->max_bytes_metrics));
  OP_RETURN_IF_ERROR(mb.Bytes("events", kMinClass, kMaxClass, &c->max_bytes_events));
  OP_RETURN_IF_ERROR(mb.Bytes("logs", kMinClass, kMaxClass, &c->max_bytes_logs));
  MapView fp;
  OP_RETURN_IF_ERROR(m.Section("full_policy", &fp));
  OP_RETURN_IF_ERROR(fp.RejectUnknown({"metrics", "events", "logs"}));
  const std::vector<std::string_view> policies = {"drop-oldest", "reject", "block"};
  OP_RETURN_IF_ERROR(fp.Enum("metrics", policies, &c->full_policy_metrics));
  OP_RETURN_IF_ERROR(fp.Enum("events", policies, &c->full_policy_events));
  OP_RETURN_IF_ERROR(fp.Enum("logs", policies, &c->full_policy_logs));
  OP_RETURN_IF_ERROR(m.Int("block_timeout_ms", 0, 60000, &c->block_timeout_ms));
  MapView ttl;
  OP_RETURN_IF_ERROR(m.Section("ttl_s", &ttl));
  OP_RETURN_IF_ERROR(ttl.RejectUnknown({"metrics", "events", "logs"}));
  constexpr int64_t kMaxTtl = 10ll * 366 * 86400;  // ten years
  OP_RETURN_IF_ERROR(ttl.Int("metrics", 0, kMaxTtl, &c->ttl_s_metrics));
  OP_RETURN_IF_ERROR(ttl.Int("events", 0, kMaxTtl, &c->ttl_s_events));
  OP_RETURN_IF_ERROR(ttl.Int("logs", 0, kMaxTtl, &c->ttl_s_logs));
  if (const auto* e = m.Find("sync")) {
    std::string s;
    OP_RETURN_IF_ERROR(m.ScalarOf(*e, "a sync policy", &s));
    const std::string why = ParseSyncPolicy(s, &c->sync_interval_ms);
    if (!why.empty()) return m.Error(*e, why);
    c->sync = s;
  }
  OP_RETURN_IF_ERROR(m.Int("metrics_interval_ms", 100, 86400000, &c->metrics_interval_ms));
  OP_RETURN_IF_ERROR(m.Int("aggregate_interval_ms", 100, 86400000, &c->aggregate_interval_ms));
  if (const auto* e = m.Find("mqtt_version")) {
    std::string v;
    OP_RETURN_IF_ERROR(m.ScalarOf(*e, "an MQTT version (5 or 3.1.1)", &v));
    if (v == "5" || v == "5.0") {
      c->mqtt_version = 5;
    } else if (v == "3.1.1" || v == "311") {
      c->mqtt_version = 311;
    } else {
      return m.Error(*e, "expected 5 or 3.1.1, got " + Quote(v));
    }
  }
  OP_RETURN_IF_ERROR(m.Int("max_inflight", 1, 1000, &c->max_inflight));
  OP_RETURN_IF_ERROR(m.Int("live_share_percent", 0, 100, &c->live_share_percent));
  OP_RETURN_IF_ERROR(m.Enum("log_level",
                            {"trace", "debug", "info", "warn", "error", "critical", "off"},
                            &c->log_level));
  MapView is;
  OP_RETURN_IF_ERROR(m.Section("input_stats", &is));
  OP_RETURN_IF_ERROR(is.RejectUnknown({"enabled", "window_s", "histogram_bins", "histogram_min",
                                       "histogram_max", "max_features", "sample_every"}));
  InputStatsConfig& s = c->input_stats;
  OP_RETURN_IF_ERROR(is.Bool("enabled", &s.enabled));
  OP_RETURN_IF_ERROR(is.Int("window_s", 1, 86400, &s.window_s));
  OP_RETURN_IF_ERROR(is.Int("histogram_bins", 1, 1000, &s.histogram_bins));
  OP_RETURN_IF_ERROR(Double(is, "histogram_min", &s.histogram_min));
  OP_RETURN_IF_ERROR(Double(is, "histogram_max", &s.histogram_max));
  OP_RETURN_IF_ERROR(is.Int("max_features", 1, 65536, &s.max_features));
  OP_RETURN_IF_ERROR(is.Int("sample_every", 1, 1000000, &s.sample_every));
  if (!(s.histogram_min < s.histogram_max)) {
    const auto* e = is.Find("histogram_max") ? is.Find("histogram_max") : is.Find("histogram_min");
    const std::string why = "histogram_min must be less than histogram_max";
    return e ? is.Error(*e, why) : is.ErrorHere(why);
  }
  if (c->enabled && c->broker_url.empty()) {
    const auto* e = m.Find("enabled");
    return m.Error(*e, "telemetry is enabled but telemetry.broker_url is not set");
  }
  return Status::Ok();
}

// "HH:MM-HH:MM" -> minutes; returns "" or why not.
std::string ParseWindow(const std::string& s, int* start, int* end) {
  auto hhmm = [](std::string_view t, int* out) {
    if (t.size() != 5 || t[2] != ':') return false;
    for (size_t i : {0u, 1u, 3u, 4u}) {
      if (t[i] < '0' || t[i] > '9') return false;
    }
    const int h = (t[0] - '0') * 10 + (t[1] - '0');
    const int m = (t[3] - '0') * 10 + (t[4] - '0');
    if (h > 23 || m > 59) return false;
    *out = h * 60 + m;
    return true;
  };
  const std::string_view sv(s);
  if (sv.size() == 11 && sv[5] == '-' && hhmm(sv.substr(0, 5), start) && hhmm(sv.substr(6), end)) {
    if (*start == *end) return "start and end are equal; leave the key out for \"any time\"";
    return "";
  }
  return "expected \"HH:MM-HH:MM\" (24-hour local time, may wrap past midnight), got " + Quote(s);
}

Status ParseOta(const MapView& m, const fs::path& base, OtaConfig* c) {
  OP_RETURN_IF_ERROR(m.RejectUnknown(
      {"enabled", "remote_url", "ref", "check_interval_s", "jitter_s", "trusted_keys_dir",
       "maintenance_window", "health_deadline_s", "max_boot_attempts", "rate_limit_kbps",
       "health_gate_runs", "state_dir", "reboot_command", "idle_wait_s", "retry_max",
       "retry_base_s", "retry_max_delay_s", "models", "model_ref_prefix", "models_dir"}));
  OP_RETURN_IF_ERROR(m.Bool("enabled", &c->enabled));
  if (const auto* e = m.Find("remote_url")) {
    std::string u;
    if (!e->value.IsNull()) OP_RETURN_IF_ERROR(m.ScalarOf(*e, "a URL", &u));
    if (!u.empty()) {
      const std::string why = internal::CheckUrl(u, {"http", "https", "file"});
      if (!why.empty()) return m.Error(*e, why);
    }
    c->remote_url = u;
  }
  if (const auto* e = m.Find("ref")) {
    OP_RETURN_IF_ERROR(m.String("ref", &c->ref));
    if (c->ref.find_first_of(" \t\n:~^?*[\\") != std::string::npos || c->ref.starts_with("/") ||
        c->ref.find("..") != std::string::npos) {
      return m.Error(*e, "not a valid OSTree ref, got " + Quote(c->ref));
    }
  }
  OP_RETURN_IF_ERROR(m.Int("check_interval_s", 60, 604800, &c->check_interval_s));
  OP_RETURN_IF_ERROR(m.Int("jitter_s", 0, 86400, &c->jitter_s));
  OP_RETURN_IF_ERROR(m.String("trusted_keys_dir", &c->trusted_keys_dir));
  ResolvePath(base, &c->trusted_keys_dir);
  if (const auto* e = m.Find("maintenance_window")) {
    std::string w;
    OP_RETURN_IF_ERROR(m.String("maintenance_window", &w));
    if (w.empty() || w == "always") {
      c->maintenance_start_min = c->maintenance_end_min = -1;
    } else {
      const std::string why = ParseWindow(w, &c->maintenance_start_min, &c->maintenance_end_min);
      if (!why.empty()) return m.Error(*e, why);
    }
    c->maintenance_window = w;
  }
  OP_RETURN_IF_ERROR(m.Int("health_deadline_s", 10, 3600, &c->health_deadline_s));
  OP_RETURN_IF_ERROR(m.Int("max_boot_attempts", 1, 10, &c->max_boot_attempts));
  OP_RETURN_IF_ERROR(m.Int("rate_limit_kbps", 0, 100000000, &c->rate_limit_kbps));
  OP_RETURN_IF_ERROR(m.Int("health_gate_runs", 1, 10000, &c->health_gate_runs));
  OP_RETURN_IF_ERROR(m.String("state_dir", &c->state_dir));
  ResolvePath(base, &c->state_dir);
  if (c->state_dir.empty()) c->state_dir = "/var/lib/outpost/ota";
  if (const auto* e = m.Find("reboot_command")) {
    OP_RETURN_IF_ERROR(m.String("reboot_command", &c->reboot_command));
    if (c->reboot_command.empty()) return m.Error(*e, "the reboot command must not be empty");
  }
  OP_RETURN_IF_ERROR(m.Int("idle_wait_s", 0, 86400, &c->idle_wait_s));
  OP_RETURN_IF_ERROR(m.Int("retry_max", 0, 100, &c->retry_max));
  OP_RETURN_IF_ERROR(m.Int("retry_base_s", 1, 86400, &c->retry_base_s));
  if (const auto* e = m.Find("retry_max_delay_s")) {
    OP_RETURN_IF_ERROR(m.Int("retry_max_delay_s", 1, 604800, &c->retry_max_delay_s));
    if (c->retry_max_delay_s < c->retry_base_s)
      return m.Error(*e, "must not be below ota.retry_base_s");
  }
  if (const auto* e = m.Find("models")) {
    if (!e->value.IsNull() && !e->value.IsSequence())
      return m.Error(*e, "expected a list of model names, e.g. [iris, digits]");
    for (size_t i = 0; i < e->value.size(); ++i) {
      const YAML::Node& n = e->value[i];
      const std::string at = "element " + std::to_string(i + 1) + ": ";
      if (!n.IsScalar()) return m.Error(*e, at + "expected a model name");
      const std::string name = n.Scalar();
      bool ok = !name.empty() && name.size() <= 63 && name[0] >= 'a' && name[0] <= 'z' &&
                name.back() != '-';
      for (char ch : name)
        ok = ok && ((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-');
      if (!ok)
        return m.Error(*e, at + "expected a model name (a DNS-1123 label: lowercase letters, "
                                "digits and '-', at most 63), got " + Quote(name));
      if (std::find(c->models.begin(), c->models.end(), name) != c->models.end())
        return m.Error(*e, at + Quote(name) + " is listed twice");
      c->models.push_back(name);
    }
  }
  if (const auto* e = m.Find("model_ref_prefix")) {
    OP_RETURN_IF_ERROR(m.String("model_ref_prefix", &c->model_ref_prefix));
    if (c->model_ref_prefix.empty() ||
        c->model_ref_prefix.find_first_of(" \t\n:~^?*[\\") != std::string::npos ||
        c->model_ref_prefix.starts_with("/") || c->model_ref_prefix.ends_with("/") ||
        c->model_ref_prefix.find("..") != std::string::npos)
      return m.Error(*e, "not a valid OSTree ref prefix, got " + Quote(c->model_ref_prefix));
  } else if (const size_t slash = c->ref.rfind('/'); slash != std::string::npos) {
    c->model_ref_prefix = c->ref.substr(0, slash) + "/models";  // image's default layout
  }
  OP_RETURN_IF_ERROR(m.String("models_dir", &c->models_dir));
  ResolvePath(base, &c->models_dir);
  if (c->models_dir.empty()) c->models_dir = "/var/lib/outpost/models";
  if (c->enabled && !c->models.empty() && c->model_ref_prefix.empty())
    return m.Error(*m.Find("models"),
                   "ota.models needs ota.model_ref_prefix (ota.ref " + Quote(c->ref) +
                       " has no '/' to derive <dirname>/models from)");
  if (c->enabled) {
    const auto* e = m.Find("enabled");
    if (c->remote_url.empty()) return m.Error(*e, "ota is enabled but ota.remote_url is not set");
    if (c->ref.empty()) return m.Error(*e, "ota is enabled but ota.ref is not set");
    if (c->trusted_keys_dir.empty()) {
      return m.Error(*e,
                     "ota is enabled but ota.trusted_keys_dir is not set (updates must be "
                     "signature-checked)");
    }
  }
  return Status::Ok();
}

}  // namespace

Expected<DeviceConfig> ParseDeviceConfig(std::string_view yaml_text, std::string_view source_name) {
  const std::string source(source_name);
  YAML::Node root;
  OP_RETURN_IF_ERROR(internal::ParseYaml(yaml_text, source, &root));
  DeviceConfig cfg = DefaultDeviceConfig();
  cfg.source = source;
  if (root.IsDefined() && !root.IsNull() && !root.IsMap()) {
    return internal::ErrorAt(Code::kInvalidArgument, source, internal::LineOf(root, 1), "",
                             "expected a mapping of sections (server, compute, models, log, "
                             "telemetry, ota) at the top level, got " +
                                 internal::Describe(root));
  }
  std::error_code ec;
  fs::path base = fs::path(source).parent_path();
  base = fs::absolute(base.empty() ? fs::path(".") : base, ec);
  if (ec) base = fs::path(source).parent_path();

  MapView top;
  OP_RETURN_IF_ERROR(MapView::Make(source, root, "", internal::LineOf(root, 1), &top));
  OP_RETURN_IF_ERROR(top.RejectUnknown({"server", "compute", "models", "log", "telemetry", "ota"}));
  MapView m;
  OP_RETURN_IF_ERROR(top.Section("server", &m));
  OP_RETURN_IF_ERROR(ParseServer(m, &cfg.server));
  OP_RETURN_IF_ERROR(top.Section("compute", &m));
  OP_RETURN_IF_ERROR(ParseCompute(m, base, &cfg.compute));
  OP_RETURN_IF_ERROR(top.Section("models", &m));
  OP_RETURN_IF_ERROR(ParseModels(m, base, &cfg.models));
  OP_RETURN_IF_ERROR(top.Section("log", &m));
  OP_RETURN_IF_ERROR(ParseLog(m, &cfg.log));
  OP_RETURN_IF_ERROR(top.Section("telemetry", &m));
  OP_RETURN_IF_ERROR(ParseTelemetry(m, base, &cfg.telemetry));
  OP_RETURN_IF_ERROR(top.Section("ota", &m));
  OP_RETURN_IF_ERROR(ParseOta(m, base, &cfg.ota));
  return cfg;
}

Expected<DeviceConfig> LoadDeviceConfig(const std::string& path) {
  std::string text;
  OP_RETURN_IF_ERROR(internal::ReadTextFile(path, "device config", &text));
  return ParseDeviceConfig(text, path);
}

Status ApplyListenOverride(DeviceConfig& cfg, std::string_view addr_port) {
  std::string host;
  uint16_t port = 0;
  const std::string why = internal::SplitHostPort(addr_port, &host, &port);
  if (!why.empty()) {
    return InvalidArgument("--listen " + Quote(addr_port) + ": " + why);
  }
  cfg.server.listen_address = host;
  cfg.server.port = port;
  return Status::Ok();
}

}  // namespace outpost::config
