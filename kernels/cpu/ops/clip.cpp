// Clip: y = min(max(x, lo), hi). Bounds are attributes before opset 11, optional inputs after.
#include <algorithm>
#include <limits>

#include "cpu/elementwise.h"

namespace outpost::kernels::cpu {
namespace {
using namespace ew;  // NOLINT(build/namespaces)

Status ClipKernel(KernelContext& ctx) {
  if (!ctx.has_input(0)) return ctx.Fail("missing input 0");
  const Tensor& x = ctx.input(0);
  for (int i = 1; i < 3; ++i) {
    if (!ctx.has_input(i)) continue;
    if (ctx.input(i).dtype() != x.dtype()) return ctx.Fail("bound type differs from input");
    if (ctx.input(i).numel() != 1) return ctx.BadInput("min/max must be scalars");
  }
  return DispatchNumeric(ctx, x.dtype(), [&]<typename T>() -> Status {
    using V = Acc<T>;
    Tensor* y;
    OP_RETURN_IF_ERROR(UnarySetup(ctx, x.dtype(), &y));
    if (!y) return Status::Ok();
    V lo = std::numeric_limits<V>::lowest(), hi = std::numeric_limits<V>::max();
    if (ctx.opset() < 11) {
      lo = static_cast<V>(ctx.attrs().Float("min", -std::numeric_limits<float>::max()));
      hi = static_cast<V>(ctx.attrs().Float("max", std::numeric_limits<float>::max()));
    } else {
      if (ctx.has_input(1)) lo = Load(ctx.input(1).data<T>()[0]);
      if (ctx.has_input(2)) hi = Load(ctx.input(2).data<T>()[0]);
    }
    // min(max(v, lo), hi): when lo > hi every value becomes hi (the spec's rule), and NaN stays
    // NaN (std::max/min return their first argument on unordered compares). Branch-free, so the
    // loop vectorizes: Clip is Relu6 in every MobileNet.
    UnaryMap(ctx, x.data<T>(), y->data<T>(), x.numel(),
             [lo, hi](V v) -> V { return std::min(std::max(v, lo), hi); });
    return Status::Ok();
  });
}

}  // namespace

OUTPOST_REGISTER_OP(Clip, "", 1, 25, ClipKernel);

}  // namespace outpost::kernels::cpu
