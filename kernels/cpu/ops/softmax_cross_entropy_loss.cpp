// SoftmaxCrossEntropyLoss: NLL of log_softmax(scores) over axis 1, with optional log_prob output.
#include <cmath>

#include "cpu/common.h"
#include "cpu/reduce.h"
#include "cpu/scratch.h"

namespace outpost::kernels::cpu {
namespace {

Status SceLossKernel(KernelContext& ctx) {
  if (!ctx.has_input(0) || !ctx.has_input(1)) return ctx.Fail("missing input");
  const Tensor& x = ctx.input(0);
  const Tensor& t = ctx.input(1);
  const Tensor* w = ctx.has_input(2) ? &ctx.input(2) : nullptr;
  if (!IsInteger(t.dtype())) return ctx.Fail("labels must be an integer tensor");
  if (w && (w->dtype() != x.dtype() || w->rank() != 1)) return ctx.Fail("bad weights");
  const std::string reduction = ctx.attrs().String("reduction", "mean");
  int64_t n, c, d;
  OP_ASSIGN_OR_RETURN(Shape out, LossShapes(ctx, x.shape(), t.shape(), reduction, &n, &c, &d));
  if (w && w->dim(0) != c) return ctx.Fail("weights length differs from C");
  const int64_t ii = ctx.attrs().Int("ignore_index", INT64_MIN);
  return DispatchFloat(ctx, x.dtype(), [&]<typename T>() -> Status {
    OP_ASSIGN_OR_RETURN(Tensor* y, ctx.Output(0, x.dtype(), out));
    OP_ASSIGN_OR_RETURN(Tensor* lp_out, ctx.Output(1, x.dtype(), x.shape()));
    if (ctx.infer_only()) return Status::Ok();
    using A = std::conditional_t<std::is_same_v<T, double>, double, float>;
    ScratchVec<T> scratch(lp_out ? 0 : x.numel());
    T* lp = lp_out ? lp_out->data<T>() : scratch.data();
    const T* px = x.data<T>();
    for (int64_t i = 0; i < n; ++i) {
      for (int64_t k = 0; k < d; ++k) {
        const T* p = px + i * c * d + k;
        A m = -INFINITY, s = 0;
        for (int64_t j = 0; j < c; ++j) m = std::max<A>(m, A(p[j * d]));
        for (int64_t j = 0; j < c; ++j) s += std::exp(A(p[j * d]) - m);
        const A lse = m + std::log(s);
        for (int64_t j = 0; j < c; ++j) lp[i * c * d + j * d + k] = T(A(p[j * d]) - lse);
      }
    }
    if (!y) return Status::Ok();
    return NllLossCompute<T>(ctx, lp, t, w, n, c, d, reduction, ii, y->data<T>());
  });
}

}  // namespace

OUTPOST_REGISTER_OP(SoftmaxCrossEntropyLoss, "", 12, 25, SceLossKernel);

}  // namespace outpost::kernels::cpu
