// AVX-512 float kernels over weights packed once per prepared node (packed.cpp).
#pragma once

#include <cstdint>
#include <vector>

#include "cpu/gemm.h"
#include "outpost/kernels/fusion.h"

namespace outpost::kernels::cpu {

// Weights [M, C/group, k...] as [group][panel][K][kMr]: kMr output channels side by side per
// reduction step, zero-padded to a whole panel.
struct PackedConvWeights {
  static constexpr int kMr = 12;
  std::vector<float> data;
  int64_t mg = 0, k = 0, group = 1, panels = 0;
};

// The CPU has AVX-512 (F, VL, DQ, BW).
bool PackedConvAvailable();
// This path handles the convolution: AVX-512, 1-D or 2-D, not depthwise.
bool PackedConvApplies(const ConvGeom& g, int64_t c, int64_t group);
// Depthwise (group == C == M), AVX-512, 1-D or 2-D.
bool PackedDepthwiseApplies(const ConvGeom& g, int64_t c, int64_t m, int64_t group);
// y[N, C, out] = clamp(depthwise(x, w[C, 1, k...]) + bias).
void PackedDepthwise(ThreadPool* pool, const ConvGeom& g, int64_t n, int64_t c, const float* x,
                     const float* w, const float* bias, FusedClamp clamp, float* y);
// Max pooling of float planes, AVX-512, 1-D or 2-D (no indices).
bool PackedPoolApplies(const ConvGeom& g);
void PackedMaxPool(ThreadPool* pool, const ConvGeom& g, int64_t planes, const float* x, float* y);
// w is [M, K = C/group * k_size].
PackedConvWeights PackConvWeights(const float* w, int64_t m, int64_t group, int64_t kk);
// y[N, M, out] = clamp(conv(x, w) + bias).
void PackedConv(ThreadPool* pool, const ConvGeom& g, int64_t n, int64_t c,
                const PackedConvWeights& w, const float* x, const float* bias, FusedClamp clamp,
                float* y);

// B [K, N] as [panel][K][32]: 32 output columns side by side per reduction step.
struct PackedMatMulWeights {
  std::vector<float> data;
  int64_t k = 0, n = 0, panels = 0;
};
PackedMatMulWeights PackMatMulWeights(const float* b, int64_t k, int64_t n);
// y[M, N] = a[M, K] @ B (needs PackedConvAvailable()).
void PackedMatMul(ThreadPool* pool, int64_t m, const float* a, const PackedMatMulWeights& b,
                  float* y);

}  // namespace outpost::kernels::cpu
