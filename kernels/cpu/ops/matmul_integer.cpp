// MatMulInteger: int32 (A - a_zero_point) @ (B - b_zero_point) for 8-bit operands. Fast path:
// igemm (cpu/igemm.h), B packed once per prepared node when constant; the double-precision
// reference below stays the oracle for the cases it does not take.
#include "cpu/igemm.h"
#include "cpu/quant.h"
#include "cpu/scratch.h"

namespace outpost::kernels::cpu {
namespace {

bool Is8Bit(DataType t) { return t == DataType::kInt8 || t == DataType::kUInt8; }

// The igemm path: a_zero_point one value or [M] per row, b_zero_point one value or [N].
bool MatMulIntegerFast(KernelContext& ctx, const MatMulPlan& p, Tensor* y) {
  if (!QuantFastPathsEnabled() || p.k > kIgemmMaxK) return false;
  const Tensor* azp = ctx.has_input(2) ? &ctx.input(2) : nullptr;
  const Tensor* bzp = ctx.has_input(3) ? &ctx.input(3) : nullptr;
  const Tensor& a = ctx.input(0);
  const Tensor& b = ctx.input(1);
  const bool a_rows = azp && azp->numel() > 1;
  const bool b_cols = bzp && bzp->numel() > 1;
  if (a_rows && (azp->rank() != 1 || a.rank() < 2 || azp->numel() != p.m)) return false;
  if (b_cols && (bzp->numel() != p.n || b.rank() < 2 ||
                 (bzp->rank() != 1 && !(bzp->rank() == 2 && bzp->dim(0) == 1))))
    return false;
  ScratchVec<int32_t> ar(a_rows ? p.m : 0), bc(b_cols ? p.n : 0);
  for (size_t i = 0; i < ar.size(); ++i) ar[i] = static_cast<int32_t>(ReadInt(*azp, i));
  for (size_t i = 0; i < bc.size(); ++i) bc[i] = static_cast<int32_t>(ReadInt(*bzp, i));
  IgemmEpilogue ep;
  ep.kind = IgemmEpilogue::kInt32;
  ep.y = y->data<int32_t>();
  ep.ldy = p.n;
  RunIgemmMatMul(ctx, p, 0, 1, ctx.input_constant(1) && (!bzp || ctx.input_constant(3)),
                 azp && !a_rows ? static_cast<int32_t>(ReadInt(*azp, 0)) : 0,
                 a_rows ? ar.data() : nullptr,
                 bzp && !b_cols ? static_cast<int32_t>(ReadInt(*bzp, 0)) : 0,
                 b_cols ? bc.data() : nullptr, ep);
  return true;
}

Status MatMulIntegerKernel(KernelContext& ctx) {
  if (!ctx.has_input(0) || !ctx.has_input(1)) return ctx.Fail("MatMulInteger needs A and B");
  const Tensor& a = ctx.input(0);
  const Tensor& b = ctx.input(1);
  if (!Is8Bit(a.dtype()) || !Is8Bit(b.dtype()))
    return ctx.NotSupported("types " + std::string(DataTypeName(a.dtype())) + ", " +
                            std::string(DataTypeName(b.dtype())));
  OP_ASSIGN_OR_RETURN(MatMulPlan p, PlanMatMul(ctx, a.shape(), b.shape()));
  OP_ASSIGN_OR_RETURN(Tensor * y, ctx.Output(0, DataType::kInt32, p.out));
  if (ctx.infer_only() || !y) return Status::Ok();
  if (MatMulIntegerFast(ctx, p, y)) return Status::Ok();
  // a_zero_point may be per row of A ([M]): view it as [M, 1].
  Tensor azp, bzp;
  if (ctx.has_input(2)) {
    azp = ctx.input(2);
    if (azp.rank() == 1 && azp.numel() > 1 && a.rank() >= 2)
      azp = azp.Reshaped(Shape{azp.dim(0), 1});
  }
  if (ctx.has_input(3)) bzp = ctx.input(3);
  CenteredDoubles ad(a, ctx.has_input(2) ? &azp : nullptr);
  CenteredDoubles bd(b, ctx.has_input(3) ? &bzp : nullptr);
  ScratchVec<double> yd(y->numel());
  RunMatMul<double>(&ctx.pool(), p, ad.data(), bd.data(), yd.data());
  for (int64_t i = 0; i < y->numel(); ++i) y->data<int32_t>()[i] = static_cast<int32_t>(yd[i]);
  return Status::Ok();
}

}  // namespace

OUTPOST_REGISTER_OP(MatMulInteger, "", 10, 25, MatMulIntegerKernel);

}  // namespace outpost::kernels::cpu
