// Integer GEMM and convolution drivers for the quantized kernels (see igemm.h for the algebra).
//
// One 12 x 32 tile shape for every path, so that one packed layout serves them all: R panels
// [k4][12][4], V panels [k4][32][4] (four consecutive k of one row / column side by side, the
// operand layout of vpdpbusd). A micro-kernel writes the raw int32 tile to a small buffer; the
// epilogue applies the zero-point corrections, then stores int32 or requantizes (double fma,
// round half to even, saturation, fused clamp) exactly as the reference kernels in quant.h do.
#include "cpu/igemm.h"

#include <immintrin.h>

// GCC 12's AVX-512 intrinsics pass an undefined vector as the masked-off source, which
// -W(maybe-)uninitialized reports once inlined into a target("avx512f") function (as packed.cpp).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string_view>

#include "cpu/quant.h"
#include "cpu/scratch.h"

namespace outpost::kernels::cpu {
namespace {

constexpr int kMr = kIgemmMr, kNr = kIgemmNr;

#define OUTPOST_VNNI512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni")))
#define OUTPOST_AVXVNNI __attribute__((target("avx2,avxvnni")))
#define OUTPOST_AVX2 __attribute__((target("avx2,fma")))

std::atomic<int> g_override{-1};
std::atomic<int64_t> g_calls{0};
std::atomic<int64_t> g_fused_calls{0};

// f(begin, end) over [0, n), one item at a time across the pool (inline without one).
template <typename F>
void ForEachItem(ThreadPool* pool, int64_t n, F&& f) {
  if (pool)
    pool->ParallelFor(n, 1, f);
  else
    f(0, n);
}

IgemmIsa BestIsa() {
  static const IgemmIsa best = [] {
    for (int i = 3; i > 0; --i)
      if (IgemmIsaSupported(static_cast<IgemmIsa>(i))) return static_cast<IgemmIsa>(i);
    return IgemmIsa::kScalar;
  }();
  return best;
}

IgemmIsa EnvIsa() {
  static const int env = [] {
    const char* e = std::getenv("OUTPOST_IGEMM");
    if (!e) return -1;
    const std::string_view v(e);
    for (int i = 0; i < 4; ++i)
      if (v == IgemmIsaName(static_cast<IgemmIsa>(i))) return i;
    return -1;
  }();
  return env < 0 ? BestIsa() : static_cast<IgemmIsa>(env);
}

int32_t Load4(const uint8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// ---- micro-kernels: tile[r * kNr + j] = sum over k of R[r][k] * V[k][j] (stored bytes). ----
// kRowsU8: R is the unsigned operand (MatMul: activations), else V is (convolution).

template <bool kRowsU8>
void KernelScalar(int64_t k4, const uint8_t* rp, const uint8_t* vp, int32_t* tile) {
  uint32_t acc[kMr][kNr] = {};
  for (int64_t q = 0; q < k4; ++q) {
    const uint8_t* r4 = rp + q * kMr * 4;
    const uint8_t* v4 = vp + q * kNr * 4;
    for (int r = 0; r < kMr; ++r)
      for (int j = 0; j < kNr; ++j)
        for (int t = 0; t < 4; ++t) {
          const int32_t a = kRowsU8 ? int32_t(r4[r * 4 + t]) : int32_t(int8_t(r4[r * 4 + t]));
          const int32_t b = kRowsU8 ? int32_t(int8_t(v4[j * 4 + t])) : int32_t(v4[j * 4 + t]);
          acc[r][j] += static_cast<uint32_t>(a * b);
        }
  }
  for (int r = 0; r < kMr; ++r)
    for (int j = 0; j < kNr; ++j) tile[r * kNr + j] = static_cast<int32_t>(acc[r][j]);
}

template <bool kRowsU8>
OUTPOST_VNNI512 void KernelVnni512(int64_t k4, const uint8_t* rp, const uint8_t* vp,
                                   int32_t* tile) {
  __m512i acc[kMr][2];
#pragma GCC unroll 12
  for (int r = 0; r < kMr; ++r) acc[r][0] = acc[r][1] = _mm512_setzero_si512();
  for (int64_t q = 0; q < k4; ++q) {
    const __m512i b0 = _mm512_loadu_si512(vp + q * kNr * 4);
    const __m512i b1 = _mm512_loadu_si512(vp + q * kNr * 4 + 64);
    const uint8_t* r4 = rp + q * kMr * 4;
#pragma GCC unroll 12
    for (int r = 0; r < kMr; ++r) {
      const __m512i a = _mm512_set1_epi32(Load4(r4 + r * 4));
      if (kRowsU8) {
        acc[r][0] = _mm512_dpbusd_epi32(acc[r][0], a, b0);
        acc[r][1] = _mm512_dpbusd_epi32(acc[r][1], a, b1);
      } else {
        acc[r][0] = _mm512_dpbusd_epi32(acc[r][0], b0, a);
        acc[r][1] = _mm512_dpbusd_epi32(acc[r][1], b1, a);
      }
    }
  }
#pragma GCC unroll 12
  for (int r = 0; r < kMr; ++r) {
    _mm512_storeu_si512(tile + r * kNr, acc[r][0]);
    _mm512_storeu_si512(tile + r * kNr + 16, acc[r][1]);
  }
}

// The requantizing epilogue fused into the AVX-512 VNNI micro-kernel, for the common
// convolution: weights (signed rows) with zero point 0 on every row, so that the corrected sum of
// row r is raw + off[r] (off = bias - xz * rowsum, wrapping 32-bit: exact because the result
// fits), and one multiplier per row. The accumulators never leave the registers: per 16 values
// S -> double, fma(S, mult, z), round half to even (the reference's arithmetic, so the same
// integers), then an integer clamp to [qlo, qhi]. The caller has checked that every
// |S| * |mult| + |z| fits in int32, so the conversion never saturates.
struct FusedRows {
  const int32_t* off;  // kMr entries
  const double* mult;  // kMr entries
  double z;
  int32_t qlo, qhi;
  bool u8;
};
// 16 finished sums (S + off) requantized as FusedRows describes: 16 bytes.
OUTPOST_VNNI512 inline __m128i Requant16(__m512i s, __m512i off, __m512d m, __m512d z, __m512i lo,
                                         __m512i hi, bool u8) {
  constexpr int kRound = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
  const __m512i sv = _mm512_add_epi32(s, off);
  const __m512d v0 = _mm512_fmadd_pd(_mm512_cvtepi32_pd(_mm512_castsi512_si256(sv)), m, z);
  const __m512d v1 = _mm512_fmadd_pd(_mm512_cvtepi32_pd(_mm512_extracti64x4_epi64(sv, 1)), m, z);
  __m512i q = _mm512_inserti64x4(_mm512_castsi256_si512(_mm512_cvt_roundpd_epi32(v0, kRound)),
                                 _mm512_cvt_roundpd_epi32(v1, kRound), 1);
  q = _mm512_min_epi32(_mm512_max_epi32(q, lo), hi);
  return u8 ? _mm512_cvtusepi32_epi8(q) : _mm512_cvtsepi32_epi8(q);
}

OUTPOST_VNNI512 void KernelVnni512Requant(int64_t k4, const uint8_t* rp, const uint8_t* vp,
                                          const FusedRows& f, int rows, int cols, uint8_t* y,
                                          int64_t ldy) {
  // The accumulators pass through a tile on the stack: with the epilogue in the same loop nest
  // GCC 12 spills them inside the k loop.
  alignas(64) int32_t tile[kMr * kNr];
  KernelVnni512<false>(k4, rp, vp, tile);
  const __m512d z = _mm512_set1_pd(f.z);
  const __m512i lo = _mm512_set1_epi32(f.qlo), hi = _mm512_set1_epi32(f.qhi);
  const __mmask32 mask =
      cols >= 32 ? ~__mmask32{0} : static_cast<__mmask32>((uint32_t{1} << cols) - 1);
  for (int r = 0; r < rows; ++r) {
    const __m512i off = _mm512_set1_epi32(f.off[r]);
    const __m512d m = _mm512_set1_pd(f.mult[r]);
    const __m128i b0 = Requant16(_mm512_load_si512(tile + r * kNr), off, m, z, lo, hi, f.u8);
    const __m128i b1 = Requant16(_mm512_load_si512(tile + r * kNr + 16), off, m, z, lo, hi, f.u8);
    _mm256_mask_storeu_epi8(y + r * ldy, mask, _mm256_set_m128i(b1, b0));
  }
}

// AVX-VNNI: 16 ymm registers, so the tile runs as four 6 x 16 sub-tiles.
template <bool kRowsU8>
OUTPOST_AVXVNNI void KernelAvxVnni(int64_t k4, const uint8_t* rp, const uint8_t* vp,
                                   int32_t* tile) {
  for (int rh = 0; rh < 2; ++rh)
    for (int ch = 0; ch < 2; ++ch) {
      __m256i acc[6][2];
#pragma GCC unroll 6
      for (int r = 0; r < 6; ++r) acc[r][0] = acc[r][1] = _mm256_setzero_si256();
      for (int64_t q = 0; q < k4; ++q) {
        const uint8_t* v = vp + q * kNr * 4 + ch * 64;
        const __m256i b0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(v));
        const __m256i b1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(v + 32));
        const uint8_t* r4 = rp + q * kMr * 4 + rh * 24;
#pragma GCC unroll 6
        for (int r = 0; r < 6; ++r) {
          const __m256i a = _mm256_set1_epi32(Load4(r4 + r * 4));
          if (kRowsU8) {
            acc[r][0] = _mm256_dpbusd_avx_epi32(acc[r][0], a, b0);
            acc[r][1] = _mm256_dpbusd_avx_epi32(acc[r][1], a, b1);
          } else {
            acc[r][0] = _mm256_dpbusd_avx_epi32(acc[r][0], b0, a);
            acc[r][1] = _mm256_dpbusd_avx_epi32(acc[r][1], b1, a);
          }
        }
      }
      for (int r = 0; r < 6; ++r) {
        int32_t* t = tile + (rh * 6 + r) * kNr + ch * 16;
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(t), acc[r][0]);
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(t + 8), acc[r][1]);
      }
    }
}

