// QLinearMatMul: quantized matmul, y = saturate(round((a - a_zp) @ (b - b_zp) * a_s * b_s / y_s)
// + y_zp), integer-exact accumulation, and the engine's fused activation clamp applied in the
// quantized domain. Fast path: igemm (cpu/igemm.h) for per-tensor a / y and per-tensor or
// per-column b; the double-precision reference below stays the oracle for the other cases.
#include "cpu/igemm.h"
#include "cpu/quant.h"
#include "cpu/scratch.h"
#include "outpost/kernels/fusion.h"

namespace outpost::kernels::cpu {
namespace {

// One value, or one per column of the output (a [N] or [1, N] tensor).
bool PerColumn(const Tensor& t, int64_t n) {
  return t.numel() == n && t.rank() >= 1 && t.dim(t.rank() - 1) == n &&
         t.numel() == t.dim(t.rank() - 1) && t.rank() <= 2;
}

bool QLinearMatMulFast(KernelContext& ctx, const MatMulPlan& p, int32_t qlo, int32_t qhi,
                       Tensor* y) {
  const Tensor& as = ctx.input(1);
  const Tensor& bs = ctx.input(4);
  const Tensor& ys = ctx.input(6);
  const Tensor* azp = ctx.has_input(2) ? &ctx.input(2) : nullptr;
  const Tensor* bzp = ctx.has_input(5) ? &ctx.input(5) : nullptr;
  const Tensor* yzp = ctx.has_input(7) ? &ctx.input(7) : nullptr;
  if (!QuantFastPathsEnabled() || p.k > kIgemmMaxK || ctx.input(3).rank() < 2 || as.numel() != 1 ||
      ys.numel() != 1 || (azp && azp->numel() != 1) || (yzp && yzp->numel() != 1))
    return false;
  const bool b_cols = bs.numel() > 1 || (bzp && bzp->numel() > 1);
  if (b_cols && (!PerColumn(bs, p.n) && bs.numel() != 1)) return false;
  if (b_cols && bzp && !PerColumn(*bzp, p.n) && bzp->numel() != 1) return false;
  ScratchVec<double> mult(b_cols ? p.n : 1);
  for (size_t j = 0; j < mult.size(); ++j) {
    mult[j] = ScaleProduct(as.dtype(), ReadDouble(as, 0), ReadDouble(bs, bs.numel() == 1 ? 0 : j),
                           ReadDouble(ys, 0));
    if (!std::isfinite(mult[j])) return false;
  }
  ScratchVec<int32_t> bc(bzp && bzp->numel() > 1 ? p.n : 0);
  for (size_t j = 0; j < bc.size(); ++j) bc[j] = static_cast<int32_t>(ReadInt(*bzp, j));
  IgemmEpilogue ep;
  ep.kind = y->dtype() == DataType::kUInt8 ? IgemmEpilogue::kU8 : IgemmEpilogue::kS8;
  ep.y = y->data<uint8_t>();
  ep.ldy = p.n;
  ep.mult = mult.data();
  ep.mult_cs = b_cols ? 1 : 0;
  ep.z = yzp ? static_cast<double>(ReadInt(*yzp, 0)) : 0.0;
  ep.qlo = qlo;
  ep.qhi = qhi;
  RunIgemmMatMul(ctx, p, 0, 3, ctx.input_constant(3) && (!bzp || ctx.input_constant(5)),
                 azp ? static_cast<int32_t>(ReadInt(*azp, 0)) : 0, nullptr,
                 bzp && bc.empty() ? static_cast<int32_t>(ReadInt(*bzp, 0)) : 0,
                 bc.empty() ? nullptr : bc.data(), ep);
  return true;
}

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
    // The fused clamp's quantized bounds (needs one y scale / zero point; else none is set).
    int32_t qlo = std::numeric_limits<Q>::lowest(), qhi = std::numeric_limits<Q>::max();
    const FusedClamp clamp = GetFusedClamp(ctx.attrs());
    if (clamp.active) {
      if (ys.numel() != 1 || (yzp && yzp->numel() != 1))
        return ctx.NotSupported("a fused clamp with a per-axis output scale");
      QuantizedClampBounds(true, clamp.lo, clamp.hi, ReadDouble(ys, 0),
                           yzp ? static_cast<int32_t>(ReadInt(*yzp, 0)) : 0, qlo, qhi, &qlo, &qhi);
    }
    if constexpr (sizeof(Q) == 1)
      if (QLinearMatMulFast(ctx, p, qlo, qhi, y)) return Status::Ok();
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
      y->data<Q>()[i] = static_cast<Q>(Requantize(acc[i], m, z, qlo, qhi));
    }
    return Status::Ok();
  });
}

}  // namespace

OUTPOST_REGISTER_OP(QLinearMatMul, "", 10, 25, QLinearMatMulKernel);

}  // namespace outpost::kernels::cpu
