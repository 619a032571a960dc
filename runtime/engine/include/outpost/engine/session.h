// The engine's public face: load an ONNX model once, run it from many threads.
//
//   auto s = Session::Load("model.onnx", options);          // parse, validate, infer, plan
//   auto outs = (*s)->Run({{"input", tensor}});              // thread-safe
//
// Nothing outside the engine sees protobuf.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "outpost/core/status.h"
#include "outpost/core/tensor.h"
#include "outpost/kernels/backend.h"

namespace outpost::engine {

struct SessionOptions {
  // "cpu" or "opencl": the preferred backend; nodes it cannot run go to the CPU.
  std::string backend = "cpu";
  kernels::BackendOptions backend_options;
  bool fold_constants = true;
  // Fold Relu/Clip into the Conv before them (one pass over the output instead of two).
  bool fuse_activations = true;
  // Rewrite QDQ patterns (DequantizeLinear -> op -> QuantizeLinear) into integer kernels.
  bool fuse_qdq = true;
  // Largest model file accepted (protects against hostile inputs).
  uint64_t max_model_bytes = 2ull << 30;
  // Backends shared between sessions (a daemon serving many models); created when null.
  std::shared_ptr<kernels::Backend> cpu;
  std::shared_ptr<kernels::Backend> accelerator;
  // Time every node (synchronizing the device after each one) and keep per-op totals; for
  // `outpost bench --profile`. Slows runs down: never on in serving.
  bool profile = false;
};

// Per op type and backend, accumulated over the runs since load (profile mode only).
struct OpProfile {
  std::string op_type;  // fused nodes read "Conv+Relu"
  std::string backend;
  int64_t calls = 0;
  double total_ms = 0;
};

struct ValueInfo {
  std::string name;
  DataType dtype = DataType::kUndefined;
  // -1 for a symbolic or unknown dimension; dim_names holds the symbol ("" when none).
  std::vector<int64_t> dims;
  std::vector<std::string> dim_names;
  std::string ToString() const;  // "float32[N,3,224,224]"
};

struct NodePlacement {
  std::string node;
  std::string op_type;
  std::string backend;  // "cpu", "opencl", or "folded" (computed at load)
  std::string why;      // why not the preferred backend, when it is not
  // "integer" (8-bit data in), "float", "convert" (QuantizeLinear / DequantizeLinear and the
  // like) or "other" (shapes, indices, booleans).
  std::string precision;
  std::string qdq_from;  // for a node made by the QDQ fusion: the float op it replaces
};

struct LoadReport {
  std::map<std::string, int> opsets;  // domain ("" = ai.onnx) -> version
  std::string producer;
  int node_count = 0;
  int folded_nodes = 0;
  std::vector<NodePlacement> placement;
  uint64_t planned_peak_bytes = 0;  // per device arena, summed
  uint64_t constant_bytes = 0;
  int copies_inserted = 0;
  double load_ms = 0;
  bool shapes_static = true;
  // "name: description" of each backend the session holds (the CPU first), e.g.
  // "cpu: CPU, 2 threads, 8-bit products on AVX-512 VNNI".
  std::vector<std::string> backends;
};

class Session {
 public:
  virtual ~Session() = default;
  static Expected<std::unique_ptr<Session>> Load(const std::string& path,
                                                 const SessionOptions& options);
  static Expected<std::unique_ptr<Session>> LoadFromBytes(const std::string& bytes,
                                                          const std::string& base_dir,
                                                          const SessionOptions& options);

  virtual const std::vector<ValueInfo>& inputs() const = 0;
  virtual const std::vector<ValueInfo>& outputs() const = 0;
  virtual const LoadReport& report() const = 0;
  // Inferred type and shape of every value, for `outpost inspect`.
  virtual std::vector<std::pair<std::string, std::string>> ValueShapes() const = 0;

  // Runs the model. `inputs` are matched by name; every graph input without an initializer must
  // be given. Returns the graph outputs in order, in memory owned by the caller. Thread-safe.
  virtual Expected<std::vector<Tensor>> Run(
      const std::vector<std::pair<std::string, Tensor>>& inputs) = 0;
  // Backends that executed at least one node in the last run ("cpu", "opencl").
  virtual std::vector<std::string> BackendsUsed() const = 0;
  // Profile totals, largest first; empty unless SessionOptions::profile.
  virtual std::vector<OpProfile> Profile() const = 0;
};

// Reads an ONNX TensorProto (.pb) or NumPy (.npy) file into a host tensor.
Expected<Tensor> ReadTensorFile(const std::string& path);
// Parses a serialized onnx TensorProto.
Expected<Tensor> ParseTensorProto(const std::string& bytes);
// Writes a host tensor as a .npy file (version 1.0).
Status WriteNpy(const std::string& path, const Tensor& t);

}  // namespace outpost::engine
