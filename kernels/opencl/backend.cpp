// The OpenCL backend: device selection, program binary cache, buffers, node execution.
#include <sys/mman.h>
#include <unistd.h>

#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <mutex>
#include <sstream>
#include <thread>

#include "opencl/cl_common.h"
#include "outpost/core/hash.h"
#include "outpost/core/log.h"
#include "outpost/core/metrics.h"
#include "outpost/core/thread_priority.h"

const void* OutpostOpenClSources(size_t* count);

namespace outpost::kernels::opencl {
namespace {

struct EmbeddedEntry {
  const char* name;
  const char* data;
  size_t size;
};

std::string EmbeddedSource(const std::string& name) {
  size_t n = 0;
  auto* e = static_cast<const EmbeddedEntry*>(OutpostOpenClSources(&n));
  for (size_t i = 0; i < n; ++i)
    if (name == e[i].name) return std::string(e[i].data, e[i].size);
  return {};
}

void CountCache(const char* result) {
  MetricsRegistry::Global()
      .GetCounter("outpost_opencl_program_cache_total", "OpenCL program binary cache lookups",
                  {{"result", result}})
      .Inc();
}

std::string DeviceInfoStr(cl_device_id d, cl_device_info what) {
  size_t n = 0;
  clGetDeviceInfo(d, what, 0, nullptr, &n);
  std::string s(n, '\0');
  clGetDeviceInfo(d, what, n, s.data(), nullptr);
  while (!s.empty() && s.back() == '\0') s.pop_back();
  return s;
}

std::string PlatformInfoStr(cl_platform_id p, cl_platform_info what) {
  size_t n = 0;
  clGetPlatformInfo(p, what, 0, nullptr, &n);
  std::string s(n, '\0');
  clGetPlatformInfo(p, what, n, s.data(), nullptr);
  while (!s.empty() && s.back() == '\0') s.pop_back();
  return s;
}

constexpr char kMagic[8] = {'O', 'P', 'C', 'L', 'B', 'I', 'N', '1'};
constexpr const char* kBuildOptions = "-cl-std=CL1.2";

std::string BuildLog(cl_program p, cl_device_id d) {
  size_t n = 0;
  clGetProgramBuildInfo(p, d, CL_PROGRAM_BUILD_LOG, 0, nullptr, &n);
  std::string s(n, '\0');
  clGetProgramBuildInfo(p, d, CL_PROGRAM_BUILD_LOG, n, s.data(), nullptr);
  if (s.size() > 2000) s.resize(2000);
  return s;
}

// Cache file: magic, payload size, payload hash, payload (the device binary).
bool ReadCacheFile(const std::string& path, std::string* payload) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return false;
  std::string all((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  if (all.size() < 24 || std::memcmp(all.data(), kMagic, 8) != 0) return false;
  uint64_t size, hash;
  std::memcpy(&size, all.data() + 8, 8);
  std::memcpy(&hash, all.data() + 16, 8);
  if (size != all.size() - 24) return false;
  *payload = all.substr(24);
  return Fnv1a64(*payload) == hash;
}

void WriteCacheFile(const std::string& dir, const std::string& path, const std::string& payload) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  std::string tmp = path + ".tmp." + std::to_string(::getpid());
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    if (!f) return;
    uint64_t size = payload.size(), hash = Fnv1a64(payload);
    f.write(kMagic, 8);
    f.write(reinterpret_cast<const char*>(&size), 8);
    f.write(reinterpret_cast<const char*>(&hash), 8);
    f.write(payload.data(), static_cast<std::streamsize>(payload.size()));
    if (!f) {
      std::filesystem::remove(tmp, ec);
      return;
    }
  }
  std::filesystem::rename(tmp, path, ec);
  if (ec) std::filesystem::remove(tmp, ec);
}

std::map<std::string, ClOpDef>& OpTable() {
  static auto* t = new std::map<std::string, ClOpDef>();
  return *t;
}

}  // namespace

// ---------------------------------------------------------------- small helpers

