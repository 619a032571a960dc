// GroupNormalization: normalize each group of C / num_groups channels; scale/bias are per group
// (opset 18) or per channel (opset 21).
#include "cpu/norm.h"
#include "cpu/scratch.h"

namespace outpost::kernels::cpu {
namespace {

Status GroupNormKernel(KernelContext& ctx) {
  if (!ctx.has_input(0) || !ctx.has_input(1) || !ctx.has_input(2))
    return ctx.Fail("GroupNormalization needs X, scale, bias");
  const Tensor& x = ctx.input(0);
  if (!IsFloating(x.dtype()))
    return ctx.NotSupported("data type " + std::string(DataTypeName(x.dtype())));
  if (x.rank() < 2) return ctx.Fail("input must be [N, C, ...]");
  const int64_t c = x.dim(1), groups = ctx.attrs().Int("num_groups", 0);
  if (groups < 1 || c % groups != 0) return ctx.Fail("num_groups must divide C");
  const bool per_channel = ctx.opset() >= 21;
  const int64_t params = per_channel ? c : groups;
  if (ctx.input(1).numel() != params || ctx.input(2).numel() != params)
    return ctx.BadInput("scale and bias must have " + std::to_string(params) + " elements");
  const double eps = ctx.attrs().Float("epsilon", 1e-5f);
  OP_ASSIGN_OR_RETURN(Tensor * y, ctx.Output(0, x.dtype(), x.shape()));
  if (ctx.infer_only() || !y || x.numel() == 0) return Status::Ok();
  const int64_t rows = x.dim(0) * groups, len = x.numel() / rows;
  const int64_t spatial = len / (c / groups);
  ScratchDoubles sv(&ctx.input(1)), bv(&ctx.input(2));
  return DispatchFloat(ctx, x.dtype(), [&]<typename T>() {
    using A = Acc<T>;
    NormRows<T>(ctx.pool(), x.data<T>(), y->data<T>(), rows, len, eps, false,
                [&](int64_t r, int64_t j, A* s, A* b) {
                  const int64_t g = r % groups;
                  const int64_t i = per_channel ? g * (c / groups) + j / spatial : g;
                  *s = static_cast<A>(sv[i]), *b = static_cast<A>(bv[i]);
                });
    return Status::Ok();
  });
}

}  // namespace

OUTPOST_REGISTER_OP(GroupNormalization, "", 18, 25, GroupNormKernel);

}  // namespace outpost::kernels::cpu
