// ReverseSequence: reverses the first seq_len[b] steps of each batch entry along the time axis.
#include "cpu/movement.h"

namespace outpost::kernels::cpu {
namespace {

Status ReverseSequenceKernel(KernelContext& ctx) {
  if (!ctx.has_input(0) || !ctx.has_input(1)) return ctx.Fail("missing inputs");
  const Tensor& x = ctx.input(0);
  OP_RETURN_IF_ERROR(CheckStorable(ctx, x.dtype()));
  if (x.rank() < 2) return ctx.Fail("ReverseSequence needs rank >= 2");
  const int64_t time_axis = ctx.attrs().Int("time_axis", 0);
  const int64_t batch_axis = ctx.attrs().Int("batch_axis", 1);
  if (time_axis + batch_axis != 1 || time_axis < 0 || batch_axis < 0)
    return ctx.Fail("time_axis and batch_axis must be 0 and 1");
  OP_ASSIGN_OR_RETURN(Tensor* y, ctx.Output(0, x.dtype(), x.shape()));
  if (ctx.infer_only() || !y) return Status::Ok();
  const Tensor& lens = ctx.input(1);
  const int64_t T = x.dim(static_cast<int>(time_axis)), B = x.dim(static_cast<int>(batch_axis));
  if (!IsInteger(lens.dtype()) || lens.numel() != B)
    return ctx.Fail("sequence_lens needs one length per batch entry");
  const int64_t inner = x.numel() / std::max<int64_t>(1, T * B);
  auto at = [&](int64_t t, int64_t b) { return (time_axis == 0 ? t * B + b : b * T + t) * inner; };
  for (int64_t b = 0; b < B; ++b) {
    const int64_t len = ReadInt(lens, b);
    if (len < 0 || len > T) return ctx.BadInput("sequence length out of range");
    for (int64_t t = 0; t < T; ++t) {
      const int64_t from = t < len ? len - 1 - t : t;
      CopyElems(x.dtype(), ElemPtr(*y, at(t, b)), ElemPtr(x, at(from, b)), inner);
    }
  }
  return Status::Ok();
}

}  // namespace

OUTPOST_REGISTER_OP(ReverseSequence, "", 10, 25, ReverseSequenceKernel);

}  // namespace outpost::kernels::cpu