const char* ClType(DataType t) {
  switch (t) {
    case DataType::kFloat:
      return "float";
    case DataType::kDouble:
      return "double";
    case DataType::kInt8:
      return "char";
    case DataType::kUInt8:
      return "uchar";
    case DataType::kBool:
      return "uchar";
    case DataType::kInt16:
      return "short";
    case DataType::kUInt16:
      return "ushort";
    case DataType::kInt32:
      return "int";
    case DataType::kUInt32:
      return "uint";
    case DataType::kInt64:
      return "long";
    case DataType::kUInt64:
      return "ulong";
    default:
      return nullptr;
  }
}

const char* ClBitsType(DataType t) {
  if (t == DataType::kString) return nullptr;
  switch (DataTypeSize(t)) {
    case 1:
      return "uchar";
    case 2:
      return "ushort";
    case 4:
      return "uint";
    case 8:
      return "ulong";
    default:
      return nullptr;
  }
}

std::string ClError(cl_int err) { return "OpenCL error " + std::to_string(err); }

ClMem WrapMem(cl_mem m) {
  return ClMem(m, [](cl_mem p) {
    if (p) clReleaseMemObject(p);
  });
}

std::vector<int64_t> StridesOf(const Shape& s) {
  std::vector<int64_t> st(s.rank());
  int64_t acc = 1;
  for (int i = s.rank() - 1; i >= 0; --i) st[i] = acc, acc *= s[i];
  return st;
}

bool FitsInt(const Shape& s) { return s.numel() < (int64_t{1} << 31) - 1; }

std::string Def(const std::string& name, const std::string& value) {
  return "#define " + name + " " + value + "\n";
}
std::string Def(const std::string& name, int64_t value) { return Def(name, std::to_string(value)); }

std::vector<int64_t> ConstInts(const Tensor& t) {
  std::vector<int64_t> v(t.numel());
  for (int64_t i = 0; i < t.numel(); ++i) v[i] = ReadInt(t, i);
  return v;
}

int64_t NormAxis(int64_t axis, int rank) {
  if (axis < 0) axis += rank;
  return axis < 0 || axis >= std::max(rank, 1) ? -1 : axis;
}

std::string TypeDefs(const ClRuntime& rt, const char* name, DataType t) {
  std::string s;
  if (rt.fp64 && t == DataType::kDouble) s += "#pragma OPENCL EXTENSION cl_khr_fp64 : enable\n";
  return s + Def(name, ClType(t));
}

Expected<ClMem> Params(const OpCtx& c, const std::vector<int>& v) {
  std::vector<int> p = v;
  if (p.empty()) p.push_back(0);
  return c.rt.Upload(p);
}

Expected<Step*> OpCtx::AddStep(const std::string& file, const std::string& defines,
                               const char* name) const {
  OP_ASSIGN_OR_RETURN(cl_kernel k, rt.Kernel(file, defines, name));
  node_out->steps.emplace_back();
  node_out->steps.back().kernel = k;
  return &node_out->steps.back();
}

// Keyed by "domain/op_type", the default domain as "".
ClOpRegistrar::ClOpRegistrar(const ClOpDef& def) {
  OpTable()[std::string(def.domain) + "/" + def.op_type] = def;
}

const ClOpDef* FindClOp(const std::string& domain, const std::string& op_type, int opset) {
  auto it = OpTable().find((domain == "ai.onnx" ? std::string() : domain) + "/" + op_type);
  if (it == OpTable().end()) return nullptr;
  if (opset < it->second.min_opset || opset > it->second.max_opset) return nullptr;
  return &it->second;
}

// ---------------------------------------------------------------- runtime

ClRuntime::~ClRuntime() {
  for (auto& [k, p] : programs_) clReleaseProgram(p);
  if (queue) clReleaseCommandQueue(queue);
  if (ctx) clReleaseContext(ctx);
}

