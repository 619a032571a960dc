// QuantizeLinear: y = saturate(round_half_even(x / scale) + zero_point), per-tensor, per-axis or
// blocked, to int8/uint8/int16/uint16.
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
  return DispatchQuant(ctx, out, false, [&]<typename Q>() -> Status {
    OP_ASSIGN_OR_RETURN(Tensor * y, ctx.Output(0, out, x.shape()));
    if (ctx.infer_only() || !y) return Status::Ok();
    Q* yp = y->data<Q>();
    if constexpr (sizeof(Q) == 1) {
      // float32 with float32 scales, per tensor or per axis: vectorized, same arithmetic.
      if (x.dtype() == DataType::kFloat && scale.dtype() == DataType::kFloat &&
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
    const bool half = x.dtype() == DataType::kFloat16, bf = x.dtype() == DataType::kBFloat16;
    const bool wide = x.dtype() == DataType::kInt32 || x.dtype() == DataType::kDouble;
    for (int64_t i = 0; i < x.numel(); ++i) {
      const int64_t si = qi(i);
      double q;
      if (wide) {
        q = ReadDouble(x, i) / ReadDouble(scale, si);
      } else {  // float arithmetic, rounded to the input's type as numpy does
        float f = static_cast<float>(ReadDouble(x, i)) / static_cast<float>(ReadDouble(scale, si));
        if (half) f = static_cast<float>(Float16(f));
        if (bf) f = static_cast<float>(BFloat16(f));
        q = f;
      }
      q = std::nearbyint(q) + (zp ? static_cast<double>(ReadInt(*zp, si)) : 0.0);
      yp[i] = SaturateTo<Q>(q);
    }
    return Status::Ok();
  });
}

}  // namespace

OUTPOST_REGISTER_OP(QuantizeLinear, "", 10, 25, QuantizeLinearKernel);

}  // namespace outpost::kernels::cpu
