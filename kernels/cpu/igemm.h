// Integer GEMM for the quantized kernels (igemm.cpp): u8 x s8 -> s32 on operands packed once
// (weights) or per call (activations), with run-time CPU dispatch and the zero-point
// corrections that make every signedness combination exact.
//
// C[r][j] = sum_k (R[r][k] - rz[r]) * (V[k][j] - vz[j]) over two 8-bit operands: R, the row
// operand (its values are broadcast), and V, the column operand (its values fill vector lanes).
// One of them is stored as u8 and the other as s8 (vpdpbusd's operand types); a source of the
// other signedness is stored XOR 0x80 (s8 + 128 -> u8, u8 - 128 -> s8) and its zero point
// shifted the same way, so that (value - zero point) is unchanged. The raw sums of the stored
// bytes are then corrected: C = raw - vz * rowsum - rz * colsum + K * rz * vz, all in wrapping
// 32-bit arithmetic, exact whenever C itself fits in int32 (K <= kIgemmMaxK guarantees it).
//
// Paths (IgemmIsa): AVX-512 VNNI (vpdpbusd on zmm), AVX-VNNI (vpdpbusd on ymm), AVX2 (bytes
// widened to 16 bit, then vpmaddwd: exact, no vpmaddubsw saturation), scalar. The best one the
// CPU supports runs, unless OUTPOST_IGEMM=scalar|avx2|avxvnni|avx512vnni asks for another (or a
// test calls SetIgemmIsaOverride); a path the CPU lacks falls back to the best supported one.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "cpu/gemm.h"
#include "outpost/core/thread_pool.h"

namespace outpost::kernels::cpu {

enum class IgemmIsa { kScalar = 0, kAvx2 = 1, kAvxVnni = 2, kAvx512Vnni = 3 };
const char* IgemmIsaName(IgemmIsa isa);
bool IgemmIsaSupported(IgemmIsa isa);
// The path the next igemm call takes.
IgemmIsa IgemmActiveIsa();
// What the active path means for 8-bit speed, in words (backend descriptions, `outpost
// quantize`'s report): "8-bit products on AVX-512 VNNI", or on a CPU without VNNI why integer
// convolutions can be slower than float32 there.
std::string IgemmPathDescription();
// Tests: force a path (-1: back to the environment / best supported).
void SetIgemmIsaOverride(int isa);

constexpr int kIgemmMr = 12;  // rows per tile
constexpr int kIgemmNr = 32;  // columns per tile
// The largest reduction length for which every centred sum of products fits in int32
// (K * 255 * 255 < 2^31).
constexpr int64_t kIgemmMaxK = 33000;

// An 8-bit operand packed for the micro-kernels, with its per-row (R) or per-column (V) sums of
// the stored values, in `groups` independent groups of n lines each. R: [group][panel][k4]
// [kIgemmMr][4]; V: [group][panel][k4][kIgemmNr][4]; k padded with zeros to a multiple of 4,
// lines with zeros to a whole panel; sums [group][panels * width]. A view of caller memory
// (IgemmPackTo, e.g. scratch: no heap per run) or owning its storage (IgemmPack, for caches).
struct IgemmPacked {
  const uint8_t* data = nullptr;
  const int32_t* sums = nullptr;
  int64_t n = 0, k = 0, k4 = 0, panels = 0, groups = 1;  // n lines and panels per group
  bool is_rows = false;  // the row operand (panels of kIgemmMr), else the column operand
  bool is_u8 = false;    // stored unsigned (else signed)
  bool flipped = false;  // stored = source XOR 0x80
  bool small = false;    // stored signed, every value within [-64, 64] (AVX2 vpmaddubsw is exact)
  int64_t panel_bytes() const;
  const uint8_t* group_data(int64_t g) const { return data + g * panels * panel_bytes(); }
  const int32_t* group_sums(int64_t g) const;