Expected<cl_program> ClRuntime::Program(const std::string& source) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = programs_.find(source);
  if (it != programs_.end()) return it->second;
  const std::string key = source + "\n//" + kBuildOptions + "\n//" + device_key;
  const std::string file = cache_dir.empty()
                               ? std::string()
                               : cache_dir + "/" + Hex64(Fnv1a64(key)) +
                                     Hex64(Fnv1a64(key, 0x84222325cbf29ce4ull)) + ".bin";
  cl_int err = CL_SUCCESS;
  cl_program prog = nullptr;
  std::string payload;
  if (!file.empty() && std::filesystem::exists(file)) {
    bool good = ReadCacheFile(file, &payload);
    if (good) {
      const auto* bin = reinterpret_cast<const unsigned char*>(payload.data());
      size_t len = payload.size();
      cl_int bin_status = CL_SUCCESS;
      prog = clCreateProgramWithBinary(ctx, 1, &dev, &len, &bin, &bin_status, &err);
      if (err != CL_SUCCESS || bin_status != CL_SUCCESS ||
          clBuildProgram(prog, 1, &dev, kBuildOptions, nullptr, nullptr) != CL_SUCCESS) {
        if (prog) clReleaseProgram(prog);
        prog = nullptr;
        good = false;
      }
    }
    CountCache(good ? "hit" : "corrupt");
  } else if (!file.empty()) {
    CountCache("miss");
  }
  if (!prog) {
    const char* src = source.c_str();
    size_t len = source.size();
    prog = clCreateProgramWithSource(ctx, 1, &src, &len, &err);
    if (err != CL_SUCCESS) return Internal("clCreateProgramWithSource: " + ClError(err));
    err = clBuildProgram(prog, 1, &dev, kBuildOptions, nullptr, nullptr);
    if (err != CL_SUCCESS) {
      std::string log = BuildLog(prog, dev);
      clReleaseProgram(prog);
      return Internal("OpenCL program build failed: " + log);
    }
    size_t bin_size = 0;
    if (!file.empty() &&
        clGetProgramInfo(prog, CL_PROGRAM_BINARY_SIZES, sizeof bin_size, &bin_size, nullptr) ==
            CL_SUCCESS &&
        bin_size > 0) {
      std::string bin(bin_size, '\0');
      unsigned char* ptr = reinterpret_cast<unsigned char*>(bin.data());
      if (clGetProgramInfo(prog, CL_PROGRAM_BINARIES, sizeof ptr, &ptr, nullptr) == CL_SUCCESS)
        WriteCacheFile(cache_dir, file, bin);
    }
  }
  programs_[source] = prog;
  return prog;
}

Expected<cl_kernel> ClRuntime::Kernel(const std::string& file, const std::string& defines,
                                      const char* name) const {
  std::string body = EmbeddedSource(file);
  if (body.empty()) return Internal("no embedded OpenCL source " + file);
  OP_ASSIGN_OR_RETURN(cl_program prog, Program(defines + "#line 1\n" + body));
  cl_int err = CL_SUCCESS;
  cl_kernel k = clCreateKernel(prog, name, &err);
  if (err != CL_SUCCESS)
    return Internal(std::string("clCreateKernel ") + name + ": " + ClError(err));
  return k;
}

