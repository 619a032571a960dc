// RMSNormalization: x / sqrt(mean(x^2 over dims [axis, rank)) + epsilon) * scale.
#include "cpu/norm.h"
#include "cpu/scratch.h"

namespace outpost::kernels::cpu {
namespace {

Status RmsNormKernel(KernelContext& ctx) {
  if (!ctx.has_input(0) || !ctx.has_input(1)) return ctx.Fail("RMSNormalization needs X, scale");
  const Tensor& x = ctx.input(0);
  const Tensor& scale = ctx.input(1);
  if (!IsFloating(x.dtype()))
    return ctx.NotSupported("data type " + std::string(DataTypeName(x.dtype())));
  OP_ASSIGN_OR_RETURN(int axis, NormalizeAxis(ctx, ctx.attrs().Int("axis", -1), x.rank()));
  const double eps = ctx.attrs().Float("epsilon", 1e-5f);
  Shape norm(std::span<const int64_t>(x.shape().begin() + axis, x.rank() - axis));
  Shape shapes[2] = {scale.shape(), norm};
  OP_ASSIGN_OR_RETURN(Shape bs, BroadcastShapes(ctx, shapes));
  if (bs != norm) return ctx.BadInput("scale " + scale.shape().ToString() + " vs " + norm.ToString());
  OP_ASSIGN_OR_RETURN(Tensor * y, ctx.Output(0, x.dtype(), x.shape()));
  if (ctx.infer_only() || !y || x.numel() == 0) return Status::Ok();
  const int64_t len = norm.numel(), rows = x.numel() / len;
  ScratchDoubles sv(&scale);
  BroadcastIndexer bi(scale.shape(), norm);
  return DispatchFloat(ctx, x.dtype(), [&]<typename T>() {
    using A = Acc<T>;
    ScratchVec<A> s(len);
    for (int64_t j = 0; j < len; ++j) s[j] = static_cast<A>(sv[bi.Offset(j)]);
    NormRows<T>(ctx.pool(), x.data<T>(), y->data<T>(), rows, len, eps, true,
                [&](int64_t, int64_t j, A* sc, A* b) { *sc = s[j], *b = A(0); });
    return Status::Ok();
  });
}

}  // namespace

OUTPOST_REGISTER_OP(RMSNormalization, "", 23, 25, RmsNormKernel);

}  // namespace outpost::kernels::cpu
