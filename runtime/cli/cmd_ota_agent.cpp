// outpost ota agent: the update agent as a daemon (ota/daemon.h), with its settings from the
// device config, SIGUSR1 for a check now, and the state transitions sent as telemetry events.
#include <signal.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>
#include <string>

#include "args.h"
#include "outpost/config/device_config.h"
#include "outpost/core/log.h"
#include "outpost/core/metrics.h"
#include "outpost/image/image.h"
#include "outpost/ota/daemon.h"
#include "outpost/telemetry/telemetry.h"

namespace outpost::cli {

namespace {

const char* kAgentUsage =
    "usage: outpost ota agent [--config FILE] [--sysroot PATH] [--osname NAME]\n"
    "           [--remote-name NAME] [--check-interval-s N] [--jitter-s N]\n"
    "           [--boot-id ID] [--booted-commit COMMIT]\n"
    "\n"
    "The update agent as a daemon (the systemd unit outpost-ota-agent.service runs it). Settings\n"
    "from the device config (default /etc/outpost/device.yaml): ota.remote_url, ota.ref,\n"
    "ota.trusted_keys_dir (every file in it is a trusted key), ota.check_interval_s + up to\n"
    "ota.jitter_s, ota.maintenance_window (reboots into a new release only inside it; rollbacks\n"
    "at once), ota.reboot_command, ota.idle_wait_s (no reboot while outpostd has inference in\n"
    "flight), ota.retry_* (backoff after network failures), ota.health_deadline_s,\n"
    "ota.health_gate_runs, ota.max_boot_attempts, ota.state_dir; outpostd's address from\n"
    "server.*, the health gate's broker from telemetry.broker_url when telemetry is enabled;\n"
    "with telemetry enabled every state transition is an `ota_transition` event. ota.models:\n"
    "model refs (<ota.model_ref_prefix>/<name>) checked at each wake-up too, a new signed commit\n"
    "installed as by `outpost ota models update` (an `ota_model_update` event). SIGUSR1: check\n"
    "now. SIGTERM/SIGINT: stop. Exits 0 at once when ota.enabled is false, 2 on a\n"
    "configuration error (the unit does not restart then).\n"
    "--check-interval-s and --jitter-s override the config (seconds, >= 1 and >= 0);\n"
    "--boot-id and --booted-commit stand in for the kernel's boot id and ostree's booted\n"
    "deployment (tests, fake sysroots).\n";

ota::DaemonControl* g_control = nullptr;

void OnSignal(int sig) {
  if (!g_control) return;
  if (sig == SIGUSR1)
    g_control->check_now = true;
  else
    g_control->stop = true;
}

// A test hook for the fault matrix: OUTPOST_OTA_FAULT_KILL_AFTER=<state> makes the agent
// SIGKILL itself right after that state is persisted.
void MaybeKill(ota::State to) {
  static const char* at = std::getenv("OUTPOST_OTA_FAULT_KILL_AFTER");
  if (at && ota::StateName(to) == at) {
    std::fprintf(stderr, "outpost ota agent: OUTPOST_OTA_FAULT_KILL_AFTER=%s: SIGKILL\n", at);
    std::fflush(stderr);
    raise(SIGKILL);
  }
}

// The agent's own telemetry: the device config's telemetry settings with its own on-disk queue
// (<buffer_dir>-ota) and MQTT identity (<device_id>-ota: a second client with outpostd's id
// would take its session over, and seqs of two queues must not share one topic).
std::unique_ptr<telemetry::TelemetryService> StartTelemetry(const config::TelemetryConfig& cfg) {
  if (!cfg.enabled) return nullptr;
  telemetry::ServiceOptions so;
  so.tweak_queue = [&cfg](telemetry::QueueOptions& q) {
    q.dir = (cfg.buffer_dir.empty() ? std::string(telemetry::kDefaultBufferDir) : cfg.buffer_dir) +
            "-ota";
  };
  so.tweak_mqtt = [](telemetry::MqttOptions& m) { m.device_id += "-ota"; };
  auto t = telemetry::TelemetryService::Create(cfg, so);
  Status s = t.ok() ? (*t)->Start() : t.status();
  if (s.ok()) return std::move(t).value();
  OP_LOG_ERROR("ota agent: telemetry disabled: {}", s.ToString());
  MetricsRegistry::Global()
      .GetCounter("outpost_telemetry_start_failures_total",
                  "Times telemetry could not be started (outpostd ran without it)")
      .Inc();
  return nullptr;
}

}  // namespace

int CmdOtaAgent(int argc, char** argv) {
  Args a;
  if (!a.Parse(argc, argv, 3,
               {{"--config"},
                {"--sysroot"},
                {"--osname"},
                {"--remote-name"},
                {"--check-interval-s"},
                {"--jitter-s"},
                {"--boot-id"},
                {"--booted-commit"}},
               0, 0))
    return Usage(kAgentUsage, a.error());
  if (a.help()) return std::fputs(kAgentUsage, stdout), 0;
  auto dc = config::LoadDeviceConfig(a.Get("--config", "/etc/outpost/device.yaml"));
  // A configuration error is exit 2: the unit does not restart on it (RestartPreventExitStatus).
  if (!dc.ok()) return Fail(dc.status(), "ota agent"), kUsageError;
  // A daemon logs at the device config's log.level (the CLI's default is warn).
  const char* env_level = std::getenv("OUTPOST_LOG_LEVEL");
  spdlog::default_logger()->set_level(
      spdlog::level::from_str(env_level ? env_level : dc->log.level));
  if (!dc->ota.enabled) {
    std::fprintf(stderr, "outpost ota agent: ota.enabled is false in %s; nothing to do\n",
                 dc->source.c_str());
    return 0;
  }
  auto d = ota::DaemonConfigFromDevice(*dc);
  if (!d.ok()) return Fail(d.status(), "ota agent"), kUsageError;
  long long interval = 0, jitter = 0;
  if (!a.GetInt("--check-interval-s", dc->ota.check_interval_s, 1, 604800, &interval) ||
      !a.GetInt("--jitter-s", dc->ota.jitter_s, 0, 86400, &jitter))
    return Usage(kAgentUsage, a.error());
  d->check_interval_s = static_cast<double>(interval);
  d->jitter_s = static_cast<double>(jitter);
  ota::AgentConfig& c = d->agent;
  if (Status s = OtaLocalFlags(a, c); !s.ok()) return Fail(s, "ota agent");
  d->model_update.source.trusted_fingerprints = c.sysroot.trusted_fingerprints;

  std::unique_ptr<telemetry::TelemetryService> telem = StartTelemetry(dc->telemetry);
  c.on_transition = [t = telem.get()](ota::State from, const ota::Record& r) {
    if (t) {
      nlohmann::json f = {{"from", ota::StateName(from)},
                          {"to", ota::StateName(r.state)},
                          {"target_commit", r.target_commit},
                          {"target_version", r.target_version},
                          {"previous_commit", r.previous_commit},
                          {"reason", r.reason},
                          {"boot_count", r.boot_count},
                          {"sequence", r.sequence}};
      // Synchronous: on disk before the action the transition announces (a reboot included).
      auto seq = t->Emit("ota_transition", std::move(f));
      if (!seq.ok()) OP_LOG_WARN("ota agent: transition event not queued: {}", seq.status().ToString());
    }
    MaybeKill(r.state);
  };

  // Model-only updates (ota.models): one event per check that did something.
  d->on_model_update = [t = telem.get()](const std::string& model, const ota::ModelStepResult& m) {
    if (!t) return;
    const ota::ModelRecord& r = m.record;
    nlohmann::json f = {{"model", model},
                        {"outcome", ota::ModelOutcomeName(m.outcome)},
                        {"commit", m.commit},
                        {"current_commit", r.current.commit},
                        {"current_version", r.current.version},
                        {"previous_commit", r.previous.empty() ? "" : r.previous[0].commit},
                        {"message", m.message},
                        {"download_ms", m.download_ms},
                        {"swap_ms", m.swap_ms},
                        {"verify_ms", m.verify_ms}};
    auto seq = t->Emit("ota_model_update", std::move(f));
    if (!seq.ok()) OP_LOG_WARN("ota agent: model event not queued: {}", seq.status().ToString());
  };

  ota::DaemonControl control;
  g_control = &control;
  struct sigaction sa {};
  sa.sa_handler = OnSignal;
  sigemptyset(&sa.sa_mask);
  for (int sig : {SIGTERM, SIGINT, SIGUSR1}) sigaction(sig, &sa, nullptr);
  const int rc = ota::RunDaemon(*d, control);
  if (telem) telem->Stop();
  g_control = nullptr;
  return rc;
}

}  // namespace outpost::cli
