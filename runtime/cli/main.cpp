// outpost: the command-line tool. Thin: parses arguments and calls the engine or image/.
#include <cstdio>
#include <cstring>
#include <string>

#include "args.h"
#include "outpost/core/log.h"

namespace {
const char* kUsage =
    "usage: outpost <command> [options]\n"
    "\n"
    "commands:\n"
    "  run MODEL --input NAME=FILE ...   run a model on .pb/.npy inputs, write outputs as .npy\n"
    "  inspect MODEL                     inputs, outputs, ops, shapes, placement, planned memory\n"
    "  bench MODEL                       load time, first run, latency percentiles, peak memory\n"
    "  conformance SUITE_DIR             run the ONNX node test suite and write a JSON report\n"
    "  telemetry tail --broker URL       subscribe to a broker and print outpost telemetry\n"
    "  image build|bundle|verify         signed OSTree images and model bundles, USB bundles\n"
    "  ota status [--json]               the update agent's persisted state\n"
    "  quantize IN OUT --calibration DIR  post-training INT8 quantization into a QDQ model\n"
    "\n"
    "'outpost <command> --help' describes each command.\n";
}  // namespace

int main(int argc, char** argv) {
  outpost::InitLogging("warn");
  if (argc < 2) return outpost::cli::Usage(kUsage, "no command given");
  std::string cmd = argv[1];
  if (cmd == "--help" || cmd == "-h" || cmd == "help") {
    std::fputs(kUsage, stdout);
    return 0;
  }
  if (cmd == "run") return outpost::cli::CmdRun(argc, argv);
  if (cmd == "inspect") return outpost::cli::CmdInspect(argc, argv);
  if (cmd == "bench") return outpost::cli::CmdBench(argc, argv);
  if (cmd == "conformance") return outpost::cli::CmdConformance(argc, argv);
  if (cmd == "telemetry") return outpost::cli::CmdTelemetry(argc, argv);
  if (cmd == "image") return outpost::cli::CmdImage(argc, argv);
  if (cmd == "ota") return outpost::cli::CmdOta(argc, argv);
  if (cmd == "quantize") return outpost::cli::CmdQuantize(argc, argv);
  return outpost::cli::Usage(kUsage, "unknown command '" + cmd + "'");
}
