// Squeeze: removes size-1 dims (the listed axes, or all of them).
#include "cpu/movement.h"

namespace outpost::kernels::cpu {
namespace {

Status SqueezeKernel(KernelContext& ctx) {
  if (!ctx.has_input(0)) return ctx.Fail("missing input 0");
  const Shape& s = ctx.input(0).shape();
  bool present = false;
  OP_ASSIGN_OR_RETURN(auto axes, IntsArg(ctx, 13, 1, "axes", &present));
  SmallVector<bool, Shape::kMaxRank> drop(s.rank(), false);
  if (!present) {
    for (int i = 0; i < s.rank(); ++i) drop[i] = s[i] == 1;
  }
  for (int64_t a : axes) {
    OP_ASSIGN_OR_RETURN(int ax, NormalizeAxis(ctx, a, s.rank()));
    if (s[ax] != 1) return ctx.BadInput("cannot squeeze dim " + std::to_string(ax) + " of " +
                                        s.ToString());
    drop[ax] = true;
  }
  Shape out;
  for (int i = 0; i < s.rank(); ++i)
    if (!drop[i]) out.push_back(s[i]);
  return EmitReshaped(ctx, out);
}

}  // namespace

OUTPOST_REGISTER_OP(Squeeze, "", 1, 25, SqueezeKernel);

}  // namespace outpost::kernels::cpu
