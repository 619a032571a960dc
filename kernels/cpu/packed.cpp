// Float kernels on AVX-512 over weights packed once per prepared node: convolution (weights
// packed into row panels, input column blocks gathered straight into panels), depthwise
// convolution, and MatMul with constant B (packed into column panels). One 12x32
// register-blocked micro-kernel with the bias and the fused clamp applied before the single
// store of each output tile.
//
// Why not OpenBLAS here: per call it repacks the weights (the A matrix) and our im2col output
// (B) before computing, and the result then takes one more pass for bias and activation. On
// ResNet-18 those copies were a third of the convolution time (perf, one thread). This path
// packs the weights once per prepared node (PreparedCache) and copies the input once.
#include <immintrin.h>

// GCC 12's _mm512_{min,max}_ps pass _mm512_undefined_ps() as the masked-off source, which
// -Wmaybe-uninitialized reports once inlined into a target("avx512f") function.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include <algorithm>
#include <limits>

#include "cpu/gemm.h"
#include "cpu/packed.h"

namespace outpost::kernels::cpu {
namespace {

constexpr int kMr = PackedConvWeights::kMr;  // output channels per tile (broadcast operand)
constexpr int kNr = 32;                      // output positions per tile (two zmm vectors)

#define OUTPOST_AVX512 __attribute__((target("avx512f,avx512vl,avx512dq,avx512bw,fma")))

// c[r][0..cols) = clamp(bias[r] + sum_p a[p][r] * b[p * ldb + j]) for r < rows, j < cols.
// B rows are ldb apart; masked loads cover a partial column block.
OUTPOST_AVX512 void MicroKernel(int64_t k, const float* a, const float* b, int64_t ldb,
                                const float* bias, int rows, int cols, float lo, float hi, float* c,
                                int64_t ldc) {
  const __mmask16 m0 = cols >= 16 ? 0xFFFF : static_cast<__mmask16>((1u << cols) - 1);
  const __mmask16 m1 = cols >= 32   ? 0xFFFF
                       : cols <= 16 ? 0
                                    : static_cast<__mmask16>((1u << (cols - 16)) - 1);
  __m512 acc[kMr][2];
#pragma GCC unroll 12
  for (int r = 0; r < kMr; ++r) {
    const __m512 init = _mm512_set1_ps(bias && r < rows ? bias[r] : 0.f);
    acc[r][0] = init;
    acc[r][1] = init;
  }
  for (int64_t p = 0; p < k; ++p) {
    const __m512 b0 = _mm512_maskz_loadu_ps(m0, b + p * ldb);
    const __m512 b1 = _mm512_maskz_loadu_ps(m1, b + p * ldb + 16);
    const float* ap = a + p * kMr;
#pragma GCC unroll 12
    for (int r = 0; r < kMr; ++r) {
      const __m512 av = _mm512_set1_ps(ap[r]);
      acc[r][0] = _mm512_fmadd_ps(av, b0, acc[r][0]);
      acc[r][1] = _mm512_fmadd_ps(av, b1, acc[r][1]);
    }
  }
  const __m512 vlo = _mm512_set1_ps(lo), vhi = _mm512_set1_ps(hi);
#pragma GCC unroll 12
  for (int r = 0; r < kMr; ++r) {
    if (r >= rows) break;
    float* cr = c + r * ldc;
    _mm512_mask_storeu_ps(cr, m0, _mm512_min_ps(_mm512_max_ps(acc[r][0], vlo), vhi));
    _mm512_mask_storeu_ps(cr + 16, m1, _mm512_min_ps(_mm512_max_ps(acc[r][1], vlo), vhi));
  }
}

// panel[p][0..kNr) = b[p * ldb + j] for j < cols, zero beyond: one column block of B made
// contiguous, so the micro-kernel streams it instead of touching a new page per row.
OUTPOST_AVX512 void PackPanel(int64_t k, const float* b, int64_t ldb, int cols, float* panel) {
  const __mmask16 m0 = cols >= 16 ? 0xFFFF : static_cast<__mmask16>((1u << cols) - 1);
  const __mmask16 m1 = cols >= 32   ? 0xFFFF
                       : cols <= 16 ? 0
                                    : static_cast<__mmask16>((1u << (cols - 16)) - 1);
  for (int64_t p = 0; p < k; ++p) {
    _mm512_storeu_ps(panel + p * kNr, _mm512_maskz_loadu_ps(m0, b + p * ldb));
    _mm512_storeu_ps(panel + p * kNr + 16, _mm512_maskz_loadu_ps(m1, b + p * ldb + 16));
  }
}

constexpr int kMaxTaps = 64;  // window positions the plane kernels handle (7x7 = 49)

// One output plane of a window op over `ph`, the zero- or -inf-padded input plane with every
// row split into its `s` stride phases (phase r, element j = padded column r + j * s), `pw`
// elements per phase row, so that every tap reads a contiguous run of the row:
// y = op.finish(fold over taps t of op.step(acc, t, x[window + tap t]) from op.init()).
template <typename Op>
OUTPOST_AVX512 inline void WindowPlane(const ConvGeom& g, const float* ph, int64_t pw, float* y,
                                       const Op& op) {
  int64_t off[kMaxTaps];
  const int taps = PhaseTapOffsets(g, pw, off);
  const int64_t ow_n = g.out[2], row_step = g.s[1] * g.s[2] * pw;
  for (int64_t oh = 0; oh < g.out[1]; ++oh) {
    const float* base = ph + oh * row_step;
    for (int64_t ow = 0; ow < ow_n; ow += 16) {
      const int64_t left = ow_n - ow;
      const __mmask16 m = left >= 16 ? 0xFFFF : static_cast<__mmask16>((1u << left) - 1);
      __m512 acc = op.init();
      for (int t = 0; t < taps; ++t) acc = op.step(acc, t, _mm512_loadu_ps(base + off[t] + ow));
      _mm512_mask_storeu_ps(y + oh * ow_n + ow, m, op.finish(acc));
    }
  }
}

// Depthwise: y = clamp(bias + sum_taps w[tap] * x[window]). (Functors rather than lambdas:
// a lambda does not inherit the enclosing function's target attribute.)
struct DepthwiseOp {
  const float* w;
  __m512 bias, lo, hi;
  OUTPOST_AVX512 __m512 init() const { return bias; }
  OUTPOST_AVX512 __m512 step(__m512 acc, int t, __m512 v) const {
    return _mm512_fmadd_ps(_mm512_set1_ps(w[t]), v, acc);
  }
  OUTPOST_AVX512 __m512 finish(__m512 acc) const {
    return _mm512_min_ps(_mm512_max_ps(acc, lo), hi);
  }
};

// Max pooling over a -inf-padded plane. A NaN input is skipped, as in the reference kernel
// (max(v, acc) keeps acc when v is NaN).
struct MaxOp {
  OUTPOST_AVX512 __m512 init() const {
    return _mm512_set1_ps(-std::numeric_limits<float>::infinity());
  }
  OUTPOST_AVX512 __m512 step(__m512 acc, int, __m512 v) const { return _mm512_max_ps(v, acc); }
  OUTPOST_AVX512 __m512 finish(__m512 acc) const { return acc; }
};

OUTPOST_AVX512 void DepthwisePlane(const ConvGeom& g, const float* ph, int64_t pw, const float* w,
                                   float bias, float lo, float hi, float* y) {
  WindowPlane(g, ph, pw, y,
              DepthwiseOp{w, _mm512_set1_ps(bias), _mm512_set1_ps(lo), _mm512_set1_ps(hi)});
}

OUTPOST_AVX512 void MaxPlane(const ConvGeom& g, const float* ph, int64_t pw, float* y) {
  WindowPlane(g, ph, pw, y, MaxOp{});
}

// ph[r * pw + j] = row[r + j * s] for j < pw: the s stride phases of a padded row.
OUTPOST_AVX512 void SplitPhases(const float* row, int64_t s, int64_t pw, float* ph) {
  int64_t j = 0;
  if (s == 2) {
    const __m512i even =
        _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
    for (; j + 16 <= pw; j += 16) {
      const __m512 a = _mm512_loadu_ps(row + 2 * j), b = _mm512_loadu_ps(row + 2 * j + 16);
      _mm512_storeu_ps(ph + j, _mm512_permutex2var_ps(a, even, b));
      _mm512_storeu_ps(ph + pw + j, _mm512_permutex2var_ps(a, odd, b));
    }
  }
  for (; j < pw; ++j)
    for (int64_t r = 0; r < s; ++r) ph[r * pw + j] = row[r + j * s];
}

// The im2col rows of output positions [p0, p0 + cols) gathered straight from the input x [C, H,
// W] into panel[row][kNr] (zero in the padding and past cols), 2-D geometry: the same values as
// Im2Col + PackPanel without the intermediate matrix. The positions form at most a few runs
// along output rows; every (row, run) is one masked load (stride 1) or gather per 16 lanes.
OUTPOST_AVX512 void PackPanelIm2Col(const ConvGeom& g, int64_t channels, const float* x, int64_t p0,
                                    int cols, float* panel) {
  struct Run {
    int j0, j1;
    int64_t oh, ow0;
  };
  Run runs[kNr];
  int nruns = 0;
  const int64_t ow_n = g.out[2], sw = g.s[2];
  for (int j = 0; j < cols;) {
    const int64_t p = p0 + j, ow = p % ow_n;
    const int len = static_cast<int>(std::min<int64_t>(cols - j, ow_n - ow));
    runs[nruns++] = {j, j + len, p / ow_n, ow};
    j += len;
  }
  const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  const __m512i vidx = _mm512_mullo_epi32(lane, _mm512_set1_epi32(static_cast<int>(sw)));
  // Per (kh, kw, run), independent of the channel: the lanes that read inside the input and
  // where lane 0 reads, relative to the channel plane (-1: the run's input row is padding).
  const int64_t taps = g.k[1] * g.k[2];
  uint32_t* bits = Scratch<uint32_t>(static_cast<size_t>(taps * nruns));
  int64_t* start = Scratch<int64_t>(static_cast<size_t>(taps * nruns));
  for (int64_t kh = 0, t = 0; kh < g.k[1]; ++kh) {
    for (int64_t kw = 0; kw < g.k[2]; ++kw, ++t) {
      const int64_t off_w = kw * g.d[2] - g.pb[2];
      int64_t lo, hi;  // output columns whose input column lies inside the row
      ValidRange(off_w, sw, g.in[2], ow_n, &lo, &hi);
      for (int i = 0; i < nruns; ++i) {
        const Run& run = runs[i];
        const int64_t ih = run.oh * g.s[1] + kh * g.d[1] - g.pb[1];
        const int64_t a = run.j0 + std::max<int64_t>(0, lo - run.ow0);
        const int64_t b = run.j0 + std::min<int64_t>(run.j1 - run.j0, hi - run.ow0);
        const bool empty = ih < 0 || ih >= g.in[1] || a >= b;
        bits[t * nruns + i] =
            empty ? 0u : static_cast<uint32_t>(((1ull << b) - 1) & ~((1ull << a) - 1));
        // Lane j (of the 32) reads input column (ow0 + j - j0) * sw + off_w of row ih.
        start[t * nruns + i] = ih * g.in[2] + (run.ow0 - run.j0) * sw + off_w;
      }
    }
  }
  int64_t r = 0;
  for (int64_t c = 0; c < channels; ++c) {
    const float* xc = x + c * g.in_size;
    for (int64_t t = 0; t < taps; ++t, ++r) {
      __m512 half[2] = {_mm512_setzero_ps(), _mm512_setzero_ps()};
      for (int i = 0; i < nruns; ++i) {
        const uint32_t bits_i = bits[t * nruns + i];
        if (!bits_i) continue;
        const float* base = xc + start[t * nruns + i];
        for (int h = 0; h < 2; ++h) {
          const __mmask16 m = static_cast<__mmask16>(bits_i >> (16 * h));
          if (!m) continue;
          const float* hb = base + 16 * h * sw;
          half[h] = sw == 1 ? _mm512_mask_loadu_ps(half[h], m, hb)
                            : _mm512_mask_i32gather_ps(half[h], m, vidx, hb, 4);
        }
      }
      _mm512_storeu_ps(panel + r * kNr, half[0]);
      _mm512_storeu_ps(panel + r * kNr + 16, half[1]);
    }
  }
}

// panel[p][r] = a[r * lda + p] for r < rows, zero beyond: kMr rows of A side by side.
void PackRows(int64_t k, const float* a, int64_t lda, int rows, float* panel) {
  for (int64_t p = 0; p < k; ++p)
    for (int r = 0; r < kMr; ++r) panel[p * kMr + r] = r < rows ? a[r * lda + p] : 0.f;
}

}  // namespace

bool PackedConvAvailable() {
  static const bool ok = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
           __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512bw");
  }();
  return ok;
}

