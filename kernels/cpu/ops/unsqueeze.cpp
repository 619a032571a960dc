// Unsqueeze: inserts size-1 dims at the listed output axes.
#include "cpu/movement.h"

namespace outpost::kernels::cpu {
namespace {

Status UnsqueezeKernel(KernelContext& ctx) {
  if (!ctx.has_input(0)) return ctx.Fail("missing input 0");
  const Shape& s = ctx.input(0).shape();
  bool present = false;
  OP_ASSIGN_OR_RETURN(auto axes, IntsArg(ctx, 13, 1, "axes", &present));
  if (!present) return ctx.Fail("missing axes");
  const int rank = s.rank() + static_cast<int>(axes.size());
  if (rank > Shape::kMaxRank) return ctx.NotSupported("rank " + std::to_string(rank));
  SmallVector<bool, Shape::kMaxRank> ins(rank, false);
  for (int64_t a : axes) {
    OP_ASSIGN_OR_RETURN(int ax, NormalizeAxis(ctx, a, rank));
    if (ins[ax]) return ctx.BadInput("repeated axis " + std::to_string(a));
    ins[ax] = true;
  }
  Shape out;
  for (int i = 0, j = 0; i < rank; ++i) out.push_back(ins[i] ? 1 : s[j++]);
  return EmitReshaped(ctx, out);
}

}  // namespace

OUTPOST_REGISTER_OP(Unsqueeze, "", 1, 25, UnsqueezeKernel);

}  // namespace outpost::kernels::cpu
