// Gather: picks slices along an axis by index (negative indices count from the end).
#include "cpu/movement.h"

namespace outpost::kernels::cpu {
namespace {

Status GatherKernel(KernelContext& ctx) {
  if (!ctx.has_input(0) || !ctx.has_input(1)) return ctx.Fail("missing inputs");
  const Tensor& x = ctx.input(0);
  const Tensor& ind = ctx.input(1);
  OP_RETURN_IF_ERROR(CheckStorable(ctx, x.dtype()));
  if (!IsInteger(ind.dtype())) return ctx.Fail("indices must be integers");
  if (x.rank() == 0) return ctx.Fail("cannot gather from a scalar");
  OP_ASSIGN_OR_RETURN(int axis, NormalizeAxis(ctx, ctx.attrs().Int("axis", 0), x.rank()));
  Shape out;
  if (x.rank() - 1 + ind.rank() > Shape::kMaxRank) return ctx.NotSupported("output rank");
  for (int k = 0; k < axis; ++k) out.push_back(x.dim(k));
  for (int k = 0; k < ind.rank(); ++k) out.push_back(ind.dim(k));
  for (int k = axis + 1; k < x.rank(); ++k) out.push_back(x.dim(k));
  OP_ASSIGN_OR_RETURN(Tensor* y, ctx.Output(0, x.dtype(), out));
  if (ctx.infer_only() || !y) return Status::Ok();
  const int64_t d = x.dim(axis), n = ind.numel();
  IntList idx = ReadInts(ind);
  for (int64_t& v : idx) {
    if (v < -d || v >= d)
      return ctx.BadInput("index " + std::to_string(v) + " out of range for dim " +
                          std::to_string(d));
    if (v < 0) v += d;
  }
  int64_t outer = 1, after = 1;
  for (int k = 0; k < axis; ++k) outer *= x.dim(k);
  for (int k = axis + 1; k < x.rank(); ++k) after *= x.dim(k);
  auto rows = [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      const int64_t o = r / n, j = r % n;
      CopyElems(x.dtype(), ElemPtr(*y, r * after), ElemPtr(x, (o * d + idx[j]) * after), after);
    }
  };
  ParallelRows(ctx, outer * n, after, rows);
  return Status::Ok();
}

}  // namespace

OUTPOST_REGISTER_OP(Gather, "", 1, 25, GatherKernel);

}  // namespace outpost::kernels::cpu
