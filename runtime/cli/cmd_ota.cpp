// outpost ota status: the update agent's persisted state, read from its state file.
// outpost ota run-once: one step of the update agent (ota/agent.h).
// outpost ota apply-bundle: a USB/offline bundle through the agent (ota/agent.h).
// outpost ota models update|rollback|list: model-only updates (ota/models.h).
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string>

#include "args.h"
#include "outpost/config/device_config.h"
#include "outpost/image/image.h"
#include "outpost/ota/agent.h"
#include "outpost/ota/daemon.h"
#include "outpost/ota/models.h"
#include "outpost/ota/state.h"

namespace outpost::cli {

namespace {

const char* kOtaUsage =
    "usage: outpost ota status [--state-dir DIR] [--json]\n"
    "       outpost ota agent [--config FILE] ... (outpost ota agent --help)\n"
    "       outpost ota run-once --trusted-key FILE... [--state-dir DIR] [--sysroot PATH]\n"
    "           [--osname NAME] [--remote URL] [--remote-name NAME] [--ref REF]\n"
    "           [--outpostd HOST:PORT] [--gate-deadline-ms N] [--gate-runs N]\n"
    "           [--boot-id ID] [--booted-commit COMMIT] [--rate-limit-kbps N]\n"
    "       outpost ota apply-bundle BUNDLE_DIR [--config FILE] [--sysroot PATH]\n"
    "           [--osname NAME] [--remote-name NAME] [--boot-id ID] [--booted-commit COMMIT]\n"
    "       outpost ota models update NAME --trusted-key FILE... [MODEL OPTIONS]\n"
    "       outpost ota models rollback NAME [MODEL OPTIONS]\n"
    "       outpost ota models list [--state-dir DIR] [--json]\n"
    "\n"
    "run-once: one step of the update agent from its persisted state: a check of the remote's\n"
    "ref (signed summary), then pull, verify (only --trusted-key signers count), deploy and ask\n"
    "for a reboot; after the reboot, the health gate (outpostd ready, each model bundle of the\n"
    "booted deployment gives its golden output) commits or rolls back. Prints the outcome and\n"
    "the record as JSON. Exit 0 done, 100 reboot requested (the caller reboots), 1 error.\n"
    "Defaults: --sysroot /, --osname outpost, --remote-name outpost, --ref\n"
    "outpost/stable/x86_64, --outpostd 127.0.0.1:8080, --gate-deadline-ms 60000, --gate-runs\n"
    "20. --remote reconfigures the remote (URL and keys) before the check. --rate-limit-kbps:\n"
    "the static delta's download limit in kilobits/s (0, the default: unlimited). --boot-id and\n"
    "--booted-commit stand in for the kernel's boot id and ostree's booted deployment (tests,\n"
    "fake sysroots).\n"
    "\n"
    "apply-bundle: a USB bundle (outpost image bundle) as the agent's update: the delta file\n"
    "for ota.ref from the booted commit (else from empty) checked against the bundle index's\n"
    "sha256, applied offline, its commit verified against ota.trusted_keys_dir (a signature by\n"
    "a trusted key, no downgrade), deployed and the reboot asked for; the agent's next steps run\n"
    "the health gate after the boot. Settings from the device config (default\n"
    "/etc/outpost/device.yaml: ota.ref, ota.trusted_keys_dir, ota.state_dir, ota.remote_url).\n"
    "Only from a state at rest (no update in progress). Prints the outcome and the record as\n"
    "JSON. Exit 100 staged (reboot requested), 0 up to date, 1 refused or failed.\n"
    "\n"
    "status: prints the update agent's state (checking, downloading, verifying, staged,\n"
    "rebooting, verifying-after-boot, committed, rolling-back, rolled-back, failed; idle when\n"
    "no update was ever started), its target and previous commits, boot count, attempts and\n"
    "the reason of the last transition, from DIR/state.json (default /var/lib/outpost/ota).\n"
    "Exit 1 when the state file is unreadable or corrupt (named in the error).\n"
    "\n"
    "models update: pulls the model bundle ref PREFIX/NAME (signature checked: only\n"
    "--trusted-key signers count), checks it out to MODELS_ROOT/<commit>, checks its files\n"
    "against the commit, points DIR/NAME.yaml (outpostd's manifest directory) at it and asks\n"
    "outpostd to load it: outpostd loads it beside the serving version, runs its golden check\n"
    "and swaps only when it passes; then the golden input is sent over V2 and the answer\n"
    "compared. A version that fails never serves (the previous one keeps serving) and is not\n"
    "tried again. models rollback: the previous version serves again. models list: what\n"
    "STATE_DIR/models.json records. Update and rollback print the outcome as JSON; exit 0\n"
    "updated, up to date or rolled back, 1 otherwise.\n"
    "Model options (defaults): --remote URL (reconfigures the remote with the keys)\n"
    "  --remote-name outpost  --repo /var/lib/outpost/models/.repo\n"
    "  --ref-prefix outpost/stable/models  --models-root /var/lib/outpost/models\n"
    "  --manifest-dir /etc/outpost/models.d  --state-dir /var/lib/outpost/ota\n"
    "  --outpostd 127.0.0.1:8080  --keep 2 (previous versions kept)  --gate-runs 3\n";

// "HOST:PORT" -> host and port; false when malformed.
bool HostPort(const std::string& addr, std::string* host, uint16_t* port) {
  const auto colon = addr.rfind(':');
  const int p = colon == std::string::npos ? -1 : std::atoi(addr.c_str() + colon + 1);
  if (colon == 0 || p <= 0 || p > 65535) return false;
  *host = addr.substr(0, colon);
  *port = static_cast<uint16_t>(p);
  return true;
}

int Status(int argc, char** argv) {
  Args a;
  if (!a.Parse(argc, argv, 3, {{"--state-dir"}, {"--json", false}}, 0, 0))
    return Usage(kOtaUsage, a.error());
  if (a.help()) return std::fputs(kOtaUsage, stdout), 0;
  ota::StateFile file(a.Get("--state-dir", "/var/lib/outpost/ota"));
  auto loaded = file.Load();
  const bool as_json = a.Has("--json");
  if (!loaded.ok()) {
    if (as_json) {
      nlohmann::json j = {
          {"state_file", file.path()}, {"state", nullptr}, {"error", loaded.status().message()}};
      std::printf("%s\n", j.dump(2).c_str());
    }
    return Fail(loaded.status(), "ota");
  }
  ota::Record r = loaded->value_or(ota::Record{});
  nlohmann::json j = nlohmann::json::parse(ota::RecordJson(r));
  j["state_file"] = file.path();
  j["present"] = loaded->has_value();
  if (as_json) {
    std::printf("%s\n", j.dump(2).c_str());
    return 0;
  }
  for (const auto& [k, v] : j.items())
    std::printf("%s: %s\n", k.c_str(),
                v.is_string() ? v.get<std::string>().c_str() : v.dump().c_str());
  return 0;
}

void PrintStep(const ota::StepResult& r) {
  nlohmann::json j = {{"outcome", ota::OutcomeName(r.outcome)},
                      {"message", r.message},
                      {"record", nlohmann::json::parse(ota::RecordJson(r.record))}};
  std::printf("%s\n", j.dump(2).c_str());
}

int RunOnce(int argc, char** argv) {
  Args a;
  if (!a.Parse(argc, argv, 3,
               {{"--state-dir"},
                {"--sysroot"},
                {"--osname"},
                {"--remote"},
                {"--remote-name"},
                {"--ref"},
                {"--trusted-key", true, true},
                {"--outpostd"},
                {"--gate-deadline-ms"},
                {"--gate-runs"},
                {"--boot-id"},
                {"--booted-commit"},
                {"--rate-limit-kbps"}},
               0, 0))
    return Usage(kOtaUsage, a.error());
  if (a.help()) return std::fputs(kOtaUsage, stdout), 0;
  if (!a.Has("--trusted-key")) return Usage(kOtaUsage, "run-once needs --trusted-key");
  long long deadline = 0, runs = 0, rate = 0;
  if (!a.GetInt("--gate-deadline-ms", 60000, 100, 3600000, &deadline) ||
      !a.GetInt("--gate-runs", 20, 1, 10000, &runs) ||
      !a.GetInt("--rate-limit-kbps", 0, 0, 100000000, &rate))
    return Usage(kOtaUsage, a.error());
  ota::AgentConfig c;
  c.state_dir = a.Get("--state-dir", c.state_dir);
  c.sysroot.ref = a.Get("--ref", "outpost/stable/x86_64");
  c.remote_url = a.Get("--remote");
  c.key_files = a.All("--trusted-key");
  // --sysroot, --osname, --remote-name, --boot-id, --booted-commit and the keys' fingerprints.
  if (outpost::Status s = OtaLocalFlags(a, c); !s.ok()) return Fail(s, "ota");
  const std::string addr = a.Get("--outpostd", "127.0.0.1:8080");
  if (!HostPort(addr, &c.outpostd_host, &c.outpostd_port))
    return Usage(kOtaUsage, "--outpostd wants HOST:PORT, got '" + addr + "'");
  c.gate_deadline_ms = static_cast<double>(deadline);
  c.gate_runs = static_cast<int>(runs);
  c.download.rate_limit_kbps = rate;
  ota::StepResult r = ota::RunOnce(c);
  PrintStep(r);
  if (r.outcome == ota::Outcome::kError) return 1;
  return r.outcome == ota::Outcome::kRebootRequested ? 100 : 0;
}

int ApplyBundle(int argc, char** argv) {
  Args a;
  if (!a.Parse(argc, argv, 3,
               {{"--config"},
                {"--sysroot"},
                {"--osname"},
                {"--remote-name"},
                {"--boot-id"},
                {"--booted-commit"}},
               1, 1))
    return Usage(kOtaUsage, a.error());
  if (a.help()) return std::fputs(kOtaUsage, stdout), 0;
  auto dc = config::LoadDeviceConfig(a.Get("--config", "/etc/outpost/device.yaml"));
  if (!dc.ok()) return Fail(dc.status(), "ota apply-bundle");
  auto d = ota::DaemonConfigFromDevice(*dc);
  if (!d.ok()) return Fail(d.status(), "ota apply-bundle");
  ota::AgentConfig& c = d->agent;
  if (c.sysroot.ref.empty() || c.key_files.empty())
    return Fail(InvalidArgument("ota.ref and ota.trusted_keys_dir are needed in " + dc->source),
                "ota apply-bundle");
  if (outpost::Status s = OtaLocalFlags(a, c); !s.ok()) return Fail(s, "ota apply-bundle");
  ota::StepResult r = ota::ApplyBundle(c, a.positional()[0]);
  PrintStep(r);
  if (r.outcome == ota::Outcome::kRebootRequested) return 100;
  return r.outcome == ota::Outcome::kIdle ? 0 : 1;
}

int Models(int argc, char** argv) {
  if (argc < 4) return Usage(kOtaUsage, "ota models: no subcommand given");
  const std::string sub = argv[3];
  Args a;
  if (sub == "list") {
    if (!a.Parse(argc, argv, 4, {{"--state-dir"}, {"--json", false}}, 0, 0))
      return Usage(kOtaUsage, a.error());
    if (a.help()) return std::fputs(kOtaUsage, stdout), 0;
    auto list = ota::ListModels(a.Get("--state-dir", "/var/lib/outpost/ota"));
    if (!list.ok()) return Fail(list.status(), "ota models");
    nlohmann::json j = nlohmann::json::array();
    for (const auto& r : *list) j.push_back(nlohmann::json::parse(ota::ModelRecordJson(r)));
    if (a.Has("--json")) {
      std::printf("%s\n", j.dump(2).c_str());
      return 0;
    }
    for (const auto& r : *list) {
      std::printf("%s: %s (%s)", r.name.c_str(), r.current.version.c_str(),
                  r.current.commit.empty() ? "as found installed" : r.current.commit.c_str());
      for (const auto& p : r.previous)
        std::printf(", previous %s (%s)", p.version.c_str(),
                    p.commit.empty() ? "as found installed" : p.commit.c_str());
      if (!r.refused.empty()) std::printf(", %zu refused", r.refused.size());
      std::printf("\n");
    }
    return 0;
  }
  if (sub != "update" && sub != "rollback")
    return Usage(kOtaUsage, "unknown subcommand 'models " + sub + "'");
  if (!a.Parse(argc, argv, 4,
               {{"--state-dir"},
                {"--remote"},
                {"--remote-name"},
                {"--repo"},
                {"--ref-prefix"},
                {"--models-root"},
                {"--manifest-dir"},
                {"--trusted-key", true, true},
                {"--outpostd"},
                {"--keep"},
                {"--gate-runs"}},
               1, 1))
    return Usage(kOtaUsage, a.error());
  if (a.help()) return std::fputs(kOtaUsage, stdout), 0;
  long long keep = 0, runs = 0;
  if (!a.GetInt("--keep", 2, 0, 100, &keep) || !a.GetInt("--gate-runs", 3, 1, 10000, &runs))
    return Usage(kOtaUsage, a.error());
  ota::ModelUpdateConfig c;
  c.state_dir = a.Get("--state-dir", c.state_dir);
  c.models_root = a.Get("--models-root", c.models_root);
  c.source.repo = a.Get("--repo", c.models_root + "/.repo");
  c.source.remote = a.Get("--remote-name", "outpost");
  c.ref_prefix = a.Get("--ref-prefix", c.ref_prefix);
  c.manifest_dir = a.Get("--manifest-dir", c.manifest_dir);
  c.remote_url = a.Get("--remote");
  c.keep = static_cast<int>(keep);
  c.gate_runs = static_cast<int>(runs);
  const std::string addr = a.Get("--outpostd", "127.0.0.1:8080");
  if (!HostPort(addr, &c.outpostd_host, &c.outpostd_port))
    return Usage(kOtaUsage, "--outpostd wants HOST:PORT, got '" + addr + "'");
  if (sub == "update") {
    if (!a.Has("--trusted-key")) return Usage(kOtaUsage, "models update needs --trusted-key");
    c.key_files = a.All("--trusted-key");
    auto fprs = image::KeyFingerprints(c.key_files);
    if (!fprs.ok()) return Fail(fprs.status(), "ota models");
    c.source.trusted_fingerprints = *fprs;
  }
  const std::string& name = a.positional()[0];
  ota::ModelStepResult r = sub == "update" ? ota::UpdateModel(c, name) : ota::RollBackModel(c, name);
  auto ms = [](double v) { return v < 0 ? nlohmann::json(nullptr) : nlohmann::json(v); };
  nlohmann::json j = {{"outcome", ota::ModelOutcomeName(r.outcome)},
                      {"message", r.message},
                      {"commit", r.commit},
                      {"download_ms", ms(r.download_ms)},
                      {"swap_ms", ms(r.swap_ms)},
                      {"verify_ms", ms(r.verify_ms)},
                      {"record", nlohmann::json::parse(ota::ModelRecordJson(r.record))}};
  std::printf("%s\n", j.dump(2).c_str());
  const bool ok = r.outcome == ota::ModelOutcome::kUpdated ||
                  r.outcome == ota::ModelOutcome::kUpToDate ||
                  r.outcome == ota::ModelOutcome::kRolledBack;
  return ok ? 0 : 1;
}

}  // namespace

outpost::Status OtaLocalFlags(const Args& a, ota::AgentConfig& c) {
  c.sysroot.sysroot = a.Get("--sysroot", "/");
  c.sysroot.osname = a.Get("--osname", "outpost");
  c.sysroot.remote = a.Get("--remote-name", "outpost");
  c.boot_id = a.Get("--boot-id");
  c.booted_commit = a.Get("--booted-commit");
  auto fprs = image::KeyFingerprints(c.key_files);
  if (!fprs.ok()) return fprs.status();
  c.sysroot.trusted_fingerprints = *fprs;
  return outpost::Status::Ok();
}

int CmdOta(int argc, char** argv) {
  if (argc < 3) return Usage(kOtaUsage, "no subcommand given");
  std::string sub = argv[2];
  if (sub == "--help" || sub == "-h") return std::fputs(kOtaUsage, stdout), 0;
  if (sub == "status") return Status(argc, argv);
  if (sub == "run-once") return RunOnce(argc, argv);
  if (sub == "apply-bundle") return ApplyBundle(argc, argv);
  if (sub == "agent") return CmdOtaAgent(argc, argv);
  if (sub == "models") return Models(argc, argv);
  return Usage(kOtaUsage, "unknown subcommand '" + sub + "'");
}

}  // namespace outpost::cli
