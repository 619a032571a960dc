// The ONNX side of quantization: BatchNorm folding, finding the nodes to quantize, adding
// intermediate values as graph outputs (for calibration), and writing the QDQ model.
#pragma once

#include <onnx/onnx_pb.h>

#include <map>
#include <set>
#include <string>
#include <vector>

#include "outpost/core/dtype.h"
#include "outpost/core/status.h"

namespace outpost::quantize {

Expected<onnx::ModelProto> ReadModel(const std::string& path);

// Folds each BatchNormalization whose input is the sole use of a Conv output (constant weights
// and statistics) into that Conv. Returns how many were folded.
Expected<int> FoldBatchNorms(onnx::ModelProto* m);

// A Conv, MatMul or Gemm with a constant float weight, which the QDQ rewrite quantizes.
struct Target {
  std::string node;
  std::string op_type;
  std::string activation;  // the input quantized with Q/DQ (input 0)
  std::string weight;      // constant initializer
  std::string bias;        // constant initializer, or empty
  int weight_axis = 0;     // the output-channel axis of the weight
  std::string output;      // the node's own output (per-layer SNR)
  std::string requant;     // the value whose Q/DQ follows the node (after a sole Relu), or empty
  // INT4 blocked weights for MatMul/Gemm: weight-only (activations and bias stay float).
  bool weight_only = false;
};

// Quantizable nodes, minus those whose name or op type is in `exclude`. Node names are filled in
// ("<op>_<index>") where the model has none.
std::vector<Target> FindTargets(onnx::ModelProto* m, const std::set<std::string>& exclude);
// Every value that needs an activation range for `targets` (none for weight_only ones).
std::set<std::string> ActivationValues(const std::vector<Target>& targets);

// A copy of `m` whose graph outputs are followed by `extra` (values already outputs are skipped).
// Returns the serialized model and, per extra name, its output index.
std::string WithOutputs(const onnx::ModelProto& m, const std::vector<std::string>& extra,
                        std::map<std::string, int>* index);

struct Range {
  float min = 0;
  float max = 0;
};

struct QdqOptions {
  DataType activations = DataType::kInt8;
  bool per_channel = false;
  // weight_only targets: symmetric int4 [-8, 7] in blocks of block_size along the reduction
  // axis (DequantizeLinear block_size, opset 21, IR 10). int4_as_int8 stores the same values as
  // int8 (the engine holds int4 unpacked, a byte per value, so both run the same): evaluation
  // uses that twin.
  int block_size = 32;
  bool int4_as_int8 = false;
};

// The QDQ model. `ranges` must hold every value of ActivationValues(targets).
Expected<onnx::ModelProto> WriteQdq(const onnx::ModelProto& m, const std::vector<Target>& targets,
                                    const std::map<std::string, Range>& ranges,
                                    const QdqOptions& o);

// Float16 weights and compute: float initializers and Constant values become float16, Casts to
// float inside the graph cast to float16, and each float graph input/output gets a Cast at the
// boundary so the model's interface stays float32.
Status ConvertToFloat16(onnx::ModelProto* m);

// Renames every intermediate value (produced by a node, not a graph output) to "t<k>": on small
// models the exporter's long value names cost more bytes than int8 weights save. Node names stay.
void CompactValueNames(onnx::ModelProto* m);

}  // namespace outpost::quantize
