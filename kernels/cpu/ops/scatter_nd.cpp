// ScatterND: a copy of data with update slices written at index tuples.
#include "cpu/movement.h"

namespace outpost::kernels::cpu {
namespace {

Status ScatterNDKernel(KernelContext& ctx) {
  if (!ctx.has_input(0) || !ctx.has_input(1) || !ctx.has_input(2))
    return ctx.Fail("missing inputs");
  const Tensor& x = ctx.input(0);
  const Tensor& upd = ctx.input(2);
  OP_RETURN_IF_ERROR(CheckStorable(ctx, x.dtype()));
  if (upd.dtype() != x.dtype()) return ctx.Fail("updates and data differ in type");
  OP_ASSIGN_OR_RETURN(Tensor* y, ctx.Output(0, x.dtype(), x.shape()));
  if (ctx.infer_only() || !y) return Status::Ok();
  int64_t slice = 1;
  ScratchVec<int64_t> offsets(NdOffsetCount(ctx.input(1)));
  OP_RETURN_IF_ERROR(
      NdOffsets(ctx, x.shape(), ctx.input(1), 0, &slice, {offsets.data(), offsets.size()}));
  CopyTensor(x, y);
  return ScatterInto(ctx, y, upd, {offsets.data(), offsets.size()}, slice);
}

}  // namespace

OUTPOST_REGISTER_OP(ScatterND, "", 11, 25, ScatterNDKernel);

}  // namespace outpost::kernels::cpu
