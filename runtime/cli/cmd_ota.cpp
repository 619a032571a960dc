// outpost ota status: the update agent's persisted state, read from its state file.
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>

#include "args.h"
#include "outpost/ota/state.h"

namespace outpost::cli {

namespace {

const char* kOtaUsage =
    "usage: outpost ota status [--state-dir DIR] [--json]\n"
    "\n"
    "Prints the update agent's state (checking, downloading, verifying, staged, rebooting,\n"
    "verifying-after-boot, committed, rolling-back, rolled-back, failed; idle when no update was\n"
    "ever started), its target and previous commits, boot count, attempts and the reason of the\n"
    "last transition, from DIR/state.json (default /var/lib/outpost/ota). Exit 1 when the state\n"
    "file is unreadable or corrupt (named in the error).\n";

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
    std::fprintf(stderr, "outpost ota: %s\n", loaded.status().ToString().c_str());
    return 1;
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

}  // namespace

int CmdOta(int argc, char** argv) {
  if (argc < 3) return Usage(kOtaUsage, "no subcommand given");
  std::string sub = argv[2];
  if (sub == "--help" || sub == "-h") return std::fputs(kOtaUsage, stdout), 0;
  if (sub == "status") return Status(argc, argv);
  return Usage(kOtaUsage, "unknown subcommand '" + sub + "'");
}

}  // namespace outpost::cli
