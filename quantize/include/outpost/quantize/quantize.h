// Post-training quantization of an ONNX model into a QDQ model (`outpost quantize`).
//
//   quantize::Options o;  o.calibration_dir = "calib/";  o.eval_dir = ...;
//   auto r = quantize::QuantizeModel("in.onnx", "out.onnx", o);
//   if (!r.ok()) ...;            // bad input: a Status naming the culprit
//   if (!r->written) ...;        // the accuracy gate refused: nothing was written
//   puts(r->ToText().c_str());
//
// The float model has its BatchNormalization nodes folded into the Conv before them, is run over
// the calibration set through outpost::engine::Session to measure activation ranges, and is
// rewritten with QuantizeLinear/DequantizeLinear pairs on the activations that feed Conv, MatMul
// and Gemm, DequantizeLinear on their int8 weights and int32 biases.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "outpost/core/dtype.h"
#include "outpost/core/status.h"

namespace outpost::quantize {

enum class Method { kMinMax, kPercentile, kEntropy };
Expected<Method> ParseMethod(const std::string& s);  // "minmax", "percentile", "entropy"
const char* MethodName(Method m);

struct Options {
  // Calibration samples: for a one-input model one .npy/.pb file per sample (a batch for that
  // input); for several inputs one subfolder per sample holding <input name>.npy. Sorted order.
  std::string calibration_dir;
  Method method = Method::kMinMax;
  double percentile = 99.99;  // kPercentile: the share of |values| kept inside the range
  bool per_channel = false;   // one weight scale per output channel
  DataType activations = DataType::kInt8;  // kInt8 or kUInt8
  // 8: int8 weights everywhere. 4: MatMul/Gemm weights int4 in blocks of block_size along the
  // reduction axis, weight-only (their activations and bias stay float; opset 21, IR 10); Conv
  // stays int8. The engine cannot hold 4-bit tensors yet, so calibration, accuracy and latency
  // use the same values stored as int8; the written file holds packed int4.
  int weight_bits = 8;
  int block_size = 32;
  // Write the int4 values as int8 (same DequantizeLinear blocks): for runtimes without int4,
  // Outpost's engine included. No size gain over int8 then.
  bool int4_as_int8 = false;
  // Float16 weights and compute instead of integer quantization: every float initializer and
  // op in float16, Casts at the float32 inputs/outputs. Calibration is not used (samples are
  // still checked); the gate applies; auto_exclude does not.
  bool fp16 = false;
  // Node names or op types left in float.
  std::vector<std::string> exclude;
  // Accuracy gate. eval_dir is laid out like calibration_dir; labels_file holds one integer class
  // per line, one line per sample in the same sorted order. Top-1 on the first output.
  std::string eval_dir;
  std::string labels_file;
  double max_accuracy_drop = -1;  // points; < 0: no gate
  bool auto_exclude = false;      // keep the most sensitive layers in float until the gate passes
  // Keep the float model's intermediate value names in the output (by default they become short
  // "t<k>" names: node names stay, and on small models long value names cost more than int8 saves).
  bool keep_names = false;
  // Backends to time float vs quantized on (each that can be created; others are reported).
  std::vector<std::string> latency_backends;
};

struct LayerReport {
  std::string node;
  std::string op_type;
  std::string output;
  bool quantized = false;
  double snr_db = 0;  // output of the quantized model vs the float model, over the eval set
};

struct LatencyReport {
  std::string backend;
  bool available = false;
  std::string why;      // when not available
  double float_ms = 0;  // mean per sample
  double quant_ms = 0;
  std::string device;  // the backend's description (its integer path among it)
};

struct Report {
  bool fp16 = false;  // a float16 model rather than a quantized one
  uint64_t float_bytes = 0;
  uint64_t quant_bytes = 0;
  int folded_batchnorms = 0;
  int quantized_nodes = 0;
  int calibration_samples = 0;
  bool evaluated = false;
  int eval_samples = 0;
  double float_accuracy = 0;  // percent
  double quant_accuracy = 0;
  bool gate_passed = true;
  bool written = false;
  std::vector<std::string> auto_excluded;  // in the order they were kept in float
  std::vector<LayerReport> layers;
  std::vector<LatencyReport> latency;
  std::string ToText() const;
};

// Quantizes `in_path` into `out_path`. Returns an error for bad input (unreadable or unsupported
// model, empty calibration set, sample shapes that do not match the model, labels that do not
// match the eval set). When the gate fails, returns a Report with written == false and leaves
// `out_path` untouched.
Expected<Report> QuantizeModel(const std::string& in_path, const std::string& out_path,
                               const Options& options);

}  // namespace outpost::quantize
