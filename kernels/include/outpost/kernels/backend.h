// The backend interface (after ggml's buffer / device / backend split, kept small).
//
//   Buffer   a block of device memory; tensors are views at offsets into it.
//   Backend  one device: says which nodes it supports, prepares them once (compile programs,
//            pack weights: MNN's prepare/execute split) and runs prepared nodes in order.
//
// The engine owns the graph, the placement and the memory plan; a backend never sees the graph.
#pragma once

#include <memory>
#include <span>
#include <string>

#include "outpost/core/status.h"
#include "outpost/core/tensor.h"
#include "outpost/core/thread_pool.h"
#include "outpost/kernels/kernel.h"

namespace outpost::kernels {

class Buffer {
 public:
  virtual ~Buffer() = default;
  virtual size_t size() const = 0;
  // A tensor view at `offset` bytes into this buffer.
  virtual Tensor View(DataType dtype, const Shape& shape, size_t offset) = 0;
};

// A node made ready to run on one backend for fixed input/output types and shapes.
class PreparedNode {
 public:
  virtual ~PreparedNode() = default;
  // Inputs live on this backend's device; outputs are obtained from `sink`, which hands out
  // planned storage (or allocates, for shapes that were not known when planning).
  virtual Status Execute(std::span<const Tensor* const> inputs, OutputSink* sink) = 0;
};

struct BackendOptions {
  int threads = 0;                 // CPU: pool size, 0 = hardware concurrency
  int pool_nice_steps = 0;  // CPU: the pool's workers, OpenCL: the driver's threads (PoCL) run
                            // this many nice steps below the creating thread
  int opencl_platform = -1;        // OpenCL: index, -1 = first with a matching device
  int opencl_device = -1;          // OpenCL: index within the platform, -1 = first matching
  std::string opencl_platform_name;  // OpenCL: case-insensitive substring of the platform name
  std::string opencl_device_name;    // OpenCL: case-insensitive substring of the device name
  std::string opencl_cache_dir;    // program binary cache; empty = $XDG_CACHE_HOME/outpost
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;  // "cpu", "opencl"
  virtual DeviceKind device() const = 0;
  // Description of the device for logs and `outpost inspect`.
  virtual std::string description() const = 0;

  // Can this backend run the node with these (inferred) input and output types and shapes?
  // Inputs with data are constants. When it cannot, `why` says so in a few words.
  virtual bool SupportsOp(const NodeInfo& node, std::span<const Tensor* const> inputs,
                          std::span<const Tensor* const> outputs, std::string* why) const = 0;
  virtual Expected<std::unique_ptr<PreparedNode>> Prepare(
      const NodeInfo& node, std::span<const Tensor* const> inputs,
      std::span<const Tensor* const> outputs) = 0;

  virtual Expected<std::shared_ptr<Buffer>> Allocate(size_t bytes) = 0;
  // Copies between host tensors and tensors of this backend (same dtype and element count).
  virtual Status CopyFromHost(const Tensor& host, const Tensor& device_tensor) = 0;
  virtual Status CopyToHost(const Tensor& device_tensor, const Tensor& host) = 0;
  // Waits for all queued work. Called once per run, not per node.
  virtual Status Synchronize() = 0;
  virtual ThreadPool* pool() = 0;
};

std::unique_ptr<Backend> CreateCpuBackend(const BackendOptions& options);
// Fails with kUnavailable when no OpenCL device can be opened.
Expected<std::unique_ptr<Backend>> CreateOpenClBackend(const BackendOptions& options);

}  // namespace outpost::kernels