// AVX2, exact: bytes widened to int16 and multiplied with vpmaddwd (vpmaddubsw would saturate
// 255 * 127 * 2). Each accumulator lane holds the sum of k pairs (0,1) or (2,3) of one column;
// the pairs are added at the end. Sub-tiles of 2 rows x 16 columns.
template <bool kSigned>
OUTPOST_AVX2 inline __m256i Widen(__m128i v) {
  return kSigned ? _mm256_cvtepi8_epi16(v) : _mm256_cvtepu8_epi16(v);
}

template <bool kRowsU8>
OUTPOST_AVX2 void KernelAvx2(int64_t k4, const uint8_t* rp, const uint8_t* vp, int32_t* tile) {
  for (int rh = 0; rh < kMr / 2; ++rh)
    for (int ch = 0; ch < 2; ++ch) {
      __m256i acc[2][4];
      for (int r = 0; r < 2; ++r)
        for (int i = 0; i < 4; ++i) acc[r][i] = _mm256_setzero_si256();
      for (int64_t q = 0; q < k4; ++q) {
        const uint8_t* v = vp + q * kNr * 4 + ch * 64;
        __m256i b[4];
        for (int i = 0; i < 4; ++i)
          b[i] = Widen<kRowsU8>(_mm_loadu_si128(reinterpret_cast<const __m128i*>(v + 16 * i)));
        const uint8_t* r4 = rp + q * kMr * 4 + rh * 8;
        for (int r = 0; r < 2; ++r) {
          const __m128i a4 = _mm_cvtsi32_si128(Load4(r4 + r * 4));
          const __m256i a16 = Widen<!kRowsU8>(a4);  // 4 int16 in the low 64 bits
          const __m256i a = _mm256_broadcastq_epi64(_mm256_castsi256_si128(a16));
          for (int i = 0; i < 4; ++i)
            acc[r][i] = _mm256_add_epi32(acc[r][i], _mm256_madd_epi16(b[i], a));
        }
      }
      for (int r = 0; r < 2; ++r) {
        int32_t* t = tile + (rh * 2 + r) * kNr + ch * 16;
        for (int i = 0; i < 2; ++i) {
          // acc[2i] covers columns 4*2i..+4, acc[2i+1] the next 4, as (pair01, pair23) lanes.
          const __m256i h = _mm256_hadd_epi32(acc[r][2 * i], acc[r][2 * i + 1]);
          _mm256_storeu_si256(reinterpret_cast<__m256i*>(t + 8 * i),
                              _mm256_permute4x64_epi64(h, 0xD8));
        }
      }
    }
}

using KernelFn = void (*)(int64_t, const uint8_t*, const uint8_t*, int32_t*);

// AVX2 with vpmaddubsw, for a signed operand within [-64, 64] (reduce_range weights): then no
// pair of products can saturate int16 (2 * 255 * 64 = 32640), so the sums are exact. Sub-tiles
// of 4 rows x 16 columns.
template <bool kRowsU8>
OUTPOST_AVX2 void KernelAvx2Small(int64_t k4, const uint8_t* rp, const uint8_t* vp, int32_t* tile) {
  const __m256i ones = _mm256_set1_epi16(1);
  for (int rh = 0; rh < kMr / 4; ++rh)
    for (int ch = 0; ch < 2; ++ch) {
      __m256i acc[4][2];
      for (int r = 0; r < 4; ++r) acc[r][0] = acc[r][1] = _mm256_setzero_si256();
      for (int64_t q = 0; q < k4; ++q) {
        const uint8_t* v = vp + q * kNr * 4 + ch * 64;
        const __m256i b0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(v));
        const __m256i b1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(v + 32));
        const uint8_t* r4 = rp + q * kMr * 4 + rh * 16;
        for (int r = 0; r < 4; ++r) {
          const __m256i a = _mm256_set1_epi32(Load4(r4 + r * 4));
          const __m256i p0 = kRowsU8 ? _mm256_maddubs_epi16(a, b0) : _mm256_maddubs_epi16(b0, a);
          const __m256i p1 = kRowsU8 ? _mm256_maddubs_epi16(a, b1) : _mm256_maddubs_epi16(b1, a);
          acc[r][0] = _mm256_add_epi32(acc[r][0], _mm256_madd_epi16(p0, ones));
          acc[r][1] = _mm256_add_epi32(acc[r][1], _mm256_madd_epi16(p1, ones));
        }
      }
      for (int r = 0; r < 4; ++r) {
        int32_t* t = tile + (rh * 4 + r) * kNr + ch * 16;
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(t), acc[r][0]);
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(t + 8), acc[r][1]);
      }
    }
}

// small_signed: every stored value of the signed operand lies in [-64, 64].
KernelFn PickKernel(bool rows_u8, bool small_signed) {
  if (small_signed && IgemmActiveIsa() == IgemmIsa::kAvx2)
    return rows_u8 ? KernelAvx2Small<true> : KernelAvx2Small<false>;
  switch (IgemmActiveIsa()) {
    case IgemmIsa::kAvx512Vnni:
      return rows_u8 ? KernelVnni512<true> : KernelVnni512<false>;
    case IgemmIsa::kAvxVnni:
      return rows_u8 ? KernelAvxVnni<true> : KernelAvxVnni<false>;
    case IgemmIsa::kAvx2:
      return rows_u8 ? KernelAvx2<true> : KernelAvx2<false>;
    case IgemmIsa::kScalar:
      break;
  }
  return rows_u8 ? KernelScalar<true> : KernelScalar<false>;
}

// ---- packing of the column operand per call (activations, stored u8) ----

// panel[q][j][t] = src[(4q + t) * ld + j] ^ flip for j < cols, k < K (zero elsewhere);
// colsum[j] = sum over k of the stored bytes (when colsum is not null).
void PackColsScalar(int64_t k, const uint8_t* src, int64_t ld, int cols, uint8_t flip,
                    uint8_t* panel, int32_t* colsum) {
  const int64_t k4 = (k + 3) / 4;
  std::memset(panel, 0, static_cast<size_t>(k4 * kNr * 4));
  if (colsum) std::fill(colsum, colsum + kNr, 0);
  for (int64_t p = 0; p < k; ++p) {
    const uint8_t* s = src + p * ld;
    uint8_t* d = panel + (p / 4) * kNr * 4 + p % 4;
    for (int j = 0; j < cols; ++j) {
      const uint8_t v = s[j] ^ flip;
      d[j * 4] = v;
      if (colsum) colsum[j] += v;
    }
  }
}

OUTPOST_AVX2 void PackColsAvx2(int64_t k, const uint8_t* src, int64_t ld, uint8_t flip,
                               uint8_t* panel, int32_t* colsum) {
  const __m256i vflip = _mm256_set1_epi8(static_cast<char>(flip));
  const __m256i ones8 = _mm256_set1_epi8(1), ones16 = _mm256_set1_epi16(1);
  __m256i sum[4] = {_mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256(),
                    _mm256_setzero_si256()};
  const int64_t k4 = (k + 3) / 4;
  for (int64_t q = 0; q < k4; ++q) {
    __m256i r[4];
    for (int t = 0; t < 4; ++t) {
      const int64_t p = 4 * q + t;
      r[t] = p < k ? _mm256_xor_si256(
                         _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + p * ld)), vflip)
                   : _mm256_setzero_si256();
    }
    const __m256i a = _mm256_unpacklo_epi8(r[0], r[1]), b = _mm256_unpackhi_epi8(r[0], r[1]);
    const __m256i c = _mm256_unpacklo_epi8(r[2], r[3]), d = _mm256_unpackhi_epi8(r[2], r[3]);
    const __m256i e0 = _mm256_unpacklo_epi16(a, c), e1 = _mm256_unpackhi_epi16(a, c);
    const __m256i e2 = _mm256_unpacklo_epi16(b, d), e3 = _mm256_unpackhi_epi16(b, d);
    __m256i o[4] = {
        _mm256_permute2x128_si256(e0, e1, 0x20), _mm256_permute2x128_si256(e2, e3, 0x20),
        _mm256_permute2x128_si256(e0, e1, 0x31), _mm256_permute2x128_si256(e2, e3, 0x31)};
    uint8_t* dst = panel + q * kNr * 4;
    for (int i = 0; i < 4; ++i) {
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + 32 * i), o[i]);
      if (colsum)
        sum[i] =
            _mm256_add_epi32(sum[i], _mm256_madd_epi16(_mm256_maddubs_epi16(o[i], ones8), ones16));
    }
  }
  if (colsum)
    for (int i = 0; i < 4; ++i)
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(colsum + 8 * i), sum[i]);
}

void PackCols(int64_t k, const uint8_t* src, int64_t ld, int cols, uint8_t flip, uint8_t* panel,
              int32_t* colsum) {
  if (cols == kNr && IgemmActiveIsa() != IgemmIsa::kScalar)
    PackColsAvx2(k, src, ld, flip, panel, colsum);
  else
    PackColsScalar(k, src, ld, cols, flip, panel, colsum);
}

// ---- the epilogue: corrections, then int32 / requantized / float output of one tile ----

struct TileArgs {
  const int32_t* tile;
  int rows, cols;
  int64_t k;
  // Per tile row (already offset to the tile's first row): zero point and stored-value sum.
  const int32_t* rz;
  int64_t rz_stride;
  const int32_t* rowsum;
  // Per tile column (32 entries, zero past cols): zero point and sum.
  const int32_t* vz;  // null: vz_scalar
  int32_t vz_scalar;
  const int32_t* colsum;  // may be null when every rz is 0
  int64_t r_abs, j_abs;   // the tile's position in the output
};

// S[j] = raw[j] - vz[j] * a - cs[j] * b for one tile row, with a = rowsum - K * rz and b = rz:
// the corrections of igemm.h in wrapping 32-bit arithmetic. vz, cs: 32 entries.
void CorrectRowScalar(const int32_t* raw, const int32_t* vz, const int32_t* cs, uint32_t a,
                      uint32_t b, int32_t* s) {
  for (int j = 0; j < kNr; ++j)
    s[j] = static_cast<int32_t>(static_cast<uint32_t>(raw[j]) - static_cast<uint32_t>(vz[j]) * a -
                                static_cast<uint32_t>(cs[j]) * b);
}

