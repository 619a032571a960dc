// Shared dense GEMM on OpenBLAS, partitioned over the runtime's thread pool.
#include "cpu/gemm.h"

#include <immintrin.h>

#include <algorithm>
#include <memory>

#include "cpu/blas.h"
#include "cpu/common.h"

namespace outpost::kernels::cpu {
namespace {

// The reference loops, used only when OpenBLAS cannot be loaded (logged and in a metric).
template <typename T>
void RefGemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, T alpha, const T* a, int64_t lda,
             const T* b, int64_t ldb, T beta, T* c, int64_t ldc) {
  for (int64_t i = 0; i < m; ++i) {
    T* cr = c + i * ldc;
    for (int64_t j = 0; j < n; ++j) cr[j] = beta == T(0) ? T(0) : beta * cr[j];
    for (int64_t p = 0; p < k; ++p) {
      const T av = alpha * (ta ? a[p * lda + i] : a[i * lda + p]);
      for (int64_t j = 0; j < n; ++j) cr[j] += av * (tb ? b[j * ldb + p] : b[p * ldb + j]);
    }
  }
}

// OpenBLAS runs single-threaded inside our partitions: its own pthread pool would compete with
// ours (and oversubscribe the cores when several kernels run at once).
template <typename T>
void BlasGemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, T alpha, const T* a, int64_t lda,
              const T* b, int64_t ldb, T beta, T* c, int64_t ldc) {
  const Blas& blas = GetBlas();
  auto op_a = ta ? CblasTrans : CblasNoTrans;
  auto op_b = tb ? CblasTrans : CblasNoTrans;
  if constexpr (std::is_same_v<T, float>) {
    if (blas.sgemm)
      return blas.sgemm(CblasRowMajor, op_a, op_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  } else {
    if (blas.dgemm)
      return blas.dgemm(CblasRowMajor, op_a, op_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  }
  RefGemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

}  // namespace

template <typename T>
void Gemm(ThreadPool* pool, bool ta, bool tb, int64_t m, int64_t n, int64_t k, T alpha, const T* a,
          int64_t lda, const T* b, int64_t ldb, T beta, T* c, int64_t ldc) {
  if (m <= 0 || n <= 0) return;
  if (k <= 0) {  // BLAS leaves C untouched scaled by beta; do it ourselves for clarity.
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) c[i * ldc + j] = beta == T(0) ? T(0) : beta * c[i * ldc + j];
    return;
  }
  const double flops = 2.0 * static_cast<double>(m) * n * k;
  const int parts = pool ? pool->size() : 1;
  if (parts <= 1 || flops < 2e5) {
    BlasGemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    return;
  }
  // Split the larger output dimension into one block per thread (rounded to SIMD-friendly sizes).
  const bool split_n = n >= m;
  const int64_t dim = split_n ? n : m;
  const int64_t align = split_n ? 16 : 8;
  int64_t block = (dim + parts - 1) / parts;
  block = std::min(dim, (block + align - 1) / align * align);
  const int64_t blocks = (dim + block - 1) / block;
  pool->ParallelFor(blocks, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t bi = b0; bi < b1; ++bi) {
      const int64_t s = bi * block, len = std::min(block, dim - s);
      if (split_n) {
        BlasGemm(ta, tb, m, len, k, alpha, a, lda, tb ? b + s * ldb : b + s, ldb, beta, c + s, ldc);
      } else {
        BlasGemm(ta, tb, len, n, k, alpha, ta ? a + s : a + s * lda, lda, b, ldb, beta, c + s * ldc,
                 ldc);
      }
    }
  });
}

template <typename T>
T* Scratch(size_t n, int slot) {
  struct Buf {
    std::unique_ptr<T[]> p;
    size_t n = 0;
  };
  thread_local Buf bufs[4];
  Buf& b = bufs[slot & 3];
  if (b.n < n) {
    b.p.reset(new T[n]);
    b.n = n;
  }
  return b.p.get();
}

template void Gemm<float>(ThreadPool*, bool, bool, int64_t, int64_t, int64_t, float, const float*,
                          int64_t, const float*, int64_t, float, float*, int64_t);