bool PackedDepthwiseApplies(const ConvGeom& g, int64_t c, int64_t m, int64_t group) {
  return PackedConvAvailable() && g.k[0] == 1 && g.in[0] == 1 && g.out[0] == 1 && group == c &&
         m == c && group > 1 && g.k_size <= kMaxTaps;
}

namespace {

// Runs fn(plane, ph, pw) for each of `planes` [in] planes of x, in parallel, where ph is the
// plane padded with `pad` (to every position the windows of g read) and each row split into
// its stride phases (see DepthwisePlane).
template <typename F>
void ForPhasePlanes(ThreadPool* pool, const ConvGeom& g, int64_t planes, const float* x, float pad,
                    F&& fn) {
  const int64_t sw = g.s[2];
  const int64_t rows = (g.out[1] - 1) * g.s[1] + (g.k[1] - 1) * g.d[1] + 1;  // padded rows read
  const int64_t cols = (g.out[2] - 1) * sw + (g.k[2] - 1) * g.d[2] + 1;      // padded cols read
  const int64_t pw = (cols + sw - 1) / sw + 16;  // phase row length, plus a vector of slack
  auto body = [&](int64_t p0, int64_t p1) {
    float* ph = Scratch<float>(static_cast<size_t>(rows * sw * pw), 3);
    float* padded = Scratch<float>(static_cast<size_t>(sw * pw + 32), 0);
    std::fill(padded, padded + sw * pw + 32, pad);
    const int64_t c0 = std::max<int64_t>(0, g.pb[2]), c1 = std::min(cols, g.in[2] + g.pb[2]);
    for (int64_t p = p0; p < p1; ++p) {
      const float* xc = x + p * g.in_size;
      for (int64_t r = 0; r < rows; ++r) {
        float* dst = ph + r * sw * pw;
        const int64_t ih = r - g.pb[1];
        if (ih < 0 || ih >= g.in[1]) {
          std::fill(dst, dst + sw * pw, pad);
          continue;
        }
        // The padded row (the padding stays in place outside [c0, c1)), then its phases.
        const float* src = xc + ih * g.in[2] - g.pb[2];
        float* row = sw == 1 ? dst : padded;
        if (sw == 1) {
          std::fill(dst, dst + c0, pad);
          std::fill(dst + std::max(c0, c1), dst + pw, pad);
        }
        if (c1 > c0) std::copy(src + c0, src + c1, row + c0);
        if (sw > 1) SplitPhases(padded, sw, pw, dst);
      }
      fn(p, ph, pw);
    }
  };
  if (pool)
    pool->ParallelFor(planes, 1, body);
  else
    body(0, planes);
}

}  // namespace

