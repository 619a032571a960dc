// Expand: broadcasts the input to a shape (numpy rules, in both directions).
#include "cpu/movement.h"

namespace outpost::kernels::cpu {
namespace {

Status ExpandKernel(KernelContext& ctx) {
  if (!ctx.has_input(0) || !ctx.has_input(1)) return ctx.Fail("missing inputs");
  const Tensor& x = ctx.input(0);
  OP_RETURN_IF_ERROR(CheckStorable(ctx, x.dtype()));
  if (!ctx.input_known(1)) return ctx.DataDependent();
  OP_ASSIGN_OR_RETURN(auto dims, IntsInput(ctx, 1));
  OP_ASSIGN_OR_RETURN(Shape target, MakeShape(ctx, dims));
  const Shape shapes[2] = {x.shape(), target};
  OP_ASSIGN_OR_RETURN(Shape out, BroadcastShapes(ctx, shapes));
  OP_ASSIGN_OR_RETURN(Tensor* y, ctx.Output(0, x.dtype(), out));
  if (ctx.infer_only() || !y) return Status::Ok();
  const int r = out.rank(), off = r - x.rank();
  IntList xs = StridesOf(x.shape()), ss(r, 0);
  for (int k = off; k < r; ++k) ss[k] = x.dim(k - off) == 1 ? 0 : xs[k - off];
  CopyBox(x.dtype(), y->raw(), x.raw(), out.dims(), StridesOf(out), ss, &ctx.pool());
  return Status::Ok();
}

}  // namespace

OUTPOST_REGISTER_OP(Expand, "", 8, 25, ExpandKernel);

}  // namespace outpost::kernels::cpu
