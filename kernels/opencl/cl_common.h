// Private to the OpenCL backend: runtime (context, queue, program cache), node steps, op registry.
#pragma once

#include <CL/cl.h>

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "outpost/kernels/backend.h"

namespace outpost::kernels::opencl {

// OpenCL C type name for a storable dtype ("float", "long", bool = "uchar"); nullptr if none.
const char* ClType(DataType t);
// Same-size unsigned type for data movement ("uchar" .. "ulong"); nullptr if the size is odd.
const char* ClBitsType(DataType t);
std::string ClError(cl_int err);

// A reference-counted cl_mem.
using ClMem = std::shared_ptr<std::remove_pointer_t<cl_mem>>;
ClMem WrapMem(cl_mem m);

class ClRuntime {
 public:
  ~ClRuntime();
  cl_context ctx = nullptr;
  cl_device_id dev = nullptr;
  cl_command_queue queue = nullptr;
  bool is_cpu = false;
  bool fp64 = false;
  int float_width = 8;  // native float vector width (16 on AVX-512 PoCL)
  bool force_tiled_gemm = false;  // $OUTPOST_OPENCL_GEMM=tiled: the GPU kernels on any device
  // $OUTPOST_OPENCL_GUARD_PAGES=1 (CPU devices, for tests): every buffer is host memory that ends
  // at an inaccessible page, so a kernel reading or writing past a buffer's end faults at once
  // instead of now and then.
  bool guard_pages = false;
  std::string device_name, description, cache_dir, device_key;

  // Kernel `name` from the embedded source `file` with `defines` (source text) prepended. Programs
  // are cached in memory and on disk; each call returns a new cl_kernel (owned by the caller).
  Expected<cl_kernel> Kernel(const std::string& file, const std::string& defines,
                             const char* name) const;
  Expected<ClMem> Alloc(size_t bytes) const;
  Expected<ClMem> Upload(const void* data, size_t bytes) const;
  template <typename T>
  Expected<ClMem> Upload(const std::vector<T>& v) const {
    return Upload(v.data(), v.size() * sizeof(T));
  }

 private:
  Expected<cl_program> Program(const std::string& source) const;
  mutable std::mutex mu_;
  mutable std::map<std::string, cl_program> programs_;
};

// The integer path this device takes, in words, for the backend description (quant.cpp).
std::string QuantPathDescription(const ClRuntime& rt);

// Where a kernel argument pair (cl_mem, int element offset) comes from at run time.
struct Binding {
  enum Kind { kOut, kIn, kMem } kind;
  int index;   // output or input index
  ClMem mem;   // kMem: a buffer owned by the node (uploaded constant, scratch)
};

// One enqueue: a kernel with its bindings (set per run) and fixed arguments (set at Prepare), or
// without a kernel a buffer copy of global[0] bytes from binding 1 (+ copy_src bytes) to binding 0
// (+ copy_dst bytes).
struct Step {
  cl_kernel kernel = nullptr;
  size_t copy_src = 0, copy_dst = 0;
  std::vector<std::pair<int, Binding>> bindings;  // (arg index, binding)
  size_t global[3] = {1, 1, 1};
  size_t local[3] = {0, 0, 0};  // 0 = let the runtime choose
  int dims = 1;
  int next_arg = 0;

  Step& Bind(Binding b) {
    bindings.emplace_back(next_arg, std::move(b));
    next_arg += 2;
    return *this;
  }
  Step& Out(int i) { return Bind({Binding::kOut, i, nullptr}); }
  Step& In(int i) { return Bind({Binding::kIn, i, nullptr}); }
  Step& Mem(ClMem m) { return Bind({Binding::kMem, 0, std::move(m)}); }
  template <typename T>
  Step& Arg(const T& v) {
    clSetKernelArg(kernel, next_arg++, sizeof(T), &v);
    return *this;
  }
  Step& Buf(const ClMem& m) {  // a fixed buffer argument (no offset)
    cl_mem raw = m.get();
    clSetKernelArg(kernel, next_arg++, sizeof(cl_mem), &raw);
    keep.push_back(m);
    return *this;
  }
  Step& Global(size_t g0, size_t g1 = 0, size_t g2 = 0) {
    global[0] = g0;
    dims = 1;
    if (g1) global[1] = g1, dims = 2;
    if (g2) global[2] = g2, dims = 3;
    return *this;
  }
  std::vector<ClMem> keep;
};

struct OutSpec {
  DataType dtype = DataType::kUndefined;
  Shape shape;
  bool wanted = false;
};

// A prepared node: steps run in order. Constant inputs are uploaded once at Prepare.
class ClNode final : public PreparedNode {
 public:
  explicit ClNode(const ClRuntime* rt) : rt_(rt) {}
  ~ClNode() override;
  Status Execute(std::span<const Tensor* const> inputs, OutputSink* sink) override;

