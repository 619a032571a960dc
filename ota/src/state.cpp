// The persisted state machine: names, transitions, resume decisions, the state file.
#include "outpost/ota/state.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <utility>

#include "outpost/core/hash.h"
#include "outpost/core/log.h"
#include "outpost/core/metrics.h"

namespace outpost::ota {
namespace {

using json = nlohmann::json;

constexpr std::array<std::pair<State, std::string_view>, 11> kNames = {{
    {State::kIdle, "idle"},
    {State::kChecking, "checking"},
    {State::kDownloading, "downloading"},
    {State::kVerifying, "verifying"},
    {State::kStaged, "staged"},
    {State::kRebooting, "rebooting"},
    {State::kVerifyingAfterBoot, "verifying-after-boot"},
    {State::kCommitted, "committed"},
    {State::kRollingBack, "rolling-back"},
    {State::kRolledBack, "rolled-back"},
    {State::kFailed, "failed"},
}};

constexpr std::string_view kFormat = "outpost-ota-state/1";

void CountWrite(const char* outcome) {
  MetricsRegistry::Global()
      .GetCounter("outpost_ota_state_writes_total", "OTA state file writes by outcome",
                  {{"outcome", outcome}})
      .Inc();
}

std::string Errno(const std::string& what) { return what + ": " + std::strerror(errno); }

}  // namespace

std::string_view StateName(State s) {
  for (const auto& [st, name] : kNames)
    if (st == s) return name;
  assert(false && "unnamed state");
  return "?";
}

std::optional<State> StateFromName(std::string_view name) {
  for (const auto& [st, n] : kNames)
    if (n == name) return st;
  return std::nullopt;
}

bool CanTransition(State from, State to) {
  using S = State;
  switch (from) {
    case S::kIdle:
    case S::kCommitted:
    case S::kRolledBack:
    case S::kFailed:
      return to == S::kChecking || (to == S::kIdle && from != S::kIdle);
    case S::kChecking:
      return to == S::kIdle || to == S::kDownloading || to == S::kFailed;
    case S::kDownloading:
      return to == S::kVerifying || to == S::kFailed;
    case S::kVerifying:
      return to == S::kStaged || to == S::kFailed;
    case S::kStaged:
      return to == S::kRebooting || to == S::kRollingBack || to == S::kFailed;
    case S::kRebooting:
      return to == S::kVerifyingAfterBoot || to == S::kRollingBack;
    case S::kVerifyingAfterBoot:
      return to == S::kCommitted || to == S::kRollingBack;
    case S::kRollingBack:
      return to == S::kRolledBack || to == S::kFailed;
  }
  return false;
}

Status Transition(Record& r, State to, std::string reason) {
  if (!CanTransition(r.state, to))
    return Internal("OTA: transition " + std::string(StateName(r.state)) + " -> " +
                    std::string(StateName(to)) + " is not allowed");
  const std::string_view from = StateName(r.state);
  if (to == State::kChecking) {  // a new cycle: nothing of the previous one carries over
    std::string boot_id = r.boot_id;
    uint64_t seq = r.sequence;
    std::string refused = std::move(r.refused_commit);
    r = Record{};
    r.boot_id = std::move(boot_id);
    r.sequence = seq;
    r.refused_commit = std::move(refused);
  }
  OP_LOG_INFO("ota: {} -> {}{}{}", from, StateName(to), reason.empty() ? "" : ": ",
              reason);
  MetricsRegistry::Global()
      .GetCounter("outpost_ota_transitions_total", "OTA state transitions by target state",
                  {{"to", std::string(StateName(to))}})
      .Inc();
  r.state = to;
  r.reason = std::move(reason);
  return Status::Ok();
}

std::string_view ActionName(Action a) {
  switch (a) {
    case Action::kNone:
      return "none";
    case Action::kCheck:
      return "check";
    case Action::kDownload:
      return "download";
    case Action::kVerify:
      return "verify";
    case Action::kReboot:
      return "reboot";
    case Action::kRunHealthGate:
      return "run-health-gate";
    case Action::kRollBack:
      return "roll-back";
    case Action::kVerifyUnknown:
      return "verify-unknown";
  }
  return "?";
}

namespace {

// Applies a transition the resume logic knows to be in the table.
void Must(Record& r, State to, std::string reason) {
  Status s = Transition(r, to, std::move(reason));
  assert(s.ok() && "resume chose a transition outside the table");
  (void)s;
}

Decision RollBack(Record r, std::string why) {
  if (r.previous_commit.empty()) {
    Must(r, State::kRollingBack, why);
    Must(r, State::kFailed, why + "; no previous deployment to roll back to");
    return {Action::kNone, std::move(r), why + "; no previous deployment to roll back to"};
  }
  Must(r, State::kRollingBack, why);
  return {Action::kRollBack, std::move(r), std::move(why)};
}

}  // namespace

Decision Resume(const Expected<std::optional<Record>>& loaded, const Observed& now,
                const Limits& limits) {
  if (!loaded.ok()) {
    // Nothing can be trusted: keep what runs, check it, and start the next cycle from idle.
    Record r;
    r.boot_id = now.boot_id;
    r.reason = "state file unusable: " + loaded.status().message();
    return {Action::kVerifyUnknown, r,
            "state file unusable; keeping the running deployment and checking its health"};
  }
  if (!loaded->has_value()) {
    Record r;
    r.boot_id = now.boot_id;
    return {Action::kNone, r, "no update in progress"};
  }
  Record r = **loaded;
  const bool new_boot = !r.boot_id.empty() && r.boot_id != now.boot_id;
  r.boot_id = now.boot_id;
  const bool on_target = !r.target_commit.empty() && now.booted_commit == r.target_commit;
  const std::string booted = now.booted_commit.empty() ? "an unknown commit" : now.booted_commit;

  switch (r.state) {
    case State::kIdle:
    case State::kCommitted:
    case State::kRolledBack:
    case State::kFailed:
      return {Action::kNone, r, "no update in progress"};
    case State::kChecking:
      return {Action::kCheck, r, "check interrupted; checking again"};
    case State::kDownloading:
      if (r.download_attempts >= limits.max_download_attempts) {
        std::string why = "pull of " + r.target_commit + " unfinished after " +
                          std::to_string(r.download_attempts) + " attempts";
        Must(r, State::kFailed, why);
        return {Action::kNone, r, why};
      }
      ++r.download_attempts;
      return {Action::kDownload, r, "pull interrupted; resuming (objects already fetched stay)"};
    case State::kVerifying:
      return {Action::kVerify, r, "verification interrupted; verifying again"};
    case State::kStaged:
      if (!on_target) {
        Must(r, State::kRebooting, "staged; rebooting into the target");
        return {Action::kReboot, r, "staged but not rebooted yet"};
      }
      // The reboot happened before "rebooting" reached the disk.
      Must(r, State::kRebooting, "staged; the target is already booted");
      [[fallthrough]];
    case State::kRebooting:
      if (on_target) {
        if (new_boot || r.boot_count == 0) ++r.boot_count;
        if (r.boot_count > limits.max_boots)
          return RollBack(r, "booted " + std::to_string(r.boot_count) +
                                 " times into the target without a health verdict");
        Must(r, State::kVerifyingAfterBoot, "booted into the target");
        ++r.gate_attempts;
        return {Action::kRunHealthGate, r, "booted into the target; running the health gate"};
      }
      if (new_boot) {
        ++r.boot_count;
        if (r.boot_count >= limits.max_boots)
          return RollBack(r, std::to_string(r.boot_count) + " boots ended on " + booted +
                                 " instead of the target");
      }
      return {Action::kReboot, r, "not booted into the target yet; rebooting"};
    case State::kVerifyingAfterBoot:
      if (!on_target)
        return RollBack(r, "the health gate was running but " + booted + " is booted");
      if (new_boot) ++r.boot_count;
      if (r.boot_count > limits.max_boots)
        return RollBack(r, "booted " + std::to_string(r.boot_count) +
                               " times into the target without a health verdict");
      if (r.gate_attempts >= limits.max_gate_attempts)
        return RollBack(r, "health gate started " + std::to_string(r.gate_attempts) +
                               " times without a verdict");
      ++r.gate_attempts;
      return {Action::kRunHealthGate, r, "health gate interrupted; running it again"};
    case State::kRollingBack:
      return {Action::kRollBack, r, "rollback interrupted; rolling back again (idempotent)"};
  }
  return {Action::kNone, r, "?"};
}

namespace {
json Body(const Record& r) {
  return {{"state", StateName(r.state)},
          {"target_commit", r.target_commit},
          {"target_version", r.target_version},
          {"previous_commit", r.previous_commit},
          {"boot_id", r.boot_id},
          {"boot_count", r.boot_count},
          {"download_attempts", r.download_attempts},
          {"gate_attempts", r.gate_attempts},
          {"reason", r.reason},
          {"sequence", r.sequence},
          {"updated_unix", r.updated_unix},
          {"refused_commit", r.refused_commit}};
}
}  // namespace

std::string RecordJson(const Record& r) { return Body(r).dump(); }

std::string Serialize(const Record& r) {
  json body = Body(r);
  std::string b = body.dump();
  json doc = {{"format", kFormat}, {"record", body}, {"fnv1a64", Hex64(Fnv1a64(b))}};
  return doc.dump(2) + "\n";
}

Expected<Record> Parse(std::string_view text) {
  json doc = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object())
    return InvalidArgument("not a JSON object (torn or corrupt)");
  if (!doc.contains("format") || !doc["format"].is_string() || doc["format"] != kFormat)
    return InvalidArgument("format is not " + std::string(kFormat));
  if (!doc.contains("record") || !doc["record"].is_object() || !doc.contains("fnv1a64") ||
      !doc["fnv1a64"].is_string())
    return InvalidArgument("record or checksum missing");
  const json& b = doc["record"];
  if (Hex64(Fnv1a64(b.dump())) != doc["fnv1a64"].get<std::string>())
    return InvalidArgument("checksum mismatch (corrupt)");
  Record r;
  auto str = [&](const char* k, std::string& out) -> Status {
    if (!b.contains(k) || !b[k].is_string()) return InvalidArgument(std::string("missing ") + k);
    out = b[k].get<std::string>();
    return Status::Ok();
  };
  auto num = [&](const char* k, auto& out) -> Status {
    if (!b.contains(k) || !b[k].is_number_integer())
      return InvalidArgument(std::string("missing ") + k);
    out = b[k].get<std::remove_reference_t<decltype(out)>>();
    return Status::Ok();
  };
  std::string state;
  OP_RETURN_IF_ERROR(str("state", state));
  auto s = StateFromName(state);
  if (!s) return InvalidArgument("unknown state '" + state + "'");
  r.state = *s;
  OP_RETURN_IF_ERROR(str("target_commit", r.target_commit));
  OP_RETURN_IF_ERROR(str("target_version", r.target_version));
  OP_RETURN_IF_ERROR(str("previous_commit", r.previous_commit));
  OP_RETURN_IF_ERROR(str("boot_id", r.boot_id));
  OP_RETURN_IF_ERROR(str("reason", r.reason));
  OP_RETURN_IF_ERROR(num("boot_count", r.boot_count));
  OP_RETURN_IF_ERROR(num("download_attempts", r.download_attempts));
  OP_RETURN_IF_ERROR(num("gate_attempts", r.gate_attempts));
  OP_RETURN_IF_ERROR(num("sequence", r.sequence));
  OP_RETURN_IF_ERROR(num("updated_unix", r.updated_unix));
  if (b.contains("refused_commit")) OP_RETURN_IF_ERROR(str("refused_commit", r.refused_commit));
  return r;
}

