// The kernel contract shared by every backend.
//
// A kernel is one function per op: it validates its inputs and attributes, computes the output
// types and shapes, declares its outputs through ctx.Output(), and then (unless the context is in
// inference mode) computes them. Running the same function in inference mode is how the engine
// infers shapes and types and checks support at load time, so shape logic lives in exactly one
// place. Failures are values: Unsupported(...) for something valid we do not implement,
// InvalidModel/InvalidArgument for inputs that break the op's contract.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "outpost/core/status.h"
#include "outpost/core/tensor.h"
#include "outpost/core/thread_pool.h"
#include "outpost/kernels/attributes.h"

namespace outpost::kernels {

// The highest opset of the default ONNX domain that this runtime knows.
constexpr int kMaxOnnxOpset = 25;

struct NodeInfo {
  std::string name;
  std::string op_type;
  std::string domain;  // "" for ai.onnx
  int opset = 0;       // the model's opset import for this node's domain
  Attributes attrs;
};

// Supplies output storage. The engine implements it (planned arena, dynamic allocation, or meta
// tensors during inference).
class OutputSink {
 public:
  virtual ~OutputSink() = default;
  virtual Expected<Tensor*> Allocate(int index, DataType dtype, const Shape& shape) = 0;
};

// Data a kernel derives from its constant inputs (packed weights), built on first use and then
// shared by every run of the prepared node, including concurrent ones (MNN's prepare/execute
// split, without a second entry point per kernel).
class PreparedCache {
 public:
  // Returns the cached T, calling make() (which returns a T) the first time.
  template <typename T, typename F>
  const T& Get(F&& make) {
    std::call_once(once_, [&] { data_ = std::make_shared<T>(make()); });
    return *static_cast<const T*>(data_.get());
  }

 private:
  std::once_flag once_;
  std::shared_ptr<void> data_;
};

class KernelContext {
 public:
  KernelContext(const NodeInfo& node, std::span<const Tensor* const> inputs, int num_outputs,
                std::span<const bool> output_wanted, OutputSink* sink, ThreadPool* pool,
                bool infer_only)
      : node_(node), inputs_(inputs), num_outputs_(num_outputs), output_wanted_(output_wanted),
        sink_(sink), pool_(pool), infer_only_(infer_only) {}

  const NodeInfo& node() const { return node_; }
  const Attributes& attrs() const { return node_.attrs; }
  int opset() const { return node_.opset; }

  int num_inputs() const { return static_cast<int>(inputs_.size()); }
  // False for an omitted optional input (empty name) or an index past the end.
  bool has_input(int i) const { return i < num_inputs() && inputs_[i] != nullptr; }
  const Tensor& input(int i) const { return *inputs_[i]; }
  // True when the value of input i is known (always while running; during inference only for
  // constants and folded values).
  bool input_known(int i) const { return has_input(i) && inputs_[i]->has_data(); }

  int num_outputs() const { return num_outputs_; }
  bool output_wanted(int i) const { return i < num_outputs_ && output_wanted_[i]; }

  // Declares output i. Returns nullptr for an output the graph does not use; during inference a
  // tensor without storage; otherwise the tensor to fill.
  Expected<Tensor*> Output(int i, DataType dtype, const Shape& shape) {
    if (!output_wanted(i)) return static_cast<Tensor*>(nullptr);
    return sink_->Allocate(i, dtype, shape);
  }

  // True while the engine only infers shapes and types: return after declaring outputs.
  bool infer_only() const { return infer_only_; }

  // Set by a backend's prepared node: its cache, and which inputs are constants (the same tensor
  // on every run). Both are absent while inferring and folding.
  void set_prepared(PreparedCache* cache, std::span<const bool> constant_inputs) {
    cache_ = cache;
    constant_ = constant_inputs;
  }
  // The prepared node's cache, or nullptr (derive data per call then).
  PreparedCache* cache() const { return cache_; }
  bool input_constant(int i) const {
    return i < static_cast<int>(constant_.size()) && constant_[i];
  }
  ThreadPool& pool() const { return *pool_; }

  // During inference: the output shape depends on the value of an input that is not known yet
  // (Reshape with a computed shape, NonZero, ...). The engine then plans the output at run time.
  Status DataDependent() const { return Status(Code::kUnavailable, "shape depends on data"); }

  // Error helpers that name the node.
  Status Fail(const std::string& what) const;         // InvalidModel
  Status BadInput(const std::string& what) const;     // InvalidArgument
  Status NotSupported(const std::string& what) const; // Unsupported

 private:
  const NodeInfo& node_;
  std::span<const Tensor* const> inputs_;
  int num_outputs_;
  std::span<const bool> output_wanted_;
  OutputSink* sink_;
  ThreadPool* pool_;
  bool infer_only_;
  PreparedCache* cache_ = nullptr;
  std::span<const bool> constant_;
};

using KernelFn = Status (*)(KernelContext&);

// One registered implementation of an op on the CPU: the reference behaviour for every backend.
struct OpDef {
  const char* op_type;
  const char* domain;   // "" for ai.onnx, "com.microsoft", ...
  int min_opset;        // the lowest domain opset this implementation handles
  int max_opset;        // the highest; newer opsets are refused as unsupported
  KernelFn fn;
};

// Looks up a CPU op. Returns nullptr when the op is unknown in any opset.
const OpDef* FindOp(const std::string& domain, const std::string& op_type, int opset);
// True when some version of the op is registered (to tell "unknown op" from "unsupported opset").
bool KnownOp(const std::string& domain, const std::string& op_type);
std::vector<const OpDef*> AllOps();

struct OpRegistrar {
  explicit OpRegistrar(const OpDef& def);
};

}  // namespace outpost::kernels

// Registers a CPU kernel from its own file:
//   OUTPOST_REGISTER_OP(Relu, "", 1, 23, ReluKernel);
#define OUTPOST_REGISTER_OP(name, domain, min_opset, max_opset, fn)                      \
  static const ::outpost::kernels::OpRegistrar OUTPOST_CONCAT(op_registrar_, __LINE__)( \
      ::outpost::kernels::OpDef{#name, domain, min_opset, max_opset, fn})
