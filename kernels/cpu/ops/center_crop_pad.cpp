// CenterCropPad: crops or zero-pads the listed axes to the given sizes around the center.
#include "cpu/movement.h"

namespace outpost::kernels::cpu {
namespace {

Status CenterCropPadKernel(KernelContext& ctx) {
  if (!ctx.has_input(0) || !ctx.has_input(1)) return ctx.Fail("missing inputs");
  const Tensor& x = ctx.input(0);
  OP_RETURN_IF_ERROR(CheckStorable(ctx, x.dtype()));
  if (!ctx.input_known(1)) return ctx.DataDependent();
  OP_ASSIGN_OR_RETURN(auto sizes, IntsInput(ctx, 1));
  const int r = x.rank();
  IntList axes(ctx.attrs().IntsView("axes"));
  if (!ctx.attrs().Has("axes")) {
    for (int k = 0; k < r; ++k) axes.push_back(k);
  }
  if (axes.size() != sizes.size()) return ctx.Fail("shape needs one size per axis");
  Shape out = x.shape();
  IntList src0(r, 0), dst0(r, 0);
  for (size_t i = 0; i < axes.size(); ++i) {
    OP_ASSIGN_OR_RETURN(int ax, NormalizeAxis(ctx, axes[i], r));
    if (sizes[i] < 0) return ctx.BadInput("negative size");
    const int64_t d = x.dim(ax);
    out[ax] = sizes[i];
    if (sizes[i] < d) src0[ax] = (d - sizes[i]) / 2;
    else dst0[ax] = (sizes[i] - d) / 2;
  }
  OP_ASSIGN_OR_RETURN(Tensor* y, ctx.Output(0, x.dtype(), out));
  if (ctx.infer_only() || !y) return Status::Ok();
  FillZero(x.dtype(), y->raw(), y->numel());
  IntList xs = StridesOf(x.shape()), ys = StridesOf(out), dims(r);
  int64_t soff = 0, doff = 0;
  for (int k = 0; k < r; ++k) {
    dims[k] = std::min(x.dim(k), out[k]);
    soff += src0[k] * xs[k];
    doff += dst0[k] * ys[k];
  }
  CopyBox(x.dtype(), ElemPtr(*y, doff), ElemPtr(x, soff), dims, ys, xs, &ctx.pool());
  return Status::Ok();
}

}  // namespace

OUTPOST_REGISTER_OP(CenterCropPad, "", 18, 25, CenterCropPadKernel);

}  // namespace outpost::kernels::cpu