Status WriteFileAtomically(const std::string& path, const std::string& text) {
  namespace fs = std::filesystem;
  const std::string dir = fs::path(path).parent_path().string();
  const std::string tmp = path + ".tmp";
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return IoError("cannot create directory '" + dir + "': " + ec.message());
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return IoError(Errno("cannot create '" + tmp + "'"));
  size_t off = 0;
  while (off < text.size()) {
    ssize_t n = write(fd, text.data() + off, text.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      Status s = IoError(Errno("cannot write '" + tmp + "'"));
      close(fd);
      unlink(tmp.c_str());
      return s;
    }
    off += static_cast<size_t>(n);
  }
  if (fsync(fd) != 0) {
    Status s = IoError(Errno("fsync of '" + tmp + "' failed"));
    close(fd);
    unlink(tmp.c_str());
    return s;
  }
  close(fd);
  if (rename(tmp.c_str(), path.c_str()) != 0) {
    Status s = IoError(Errno("cannot rename '" + tmp + "' to '" + path + "'"));
    unlink(tmp.c_str());
    return s;
  }
  int dfd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0 || fsync(dfd) != 0) {
    Status s = IoError(Errno("fsync of directory '" + dir + "' failed"));
    if (dfd >= 0) close(dfd);
    return s;
  }
  close(dfd);
  return Status::Ok();
}

