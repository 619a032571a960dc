// QLinearConv: quantized convolution with integer-exact accumulation, per-tensor or per-output-
// channel weight scale / zero point, int32 bias, and the engine's fused activation clamp applied
// in the quantized domain. Fast path: igemm (cpu/igemm.h) with the weights packed once per
// prepared node; the double-precision reference below stays the oracle for the other cases.
#include "cpu/igemm.h"
#include "cpu/quant.h"
#include "cpu/scratch.h"
#include "outpost/kernels/fusion.h"

namespace outpost::kernels::cpu {
namespace {

// The igemm path: 8-bit output, per-tensor x / y quantization, finite multipliers, K in range.
// Returns false (nothing written) when it does not apply.
bool QLinearConvFast(KernelContext& ctx, const ConvGeom& g, int64_t group, const double* mult,
                     double z, int32_t qlo, int32_t qhi, Tensor* y) {
  const Tensor& w = ctx.input(3);
  const Tensor* xzp = ctx.has_input(2) ? &ctx.input(2) : nullptr;
  const Tensor* wzp = ctx.has_input(5) ? &ctx.input(5) : nullptr;
  const Tensor* bias = ctx.has_input(8) ? &ctx.input(8) : nullptr;
  const int64_t m = w.dim(0), kk = w.numel() / m;
  if (!QuantFastPathsEnabled() || kk > kIgemmMaxK || (xzp && xzp->numel() != 1) ||
      (wzp && wzp->numel() != 1 && wzp->numel() != m) || !std::isfinite(z))
    return false;
  for (int64_t c = 0; c < m; ++c)
    if (!std::isfinite(mult[c])) return false;
  const int32_t xz = xzp ? static_cast<int32_t>(ReadInt(*xzp, 0)) : 0;
  IgemmEpilogue ep;
  ep.kind = y->dtype() == DataType::kUInt8 ? IgemmEpilogue::kU8 : IgemmEpilogue::kS8;
  ep.y = y->data<uint8_t>();
  ep.ldy = g.out_size;
  ep.mult = mult;
  ep.mult_rs = 1;
  ep.bias = bias ? bias->data<int32_t>() : nullptr;
  ep.bias_rs = 1;
  ep.z = z;
  ep.qlo = qlo;
  ep.qhi = qhi;
  RunIgemmConv(ctx, g, group, 3, wzp ? 5 : -1, xz, ep);
  return true;
}

Status QLinearConvKernel(KernelContext& ctx) {
  for (int i : {0, 1, 3, 4, 6})
    if (!ctx.has_input(i)) return ctx.Fail("QLinearConv needs x, x_scale, w, w_scale, y_scale");
  const Tensor& x = ctx.input(0);
  const Tensor& w = ctx.input(3);
  const Tensor& xs = ctx.input(1);
  const Tensor& ws = ctx.input(4);
  const Tensor& ys = ctx.input(6);
  const Tensor* yzp = ctx.has_input(7) ? &ctx.input(7) : nullptr;
  const Tensor* bias = ctx.has_input(8) ? &ctx.input(8) : nullptr;
  for (DataType t : {x.dtype(), w.dtype()})
    if (t != DataType::kInt8 && t != DataType::kUInt8)
      return ctx.NotSupported("data type " + std::string(DataTypeName(t)));
  int64_t group = 1;
  OP_ASSIGN_OR_RETURN(ConvGeom g, ConvSetup(ctx, x.shape(), w.shape(), &group));
  const int64_t m = w.dim(0);
  if (ws.numel() != 1 && ws.numel() != m) return ctx.BadInput("w_scale must be scalar or [M]");
  if (bias && (bias->numel() != m || bias->dtype() != DataType::kInt32))
    return ctx.BadInput("B must be int32 [M]");
  const DataType out = yzp ? yzp->dtype() : x.dtype();
  return DispatchQuant(ctx, out, false, [&]<typename Q>() -> Status {
    OP_ASSIGN_OR_RETURN(Tensor * y, ctx.Output(0, out, ConvOutShape(g, x.dim(0), m)));
    if (ctx.infer_only() || !y || y->numel() == 0) return Status::Ok();
    ScratchVec<double> mult(m);
    for (int64_t c = 0; c < m; ++c)
      mult[c] = ScaleProduct(xs.dtype(), ReadDouble(xs, 0), ReadDouble(ws, ws.numel() == 1 ? 0 : c),
                             ReadDouble(ys, 0));
    const int32_t zi = yzp ? static_cast<int32_t>(ReadInt(*yzp, 0)) : 0;
    const FusedClamp clamp = GetFusedClamp(ctx.attrs());
    int32_t qlo, qhi;
    QuantizedClampBounds(clamp.active, clamp.lo, clamp.hi, ReadDouble(ys, 0), zi,
                         std::numeric_limits<Q>::lowest(), std::numeric_limits<Q>::max(), &qlo,
                         &qhi);
    if constexpr (sizeof(Q) == 1)
      if (QLinearConvFast(ctx, g, group, mult.data(), zi, qlo, qhi, y)) return Status::Ok();
    // The reference: exact in double.
    ScratchVec<double> acc(IntegerConvSize(g, x, w));
    IntegerConv(ctx, g, group, x, ctx.has_input(2) ? &ctx.input(2) : nullptr, w,
                ctx.has_input(5) ? &ctx.input(5) : nullptr, bias, acc.data());
    for (int64_t i = 0; i < y->numel(); ++i)
      y->data<Q>()[i] =
          static_cast<Q>(Requantize(acc[i], mult[(i / g.out_size) % m], zi, qlo, qhi));
    return Status::Ok();
  });
}

}  // namespace

OUTPOST_REGISTER_OP(QLinearConv, "", 10, 25, QLinearConvKernel);

}  // namespace outpost::kernels::cpu
