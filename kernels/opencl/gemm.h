// Private to the OpenCL backend: the shared GEMM step builder (MatMul, Gemm, Conv).
#pragma once

#include <limits>

#include "opencl/cl_common.h"

namespace outpost::kernels::opencl {

// Column-panel width of the packed B layout and the kernel choice for this device.
struct GemmConfig {
  int vw = 8, nv = 2, mr = 4;
  bool tiled = false;  // GPU-style local-memory kernel
  int nr() const { return vw * nv; }
  std::string Defines(bool has_bias = false, bool b_direct = false) const;
};
GemmConfig ChooseGemm(const ClRuntime& rt);

// Packs B(k, n) = b[k * sbk + n * sbn] (host data) into panels of `nr` columns.
std::vector<float> PackB(const float* b, int64_t K, int64_t N, int64_t sbk, int64_t sbn, int nr);
inline int64_t Panels(int64_t N, int nr) { return (N + nr - 1) / nr; }

struct GemmShape {
  int M, N, K, sam, sak, ldc, sbm = 0, sbn = 0;
  float alpha = 1, beta = 0;
  bool has_bias = false;
  int ldb = 0;  // > 0: B is read in place as B[k * ldb + n] (CPU kernel only), not packed
  float lo = -std::numeric_limits<float>::infinity();  // fused clamp of the output
  float hi = std::numeric_limits<float>::infinity();
};

// Appends the GEMM step. A, B (packed unless s.ldb > 0) and bias are given as bindings; `table`
// holds 4 offsets per batch (A, Bp, C, bias).
Status AddGemmStep(const OpCtx& c, const GemmConfig& g, const GemmShape& s, Binding a, Binding bp,
                   Binding bias, int out, const std::vector<int>& table);

}  // namespace outpost::kernels::opencl
