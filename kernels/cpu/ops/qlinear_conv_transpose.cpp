// QLinearConvTranspose (domain "ai.outpost", ours: ONNX Runtime's CPU build has no such op, so
// only the QDQ fusion makes it): quantized transposed convolution with the inputs of
// QLinearConv (x, x_scale, x_zero_point, w, w_scale, w_zero_point, y_scale, y_zero_point, B) and
// ConvTranspose's attributes. W [C, M/group, k...] int8/uint8 with a per-tensor zero point and a
// per-tensor or (group 1) per-output-channel scale [M]; B int32 [M] with scale x_scale * w_scale.
// Accumulation is exact (integers in double), then y = saturate(round(acc * x_scale * w_scale[m]
// / y_scale) + y_zero_point). The QDQ fusion turns DQ -> ConvTranspose -> Q into this op.
#include <cstring>

#include "cpu/conv_transpose.h"
#include "cpu/quant.h"
#include "cpu/scratch.h"

namespace outpost::kernels::cpu {
namespace {

Status QLinearConvTransposeKernel(KernelContext& ctx) {
  for (int i : {0, 1, 3, 4, 6})
    if (!ctx.has_input(i))
      return ctx.Fail("QLinearConvTranspose needs x, x_scale, w, w_scale, y_scale");
  const Tensor& x = ctx.input(0);
  const Tensor& w = ctx.input(3);
  const Tensor& xs = ctx.input(1);
  const Tensor& ws = ctx.input(4);
  const Tensor& ys = ctx.input(6);
  const Tensor* xzp = ctx.has_input(2) ? &ctx.input(2) : nullptr;
  const Tensor* wzp = ctx.has_input(5) ? &ctx.input(5) : nullptr;
  const Tensor* yzp = ctx.has_input(7) ? &ctx.input(7) : nullptr;
  const Tensor* bias = ctx.has_input(8) ? &ctx.input(8) : nullptr;
  for (DataType t : {x.dtype(), w.dtype()})
    if (t != DataType::kInt8 && t != DataType::kUInt8)
      return ctx.NotSupported("data type " + std::string(DataTypeName(t)));
  OP_ASSIGN_OR_RETURN(ConvTransposePlan p, PlanConvTranspose(ctx, x.shape(), w.shape()));
  if (xs.numel() != 1 || ys.numel() != 1 || (xzp && xzp->numel() != 1) ||
      (yzp && yzp->numel() != 1))
    return ctx.NotSupported("per-axis x or y scales");
  if (ws.numel() != 1 && (ws.numel() != p.m || p.group != 1))
    return ctx.NotSupported("w_scale must be scalar, or [M] with group 1");
  if (wzp && wzp->numel() != 1) {
    if (!wzp->has_data()) return ctx.NotSupported("per-channel w_zero_point");
    for (int64_t i = 1; i < wzp->numel(); ++i)
      if (ReadInt(*wzp, i) != ReadInt(*wzp, 0))
        return ctx.NotSupported("unequal per-channel w_zero_point");
  }
  if (bias && (bias->numel() != p.m || bias->dtype() != DataType::kInt32))
    return ctx.BadInput("B must be int32 [M]");
  const DataType out = yzp ? yzp->dtype() : x.dtype();
  return DispatchQuant(ctx, out, false, [&]<typename Q>() -> Status {
    OP_ASSIGN_OR_RETURN(Tensor * y, ctx.Output(0, out, p.yshape));
    if (ctx.infer_only() || !y || y->numel() == 0) return Status::Ok();
    CenteredDoubles xd(x, xzp);
    Tensor wz0;  // equal per-channel zero points: their first, as a scalar
    if (wzp && wzp->numel() != 1) {
      OP_ASSIGN_OR_RETURN(wz0, Tensor::Allocate(wzp->dtype(), Shape{}));
      std::memcpy(wz0.raw(), wzp->raw(), DataTypeSize(wzp->dtype()));
    }
    CenteredDoubles wd(w, wzp ? (wzp->numel() == 1 ? wzp : &wz0) : nullptr);
    ScratchVec<double> bd(bias ? p.m : 0), acc(y->numel());
    for (size_t i = 0; i < bd.size(); ++i) bd[i] = static_cast<double>(ReadInt(*bias, i));
    RunConvTranspose<double>(&ctx.pool(), p.g, x.dim(0), p.c, p.m, p.group, xd.data(), wd.data(),
                             bias ? bd.data() : nullptr, acc.data());
    ScratchVec<double> mult(p.m);
    for (int64_t c = 0; c < p.m; ++c)
      mult[c] = ScaleProduct(xs.dtype(), ReadDouble(xs, 0), ReadDouble(ws, ws.numel() == 1 ? 0 : c),
                             ReadDouble(ys, 0));
    const double z = yzp ? static_cast<double>(ReadInt(*yzp, 0)) : 0.0;
    const int64_t plane = p.g.in_size;
    for (int64_t i = 0; i < y->numel(); ++i)
      y->data<Q>()[i] = SaturateTo<Q>(acc[i] * mult[(i / plane) % p.m] + z);
    return Status::Ok();
  });
}

}  // namespace

OUTPOST_REGISTER_OP(QLinearConvTranspose, "ai.outpost", 1, 1, QLinearConvTransposeKernel);

}  // namespace outpost::kernels::cpu