template void Gemm<double>(ThreadPool*, bool, bool, int64_t, int64_t, int64_t, double,
                           const double*, int64_t, const double*, int64_t, double, double*,
                           int64_t);
template float* Scratch<float>(size_t, int);
template double* Scratch<double>(size_t, int);
template uint32_t* Scratch<uint32_t>(size_t, int);
template int64_t* Scratch<int64_t>(size_t, int);

bool ConvGeom::pointwise() const {
  for (int i = 0; i < kDims; ++i)
    if (k[i] != 1 || s[i] != 1 || pb[i] != 0 || pe[i] != 0) return false;
  return true;
}

Expected<ConvGeom> MakeConvGeom(KernelContext& ctx, const Shape& x, std::span<const int64_t> kernel,
                                bool ceil_mode) {
  const Attributes& at = ctx.attrs();
  const int nd = x.rank() - 2;
  if (nd < 1) return ctx.Fail("input must be [N, C, spatial...], got " + x.ToString());
  if (nd > ConvGeom::kDims)
    return ctx.NotSupported(std::to_string(nd) + " spatial dims (at most 3 are implemented)");
  if (static_cast<int>(kernel.size()) != nd)
    return ctx.Fail("kernel has " + std::to_string(kernel.size()) + " spatial dims, input " +
                    std::to_string(nd));
  // Views into the attributes (no copies: this runs on every call); absent means the default.
  const auto strides = at.IntsView("strides"), dil = at.IntsView("dilations");
  const auto pads = at.IntsView("pads");
  if ((!strides.empty() && static_cast<int>(strides.size()) != nd) ||
      (!dil.empty() && static_cast<int>(dil.size()) != nd) ||
      (!pads.empty() && static_cast<int>(pads.size()) != 2 * nd))
    return ctx.Fail("strides/dilations/pads do not match " + std::to_string(nd) + " spatial dims");
  auto at_or = [](std::span<const int64_t> v, int i, int64_t def) {
    return v.empty() ? def : v[i];
  };
  const std::string ap = at.String("auto_pad", "NOTSET");
  if (ap != "NOTSET" && ap != "VALID" && ap != "SAME_UPPER" && ap != "SAME_LOWER")
    return ctx.Fail("bad auto_pad '" + ap + "'");
  ConvGeom g;
  g.nd = nd;
  for (int j = 0; j < ConvGeom::kDims; ++j) {
    g.in[j] = g.out[j] = g.k[j] = g.s[j] = g.d[j] = 1;
    g.pb[j] = g.pe[j] = 0;
  }
  const int off = ConvGeom::kDims - nd;
  for (int i = 0; i < nd; ++i) {
    const int j = off + i;
    const int64_t in = x[2 + i], k = kernel[i], s = at_or(strides, i, 1), d = at_or(dil, i, 1);
    const int64_t pad_b = at_or(pads, i, 0), pad_e = at_or(pads, i + nd, 0);
    if (k < 1 || s < 1 || d < 1) return ctx.Fail("kernel, strides and dilations must be >= 1");
    if (pad_b < 0 || pad_e < 0) return ctx.Fail("negative pads");
    const int64_t ek = (k - 1) * d + 1;
    int64_t out, pb = 0, pe = 0;
    if (ap == "SAME_UPPER" || ap == "SAME_LOWER") {
      out = (in + s - 1) / s;
      const int64_t total = std::max<int64_t>(0, (out - 1) * s + ek - in);
      pb = ap == "SAME_UPPER" ? total / 2 : total - total / 2;
      pe = total - pb;
    } else {
      if (ap == "NOTSET") pb = pad_b, pe = pad_e;
      const int64_t span = in + pb + pe - ek;
      if (span < 0) return ctx.BadInput("kernel larger than the padded input " + x.ToString());
      out = (ceil_mode ? (span + s - 1) / s : span / s) + 1;
      // The last window must start inside the input or the leading padding.
      if (ceil_mode && (out - 1) * s >= in + pb) --out;
    }
    g.in[j] = in, g.out[j] = out, g.k[j] = k, g.s[j] = s, g.d[j] = d, g.pb[j] = pb, g.pe[j] = pe;
  }
  for (int j = 0; j < ConvGeom::kDims; ++j) {
    g.in_size *= g.in[j];
    g.out_size *= g.out[j];
    g.k_size *= g.k[j];
  }
  return g;
}

