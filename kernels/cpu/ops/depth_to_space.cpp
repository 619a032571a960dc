// DepthToSpace: moves channel blocks into spatial blocks (DCR or CRD order).
#include "cpu/movement.h"

namespace outpost::kernels::cpu {
namespace {

Status DepthToSpaceKernel(KernelContext& ctx) {
  if (!ctx.has_input(0)) return ctx.Fail("missing input 0");
  const Tensor& x = ctx.input(0);
  OP_RETURN_IF_ERROR(CheckStorable(ctx, x.dtype()));
  if (x.rank() != 4) return ctx.Fail("DepthToSpace needs a 4-D input");
  const int64_t b = ctx.attrs().Int("blocksize", 0);
  const std::string mode = ctx.attrs().String("mode", "DCR");
  if (mode != "DCR" && mode != "CRD") return ctx.Fail("unknown mode '" + mode + "'");
  const int64_t N = x.dim(0), C = x.dim(1), H = x.dim(2), W = x.dim(3);
  if (b < 1 || C % (b * b) != 0) return ctx.BadInput("channels not divisible by blocksize^2");
  const int64_t c = C / (b * b);
  OP_ASSIGN_OR_RETURN(Tensor* y, ctx.Output(0, x.dtype(), Shape{N, c, H * b, W * b}));
  if (ctx.infer_only() || !y) return Status::Ok();
  const int64_t hw = H * W;
  // Source strides of (c, b1, b2): DCR reads channel (b1 * b + b2) * c + ci, CRD ci * b * b + ...
  const int64_t sc = mode == "DCR" ? hw : b * b * hw;
  const int64_t sb1 = mode == "DCR" ? b * c * hw : b * hw;
  const int64_t sb2 = mode == "DCR" ? c * hw : hw;
  const int64_t dims[6] = {N, c, H, b, W, b};
  const int64_t ss[6] = {C * hw, sc, W, sb1, 1, sb2};
  const int64_t ds[6] = {c * hw * b * b, hw * b * b, W * b * b, W * b, b, 1};
  CopyBox(x.dtype(), y->raw(), x.raw(), dims, ds, ss, &ctx.pool());
  return Status::Ok();
}

}  // namespace

OUTPOST_REGISTER_OP(DepthToSpace, "", 1, 25, DepthToSpaceKernel);

}  // namespace outpost::kernels::cpu