  std::deque<Step> steps;
  std::vector<OutSpec> outs;
  std::vector<ClMem> consts;   // per input: uploaded copy of a constant input, or null
  std::vector<Shape> in_shapes;
  std::vector<std::pair<int, int>> aliases;  // (output, input) pairs copied with clEnqueueCopyBuffer

 private:
  const ClRuntime* rt_;
  std::mutex mu_;
  // Execute's scratch, guarded by mu_ and reused so that steady-state runs do not allocate.
  std::vector<Tensor> out_v_;
  std::vector<const Tensor*> out_t_;
};

// What an op builder sees. In check mode (`node_out` null) it only validates.
struct OpCtx {
  const NodeInfo& node;
  std::span<const Tensor* const> in;
  std::span<const Tensor* const> out;
  const ClRuntime& rt;
  ClNode* node_out;  // null while checking support

  bool check() const { return node_out == nullptr; }
  int nin() const { return static_cast<int>(in.size()); }
  bool has(int i) const { return i < nin() && in[i] != nullptr; }
  bool is_const(int i) const { return has(i) && in[i]->has_data() && in[i]->on_host(); }
  const Tensor& input(int i) const { return *in[i]; }
  const Tensor& output(int i) const { return *out[i]; }
  bool has_out(int i) const { return i < static_cast<int>(out.size()) && out[i] != nullptr; }
  int64_t attr_i(const char* n, int64_t d) const { return node.attrs.Int(n, d); }
  float attr_f(const char* n, float d) const { return node.attrs.Float(n, d); }
  Status No(const std::string& why) const { return Unsupported(why); }
  // Creates a kernel and returns a step for it, appended to the node.
  Expected<Step*> AddStep(const std::string& file, const std::string& defines,
                          const char* name) const;
};

using OpBuilder = Status (*)(const OpCtx&);

struct ClOpDef {
  const char* op_type;
  int min_opset, max_opset;
  OpBuilder build;
  const char* domain = "";  // "" for the default domain (ai.onnx)
};
struct ClOpRegistrar {
  explicit ClOpRegistrar(const ClOpDef& def);
};
const ClOpDef* FindClOp(const std::string& domain, const std::string& op_type, int opset);

#define OUTPOST_CL_OP(name, min_opset, max_opset, fn)                                       \
  static const ::outpost::kernels::opencl::ClOpRegistrar OUTPOST_CONCAT(cl_op_, __LINE__)( \
      ::outpost::kernels::opencl::ClOpDef{#name, min_opset, max_opset, fn})
// An op of another domain (com.microsoft ...), at that domain's opsets.
#define OUTPOST_CL_DOMAIN_OP(domain, name, min_opset, max_opset, fn)                       \
  static const ::outpost::kernels::opencl::ClOpRegistrar OUTPOST_CONCAT(cl_op_, __LINE__)( \
      ::outpost::kernels::opencl::ClOpDef{#name, min_opset, max_opset, fn, domain})

// ---- helpers shared by op files ----
// Parameter buffer of ints (shapes, strides) uploaded at Prepare.
Expected<ClMem> Params(const OpCtx& c, const std::vector<int>& v);
std::vector<int64_t> StridesOf(const Shape& s);
bool FitsInt(const Shape& s);
// Row-major "-DNAME=value" style defines as source text.
std::string Def(const std::string& name, const std::string& value);
std::string Def(const std::string& name, int64_t value);
// Reads a constant integer input as int64s.
std::vector<int64_t> ConstInts(const Tensor& t);
int64_t NormAxis(int64_t axis, int rank);  // -1 when out of range
// Defines for a numeric element type T plus its accumulator ACC and double support.
std::string TypeDefs(const ClRuntime& rt, const char* name, DataType t);

}  // namespace outpost::kernels::opencl
