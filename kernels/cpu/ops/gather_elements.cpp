// GatherElements: out[i] = data[i with the axis coordinate replaced by indices[i]].
#include "cpu/movement.h"

namespace outpost::kernels::cpu {
namespace {

Status GatherElementsKernel(KernelContext& ctx) {
  if (!ctx.has_input(0) || !ctx.has_input(1)) return ctx.Fail("missing inputs");
  const Tensor& x = ctx.input(0);
  const Tensor& ind = ctx.input(1);
  OP_RETURN_IF_ERROR(CheckStorable(ctx, x.dtype()));
  OP_ASSIGN_OR_RETURN(int axis, NormalizeAxis(ctx, ctx.attrs().Int("axis", 0), x.rank()));
  if (ind.rank() != x.rank()) return ctx.Fail("indices and data differ in rank");
  OP_ASSIGN_OR_RETURN(Tensor* y, ctx.Output(0, x.dtype(), ind.shape()));
  if (ctx.infer_only() || !y) return Status::Ok();
  ScratchVec<int64_t> offsets(ElementOffsetCount(ind));
  OP_RETURN_IF_ERROR(ElementOffsets(ctx, x.shape(), ind, axis, {offsets.data(), offsets.size()}));
  return DispatchStorage(ctx, x.dtype(), [&]<typename S>() {
    const S* src = x.data<S>();
    S* dst = y->data<S>();
    for (size_t i = 0; i < offsets.size(); ++i) dst[i] = src[offsets[i]];
    return Status::Ok();
  });
}

}  // namespace

OUTPOST_REGISTER_OP(GatherElements, "", 11, 25, GatherElementsKernel);

}  // namespace outpost::kernels::cpu
