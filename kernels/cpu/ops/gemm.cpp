// Gemm: Y = alpha * op(A) * op(B) + beta * C, C broadcast to [M, N].
#include "cpu/common.h"
#include "cpu/gemm.h"

namespace outpost::kernels::cpu {
namespace {

Status GemmKernel(KernelContext& ctx) {
  if (!ctx.has_input(0) || !ctx.has_input(1)) return ctx.Fail("Gemm needs A and B");
  const Tensor& a = ctx.input(0);
  const Tensor& b = ctx.input(1);
  const Tensor* c = ctx.has_input(2) ? &ctx.input(2) : nullptr;
  const DataType dt = a.dtype();
  if (b.dtype() != dt || (c && c->dtype() != dt)) return ctx.Fail("A, B, C types differ");
  if (!IsFloating(dt)) return ctx.NotSupported("data type " + std::string(DataTypeName(dt)));
  if (a.rank() != 2 || b.rank() != 2) return ctx.Fail("Gemm A and B must be 2-D");
  const bool ta = ctx.attrs().Int("transA", 0) != 0, tb = ctx.attrs().Int("transB", 0) != 0;
  const float alpha = ctx.attrs().Float("alpha", 1.f), beta = ctx.attrs().Float("beta", 1.f);
  const int64_t m = ta ? a.dim(1) : a.dim(0), k = ta ? a.dim(0) : a.dim(1);
  const int64_t n = tb ? b.dim(0) : b.dim(1);
  if ((tb ? b.dim(1) : b.dim(0)) != k)
    return ctx.BadInput("Gemm inner dims differ: " + a.shape().ToString() + " x " +
                        b.shape().ToString());
  const Shape out{m, n};
  if (c) {
    if (c->rank() > 2) return ctx.Fail("Gemm C must have rank <= 2");
    Shape shapes[2] = {c->shape(), out};
    OP_ASSIGN_OR_RETURN(Shape bs, BroadcastShapes(ctx, shapes));
    if (bs != out) return ctx.BadInput("C " + c->shape().ToString() + " does not broadcast to " +
                                       out.ToString());
  }
  OP_ASSIGN_OR_RETURN(Tensor * y, ctx.Output(0, dt, out));
  if (ctx.infer_only() || !y || y->numel() == 0) return Status::Ok();
  return DispatchFloat(ctx, dt, [&]<typename T>() {
    using C = Compute<T>;
    ComputeBuf<T> ab(&a), bb(&b), cb(c), yb(y);
    const C* ap = ComputeIn<T>(a, &ab);
    const C* bp = ComputeIn<T>(b, &bb);
    C* yp = ComputeOut<T>(y, &yb);
    const bool use_c = c && beta != 0.f;
    if (use_c) {
      const C* cp = ComputeIn<T>(*c, &cb);
      if (c->numel() == n && (c->rank() == 1 || c->dim(0) == 1)) {  // row vector bias
        for (int64_t i = 0; i < m; ++i)
          for (int64_t j = 0; j < n; ++j) yp[i * n + j] = C(beta) * cp[j];
      } else {
        BroadcastIndexer bi(c->shape(), out);
        for (int64_t i = 0; i < m * n; ++i) yp[i] = C(beta) * cp[bi.Offset(i)];
      }
    }
    Gemm<C>(&ctx.pool(), ta, tb, m, n, k, C(alpha), ap, a.dim(1), bp, b.dim(1),
            use_c ? C(1) : C(0), yp, n);
    FinishOut<T>(y, yb);
    return Status::Ok();
  });
}

}  // namespace

OUTPOST_REGISTER_OP(Gemm, "", 1, 25, GemmKernel);

}  // namespace outpost::kernels::cpu
