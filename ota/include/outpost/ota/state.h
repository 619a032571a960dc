// The update agent's persisted state machine, as pure code (no libostree, no I/O besides the
// state file): named states, the transitions allowed between them, the record kept in the state
// directory, and the decision taken when the agent starts (resume or roll back). fleet-sim may
// reuse it so that a simulated device behaves like a real one. See ota/README.md.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "outpost/core/status.h"

namespace outpost::ota {

enum class State {
  kIdle,                // nothing in progress (no state file counts as idle)
  kChecking,            // asking the remote whether a newer commit exists
  kDownloading,         // pulling the target commit (resumable: objects already fetched stay)
  kVerifying,           // checking signatures and metadata of the pulled commit
  kStaged,              // the target deployment is written and is the default; not rebooted yet
  kRebooting,           // reboot requested into the target
  kVerifyingAfterBoot,  // booted into the target; the health gate runs
  kCommitted,           // the gate passed: the target is good
  kRollingBack,         // making the previous deployment the default again
  kRolledBack,          // back on the previous deployment, with the reason recorded
  kFailed,              // the update stopped before touching the boot order (reason recorded)
};

// "idle", "checking", ..., "verifying-after-boot", "rolling-back", "rolled-back", "failed".
std::string_view StateName(State s);
std::optional<State> StateFromName(std::string_view name);

// The transitions table (README.md draws it). A terminal state (committed, rolled-back, failed)
// and idle may start a new cycle with checking.
bool CanTransition(State from, State to);

// What is persisted. Commits are OSTree checksums (64 hex); empty when not known yet.
struct Record {
  State state = State::kIdle;
  std::string target_commit;
  std::string target_version;
  std::string previous_commit;  // the deployment to go back to
  std::string boot_id;          // kernel boot id when this record was written
  uint32_t boot_count = 0;      // boots into the target without a verdict
  uint32_t download_attempts = 0;
  uint32_t gate_attempts = 0;  // health gate runs started for this target
  std::string reason;          // why the last transition happened (failures, rollbacks)
  uint64_t sequence = 0;       // incremented on every write
  int64_t updated_unix = 0;    // wall-clock time of the last write (informational)
  // The last head refused (bad or untrusted signature, checksum, downgrade) or rolled back: not
  // pulled again while it stays the remote's head. Carried over into new cycles; optional in the
  // file (records written before it existed read as "").
  std::string refused_commit;
};

struct Limits {
  uint32_t max_boots = 3;              // boots into the target before it is rolled back
  uint32_t max_download_attempts = 5;  // agent starts that find a pull unfinished
  uint32_t max_gate_attempts = 3;      // health gate runs started without a verdict
};

// Moves `r` to `to` with `reason`. Refuses (kInternal) a transition not in the table and leaves
// `r` unchanged. Counters reset when a new cycle starts with checking (refused_commit stays).
Status Transition(Record& r, State to, std::string reason = {});

// What the agent observes when it starts.
struct Observed {
  std::string boot_id;        // /proc/sys/kernel/random/boot_id (any stable string in tests)
  std::string booted_commit;  // checksum of the running deployment; empty when unknown
};

enum class Action {
  kNone,           // idle or a finished cycle: wait for the next check
  kCheck,          // (re)start the check
  kDownload,       // resume the pull of target_commit
  kVerify,         // verify target_commit again (idempotent)
  kReboot,         // reboot into the staged target
  kRunHealthGate,  // run (again) the health gate on the booted target
  kRollBack,       // make previous_commit the default (and reboot when not booted into it)
  kVerifyUnknown,  // no usable record: keep the running deployment and run the health gate on it
};
std::string_view ActionName(Action a);

struct Decision {
  Action action = Action::kNone;
  Record record;  // the record to persist before acting (may equal the loaded one)
  std::string why;
};

// The resume decision, from what StateFile::Load() returned (a record, nullopt for none, or an
// error for an unreadable file) and what is observed. Pure: it does not write; the caller
// persists `record` and then acts. An unreadable file gives Action::kVerifyUnknown.
Decision Resume(const Expected<std::optional<Record>>& loaded, const Observed& now,
                const Limits& limits);

// Serialized record: one JSON object with a format tag and a checksum of its body. Parse refuses
// anything torn, corrupt, of another format or naming an unknown state (kInvalidArgument).
std::string Serialize(const Record& r);
// The record alone as one JSON object (keys as in the file; `outpost ota status --json`).
std::string RecordJson(const Record& r);
Expected<Record> Parse(std::string_view text);

// Writes `text` to `path` atomically: `path.tmp`, fsync, rename over `path`, fsync of the
// directory (created when missing). A crash leaves the old content or the new, never a mix.
Status WriteFileAtomically(const std::string& path, const std::string& text);

// The state file `<dir>/state.json`, written atomically: temp file + fsync + rename + fsync of
// the directory. A crash leaves either the old or the new record, never a mix.
class StateFile {
 public:
  explicit StateFile(std::string dir);
  const std::string& path() const { return path_; }
  // nullopt: no file (idle). kInvalidArgument: present but corrupt (the message names the file);
  // the caller passes the error to Resume() (Action::kVerifyUnknown) and Quarantine()s the file.
  Expected<std::optional<Record>> Load() const;
  // Writes `r` with sequence + 1 and updated_unix = now; `r` is updated to what was written.
  Status Save(Record& r) const;
  // Moves a corrupt file aside to state.json.corrupt (kept for the report); returns its path.
  Expected<std::string> Quarantine() const;

 private:
  std::string dir_, path_;
};

}  // namespace outpost::ota
