// Shared dense helpers for the CPU kernels: GEMM, convolution geometry, im2col/col2im, conv driver.
#pragma once

#include <cassert>
#include <cstdint>
#include <immintrin.h>

#include <algorithm>
#include <span>
#include <type_traits>
#include <vector>

#include "cpu/common.h"
#include "cpu/scratch.h"
#include "outpost/core/thread_pool.h"
#include "outpost/kernels/kernel.h"

namespace outpost::kernels::cpu {

// Row-major C[M,N] = alpha * op(A)[M,K] * op(B)[K,N] + beta * C, with op = transpose when t*.
// Runs on OpenBLAS single-threaded per call and splits the work over `pool` (nullptr: serial).
// T is float or double.
template <typename T>
void Gemm(ThreadPool* pool, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, T alpha,
          const T* a, int64_t lda, const T* b, int64_t ldb, T beta, T* c, int64_t ldc);

// A per-thread scratch buffer of at least `n` elements of T, reused across calls (grows only).
// Index `slot` lets one caller hold several buffers at once.
template <typename T>
T* Scratch(size_t n, int slot = 0);

// y[i] += a * x[i] (explicit AVX2: GCC's -O2 vectorizer skips loops that need alias checks).
inline void Axpy(float a, const float* x, float* y, int64_t n) {
  int64_t i = 0;
  const __m256 va = _mm256_set1_ps(a);
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
  for (; i < n; ++i) y[i] += a * x[i];
}
inline void Axpy(double a, const double* x, double* y, int64_t n) {
  int64_t i = 0;
  const __m256d va = _mm256_set1_pd(a);
  for (; i + 4 <= n; i += 4)
    _mm256_storeu_pd(y + i, _mm256_fmadd_pd(va, _mm256_loadu_pd(x + i), _mm256_loadu_pd(y + i)));
  for (; i < n; ++i) y[i] += a * x[i];
}

// Spatial geometry of a convolution or pooling window, padded to 3 spatial dims (leading dims 1).
struct ConvGeom {
  static constexpr int kDims = 3;
  int nd = 0;  // the op's number of spatial dims (1..3)
  int64_t in[kDims], out[kDims], k[kDims], s[kDims], d[kDims], pb[kDims], pe[kDims];
  int64_t in_size = 1, out_size = 1, k_size = 1;
  bool pointwise() const;  // 1x1 kernel, stride 1, no padding: the input is already the GEMM B
};

// Builds the geometry from the op's attributes (kernel_shape, strides, dilations, pads, auto_pad)
// for an input of shape [N, C, spatial...]. `kernel` gives the kernel's spatial dims (from W for
// Conv); pooling passes ceil_mode. Refuses more than 3 spatial dims as unsupported.
Expected<ConvGeom> MakeConvGeom(KernelContext& ctx, const Shape& x, std::span<const int64_t> kernel,
                                bool ceil_mode = false);

// Geometry from explicit per-dim values (pads: begin..., end...). `out` empty: computed as for
// Conv with explicit pads; given: taken as is (ConvTranspose, where `in` is the output image).
Expected<ConvGeom> GeomFrom(KernelContext& ctx, std::span<const int64_t> in,
                            std::span<const int64_t> k, std::span<const int64_t> s,
                            std::span<const int64_t> d, std::span<const int64_t> pads,
                            std::span<const int64_t> out);

// Validates Conv's X [N, C, ...] / W [M, C/group, k...] pair and the group attribute, and builds
// the geometry from the attributes (shared by Conv, ConvInteger, QLinearConv).
Expected<ConvGeom> ConvSetup(KernelContext& ctx, const Shape& x, const Shape& w, int64_t* group);

// Output shape [N, channels, geom.out...].
Shape ConvOutShape(const ConvGeom& g, int64_t n, int64_t channels);

// Output positions o in [0, out) whose input position o * s + off lies in [0, in): [*lo, *hi).
inline void ValidRange(int64_t off, int64_t s, int64_t in, int64_t out, int64_t* lo,
                              int64_t* hi) {
  int64_t l = off >= 0 ? 0 : (-off + s - 1) / s;
  int64_t h = in - off > 0 ? (in - off + s - 1) / s : 0;
  *lo = std::min(l, out);
  *hi = std::max(*lo, std::min(h, out));
}

// Visits every (output row, input row) pair of one kernel offset: fn(out_row_ptr_offset,
// in_row_offset or -1 when the row lies in the padding, lo, hi, in_col_off).
template <typename F>
inline void ForKernelRows(const ConvGeom& g, int64_t kd, int64_t kh, int64_t kw, F&& fn) {
  const int64_t off_w = kw * g.d[2] - g.pb[2];
  int64_t lo, hi;
  ValidRange(off_w, g.s[2], g.in[2], g.out[2], &lo, &hi);
  for (int64_t od = 0; od < g.out[0]; ++od) {
    const int64_t id = od * g.s[0] + kd * g.d[0] - g.pb[0];
    for (int64_t oh = 0; oh < g.out[1]; ++oh) {
      const int64_t ih = oh * g.s[1] + kh * g.d[1] - g.pb[1];
      const bool inside = id >= 0 && id < g.in[0] && ih >= 0 && ih < g.in[1];
      fn((od * g.out[1] + oh) * g.out[2], inside ? (id * g.in[1] + ih) * g.in[2] : -1, lo, hi,
         off_w);
    }
  }
}

// Window ops over a padded plane with every row split into its stride phases (phase r,
// element j = padded column r + j * s, pw elements per phase row): the offset of each window
// tap (row-major kernel order) relative to the window of output (0, 0). Returns the tap count.
inline int PhaseTapOffsets(const ConvGeom& g, int64_t pw, int64_t* off) {
  const int64_t sw = g.s[2];
  int t = 0;
  for (int64_t kh = 0; kh < g.k[1]; ++kh)
    for (int64_t kw = 0; kw < g.k[2]; ++kw) {
      const int64_t col = kw * g.d[2];
      off[t++] = kh * g.d[1] * sw * pw + (col % sw) * pw + col / sw;
    }
  return t;
}

// col[c * k_size + kpos][opos] = x[c][window(opos) + kpos] (`pad` outside the input); x is
// [C, in]. T: float, double, uint8_t (quantized: pad = the zero point).
template <typename T>
void Im2Col(ThreadPool* pool, const ConvGeom& g, int64_t channels, const T* x, T* col,
            T pad = T(0));
// The adjoint: y[c][window(opos) + kpos] += col[c * k_size + kpos][opos]; y is [C, in].
template <typename T>
void Col2Im(const ConvGeom& g, int64_t channels, const T* col, T* y);

// y[N, M, out] = conv(x[N, C, in], w[M, C/group, k]) + bias[M] (bias may be null). T: float or
// double. Depthwise convolutions take a direct kernel; others im2col + GEMM.
template <typename T>
void ConvForward(ThreadPool* pool, const ConvGeom& g, int64_t n, int64_t c, int64_t m,
                 int64_t group, const T* x, const T* w, const T* bias, T* y);

// The type dense float ops compute in: T for float/double, float for the 16-bit floats.
template <typename T>
using Compute = std::conditional_t<std::is_same_v<T, double>, double, float>;

// Scratch for a tensor's data in the compute type: empty when T is the compute type already
// (no copy needed), else sized like the tensor. On the scratch arena: no heap in steady state.
template <typename T>
class ComputeBuf : public ScratchVec<Compute<T>> {
 public:
  explicit ComputeBuf(const Tensor* t)
      : ScratchVec<Compute<T>>(std::is_same_v<T, Compute<T>> || !t ? 0 : t->numel()) {}
};

// Input data in the compute type: the tensor itself, or a converted copy in *buf.
template <typename T>
const Compute<T>* ComputeIn(const Tensor& t, ComputeBuf<T>* buf) {
  if constexpr (std::is_same_v<T, Compute<T>>) {
    return t.data<T>();
  } else {
    assert(static_cast<int64_t>(buf->size()) == t.numel());
    for (int64_t i = 0; i < t.numel(); ++i) (*buf)[i] = static_cast<float>(t.data<T>()[i]);
    return buf->data();
  }
}
// Output storage in the compute type (zeroed when a copy); FinishOut converts it back.
template <typename T>
Compute<T>* ComputeOut(Tensor* t, ComputeBuf<T>* buf) {
  if constexpr (std::is_same_v<T, Compute<T>>) {
    return t->data<T>();
  } else {
    assert(static_cast<int64_t>(buf->size()) == t->numel());
    return buf->data();
  }
}
template <typename T>
void FinishOut(Tensor* t, const ComputeBuf<T>& buf) {
  if constexpr (!std::is_same_v<T, Compute<T>>)
    for (int64_t i = 0; i < t->numel(); ++i) t->data<T>()[i] = T(buf[i]);
}

// Batched matmul with numpy broadcasting of the batch dims and 1-D operands (ONNX MatMul).
struct MatMulPlan {
  Shape out;
  int64_t m = 0, n = 0, k = 0, batch = 0;
  // Map a batch index to the batch of A and of B it reads (numpy broadcasting); fixed size, so
  // planning a MatMul allocates nothing.
  BroadcastIndexer ia{Shape{}, Shape{}}, ib{Shape{}, Shape{}};
  bool fold_a = false;  // B is shared by every batch and A is contiguous: one [batch*m, k] GEMM
  int64_t a_off(int64_t i) const { return ia.Offset(i) * m * k; }  // element offsets of batch i
  int64_t b_off(int64_t i) const { return ib.Offset(i) * k * n; }
};
Expected<MatMulPlan> PlanMatMul(KernelContext& ctx, const Shape& a, const Shape& b);
// y = a @ b per the plan. T: float or double.
template <typename T>
void RunMatMul(ThreadPool* pool, const MatMulPlan& p, const T* a, const T* b, T* y);

// Pooling: calls fn(plane, out_index, start) for every output position of every [in] plane
// (planes = N * C, in parallel); start[j] = o[j] * s[j] - pb[j] is the window's first position.
template <typename F>
void ForEachWindow(ThreadPool* pool, const ConvGeom& g, int64_t planes, F&& fn) {
  auto body = [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) {
      int64_t o = 0;
      for (int64_t od = 0; od < g.out[0]; ++od)
        for (int64_t oh = 0; oh < g.out[1]; ++oh)
          for (int64_t ow = 0; ow < g.out[2]; ++ow) {
            const int64_t st[3] = {od * g.s[0] - g.pb[0], oh * g.s[1] - g.pb[1],
                                   ow * g.s[2] - g.pb[2]};
            fn(p, o++, st);
          }
    }
  };
  if (pool && planes > 1) pool->ParallelFor(planes, 1, body);
  else body(0, planes);
}