OUTPOST_AVX2 void CorrectRowAvx2(const int32_t* raw, const int32_t* vz, const int32_t* cs,
                                 uint32_t a, uint32_t b, int32_t* s) {
  const __m256i va = _mm256_set1_epi32(static_cast<int32_t>(a));
  const __m256i vb = _mm256_set1_epi32(static_cast<int32_t>(b));
  for (int j = 0; j < kNr; j += 8) {
    auto ld = [](const int32_t* p) {
      return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
    };
    __m256i v = _mm256_sub_epi32(ld(raw + j), _mm256_mullo_epi32(ld(vz + j), va));
    if (b) v = _mm256_sub_epi32(v, _mm256_mullo_epi32(ld(cs + j), vb));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(s + j), v);
  }
}

// Requantization of one value: the reference's formula.
inline int32_t RequantScalar(int32_t s, double bias, double mult, double z, int32_t lo,
                             int32_t hi) {
  return Requantize(static_cast<double>(s) + bias, mult, z, lo, hi);
}

// Row values: bias and mult of column j of row r (cs 0 or 1).
struct RowParams {
  const double* mult;
  int64_t mult_cs;
  const int32_t* bias;
  int64_t bias_cs;
  bool int_bias = false;  // S + bias cannot overflow int32 (the AVX-512 path adds it there)
};

// True when every |S| <= k * 255 * 255 plus each of the n biases fits in int32.
inline bool IntBiasOk(int64_t k, const int32_t* bias, int n) {
  int64_t most = 0;
  for (int j = 0; j < n; ++j) most = std::max<int64_t>(most, std::abs(int64_t{bias[j]}));
  return k * 65025 + most < (int64_t{1} << 31);
}

void StoreRowScalar(const IgemmEpilogue& ep, const RowParams& rp, const int32_t* s, int cols,
                    int64_t r_abs, int64_t j_abs) {
  const int64_t off = r_abs * ep.ldy + j_abs;
  for (int j = 0; j < cols; ++j) {
    if (ep.kind == IgemmEpilogue::kInt32) {
      static_cast<int32_t*>(ep.y)[off + j] = s[j];
      continue;
    }
    const double bias = rp.bias ? static_cast<double>(rp.bias[j * rp.bias_cs]) : 0.0;
    const double mult = rp.mult[j * rp.mult_cs];
    if (ep.kind == IgemmEpilogue::kFloat) {
      static_cast<float*>(ep.y)[off + j] =
          static_cast<float>((static_cast<double>(s[j]) + bias) * mult);
      continue;
    }
    const int32_t q = RequantScalar(s[j], bias, mult, ep.z, ep.qlo, ep.qhi);
    if (ep.kind == IgemmEpilogue::kU8)
      static_cast<uint8_t*>(ep.y)[off + j] = static_cast<uint8_t>(q);
    else
      static_cast<int8_t*>(ep.y)[off + j] = static_cast<int8_t>(q);
  }
}

OUTPOST_AVX2 void StoreRowAvx2(const IgemmEpilogue& ep, const RowParams& rp, const int32_t* s,
                               int cols, int64_t r_abs, int64_t j_abs) {
  const int64_t off = r_abs * ep.ldy + j_abs;
  if (ep.kind == IgemmEpilogue::kInt32) {
    std::memcpy(static_cast<int32_t*>(ep.y) + off, s, static_cast<size_t>(cols) * 4);
    return;
  }
  alignas(32) uint8_t bytes[kNr];
  alignas(32) float floats[kNr];
  const __m256d z = _mm256_set1_pd(ep.z), lo = _mm256_set1_pd(ep.qlo), hi = _mm256_set1_pd(ep.qhi);
  for (int j = 0; j < cols; j += 8) {
    const __m256i sv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(s + j));
    __m256d v[2] = {_mm256_cvtepi32_pd(_mm256_castsi256_si128(sv)),
                    _mm256_cvtepi32_pd(_mm256_extracti128_si256(sv, 1))};
    for (int h = 0; h < 2; ++h) {
      const int jj = j + 4 * h;
      if (rp.bias) {
        const __m256d b = rp.bias_cs ? _mm256_cvtepi32_pd(_mm_loadu_si128(
                                           reinterpret_cast<const __m128i*>(rp.bias + jj)))
                                     : _mm256_set1_pd(static_cast<double>(rp.bias[0]));
        v[h] = _mm256_add_pd(v[h], b);
      }
      const __m256d m = rp.mult_cs ? _mm256_loadu_pd(rp.mult + jj) : _mm256_set1_pd(rp.mult[0]);
      if (ep.kind == IgemmEpilogue::kFloat) {
        _mm_storeu_ps(floats + jj, _mm256_cvtpd_ps(_mm256_mul_pd(v[h], m)));
        continue;
      }
      v[h] = _mm256_round_pd(_mm256_fmadd_pd(v[h], m, z),
                             _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
      v[h] = _mm256_min_pd(_mm256_max_pd(v[h], lo), hi);
    }
    if (ep.kind == IgemmEpilogue::kFloat) continue;
    const __m128i i0 = _mm256_cvtpd_epi32(v[0]), i1 = _mm256_cvtpd_epi32(v[1]);
    const __m128i w16 = _mm_packs_epi32(i0, i1);
    const __m128i b8 =
        ep.kind == IgemmEpilogue::kU8 ? _mm_packus_epi16(w16, w16) : _mm_packs_epi16(w16, w16);
    _mm_storel_epi64(reinterpret_cast<__m128i*>(bytes + j), b8);
  }
  if (ep.kind == IgemmEpilogue::kFloat)
    std::memcpy(static_cast<float*>(ep.y) + off, floats, static_cast<size_t>(cols) * 4);
  else
    std::memcpy(static_cast<uint8_t*>(ep.y) + off, bytes, static_cast<size_t>(cols));
}

#define OUTPOST_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq")))

OUTPOST_AVX512 void StoreRowAvx512(const IgemmEpilogue& ep, const RowParams& rp, const int32_t* s,
                                   int cols, int64_t r_abs, int64_t j_abs) {
  const int64_t off = r_abs * ep.ldy + j_abs;
  const IgemmEpilogue::Kind kind = ep.kind;
  if (kind == IgemmEpilogue::kInt32) {
    int32_t* y = static_cast<int32_t*>(ep.y) + off;
    for (int j = 0; j < cols; j += 16)
      _mm512_mask_storeu_epi32(y + j, static_cast<__mmask16>((1u << std::min(16, cols - j)) - 1),
                               _mm512_loadu_si512(s + j));
    return;
  }
  const __m512d z = _mm512_set1_pd(ep.z), lo = _mm512_set1_pd(ep.qlo), hi = _mm512_set1_pd(ep.qhi);
  const int32_t* bias = rp.bias;
  const bool bias_cols = rp.bias_cs != 0, int_bias = rp.int_bias;
  const double* mult = rp.mult;
  const bool mult_cols = rp.mult_cs != 0;
  const __m512d m1 = _mm512_set1_pd(mult[0]);
  uint8_t* y8 = static_cast<uint8_t*>(ep.y) + off;
  float* yf = static_cast<float*>(ep.y) + off;
  for (int j = 0; j < cols; j += 16) {
    const __mmask16 mask = static_cast<__mmask16>((1u << std::min(16, cols - j)) - 1);
    __m512i sv = _mm512_loadu_si512(s + j);
    __m512i bv = _mm512_setzero_si512();
    if (bias) bv = bias_cols ? _mm512_loadu_si512(bias + j) : _mm512_set1_epi32(bias[0]);
    if (bias && int_bias) sv = _mm512_add_epi32(sv, bv);  // exact: checked by the caller
    __m512d v[2] = {_mm512_cvtepi32_pd(_mm512_castsi512_si256(sv)),
                    _mm512_cvtepi32_pd(_mm512_extracti64x4_epi64(sv, 1))};
    for (int h = 0; h < 2; ++h) {
      if (bias && !int_bias) {
        const __m256i b = h ? _mm512_extracti64x4_epi64(bv, 1) : _mm512_castsi512_si256(bv);
        v[h] = _mm512_add_pd(v[h], _mm512_cvtepi32_pd(b));
      }
      const __m512d m = mult_cols ? _mm512_loadu_pd(mult + j + 8 * h) : m1;
      if (kind == IgemmEpilogue::kFloat) {
        v[h] = _mm512_mul_pd(v[h], m);
      } else {
        // Clamping before rounding to the integer bounds gives the same integer as after.
        v[h] = _mm512_min_pd(_mm512_max_pd(_mm512_fmadd_pd(v[h], m, z), lo), hi);
      }
    }
    if (kind == IgemmEpilogue::kFloat) {
      const __m512 f = _mm512_insertf32x8(_mm512_castps256_ps512(_mm512_cvtpd_ps(v[0])),
                                          _mm512_cvtpd_ps(v[1]), 1);
      _mm512_mask_storeu_ps(yf + j, mask, f);
      continue;
    }
    constexpr int kRound = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
    const __m512i q =
        _mm512_inserti64x4(_mm512_castsi256_si512(_mm512_cvt_roundpd_epi32(v[0], kRound)),
                           _mm512_cvt_roundpd_epi32(v[1], kRound), 1);
    const __m128i b8 =
        kind == IgemmEpilogue::kU8 ? _mm512_cvtusepi32_epi8(q) : _mm512_cvtsepi32_epi8(q);
    _mm_mask_storeu_epi8(y8 + j, mask, b8);
  }
}

// CorrectRowAvx2 on zmm: the AVX-512 store reads s with 64-byte loads, which 32-byte stores
// could not forward.
OUTPOST_AVX512 void CorrectRowAvx512(const int32_t* raw, const int32_t* vz, const int32_t* cs,
                                     uint32_t a, uint32_t b, int32_t* s) {
  const __m512i va = _mm512_set1_epi32(static_cast<int32_t>(a));
  const __m512i vb = _mm512_set1_epi32(static_cast<int32_t>(b));
  for (int j = 0; j < kNr; j += 16) {
    __m512i v = _mm512_sub_epi32(_mm512_loadu_si512(raw + j),
                                 _mm512_mullo_epi32(_mm512_loadu_si512(vz + j), va));
    if (b) v = _mm512_sub_epi32(v, _mm512_mullo_epi32(_mm512_loadu_si512(cs + j), vb));
    _mm512_storeu_si512(s + j, v);
  }
}

