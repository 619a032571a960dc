// outpost quantize: post-training quantization into a QDQ model (quantize/).
#include <cstdio>
#include <sstream>

#include "common.h"
#include "outpost/quantize/quantize.h"

namespace outpost::cli {
namespace {

const char* kQuantizeUsage =
    "usage: outpost quantize IN.onnx OUT.onnx --calibration DIR\n"
    "                        [--method minmax|percentile|entropy] [--percentile P]\n"
    "                        [--per-channel] [--activations int8|uint8]\n"
    "                        [--weights int8|int4 [--block-size N] [--int4-as-int8]]\n"
    "                        [--exclude NODE|OPTYPE[,...]] ...\n"
    "                        [--eval DIR --labels FILE\n"
    "                         [--max-accuracy-drop PTS [--auto-exclude]]]\n"
    "                        [--latency BACKEND[,...]|none] [--keep-names] [--fp16]\n"
    "\n"
    "Folds BatchNormalization into the Conv before it, calibrates activation ranges on the\n"
    "samples in DIR (one-input model: one .npy/.pb per sample; several inputs: one subfolder per\n"
    "sample holding <input name>.npy; sorted order) and writes a QDQ model: QuantizeLinear/\n"
    "DequantizeLinear on the activations feeding Conv, MatMul and Gemm, int8 weights (symmetric,\n"
    "per tensor or per output channel) and int32 biases behind DequantizeLinear.\n"
    "Prints model size before/after, per-layer output SNR against float, accuracy float vs\n"
    "quantized (top-1 of the first output against --labels, one class per line per --eval sample)\n"
    "and latency float vs quantized per backend (default cpu,opencl).\n"
    "--max-accuracy-drop: when the drop in points exceeds PTS nothing is written and the exit\n"
    "status is 3; --auto-exclude keeps the most sensitive layers (lowest model-output SNR when\n"
    "quantized alone) in float, one at a time, until the gate passes. Intermediate values are\n"
    "renamed t<k> in OUT (node names stay) unless --keep-names.\n"
    "Exit status: 0 written, 1 error, 2 usage, 3 gate failed.\n"
    "--weights int4: MatMul/Gemm weights int4 in blocks of N (default 32) along the reduction\n"
    "axis, weight-only (their inputs and bias stay float); the file needs opset 21 (Outpost\n"
    "and ONNX Runtime run it; Outpost unpacks int4 at load). Accuracy and latency are measured\n"
    "with the same values held as int8; --int4-as-int8 writes that twin instead.\n"
    "--fp16: a float16 model instead (weights and compute in float16, Casts at the float32\n"
    "inputs and outputs); the report and gate apply, --per-channel/--exclude/--auto-exclude and\n"
    "int4 do not.\n";

constexpr int kGateFailed = 3;

std::vector<std::string> SplitCommas(const std::vector<std::string>& values) {
  std::vector<std::string> out;
  for (const std::string& v : values) {
    std::stringstream ss(v);
    std::string item;
    while (std::getline(ss, item, ','))
      if (!item.empty()) out.push_back(item);
  }
  return out;
}

}  // namespace

int CmdQuantize(int argc, char** argv) {
  Args a;
  const std::vector<FlagSpec> specs = {{"--calibration"},
                                       {"--method"},
                                       {"--percentile"},
                                       {"--per-channel", false},
                                       {"--activations"},
                                       {"--weights"},
                                       {"--block-size"},
                                       {"--exclude", true, true},
                                       {"--fp16", false},
                                       {"--eval"},
                                       {"--labels"},
                                       {"--max-accuracy-drop"},
                                       {"--auto-exclude", false},
                                       {"--latency"},
                                       {"--keep-names", false},
                                       {"--int4-as-int8", false}};
  if (!a.Parse(argc, argv, 2, specs, 2, 2)) return Usage(kQuantizeUsage, a.error());
  if (a.help()) return std::fputs(kQuantizeUsage, stdout), 0;
  quantize::Options o;
  o.calibration_dir = a.Get("--calibration");
  if (o.calibration_dir.empty()) return Usage(kQuantizeUsage, "--calibration DIR is required");
  auto method = quantize::ParseMethod(a.Get("--method", "minmax"));
  if (!method.ok()) return Usage(kQuantizeUsage, method.status().message());
  o.method = *method;
  if (a.Has("--percentile")) {
    try {
      o.percentile = std::stod(a.Get("--percentile"));
    } catch (...) {
      o.percentile = -1;
    }
    if (!(o.percentile > 0 && o.percentile <= 100))
      return Usage(kQuantizeUsage, "--percentile must be a number in (0, 100]");
  }
  o.per_channel = a.Has("--per-channel");
  const std::string acts = a.Get("--activations", "int8");
  if (acts != "int8" && acts != "uint8")
    return Usage(kQuantizeUsage, "--activations must be int8 or uint8");
  o.activations = acts == "uint8" ? DataType::kUInt8 : DataType::kInt8;
  const std::string weights = a.Get("--weights", "int8");
  if (weights != "int8" && weights != "int4")
    return Usage(kQuantizeUsage, "--weights must be int8 or int4");
  o.weight_bits = weights == "int4" ? 4 : 8;
  long long block = 32;
  if (!a.GetInt("--block-size", 32, 1, 1 << 20, &block)) return Usage(kQuantizeUsage, a.error());
  if (a.Has("--block-size") && o.weight_bits != 4)
    return Usage(kQuantizeUsage, "--block-size goes with --weights int4");
  o.block_size = static_cast<int>(block);
  o.int4_as_int8 = a.Has("--int4-as-int8");
  if (o.int4_as_int8 && o.weight_bits != 4)
    return Usage(kQuantizeUsage, "--int4-as-int8 goes with --weights int4");
  o.fp16 = a.Has("--fp16");
  o.exclude = SplitCommas(a.All("--exclude"));
  o.eval_dir = a.Get("--eval");
  o.labels_file = a.Get("--labels");
  if (a.Has("--max-accuracy-drop")) {
    try {
      o.max_accuracy_drop = std::stod(a.Get("--max-accuracy-drop"));
    } catch (...) {
      o.max_accuracy_drop = -1;
    }
    if (o.max_accuracy_drop < 0)
      return Usage(kQuantizeUsage, "--max-accuracy-drop must be a non-negative number of points");
  }
  o.auto_exclude = a.Has("--auto-exclude");
  o.keep_names = a.Has("--keep-names");
  const std::string lat = a.Get("--latency", "cpu,opencl");
  if (lat != "none") o.latency_backends = SplitCommas({lat});
  for (const auto& b : o.latency_backends)
    if (b != "cpu" && b != "opencl")
      return Usage(kQuantizeUsage, "--latency: unknown backend '" + b + "'");

  auto r = quantize::QuantizeModel(a.positional()[0], a.positional()[1], o);
  if (!r.ok()) return Fail(r.status(), "quantize");
  std::fputs(r->ToText().c_str(), stdout);
  if (!r->written) {
    std::fprintf(stderr,
                 "outpost quantize: accuracy drop %.2f points exceeds --max-accuracy-drop %.2f "
                 "(float %.2f%%, quantized %.2f%%); nothing written\n",
                 r->float_accuracy - r->quant_accuracy, o.max_accuracy_drop, r->float_accuracy,
                 r->quant_accuracy);
    return kGateFailed;
  }
  std::printf("wrote %s\n", a.positional()[1].c_str());
  return 0;
}

}  // namespace outpost::cli