// Visits the window at `st`: fn(index) for each position inside the input (index into the
// plane); returns how many window positions fall inside the padded input ([-pb, in + pe)).
template <typename F>
int64_t ForWindowElems(const ConvGeom& g, const int64_t* st, F&& fn) {
  int64_t padded = 0;
  for (int64_t kd = 0; kd < g.k[0]; ++kd) {
    const int64_t id = st[0] + kd * g.d[0];
    if (id < -g.pb[0] || id >= g.in[0] + g.pe[0]) continue;
    for (int64_t kh = 0; kh < g.k[1]; ++kh) {
      const int64_t ih = st[1] + kh * g.d[1];
      if (ih < -g.pb[1] || ih >= g.in[1] + g.pe[1]) continue;
      for (int64_t kw = 0; kw < g.k[2]; ++kw) {
        const int64_t iw = st[2] + kw * g.d[2];
        if (iw < -g.pb[2] || iw >= g.in[2] + g.pe[2]) continue;
        ++padded;
        if (id >= 0 && id < g.in[0] && ih >= 0 && ih < g.in[1] && iw >= 0 && iw < g.in[2])
          fn((id * g.in[1] + ih) * g.in[2] + iw);
      }
    }
  }
  return padded;
}

// Row-wise pooling of one [in] plane into an [out] plane y (pre-initialized by the caller):
// y[o] = op(y[o], x[i]) for every input position i inside window o. The inner loop runs along
// output columns, so it vectorizes.
template <typename A, typename T, typename Op>
void PoolPlaneRows(const ConvGeom& g, const T* x, A* y, Op op) {
  const int64_t sw = g.s[2];
  for (int64_t kd = 0; kd < g.k[0]; ++kd)
    for (int64_t kh = 0; kh < g.k[1]; ++kh)
      for (int64_t kw = 0; kw < g.k[2]; ++kw)
        ForKernelRows(g, kd, kh, kw, [&](int64_t o, int64_t i, int64_t lo, int64_t hi, int64_t off) {
          if (i < 0) return;
          A* yr = y + o;
          const T* xr = x + i + off;
          if (sw == 1) {
            for (int64_t ow = lo; ow < hi; ++ow) yr[ow] = op(yr[ow], static_cast<A>(xr[ow]));
          } else {
            for (int64_t ow = lo; ow < hi; ++ow) yr[ow] = op(yr[ow], static_cast<A>(xr[ow * sw]));
          }
        });
}

// Kernel spatial dims from the kernel_shape attribute (pooling ops), viewing the attribute.
Expected<std::span<const int64_t>> PoolKernelShape(KernelContext& ctx, const Shape& x);

}  // namespace outpost::kernels::cpu
