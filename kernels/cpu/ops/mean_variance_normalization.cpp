// MeanVarianceNormalization: (x - E[x]) / (sqrt(E[x^2] - E[x]^2) + 1e-9) over `axes`.
#include <cmath>

#include "cpu/common.h"
#include "cpu/reduce.h"
#include "cpu/scratch.h"

namespace outpost::kernels::cpu {
namespace {

Status MvnKernel(KernelContext& ctx) {
  if (!ctx.has_input(0)) return ctx.Fail("missing input");
  const Tensor& x = ctx.input(0);
  std::span<const int64_t> given = ctx.attrs().IntsView("axes");
  const IntList axes = ctx.attrs().Has("axes") ? IntList(given) : IntList{0, 2, 3};
  AxisMask mask(x.rank(), false);
  for (int64_t a : axes) {
    OP_ASSIGN_OR_RETURN(int ax, NormalizeAxis(ctx, a, x.rank()));
    mask[ax] = true;
  }
  return DispatchFloat(ctx, x.dtype(), [&]<typename T>() -> Status {
    OP_ASSIGN_OR_RETURN(Tensor* y, ctx.Output(0, x.dtype(), x.shape()));
    if (ctx.infer_only() || !y) return Status::Ok();
    using W = std::conditional_t<std::is_same_v<T, double>, double, float>;
    ReducePlan plan = MakeReducePlan(x.shape(), mask);
    ScratchVec<W> mean(plan.out_numel, W(0)), sq(plan.out_numel, W(0));
    auto add = [](W a, W v) { return a + v; };
    ReduceAccumulate(ctx.pool(), plan, x.data<T>(), mean.data(), [](T v, int64_t) { return W(v); }, add);
    ReduceAccumulate(ctx.pool(), plan, x.data<T>(), sq.data(),
                     [](T v, int64_t) { return W(v) * W(v); }, add);
    const W inv = W(1) / static_cast<W>(plan.count);
    for (int64_t j = 0; j < plan.out_numel; ++j) {
      mean[j] *= inv;
      sq[j] = std::sqrt(std::max(W(0), sq[j] * inv - mean[j] * mean[j])) + W(1e-9);
    }
    // Odometer over the input computing each element's statistics slot.
    const int r = x.rank();
    int64_t ost[Shape::kMaxRank], coord[Shape::kMaxRank] = {};
    for (int64_t i = r - 1, s = 1; i >= 0; --i) {
      ost[i] = mask[i] ? 0 : s;
      if (!mask[i]) s *= x.dim(static_cast<int>(i));
    }
    const T* px = x.data<T>();
    T* py = y->data<T>();
    int64_t j = 0;
    for (int64_t k = 0; k < x.numel(); ++k) {
      py[k] = T((W(px[k]) - mean[j]) / sq[j]);
      for (int i = r - 1; i >= 0; --i) {
        j += ost[i];
        if (++coord[i] < x.dim(i)) break;
        j -= ost[i] * x.dim(i);
        coord[i] = 0;
      }
    }
    return Status::Ok();
  });
}

}  // namespace

OUTPOST_REGISTER_OP(MeanVarianceNormalization, "", 9, 25, MvnKernel);

}  // namespace outpost::kernels::cpu
