// The one OpenCL backend the kernel tests of a test binary share (nullptr when the machine has no
// OpenCL device), with its program cache in a temp folder of its own.
#pragma once

#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "outpost/kernels/backend.h"

namespace outpost::testing {

inline kernels::Backend* SharedOpenClBackend() {
  static std::unique_ptr<kernels::Backend> b = [] {
    kernels::BackendOptions o;
    o.opencl_cache_dir = ::testing::TempDir() + "/outpost-opencl-kernel-tests-cache";
    auto r = kernels::CreateOpenClBackend(o);
    return r.ok() ? std::move(r).value() : nullptr;
  }();
  return b.get();
}

// What the engine passes a backend at Prepare: constants (and absent inputs) as they are, every
// other input shape-only. `ptrs` points into `metas` (nullptr for an absent input).
struct EngineMetas {
  EngineMetas(const std::vector<Tensor>& inputs, const std::vector<bool>& consts) {
    for (size_t i = 0; i < inputs.size(); ++i)
      metas.push_back(!inputs[i].defined() || consts[i]
                          ? inputs[i]
                          : Tensor::Meta(inputs[i].dtype(), inputs[i].shape()));
    for (auto& t : metas) ptrs.push_back(t.defined() ? &t : nullptr);
  }
  std::vector<Tensor> metas;
  std::vector<const Tensor*> ptrs;
};

// The inputs of an Execute: constants stay on the host, the others are uploaded to device buffers
// at `offset(dtype)` bytes into each (tests put them at odd or aligned offsets on purpose).
struct DeviceInputs {
  Status Upload(kernels::Backend* b, const std::vector<Tensor>& inputs,
                const std::vector<bool>& consts, const std::function<size_t(DataType)>& offset) {
    tensors.assign(inputs.size(), Tensor());
    for (size_t i = 0; i < inputs.size(); ++i) {
      if (!inputs[i].defined() || consts[i]) {
        ptrs.push_back(inputs[i].defined() ? &inputs[i] : nullptr);
        continue;
      }
      const size_t off = offset(inputs[i].dtype());
      auto buf = b->Allocate(inputs[i].nbytes() + off);
      if (!buf.ok()) return buf.status();
      bufs.push_back(*buf);
      tensors[i] = bufs.back()->View(inputs[i].dtype(), inputs[i].shape(), off);
      if (Status st = b->CopyFromHost(inputs[i], tensors[i]); !st.ok()) return st;
      ptrs.push_back(&tensors[i]);
    }
    return Status::Ok();
  }
  std::vector<std::shared_ptr<kernels::Buffer>> bufs;
  std::vector<Tensor> tensors;
  std::vector<const Tensor*> ptrs;
};

}  // namespace outpost::testing