void PackedDepthwise(ThreadPool* pool, const ConvGeom& g, int64_t n, int64_t c, const float* x,
                     const float* w, const float* bias, FusedClamp clamp, float* y) {
  ForPhasePlanes(pool, g, n * c, x, 0.f, [&](int64_t p, const float* ph, int64_t pw) {
    const int64_t ch = p % c;
    DepthwisePlane(g, ph, pw, w + ch * g.k_size, bias ? bias[ch] : 0.f, clamp.lo, clamp.hi,
                   y + p * g.out_size);
  });
}

bool PackedPoolApplies(const ConvGeom& g) {
  return PackedConvAvailable() && g.k[0] == 1 && g.in[0] == 1 && g.out[0] == 1 &&
         g.k_size <= kMaxTaps;
}

void PackedMaxPool(ThreadPool* pool, const ConvGeom& g, int64_t planes, const float* x, float* y) {
  ForPhasePlanes(
      pool, g, planes, x, -std::numeric_limits<float>::infinity(),
      [&](int64_t p, const float* ph, int64_t pw) { MaxPlane(g, ph, pw, y + p * g.out_size); });
}

bool PackedConvApplies(const ConvGeom& g, int64_t c, int64_t group) {
  return PackedConvAvailable() && g.k[0] == 1 && g.in[0] == 1 && g.out[0] == 1 &&
         !(group == c && group > 1);
}

