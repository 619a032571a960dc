// GlobalAveragePool, GlobalMaxPool, GlobalLpPool: reduce every spatial dim of [N, C, ...] to 1.
#include <cmath>
#include <limits>

#include "cpu/common.h"

namespace outpost::kernels::cpu {
namespace {

enum class GlobalKind { kAvg, kMax, kLp };

template <GlobalKind K>
Status GlobalPoolKernel(KernelContext& ctx) {
  if (!ctx.has_input(0)) return ctx.Fail("missing input X");
  const Tensor& x = ctx.input(0);
  if (x.rank() < 2) return ctx.Fail("input must be [N, C, ...], got " + x.shape().ToString());
  if (!IsFloating(x.dtype()))
    return ctx.NotSupported("data type " + std::string(DataTypeName(x.dtype())));
  Shape out = x.shape();
  for (int i = 2; i < out.rank(); ++i) out[i] = 1;
  const double p = K == GlobalKind::kLp ? double(ctx.attrs().Int("p", 2)) : 0.0;
  OP_ASSIGN_OR_RETURN(Tensor * y, ctx.Output(0, x.dtype(), out));
  if (ctx.infer_only() || !y || y->numel() == 0) return Status::Ok();
  const int64_t planes = x.dim(0) * x.dim(1), len = x.numel() / std::max<int64_t>(planes, 1);
  return DispatchFloat(ctx, x.dtype(), [&]<typename T>() {
    const T* xp = x.data<T>();
    T* yp = y->data<T>();
    ctx.pool().ParallelFor(planes, 16, [&](int64_t p0, int64_t p1) {
      for (int64_t pl = p0; pl < p1; ++pl) {
        const T* xc = xp + pl * len;
        double r;
        if constexpr (K == GlobalKind::kMax) {
          r = -std::numeric_limits<double>::infinity();
          for (int64_t i = 0; i < len; ++i) r = std::max<double>(r, xc[i]);
        } else if constexpr (K == GlobalKind::kAvg) {
          Acc<T> s = 0;
          for (int64_t i = 0; i < len; ++i) s += static_cast<Acc<T>>(xc[i]);
          r = len ? double(s) / double(len) : 0.0;
        } else {
          r = 0;
          for (int64_t i = 0; i < len; ++i) r += std::pow(std::fabs(double(xc[i])), p);
          r = std::pow(r, 1.0 / p);
        }
        yp[pl] = FromAcc<T>(static_cast<Acc<T>>(r));
      }
    });
    return Status::Ok();
  });
}

}  // namespace

OUTPOST_REGISTER_OP(GlobalAveragePool, "", 1, 25, GlobalPoolKernel<GlobalKind::kAvg>);
OUTPOST_REGISTER_OP(GlobalMaxPool, "", 1, 25, GlobalPoolKernel<GlobalKind::kMax>);
OUTPOST_REGISTER_OP(GlobalLpPool, "", 1, 25, GlobalPoolKernel<GlobalKind::kLp>);

}  // namespace outpost::kernels::cpu
