// Concat: joins the inputs along an axis.
#include "cpu/movement.h"

namespace outpost::kernels::cpu {
namespace {

Status ConcatKernel(KernelContext& ctx) {
  if (ctx.num_inputs() < 1 || !ctx.has_input(0)) return ctx.Fail("missing input 0");
  const Tensor& x0 = ctx.input(0);
  OP_RETURN_IF_ERROR(CheckStorable(ctx, x0.dtype()));
  if (!ctx.attrs().Has("axis") && ctx.opset() >= 4) return ctx.Fail("missing axis");
  const int r = x0.rank();
  if (r == 0) return ctx.Fail("cannot concatenate scalars");
  OP_ASSIGN_OR_RETURN(int axis, NormalizeAxis(ctx, ctx.attrs().Int("axis", 1), r));
  Shape out = x0.shape();
  out[axis] = 0;
  for (int i = 0; i < ctx.num_inputs(); ++i) {
    if (!ctx.has_input(i)) return ctx.Fail("missing input " + std::to_string(i));
    const Tensor& x = ctx.input(i);
    if (x.dtype() != x0.dtype()) return ctx.Fail("inputs differ in type");
    bool ok = x.rank() == r;
    for (int k = 0; ok && k < r; ++k) ok = k == axis || x.dim(k) == out[k];
    if (!ok) return ctx.BadInput("cannot concatenate " + x0.shape().ToString() + " and " +
                                 x.shape().ToString() + " on axis " + std::to_string(axis));
    out[axis] += x.dim(axis);
  }
  OP_ASSIGN_OR_RETURN(Tensor* y, ctx.Output(0, x0.dtype(), out));
  if (ctx.infer_only() || !y) return Status::Ok();
  int64_t outer = 1, after = 1;
  for (int k = 0; k < axis; ++k) outer *= out[k];
  for (int k = axis + 1; k < r; ++k) after *= out[k];
  int64_t pos = 0;
  for (int i = 0; i < ctx.num_inputs(); ++i) {
    const Tensor& x = ctx.input(i);
    const int64_t inner = x.dim(axis) * after;
    const int64_t dims[2] = {outer, inner}, ds[2] = {out[axis] * after, 1}, ss[2] = {inner, 1};
    CopyBox(x.dtype(), ElemPtr(*y, pos), x.raw(), dims, ds, ss, &ctx.pool());
    pos += inner;
  }
  return Status::Ok();
}

}  // namespace

OUTPOST_REGISTER_OP(Concat, "", 1, 25, ConcatKernel);

}  // namespace outpost::kernels::cpu
