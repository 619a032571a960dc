// Tile: repeats the input along each dim (a broadcast copy over interleaved dims).
#include "cpu/movement.h"

namespace outpost::kernels::cpu {
namespace {

Status TileKernel(KernelContext& ctx) {
  if (!ctx.has_input(0) || !ctx.has_input(1)) return ctx.Fail("missing inputs");
  const Tensor& x = ctx.input(0);
  OP_RETURN_IF_ERROR(CheckStorable(ctx, x.dtype()));
  if (!ctx.input_known(1)) return ctx.DataDependent();
  OP_ASSIGN_OR_RETURN(auto reps, IntsInput(ctx, 1));
  const int r = x.rank();
  if (static_cast<int>(reps.size()) != r) return ctx.Fail("repeats length differs from the rank");
  Shape out;
  for (int k = 0; k < r; ++k) {
    if (reps[k] < 0) return ctx.BadInput("negative repeat");
    out.push_back(x.dim(k) * reps[k]);
  }
  OP_ASSIGN_OR_RETURN(Tensor* y, ctx.Output(0, x.dtype(), out));
  if (ctx.infer_only() || !y) return Status::Ok();
  IntList xs = StridesOf(x.shape()), os = StridesOf(out), dims, ds, ss;
  for (int k = 0; k < r; ++k) {
    dims.push_back(reps[k]);
    dims.push_back(x.dim(k));
    ds.push_back(x.dim(k) * os[k]);
    ds.push_back(os[k]);
    ss.push_back(0);
    ss.push_back(xs[k]);
  }
  CopyBox(x.dtype(), y->raw(), x.raw(), dims, ds, ss, &ctx.pool());
  return Status::Ok();
}

}  // namespace

OUTPOST_REGISTER_OP(Tile, "", 6, 25, TileKernel);

}  // namespace outpost::kernels::cpu
