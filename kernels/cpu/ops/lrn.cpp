// LRN: local response normalization across channels.
#include <cmath>

#include "cpu/common.h"

namespace outpost::kernels::cpu {
namespace {

Status LrnKernel(KernelContext& ctx) {
  if (!ctx.has_input(0)) return ctx.Fail("missing input X");
  const Tensor& x = ctx.input(0);
  if (!IsFloating(x.dtype()))
    return ctx.NotSupported("data type " + std::string(DataTypeName(x.dtype())));
  if (x.rank() < 3) return ctx.Fail("input must be [N, C, D1, ...]");
  const int64_t size = ctx.attrs().Int("size", 0);
  if (size < 1) return ctx.Fail("size must be >= 1");
  const double alpha = ctx.attrs().Float("alpha", 1e-4f), beta = ctx.attrs().Float("beta", 0.75f);
  const double bias = ctx.attrs().Float("bias", 1.f);
  OP_ASSIGN_OR_RETURN(Tensor * y, ctx.Output(0, x.dtype(), x.shape()));
  if (ctx.infer_only() || !y || x.numel() == 0) return Status::Ok();
  const int64_t n = x.dim(0), c = x.dim(1), spatial = x.numel() / (n * c);
  const int64_t lo = (size - 1) / 2, hi = (size - 1) - lo;  // floor and ceil of (size-1)/2
  return DispatchFloat(ctx, x.dtype(), [&]<typename T>() {
    const T* xp = x.data<T>();
    T* yp = y->data<T>();
    ctx.pool().ParallelFor(n * c, 1, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        const int64_t b = r / c, ch = r % c;
        const int64_t c0 = std::max<int64_t>(0, ch - lo), c1 = std::min<int64_t>(c - 1, ch + hi);
        for (int64_t i = 0; i < spatial; ++i) {
          double sq = 0;
          for (int64_t k = c0; k <= c1; ++k) {
            const double v = double(xp[(b * c + k) * spatial + i]);
            sq += v * v;
          }
          const double v = double(xp[r * spatial + i]);
          yp[r * spatial + i] =
              FromAcc<T>(static_cast<Acc<T>>(v / std::pow(bias + alpha / double(size) * sq, beta)));
        }
      }
    });
    return Status::Ok();
  });
}

}  // namespace

OUTPOST_REGISTER_OP(LRN, "", 1, 25, LrnKernel);

}  // namespace outpost::kernels::cpu