// One row of finished values to the output, on the active path.
void StoreRow(IgemmIsa isa, const IgemmEpilogue& ep, const RowParams& rp, const int32_t* s,
              int cols, int64_t r_abs, int64_t j_abs) {
  if (isa == IgemmIsa::kAvx512Vnni)
    StoreRowAvx512(ep, rp, s, cols, r_abs, j_abs);
  else if (isa != IgemmIsa::kScalar)
    StoreRowAvx2(ep, rp, s, cols, r_abs, j_abs);
  else
    StoreRowScalar(ep, rp, s, cols, r_abs, j_abs);
}

// Finishes one tile. mult / bias per column are read through 32-wide local copies (zero past
// cols) so the vector code never reads past the end of the caller's arrays.
void FinishTile(const TileArgs& t, const IgemmEpilogue& ep) {
  alignas(64) int32_t s[kNr];
  alignas(64) double mult_cols[kNr];
  alignas(64) int32_t bias_cols[kNr];
  alignas(64) int32_t vz[kNr];
  alignas(64) int32_t cs[kNr];
  const IgemmIsa isa = IgemmActiveIsa();
  const bool quant = ep.kind != IgemmEpilogue::kInt32;
  if (quant && ep.mult_cs) {
    for (int j = 0; j < kNr; ++j)
      mult_cols[j] = j < t.cols ? ep.mult[(t.j_abs + j) * ep.mult_cs] : 0;
  }
  if (quant && ep.bias && ep.bias_cs && ep.bias_rs == 0) {
    for (int j = 0; j < kNr; ++j)
      bias_cols[j] = j < t.cols ? ep.bias[(t.j_abs + j) * ep.bias_cs] : 0;
  }
  for (int j = 0; j < kNr; ++j) {
    vz[j] = t.vz ? t.vz[j] : t.vz_scalar;
    cs[j] = t.colsum ? t.colsum[j] : 0;
  }
  const uint32_t k = static_cast<uint32_t>(t.k);
  for (int r = 0; r < t.rows; ++r) {
    const uint32_t rz = static_cast<uint32_t>(t.rz ? t.rz[r * t.rz_stride] : 0);
    const uint32_t a = static_cast<uint32_t>(t.rowsum[r]) - k * rz;
    if (isa == IgemmIsa::kAvx512Vnni)
      CorrectRowAvx512(t.tile + r * kNr, vz, cs, a, rz, s);
    else if (isa != IgemmIsa::kScalar)
      CorrectRowAvx2(t.tile + r * kNr, vz, cs, a, rz, s);
    else
      CorrectRowScalar(t.tile + r * kNr, vz, cs, a, rz, s);
    const int64_t ra = t.r_abs + r;
    RowParams rp{nullptr, 0, nullptr, 0};
    if (quant) {
      rp.mult = ep.mult_cs ? mult_cols : ep.mult + ra * ep.mult_rs;
      rp.mult_cs = ep.mult_cs ? 1 : 0;
      if (ep.bias) {
        if (!ep.bias_cs) {
          rp.bias = ep.bias + ra * ep.bias_rs;
        } else if (ep.bias_rs == 0) {
          rp.bias = bias_cols, rp.bias_cs = 1;
        } else {  // a full [M, N] bias
          for (int j = 0; j < kNr; ++j)
            bias_cols[j] = j < t.cols ? ep.bias[ra * ep.bias_rs + (t.j_abs + j) * ep.bias_cs] : 0;
          rp.bias = bias_cols, rp.bias_cs = 1;
        }
        rp.int_bias = IntBiasOk(t.k, rp.bias, rp.bias_cs ? kNr : 1);
      }
    }
    StoreRow(isa, ep, rp, s, t.cols, ra, t.j_abs);
  }
}

// ---- depthwise ----

constexpr int kMaxDwTaps = 64;

// The centred plane of one channel, padded with 0 (the zero point) and every padded row split
// into its stride phases (phase r, element j = padded column r + j * s), pw int16 per phase
// row: every tap of a window row then reads a contiguous run.
// dst[j] = x[j] - xz for j < n, as int16 (x u8 or s8: within [-255, 255]).
OUTPOST_AVX2 void CentreRowAvx2(const uint8_t* src, int64_t n, bool x_signed, int32_t xz,
                                int16_t* dst) {
  const __m256i z = _mm256_set1_epi16(static_cast<int16_t>(xz));
  int64_t j = 0;
  for (; j + 16 <= n; j += 16) {
    const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + j));
    const __m256i w = x_signed ? _mm256_cvtepi8_epi16(b) : _mm256_cvtepu8_epi16(b);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + j), _mm256_sub_epi16(w, z));
  }
  for (; j < n; ++j)
    dst[j] = static_cast<int16_t>((x_signed ? int32_t(int8_t(src[j])) : int32_t(src[j])) - xz);
}

// ph0[j] = row[2j], ph1[j] = row[2j + 1] for j < n (int16): the two stride phases of a row.
OUTPOST_AVX2 void SplitPhases2Avx2(const int16_t* row, int64_t n, int16_t* ph0, int16_t* ph1) {
  const __m256i shuf = _mm256_setr_epi8(0, 1, 4, 5, 8, 9, 12, 13, 2, 3, 6, 7, 10, 11, 14, 15, 0, 1,
                                        4, 5, 8, 9, 12, 13, 2, 3, 6, 7, 10, 11, 14, 15);
  int64_t j = 0;
  for (; j + 16 <= n; j += 16) {
    // Per 128-bit lane: the even elements, then the odd ones; then the lanes' halves gathered.
    const __m256i a = _mm256_permute4x64_epi64(
        _mm256_shuffle_epi8(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + 2 * j)),
                            shuf),
        0xD8);
    const __m256i b = _mm256_permute4x64_epi64(
        _mm256_shuffle_epi8(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + 2 * j + 16)),
                            shuf),
        0xD8);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(ph0 + j), _mm256_permute2x128_si256(a, b, 0x20));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(ph1 + j), _mm256_permute2x128_si256(a, b, 0x31));
  }
  for (; j < n; ++j) ph0[j] = row[2 * j], ph1[j] = row[2 * j + 1];
}

void DwPrepare(const ConvGeom& g, const uint8_t* xc, bool x_signed, int32_t xz, int64_t rows,
               int64_t pw, bool vec, int16_t* ph) {
  const int64_t sw = g.s[2];
  std::fill(ph, ph + rows * sw * pw, int16_t(0));
  // Stride 2: each padded row centred into `padded` (zero = the padding), then split.
  const bool split2 = sw == 2 && vec;
  ScratchVec<int16_t> padded(split2 ? static_cast<size_t>(2 * pw) : 0);
  const int64_t n2 = std::min(g.in[2], 2 * pw - g.pb[2]);
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t ih = r - g.pb[1];
    if (ih < 0 || ih >= g.in[1]) continue;
    const uint8_t* src = xc + ih * g.in[2];
    if (sw == 1 && vec) {  // the padded row is the input row shifted by the left padding
      const int64_t n = std::min(g.in[2], pw - g.pb[2]);
      if (n > 0) CentreRowAvx2(src, n, x_signed, xz, ph + r * pw + g.pb[2]);
      continue;
    }
    if (split2) {
      if (n2 > 0) CentreRowAvx2(src, n2, x_signed, xz, padded.data() + g.pb[2]);
      SplitPhases2Avx2(padded.data(), pw, ph + 2 * r * pw, ph + (2 * r + 1) * pw);
      continue;
    }
    for (int64_t phase = 0; phase < sw; ++phase) {
      int16_t* dst = ph + (r * sw + phase) * pw;
      // Padded column phase + j * sw reads input column phase + j * sw - pb.
      int64_t j = 0;
      while (j < pw && phase + j * sw - g.pb[2] < 0) ++j;
      for (int64_t iw = phase + j * sw - g.pb[2]; j < pw && iw < g.in[2]; ++j, iw += sw)
        dst[j] =
            static_cast<int16_t>((x_signed ? int32_t(int8_t(src[iw])) : int32_t(src[iw])) - xz);
    }
  }
}

// Tap offsets (PhaseTapOffsets) padded to an even count (the extra tap has weight 0).
int DwTaps(const ConvGeom& g, int64_t pw, int64_t* off) {
  int t = PhaseTapOffsets(g, pw, off);
  if (t % 2) off[t] = off[0], ++t;
  return t;
}

// acc[0..cols) for output row oh, columns [ow0, ow0 + cols), cols <= 32.
void DwRowScalar(const int16_t* base, const int64_t* off, const int16_t* w, int taps, int cols,
                 int32_t* acc) {
  for (int j = 0; j < cols; ++j) {
    int32_t a = 0;
    for (int t = 0; t < taps; ++t) a += int32_t(base[off[t] + j]) * w[t];
    acc[j] = a;
  }
}

// Taps in pairs: the two taps' values interleaved per output, times (w0, w1), with vpmaddwd.
OUTPOST_AVX2 void DwRowAvx2(const int16_t* base, const int64_t* off, const int16_t* w, int taps,
                            int32_t* acc) {
  __m256i lo[2] = {_mm256_setzero_si256(), _mm256_setzero_si256()};
  __m256i hi[2] = {_mm256_setzero_si256(), _mm256_setzero_si256()};
  for (int t = 0; t < taps; t += 2) {
    const __m256i wp = _mm256_set1_epi32(
        static_cast<int32_t>((static_cast<uint32_t>(static_cast<uint16_t>(w[t + 1])) << 16) |
                             static_cast<uint16_t>(w[t])));
    for (int h = 0; h < 2; ++h) {
      const __m256i a =
          _mm256_loadu_si256(reinterpret_cast<const __m256i*>(base + off[t] + 16 * h));
      const __m256i b =
          _mm256_loadu_si256(reinterpret_cast<const __m256i*>(base + off[t + 1] + 16 * h));
      lo[h] = _mm256_add_epi32(lo[h], _mm256_madd_epi16(_mm256_unpacklo_epi16(a, b), wp));
      hi[h] = _mm256_add_epi32(hi[h], _mm256_madd_epi16(_mm256_unpackhi_epi16(a, b), wp));
    }
  }
  for (int h = 0; h < 2; ++h) {
    // lo: outputs 0-3 | 8-11, hi: 4-7 | 12-15.
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(acc + 16 * h),
                        _mm256_permute2x128_si256(lo[h], hi[h], 0x20));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(acc + 16 * h + 8),
                        _mm256_permute2x128_si256(lo[h], hi[h], 0x31));
  }
}