PackedConvWeights PackConvWeights(const float* w, int64_t m, int64_t group, int64_t kk) {
  PackedConvWeights p;
  p.mg = m / group;
  p.k = kk;
  p.group = group;
  p.panels = (p.mg + kMr - 1) / kMr;
  p.data.assign(static_cast<size_t>(group * p.panels * kk * kMr), 0.f);
  for (int64_t gi = 0; gi < group; ++gi)
    for (int64_t o = 0; o < p.mg; ++o) {
      const float* src = w + (gi * p.mg + o) * kk;
      float* dst = p.data.data() + ((gi * p.panels + o / kMr) * kk) * kMr + o % kMr;
      for (int64_t q = 0; q < kk; ++q) dst[q * kMr] = src[q];
    }
  return p;
}

void PackedConv(ThreadPool* pool, const ConvGeom& g, int64_t n, int64_t c,
                const PackedConvWeights& w, const float* x, const float* bias, FusedClamp clamp,
                float* y) {
  const int64_t group = w.group, cg = c / group, mg = w.mg, kk = w.k;
  const int64_t npos = g.out_size, col_panels = (npos + kNr - 1) / kNr;
  const bool direct = g.pointwise();
  // Few column blocks (late, small feature maps): split the rows too, so threads stay busy.
  const int64_t threads = pool ? pool->size() : 1;
  int64_t row_chunks = 1;
  if (col_panels < 8 * threads)
    row_chunks = std::min(w.panels, (8 * threads + col_panels - 1) / col_panels);
  const int64_t per_chunk = (w.panels + row_chunks - 1) / row_chunks;
  row_chunks = (w.panels + per_chunk - 1) / per_chunk;
  for (int64_t b = 0; b < n; ++b) {
    for (int64_t gi = 0; gi < group; ++gi) {
      const float* xg = x + (b * c + gi * cg) * g.in_size;
      float* yg = y + (b * w.mg * group + gi * mg) * npos;
      const float* wg = w.data.data() + gi * w.panels * kk * kMr;
      const float* bg = bias ? bias + gi * mg : nullptr;
      // Per unit (a column block x a run of row blocks): pack the column block into this
      // thread's panel (unless it holds it already), then run the row blocks over it.
      auto compute = [&](int64_t u0, int64_t u1) {
        float* panel = Scratch<float>(static_cast<size_t>(kk * kNr), 2);
        int64_t packed_cp = -1;
        for (int64_t u = u0; u < u1; ++u) {
          const int64_t cp = u / row_chunks, chunk = u % row_chunks, p0 = cp * kNr;
          const int cols = static_cast<int>(std::min<int64_t>(kNr, npos - p0));
          if (cp != packed_cp) {
            if (direct)
              PackPanel(kk, xg + p0, npos, cols, panel);
            else
              PackPanelIm2Col(g, cg, xg, p0, cols, panel);
            packed_cp = cp;
          }
          const int64_t mp_end = std::min(w.panels, (chunk + 1) * per_chunk);
          for (int64_t mp = chunk * per_chunk; mp < mp_end; ++mp) {
            const int64_t m0 = mp * kMr;
            MicroKernel(kk, wg + mp * kk * kMr, panel, kNr, bg ? bg + m0 : nullptr,
                        static_cast<int>(std::min<int64_t>(kMr, mg - m0)), cols, clamp.lo, clamp.hi,
                        yg + m0 * npos + p0, npos);
          }
        }
      };
      if (pool) {
        pool->ParallelFor(col_panels * row_chunks, 1, compute);
      } else {
        compute(0, col_panels * row_chunks);
      }
    }
  }
}

