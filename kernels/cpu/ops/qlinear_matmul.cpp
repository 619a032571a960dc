// QLinearMatMul: quantized matmul, y = saturate(round((a - a_zp) @ (b - b_zp) * a_s * b_s / y_s)
// + y_zp), integer-exact accumulation.
#include "cpu/quant.h"
#include "cpu/scratch.h"

namespace outpost::kernels::cpu {
namespace {

Status QLinearMatMulKernel(KernelContext& ctx) {
  for (int i = 0; i < 8; ++i)
    if (!ctx.has_input(i) && i != 2 && i != 5 && i != 7)
      return ctx.Fail("QLinearMatMul needs a, a_scale, b, b_scale, y_scale");
  const Tensor& a = ctx.input(0);
  const Tensor& b = ctx.input(3);
  const Tensor& as = ctx.input(1);
  const Tensor& bs = ctx.input(4);
  const Tensor& ys = ctx.input(6);
  const Tensor* yzp = ctx.has_input(7) ? &ctx.input(7) : nullptr;
  for (DataType t : {a.dtype(), b.dtype()})
    if (t != DataType::kInt8 && t != DataType::kUInt8)
      return ctx.NotSupported("data type " + std::string(DataTypeName(t)));
  const DataType out = yzp ? yzp->dtype() : a.dtype();
  OP_ASSIGN_OR_RETURN(MatMulPlan p, PlanMatMul(ctx, a.shape(), b.shape()));
  Shape scale_shapes[4] = {as.shape(), bs.shape(), ys.shape(), p.out};
  OP_ASSIGN_OR_RETURN(Shape sshape, BroadcastShapes(ctx, scale_shapes));
  if (sshape != p.out) return ctx.BadInput("scales do not broadcast to the output");
  return DispatchQuant(ctx, out, false, [&]<typename Q>() -> Status {
    OP_ASSIGN_OR_RETURN(Tensor * y, ctx.Output(0, out, p.out));
    if (ctx.infer_only() || !y) return Status::Ok();
    CenteredDoubles ad(a, ctx.has_input(2) ? &ctx.input(2) : nullptr);
    CenteredDoubles bd(b, ctx.has_input(5) ? &ctx.input(5) : nullptr);
    ScratchVec<double> acc(y->numel());
    RunMatMul<double>(&ctx.pool(), p, ad.data(), bd.data(), acc.data());
    BroadcastIndexer ia(as.shape(), p.out), ib(bs.shape(), p.out), iy(ys.shape(), p.out);
    BroadcastIndexer iz(yzp ? yzp->shape() : Shape{}, p.out);
    for (int64_t i = 0; i < y->numel(); ++i) {
      const double m = ScaleProduct(as.dtype(), ReadDouble(as, ia.Offset(i)),
                                    ReadDouble(bs, ib.Offset(i)), ReadDouble(ys, iy.Offset(i)));
      const double z = yzp ? static_cast<double>(ReadInt(*yzp, iz.Offset(i))) : 0.0;
      y->data<Q>()[i] = SaturateTo<Q>(acc[i] * m + z);
    }
    return Status::Ok();
  });
}

}  // namespace

OUTPOST_REGISTER_OP(QLinearMatMul, "", 10, 23, QLinearMatMulKernel);

}  // namespace outpost::kernels::cpu
