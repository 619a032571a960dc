// A small argument parser for the outpost subcommands: flags, repeated flags, positionals.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "outpost/core/status.h"

namespace outpost::ota {
struct AgentConfig;
}

namespace outpost::cli {

// Exit code for usage errors.
constexpr int kUsageError = 2;

struct FlagSpec {
  std::string name;        // "--backend"
  bool takes_value = true;
  bool repeated = false;
};

class Args {
 public:
  // Parses argv[first..]. On error, returns false and sets error().
  bool Parse(int argc, char** argv, int first, const std::vector<FlagSpec>& specs, int min_pos, int max_pos);
  const std::string& error() const { return error_; }
  bool Has(const std::string& f) const { return values_.count(f) != 0; }
  std::string Get(const std::string& f, const std::string& def = "") const;
  const std::vector<std::string>& All(const std::string& f) const;
  const std::vector<std::string>& positional() const { return pos_; }
  bool help() const { return help_; }
  // Parses an integer flag; false (and error set) when malformed or outside [lo, hi].
  bool GetInt(const std::string& f, long long def, long long lo, long long hi, long long* out);

 private:
  std::map<std::string, std::vector<std::string>> values_;
  std::vector<std::string> pos_;
  std::string error_;
  bool help_ = false;
};

int Usage(const char* usage, const std::string& error);  // prints error + usage to stderr, returns 2
// Prints "outpost[ <command>]: <status>" to stderr and returns 1 (a failure that is not a usage
// error).
int Fail(const Status& s, std::string_view command = {});

int CmdRun(int argc, char** argv);
int CmdInspect(int argc, char** argv);
int CmdBench(int argc, char** argv);
int CmdConformance(int argc, char** argv);
int CmdTelemetry(int argc, char** argv);  // outpost telemetry tail
int CmdImage(int argc, char** argv);  // outpost image build|bundle|verify
int CmdOta(int argc, char** argv);    // outpost ota status|run-once|agent
int CmdOtaAgent(int argc, char** argv);  // outpost ota agent (cmd_ota_agent.cpp)
// The flags `ota run-once`, `ota agent` and `ota apply-bundle` add to their settings (--sysroot,
// --osname, --remote-name, --boot-id, --booted-commit; cmd_ota.cpp), and the trusted
// fingerprints of the configured key files.
Status OtaLocalFlags(const Args& a, ota::AgentConfig& c);
int CmdQuantize(int argc, char** argv);  // outpost quantize (quantize/)

}  // namespace outpost::cli