namespace {

// Host memory whose end (rounded up to 4 bytes) touches a PROT_NONE page, so that even a vector
// load one element past the end faults. Released by the buffer's destructor callback.
struct GuardedBlock {
  void* base;
  size_t len;
};

void CL_CALLBACK ReleaseGuarded(cl_mem, void* user) {
  auto* g = static_cast<GuardedBlock*>(user);
  munmap(g->base, g->len);
  delete g;
}

cl_mem CreateGuardedBuffer(cl_context ctx, size_t bytes, cl_int* err) {
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  const size_t used = (bytes + 3) / 4 * 4;
  const size_t body = (used + page - 1) / page * page;
  void* base =
      mmap(nullptr, body + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (base == MAP_FAILED) {
    *err = CL_OUT_OF_HOST_MEMORY;
    return nullptr;
  }
  char* guard = static_cast<char*>(base) + body;
  if (mprotect(guard, page, PROT_NONE) != 0) {  // no guard, no point: say so
    munmap(base, body + page);
    *err = CL_OUT_OF_HOST_MEMORY;
    return nullptr;
  }
  cl_mem m = clCreateBuffer(ctx, CL_MEM_READ_WRITE | CL_MEM_USE_HOST_PTR, bytes, guard - used, err);
  if (*err != CL_SUCCESS) {
    munmap(base, body + page);
    return nullptr;
  }
  auto* block = new GuardedBlock{base, body + page};
  *err = clSetMemObjectDestructorCallback(m, ReleaseGuarded, block);
  if (*err != CL_SUCCESS) {
    clReleaseMemObject(m);
    munmap(base, body + page);
    delete block;
    return nullptr;
  }
  return m;
}

}  // namespace

Expected<ClMem> ClRuntime::Alloc(size_t bytes) const {
  cl_int err = CL_SUCCESS;
  cl_mem m = guard_pages ? CreateGuardedBuffer(ctx, std::max<size_t>(bytes, 4), &err)
                         : clCreateBuffer(ctx, CL_MEM_READ_WRITE, std::max<size_t>(bytes, 64),
                                          nullptr, &err);
  if (err != CL_SUCCESS)
    return ResourceExhausted("clCreateBuffer(" + std::to_string(bytes) + "): " + ClError(err));
  return WrapMem(m);
}

Expected<ClMem> ClRuntime::Upload(const void* data, size_t bytes) const {
  OP_ASSIGN_OR_RETURN(ClMem m, Alloc(bytes));
  if (bytes) {
    cl_int err = clEnqueueWriteBuffer(queue, m.get(), CL_TRUE, 0, bytes, data, 0, nullptr, nullptr);
    if (err != CL_SUCCESS) return Internal("clEnqueueWriteBuffer: " + ClError(err));
  }
  return m;
}

// ---------------------------------------------------------------- nodes

ClNode::~ClNode() {
  for (auto& s : steps)
    if (s.kernel) clReleaseKernel(s.kernel);
}

Status ClNode::Execute(std::span<const Tensor* const> inputs, OutputSink* sink) {
  std::lock_guard<std::mutex> lock(mu_);
  for (size_t i = 0; i < in_shapes.size() && i < inputs.size(); ++i)
    if (inputs[i] && inputs[i]->shape() != in_shapes[i])
      return Unsupported("OpenCL node prepared for input shape " + in_shapes[i].ToString() +
                         ", got " + inputs[i]->shape().ToString());
  // Copies of the output views: a sink may move its tensors while handing out later ones.
  std::vector<Tensor>& out_v = out_v_;
  std::vector<const Tensor*>& out_t = out_t_;
  struct DropViews {  // hold no output storage alive past this call (the capacity stays)
    std::vector<Tensor>& v;
    ~DropViews() { v.clear(); }
  } drop_views{out_v};
  out_v.resize(outs.size());
  out_t.assign(outs.size(), nullptr);
  for (size_t i = 0; i < outs.size(); ++i) {
    if (!outs[i].wanted) continue;
    OP_ASSIGN_OR_RETURN(Tensor * t,
                        sink->Allocate(static_cast<int>(i), outs[i].dtype, outs[i].shape));
    out_v[i] = *t;
  }
  for (size_t i = 0; i < outs.size(); ++i)
    if (outs[i].wanted) out_t[i] = &out_v[i];
  for (auto [o, i] : aliases) {
    if (!out_t[o] || out_t[o]->nbytes() == 0) continue;
    cl_mem src = consts[i] ? consts[i].get() : static_cast<cl_mem>(inputs[i]->raw());
    size_t src_off = consts[i] ? 0 : inputs[i]->offset();
    cl_int err = clEnqueueCopyBuffer(rt_->queue, src, static_cast<cl_mem>(out_t[o]->raw()), src_off,
                                     out_t[o]->offset(), out_t[o]->nbytes(), 0, nullptr, nullptr);
    if (err != CL_SUCCESS) return Internal("clEnqueueCopyBuffer: " + ClError(err));
  }
  for (auto& s : steps) {
    if (s.global[0] * s.global[1] * s.global[2] == 0) continue;
    cl_mem mems[2] = {nullptr, nullptr};
    size_t offs[2] = {0, 0};
    for (auto& [arg, b] : s.bindings) {
      cl_mem m = nullptr;
      size_t off_bytes = 0, esize = 1;
      if (b.kind == Binding::kMem) {
        m = b.mem.get();
      } else if (b.kind == Binding::kOut) {
        const Tensor* t = out_t[b.index];
        if (!t) return Internal("OpenCL step writes an output the graph does not use");
        m = static_cast<cl_mem>(t->raw());
        off_bytes = t->offset();
        esize = DataTypeSize(t->dtype());
      } else if (consts[b.index]) {
        m = consts[b.index].get();
      } else {
        const Tensor* t = inputs[b.index];
        m = static_cast<cl_mem>(t->raw());
        off_bytes = t->offset();
        esize = DataTypeSize(t->dtype());
      }
      if (!s.kernel && arg < 4) {  // a buffer copy step: (destination, source)
        mems[arg / 2] = m, offs[arg / 2] = off_bytes;
        continue;
      }
      cl_int off = static_cast<cl_int>(off_bytes / std::max<size_t>(esize, 1));
      clSetKernelArg(s.kernel, arg, sizeof(cl_mem), &m);
      clSetKernelArg(s.kernel, arg + 1, sizeof(cl_int), &off);
    }
    if (!s.kernel) {
      cl_int err = clEnqueueCopyBuffer(rt_->queue, mems[1], mems[0], offs[1] + s.copy_src,
                                       offs[0] + s.copy_dst, s.global[0], 0, nullptr, nullptr);
      if (err != CL_SUCCESS) return Internal("clEnqueueCopyBuffer: " + ClError(err));
      continue;
    }
    bool has_local = s.local[0] != 0;
    cl_int err = clEnqueueNDRangeKernel(rt_->queue, s.kernel, s.dims, nullptr, s.global,
                                        has_local ? s.local : nullptr, 0, nullptr, nullptr);
    if (err != CL_SUCCESS) return Internal("clEnqueueNDRangeKernel: " + ClError(err));
  }
  return Status::Ok();
}

namespace {

class ClBuffer final : public Buffer {
 public:
  ClBuffer(ClMem m, size_t n) : m_(std::move(m)), n_(n) {}
  size_t size() const override { return n_; }
  Tensor View(DataType dtype, const Shape& shape, size_t offset) override {
    return Tensor::DeviceView(DeviceKind::kOpenCL, dtype, shape, m_.get(), offset);
  }

