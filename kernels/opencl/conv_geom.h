// Private to the OpenCL backend: convolution / pool geometry shared by the float and the
// quantized convolutions.
#pragma once

#include <vector>

#include "opencl/cl_common.h"

namespace outpost::kernels::opencl {

// Spatial geometry shared by convolutions and pools.
struct Geometry {
  int sd = 0;
  std::vector<int64_t> in, out, k, stride, dil, pb, pe;
  std::vector<int> Params() const {
    std::vector<int> p;
    for (const auto* v : {&in, &out, &k, &stride, &dil, &pb, &pe})
      p.insert(p.end(), v->begin(), v->end());
    return p;
  }
};

// Fills strides, dilations and pads from the attributes; `in`, `out` and `k` must be set.
Status ResolvePads(const OpCtx& c, Geometry* g, bool transpose);

}  // namespace outpost::kernels::opencl
