// BatchNormalization: inference (running statistics) and training mode (batch statistics, updated
// running mean/var outputs).
#include "cpu/norm.h"
#include "cpu/scratch.h"

namespace outpost::kernels::cpu {
namespace {

Status BatchNormKernel(KernelContext& ctx) {
  for (int i = 0; i < 5; ++i)
    if (!ctx.has_input(i)) return ctx.Fail("BatchNormalization needs 5 inputs");
  const Tensor& x = ctx.input(0);
  if (!IsFloating(x.dtype()))
    return ctx.NotSupported("data type " + std::string(DataTypeName(x.dtype())));
  const int64_t c = x.rank() >= 2 ? x.dim(1) : 1;
  for (int i = 1; i < 5; ++i)
    if (ctx.input(i).numel() != c) return ctx.BadInput("per-channel inputs must have C elements");
  const double eps = ctx.attrs().Float("epsilon", 1e-5f);
  const double momentum = ctx.attrs().Float("momentum", 0.9f);
  const bool training = ctx.opset() >= 14 && ctx.attrs().Int("training_mode", 0) != 0;
  if (!training && ctx.opset() < 14 && ctx.num_outputs() > 1 && ctx.output_wanted(1))
    return ctx.NotSupported("training outputs of BatchNormalization before opset 14");
  OP_ASSIGN_OR_RETURN(Tensor * y, ctx.Output(0, x.dtype(), x.shape()));
  Tensor* rm = nullptr;
  Tensor* rv = nullptr;
  if (training) {
    OP_ASSIGN_OR_RETURN(rm, ctx.Output(1, ctx.input(3).dtype(), ctx.input(3).shape()));
    OP_ASSIGN_OR_RETURN(rv, ctx.Output(2, ctx.input(4).dtype(), ctx.input(4).shape()));
  }
  if (ctx.infer_only() || x.numel() == 0) return Status::Ok();
  const int64_t n = x.dim(0), spatial = x.numel() / (n * c);
  ScratchDoubles scale(&ctx.input(1)), bias(&ctx.input(2));
  ScratchDoubles mean(&ctx.input(3)), var(&ctx.input(4));
  return DispatchFloat(ctx, x.dtype(), [&]<typename T>() {
    using A = Acc<T>;
    const T* xp = x.data<T>();
    if (training) {  // batch statistics (population variance) per channel
      for (int64_t ch = 0; ch < c; ++ch) {
        double s = 0, s2 = 0;
        for (int64_t b = 0; b < n; ++b)
          for (int64_t i = 0; i < spatial; ++i) s += double(xp[(b * c + ch) * spatial + i]);
        const double m = s / double(n * spatial);
        for (int64_t b = 0; b < n; ++b)
          for (int64_t i = 0; i < spatial; ++i) {
            const double d = double(xp[(b * c + ch) * spatial + i]) - m;
            s2 += d * d;
          }
        const double v = s2 / double(n * spatial);
        auto put = [&](Tensor* t, double run, double cur) {
          if (!t) return;
          const double val = run * momentum + cur * (1 - momentum);
          DispatchFloat(ctx, t->dtype(), [&]<typename U>() {
            t->data<U>()[ch] = FromAcc<U>(static_cast<Acc<U>>(val));
            return Status::Ok();
          }).ok();
        };
        put(rm, mean[ch], m);
        put(rv, var[ch], v);
        mean[ch] = m, var[ch] = v;
      }
    }
    if (!y) return Status::Ok();
    ScratchVec<A> mul(c), add(c);
    for (int64_t ch = 0; ch < c; ++ch) {
      const double inv = scale[ch] / std::sqrt(var[ch] + eps);
      mul[ch] = static_cast<A>(inv);
      add[ch] = static_cast<A>(bias[ch] - mean[ch] * inv);
    }
    T* yp = y->data<T>();
    ctx.pool().ParallelFor(n * c, std::max<int64_t>(1, 16384 / std::max<int64_t>(spatial, 1)),
                           [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        const A m = mul[r % c], a = add[r % c];
        for (int64_t i = 0; i < spatial; ++i)
          yp[r * spatial + i] = FromAcc<T>(static_cast<A>(xp[r * spatial + i]) * m + a);
      }
    });
    return Status::Ok();
  });
}

}  // namespace

OUTPOST_REGISTER_OP(BatchNormalization, "", 1, 25, BatchNormKernel);

}  // namespace outpost::kernels::cpu
