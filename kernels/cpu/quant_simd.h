// Vectorized QuantizeLinear / DequantizeLinear for the common case: float32 values, float32
// scales, int8/uint8 codes, one scale (and zero point) per run of `inner` contiguous elements.
// Same arithmetic as the reference loops (float32 x / scale, round half to even, + zero point,
// saturate; (float32(q) - float32(zp)) * scale), so the results are identical.
#pragma once

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "outpost/core/thread_pool.h"

namespace outpost::kernels::cpu {

template <typename Q>
inline void QuantizeRunF32(const float* x, int64_t n, float scale, float zp, Q* y) {
  constexpr float lo = std::is_same_v<Q, int8_t> ? -128.f : 0.f;
  constexpr float hi = std::is_same_v<Q, int8_t> ? 127.f : 255.f;
  const __m256 vs = _mm256_set1_ps(scale), vz = _mm256_set1_ps(zp);
  const __m256 vlo = _mm256_set1_ps(lo), vhi = _mm256_set1_ps(hi);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 v = _mm256_div_ps(_mm256_loadu_ps(x + i), vs);
    v = _mm256_round_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    v = _mm256_min_ps(_mm256_max_ps(_mm256_add_ps(v, vz), vlo), vhi);
    const __m256i q = _mm256_cvtps_epi32(v);  // exact: already integral and in range
    alignas(32) int32_t t[8];
    _mm256_store_si256(reinterpret_cast<__m256i*>(t), q);
    for (int k = 0; k < 8; ++k) y[i + k] = static_cast<Q>(t[k]);
  }
  for (; i < n; ++i) {
    float v = std::nearbyint(x[i] / scale) + zp;
    v = v < lo ? lo : (v > hi ? hi : v);
    y[i] = static_cast<Q>(static_cast<int32_t>(v));
  }
}

template <typename Q>
inline void DequantizeRunF32(const Q* x, int64_t n, float scale, float zp, float* y) {
  const __m256 vs = _mm256_set1_ps(scale), vz = _mm256_set1_ps(zp);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m128i b = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(x + i));
    const __m256i w = std::is_same_v<Q, int8_t> ? _mm256_cvtepi8_epi32(b) : _mm256_cvtepu8_epi32(b);
    _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_sub_ps(_mm256_cvtepi32_ps(w), vz), vs));
  }
  for (; i < n; ++i) y[i] = (static_cast<float>(x[i]) - zp) * scale;
}

// QLinearAdd / QLinearMul on equal shapes: c = saturate(round_half_even(((a - az) * as op
// (b - bz) * bs) / cs) + cz), each step in float32 as the DequantizeLinear -> op ->
// QuantizeLinear graph computes it (no fused multiply-add: the intrinsics are explicit).
template <typename Q, bool kMul>
inline void QLinearBinaryRunF32(const Q* a, const Q* b, int64_t n, float as, float az, float bs,
                                float bz, float cs, float cz, Q* c) {
  constexpr float lo = std::is_same_v<Q, int8_t> ? -128.f : 0.f;
  constexpr float hi = std::is_same_v<Q, int8_t> ? 127.f : 255.f;
  auto load = [](const Q* p) {
    const __m128i v = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p));
    return _mm256_cvtepi32_ps(std::is_same_v<Q, int8_t> ? _mm256_cvtepi8_epi32(v)
                                                        : _mm256_cvtepu8_epi32(v));
  };
  const __m256 vas = _mm256_set1_ps(as), vaz = _mm256_set1_ps(az), vbs = _mm256_set1_ps(bs);
  const __m256 vbz = _mm256_set1_ps(bz), vcs = _mm256_set1_ps(cs), vcz = _mm256_set1_ps(cz);
  const __m256 vlo = _mm256_set1_ps(lo), vhi = _mm256_set1_ps(hi);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 x = _mm256_mul_ps(_mm256_sub_ps(load(a + i), vaz), vas);
    const __m256 y = _mm256_mul_ps(_mm256_sub_ps(load(b + i), vbz), vbs);
    __m256 r = _mm256_div_ps(kMul ? _mm256_mul_ps(x, y) : _mm256_add_ps(x, y), vcs);
    r = _mm256_round_ps(r, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    r = _mm256_min_ps(_mm256_max_ps(_mm256_add_ps(r, vcz), vlo), vhi);
    alignas(32) int32_t t[8];
    _mm256_store_si256(reinterpret_cast<__m256i*>(t), _mm256_cvtps_epi32(r));
    for (int k = 0; k < 8; ++k) c[i + k] = static_cast<Q>(t[k]);
  }
  for (; i < n; ++i) {
    const float x = (static_cast<float>(a[i]) - az) * as;
    const float y = (static_cast<float>(b[i]) - bz) * bs;
    float r = std::nearbyint((kMul ? x * y : x + y) / cs) + cz;
    r = r < lo ? lo : (r > hi ? hi : r);
    c[i] = static_cast<Q>(static_cast<int32_t>(r));
  }
}

// Calls fn(offset, count, scale_index) over [0, numel) in parallel: per tensor (axis_dim 0) in
// chunks, per axis in runs of `inner` elements sharing the scale of channel (run % axis_dim).
template <typename F>
inline void ForEachQuantRun(ThreadPool& pool, int64_t numel, int64_t inner, int64_t axis_dim,
                            F&& fn) {
  constexpr int64_t kGrain = 16384;
  if (axis_dim == 0) {
    pool.ParallelFor(numel, kGrain, [&](int64_t b, int64_t e) { fn(b, e - b, int64_t{0}); });
    return;
  }
  if (inner <= 0) return;
  pool.ParallelFor(numel / inner, std::max<int64_t>(1, kGrain / inner), [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) fn(r * inner, inner, r % axis_dim);
  });
}

}  // namespace outpost::kernels::cpu
