// The OS update's download with libcurl (ota/README.md, "Delta download"): the static delta to
// the remote's head, found in its signed summary, fetched file by file into a download
// directory (rate limit, byte-range resume, bounded attempts with jitter), checked against the
// summary and the superblock, applied offline and verified by ApplyStaticDelta.
#pragma once

#include <string>

#include "outpost/ota/agent.h"
#include "outpost/ota/sysroot.h"

namespace outpost::ota::internal {

enum class DeltaOutcome {
  kApplied,      // the ref points at `commit`, verified
  kNoDelta,      // no usable delta (not listed, 404, fallback objects): use libostree's pull
  kInterrupted,  // the network, the server (5xx) or a full disk: resumable, retry later
  kRefused,      // a file or the commit does not match what is signed: never deploy it
  kFailed,       // a 4xx other than 404/416: not retried by the step (no storm)
};
const char* DeltaOutcomeName(DeltaOutcome o);

// sha256 (hex) of a file's content.
Expected<std::string> Sha256File(const std::string& path);

struct DeltaResult {
  DeltaOutcome outcome = DeltaOutcome::kFailed;
  std::string commit;   // kApplied: the commit the ref now points at
  std::string message;  // what happened, the file named
  bool disk_full = false;
};

// The delta from `from` (the booted commit; empty: none) to the head of cfg.ref, or from empty
// when the summary lists none from `from`. Downloads under `download_root`/<from>-<to>/ (partial
// files kept across steps and restarts; other directories there removed as stale), removed
// after the delta is applied.
DeltaResult FetchAndApplyDelta(const SysrootConfig& cfg, const std::string& from,
                               const std::string& download_root, const DownloadOptions& opts);

}  // namespace outpost::ota::internal