Expected<ConvGeom> GeomFrom(KernelContext& ctx, std::span<const int64_t> in,
                            std::span<const int64_t> k, std::span<const int64_t> s,
                            std::span<const int64_t> d, std::span<const int64_t> pads,
                            std::span<const int64_t> out) {
  const int nd = static_cast<int>(in.size());
  if (nd < 1 || nd > ConvGeom::kDims)
    return ctx.NotSupported(std::to_string(nd) + " spatial dims (1 to 3 are implemented)");
  if (k.size() != in.size() || s.size() != in.size() || d.size() != in.size() ||
      pads.size() != 2 * in.size() || (!out.empty() && out.size() != in.size()))
    return ctx.Fail("kernel/strides/dilations/pads do not match " + std::to_string(nd) + " dims");
  ConvGeom g;
  g.nd = nd;
  const int off = ConvGeom::kDims - nd;
  for (int j = 0; j < ConvGeom::kDims; ++j) {
    const int i = j - off;
    if (i < 0) {
      g.in[j] = g.out[j] = g.k[j] = g.s[j] = g.d[j] = 1, g.pb[j] = g.pe[j] = 0;
      continue;
    }
    g.in[j] = in[i], g.k[j] = k[i], g.s[j] = s[i], g.d[j] = d[i], g.pb[j] = pads[i];
    g.pe[j] = pads[i + nd];
    if (g.k[j] < 1 || g.s[j] < 1 || g.d[j] < 1 || g.in[j] < 0)
      return ctx.Fail("kernel, strides and dilations must be >= 1");
    if (out.empty()) {
      const int64_t span = g.in[j] + g.pb[j] + g.pe[j] - ((g.k[j] - 1) * g.d[j] + 1);
      if (span < 0) return ctx.BadInput("kernel larger than the padded input");
      g.out[j] = span / g.s[j] + 1;
    } else {
      g.out[j] = out[i];
    }
  }
  for (int j = 0; j < ConvGeom::kDims; ++j) {
    g.in_size *= g.in[j];
    g.out_size *= g.out[j];
    g.k_size *= g.k[j];
  }
  return g;
}

Expected<ConvGeom> ConvSetup(KernelContext& ctx, const Shape& x, const Shape& w, int64_t* group) {
  if (x.rank() < 3 || w.rank() != x.rank())
    return ctx.Fail("bad ranks X " + x.ToString() + " W " + w.ToString());
  *group = ctx.attrs().Int("group", 1);
  const int64_t c = x[1], m = w[0];
  if (*group < 1 || c % *group != 0 || m % *group != 0 || w[1] * *group != c)
    return ctx.Fail("channels " + std::to_string(c) + " / W " + w.ToString() +
                    " do not match group " + std::to_string(*group));
  const std::span<const int64_t> ks(w.begin() + 2, w.end());
  const auto attr_ks = ctx.attrs().IntsView("kernel_shape");
  if (!attr_ks.empty() && !std::equal(attr_ks.begin(), attr_ks.end(), ks.begin(), ks.end()))
    return ctx.Fail("kernel_shape does not match W");
  return MakeConvGeom(ctx, x, ks);
}

Shape ConvOutShape(const ConvGeom& g, int64_t n, int64_t channels) {
  Shape s{n, channels};
  for (int i = ConvGeom::kDims - g.nd; i < ConvGeom::kDims; ++i) s.push_back(g.out[i]);
  return s;
}

namespace {

// d[ow] = s[ow * stride] for ow in [lo, hi): stride 2 (the strided convolutions' usual case)
// 32 bytes at a time, the even bytes of 64 packed; reads stop at s[(hi - 1) * 2].
void GatherBytes(const uint8_t* s, int64_t stride, int64_t lo, int64_t hi, uint8_t* d) {
  int64_t ow = lo;
  if (stride == 2) {
    const __m256i even = _mm256_set1_epi16(0x00FF);
    for (; ow + 32 < hi; ow += 32) {
      const __m256i a = _mm256_and_si256(
          _mm256_loadu_si256(reinterpret_cast<const __m256i*>(s + 2 * ow)), even);
      const __m256i b = _mm256_and_si256(
          _mm256_loadu_si256(reinterpret_cast<const __m256i*>(s + 2 * ow + 32)), even);
      // packus works per 128-bit lane: a0 b0 a1 b1 -> a0 a1 b0 b1.
      const __m256i p = _mm256_permute4x64_epi64(_mm256_packus_epi16(a, b), 0xD8);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(d + ow), p);
    }
  }
  for (; ow < hi; ++ow) d[ow] = s[ow * stride];
}

}  // namespace