StateFile::StateFile(std::string dir) : dir_(std::move(dir)), path_(dir_ + "/state.json") {}

Expected<std::optional<Record>> StateFile::Load() const {
  std::ifstream in(path_, std::ios::binary);
  if (!in) {
    if (access(path_.c_str(), F_OK) != 0 && errno == ENOENT) return std::optional<Record>{};
    return IoError(Errno("cannot read OTA state file '" + path_ + "'"));
  }
  std::stringstream ss;
  ss << in.rdbuf();
  auto r = Parse(ss.str());
  if (!r.ok()) {
    MetricsRegistry::Global()
        .GetCounter("outpost_ota_state_corrupt_total", "OTA state files found unusable at start")
        .Inc();
    OP_LOG_ERROR("ota: state file '{}' refused: {}", path_, r.status().message());
    return InvalidArgument("OTA state file '" + path_ + "' refused: " + r.status().message());
  }
  return std::optional<Record>(std::move(*r));
}

Status StateFile::Save(Record& r) const {
  Record next = r;
  ++next.sequence;
  next.updated_unix = static_cast<int64_t>(std::time(nullptr));
  const std::string text = Serialize(next);
  std::error_code ec;
  std::filesystem::create_directories(dir_, ec);
  if (ec) {
    CountWrite("error");
    return IoError("cannot create OTA state directory '" + dir_ + "': " + ec.message());
  }
  Status s = WriteFileAtomically(path_, text);
  if (!s.ok()) {
    CountWrite("error");
    return s;
  }
  CountWrite("ok");
  r = std::move(next);
  return Status::Ok();
}

Expected<std::string> StateFile::Quarantine() const {
  std::string dst = path_ + ".corrupt";
  if (rename(path_.c_str(), dst.c_str()) != 0)
    return IoError(Errno("cannot move '" + path_ + "' aside"));
  return dst;
}

}  // namespace outpost::ota
