// Trilu: keeps the upper (j - i >= k) or lower (j - i <= k) triangle of the last two dims.
#include "cpu/movement.h"

namespace outpost::kernels::cpu {
namespace {

Status TriluKernel(KernelContext& ctx) {
  if (!ctx.has_input(0)) return ctx.Fail("missing input 0");
  const Tensor& x = ctx.input(0);
  OP_RETURN_IF_ERROR(CheckStorable(ctx, x.dtype()));
  if (x.rank() < 2) return ctx.Fail("Trilu needs rank >= 2");
  int64_t k = 0;
  if (ctx.has_input(1) && !ctx.infer_only()) {
    if (ctx.input(1).numel() != 1 || !IsInteger(ctx.input(1).dtype()))
      return ctx.Fail("k must be an integer scalar");
    k = ReadInt(ctx.input(1), 0);
  }
  const bool upper = ctx.attrs().Int("upper", 1) != 0;
  OP_ASSIGN_OR_RETURN(Tensor* y, ctx.Output(0, x.dtype(), x.shape()));
  if (ctx.infer_only() || !y) return Status::Ok();
  const int64_t rows = x.dim(x.rank() - 2), cols = x.dim(x.rank() - 1);
  const int64_t mats = rows * cols != 0 ? x.numel() / (rows * cols) : 0;
  return DispatchStorage(ctx, x.dtype(), [&]<typename S>() {
    const S* src = x.data<S>();
    S* dst = y->data<S>();
    for (int64_t m = 0; m < mats; ++m) {
      for (int64_t i = 0; i < rows; ++i) {
        const int64_t base = (m * rows + i) * cols;
        for (int64_t j = 0; j < cols; ++j) {
          const bool keep = upper ? j - i >= k : j - i <= k;
          dst[base + j] = keep ? src[base + j] : S{};
        }
      }
    }
    return Status::Ok();
  });
}

}  // namespace

OUTPOST_REGISTER_OP(Trilu, "", 14, 25, TriluKernel);

}  // namespace outpost::kernels::cpu