// DwRowAvx2 on zmm: 32 outputs in one pass, the lanes put back in order with vpermt2d.
OUTPOST_AVX512 void DwRowAvx512(const int16_t* base, const int64_t* off, const int16_t* w, int taps,
                                int32_t* acc) {
  __m512i lo = _mm512_setzero_si512(), hi = _mm512_setzero_si512();
  for (int t = 0; t < taps; t += 2) {
    const __m512i wp = _mm512_set1_epi32(
        static_cast<int32_t>((static_cast<uint32_t>(static_cast<uint16_t>(w[t + 1])) << 16) |
                             static_cast<uint16_t>(w[t])));
    const __m512i a = _mm512_loadu_si512(base + off[t]);
    const __m512i b = _mm512_loadu_si512(base + off[t + 1]);
    lo = _mm512_add_epi32(lo, _mm512_madd_epi16(_mm512_unpacklo_epi16(a, b), wp));
    hi = _mm512_add_epi32(hi, _mm512_madd_epi16(_mm512_unpackhi_epi16(a, b), wp));
  }
  // Lane L of lo holds outputs 8L..8L+3, of hi 8L+4..8L+7.
  const __m512i i0 = _mm512_setr_epi32(0, 1, 2, 3, 16, 17, 18, 19, 4, 5, 6, 7, 20, 21, 22, 23);
  const __m512i i1 =
      _mm512_setr_epi32(8, 9, 10, 11, 24, 25, 26, 27, 12, 13, 14, 15, 28, 29, 30, 31);
  _mm512_storeu_si512(acc, _mm512_permutex2var_epi32(lo, i0, hi));
  _mm512_storeu_si512(acc + 16, _mm512_permutex2var_epi32(lo, i1, hi));
}

// DwRowAvx512 for rows of at most 16 outputs (14x14 and 7x7 planes): ymm halves, one zmm store.
OUTPOST_AVX512 void DwRow16Avx512(const int16_t* base, const int64_t* off, const int16_t* w,
                                  int taps, int32_t* acc) {
  __m256i lo = _mm256_setzero_si256(), hi = _mm256_setzero_si256();
  for (int t = 0; t < taps; t += 2) {
    const __m256i wp = _mm256_set1_epi32(
        static_cast<int32_t>((static_cast<uint32_t>(static_cast<uint16_t>(w[t + 1])) << 16) |
                             static_cast<uint16_t>(w[t])));
    const __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(base + off[t]));
    const __m256i b = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(base + off[t + 1]));
    lo = _mm256_add_epi32(lo, _mm256_madd_epi16(_mm256_unpacklo_epi16(a, b), wp));
    hi = _mm256_add_epi32(hi, _mm256_madd_epi16(_mm256_unpackhi_epi16(a, b), wp));
  }
  // lo holds outputs 0-3 | 8-11, hi 4-7 | 12-15.
  const __m512i idx = _mm512_setr_epi32(0, 1, 2, 3, 16, 17, 18, 19, 4, 5, 6, 7, 20, 21, 22, 23);
  _mm512_storeu_si512(
      acc, _mm512_permutex2var_epi32(_mm512_zextsi256_si512(lo), idx, _mm512_zextsi256_si512(hi)));
}

// ---- depthwise on AVX-512 VNNI: pairs of horizontal taps through vpdpwssd ----
//
// Width stride 1 or 2, width dilation 1; any height stride and dilation. Each channel's plane is
// copied once into a padded 8-bit buffer (padding = the zero point), its rows split into the
// height stride's phases, so that the whole channel is one flat signal: output j of the flat grid
// (row oh, column ow, j = oh * fw + ow, fw = padded width / width stride) reads tap (kh, kw) at
// base(kh) + sw * j + kw. Small planes (14x14, 7x7) then fill whole 32-output blocks; the few
// outputs that straddle two rows are computed and dropped.
//
// vpdpwssd multiplies the two int16 halves of each 32-bit lane by a pair of weights, so two
// horizontally adjacent taps cost one instruction: widening 32 bytes at base + sw * j0 + 2p
// gives, in lane i, the pair (2p, 2p + 1) of output j0 + i for stride 2, or of output j0 + 2i
// for stride 1 (the odd outputs read one byte further; both halves interleaved at the end). An
// odd last tap pairs with a zero weight. The sums use the uncentred inputs; the zero point's
// share, xz * sum of the centred weights, is folded into the per-channel offset with the bias,
// and the epilogue is FusedRows'.

struct DwVnniPlan {
  int64_t wp = 0;         // padded row width (a multiple of sw)
  int64_t fw = 0;         // flat grid width: wp / sw
  int64_t flat = 0;       // flat outputs: out rows * fw
  int64_t phase_rows = 0; // padded rows per height phase
  int64_t phase_bytes = 0;
  int pairs = 0;          // weight pairs per kernel row
};

DwVnniPlan PlanDwVnni(const ConvGeom& g) {
  DwVnniPlan p;
  const int64_t sw = g.s[2], sh = g.s[1];
  p.wp = std::max(sw * (g.out[2] - 1) + g.k[2], g.pb[2] + 1);
  p.wp = (p.wp + sw - 1) / sw * sw;
  p.fw = p.wp / sw;
  p.flat = g.out[1] * p.fw;
  p.pairs = static_cast<int>((g.k[2] + 1) / 2);
  p.phase_rows = g.out[1] + ((g.k[1] - 1) * g.d[1]) / sh;
  // The last 32-output block reads up to sw * 32 + 2 * pairs + 32 bytes past the flat outputs'
  // end; every phase keeps that much slack.
  const int64_t slack = sw * 32 + 2 * p.pairs + 64;
  p.phase_bytes = (p.phase_rows * p.wp + (p.flat + 31) / 32 * 32 * sw - p.flat * sw + slack + 63) /
                  64 * 64;
  return p;
}

// Copies n bytes (masked 64-byte moves: no call per row for the small planes).
OUTPOST_VNNI512 inline void CopyBytes(uint8_t* dst, const uint8_t* src, int64_t n) {
  for (; n >= 64; n -= 64, src += 64, dst += 64)
    _mm512_storeu_si512(dst, _mm512_loadu_si512(src));
  if (n > 0) {
    const __mmask64 k = (uint64_t{1} << n) - 1;
    _mm512_mask_storeu_epi8(dst, k, _mm512_maskz_loadu_epi8(k, src));
  }
}

// Phase ph, row t holds padded row ph + t * sh: input row ph + t * sh - pb[1] at column pb[2],
// the zero point elsewhere (and in the slack).
OUTPOST_VNNI512 void DwVnniPrepare(const ConvGeom& g, const DwVnniPlan& p, const uint8_t* xc,
                                   uint8_t fill, uint8_t* dst) {
  const int64_t sh = g.s[1];
  const int64_t n = std::max<int64_t>(0, std::min(g.in[2], p.wp - g.pb[2]));
  const __m512i vf = _mm512_set1_epi8(static_cast<char>(fill));
  for (int64_t i = 0; i < sh * p.phase_bytes; i += 64) _mm512_store_si512(dst + i, vf);
  for (int64_t ph = 0; ph < sh; ++ph) {
    uint8_t* base = dst + ph * p.phase_bytes;
    for (int64_t t = 0; t < p.phase_rows; ++t) {
      const int64_t ih = ph + t * sh - g.pb[1];
      if (ih >= 0 && ih < g.in[1]) CopyBytes(base + t * p.wp + g.pb[2], xc + ih * g.in[2], n);
    }
  }
}

template <bool kSigned>
OUTPOST_VNNI512 inline __m512i DwLoadPairs(const uint8_t* p) {
  const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  return kSigned ? _mm512_cvtepi8_epi16(v) : _mm512_cvtepu8_epi16(v);
}

// The flat outputs of one channel into flat_out (32-byte blocks), then the valid ones to y.
// base[kh]: the tap row kh's first byte for flat output 0.
template <int kStride, bool kSigned>
OUTPOST_VNNI512 void DwChannelVnni512(const ConvGeom& g, const DwVnniPlan& p,
                                      const uint8_t* const* base, const int32_t* wpair,
                                      const FusedRows& f, uint8_t* flat_out, uint8_t* y) {
  const __m512d z = _mm512_set1_pd(f.z), m = _mm512_set1_pd(f.mult[0]);
  const __m512i lo = _mm512_set1_epi32(f.qlo), hi = _mm512_set1_epi32(f.qhi);
  const __m512i off = _mm512_set1_epi32(f.off[0]);
  // Stride 1: even outputs in a, odd in b; output 2i is a[i], 2i + 1 is b[i].
  const __m512i i0 = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
  const __m512i i1 =
      _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
  const int64_t kh_n = g.k[1];
  for (int64_t j0 = 0; j0 < p.flat; j0 += 32) {
    __m512i a = _mm512_setzero_si512(), b = _mm512_setzero_si512();
    for (int64_t kh = 0; kh < kh_n; ++kh) {
      const uint8_t* src = base[kh] + kStride * j0;
      const int32_t* w = wpair + kh * p.pairs;
      for (int q = 0; q < p.pairs; ++q) {
        const __m512i wq = _mm512_set1_epi32(w[q]);
        a = _mm512_dpwssd_epi32(a, DwLoadPairs<kSigned>(src + 2 * q), wq);
        b = _mm512_dpwssd_epi32(
            b, DwLoadPairs<kSigned>(src + (kStride == 2 ? 32 : 1) + 2 * q), wq);
      }
    }
    if (kStride == 1) {
      const __m512i t = _mm512_permutex2var_epi32(a, i0, b);
      b = _mm512_permutex2var_epi32(a, i1, b);
      a = t;
    }
    const __m128i b0 = Requant16(a, off, m, z, lo, hi, f.u8);
    const __m128i b1 = Requant16(b, off, m, z, lo, hi, f.u8);
    _mm256_store_si256(reinterpret_cast<__m256i*>(flat_out + j0), _mm256_set_m128i(b1, b0));
  }
  const int64_t ow_n = g.out[2];
  if (ow_n == p.fw) {
    CopyBytes(y, flat_out, g.out[1] * ow_n);
  } else {
    for (int64_t oh = 0; oh < g.out[1]; ++oh) CopyBytes(y + oh * ow_n, flat_out + oh * p.fw, ow_n);
  }
}

}  // namespace

