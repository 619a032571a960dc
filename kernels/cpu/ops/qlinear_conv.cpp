// QLinearConv: quantized convolution with integer-exact accumulation, per-tensor or per-output-
// channel weight scale / zero point, int32 bias.
#include "cpu/quant.h"
#include "cpu/scratch.h"

namespace outpost::kernels::cpu {
namespace {

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
    ScratchVec<double> acc(IntegerConvSize(g, x, w));
    IntegerConv(ctx, g, group, x, ctx.has_input(2) ? &ctx.input(2) : nullptr, w,
                ctx.has_input(5) ? &ctx.input(5) : nullptr, bias, acc.data());
    ScratchVec<double> mult(m);
    for (int64_t c = 0; c < m; ++c)
      mult[c] = ScaleProduct(xs.dtype(), ReadDouble(xs, 0), ReadDouble(ws, ws.numel() == 1 ? 0 : c),
                             ReadDouble(ys, 0));
    const double z = yzp ? static_cast<double>(ReadInt(*yzp, 0)) : 0.0;
    for (int64_t i = 0; i < y->numel(); ++i)
      y->data<Q>()[i] = SaturateTo<Q>(acc[i] * mult[(i / g.out_size) % m] + z);
    return Status::Ok();
  });
}

}  // namespace

OUTPOST_REGISTER_OP(QLinearConv, "", 10, 23, QLinearConvKernel);

}  // namespace outpost::kernels::cpu
