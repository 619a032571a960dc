// Transpose: permutes the dims (reversed by default); a blocked strided copy.
#include "cpu/movement.h"

namespace outpost::kernels::cpu {
namespace {

Status TransposeKernel(KernelContext& ctx) {
  if (!ctx.has_input(0)) return ctx.Fail("missing input 0");
  const Tensor& x = ctx.input(0);
  OP_RETURN_IF_ERROR(CheckStorable(ctx, x.dtype()));
  const int r = x.rank();
  IntList perm(ctx.attrs().IntsView("perm"));
  if (perm.empty()) {
    for (int i = r - 1; i >= 0; --i) perm.push_back(i);
  }
  if (static_cast<int>(perm.size()) != r) return ctx.Fail("perm length differs from the rank");
  SmallVector<bool, Shape::kMaxRank> seen(r, false);
  Shape out;
  for (int64_t& p : perm) {
    OP_ASSIGN_OR_RETURN(int ax, NormalizeAxis(ctx, p, r));
    if (seen[ax]) return ctx.Fail("perm repeats axis " + std::to_string(ax));
    seen[ax] = true;
    p = ax;
    out.push_back(x.dim(ax));
  }
  OP_ASSIGN_OR_RETURN(Tensor* y, ctx.Output(0, x.dtype(), out));
  if (ctx.infer_only() || !y) return Status::Ok();
  IntList xs = StridesOf(x.shape()), ss(r);
  for (int i = 0; i < r; ++i) ss[i] = xs[perm[i]];
  CopyBox(x.dtype(), y->raw(), x.raw(), out.dims(), StridesOf(out), ss, &ctx.pool());
  return Status::Ok();
}

}  // namespace

OUTPOST_REGISTER_OP(Transpose, "", 1, 25, TransposeKernel);

}  // namespace outpost::kernels::cpu
