// The update agent as a daemon (`outpost ota agent`): RunOnce steps in a loop, a check every
// interval plus random jitter, a check on demand, bounded retries with exponential backoff and
// jitter when a step stopped on the network, the server or a full disk (none after a refusal or
// a verdict), and the reboot: inside the maintenance window (rollbacks at once), with outpostd
// handing requests of models with fallback endpoints to them (handoff), only once outpostd has
// no local inference in flight (bounded wait), by a configurable command.
// See ota/README.md, "The agent daemon".
#pragma once

#include <atomic>
#include <functional>
#include <string>
#include <vector>

#include "outpost/config/device_config.h"
#include "outpost/ota/agent.h"
#include "outpost/ota/models.h"
#include "outpost/ota/schedule.h"

namespace outpost::ota {

struct DaemonConfig {
  AgentConfig agent;
  double check_interval_s = 3600;
  double jitter_s = 300;
  Window window;  // reboots into a new release only inside it; downloads any time
  std::string reboot_command = "systemctl reboot";  // run with /bin/sh -c
  double idle_wait_s = 300;  // longest wait for outpostd's in-flight requests to reach 0
  int retry_max = 5;         // retries (with backoff) after a transient failure, then the interval
  double retry_base_s = 30;
  double retry_max_delay_s = 1800;
  // After the reboot command succeeded: how long to wait to be stopped by the shutdown before
  // counting the reboot as failed and trying again.
  double reboot_wait_s = 300;
  // How often outpostd's /metrics is read while waiting for it to be idle.
  double idle_poll_s = 0.5;
  // While waiting for the window or outpostd: look again at least this often.
  double busy_retry_s = 60;
  // The handoff asked of outpostd before the reboot lasts idle_wait_s + this (it ends by itself
  // if the reboot never comes and nobody clears it).
  double handoff_margin_s = 60;
  // Model-only updates on the same schedule (ota.models): after each step that leaves no OS
  // cycle in progress, CheckModel() for each name; one stopped on something that may pass
  // (kError: network, outpostd, disk) is retried with the same backoff.
  std::vector<std::string> models;
  ModelUpdateConfig model_update;
  // Each model check that did something (every outcome but up-to-date): the CLI sends it as an
  // `ota_model_update` telemetry event.
  std::function<void(const std::string& model, const ModelStepResult&)> on_model_update;
};

// The agent's settings from the device config (`ota:`, `server:` for outpostd's address,
// `telemetry.broker_url` for the gate's broker check when telemetry is enabled). key_files are
// the regular files of ota.trusted_keys_dir (sorted); the trusted fingerprints are the
// caller's to fill (image::KeyFingerprints), for the OS and the model updates. The remote's URL
// and ref are ota.remote_url and ota.ref when set. Model updates (ota.models): repository
// <ota.models_dir>/.repo, checkouts in ota.models_dir, refs <ota.model_ref_prefix>/<name>,
// manifests written to models.manifest_dir (required then), models.json in ota.state_dir.
Expected<DaemonConfig> DaemonConfigFromDevice(const config::DeviceConfig& dc);

struct DaemonControl {
  std::atomic<bool> stop{false};       // SIGTERM, SIGINT
  std::atomic<bool> check_now{false};  // SIGUSR1: check (or step) now instead of waiting
};

// Runs until control.stop. The first step runs at once (it resumes an interrupted cycle, or runs
// the health gate after a boot) when a cycle is in progress, else after a random delay in
// [0, jitter_s]. Returns 0.
int RunDaemon(const DaemonConfig& cfg, DaemonControl& control);

// outpostd's inference requests in flight (`outpost_serve_in_flight` on its /metrics); 0 when
// nothing listens there (no outpostd, nothing in flight). kUnavailable when it answers without
// the gauge or not at all in time.
Expected<int64_t> InFlight(const std::string& host, uint16_t port, int timeout_ms);

// outpostd's handoff (POST /outpost/v1/handoff {"reason", "ttl_s"}; outpostd accepts it from
// loopback only): new infer requests of models with fallback endpoints go there until
// EndHandoff (DELETE) or the TTL. kUnavailable when outpostd cannot be reached or refuses (the
// message says which, with its answer). Each call is counted in
// `outpost_ota_handoff_calls_total{call,outcome}`.
Status StartHandoff(const std::string& host, uint16_t port, const std::string& reason,
                    double ttl_s, int timeout_ms);
Status EndHandoff(const std::string& host, uint16_t port, int timeout_ms);

}  // namespace outpost::ota
