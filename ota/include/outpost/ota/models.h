// Model-only updates: a model bundle's signed OSTree ref (`outpost image build` commits each
// bundle alone on `<prefix>/<name>`) pulled and verified, checked out under
// `<models root>/<checksum>`, its files checked against the commit's metadata, then served by
// the running outpostd without a restart: the agent points the model's manifest in outpostd's
// manifest directory at the checkout (atomic rename) and asks outpostd to load it over V2
// (`POST /v2/repository/models/<name>/load`). outpostd builds the new version beside the serving
// one, runs the bundle's golden check and swaps atomically only when it passes; the agent then
// confirms over V2 (the version serving, the golden input answered with the golden output) and
// records it. Previous checkouts are kept for an instant rollback. See ota/README.md.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "outpost/ota/agent.h"
#include "outpost/ota/gate.h"
#include "outpost/ota/sysroot.h"

namespace outpost::ota {

struct ModelUpdateConfig {
  // The repository, remote name and trusted fingerprints (`repo` must be set: a plain
  // repository, created when missing; `ref` is ignored, the model's ref is derived below).
  SysrootConfig source;
  std::string remote_url;  // non-empty: (re)configure the remote with it and key_files first
  std::vector<std::string> key_files;
  std::string ref_prefix = "outpost/stable/models";     // the model's ref: <ref_prefix>/<name>
  std::string models_root = "/var/lib/outpost/models";  // checkouts: <models_root>/<commit>
  std::string manifest_dir = "/etc/outpost/models.d";   // outpostd's models.manifest_dir
  std::string state_dir = "/var/lib/outpost/ota";       // models.json
  std::string outpostd_host = "127.0.0.1";              // numeric IPv4
  uint16_t outpostd_port = 8080;
  int keep = 2;                     // previous versions kept (checkouts and records)
  double load_timeout_ms = 300000;  // outpostd's load (build, warm, golden check) of a version
  int gate_runs = 3;                // golden calls over V2 after the swap
  // The model ref's static delta (from the serving commit, else from empty) downloaded with
  // libcurl like the OS update's: rate limit, byte-range resume under <state_dir>/download-models/
  // <name>; libostree's pull when no delta is usable (counted, logged). deltas=false: the pull.
  DownloadOptions download;
  Tolerance tolerance;
};

// One version of a model the agent installed (or found installed).
struct ModelVersion {
  std::string commit;         // empty: the manifest that was there before the first update
  std::string version;        // outpost.io/version (the commit's "version")
  std::string checkout;       // <models_root>/<commit>; empty for the one found installed
  std::string manifest_text;  // what the agent writes to <manifest_dir>/<name>.yaml for it
  int64_t since_unix = 0;
};

struct ModelRecord {
  std::string name;
  ModelVersion current;                // commit and manifest_text empty: nothing recorded yet
  std::vector<ModelVersion> previous;  // newest first, at most `keep`
  struct Refused {
    std::string commit, reason;
  };
  std::vector<Refused> refused;  // commits that failed a check: never served, not tried again
  std::string rolled_back;       // commit rolled back from: not taken again while it is the head
};

enum class ModelOutcome {
  kUpToDate,     // the remote head is what serves (or was rolled back / refused before)
  kUpdated,      // the new version serves
  kRolledBack,   // the previous version serves again
  kRefused,      // signature, metadata or file check failed: nothing changed in outpostd
  kFailedCheck,  // outpostd refused the version (golden check) or the V2 check failed after it:
                 // the previous version serves
  kError,        // could not run (network, outpostd unreachable, disk, no previous version)
};
std::string_view ModelOutcomeName(ModelOutcome o);

struct ModelStepResult {
  ModelOutcome outcome = ModelOutcome::kError;
  ModelRecord record;  // as persisted at the end
  std::string message;
  std::string commit;       // the commit pulled (update) or rolled back to
  double download_ms = -1;  // the pull (update)
  double swap_ms = -1;      // download complete (or rollback start) -> new version serving
  double verify_ms = -1;    // the V2 golden check after the swap
};

// Pulls <ref_prefix>/<name>, verifies it and makes outpostd serve it (see above). Every step is
// logged; outcomes are counted in outpost_ota_model_updates_total{model,outcome}, the swap time
// in the gauge outpost_ota_model_swap_seconds{model}.
ModelStepResult UpdateModel(const ModelUpdateConfig& cfg, const std::string& name);
// The agent's scheduled check (`ota.models`): the head of <ref_prefix>/<name> from the remote's
// signed summary first; a head that already serves, was rolled back from or was refused before
// (a failed check, or a refusal at the pull: signature, untrusted key, checksum, downgrade) is
// kUpToDate with nothing pulled. Else UpdateModel; a refusal at the pull is recorded against the
// head (models.json `refused`). ModelStepResult::commit is the head. Counted as UpdateModel.
ModelStepResult CheckModel(const ModelUpdateConfig& cfg, const std::string& name);
// Serves the newest previous version again (its checkout verified again); the version rolled
// back from is not taken again by UpdateModel while it stays the remote head.
// outpost_ota_model_rollbacks_total{model,outcome}.
ModelStepResult RollBackModel(const ModelUpdateConfig& cfg, const std::string& name);
// What `<state_dir>/models.json` records, by name (empty when there is no file).
Expected<std::vector<ModelRecord>> ListModels(const std::string& state_dir);
// A record as JSON (the CLI's output; manifest texts left out).
std::string ModelRecordJson(const ModelRecord& r);

}  // namespace outpost::ota
