// QuantizeLinear: y = saturate(round_half_even(x / scale) + zero_point), per-tensor, per-axis or
// blocked, to int8/uint8/int16/uint16 and the sub-byte integers int4/uint4/int2/uint2; to the
// float8 formats y = cast(x / scale) (saturating unless saturate=0; the zero point is not added,
// as in the ONNX reference) and to float4e2m1 y = cast(x / scale + zero_point) (always
// saturating: the format has no infinity or NaN).
#include "cpu/minifloat.h"
#include "cpu/quant.h"
#include "cpu/quant_simd.h"

namespace outpost::kernels::cpu {
namespace {

Status QuantizeLinearKernel(KernelContext& ctx) {
  if (!ctx.has_input(0) || !ctx.has_input(1)) return ctx.Fail("QuantizeLinear needs x, y_scale");
  const Tensor& x = ctx.input(0);
  const Tensor& scale = ctx.input(1);
  const Tensor* zp = ctx.has_input(2) ? &ctx.input(2) : nullptr;
  if (!IsFloating(x.dtype()) && x.dtype() != DataType::kInt32)
    return ctx.NotSupported("input type " + std::string(DataTypeName(x.dtype())));
  if (!IsFloating(scale.dtype())) return ctx.Fail("y_scale must be floating");
  if (ctx.attrs().Int("precision", 0) != 0) return ctx.NotSupported("precision attribute");
  DataType out = DataType::kUInt8;
  const int64_t odt = ctx.attrs().Int("output_dtype", 0);
  if (odt != 0) out = static_cast<DataType>(odt);
  if (zp) {
    if (odt != 0 && zp->dtype() != out)
      return ctx.Fail("output_dtype differs from zero point type");
    out = zp->dtype();
  }
  OP_ASSIGN_OR_RETURN(QuantIndexer qi, MakeQuantIndexer(ctx, x.shape(), scale.shape()));
  if (zp && zp->shape() != scale.shape() && !(zp->numel() == 1 && scale.numel() == 1))
    return ctx.BadInput("zero point shape differs from scale shape");
  const bool half = x.dtype() == DataType::kFloat16, bf = x.dtype() == DataType::kBFloat16;
  const bool wide = x.dtype() == DataType::kInt32 || x.dtype() == DataType::kDouble;
  // x / scale as the reference computes it: in the input's float type (double when wide).
  auto ratio = [&](int64_t i, int64_t si) -> double {
    if (wide) return ReadDouble(x, i) / ReadDouble(scale, si);
    float f = static_cast<float>(ReadDouble(x, i)) / static_cast<float>(ReadDouble(scale, si));
    if (half) f = static_cast<float>(Float16(f));
    if (bf) f = static_cast<float>(BFloat16(f));
    return f;
  };
  if (const MiniFloatFormat* mf = MiniFloatFormatOf(out)) {
    OP_ASSIGN_OR_RETURN(Tensor * y, ctx.Output(0, out, x.shape()));
    if (ctx.infer_only() || !y) return Status::Ok();
    const bool saturate = ctx.attrs().Int("saturate", 1) != 0;
    const bool f4 = out == DataType::kFloat4E2M1;
    const std::vector<float> table = MiniFloatTable(*mf);
    const uint8_t* z = zp ? static_cast<const uint8_t*>(zp->raw()) : nullptr;
    uint8_t* yp = static_cast<uint8_t*>(y->raw());
    for (int64_t i = 0; i < x.numel(); ++i) {
      const int64_t si = qi(i);
      float v = static_cast<float>(ratio(i, si));
      if (f4 && z) v += MiniFloatDecode(*mf, z[zp->numel() == 1 ? 0 : si]);
      yp[i] = MiniFloatEncode(*mf, table.data(), v, saturate);
    }
    return Status::Ok();
  }
  // int4 / uint4 / int2 / uint2 are held as int8 / uint8 (dtype.h), with their own range.
  DataType storage = out;
  if (out == DataType::kInt4 || out == DataType::kInt2) storage = DataType::kInt8;
  if (out == DataType::kUInt4 || out == DataType::kUInt2) storage = DataType::kUInt8;
  return DispatchQuant(ctx, storage, false, [&]<typename Q>() -> Status {
    OP_ASSIGN_OR_RETURN(Tensor * y, ctx.Output(0, out, x.shape()));
    if (ctx.infer_only() || !y) return Status::Ok();
    Q* yp = y->data<Q>();
    int64_t lo, hi;
    IntegerRange(out, &lo, &hi);
    if constexpr (sizeof(Q) == 1) {
      // float32 with float32 scales, per tensor or per axis, 8-bit: vectorized, same arithmetic.
      if (storage == out && x.dtype() == DataType::kFloat && scale.dtype() == DataType::kFloat &&
          (qi.mode == QuantIndexer::kTensor || qi.mode == QuantIndexer::kAxis)) {
        const float* xp = x.data<float>();
        const float* sp = scale.data<float>();
        const Q* zpp = zp ? zp->data<Q>() : nullptr;
        const bool per_tensor = qi.mode == QuantIndexer::kTensor;
        ForEachQuantRun(ctx.pool(), x.numel(), qi.inner, per_tensor ? 0 : qi.axis_dim,
                        [&](int64_t off, int64_t n, int64_t si) {
                          QuantizeRunF32<Q>(xp + off, n, sp[si],
                                            zpp ? static_cast<float>(zpp[si]) : 0.f, yp + off);
                        });
        return Status::Ok();
      }
    }
    for (int64_t i = 0; i < x.numel(); ++i) {
      const int64_t si = qi(i);
      const double q = std::nearbyint(ratio(i, si)) + (zp ? static_cast<double>(ReadInt(*zp, si)) : 0.0);
      yp[i] = static_cast<Q>(RoundSat(q, static_cast<double>(lo), static_cast<double>(hi)));
    }
    return Status::Ok();
  });
}

}  // namespace

OUTPOST_REGISTER_OP(QuantizeLinear, "", 10, 25, QuantizeLinearKernel);

}  // namespace outpost::kernels::cpu