 private:
  ClMem m_;
  size_t n_;
};

class OpenClBackend final : public Backend {
 public:
  explicit OpenClBackend(std::unique_ptr<ClRuntime> rt) : rt_(std::move(rt)), pool_(1) {}
  std::string name() const override { return "opencl"; }
  DeviceKind device() const override { return DeviceKind::kOpenCL; }
  std::string description() const override { return rt_->description; }

  bool SupportsOp(const NodeInfo& node, std::span<const Tensor* const> inputs,
                  std::span<const Tensor* const> outputs, std::string* why) const override {
    Status st = Check(node, inputs, outputs, nullptr);
    if (!st.ok() && why) *why = st.message();
    return st.ok();
  }

  Expected<std::unique_ptr<PreparedNode>> Prepare(const NodeInfo& node,
                                                  std::span<const Tensor* const> inputs,
                                                  std::span<const Tensor* const> outputs) override {
    auto n = std::make_unique<ClNode>(rt_.get());
    OP_RETURN_IF_ERROR(Check(node, inputs, outputs, n.get()));
    n->outs.resize(outputs.size());
    for (size_t i = 0; i < outputs.size(); ++i)
      if (outputs[i]) n->outs[i] = {outputs[i]->dtype(), outputs[i]->shape(), true};
    n->in_shapes.resize(inputs.size());
    n->consts.resize(inputs.size());
    std::vector<bool> used(inputs.size(), false);
    for (auto& s : n->steps)
      for (auto& [arg, b] : s.bindings)
        if (b.kind == Binding::kIn) used[b.index] = true;
    for (auto [o, i] : n->aliases) used[i] = true;
    for (size_t i = 0; i < inputs.size(); ++i) {
      if (!inputs[i]) continue;
      n->in_shapes[i] = inputs[i]->shape();
      if (used[i] && inputs[i]->has_data() && inputs[i]->on_host()) {
        OP_ASSIGN_OR_RETURN(n->consts[i], rt_->Upload(inputs[i]->raw(), inputs[i]->nbytes()));
      }
    }
    return std::unique_ptr<PreparedNode>(std::move(n));
  }

