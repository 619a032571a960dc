// outpost ota status: the update agent's persisted state, read from its state file.
// outpost ota run-once: one step of the update agent (ota/agent.h).
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string>

#include "args.h"
#include "outpost/image/image.h"
#include "outpost/ota/agent.h"
#include "outpost/ota/state.h"

namespace outpost::cli {

namespace {

const char* kOtaUsage =
    "usage: outpost ota status [--state-dir DIR] [--json]\n"
    "       outpost ota agent [--config FILE] ... (outpost ota agent --help)\n"
    "       outpost ota run-once --trusted-key FILE... [--state-dir DIR] [--sysroot PATH]\n"
    "           [--osname NAME] [--remote URL] [--remote-name NAME] [--ref REF]\n"
    "           [--outpostd HOST:PORT] [--gate-deadline-ms N] [--gate-runs N]\n"
    "           [--boot-id ID] [--booted-commit COMMIT]\n"
    "\n"
    "run-once: one step of the update agent from its persisted state: a check of the remote's\n"
    "ref (signed summary), then pull, verify (only --trusted-key signers count), deploy and ask\n"
    "for a reboot; after the reboot, the health gate (outpostd ready, each model bundle of the\n"
    "booted deployment gives its golden output) commits or rolls back. Prints the outcome and\n"
    "the record as JSON. Exit 0 done, 100 reboot requested (the caller reboots), 1 error.\n"
    "Defaults: --sysroot /, --osname outpost, --remote-name outpost, --ref\n"
    "outpost/stable/x86_64, --outpostd 127.0.0.1:8080, --gate-deadline-ms 60000, --gate-runs\n"
    "20. --remote reconfigures the remote (URL and keys) before the check. --boot-id and\n"
    "--booted-commit stand in for the kernel's boot id and ostree's booted deployment (tests,\n"
    "fake sysroots).\n"
    "\n"
    "status: prints the update agent's state (checking, downloading, verifying, staged,\n"
    "rebooting, verifying-after-boot, committed, rolling-back, rolled-back, failed; idle when\n"
    "no update was ever started), its target and previous commits, boot count, attempts and\n"
    "the reason of the last transition, from DIR/state.json (default /var/lib/outpost/ota).\n"
    "Exit 1 when the state file is unreadable or corrupt (named in the error).\n";

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
                {"--booted-commit"}},
               0, 0))
    return Usage(kOtaUsage, a.error());
  if (a.help()) return std::fputs(kOtaUsage, stdout), 0;
  if (!a.Has("--trusted-key")) return Usage(kOtaUsage, "run-once needs --trusted-key");
  long long deadline = 0, runs = 0;
  if (!a.GetInt("--gate-deadline-ms", 60000, 100, 3600000, &deadline) ||
      !a.GetInt("--gate-runs", 20, 1, 10000, &runs))
    return Usage(kOtaUsage, a.error());
  ota::AgentConfig c;
  c.state_dir = a.Get("--state-dir", c.state_dir);
  c.sysroot.sysroot = a.Get("--sysroot", "/");
  c.sysroot.osname = a.Get("--osname", "outpost");
  c.sysroot.remote = a.Get("--remote-name", "outpost");
  c.sysroot.ref = a.Get("--ref", "outpost/stable/x86_64");
  c.remote_url = a.Get("--remote");
  c.key_files = a.All("--trusted-key");
  auto fprs = image::KeyFingerprints(c.key_files);
  if (!fprs.ok()) {
    return Fail(fprs.status(), "ota");
  }
  c.sysroot.trusted_fingerprints = *fprs;
  const std::string addr = a.Get("--outpostd", "127.0.0.1:8080");
  const auto colon = addr.rfind(':');
  const int port = colon == std::string::npos ? -1 : std::atoi(addr.c_str() + colon + 1);
  if (colon == 0 || port <= 0 || port > 65535)
    return Usage(kOtaUsage, "--outpostd wants HOST:PORT, got '" + addr + "'");
  c.outpostd_host = addr.substr(0, colon);
  c.outpostd_port = static_cast<uint16_t>(port);
  c.gate_deadline_ms = static_cast<double>(deadline);
  c.gate_runs = static_cast<int>(runs);
  c.boot_id = a.Get("--boot-id");
  c.booted_commit = a.Get("--booted-commit");
  ota::StepResult r = ota::RunOnce(c);
  nlohmann::json j = {{"outcome", ota::OutcomeName(r.outcome)},
                      {"message", r.message},
                      {"record", nlohmann::json::parse(ota::RecordJson(r.record))}};
  std::printf("%s\n", j.dump(2).c_str());
  if (r.outcome == ota::Outcome::kError) return 1;
  return r.outcome == ota::Outcome::kRebootRequested ? 100 : 0;
}

}  // namespace

int CmdOta(int argc, char** argv) {
  if (argc < 3) return Usage(kOtaUsage, "no subcommand given");
  std::string sub = argv[2];
  if (sub == "--help" || sub == "-h") return std::fputs(kOtaUsage, stdout), 0;
  if (sub == "status") return Status(argc, argv);
  if (sub == "run-once") return RunOnce(argc, argv);
  if (sub == "agent") return CmdOtaAgent(argc, argv);
  return Usage(kOtaUsage, "unknown subcommand '" + sub + "'");
}

}  // namespace outpost::cli
