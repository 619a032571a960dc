// OneHot: a new axis of length depth holding values[1] at each index, values[0] elsewhere.
#include <cmath>

#include "cpu/movement.h"

namespace outpost::kernels::cpu {
namespace {

Status OneHotKernel(KernelContext& ctx) {
  for (int i = 0; i < 3; ++i)
    if (!ctx.has_input(i)) return ctx.Fail("missing input " + std::to_string(i));
  const Tensor& ind = ctx.input(0);
  const Tensor& vals = ctx.input(2);
  OP_RETURN_IF_ERROR(CheckStorable(ctx, vals.dtype()));
  if (vals.numel() != 2 && ctx.input_known(2)) return ctx.Fail("values must hold two elements");
  if (!ctx.input_known(1)) return ctx.DataDependent();
  if (ctx.input(1).numel() != 1) return ctx.Fail("depth must be a scalar");
  for (int i = 0; i < 2; ++i) {
    const DataType t = ctx.input(i).dtype();
    if (!IsInteger(t) && !IsFloating(t)) return ctx.Fail("indices and depth must be numeric");
  }
  const int64_t depth = static_cast<int64_t>(ReadDouble(ctx.input(1), 0));
  if (depth < 1) return ctx.BadInput("depth must be positive");
  const int r = ind.rank() + 1;
  if (r > Shape::kMaxRank) return ctx.NotSupported("output rank");
  OP_ASSIGN_OR_RETURN(int axis, NormalizeAxis(ctx, ctx.attrs().Int("axis", -1), r));
  Shape out;
  for (int k = 0, j = 0; k < r; ++k) out.push_back(k == axis ? depth : ind.dim(j++));
  OP_ASSIGN_OR_RETURN(Tensor* y, ctx.Output(0, vals.dtype(), out));
  if (ctx.infer_only() || !y) return Status::Ok();
  int64_t outer = 1, after = 1;
  for (int k = 0; k < axis; ++k) outer *= out[k];
  for (int k = axis + 1; k < r; ++k) after *= out[k];
  FillElems(vals.dtype(), y->raw(), vals.raw(), y->numel());
  for (int64_t o = 0; o < outer; ++o) {
    for (int64_t a = 0; a < after; ++a) {
      int64_t v = ReadInt(ind, o * after + a);
      if (v < 0) v += depth;
      if (v < 0 || v >= depth) continue;
      CopyElems(vals.dtype(), ElemPtr(*y, (o * depth + v) * after + a), ElemPtr(vals, 1), 1);
    }
  }
  return Status::Ok();
}

}  // namespace

OUTPOST_REGISTER_OP(OneHot, "", 9, 25, OneHotKernel);

}  // namespace outpost::kernels::cpu
