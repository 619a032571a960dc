// The update agent's step: Resume() decides, this file acts (ota/README.md, "The agent").
#include "outpost/ota/agent.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <utility>

#include "bundle.h"
#include "delta.h"
#include "fetch.h"
#include "outpost/config/device_config.h"
#include "outpost/config/manifest.h"
#include "outpost/core/log.h"
#include "outpost/core/metrics.h"
#include "outpost/ota/gate.h"
#include "outpost/ota/gate_probe.h"

namespace outpost::ota {

namespace fs = std::filesystem;

std::string_view OutcomeName(Outcome o) {
  switch (o) {
    case Outcome::kIdle:
      return "idle";
    case Outcome::kRebootRequested:
      return "reboot-requested";
    case Outcome::kCommitted:
      return "committed";
    case Outcome::kRolledBack:
      return "rolled-back";
    case Outcome::kFailed:
      return "failed";
    case Outcome::kError:
      return "error";
  }
  return "?";
}

namespace internal {

Expected<config::ModelManifest> LoadBundleManifest(const std::string& dir) {
  config::DeviceConfig dc = config::DefaultDeviceConfig();
  dc.models.model_dir = dir;
  OP_ASSIGN_OR_RETURN(config::ModelManifest m, config::LoadManifest(dir + "/manifest.yaml", dc));
  if (m.golden_input.empty() || m.golden_output.empty())
    return InvalidArgument("model bundle '" + dir +
                           "' has no golden input or output: the health gate cannot check it");
  return m;
}

GoldenModel GoldenOf(const config::ModelManifest& m, const Tolerance& tol) {
  GoldenModel g;
  g.name = m.name;
  g.golden_input = m.golden_input;
  g.golden_output = m.golden_output;
  g.p95_budget_ms = static_cast<double>(m.latency_budget_ms);
  g.tol = tol;
  return g;
}

}  // namespace internal

Expected<std::vector<GoldenModel>> DeploymentGoldens(const std::string& deployment_path,
                                                     const Tolerance& tol) {
  std::vector<GoldenModel> out;
  const fs::path models = fs::path(deployment_path) / "usr/lib/outpost/models";
  std::error_code ec;
  if (!fs::is_directory(models, ec)) return out;  // an OS without models: readiness only
  std::vector<fs::path> bundles;
  for (const auto& e : fs::directory_iterator(models, ec))
    if (e.is_directory()) bundles.push_back(e.path());
  std::sort(bundles.begin(), bundles.end());
  for (const auto& b : bundles) {
    OP_ASSIGN_OR_RETURN(config::ModelManifest m, internal::LoadBundleManifest(b.string()));
    out.push_back(internal::GoldenOf(m, tol));
  }
  return out;
}

namespace {

std::string ReadBootId() {
  std::ifstream in("/proc/sys/kernel/random/boot_id");
  std::string id;
  std::getline(in, id);
  return id;
}

// Worth retrying soon: the network, the server, a full disk. Not refusals.
bool Transient(const Status& s) {
  return s.code() == Code::kUnavailable || s.code() == Code::kResourceExhausted ||
         s.code() == Code::kIoError || s.code() == Code::kDeadlineExceeded;
}

std::string Join(const std::vector<std::string>& v, const char* sep) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : sep) + x;
  return s;
}

class Agent {
 public:
  explicit Agent(const AgentConfig& cfg) : cfg_(cfg), file_(cfg.state_dir) {}

  // Loads the state, observes the boot, persists Resume()'s record: the decision, or the error
  // that stops the step.
  Expected<Decision> Start() {
    auto loaded = file_.Load();
    if (!loaded.ok()) {
      OP_LOG_WARN("ota agent: {}", loaded.status().ToString());
      auto q = file_.Quarantine();
      if (!q.ok())
        return Internal("cannot move the corrupt state file aside: " + q.status().message());
    }
    Observed now;
    now.boot_id = cfg_.boot_id.empty() ? ReadBootId() : cfg_.boot_id;
    auto booted = Booted();
    if (!booted.ok()) return booted.status();
    now.booted_commit = booted->commit;
    booted_ = *booted;
    Decision d = Resume(loaded, now, cfg_.limits);
    r_ = d.record;
    OP_LOG_INFO("ota agent: state {}, booted {}: {} ({})", StateName(r_.state),
                now.booted_commit.empty() ? "unknown" : now.booted_commit, ActionName(d.action),
                d.why);
    if (!Save()) return Internal(save_error_);
    // Resume() may have moved the record (e.g. rebooting -> verifying-after-boot): told as one
    // transition from the state loaded.
    was_ = loaded.ok() && *loaded ? (*loaded)->state : State::kIdle;
    loaded_ok_ = loaded.ok() && *loaded;
    if (cfg_.on_transition && loaded.ok() && r_.state != was_) cfg_.on_transition(was_, r_);
    return d;
  }

