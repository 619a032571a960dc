// SpaceToDepth: moves spatial blocks into channels (the inverse of DepthToSpace in DCR order).
#include "cpu/movement.h"

namespace outpost::kernels::cpu {
namespace {

Status SpaceToDepthKernel(KernelContext& ctx) {
  if (!ctx.has_input(0)) return ctx.Fail("missing input 0");
  const Tensor& x = ctx.input(0);
  OP_RETURN_IF_ERROR(CheckStorable(ctx, x.dtype()));
  if (x.rank() != 4) return ctx.Fail("SpaceToDepth needs a 4-D input");
  const int64_t b = ctx.attrs().Int("blocksize", 0);
  const int64_t N = x.dim(0), C = x.dim(1), H = x.dim(2), W = x.dim(3);
  if (b < 1 || H % b != 0 || W % b != 0)
    return ctx.BadInput("spatial dims not divisible by blocksize");
  const int64_t h = H / b, w = W / b;
  OP_ASSIGN_OR_RETURN(Tensor* y, ctx.Output(0, x.dtype(), Shape{N, C * b * b, h, w}));
  if (ctx.infer_only() || !y) return Status::Ok();
  // Output viewed as [N, b1, b2, C, h, w]; input as [N, C, h, b1, w, b2].
  const int64_t dims[6] = {N, b, b, C, h, w};
  const int64_t ss[6] = {C * H * W, W, 1, H * W, b * W, b};
  const int64_t ds[6] = {C * H * W, b * C * h * w, C * h * w, h * w, w, 1};
  CopyBox(x.dtype(), y->raw(), x.raw(), dims, ds, ss, &ctx.pool());
  return Status::Ok();
}

}  // namespace

OUTPOST_REGISTER_OP(SpaceToDepth, "", 1, 25, SpaceToDepthKernel);

}  // namespace outpost::kernels::cpu
