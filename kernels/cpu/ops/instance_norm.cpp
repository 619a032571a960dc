// InstanceNormalization: normalize each [n, c] spatial plane, then per-channel scale and bias.
#include "cpu/norm.h"
#include "cpu/scratch.h"

namespace outpost::kernels::cpu {
namespace {

Status InstanceNormKernel(KernelContext& ctx) {
  if (!ctx.has_input(0) || !ctx.has_input(1) || !ctx.has_input(2))
    return ctx.Fail("InstanceNormalization needs input, scale, B");
  const Tensor& x = ctx.input(0);
  if (!IsFloating(x.dtype()))
    return ctx.NotSupported("data type " + std::string(DataTypeName(x.dtype())));
  if (x.rank() < 2) return ctx.Fail("input must be [N, C, ...]");
  const int64_t c = x.dim(1);
  if (ctx.input(1).numel() != c || ctx.input(2).numel() != c)
    return ctx.BadInput("scale and B must have C elements");
  const double eps = ctx.attrs().Float("epsilon", 1e-5f);
  OP_ASSIGN_OR_RETURN(Tensor * y, ctx.Output(0, x.dtype(), x.shape()));
  if (ctx.infer_only() || !y || x.numel() == 0) return Status::Ok();
  const int64_t rows = x.dim(0) * c, len = x.numel() / rows;
  ScratchDoubles sv(&ctx.input(1)), bv(&ctx.input(2));
  return DispatchFloat(ctx, x.dtype(), [&]<typename T>() {
    using A = Acc<T>;
    NormRows<T>(ctx.pool(), x.data<T>(), y->data<T>(), rows, len, eps, false,
                [&](int64_t r, int64_t, A* s, A* b) {
                  *s = static_cast<A>(sv[r % c]), *b = static_cast<A>(bv[r % c]);
                });
    return Status::Ok();
  });
}

}  // namespace

OUTPOST_REGISTER_OP(InstanceNormalization, "", 1, 25, InstanceNormKernel);

}  // namespace outpost::kernels::cpu
