// Range: start, start + delta, ... up to (not including) limit.
#include <cmath>

#include "cpu/movement.h"

namespace outpost::kernels::cpu {
namespace {

Status RangeKernel(KernelContext& ctx) {
  for (int i = 0; i < 3; ++i)
    if (!ctx.has_input(i)) return ctx.Fail("missing input " + std::to_string(i));
  for (int i = 0; i < 3; ++i)
    if (!ctx.input_known(i)) return ctx.DataDependent();
  const DataType t = ctx.input(0).dtype();
  for (int i = 0; i < 3; ++i) {
    if (ctx.input(i).dtype() != t || ctx.input(i).numel() != 1)
      return ctx.Fail("start, limit and delta must be scalars of one type");
  }
  return DispatchNumeric(ctx, t, [&]<typename T>() {
    using A = Acc<T>;
    const A start = ctx.input(0).data<T>()[0], limit = ctx.input(1).data<T>()[0],
            delta = ctx.input(2).data<T>()[0];
    if (delta == A(0)) return ctx.BadInput("delta is 0");
    int64_t n;
    if constexpr (std::is_floating_point_v<A>) {
      n = static_cast<int64_t>(std::ceil((static_cast<double>(limit) - start) / delta));
    } else {
      const A span = limit - start;
      n = static_cast<int64_t>(span / delta + ((span % delta != 0) && ((span > 0) == (delta > 0))));
    }
    n = std::max<int64_t>(n, 0);
    OP_ASSIGN_OR_RETURN(Tensor* y, ctx.Output(0, t, Shape{n}));
    if (ctx.infer_only() || !y) return Status::Ok();
    T* out = y->data<T>();
    for (int64_t i = 0; i < n; ++i) out[i] = FromAcc<T>(static_cast<A>(start + A(i) * delta));
    return Status::Ok();
  });
}

}  // namespace

OUTPOST_REGISTER_OP(Range, "", 11, 25, RangeKernel);

}  // namespace outpost::kernels::cpu