template <typename T>
void Im2Col(ThreadPool* pool, const ConvGeom& g, int64_t channels, const T* x, T* col, T pad) {
  const int64_t rows = channels * g.k_size;
  auto body = [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t c = r / g.k_size, kp = r % g.k_size;
      const int64_t kw = kp % g.k[2], kh = (kp / g.k[2]) % g.k[1], kd = kp / (g.k[2] * g.k[1]);
      const T* xc = x + c * g.in_size;
      T* dst = col + r * g.out_size;
      const int64_t sw = g.s[2];
      ForKernelRows(g, kd, kh, kw,
                    [&](int64_t o, int64_t i, int64_t lo, int64_t hi, int64_t ow_off) {
                      T* drow = dst + o;
                      if (i < 0) {
                        std::fill(drow, drow + g.out[2], pad);
                        return;
                      }
                      const T* srow = xc + i + ow_off;
                      std::fill(drow, drow + lo, pad);
                      if (sw == 1) {
                        std::copy(srow + lo, srow + hi, drow + lo);
                      } else if constexpr (std::is_same_v<T, uint8_t>) {
                        GatherBytes(srow, sw, lo, hi, drow);
                      } else {
                        for (int64_t ow = lo; ow < hi; ++ow) drow[ow] = srow[ow * sw];
                      }
                      std::fill(drow + hi, drow + g.out[2], pad);
                    });
    }
  };
  if (pool && rows * g.out_size > 16384)
    pool->ParallelFor(rows, 4, body);
  else
    body(0, rows);
}

template <typename T>
void Col2Im(const ConvGeom& g, int64_t channels, const T* col, T* y) {
  for (int64_t r = 0; r < channels * g.k_size; ++r) {
    const int64_t c = r / g.k_size, kp = r % g.k_size;
    const int64_t kw = kp % g.k[2], kh = (kp / g.k[2]) % g.k[1], kd = kp / (g.k[2] * g.k[1]);
    T* yc = y + c * g.in_size;
    const T* src = col + r * g.out_size;
    ForKernelRows(g, kd, kh, kw, [&](int64_t o, int64_t i, int64_t lo, int64_t hi, int64_t ow_off) {
      if (i < 0) return;
      T* drow = yc + i + ow_off;
      for (int64_t ow = lo; ow < hi; ++ow) drow[ow * g.s[2]] += src[o + ow];
    });
  }
}

// ph[r * len + j] = x[r + j * s]: the s phases of a strided row.
template <typename T>
static void SplitPhases(const T* x, int64_t n, int64_t s, int64_t len, T* ph) {
  int64_t j = 0;
  if constexpr (std::is_same_v<T, float>) {
    if (s == 2) {
      for (; 2 * j + 16 <= n; j += 8) {
        const __m256 a = _mm256_loadu_ps(x + 2 * j), b = _mm256_loadu_ps(x + 2 * j + 8);
        const __m256 e = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0));
        const __m256 o = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1));
        _mm256_storeu_ps(ph + j, _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(e),
                                                                        _MM_SHUFFLE(3, 1, 2, 0))));
        _mm256_storeu_ps(ph + len + j, _mm256_castpd_ps(_mm256_permute4x64_pd(
                                           _mm256_castps_pd(o), _MM_SHUFFLE(3, 1, 2, 0))));
      }
    }
  }
  for (int64_t r = 0; r < s; ++r)
    for (int64_t i = j; r + i * s < n; ++i) ph[r * len + i] = x[r + i * s];
}