  StepResult Run() {
    auto started = Start();
    if (!started.ok()) return Error(started.status().message());
    const Decision& d = *started;
    switch (d.action) {
      case Action::kNone:
        if (r_.state == State::kFailed && loaded_ok_ && was_ != r_.state)
          return Done(Outcome::kFailed, r_.reason);
        // Rolled back, but the step stopped before its reboot: still running the failed commit.
        if (r_.state == State::kRolledBack && !r_.previous_commit.empty() &&
            !booted_.commit.empty() && booted_.commit != r_.previous_commit)
          return Done(Outcome::kRebootRequested,
                      "rolled back to " + r_.previous_commit + "; reboot requested: " + r_.reason);
        return Check();
      case Action::kCheck:
        return Check();
      case Action::kDownload:
        return Download();
      case Action::kVerify:
        return VerifyAndDeploy();
      case Action::kReboot:
        return Done(Outcome::kRebootRequested, d.why);
      case Action::kRunHealthGate:
        return Gate();
      case Action::kRollBack:
        return RollBackNow();
      case Action::kVerifyUnknown:
        return VerifyUnknown();
    }
    return Error("unknown action");
  }

 private:
  // The booted deployment (commit and checkout path); empty commit when unknown, empty path
  // when that commit is no longer deployed.
  Expected<Deployment> Booted() {
    OP_ASSIGN_OR_RETURN(auto list, ListDeployments(cfg_.sysroot));
    std::string commit = cfg_.booted_commit;
    if (commit.empty()) {
      OP_ASSIGN_OR_RETURN(commit, BootedCommit(cfg_.sysroot));
    }
    for (const auto& d : list)
      if (d.commit == commit) return d;
    // Booted but no longer deployed (rolled back, the reboot still to come): the commit is known,
    // its checkout is not.
    Deployment d;
    d.commit = commit;
    return d;
  }

  bool Save() {
    Status s = file_.Save(r_);
    if (!s.ok()) save_error_ = "cannot persist the state: " + s.message();
    return s.ok();
  }

  // Transition + persist; false (and save_error_) when either fails.
  bool Go(State to, std::string reason = {}) {
    const State from = r_.state;
    Status s = Transition(r_, to, std::move(reason));
    if (!s.ok()) {
      save_error_ = s.message();
      return false;
    }
    if (!Save()) return false;
    if (cfg_.on_transition) cfg_.on_transition(from, r_);
    return true;
  }

  // A head that must not be pulled again while it stays the head (refused or rolled back).
  StepResult Refuse(const std::string& why) {
    r_.refused_commit = r_.target_commit;
    return Fail(why);
  }

  // Something that may pass by itself: the record stays resumable, the caller retries.
  StepResult Retry(Outcome o, std::string message) {
    StepResult res = Done(o, std::move(message));
    res.retry = true;
    return res;
  }

  StepResult Fail(const std::string& why) {
    if (!Go(State::kFailed, why)) return Error(save_error_);
    return Done(Outcome::kFailed, why);
  }

  StepResult Check() {
    // A rolled-back commit is not tried again while it is still the head (the idle record after
    // such a check keeps it as its target; any other idle record has none).
    // refused_commit covers refusals (signature, checksum, downgrade) and rollbacks alike.
    const std::string rejected =
        !r_.refused_commit.empty() ? r_.refused_commit
        : r_.state == State::kRolledBack || r_.state == State::kIdle ? r_.target_commit
                                                                     : "";
    // A check interrupted after "checking" was written resumes as it is (checking -> checking is
    // not a transition).
    if (r_.state != State::kChecking &&
        !Go(State::kChecking, "checking " + cfg_.sysroot.remote + ":" + cfg_.sysroot.ref))
      return Error(save_error_);
    if (!cfg_.remote_url.empty()) {
      Status s = AddRemote(cfg_.sysroot, cfg_.remote_url, cfg_.key_files);
      if (!s.ok()) return Fail("cannot configure the remote: " + s.message());
    }
    auto head = RemoteHead(cfg_.sysroot);
    if (!head.ok()) {
      StepResult res = Fail("check failed: " + head.status().message());
      res.retry = res.outcome == Outcome::kFailed && Transient(head.status());
      return res;
    }
    if (*head == booted_.commit || *head == rejected) {
      std::string why = *head == rejected
                            ? "the remote's head " + *head + " was rolled back or refused before"
                            : "up to date at " + *head;
      if (*head == rejected) r_.target_commit = rejected;
      if (!Go(State::kIdle, why)) return Error(save_error_);
      return Done(Outcome::kIdle, why);
    }
    r_.target_commit = *head;
    r_.previous_commit = booted_.commit;
    ++r_.download_attempts;
    if (!Go(State::kDownloading, "new commit " + *head)) return Error(save_error_);
    return Download();
  }