const char* IgemmIsaName(IgemmIsa isa) {
  switch (isa) {
    case IgemmIsa::kScalar:
      return "scalar";
    case IgemmIsa::kAvx2:
      return "avx2";
    case IgemmIsa::kAvxVnni:
      return "avxvnni";
    case IgemmIsa::kAvx512Vnni:
      return "avx512vnni";
  }
  return "?";
}

namespace {
bool DetectIsa(IgemmIsa isa) {
  __builtin_cpu_init();
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  switch (isa) {
    case IgemmIsa::kScalar:
      return true;
    case IgemmIsa::kAvx2:
      return avx2;
    case IgemmIsa::kAvxVnni:
      return avx2 && __builtin_cpu_supports("avxvnni");
    case IgemmIsa::kAvx512Vnni:
      return avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
             __builtin_cpu_supports("avx512vnni");
  }
  return false;
}
}  // namespace

std::string IgemmPathDescription() {
  switch (IgemmActiveIsa()) {
    case IgemmIsa::kAvx512Vnni: return "8-bit products on AVX-512 VNNI";
    case IgemmIsa::kAvxVnni: return "8-bit products on AVX-VNNI (256-bit)";
    case IgemmIsa::kAvx2:
      return "8-bit products on AVX2 without VNNI (widened to 16 bits: integer convolutions are "
             "slower than float32 on this CPU)";
    case IgemmIsa::kScalar: break;
  }
  return "8-bit products in scalar code (no AVX2: integer models are slower than float32 here)";
}

bool IgemmIsaSupported(IgemmIsa isa) {
  static const bool supported[4] = {DetectIsa(IgemmIsa::kScalar), DetectIsa(IgemmIsa::kAvx2),
                                    DetectIsa(IgemmIsa::kAvxVnni),
                                    DetectIsa(IgemmIsa::kAvx512Vnni)};
  const int i = static_cast<int>(isa);
  return i >= 0 && i < 4 && supported[i];
}

IgemmIsa IgemmActiveIsa() {
  const int o = g_override.load(std::memory_order_relaxed);
  IgemmIsa want = o >= 0 ? static_cast<IgemmIsa>(o) : EnvIsa();
  return IgemmIsaSupported(want) ? want : BestIsa();
}

void SetIgemmIsaOverride(int isa) { g_override.store(isa, std::memory_order_relaxed); }

namespace {
std::atomic<bool> g_fast{[] {
  const char* e = std::getenv("OUTPOST_QUANT_REFERENCE");
  return !(e && std::string_view(e) == "1");
}()};
}  // namespace

int64_t IgemmCallCount() { return g_calls.load(std::memory_order_relaxed); }
int64_t IgemmFusedCallCount() { return g_fused_calls.load(std::memory_order_relaxed); }

bool QuantFastPathsEnabled() { return g_fast.load(std::memory_order_relaxed); }
void SetQuantFastPaths(bool on) { g_fast.store(on, std::memory_order_relaxed); }

int64_t IgemmPacked::panel_bytes() const { return k4 * 4 * (is_rows ? kMr : kNr); }
const int32_t* IgemmPacked::group_sums(int64_t g) const {
  return sums + g * panels * (is_rows ? kMr : kNr);
}

int64_t IgemmPackedBytes(bool as_rows, int64_t n, int64_t k, int64_t groups) {
  const int w = as_rows ? kMr : kNr;
  return groups * ((n + w - 1) / w) * ((k + 3) / 4) * 4 * w;
}
int64_t IgemmPackedSums(bool as_rows, int64_t n, int64_t groups) {
  const int w = as_rows ? kMr : kNr;
  return groups * ((n + w - 1) / w) * w;
}

void IgemmPackTo(IgemmPacked* p, uint8_t* data, int32_t* sums, bool as_rows, const uint8_t* src,
                 int64_t n, int64_t k, int64_t line_stride, int64_t elem_stride, bool src_signed,
                 bool store_u8, int64_t groups, int64_t group_stride) {
  const int w = as_rows ? kMr : kNr;
  p->is_rows = as_rows;
  p->n = n;
  p->k = k;
  p->k4 = (k + 3) / 4;
  p->panels = (n + w - 1) / w;
  p->groups = groups;
  p->is_u8 = store_u8;
  p->flipped = src_signed == store_u8;
  p->data = data;
  p->sums = sums;
  const uint8_t flip = p->flipped ? 0x80 : 0;
  bool small = !store_u8;
  std::memset(data, 0, static_cast<size_t>(IgemmPackedBytes(as_rows, n, k, groups)));
  std::fill(sums, sums + IgemmPackedSums(as_rows, n, groups), 0);
  for (int64_t g = 0; g < groups; ++g)
    for (int64_t i = 0; i < n; ++i) {
      const uint8_t* line = src + g * group_stride + i * line_stride;
      uint8_t* d = data + (g * p->panels + i / w) * p->panel_bytes() + (i % w) * 4;
      int32_t sum = 0;
      for (int64_t q = 0; q < k; ++q) {
        const uint8_t v = line[q * elem_stride] ^ flip;
        d[(q / 4) * w * 4 + q % 4] = v;
        sum += store_u8 ? int32_t(v) : int32_t(int8_t(v));
        small = small && int8_t(v) >= -64 && int8_t(v) <= 64;
      }
      sums[g * p->panels * w + i] = sum;
    }
  p->small = small;
}

IgemmPacked IgemmPack(bool as_rows, const uint8_t* src, int64_t n, int64_t k, int64_t line_stride,
                      int64_t elem_stride, bool src_signed, bool store_u8, int64_t groups,
                      int64_t group_stride) {
  IgemmPacked p;
  p.own_data.resize(static_cast<size_t>(IgemmPackedBytes(as_rows, n, k, groups)));
  p.own_sums.resize(static_cast<size_t>(IgemmPackedSums(as_rows, n, groups)));
  IgemmPackTo(&p, p.own_data.data(), p.own_sums.data(), as_rows, src, n, k, line_stride,
              elem_stride, src_signed, store_u8, groups, group_stride);
  return p;
}

void QuantizedClampBounds(bool active, float lo, float hi, double y_scale, int32_t y_zp,
                          int32_t qmin, int32_t qmax, int32_t* qlo, int32_t* qhi) {
  *qlo = qmin;
  *qhi = qmax;
  if (!active) return;
  auto bound = [&](float b) {
    const double q = static_cast<double>(y_zp) + std::nearbyint(static_cast<double>(b) / y_scale);
    return static_cast<int32_t>(std::clamp<double>(q, qmin, qmax));
  };
  if (std::isfinite(lo)) *qlo = bound(lo);
  if (std::isfinite(hi)) *qhi = bound(hi);
}

void IgemmRowsByPacked(ThreadPool* pool, int64_t m, const uint8_t* a, int64_t a_ld, bool a_signed,
                       const IgemmPacked& b, const IgemmZeroPoints& zp, const IgemmEpilogue& ep) {
  g_calls.fetch_add(1, std::memory_order_relaxed);
  const int64_t k = b.k, k4 = b.k4, n = b.n, row_panels = (m + kMr - 1) / kMr;
  const int64_t col_chunks = (b.panels + 7) / 8;
  const uint8_t flip = a_signed ? 0x80 : 0;  // rows are stored u8
  const KernelFn kernel = PickKernel(true, b.small);
  auto body = [&](int64_t u0, int64_t u1) {
    ScratchVec<uint8_t> panel(static_cast<size_t>(k4 * kMr * 4));
    alignas(64) int32_t tile[kMr * kNr];
    alignas(64) int32_t rowsum[kMr];
    alignas(64) int32_t vz[kNr];
    int64_t packed_rp = -1;
    for (int64_t u = u0; u < u1; ++u) {
      const int64_t rp = u / col_chunks, chunk = u % col_chunks, m0 = rp * kMr;
      const int rows = static_cast<int>(std::min<int64_t>(kMr, m - m0));
      if (rp != packed_rp) {
        std::memset(panel.data(), 0, panel.size());
        for (int r = 0; r < rows; ++r) {
          const uint8_t* src = a + (m0 + r) * a_ld;
          int32_t sum = 0;
          for (int64_t q = 0; q < k; ++q) {
            const uint8_t v = src[q] ^ flip;
            panel[(q / 4) * kMr * 4 + r * 4 + q % 4] = v;
            sum += v;
          }
          rowsum[r] = sum;
        }
        packed_rp = rp;
      }
      for (int64_t cp = chunk * 8; cp < std::min(b.panels, chunk * 8 + 8); ++cp) {
        const int64_t n0 = cp * kNr;
        const int cols = static_cast<int>(std::min<int64_t>(kNr, n - n0));
        kernel(k4, panel.data(), b.data + cp * b.panel_bytes(), tile);
        TileArgs t{tile,         rows,   cols,    k, zp.rz ? zp.rz + m0 * zp.rz_stride : nullptr,
                   zp.rz_stride, rowsum, nullptr, 0, b.sums + n0,
                   m0,           n0};
        if (zp.vz_stride) {
          for (int j = 0; j < kNr; ++j) vz[j] = j < cols ? zp.vz[(n0 + j) * zp.vz_stride] : 0;
          t.vz = vz;
        } else {
          t.vz_scalar = zp.vz ? zp.vz[0] : 0;
        }
        FinishTile(t, ep);
      }
    }
  };
  ForEachItem(pool, row_panels * col_chunks, body);
}

IgemmConvWeights IgemmPackConv(const uint8_t* w, bool w_signed, int64_t m, int64_t group, int64_t k,
                               const int32_t* w_zero_points, int64_t nz) {
  IgemmConvWeights p;
  p.m = m;
  p.group = group;
  p.k = k;
  p.rows = IgemmPack(true, w, m / group, k, k, 1, w_signed, false, group, (m / group) * k);
  p.own_wz.resize(static_cast<size_t>(m));
  for (int64_t o = 0; o < m; ++o)
    p.own_wz[o] = StoredZeroPoint(w_zero_points[nz == 1 ? 0 : o], w_signed, false);
  p.wz = p.own_wz.data();
  return p;
}

