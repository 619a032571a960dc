// GatherND: gathers slices of data addressed by index tuples (with leading batch dims).
#include "cpu/movement.h"

namespace outpost::kernels::cpu {
namespace {

Status GatherNDKernel(KernelContext& ctx) {
  if (!ctx.has_input(0) || !ctx.has_input(1)) return ctx.Fail("missing inputs");
  const Tensor& x = ctx.input(0);
  const Tensor& ind = ctx.input(1);
  OP_RETURN_IF_ERROR(CheckStorable(ctx, x.dtype()));
  const int b = static_cast<int>(ctx.attrs().Int("batch_dims", 0));
  const int q = ind.rank();
  if (q < 1 || b < 0 || b >= q || b >= x.rank()) return ctx.Fail("bad indices rank or batch_dims");
  const int64_t k = ind.dim(q - 1);
  if (k > x.rank() - b) return ctx.Fail("index tuples longer than the data rank");
  Shape out;
  if (q - 1 + x.rank() - b - k > Shape::kMaxRank) return ctx.NotSupported("output rank");
  for (int d = 0; d < q - 1; ++d) out.push_back(ind.dim(d));
  for (int d = b + static_cast<int>(k); d < x.rank(); ++d) out.push_back(x.dim(d));
  OP_ASSIGN_OR_RETURN(Tensor* y, ctx.Output(0, x.dtype(), out));
  if (ctx.infer_only() || !y) return Status::Ok();
  int64_t slice = 1;
  ScratchVec<int64_t> offsets(NdOffsetCount(ind));
  OP_RETURN_IF_ERROR(NdOffsets(ctx, x.shape(), ind, b, &slice, {offsets.data(), offsets.size()}));
  for (size_t i = 0; i < offsets.size(); ++i)
    CopyElems(x.dtype(), ElemPtr(*y, i * slice), ElemPtr(x, offsets[i]), slice);
  return Status::Ok();
}

}  // namespace

OUTPOST_REGISTER_OP(GatherND, "", 11, 25, GatherNDKernel);

}  // namespace outpost::kernels::cpu