  StepResult Download() {
    if (cfg_.download.deltas) {
      // The static delta from the booted commit (or from empty) with libcurl: rate limit,
      // byte-range resume across steps and restarts (ota/README.md, "Delta download").
      internal::DeltaResult d = internal::FetchAndApplyDelta(
          cfg_.sysroot, r_.previous_commit, cfg_.state_dir + "/download", cfg_.download);
      switch (d.outcome) {
        case internal::DeltaOutcome::kApplied:
          return Downloaded(d.commit);
        case internal::DeltaOutcome::kRefused:
          return Refuse("refused: " + d.message);
        case internal::DeltaOutcome::kFailed:  // a 4xx: not retried until the next check
          return Fail("download failed: " + d.message);
        case internal::DeltaOutcome::kInterrupted:
          return Retry(Outcome::kIdle, std::string(d.disk_full ? "pull stopped, disk full"
                                                               : "download interrupted") +
                                           ", will resume: " + d.message);
        case internal::DeltaOutcome::kNoDelta:
          // Degraded: libostree's pull has no rate limit and no byte-level resume.
          MetricsRegistry::Global()
              .GetCounter("outpost_ota_delta_fallbacks_total",
                          "OTA updates pulled by libostree because no usable static delta was "
                          "found (no rate limit, no byte-range resume)")
              .Inc();
          OP_LOG_WARN(
              "ota agent: degraded: {}; falling back to libostree's pull (no rate limit, "
              "no byte-range resume)",
              d.message);
          break;
      }
    }
    auto pulled = Pull(cfg_.sysroot);
    if (!pulled.ok()) {
      if (pulled.status().code() == Code::kInvalidArgument)
        return Refuse("refused: " + pulled.status().message());
      // The network, the server or a full disk: stay in downloading; the next step resumes
      // (bounded by Resume(): max_download_attempts).
      const bool full = pulled.status().code() == Code::kResourceExhausted;
      return Retry(Outcome::kIdle, std::string(full ? "pull stopped, disk full" : "pull interrupted") +
                                       ", will resume: " + pulled.status().message());
    }
    return Downloaded(*pulled);
  }

  StepResult Downloaded(const std::string& commit) {
    if (commit != r_.target_commit) {
      OP_LOG_INFO("ota agent: the ref moved from {} to {} during the check", r_.target_commit,
                  commit);
      r_.target_commit = commit;
    }
    if (!Go(State::kVerifying, "pulled " + commit)) return Error(save_error_);
    return VerifyAndDeploy();
  }

  StepResult VerifyAndDeploy() {
    Status v = VerifyCommit(cfg_.sysroot, r_.target_commit);
    if (!v.ok()) {
      if (v.code() == Code::kInvalidArgument) return Refuse("verification failed: " + v.message());
      return Fail("verification failed: " + v.message());
    }
    auto list = ListDeployments(cfg_.sysroot);
    if (!list.ok()) return Error(list.status().message());
    Deployment dep;
    if (!list->empty() && (*list)[0].commit == r_.target_commit) {
      dep = (*list)[0];  // deployed before an interruption: not twice
    } else {
      auto d = Deploy(cfg_.sysroot, r_.target_commit);
      if (!d.ok()) {
        if (d.status().code() == Code::kResourceExhausted)  // stays in verifying: resumable
          return Retry(Outcome::kIdle, "deploy stopped, disk full, will resume: " +
                                           d.status().message());
        if (d.status().code() == Code::kInvalidArgument)
          return Refuse("deploy refused: " + d.status().message());
        return Fail("deploy failed: " + d.status().message());
      }
      dep = *d;
    }
    r_.target_version = dep.version;
    if (!Go(State::kStaged, "deployed " + dep.version + " at " + dep.path))
      return Error(save_error_);
    if (!Go(State::kRebooting, "staged; rebooting into the target")) return Error(save_error_);
    return Done(Outcome::kRebootRequested, "staged " + r_.target_commit + "; reboot requested");
  }

