// LpNormalization: x / ||x||_p along one axis (p = 1 or 2).
#include <cmath>

#include "cpu/common.h"

namespace outpost::kernels::cpu {
namespace {

Status LpNormKernel(KernelContext& ctx) {
  if (!ctx.has_input(0)) return ctx.Fail("missing input");
  const Tensor& x = ctx.input(0);
  const int64_t p = ctx.attrs().Int("p", 2);
  if (p != 1 && p != 2) return ctx.NotSupported("p = " + std::to_string(p));
  OP_ASSIGN_OR_RETURN(int axis, NormalizeAxis(ctx, ctx.attrs().Int("axis", -1), x.rank()));
  return DispatchFloat(ctx, x.dtype(), [&]<typename T>() -> Status {
    OP_ASSIGN_OR_RETURN(Tensor* y, ctx.Output(0, x.dtype(), x.shape()));
    if (ctx.infer_only() || !y) return Status::Ok();
    int64_t outer = 1, n = x.rank() ? x.dim(axis) : 1, inner = 1;
    for (int i = 0; i < axis; ++i) outer *= x.dim(i);
    for (int i = axis + 1; i < x.rank(); ++i) inner *= x.dim(i);
    using W = std::conditional_t<std::is_same_v<T, double>, double, float>;
    const T* px = x.data<T>();
    T* py = y->data<T>();
    ctx.pool().ParallelFor(outer * inner, 256, [&](int64_t b, int64_t e) {
      for (int64_t oi = b; oi < e; ++oi) {
        const int64_t base = (oi / inner) * n * inner + oi % inner;
        W s = 0;
        for (int64_t k = 0; k < n; ++k) {
          const W v = W(px[base + k * inner]);
          s += p == 1 ? std::abs(v) : v * v;
        }
        const W norm = p == 1 ? s : std::sqrt(s);
        for (int64_t k = 0; k < n; ++k)
          py[base + k * inner] = T(norm == 0 ? W(0) : W(px[base + k * inner]) / norm);
      }
    });
    return Status::Ok();
  });
}

}  // namespace

OUTPOST_REGISTER_OP(LpNormalization, "", 1, 25, LpNormKernel);

}  // namespace outpost::kernels::cpu
