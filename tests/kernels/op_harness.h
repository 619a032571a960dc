// Runs one CPU kernel directly, without the engine: for kernel unit tests.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "outpost/kernels/kernel.h"

namespace outpost::testing {

class OwnedSink : public kernels::OutputSink {
 public:
  // Sized up front: pointers handed out must stay valid while later outputs are declared.
  OwnedSink(bool meta, int num_outputs) : outputs(num_outputs), meta_(meta) {}
  Expected<Tensor*> Allocate(int index, DataType dtype, const Shape& shape) override {
    if (index < 0 || static_cast<size_t>(index) >= outputs.size()) return Internal("output index out of range");
    if (meta_) {
      outputs[index] = Tensor::Meta(dtype, shape);
    } else {
      auto t = Tensor::Allocate(dtype, shape);
      if (!t.ok()) return t.status();
      outputs[index] = std::move(t).value();
    }
    return &outputs[index];
  }
  std::vector<Tensor> outputs;

 private:
  bool meta_;
};

// A host tensor of type `dt` and shape `s` holding `v` (row-major).
template <typename T>
Tensor Make(DataType dt, Shape s, std::vector<T> v) {
  Tensor t = Tensor::Allocate(dt, s).value();
  for (size_t i = 0; i < v.size(); ++i) t.data<T>()[i] = v[i];
  return t;
}

// Attribute values for RunOp.
inline kernels::Attribute AttrInts(std::vector<int64_t> v) {
  kernels::Attribute a;
  a.kind = kernels::Attribute::Kind::kInts;
  a.ints = std::move(v);
  return a;
}
inline kernels::Attribute AttrInt(int64_t v) {
  kernels::Attribute a;
  a.kind = kernels::Attribute::Kind::kInt;
  a.i = v;
  return a;
}
inline kernels::Attribute AttrFloat(float v) {
  kernels::Attribute a;
  a.kind = kernels::Attribute::Kind::kFloat;
  a.f = v;
  return a;
}

// Runs `op` (default domain unless given) at `opset` on `inputs` (nullptr = omitted input).
inline Expected<std::vector<Tensor>> RunOp(const std::string& op, kernels::Attributes attrs,
                                           std::vector<const Tensor*> inputs, int num_outputs = 1,
                                           int opset = 17, const std::string& domain = "",
                                           bool infer_only = false) {
  const kernels::OpDef* def = kernels::FindOp(domain, op, opset);
  if (!def) return NotFound("no CPU kernel for " + op + " at opset " + std::to_string(opset));
  kernels::NodeInfo node{"test_node", op, domain, opset, std::move(attrs)};
  static ThreadPool pool(2);
  OwnedSink sink(infer_only, num_outputs);
  std::unique_ptr<bool[]> wanted(new bool[num_outputs]);
  for (int i = 0; i < num_outputs; ++i) wanted[i] = true;
  kernels::KernelContext ctx(node, inputs, num_outputs,
                             {wanted.get(), static_cast<size_t>(num_outputs)}, &sink, &pool,
                             infer_only);
  Status st = def->fn(ctx);
  if (!st.ok()) return st;
  return std::move(sink.outputs);
}

}  // namespace outpost::testing