  // The health gate's verdict on the booted deployment; empty failures: pass.
  std::vector<std::string> RunGate() {
    if (booted_.path.empty()) return {"the booted deployment is unknown"};
    auto goldens = DeploymentGoldens(booted_.path, cfg_.tolerance);
    if (!goldens.ok()) return {goldens.status().message()};
    ProbeConfig pc;
    pc.host = cfg_.outpostd_host;
    pc.port = cfg_.outpostd_port;
    pc.models = *goldens;
    pc.runs = cfg_.gate_runs;
    pc.deadline_ms = cfg_.gate_deadline_ms;
    pc.broker_host = cfg_.broker_host;
    pc.broker_port = cfg_.broker_port;
    GateVerdict v = Judge(Probe(pc));
    OP_LOG_INFO("ota agent: health gate on {} ({} models): {}", booted_.commit, goldens->size(),
                v.pass ? "pass" : Join(v.failures, "; "));
    if (v.pass) return {};
    return v.failures.empty() ? std::vector<std::string>{"the health gate failed"} : v.failures;
  }

  StepResult Gate() {
    auto failures = RunGate();
    if (failures.empty()) {
      if (!Go(State::kCommitted, "health gate passed")) return Error(save_error_);
      return Done(Outcome::kCommitted, "committed " + r_.target_commit);
    }
    if (!Go(State::kRollingBack, "health gate failed: " + Join(failures, "; ")))
      return Error(save_error_);
    return RollBackNow();
  }

  StepResult RollBackNow() {
    Status s = RollBack(cfg_.sysroot, r_.previous_commit, r_.target_commit);
    if (!s.ok()) {
      if (s.code() == Code::kNotFound)
        return Fail(r_.reason + "; rollback impossible: " + s.message());
      return Error("rollback failed (will be retried): " + s.message());
    }
    r_.refused_commit = r_.target_commit;  // not taken again while it stays the head
    if (!Go(State::kRolledBack, r_.reason)) return Error(save_error_);
    if (booted_.commit != r_.previous_commit)
      return Done(Outcome::kRebootRequested,
                  "rolled back to " + r_.previous_commit + "; reboot requested: " + r_.reason);
    return Done(Outcome::kRolledBack, r_.reason);
  }

  StepResult VerifyUnknown() {
    auto failures = RunGate();
    if (failures.empty())
      return Done(Outcome::kIdle, r_.reason + "; the running deployment passes");
    // Nothing records which deployment was good: report, keep what runs.
    return Done(Outcome::kFailed, r_.reason + "; the running deployment fails its health gate: " +
                                      Join(failures, "; "));
  }

  StepResult Done(Outcome o, std::string message) {
    MetricsRegistry::Global()
        .GetCounter("outpost_ota_agent_steps_total", "OTA agent steps by outcome",
                    {{"outcome", std::string(OutcomeName(o))}})
        .Inc();
    if (o == Outcome::kFailed || o == Outcome::kError || o == Outcome::kRolledBack)
      OP_LOG_WARN("ota agent: {}: {}", OutcomeName(o), message);
    else
      OP_LOG_INFO("ota agent: {}: {}", OutcomeName(o), message);
    return {o, r_, std::move(message)};
  }
  StepResult Error(std::string message) {
    StepResult res = Done(Outcome::kError, std::move(message));
    res.retry = true;  // the state dir or the sysroot: try again later, with backoff
    return res;
  }

  const AgentConfig& cfg_;
  StateFile file_;
  Record r_;
  Deployment booted_;
  std::string save_error_;
  State was_ = State::kIdle;  // the state loaded
  bool loaded_ok_ = false;    // a sound state file was there

