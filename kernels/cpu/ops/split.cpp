// Split: cuts the input into parts along an axis (sizes given, equal, or num_outputs).
#include "cpu/movement.h"

namespace outpost::kernels::cpu {
namespace {

Status SplitKernel(KernelContext& ctx) {
  if (!ctx.has_input(0)) return ctx.Fail("missing input 0");
  const Tensor& x = ctx.input(0);
  OP_RETURN_IF_ERROR(CheckStorable(ctx, x.dtype()));
  OP_ASSIGN_OR_RETURN(int axis, NormalizeAxis(ctx, ctx.attrs().Int("axis", 0), x.rank()));
  if (x.rank() == 0) return ctx.Fail("cannot split a scalar");
  const int64_t dim = x.dim(axis);
  const int n = ctx.num_outputs();
  bool present = false;
  IntList split;
  if (ctx.opset() < 2 && ctx.has_input(1)) {
    if (!ctx.input_known(1)) return ctx.DataDependent();
    OP_ASSIGN_OR_RETURN(split, IntsInput(ctx, 1));
    present = true;
  } else {
    OP_ASSIGN_OR_RETURN(split, IntsArg(ctx, 13, 1, "split", &present));
  }
  if (present && !split.empty()) {
    if (static_cast<int>(split.size()) != n) return ctx.Fail("split has a size per output");
    int64_t sum = 0;
    for (int64_t v : split) {
      if (v < 0) return ctx.BadInput("negative split size");
      sum += v;
    }
    if (sum != dim) return ctx.BadInput("split sizes do not add up to dim " +
                                        std::to_string(dim));
  } else if (ctx.opset() >= 18 && ctx.attrs().Has("num_outputs")) {
    const int64_t parts = ctx.attrs().Int("num_outputs", n);
    if (parts != n || parts < 1) return ctx.Fail("num_outputs differs from the outputs");
    const int64_t chunk = (dim + parts - 1) / parts;
    for (int64_t i = 0, left = dim; i < parts; ++i, left -= chunk)
      split.push_back(std::max<int64_t>(0, std::min(chunk, left)));
  } else {
    if (n < 1 || dim % n != 0)
      return ctx.BadInput("dim " + std::to_string(dim) + " does not split evenly");
    split.assign(n, dim / n);
  }
  int64_t outer = 1, after = 1;
  for (int k = 0; k < axis; ++k) outer *= x.dim(k);
  for (int k = axis + 1; k < x.rank(); ++k) after *= x.dim(k);
  int64_t pos = 0;
  for (int i = 0; i < n; ++i) {
    Shape s = x.shape();
    s[axis] = split[i];
    OP_ASSIGN_OR_RETURN(Tensor* y, ctx.Output(i, x.dtype(), s));
    const int64_t inner = split[i] * after;
    if (!ctx.infer_only() && y) {
      const int64_t dims[2] = {outer, inner}, ds[2] = {inner, 1}, ss[2] = {dim * after, 1};
      CopyBox(x.dtype(), y->raw(), ElemPtr(x, pos), dims, ds, ss, &ctx.pool());
    }
    pos += inner;
  }
  return Status::Ok();
}

}  // namespace

OUTPOST_REGISTER_OP(Split, "", 1, 25, SplitKernel);

}  // namespace outpost::kernels::cpu