PackedMatMulWeights PackMatMulWeights(const float* b, int64_t k, int64_t n) {
  PackedMatMulWeights p;
  p.k = k;
  p.n = n;
  p.panels = (n + kNr - 1) / kNr;
  p.data.resize(static_cast<size_t>(p.panels * k * kNr));
  for (int64_t cp = 0; cp < p.panels; ++cp)
    PackPanel(k, b + cp * kNr, n, static_cast<int>(std::min<int64_t>(kNr, n - cp * kNr)),
              p.data.data() + cp * k * kNr);
  return p;
}

void PackedMatMul(ThreadPool* pool, int64_t m, const float* a, const PackedMatMulWeights& b,
                  float* y) {
  const int64_t k = b.k, n = b.n, row_panels = (m + kMr - 1) / kMr;
  // Units of one row panel x up to 8 column panels (256 outputs wide), so that a single row
  // (M = 1, a classifier) still splits across threads along N.
  const int64_t col_chunks = (b.panels + 7) / 8;
  const float inf = std::numeric_limits<float>::infinity();
  auto body = [&](int64_t u0, int64_t u1) {
    float* panel = Scratch<float>(static_cast<size_t>(k * kMr), 2);
    int64_t packed_rp = -1;
    for (int64_t u = u0; u < u1; ++u) {
      const int64_t rp = u / col_chunks, chunk = u % col_chunks, m0 = rp * kMr;
      const int rows = static_cast<int>(std::min<int64_t>(kMr, m - m0));
      if (rp != packed_rp) PackRows(k, a + m0 * k, k, rows, panel), packed_rp = rp;
      for (int64_t cp = chunk * 8; cp < std::min(b.panels, chunk * 8 + 8); ++cp) {
        const int64_t n0 = cp * kNr;
        MicroKernel(k, panel, b.data.data() + cp * k * kNr, kNr, nullptr, rows,
                    static_cast<int>(std::min<int64_t>(kNr, n - n0)), -inf, inf, y + m0 * n + n0,
                    n);
      }
    }
  };
  if (pool)
    pool->ParallelFor(row_panels * col_chunks, 1, body);
  else
    body(0, row_panels * col_chunks);
}

}  // namespace outpost::kernels::cpu