 public:
  StepResult Bundle(const std::string& dir) {
    auto started = Start();
    if (!started.ok()) return Error(started.status().message());
    if (started->action != Action::kNone || !AtRest(r_.state))
      return Error("an update is in progress (" + std::string(StateName(r_.state)) +
                   "): finish it first (outpost ota run-once)");
    if (!Go(State::kChecking, "checking the bundle " + dir)) return Error(save_error_);
    if (!cfg_.remote_url.empty()) {  // the keys we trust, as the daemon sets them
      Status s = AddRemote(cfg_.sysroot, cfg_.remote_url, cfg_.key_files);
      if (!s.ok()) return Fail("cannot configure the remote: " + s.message());
    }
    auto pick = PickBundleDelta(dir);
    if (!pick.ok()) return Fail("bundle: " + pick.status().message());
    const BundleDelta& b = *pick;
    if (b.to == booted_.commit) {
      const std::string why = "up to date at " + b.to + " (bundle " + dir + ")";
      if (!Go(State::kIdle, why)) return Error(save_error_);
      return Done(Outcome::kIdle, why);
    }
    r_.target_commit = b.to;
    r_.previous_commit = booted_.commit;
    ++r_.download_attempts;
    if (!Go(State::kDownloading, "bundle delta " + b.file)) return Error(save_error_);
    // The index is not signed: its sha256 only says the file is the one it lists. A mismatch
    // says nothing of the commit, so the commit is not marked refused.
    auto sha = internal::Sha256File(b.file);
    if (!sha.ok()) return Fail("bundle: " + sha.status().message());
    if (*sha != b.sha256)
      return Fail("bundle: '" + b.file + "' has sha256 " + *sha + ", its index says " + b.sha256);
    // libostree's offline application checks no signature: ApplyStaticDelta does.
    auto applied = internal::ApplyStaticDelta(cfg_.sysroot, b.file, b.to, booted_.commit);
    if (!applied.ok()) {
      if (applied.status().code() == Code::kInvalidArgument)
        return Refuse("refused: bundle '" + b.file + "': " + applied.status().message());
      return Fail("bundle '" + b.file + "' not applied: " + applied.status().message());
    }
    return Downloaded(*applied);
  }

 private:
  static bool AtRest(State s) {
    return s == State::kIdle || s == State::kCommitted || s == State::kRolledBack ||
           s == State::kFailed;
  }

  struct BundleDelta {
    std::string file, from, to, sha256;
  };
  // The delta file of outpost-bundle.json (image/README.md) for our ref, from the booted commit
  // or else from empty, leading to the bundle's head of the ref.
  Expected<BundleDelta> PickBundleDelta(const std::string& dir) {
    const std::string index = dir + "/outpost-bundle.json";
    std::ifstream in(index);
    if (!in) return NotFound("cannot read '" + index + "'");
    auto j = nlohmann::json::parse(in, nullptr, false);
    if (j.is_discarded() || !j.is_object() || j.value("format", "") != "outpost-bundle/1" ||
        !j.contains("refs") || !j["refs"].is_object() || !j.contains("deltas") ||
        !j["deltas"].is_array())
      return InvalidArgument("'" + index + "' is not an outpost-bundle/1 index");
    const std::string& ref = cfg_.sysroot.ref;
    if (!j["refs"].contains(ref) || !j["refs"][ref].is_string())
      return NotFound("'" + index + "' has no ref " + ref);
    const std::string head = j["refs"][ref].get<std::string>();
    std::optional<BundleDelta> from_booted, from_empty;
    for (const auto& e : j["deltas"]) {
      if (!e.is_object() || e.value("ref", "") != ref || e.value("to", "") != head) continue;
      BundleDelta b{e.value("file", ""), e.value("from", ""), head, e.value("sha256", "")};
      if (b.file.empty() || b.file.find("..") != std::string::npos || b.sha256.empty())
        return InvalidArgument("'" + index + "': a delta entry without a usable file or sha256");
      b.file = dir + "/" + b.file;
      if (!b.from.empty() && b.from == booted_.commit) from_booted = b;
      if (b.from.empty()) from_empty = b;
    }
    if (head == booted_.commit) return BundleDelta{"", "", head, ""};
    if (from_booted) return *from_booted;
    if (from_empty) return *from_empty;
    return NotFound("'" + index + "' has no delta to " + head + " from " +
                    (booted_.commit.empty() ? "empty" : booted_.commit + " nor from empty"));
  }
};

}  // namespace

StepResult RunOnce(const AgentConfig& cfg) { return Agent(cfg).Run(); }

StepResult ApplyBundle(const AgentConfig& cfg, const std::string& bundle_dir) {
  return Agent(cfg).Bundle(bundle_dir);
}

}  // namespace outpost::ota