namespace {

// Whether the requantized values of an epilogue with one multiplier and bias per row (bias may
// be absent) can take the fused AVX-512 paths: S + bias fits in int32 for every |S| <= k * 255 *
// 255, and |S + bias| * |mult| + |z| stays inside int32 (so the conversion never saturates).
bool FusedEpilogueFits(const IgemmEpilogue& ep, int64_t rows, int64_t k) {
  if (ep.kind != IgemmEpilogue::kU8 && ep.kind != IgemmEpilogue::kS8) return false;
  if (ep.mult_cs != 0 || (ep.bias && ep.bias_cs != 0) || ep.qlo > ep.qhi) return false;
  double most_mult = 0;
  int64_t most_bias = 0;
  for (int64_t o = 0; o < rows; ++o) {
    most_mult = std::max(most_mult, std::fabs(ep.mult[o * ep.mult_rs]));
    if (ep.bias)
      most_bias = std::max<int64_t>(most_bias, std::abs(int64_t{ep.bias[o * ep.bias_rs]}));
  }
  const double most = static_cast<double>(k) * 65025.0 + static_cast<double>(most_bias);
  if (most >= 2147483647.0) return false;
  return std::isfinite(most_mult) && most * most_mult + std::fabs(ep.z) < 2147483000.0;
}

bool DwVnniApplies(const ConvGeom& g, const IgemmEpilogue& ep, IgemmIsa isa, int64_t c) {
  if (isa != IgemmIsa::kAvx512Vnni || g.d[2] != 1 || (g.s[2] != 1 && g.s[2] != 2)) return false;
  return ep.ldy == g.out_size && FusedEpilogueFits(ep, c, g.k_size);
}

}  // namespace

bool IgemmDepthwiseApplies(const ConvGeom& g, int64_t c, int64_t m, int64_t group) {
  return g.k[0] == 1 && g.in[0] == 1 && g.out[0] == 1 && group == c && m == c && group > 1 &&
         g.k_size <= kMaxDwTaps - 1;
}

void IgemmDepthwise(ThreadPool* pool, const ConvGeom& g, int64_t n, int64_t c, const uint8_t* x,
                    bool x_signed, int32_t xz, const uint8_t* w, bool w_signed,
                    const int32_t* w_zero_points, int64_t nz, const IgemmEpilogue& ep) {
  g_calls.fetch_add(1, std::memory_order_relaxed);
  const int64_t sw = g.s[2], ow_n = g.out[2];
  const int64_t rows = (g.out[1] - 1) * g.s[1] + (g.k[1] - 1) * g.d[1] + 1;
  const int64_t cols = (ow_n - 1) * sw + (g.k[2] - 1) * g.d[2] + 1;
  // Phase row length: the columns read, plus a 32-wide block of slack past the last output.
  const int64_t pw = (cols + sw - 1) / sw + kNr;
  const IgemmIsa isa = IgemmActiveIsa();
  if (DwVnniApplies(g, ep, isa, c)) {
    g_fused_calls.fetch_add(1, std::memory_order_relaxed);
    const DwVnniPlan plan = PlanDwVnni(g);
    const bool u8 = ep.kind == IgemmEpilogue::kU8;
    const int64_t sh = g.s[1];
    ForEachItem(pool, n * c, [&](int64_t p0, int64_t p1) {
      ScratchVec<uint8_t> padded(static_cast<size_t>(sh * plan.phase_bytes));
      // Both 64-byte aligned (ScratchVec), as the aligned stores want.
      ScratchVec<uint8_t> flat_out(static_cast<size_t>((plan.flat + 31) / 32 * 32));
      ScratchVec<int32_t> wpair(static_cast<size_t>(g.k[1] * plan.pairs));
      const uint8_t* base[kMaxDwTaps];
      for (int64_t kh = 0; kh < g.k[1]; ++kh) {
        const int64_t r = kh * g.d[1];
        base[kh] = padded.data() + (r % sh) * plan.phase_bytes + (r / sh) * plan.wp;
      }
      for (int64_t p = p0; p < p1; ++p) {
        const int64_t b = p / c, ch = p % c;
        const int32_t wz = w_zero_points[nz == 1 ? 0 : ch];
        const uint8_t* wc = w + ch * g.k_size;
        int32_t wsum = 0;
        auto wv = [&](int64_t kh, int64_t kw) -> int32_t {
          if (kw >= g.k[2]) return 0;
          const uint8_t v = wc[kh * g.k[2] + kw];
          return (w_signed ? int32_t(int8_t(v)) : int32_t(v)) - wz;
        };
        for (int64_t kh = 0; kh < g.k[1]; ++kh)
          for (int q = 0; q < plan.pairs; ++q) {
            const int32_t w0 = wv(kh, 2 * q), w1 = wv(kh, 2 * q + 1);
            wsum += w0 + w1;
            wpair[kh * plan.pairs + q] = static_cast<int32_t>(
                static_cast<uint32_t>(static_cast<uint16_t>(w0)) |
                (static_cast<uint32_t>(static_cast<uint16_t>(w1)) << 16));
          }
        DwVnniPrepare(g, plan, x + p * g.in_size, static_cast<uint8_t>(xz), padded.data());
        // Wrapping: the sum of bias and the centred products fits (FusedEpilogueFits).
        const uint32_t bias = ep.bias ? static_cast<uint32_t>(ep.bias[ch * ep.bias_rs]) : 0;
        const int32_t off = static_cast<int32_t>(
            bias - static_cast<uint32_t>(xz) * static_cast<uint32_t>(wsum));
        const double mult = ep.mult[ch * ep.mult_rs];
        const FusedRows f{&off, &mult, ep.z, ep.qlo, ep.qhi, u8};
        uint8_t* y = static_cast<uint8_t*>(ep.y) + b * c * g.out_size + ch * ep.ldy;
        const bool s2 = g.s[2] == 2;
        if (s2 && x_signed)
          DwChannelVnni512<2, true>(g, plan, base, wpair.data(), f, flat_out.data(), y);
        else if (s2)
          DwChannelVnni512<2, false>(g, plan, base, wpair.data(), f, flat_out.data(), y);
        else if (x_signed)
          DwChannelVnni512<1, true>(g, plan, base, wpair.data(), f, flat_out.data(), y);
        else
          DwChannelVnni512<1, false>(g, plan, base, wpair.data(), f, flat_out.data(), y);
      }
    });
    return;
  }
  auto body = [&](int64_t p0, int64_t p1) {
    ScratchVec<int16_t> ph(static_cast<size_t>(rows * sw * pw));
    int64_t off[kMaxDwTaps];
    const int taps = DwTaps(g, pw, off);
    alignas(32) int32_t acc[kNr];
    alignas(32) int16_t wc[kMaxDwTaps];
    for (int64_t p = p0; p < p1; ++p) {
      const int64_t b = p / c, ch = p % c;
      const int32_t wz = w_zero_points[nz == 1 ? 0 : ch];
      for (int t = 0; t < taps; ++t) {
        const int64_t q = t < g.k_size ? t : 0;
        const uint8_t v = w[ch * g.k_size + q];
        wc[t] = t < g.k_size
                    ? static_cast<int16_t>((w_signed ? int32_t(int8_t(v)) : int32_t(v)) - wz)
                    : int16_t(0);
      }
      DwPrepare(g, x + p * g.in_size, x_signed, xz, rows, pw, isa != IgemmIsa::kScalar, ph.data());
      IgemmEpilogue eb = ep;
      eb.y = static_cast<uint8_t*>(ep.y) +
             b * c * g.out_size * (ep.kind == IgemmEpilogue::kInt32 ? 4 : 1);
      RowParams rp{nullptr, 0, nullptr, 0};
      if (ep.kind != IgemmEpilogue::kInt32) {
        rp.mult = ep.mult + ch * ep.mult_rs;
        rp.bias = ep.bias ? ep.bias + ch * ep.bias_rs : nullptr;
        rp.int_bias = rp.bias && IntBiasOk(g.k_size, rp.bias, 1);
      }
      for (int64_t oh = 0; oh < g.out[1]; ++oh) {
        const int16_t* base = ph.data() + oh * g.s[1] * sw * pw;
        for (int64_t ow = 0; ow < ow_n; ow += kNr) {
          const int n_cols = static_cast<int>(std::min<int64_t>(kNr, ow_n - ow));
          if (isa == IgemmIsa::kAvx512Vnni && n_cols <= 16)
            DwRow16Avx512(base + ow, off, wc, taps, acc);
          else if (isa == IgemmIsa::kAvx512Vnni)
            DwRowAvx512(base + ow, off, wc, taps, acc);
          else if (isa != IgemmIsa::kScalar)
            DwRowAvx2(base + ow, off, wc, taps, acc);
          else
            DwRowScalar(base + ow, off, wc, taps, n_cols, acc);
          StoreRow(isa, eb, rp, acc, n_cols, ch, oh * ow_n + ow);
        }
      }
    }
  };
  ForEachItem(pool, n * c, body);
}

namespace {

// Whether IgemmConv can run KernelVnni512Requant (see there).
bool FusedConvApplies(const IgemmConvWeights& w, const IgemmEpilogue& ep, bool need_colsum) {
  if (IgemmActiveIsa() != IgemmIsa::kAvx512Vnni || need_colsum || w.rows.is_u8) return false;
  return FusedEpilogueFits(ep, w.m, w.k);
}

}  // namespace

