// The update agent's driver: one step (`RunOnce`) that loads the persisted state, takes the
// Resume() decision and carries it out with the sysroot calls (check, pull, verify, deploy,
// roll back) and the health gate (Probe + Judge against the running outpostd of the booted
// deployment), persisting every transition before acting. The reboot itself is the caller's:
// RunOnce returns kRebootRequested after "rebooting" (or "rolled-back" from a booted target) is
// on disk. `outpost ota run-once` is this function. See ota/README.md.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "outpost/ota/gate_probe.h"
#include "outpost/ota/state.h"
#include "outpost/ota/sysroot.h"

namespace outpost::ota {

// The OS update's download: the static delta fetched with libcurl into
// `<state_dir>/download/`, applied offline, verified by us (ota/README.md, "Delta download").
struct DownloadOptions {
  bool deltas = true;           // false: libostree's pull only (no rate limit, no byte resume)
  int64_t rate_limit_kbps = 0;  // kilobits per second per transfer; 0 = unlimited
  int connect_timeout_s = 30;
  int low_speed_time_s = 60;  // under 1 byte/s this long: the transfer is given up
  int attempts = 3;           // per file within one step (network errors, 5xx, 416)
  double retry_base_s = 2;    // first wait between attempts, doubled, drawn in [d/2, d]
  double retry_max_s = 30;
};

struct AgentConfig {
  SysrootConfig sysroot;  // trusted_fingerprints required
  std::string state_dir = "/var/lib/outpost/ota";
  // Non-empty: the remote is (re)configured with this URL and these keys before the check.
  std::string remote_url;
  std::vector<std::string> key_files;
  Limits limits;
  DownloadOptions download;
  std::string boot_id;  // empty: /proc/sys/kernel/random/boot_id
  // The commit running now; empty: ostree's booted deployment. Set only where nothing was booted
  // from the sysroot (a fake sysroot in tests: the default deployment at the simulated boot).
  std::string booted_commit;
  // The health gate: the booted deployment's outpostd, its model bundles' golden tensors.
  std::string outpostd_host = "127.0.0.1";  // numeric IPv4
  uint16_t outpostd_port = 8080;
  int gate_runs = 20;
  double gate_deadline_ms = 60000;
  Tolerance tolerance;
  // The MQTT broker the gate checks by a TCP connect (numeric IPv4); empty: no broker check.
  std::string broker_host;
  uint16_t broker_port = 1883;
  // Told after each transition is persisted (from: the state before; r: the record as written).
  // Null: nobody. `outpost ota agent` sends these as telemetry events.
  std::function<void(State from, const Record& r)> on_transition;
};

enum class Outcome {
  kIdle,             // nothing new (or nothing in progress)
  kRebootRequested,  // persisted; the caller reboots (into the target, or back after a rollback)
  kCommitted,        // the health gate passed
  kRolledBack,       // back on the previous deployment; record.reason says why
  kFailed,           // the update stopped before the boot order changed; record.reason says why
  kError,            // the step could not run (state dir, sysroot unreadable): message says why
};
std::string_view OutcomeName(Outcome o);

struct StepResult {
  Outcome outcome = Outcome::kError;
  Record record;        // as persisted at the end of the step
  std::string message;  // what happened, for the log and the CLI
  // The step stopped on something that may pass by itself (network, server, full disk): worth
  // retrying soon, with backoff. False for refusals and verdicts (retrying changes nothing).
  bool retry = false;
};

// One step of the agent, from whatever state is persisted: a new cycle from idle or a finished
// one, or the resumption of an interrupted one. Every transition is written to
// `<state_dir>/state.json` before the action it announces, logged and counted
// (outpost_ota_transitions_total; outpost_ota_agent_steps_total{outcome}).
StepResult RunOnce(const AgentConfig& cfg);

// A USB/offline bundle (`outpost image bundle`: outpost-bundle.json, deltas/*.delta) as one
// step from a state at rest (idle, committed, rolled back, failed; anything else: kError). The
// delta file for cfg.sysroot.ref from the booted commit (else from empty) is checked against
// the index's sha256, applied offline, and its commit verified by us (a trusted signature, no
// downgrade) before the ref moves; then the usual checking -> downloading -> verifying ->
// staged -> rebooting, so that the next RunOnce steps (the gate after the boot) finish it.
// Nothing of the network is used (the remote is configured when cfg.remote_url is set).
StepResult ApplyBundle(const AgentConfig& cfg, const std::string& bundle_dir);

// The golden models of a deployment checkout: every `usr/lib/outpost/models/<name>/manifest.yaml`
// (bundles written by `outpost image build`) with its golden input and output and its latency
// budget (outpost.io/latency-budget-ms, 0: none). A bundle without goldens is an error.
Expected<std::vector<GoldenModel>> DeploymentGoldens(const std::string& deployment_path,
                                                     const Tolerance& tol);

}  // namespace outpost::ota
