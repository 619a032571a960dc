// MatMulInteger: int32 (A - a_zero_point) @ (B - b_zero_point) for 8-bit operands.
#include "cpu/quant.h"
#include "cpu/scratch.h"

namespace outpost::kernels::cpu {
namespace {

bool Is8Bit(DataType t) { return t == DataType::kInt8 || t == DataType::kUInt8; }

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
  // a_zero_point may be per row of A ([M]): view it as [M, 1].
  Tensor azp, bzp;
  if (ctx.has_input(2)) {
    azp = ctx.input(2);
    if (azp.rank() == 1 && azp.numel() > 1 && a.rank() >= 2) azp = azp.Reshaped(Shape{azp.dim(0), 1});
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

OUTPOST_REGISTER_OP(MatMulInteger, "", 10, 23, MatMulIntegerKernel);

}  // namespace outpost::kernels::cpu
