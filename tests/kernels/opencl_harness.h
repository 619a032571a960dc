// The one OpenCL backend the kernel tests of a test binary share (nullptr when the machine has no
// OpenCL device), with its program cache in a temp folder of its own.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <string>

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

}  // namespace outpost::testing
