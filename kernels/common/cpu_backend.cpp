// The CPU backend: runs the registered CPU kernels on host memory with a fixed-size pool.
#include <cstdlib>
#include <cstring>
#include <thread>

#include "cpu/igemm.h"
#include "outpost/kernels/backend.h"

namespace outpost::kernels {
namespace {

class HostBuffer final : public Buffer {
 public:
  HostBuffer(void* p, size_t n) : p_(p), n_(n) {}
  ~HostBuffer() override { std::free(p_); }
  size_t size() const override { return n_; }
  Tensor View(DataType dtype, const Shape& shape, size_t offset) override {
    return Tensor::View(dtype, shape, static_cast<char*>(p_) + offset);
  }

 private:
  void* p_;
  size_t n_;
};

class CpuPreparedNode final : public PreparedNode {
 public:
  CpuPreparedNode(const NodeInfo& node, const OpDef* def, ThreadPool* pool, int num_outputs,
                  std::vector<bool> wanted, std::vector<bool> constant)
      : node_(node), def_(def), pool_(pool), num_outputs_(num_outputs),
        num_inputs_(constant.size()) {
    wanted_.reset(new bool[wanted.size() + 1]);
    for (size_t i = 0; i < wanted.size(); ++i) wanted_[i] = wanted[i];
    constant_.reset(new bool[constant.size() + 1]);
    for (size_t i = 0; i < constant.size(); ++i) constant_[i] = constant[i];
  }
  Status Execute(std::span<const Tensor* const> inputs, OutputSink* sink) override {
    KernelContext ctx(node_, inputs, num_outputs_, {wanted_.get(), static_cast<size_t>(num_outputs_)},
                      sink, pool_, /*infer_only=*/false);
    ctx.set_prepared(&cache_, {constant_.get(), num_inputs_});
    return def_->fn(ctx);
  }

 private:
  const NodeInfo& node_;
  const OpDef* def_;
  ThreadPool* pool_;
  int num_outputs_;
  std::unique_ptr<bool[]> wanted_;
  size_t num_inputs_;
  std::unique_ptr<bool[]> constant_;  // inputs that had data at prepare time: constants
  PreparedCache cache_;
};

class CpuBackend final : public Backend {
 public:
  explicit CpuBackend(const BackendOptions& o) : pool_(o.threads, o.pool_nice_steps) {}
  std::string name() const override { return "cpu"; }
  DeviceKind device() const override { return DeviceKind::kCpu; }
  std::string description() const override {
    return "CPU, " + std::to_string(pool_.size()) + " threads, " + cpu::IgemmPathDescription();
  }
  bool SupportsOp(const NodeInfo& node, std::span<const Tensor* const>,
                  std::span<const Tensor* const>, std::string* why) const override {
    if (FindOp(node.domain, node.op_type, node.opset)) return true;
    if (why) *why = "no CPU kernel";
    return false;
  }
  Expected<std::unique_ptr<PreparedNode>> Prepare(
      const NodeInfo& node, std::span<const Tensor* const> inputs,
      std::span<const Tensor* const> outputs) override {
    const OpDef* def = FindOp(node.domain, node.op_type, node.opset);
    if (!def) return Unsupported("no CPU kernel for " + node.op_type);
    std::vector<bool> wanted;
    for (auto* o : outputs) wanted.push_back(o != nullptr);
    std::vector<bool> constant;
    for (auto* in : inputs) constant.push_back(in != nullptr && in->has_data());
    return std::unique_ptr<PreparedNode>(new CpuPreparedNode(
        node, def, &pool_, static_cast<int>(outputs.size()), wanted, constant));
  }
  Expected<std::shared_ptr<Buffer>> Allocate(size_t bytes) override {
    size_t n = (bytes + 63) / 64 * 64 + 64;
    void* p = std::aligned_alloc(64, n);
    if (!p) return ResourceExhausted("out of host memory allocating " + std::to_string(bytes) + " bytes");
    return std::shared_ptr<Buffer>(std::make_shared<HostBuffer>(p, bytes));
  }
  Status CopyFromHost(const Tensor& host, const Tensor& dev) override {
    if (host.nbytes()) std::memcpy(dev.raw(), host.raw(), host.nbytes());
    return Status::Ok();
  }
  Status CopyToHost(const Tensor& dev, const Tensor& host) override {
    if (dev.nbytes()) std::memcpy(host.raw(), dev.raw(), dev.nbytes());
    return Status::Ok();
  }
  Status Synchronize() override { return Status::Ok(); }
  ThreadPool* pool() override { return &pool_; }

 private:
  ThreadPool pool_;
};

}  // namespace

std::unique_ptr<Backend> CreateCpuBackend(const BackendOptions& options) {
  return std::make_unique<CpuBackend>(options);
}

}  // namespace outpost::kernels
