// NegativeLogLikelihoodLoss: -input[n, target[n, ...], ...] * weight, reduced none/sum/mean.
#include "cpu/common.h"
#include "cpu/reduce.h"

namespace outpost::kernels::cpu {
namespace {

Status NllLossKernel(KernelContext& ctx) {
  if (!ctx.has_input(0) || !ctx.has_input(1)) return ctx.Fail("missing input");
  const Tensor& x = ctx.input(0);
  const Tensor& t = ctx.input(1);
  const Tensor* w = ctx.has_input(2) ? &ctx.input(2) : nullptr;
  if (!IsInteger(t.dtype())) return ctx.Fail("target must be an integer tensor");
  if (w && (w->dtype() != x.dtype() || w->rank() != 1)) return ctx.Fail("bad weight");
  const std::string reduction = ctx.attrs().String("reduction", "mean");
  int64_t n, c, d;
  OP_ASSIGN_OR_RETURN(Shape out, LossShapes(ctx, x.shape(), t.shape(), reduction, &n, &c, &d));
  if (w && w->dim(0) != c) return ctx.Fail("weight length differs from C");
  const int64_t ii = ctx.attrs().Int("ignore_index", INT64_MIN);
  return DispatchFloat(ctx, x.dtype(), [&]<typename T>() -> Status {
    OP_ASSIGN_OR_RETURN(Tensor* y, ctx.Output(0, x.dtype(), out));
    if (ctx.infer_only() || !y) return Status::Ok();
    return NllLossCompute<T>(ctx, x.data<T>(), t, w, n, c, d, reduction, ii, y->data<T>());
  });
}

}  // namespace

OUTPOST_REGISTER_OP(NegativeLogLikelihoodLoss, "", 12, 25, NllLossKernel);

}  // namespace outpost::kernels::cpu
