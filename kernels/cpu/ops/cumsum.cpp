// CumSum and CumProd: running sum/product along an axis (exclusive and reverse variants).
#include "cpu/movement.h"

namespace outpost::kernels::cpu {
namespace {

template <bool kProd>
Status CumulativeKernel(KernelContext& ctx) {
  if (!ctx.has_input(0) || !ctx.has_input(1)) return ctx.Fail("missing inputs");
  const Tensor& x = ctx.input(0);
  OP_ASSIGN_OR_RETURN(Tensor* y, ctx.Output(0, x.dtype(), x.shape()));
  if (!IsInteger(x.dtype()) && !IsFloating(x.dtype()))
    return ctx.NotSupported("data type " + std::string(DataTypeName(x.dtype())));
  if (ctx.infer_only() || !y) return Status::Ok();
  const Tensor& ax = ctx.input(1);
  if (ax.numel() != 1 || !IsInteger(ax.dtype())) return ctx.Fail("axis must be one integer");
  if (x.rank() == 0) return ctx.Fail("CumSum needs rank >= 1");
  OP_ASSIGN_OR_RETURN(int axis, NormalizeAxis(ctx, ReadInt(ax, 0), x.rank()));
  const bool exclusive = ctx.attrs().Int("exclusive", 0) != 0;
  const bool reverse = ctx.attrs().Int("reverse", 0) != 0;
  int64_t outer = 1, after = 1;
  const int64_t n = x.dim(axis);
  for (int d = 0; d < axis; ++d) outer *= x.dim(d);
  for (int d = axis + 1; d < x.rank(); ++d) after *= x.dim(d);
  return DispatchNumeric(ctx, x.dtype(), [&]<typename T>() {
    const T* src = x.data<T>();
    T* dst = y->data<T>();
    for (int64_t o = 0; o < outer; ++o) {
      for (int64_t a = 0; a < after; ++a) {
        Acc<T> acc = kProd ? Acc<T>(1) : Acc<T>(0);
        for (int64_t s = 0; s < n; ++s) {
          const int64_t j = reverse ? n - 1 - s : s;
          const int64_t at = (o * n + j) * after + a;
          const Acc<T> v = src[at];
          if (!exclusive) acc = kProd ? acc * v : acc + v;
          dst[at] = FromAcc<T>(acc);
          if (exclusive) acc = kProd ? acc * v : acc + v;
        }
      }
    }
    return Status::Ok();
  });
}

}  // namespace

OUTPOST_REGISTER_OP(CumSum, "", 11, 25, CumulativeKernel<false>);
// CumProd first appears in opset 26; it is registered so that it runs once that opset is accepted.
OUTPOST_REGISTER_OP(CumProd, "", 26, 26, CumulativeKernel<true>);

}  // namespace outpost::kernels::cpu