  Expected<std::shared_ptr<Buffer>> Allocate(size_t bytes) override {
    OP_ASSIGN_OR_RETURN(ClMem m, rt_->Alloc(bytes));
    return std::shared_ptr<Buffer>(std::make_shared<ClBuffer>(std::move(m), bytes));
  }
  Status CopyFromHost(const Tensor& host, const Tensor& dev) override {
    if (!host.nbytes()) return Status::Ok();
    cl_int err = clEnqueueWriteBuffer(rt_->queue, static_cast<cl_mem>(dev.raw()), CL_TRUE,
                                      dev.offset(), host.nbytes(), host.raw(), 0, nullptr, nullptr);
    return err == CL_SUCCESS ? Status::Ok() : Internal("clEnqueueWriteBuffer: " + ClError(err));
  }
  Status CopyToHost(const Tensor& dev, const Tensor& host) override {
    if (!host.nbytes()) return Status::Ok();
    cl_int err = clEnqueueReadBuffer(rt_->queue, static_cast<cl_mem>(dev.raw()), CL_TRUE,
                                     dev.offset(), host.nbytes(), host.raw(), 0, nullptr, nullptr);
    return err == CL_SUCCESS ? Status::Ok() : Internal("clEnqueueReadBuffer: " + ClError(err));
  }
  Status Synchronize() override {
    cl_int err = clFinish(rt_->queue);
    return err == CL_SUCCESS ? Status::Ok() : Internal("clFinish: " + ClError(err));
  }
  ThreadPool* pool() override { return &pool_; }

 private:
  Status Check(const NodeInfo& node, std::span<const Tensor* const> inputs,
               std::span<const Tensor* const> outputs, ClNode* out) const {
    const ClOpDef* def = FindClOp(node.domain, node.op_type, node.opset);
    if (!def)
      return Unsupported("no OpenCL kernel for " +
                         (node.domain.empty() ? std::string() : node.domain + ".") + node.op_type +
                         " at opset " + std::to_string(node.opset));
    for (auto* t : inputs)
      if (t && !FitsInt(t->shape())) return Unsupported("tensor too large for 32-bit indexing");
    for (auto* t : outputs)
      if (t && (!t->defined() || !FitsInt(t->shape())))
        return Unsupported("output type or shape not known at load");
    OpCtx c{node, inputs, outputs, *rt_, out};
    Status st = def->build(c);
    if (!st.ok()) return Unsupported(node.op_type + ": " + st.message());
    return Status::Ok();
  }

  std::unique_ptr<ClRuntime> rt_;
  ThreadPool pool_;
};

std::string DefaultCacheDir() {
  if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x)
    return std::string(x) + "/outpost/opencl";
  if (const char* h = std::getenv("HOME"); h && *h)
    return std::string(h) + "/.cache/outpost/opencl";
  return {};
}

}  // namespace