  IgemmPacked() = default;
  IgemmPacked(IgemmPacked&&) = default;  // a move keeps the owned buffers (and pointers) valid
  IgemmPacked& operator=(IgemmPacked&&) = default;
  IgemmPacked(const IgemmPacked&) = delete;
  IgemmPacked& operator=(const IgemmPacked&) = delete;
  std::vector<uint8_t> own_data;
  std::vector<int32_t> own_sums;
};
// Bytes and sums IgemmPackTo writes.
int64_t IgemmPackedBytes(bool as_rows, int64_t n, int64_t k, int64_t groups = 1);
int64_t IgemmPackedSums(bool as_rows, int64_t n, int64_t groups = 1);
// Packs src (per group, n lines of k bytes; line i of group g at src + g * group_stride +
// i * line_stride, element q at + q * elem_stride) as the row operand (rows = lines) or the
// column operand (columns = lines) into data / sums. `src_signed`: the source bytes are int8;
// `store_u8`: the operand's slot wants u8.
void IgemmPackTo(IgemmPacked* p, uint8_t* data, int32_t* sums, bool as_rows, const uint8_t* src,
                 int64_t n, int64_t k, int64_t line_stride, int64_t elem_stride, bool src_signed,
                 bool store_u8, int64_t groups = 1, int64_t group_stride = 0);
// The same into storage of its own.
IgemmPacked IgemmPack(bool as_rows, const uint8_t* src, int64_t n, int64_t k, int64_t line_stride,
                      int64_t elem_stride, bool src_signed, bool store_u8, int64_t groups = 1,
                      int64_t group_stride = 0);

// The zero point of a packed operand in its stored domain (source zp +-128 when flipped).
inline int32_t StoredZeroPoint(int32_t zp, bool src_signed, bool store_u8) {
  if (src_signed == !store_u8) return zp;
  return src_signed ? zp + 128 : zp - 128;
}

// What to do with each finished C value: store int32 (Integer ops), or requantize: v = C + bias
// (in double), q = saturate(round_half_even(fma(v, mult, z))), clamped to [qlo, qhi], stored
// as u8 / s8. mult / bias are indexed r * *_rs + j * *_cs (strides 0 for a scalar).
struct IgemmEpilogue {
  enum Kind { kInt32, kU8, kS8, kFloat } kind = kInt32;
  void* y = nullptr;
  int64_t ldy = 0;  // elements between output rows; columns are contiguous
  const double* mult = nullptr;
  int64_t mult_rs = 0, mult_cs = 0;
  const int32_t* bias = nullptr;
  int64_t bias_rs = 0, bias_cs = 0;
  double z = 0;
  int32_t qlo = 0, qhi = 0;
  // kFloat (QGemm without y_scale): y = float(v * mult).
};

// The zero points of both operands: rz per row (rz_stride 0: one value), vz per column.
struct IgemmZeroPoints {
  const int32_t* rz = nullptr;
  int64_t rz_stride = 0;
  const int32_t* vz = nullptr;
  int64_t vz_stride = 0;
};

// MatMul with a packed column operand (weights B [K, N]): rows of A [m, K] (a_ld bytes apart)
// are packed per call. Rows of the output are split across the pool.
void IgemmRowsByPacked(ThreadPool* pool, int64_t m, const uint8_t* a, int64_t a_ld, bool a_signed,
                       const IgemmPacked& b, const IgemmZeroPoints& zp, const IgemmEpilogue& ep);

// Convolution with packed weights as the row operand: y[N, M, out] from x[N, C, in], the
// weights packed per group (w.rows.groups). x is im2col'd (padding = the x zero point) unless
// pointwise. `wz` per output channel (stored domain); `xz` the source zero point of x.
struct IgemmConvWeights {
  IgemmPacked rows;
  const int32_t* wz = nullptr;  // [m], stored domain
  int64_t m = 0, group = 1, k = 0;
  std::vector<int32_t> own_wz;
};
// Packs w [M, K] for IgemmConv (w_zero_points: nz values, 1 or M, source domain); owning.
IgemmConvWeights IgemmPackConv(const uint8_t* w, bool w_signed, int64_t m, int64_t group, int64_t k,
                               const int32_t* w_zero_points, int64_t nz);
void IgemmConv(ThreadPool* pool, const ConvGeom& g, int64_t n, int64_t c, const uint8_t* x,
               bool x_signed, int32_t xz, const IgemmConvWeights& w, const IgemmEpilogue& ep,
               int64_t y_batch_stride);

// Depthwise convolution (group == C == M, 1-D or 2-D): direct, int32 accumulation of the
// centred products, the same epilogue (rows = channels, ldy = out_size). w [C, k] with its
// zero point per channel (or one); x's zero point one value.
bool IgemmDepthwiseApplies(const ConvGeom& g, int64_t c, int64_t m, int64_t group);
void IgemmDepthwise(ThreadPool* pool, const ConvGeom& g, int64_t n, int64_t c, const uint8_t* x,
                    bool x_signed, int32_t xz, const uint8_t* w, bool w_signed,
                    const int32_t* w_zero_points, int64_t nz, const IgemmEpilogue& ep);

// A quantized convolution of the kernel's input 0 (x, zero point xz) with its input w_index
// (w [M, C/group, k...], zero point input wz_index or -1): the depthwise kernel where it
// applies, else igemm with the weights packed once per prepared node when they and their zero
// point are constants. The caller has checked K <= kIgemmMaxK and a one-value x zero point.
void RunIgemmConv(KernelContext& ctx, const ConvGeom& g, int64_t group, int w_index, int wz_index,
                  int32_t xz, const IgemmEpilogue& ep);

// A quantized batched MatMul (ONNX MatMul broadcasting, plan p) of the kernel's inputs a_index
// and b_index (8-bit), zero points in their source domain: az one value or per row of A's
// matrices (az_stride 1), bz one value or per column of B (bz_stride 1). B is packed once per
// prepared node when it is a constant shared by every batch (b_constant). ep.y is batch 0's
// output, ldy = p.n.
void RunIgemmMatMul(KernelContext& ctx, const MatMulPlan& p, int a_index, int b_index,
                    bool b_constant, int32_t az, const int32_t* az_rows, int32_t bz,
                    const int32_t* bz_cols, const IgemmEpilogue& ep);

// The quantized ops' fast paths are on (tests turn them off to run the reference kernels, as
// does OUTPOST_QUANT_REFERENCE=1).
bool QuantFastPathsEnabled();
void SetQuantFastPaths(bool on);
// How many igemm / direct quantized calls ran in this process (tests check a path was taken).
int64_t IgemmCallCount();
// How many of them took a fused AVX-512 VNNI path (requantization inside the convolution kernel:
// pointwise / im2col convolutions and depthwise ones with symmetric weights, see igemm.cpp).
int64_t IgemmFusedCallCount();

// Quantized clamp bounds [lo, hi] for a fused activation: zp + round_half_even(bound / scale),
// within the type's range [qmin, qmax].
void QuantizedClampBounds(bool active, float lo, float hi, double y_scale, int32_t y_zp,
                          int32_t qmin, int32_t qmax, int32_t* qlo, int32_t* qhi);

}  // namespace outpost::kernels::cpu