void IgemmConv(ThreadPool* pool, const ConvGeom& g, int64_t n, int64_t c, const uint8_t* x,
               bool x_signed, int32_t xz, const IgemmConvWeights& w, const IgemmEpilogue& ep,
               int64_t y_batch_stride) {
  g_calls.fetch_add(1, std::memory_order_relaxed);
  const int64_t group = w.group, cg = c / group, mg = w.m / group, kk = w.k;
  const int64_t k4 = (kk + 3) / 4, npos = g.out_size, col_panels = (npos + kNr - 1) / kNr;
  const bool direct = g.pointwise();
  const uint8_t flip = x_signed ? 0x80 : 0;
  const int32_t xz_stored = StoredZeroPoint(xz, x_signed, true);
  bool need_colsum = false;
  for (int64_t o = 0; o < w.m; ++o) need_colsum |= w.wz[o] != 0;
  const KernelFn kernel = PickKernel(false, w.rows.small);
  const int64_t panels = w.rows.panels;
  const int64_t threads = pool ? pool->size() : 1;
  int64_t row_chunks = 1;
  if (col_panels < 8 * threads)
    row_chunks = std::min(panels, (8 * threads + col_panels - 1) / col_panels);
  const int64_t per_chunk = (panels + row_chunks - 1) / row_chunks;
  row_chunks = (panels + per_chunk - 1) / per_chunk;
  ScratchVec<uint8_t> col(direct ? 0 : static_cast<size_t>(kk * npos));
  // The fused AVX-512 VNNI kernel (KernelVnni512Requant) when the case allows it: 8-bit output
  // with one multiplier and bias per output channel, weight zero points 0, and no value that
  // could saturate the double -> int32 conversion. Per output channel: off and mult.
  const bool fused = FusedConvApplies(w, ep, need_colsum);
  ScratchVec<int32_t> fused_off(fused ? static_cast<size_t>(w.m) : 0);
  ScratchVec<double> fused_mult(fused ? static_cast<size_t>(w.m) : 0);
  if (fused) {
    g_fused_calls.fetch_add(1, std::memory_order_relaxed);
    for (int64_t gi = 0; gi < group; ++gi) {
      const int32_t* sums = w.rows.group_sums(gi);
      for (int64_t r = 0; r < mg; ++r) {
        const int64_t o = gi * mg + r;
        const uint32_t bias = ep.bias ? static_cast<uint32_t>(ep.bias[o * ep.bias_rs]) : 0;
        fused_off[o] = static_cast<int32_t>(
            bias - static_cast<uint32_t>(xz_stored) * static_cast<uint32_t>(sums[r]));
        fused_mult[o] = ep.mult[o * ep.mult_rs];
      }
    }
  }
  for (int64_t b = 0; b < n; ++b) {
    IgemmEpilogue eb = ep;
    eb.y = static_cast<uint8_t*>(ep.y) +
           b * y_batch_stride * (ep.kind == IgemmEpilogue::kInt32 ? 4 : 1);
    for (int64_t gi = 0; gi < group; ++gi) {
      const uint8_t* xg = x + (b * c + gi * cg) * g.in_size;
      const uint8_t* src = xg;
      if (!direct) {
        Im2Col<uint8_t>(pool, g, cg, xg, col.data(), static_cast<uint8_t>(xz));
        src = col.data();
      }
      const uint8_t* wdata = w.rows.group_data(gi);
      const int32_t* wsums = w.rows.group_sums(gi);
      auto compute = [&](int64_t u0, int64_t u1) {
        ScratchVec<uint8_t> panel(static_cast<size_t>(k4 * kNr * 4));
        alignas(64) int32_t tile[kMr * kNr];
        alignas(64) int32_t colsum[kNr];
        int64_t packed_cp = -1;
        for (int64_t u = u0; u < u1; ++u) {
          const int64_t cp = u / row_chunks, chunk = u % row_chunks, p0 = cp * kNr;
          const int cols = static_cast<int>(std::min<int64_t>(kNr, npos - p0));
          if (cp != packed_cp) {
            PackCols(kk, src + p0, npos, cols, flip, panel.data(), need_colsum ? colsum : nullptr);
            packed_cp = cp;
          }
          const int64_t mp_end = std::min(panels, (chunk + 1) * per_chunk);
          for (int64_t mp = chunk * per_chunk; mp < mp_end; ++mp) {
            const int64_t m0 = mp * kMr;
            if (fused) {
              const int64_t o0 = gi * mg + m0;
              alignas(64) int32_t off[kMr] = {};
              alignas(64) double mult[kMr] = {};
              const int rows = static_cast<int>(std::min<int64_t>(kMr, mg - m0));
              std::copy_n(fused_off.data() + o0, rows, off);
              std::copy_n(fused_mult.data() + o0, rows, mult);
              const FusedRows f{off, mult, ep.z, ep.qlo, ep.qhi, ep.kind == IgemmEpilogue::kU8};
              KernelVnni512Requant(k4, wdata + mp * w.rows.panel_bytes(), panel.data(), f, rows,
                                   cols, static_cast<uint8_t*>(eb.y) + o0 * eb.ldy + p0, eb.ldy);
              continue;
            }
            kernel(k4, wdata + mp * w.rows.panel_bytes(), panel.data(), tile);
            TileArgs t{tile,
                       static_cast<int>(std::min<int64_t>(kMr, mg - m0)),
                       cols,
                       kk,
                       w.wz + gi * mg + m0,
                       1,
                       wsums + m0,
                       nullptr,
                       xz_stored,
                       need_colsum ? colsum : nullptr,
                       gi * mg + m0,
                       p0};
            FinishTile(t, eb);
          }
        }
      };
      ForEachItem(pool, col_panels * row_chunks, compute);
    }
  }
}

}  // namespace outpost::kernels::cpu

namespace outpost::kernels::cpu {

void RunIgemmConv(KernelContext& ctx, const ConvGeom& g, int64_t group, int w_index, int wz_index,
                  int32_t xz, const IgemmEpilogue& ep) {
  const Tensor& x = ctx.input(0);
  const Tensor& w = ctx.input(w_index);
  const Tensor* wzp = wz_index >= 0 ? &ctx.input(wz_index) : nullptr;
  const int64_t m = w.dim(0), kk = w.numel() / m;
  const bool x_signed = x.dtype() == DataType::kInt8, w_signed = w.dtype() == DataType::kInt8;
  ScratchVec<int32_t> wz(wzp ? wzp->numel() : 1, 0);
  for (size_t i = 0; wzp && i < wz.size(); ++i) wz[i] = static_cast<int32_t>(ReadInt(*wzp, i));
  const int64_t nz = static_cast<int64_t>(wz.size());
  if (IgemmDepthwiseApplies(g, x.dim(1), m, group)) {
    IgemmDepthwise(&ctx.pool(), g, x.dim(0), x.dim(1), x.data<uint8_t>(), x_signed, xz,
                   w.data<uint8_t>(), w_signed, wz.data(), nz, ep);
    return;
  }
  const uint8_t* wp = w.data<uint8_t>();
  if (ctx.cache() && ctx.input_constant(w_index) && (!wzp || ctx.input_constant(wz_index))) {
    const IgemmConvWeights& pw = ctx.cache()->Get<IgemmConvWeights>(
        [&] { return IgemmPackConv(wp, w_signed, m, group, kk, wz.data(), nz); });
    IgemmConv(&ctx.pool(), g, x.dim(0), x.dim(1), x.data<uint8_t>(), x_signed, xz, pw, ep,
              m * g.out_size);
    return;
  }
  // Weights that change per run: packed into scratch (no heap in steady state).
  const int64_t mg = m / group;
  ScratchVec<uint8_t> data(static_cast<size_t>(IgemmPackedBytes(true, mg, kk, group)));
  ScratchVec<int32_t> sums(static_cast<size_t>(IgemmPackedSums(true, mg, group)));
  ScratchVec<int32_t> stored(static_cast<size_t>(m));
  IgemmConvWeights local;
  IgemmPackTo(&local.rows, data.data(), sums.data(), true, wp, mg, kk, kk, 1, w_signed, false,
              group, mg * kk);
  for (int64_t o = 0; o < m; ++o) stored[o] = StoredZeroPoint(wz[nz == 1 ? 0 : o], w_signed, false);
  local.wz = stored.data();
  local.m = m;
  local.group = group;
  local.k = kk;
  IgemmConv(&ctx.pool(), g, x.dim(0), x.dim(1), x.data<uint8_t>(), x_signed, xz, local, ep,
            m * g.out_size);
}

}  // namespace outpost::kernels::cpu

namespace outpost::kernels::cpu {

void RunIgemmMatMul(KernelContext& ctx, const MatMulPlan& p, int a_index, int b_index,
                    bool b_constant, int32_t az, const int32_t* az_rows, int32_t bz,
                    const int32_t* bz_cols, const IgemmEpilogue& ep) {
  if (p.batch == 0 || p.m == 0 || p.n == 0) return;
  const Tensor& a = ctx.input(a_index);
  const Tensor& b = ctx.input(b_index);
  const bool a_signed = a.dtype() == DataType::kInt8, b_signed = b.dtype() == DataType::kInt8;
  // Zero points in the stored domains (A rows u8, B columns s8).
  ScratchVec<int32_t> rz(az_rows ? static_cast<size_t>(p.m) : 1), vz(bz_cols ? p.n : 1);
  for (size_t i = 0; i < rz.size(); ++i)
    rz[i] = StoredZeroPoint(az_rows ? az_rows[i] : az, a_signed, true);
  for (size_t i = 0; i < vz.size(); ++i)
    vz[i] = StoredZeroPoint(bz_cols ? bz_cols[i] : bz, b_signed, false);
  const IgemmZeroPoints zp{rz.data(), az_rows ? 1 : 0, vz.data(), bz_cols ? 1 : 0};
  const size_t out_size =
      ep.kind == IgemmEpilogue::kInt32 || ep.kind == IgemmEpilogue::kFloat ? 4 : 1;
  const uint8_t* bp = b.data<uint8_t>();
  const bool one_b = p.batch == 1 || (p.fold_a && !az_rows);
  const int64_t rows = one_b && p.fold_a ? p.batch * p.m : p.m;
  if (one_b && ctx.cache() && b_constant) {
    const IgemmPacked& pb = ctx.cache()->Get<IgemmPacked>(
        [&] { return IgemmPack(false, bp, p.n, p.k, 1, p.n, b_signed, false); });
    IgemmRowsByPacked(&ctx.pool(), rows, a.data<uint8_t>(), p.k, a_signed, pb, zp, ep);
    return;
  }
  ScratchVec<uint8_t> data(static_cast<size_t>(IgemmPackedBytes(false, p.n, p.k)));
  ScratchVec<int32_t> sums(static_cast<size_t>(IgemmPackedSums(false, p.n)));
  IgemmPacked pb;
  for (int64_t i = 0; i < (one_b ? 1 : p.batch); ++i) {
    IgemmPackTo(&pb, data.data(), sums.data(), false, bp + p.b_off(i), p.n, p.k, 1, p.n, b_signed,
                false);
    IgemmEpilogue eb = ep;
    eb.y = static_cast<uint8_t*>(ep.y) + i * p.m * p.n * out_size;
    IgemmRowsByPacked(&ctx.pool(), rows, a.data<uint8_t>() + (one_b ? 0 : p.a_off(i)), p.k,
                      a_signed, pb, zp, eb);
  }
}

}  // namespace outpost::kernels::cpu