// CPU drivers such as PoCL start their worker threads on the process's first clGetDeviceIDs,
// and the workers inherit that thread's priority. With pool_nice_steps, that first call comes
// from a thread lowered like the engine pool's workers, so that the driver's compute threads
// also yield to outpostd's HTTP threads (runtime/serve/README.md, "Compute below I/O"). Later
// calls find the devices initialised and change nothing.
static void InitDevicesBelow(int nice_steps) {
  static std::once_flag once;
  std::call_once(once, [nice_steps] {
    std::thread([nice_steps] {
      if (Status st = LowerThreadPriority(nice_steps); !st.ok())
        OP_LOG_WARN("OpenCL driver threads keep outpostd's priority: {}", st.message());
      cl_uint np = 0;
      if (clGetPlatformIDs(0, nullptr, &np) != CL_SUCCESS || np == 0) return;
      std::vector<cl_platform_id> plats(np);
      clGetPlatformIDs(np, plats.data(), nullptr);
      for (cl_platform_id p : plats) {
        cl_uint nd = 0;
        clGetDeviceIDs(p, CL_DEVICE_TYPE_ALL, 0, nullptr, &nd);
      }
    }).join();
  });
}

Expected<std::unique_ptr<Backend>> CreateOpenClBackendImpl(const BackendOptions& o) {
  if (o.pool_nice_steps > 0) InitDevicesBelow(o.pool_nice_steps);
  cl_uint np = 0;
  if (clGetPlatformIDs(0, nullptr, &np) != CL_SUCCESS || np == 0)
    return Unavailable("no OpenCL platform found (is an ICD installed?)");
  std::vector<cl_platform_id> plats(np);
  clGetPlatformIDs(np, plats.data(), nullptr);
  if (o.opencl_platform >= static_cast<int>(np))
    return Unavailable("OpenCL platform index " + std::to_string(o.opencl_platform) +
                       " out of range (" + std::to_string(np) + " platforms)");
  // The first device that every given criterion (platform index and name, device index and
  // name) selects. Names match as case-insensitive substrings, so that one device config can
  // name the same GPU across a fleet whose ICD order differs.
  auto lower = [](std::string s) {
    for (char& ch : s) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    return s;
  };
  const std::string want_plat = lower(o.opencl_platform_name);
  const std::string want_dev = lower(o.opencl_device_name);
  std::string seen;  // what there is, for the error message
  cl_platform_id plat = nullptr;
  cl_device_id dev = nullptr;
  for (cl_uint p = 0; p < np && !dev; ++p) {
    const std::string pname = PlatformInfoStr(plats[p], CL_PLATFORM_NAME);
    cl_uint nd = 0;
    if (clGetDeviceIDs(plats[p], CL_DEVICE_TYPE_ALL, 0, nullptr, &nd) != CL_SUCCESS) nd = 0;
    std::vector<cl_device_id> devs(nd);
    if (nd) clGetDeviceIDs(plats[p], CL_DEVICE_TYPE_ALL, nd, devs.data(), nullptr);
    seen += (seen.empty() ? "" : "; ") + std::string("platform ") + std::to_string(p) + " '" +
            pname + "':";
    for (cl_uint d = 0; d < nd; ++d)
      seen += " device " + std::to_string(d) + " '" + DeviceInfoStr(devs[d], CL_DEVICE_NAME) + "'";
    if (nd == 0) seen += " no devices";
    if (o.opencl_platform >= 0 && static_cast<int>(p) != o.opencl_platform) continue;
    if (!want_plat.empty() && lower(pname).find(want_plat) == std::string::npos) continue;
    if (o.opencl_device >= static_cast<int>(nd) && o.opencl_platform >= 0)
      return Unavailable("OpenCL device index " + std::to_string(o.opencl_device) +
                         " out of range (" + std::to_string(nd) + " devices on platform '" + pname +
                         "')");
    for (cl_uint d = 0; d < nd && !dev; ++d) {
      if (o.opencl_device >= 0 && static_cast<int>(d) != o.opencl_device) continue;
      if (!want_dev.empty() &&
          lower(DeviceInfoStr(devs[d], CL_DEVICE_NAME)).find(want_dev) == std::string::npos)
        continue;
      plat = plats[p];
      dev = devs[d];
    }
  }
  if (!dev) {
    std::string want;
    if (o.opencl_platform >= 0) want += " platform index " + std::to_string(o.opencl_platform);
    if (!want_plat.empty()) want += " platform name containing '" + o.opencl_platform_name + "'";
    if (o.opencl_device >= 0) want += " device index " + std::to_string(o.opencl_device);
    if (!want_dev.empty()) want += " device name containing '" + o.opencl_device_name + "'";
    return Unavailable("no OpenCL device matches" + (want.empty() ? std::string(" (any)") : want) +
                       "; found: " + seen);
  }
  auto rt = std::make_unique<ClRuntime>();
  rt->dev = dev;
  cl_int err = CL_SUCCESS;
  cl_context_properties props[] = {CL_CONTEXT_PLATFORM,
                                   reinterpret_cast<cl_context_properties>(plat), 0};
  rt->ctx = clCreateContext(props, 1, &dev, nullptr, nullptr, &err);
  if (err != CL_SUCCESS) return Unavailable("clCreateContext: " + ClError(err));
  rt->queue = clCreateCommandQueue(rt->ctx, dev, 0, &err);
  if (err != CL_SUCCESS) return Unavailable("clCreateCommandQueue: " + ClError(err));
  cl_device_type type = 0;
  clGetDeviceInfo(dev, CL_DEVICE_TYPE, sizeof type, &type, nullptr);
  rt->is_cpu = (type & CL_DEVICE_TYPE_CPU) != 0;
  std::string exts = DeviceInfoStr(dev, CL_DEVICE_EXTENSIONS);
  rt->fp64 = exts.find("cl_khr_fp64") != std::string::npos;
  if (const char* g = std::getenv("OUTPOST_OPENCL_GEMM"))
    rt->force_tiled_gemm = std::string(g) == "tiled";
  if (const char* g = std::getenv("OUTPOST_OPENCL_GUARD_PAGES"); g && std::string(g) == "1") {
    rt->guard_pages = rt->is_cpu;
    if (rt->guard_pages)
      OP_LOG_WARN(
          "OUTPOST_OPENCL_GUARD_PAGES=1: every OpenCL buffer ends at a guard page (a test "
          "aid: slower allocations, one extra page per buffer)");
    else
      OP_LOG_WARN("OUTPOST_OPENCL_GUARD_PAGES=1 ignored: the OpenCL device is not a CPU device");
  }
  cl_uint fw = 8;
  clGetDeviceInfo(dev, CL_DEVICE_NATIVE_VECTOR_WIDTH_FLOAT, sizeof fw, &fw, nullptr);
  rt->float_width = fw >= 16 ? 16 : 8;
  rt->device_name = DeviceInfoStr(dev, CL_DEVICE_NAME);
  cl_uint cus = 0;
  clGetDeviceInfo(dev, CL_DEVICE_MAX_COMPUTE_UNITS, sizeof cus, &cus, nullptr);
  rt->device_key = rt->device_name + "|" + DeviceInfoStr(dev, CL_DEVICE_VERSION) + "|" +
                   DeviceInfoStr(dev, CL_DRIVER_VERSION);
  rt->description = "OpenCL " + std::string(rt->is_cpu ? "CPU" : "GPU/accelerator") + " device '" +
                    rt->device_name + "', " + std::to_string(cus) + " compute units, " +
                    DeviceInfoStr(dev, CL_DEVICE_VERSION) + ", " + QuantPathDescription(*rt);
  rt->cache_dir = o.opencl_cache_dir.empty() ? DefaultCacheDir() : o.opencl_cache_dir;
  return std::unique_ptr<Backend>(std::make_unique<OpenClBackend>(std::move(rt)));
}

}  // namespace outpost::kernels::opencl

namespace outpost::kernels {
Expected<std::unique_ptr<Backend>> CreateOpenClBackend(const BackendOptions& options) {
  return opencl::CreateOpenClBackendImpl(options);
}
}  // namespace outpost::kernels
