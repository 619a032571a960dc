// com.microsoft MatMulNBits (bits = 4): Y = A @ dequantize(B)^T (+ bias), float compute.
//   A [..., K] float; B uint8 [N, k_blocks, block_size / 2]: 4-bit codes along K, low nibble
//   first; scales [N * k_blocks] (or [N, k_blocks]) of A's type; zero_points optional: uint8
//   packed two per byte, low nibble first, ceil(k_blocks / 2) bytes per row of N, or A's type
//   [N * k_blocks] (unpacked); default 8. W[n, k] = (code - zero_point) * scale. g_idx (input 4)
//   is refused; bias (input 5) [N] is added. accuracy_level is ignored (always float32).
// The dequantized weight is built once per prepared node when B, scales and zero points are
// constant (PreparedCache), so a steady-state run multiplies float matrices.
#include <vector>

#include "cpu/gemm.h"
#include "cpu/quant.h"
#include "cpu/scratch.h"

namespace outpost::kernels::cpu {
namespace {

struct NBitsWeight {
  std::vector<float> wt;  // [K, N]: dequantized B, transposed for RunMatMul
};

NBitsWeight Dequantize(const Tensor& b, const Tensor& scales, const Tensor* zp, int64_t k,
                       int64_t n, int64_t block) {
  const int64_t kb = (k + block - 1) / block, blob = block / 2;
  const int64_t zp_row = (kb + 1) / 2;
  const bool packed_zp = zp && zp->dtype() == DataType::kUInt8;
  NBitsWeight w;
  w.wt.assign(static_cast<size_t>(k * n), 0.f);
  const uint8_t* bp = b.data<uint8_t>();
  for (int64_t r = 0; r < n; ++r)
    for (int64_t blk = 0; blk < kb; ++blk) {
      const float s = static_cast<float>(ReadDouble(scales, r * kb + blk));
      float z = 8.f;
      if (packed_zp) {
        const uint8_t byte = zp->data<uint8_t>()[r * zp_row + blk / 2];
        z = static_cast<float>((blk % 2) ? byte >> 4 : byte & 0x0F);
      } else if (zp) {
        z = static_cast<float>(ReadDouble(*zp, r * kb + blk));
      }
      for (int64_t j = 0; j < block && blk * block + j < k; ++j) {
        const uint8_t byte = bp[(r * kb + blk) * blob + j / 2];
        const int code = (j % 2) ? byte >> 4 : byte & 0x0F;
        w.wt[static_cast<size_t>((blk * block + j) * n + r)] = (static_cast<float>(code) - z) * s;
      }
    }
  return w;
}

Status MatMulNBitsKernel(KernelContext& ctx) {
  for (int i : {0, 1, 2})
    if (!ctx.has_input(i)) return ctx.Fail("MatMulNBits needs A, B, scales");
  if (ctx.has_input(4)) return ctx.NotSupported("g_idx (act-order) input");
  const Tensor& a = ctx.input(0);
  const Tensor& b = ctx.input(1);
  const Tensor& scales = ctx.input(2);
  const Tensor* zp = ctx.has_input(3) ? &ctx.input(3) : nullptr;
  const Tensor* bias = ctx.has_input(5) ? &ctx.input(5) : nullptr;
  const int64_t k = ctx.attrs().Int("K", 0), n = ctx.attrs().Int("N", 0);
  const int64_t bits = ctx.attrs().Int("bits", 4), block = ctx.attrs().Int("block_size", 0);
  if (bits != 4) return ctx.NotSupported("bits=" + std::to_string(bits) + " (only 4)");
  if (block < 16 || block > 256 || (block & (block - 1)) != 0)
    return ctx.Fail("block_size must be a power of 2 in [16, 256], got " + std::to_string(block));
  if (k <= 0 || n <= 0) return ctx.Fail("attributes K and N must be positive");
  if (a.dtype() != DataType::kFloat)
    return ctx.NotSupported("A of type " + std::string(DataTypeName(a.dtype())));
  if (a.rank() < 1 || a.dim(a.rank() - 1) != k)
    return ctx.BadInput("A " + a.shape().ToString() + " does not end in K=" + std::to_string(k));
  const int64_t kb = (k + block - 1) / block;
  if (b.dtype() != DataType::kUInt8 || b.rank() != 3 || b.dim(0) != n || b.dim(1) != kb ||
      b.dim(2) != block / 2)
    return ctx.BadInput("B must be uint8 [N, k_blocks, block_size/2] = [" + std::to_string(n) +
                        "," + std::to_string(kb) + "," + std::to_string(block / 2) + "], got " +
                        b.shape().ToString());
  if (scales.dtype() != a.dtype() || scales.numel() != n * kb)
    return ctx.BadInput("scales must be " + std::string(DataTypeName(a.dtype())) +
                        " with N*k_blocks=" + std::to_string(n * kb) + " elements");
  if (zp) {
    if (zp->dtype() == DataType::kUInt8) {
      if (zp->numel() != n * ((kb + 1) / 2))
        return ctx.BadInput("packed zero_points must have N*ceil(k_blocks/2)=" +
                            std::to_string(n * ((kb + 1) / 2)) + " elements");
    } else if (zp->dtype() != a.dtype() || zp->numel() != n * kb) {
      return ctx.BadInput(
          "zero_points must be uint8 (packed) or A's type with N*k_blocks elements");
    }
  }
  if (bias && (bias->dtype() != a.dtype() || bias->numel() != n))
    return ctx.BadInput("bias must be " + std::string(DataTypeName(a.dtype())) + " [N]");
  const Shape bshape{k, n};
  OP_ASSIGN_OR_RETURN(MatMulPlan p, PlanMatMul(ctx, a.shape(), bshape));
  OP_ASSIGN_OR_RETURN(Tensor * y, ctx.Output(0, a.dtype(), p.out));
  if (ctx.infer_only() || !y || y->numel() == 0) return Status::Ok();
  auto make = [&] { return Dequantize(b, scales, zp, k, n, block); };
  const bool constant = ctx.cache() && ctx.input_constant(1) && ctx.input_constant(2) &&
                        (!zp || ctx.input_constant(3));
  NBitsWeight local;
  const NBitsWeight* w = nullptr;
  if (constant) {
    w = &ctx.cache()->Get<NBitsWeight>(make);
  } else {
    local = make();
    w = &local;
  }
  float* yp = y->data<float>();
  RunMatMul<float>(&ctx.pool(), p, a.data<float>(), w->wt.data(), yp);
  if (bias)
    for (int64_t i = 0; i < y->numel(); ++i) yp[i] += bias->data<float>()[i % n];
  return Status::Ok();
}

}  // namespace

OUTPOST_REGISTER_OP(MatMulNBits, "com.microsoft", 1, 1, MatMulNBitsKernel);

}  // namespace outpost::kernels::cpu