// Depthwise (group == C): each output channel m reads input channel m / (M / C). Output rows
// are accumulated in place tap by tap; strided input rows are first split into `stride` phase
// rows so every tap is a contiguous multiply-add along the row.
template <typename T>
static void DepthwiseConv(ThreadPool* pool, const ConvGeom& g, int64_t n, int64_t c, int64_t m,
                          const T* x, const T* w, const T* bias, T* y) {
  const int64_t mult = m / c, sw = g.s[2], iw = g.in[2], ow_n = g.out[2];
  const int64_t phase_len = (iw + sw - 1) / sw;
  auto body = [&](int64_t p0, int64_t p1) {
    std::vector<T> phases(sw > 1 ? g.in[0] * g.in[1] * sw * phase_len : 0);
    for (int64_t p = p0; p < p1; ++p) {
      const int64_t b = p / m, oc = p % m;
      const T* xc = x + (b * c + oc / mult) * g.in_size;
      if (sw > 1 && (p == p0 || oc % mult == 0))  // split every input row into stride phases
        for (int64_t row = 0; row < g.in[0] * g.in[1]; ++row)
          SplitPhases(xc + row * iw, iw, sw, phase_len, phases.data() + row * sw * phase_len);
      const T* wc = w + oc * g.k_size;
      T* yc = y + p * g.out_size;
      for (int64_t od = 0; od < g.out[0]; ++od) {
        for (int64_t oh = 0; oh < g.out[1]; ++oh) {
          T* yr = yc + (od * g.out[1] + oh) * ow_n;
          std::fill(yr, yr + ow_n, bias ? bias[oc] : T(0));
          for (int64_t kd = 0; kd < g.k[0]; ++kd) {
            const int64_t id = od * g.s[0] + kd * g.d[0] - g.pb[0];
            if (id < 0 || id >= g.in[0]) continue;
            for (int64_t kh = 0; kh < g.k[1]; ++kh) {
              const int64_t ih = oh * g.s[1] + kh * g.d[1] - g.pb[1];
              if (ih < 0 || ih >= g.in[1]) continue;
              const T* xr = xc + (id * g.in[1] + ih) * iw;
              const T* wr = wc + (kd * g.k[1] + kh) * g.k[2];
              for (int64_t kw = 0; kw < g.k[2]; ++kw) {
                const int64_t off = kw * g.d[2] - g.pb[2];
                int64_t lo, hi;
                ValidRange(off, sw, iw, ow_n, &lo, &hi);
                const T wv = wr[kw];
                const T* src;
                if (sw == 1) {
                  src = xr + off;
                } else {  // position ow * sw + off == (ow + q) * sw + r
                  const int64_t r = ((off % sw) + sw) % sw, q = (off - r) / sw;
                  src = phases.data() + ((id * g.in[1] + ih) * sw + r) * phase_len + q;
                }
                if (hi > lo) Axpy(wv, src + lo, yr + lo, hi - lo);
              }
            }
          }
        }
      }
    }
  };
  if (pool)
    pool->ParallelFor(n * m, 1, body);
  else
    body(0, n * m);
}

template <typename T>
void ConvForward(ThreadPool* pool, const ConvGeom& g, int64_t n, int64_t c, int64_t m,
                 int64_t group, const T* x, const T* w, const T* bias, T* y) {
  if (group == c && group > 1) return DepthwiseConv(pool, g, n, c, m, x, w, bias, y);
  const int64_t cg = c / group, mg = m / group, kk = cg * g.k_size;
  const bool direct = g.pointwise();
  T* col = direct ? nullptr : Scratch<T>(static_cast<size_t>(kk * g.out_size));
  for (int64_t b = 0; b < n; ++b) {
    for (int64_t gi = 0; gi < group; ++gi) {
      const T* xg = x + (b * c + gi * cg) * g.in_size;
      T* yg = y + (b * m + gi * mg) * g.out_size;
      if (!direct) Im2Col(pool, g, cg, xg, col);
      if (bias) {
        for (int64_t o = 0; o < mg; ++o)
          std::fill(yg + o * g.out_size, yg + (o + 1) * g.out_size, bias[gi * mg + o]);
      }
      Gemm<T>(pool, false, false, mg, g.out_size, kk, T(1), w + gi * mg * kk, kk, direct ? xg : col,
              g.out_size, bias ? T(1) : T(0), yg, g.out_size);
    }
  }
}

