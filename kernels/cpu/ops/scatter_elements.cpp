// ScatterElements (and the older Scatter): a copy of data with updates written at indices.
#include "cpu/movement.h"

namespace outpost::kernels::cpu {
namespace {

Status ScatterElementsKernel(KernelContext& ctx) {
  if (!ctx.has_input(0) || !ctx.has_input(1) || !ctx.has_input(2))
    return ctx.Fail("missing inputs");
  const Tensor& x = ctx.input(0);
  const Tensor& ind = ctx.input(1);
  const Tensor& upd = ctx.input(2);
  OP_RETURN_IF_ERROR(CheckStorable(ctx, x.dtype()));
  if (upd.dtype() != x.dtype()) return ctx.Fail("updates and data differ in type");
  if (upd.shape() != ind.shape()) return ctx.Fail("updates and indices differ in shape");
  OP_ASSIGN_OR_RETURN(int axis, NormalizeAxis(ctx, ctx.attrs().Int("axis", 0), x.rank()));
  OP_ASSIGN_OR_RETURN(Tensor* y, ctx.Output(0, x.dtype(), x.shape()));
  if (ctx.infer_only() || !y) return Status::Ok();
  ScratchVec<int64_t> offsets(ElementOffsetCount(ind));
  OP_RETURN_IF_ERROR(ElementOffsets(ctx, x.shape(), ind, axis, {offsets.data(), offsets.size()}));
  CopyTensor(x, y);
  return ScatterInto(ctx, y, upd, {offsets.data(), offsets.size()}, 1);
}

}  // namespace

OUTPOST_REGISTER_OP(ScatterElements, "", 11, 25, ScatterElementsKernel);
OUTPOST_REGISTER_OP(Scatter, "", 9, 10, ScatterElementsKernel);

}  // namespace outpost::kernels::cpu
