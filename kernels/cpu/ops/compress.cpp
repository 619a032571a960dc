// Compress: keeps the slices along an axis (or the flattened elements) where condition is true.
#include "cpu/movement.h"

namespace outpost::kernels::cpu {
namespace {

Status CompressKernel(KernelContext& ctx) {
  if (!ctx.has_input(0) || !ctx.has_input(1)) return ctx.Fail("missing inputs");
  const Tensor& x = ctx.input(0);
  OP_RETURN_IF_ERROR(CheckStorable(ctx, x.dtype()));
  if (!ctx.input_known(1)) return ctx.DataDependent();
  const Tensor& cond = ctx.input(1);
  if (cond.dtype() != DataType::kBool || cond.rank() != 1)
    return ctx.Fail("condition must be 1-D bool");
  const bool flat = !ctx.attrs().Has("axis");
  int axis = 0;
  if (!flat) {
    OP_ASSIGN_OR_RETURN(axis, NormalizeAxis(ctx, ctx.attrs().Int("axis", 0), x.rank()));
    if (x.rank() == 0) return ctx.Fail("cannot compress a scalar on an axis");
  }
  const int64_t n = flat ? x.numel() : x.dim(axis);
  if (cond.numel() > n) return ctx.BadInput("condition longer than the axis");
  std::vector<int64_t> keep;
  for (int64_t i = 0; i < cond.numel(); ++i)
    if (cond.data<bool>()[i]) keep.push_back(i);
  Shape out = flat ? Shape{static_cast<int64_t>(keep.size())} : x.shape();
  if (!flat) out[axis] = static_cast<int64_t>(keep.size());
  OP_ASSIGN_OR_RETURN(Tensor* y, ctx.Output(0, x.dtype(), out));
  if (ctx.infer_only() || !y) return Status::Ok();
  int64_t outer = 1, after = 1;
  for (int k = 0; !flat && k < axis; ++k) outer *= x.dim(k);
  for (int k = axis + 1; !flat && k < x.rank(); ++k) after *= x.dim(k);
  int64_t pos = 0;
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t j : keep) {
      CopyElems(x.dtype(), ElemPtr(*y, pos), ElemPtr(x, (o * n + j) * after), after);
      pos += after;
    }
  return Status::Ok();
}

}  // namespace

OUTPOST_REGISTER_OP(Compress, "", 9, 25, CompressKernel);

}  // namespace outpost::kernels::cpu
