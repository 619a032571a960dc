// Slice: starts/ends/axes/steps per axis (attributes before opset 10), with clamping.
#include <algorithm>

#include "cpu/movement.h"

namespace outpost::kernels::cpu {
namespace {

Status SliceKernel(KernelContext& ctx) {
  if (!ctx.has_input(0)) return ctx.Fail("missing input 0");
  const Tensor& x = ctx.input(0);
  OP_RETURN_IF_ERROR(CheckStorable(ctx, x.dtype()));
  const int r = x.rank();
  IntList starts, ends, axes, steps;
  bool has_axes = false, has_steps = false, has_se = false;
  if (ctx.opset() < 10) {
    starts = IntList(ctx.attrs().IntsView("starts"));
    ends = IntList(ctx.attrs().IntsView("ends"));
    axes = IntList(ctx.attrs().IntsView("axes"));
    has_axes = ctx.attrs().Has("axes");
  } else {
    for (int i = 1; i < 5; ++i)
      if (ctx.has_input(i) && !ctx.input_known(i)) return ctx.DataDependent();
    OP_ASSIGN_OR_RETURN(starts, IntsArg(ctx, 10, 1, "starts", &has_se));
    OP_ASSIGN_OR_RETURN(ends, IntsArg(ctx, 10, 2, "ends", &has_se));
    OP_ASSIGN_OR_RETURN(axes, IntsArg(ctx, 10, 3, "axes", &has_axes));
    OP_ASSIGN_OR_RETURN(steps, IntsArg(ctx, 10, 4, "steps", &has_steps));
  }
  if (starts.size() != ends.size()) return ctx.Fail("starts and ends differ in length");
  const size_t n = starts.size();
  if (!has_axes) {
    axes.clear();
    for (size_t i = 0; i < n; ++i) axes.push_back(static_cast<int64_t>(i));
  }
  if (!has_steps) steps.assign(n, 1);
  if (axes.size() != n || steps.size() != n) return ctx.Fail("slice inputs differ in length");
  IntList begin(r, 0), step(r, 1);
  Shape out = x.shape();
  SmallVector<bool, Shape::kMaxRank> seen(r, false);
  for (size_t i = 0; i < n; ++i) {
    OP_ASSIGN_OR_RETURN(int ax, NormalizeAxis(ctx, axes[i], r));
    if (seen[ax]) return ctx.Fail("repeated axis " + std::to_string(axes[i]));
    seen[ax] = true;
    const int64_t d = x.dim(ax), st = steps[i];
    if (st == 0) return ctx.BadInput("step 0");
    int64_t s = starts[i], e = ends[i];
    if (s < 0) s += d;
    if (e < 0) e += d;
    if (st > 0) {
      s = std::clamp<int64_t>(s, 0, d);
      e = std::clamp<int64_t>(e, 0, d);
    } else {
      s = std::clamp<int64_t>(s, 0, d - 1);
      e = std::clamp<int64_t>(e, -1, d - 1);
    }
    int64_t len = st > 0 ? (e - s + st - 1) / st : (s - e + (-st) - 1) / (-st);
    out[ax] = std::max<int64_t>(0, len);
    begin[ax] = s;
    step[ax] = st;
  }
  OP_ASSIGN_OR_RETURN(Tensor* y, ctx.Output(0, x.dtype(), out));
  if (ctx.infer_only() || !y || out.numel() == 0) return Status::Ok();
  IntList xs = StridesOf(x.shape()), ss(r);
  int64_t off = 0;
  for (int k = 0; k < r; ++k) {
    off += begin[k] * xs[k];
    ss[k] = xs[k] * step[k];
  }
  CopyBox(x.dtype(), y->raw(), ElemPtr(x, off), out.dims(), StridesOf(out), ss, &ctx.pool());
  return Status::Ok();
}

}  // namespace

OUTPOST_REGISTER_OP(Slice, "", 1, 25, SliceKernel);

}  // namespace outpost::kernels::cpu