#define OUTPOST_DENSE_INSTANTIATE(T)                                                             \
  template void Im2Col<T>(ThreadPool*, const ConvGeom&, int64_t, const T*, T*, T);               \
  template void Col2Im<T>(const ConvGeom&, int64_t, const T*, T*);                               \
  template void ConvForward<T>(ThreadPool*, const ConvGeom&, int64_t, int64_t, int64_t, int64_t, \
                               const T*, const T*, const T*, T*);
OUTPOST_DENSE_INSTANTIATE(float)
OUTPOST_DENSE_INSTANTIATE(double)
#undef OUTPOST_DENSE_INSTANTIATE
template void Im2Col<uint8_t>(ThreadPool*, const ConvGeom&, int64_t, const uint8_t*, uint8_t*,
                              uint8_t);

Expected<MatMulPlan> PlanMatMul(KernelContext& ctx, const Shape& a, const Shape& b) {
  if (a.rank() < 1 || b.rank() < 1) return ctx.Fail("MatMul operands must have rank >= 1");
  MatMulPlan p;
  Shape as = a, bs = b;
  if (a.rank() == 1) as = Shape{1, a[0]};
  if (b.rank() == 1) bs = Shape{b[0], 1};
  p.m = as[as.rank() - 2], p.k = as[as.rank() - 1], p.n = bs[bs.rank() - 1];
  if (bs[bs.rank() - 2] != p.k)
    return ctx.BadInput("MatMul inner dims differ: " + a.ToString() + " x " + b.ToString());
  Shape ab(std::span<const int64_t>(as.begin(), as.rank() - 2));
  Shape bb(std::span<const int64_t>(bs.begin(), bs.rank() - 2));
  Shape shapes[2] = {ab, bb};
  OP_ASSIGN_OR_RETURN(Shape batch, BroadcastShapes(ctx, shapes));
  p.out = batch;
  if (a.rank() > 1) p.out.push_back(p.m);
  if (b.rank() > 1) p.out.push_back(p.n);
  p.batch = batch.numel();
  p.ia = BroadcastIndexer(ab, batch);
  p.ib = BroadcastIndexer(bb, batch);
  p.fold_a = bb.numel() == 1 && p.ia.identity();
  return p;
}

template <typename T>
void RunMatMul(ThreadPool* pool, const MatMulPlan& p, const T* a, const T* b, T* y) {
  if (p.batch == 0 || p.m == 0 || p.n == 0) return;
  if (p.fold_a || p.batch == 1) {
    const int64_t rows = p.fold_a ? p.batch * p.m : p.m;
    Gemm<T>(pool, false, false, rows, p.n, p.k, T(1), a, p.k, b, p.n, T(0), y, p.n);
    return;
  }
  const int threads = pool ? pool->size() : 1;
  const bool per_batch = p.batch >= threads && 2.0 * p.m * p.n * p.k < 4e6;
  auto one = [&](int64_t i, ThreadPool* inner) {
    Gemm<T>(inner, false, false, p.m, p.n, p.k, T(1), a + p.a_off(i), p.k, b + p.b_off(i), p.n,
            T(0), y + i * p.m * p.n, p.n);
  };
  if (per_batch && pool) {
    pool->ParallelFor(p.batch, 1, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) one(i, nullptr);
    });
  } else {
    for (int64_t i = 0; i < p.batch; ++i) one(i, pool);
  }
}
template void RunMatMul<float>(ThreadPool*, const MatMulPlan&, const float*, const float*, float*);
template void RunMatMul<double>(ThreadPool*, const MatMulPlan&, const double*, const double*,
                                double*);

Expected<std::span<const int64_t>> PoolKernelShape(KernelContext& ctx, const Shape& x) {
  auto ks = ctx.attrs().IntsView("kernel_shape");
  if (ks.empty()) return ctx.Fail("kernel_shape is required");
  if (static_cast<int>(ks.size()) != x.rank() - 2)
    return ctx.Fail("kernel_shape " + std::to_string(ks.size()) + "-D for input " + x.ToString());
  return ks;
}

}  // namespace outpost::kernels::cpu
