// ArgMax and ArgMin: index of the extreme value along one axis (first or last occurrence).
#include "cpu/common.h"

namespace outpost::kernels::cpu {
namespace {

template <bool kMax>
Status ArgKernel(KernelContext& ctx) {
  if (!ctx.has_input(0)) return ctx.Fail("missing input 0");
  const Tensor& x = ctx.input(0);
  const int rank = x.rank();
  OP_ASSIGN_OR_RETURN(int axis, NormalizeAxis(ctx, ctx.attrs().Int("axis", 0), rank));
  const bool keepdims = ctx.attrs().Int("keepdims", 1) != 0;
  const bool last = ctx.opset() >= 12 && ctx.attrs().Int("select_last_index", 0) != 0;
  if (!IsFloating(x.dtype()) && !IsInteger(x.dtype()))
    return ctx.NotSupported("data type " + std::string(DataTypeName(x.dtype())));
  Shape out;
  int64_t outer = 1, n = 1, inner = 1;
  for (int i = 0; i < rank; ++i) {
    if (i < axis) outer *= x.dim(i);
    else if (i > axis) inner *= x.dim(i);
    else n = x.dim(i);
    if (i != axis) out.push_back(x.dim(i));
    else if (keepdims) out.push_back(1);
  }
  if (n == 0 && x.numel() == 0 && outer * inner > 0)
    return ctx.BadInput("ArgMax/ArgMin over an empty axis");
  OP_ASSIGN_OR_RETURN(Tensor* y, ctx.Output(0, DataType::kInt64, out));
  if (ctx.infer_only() || !y) return Status::Ok();
  return DispatchNumeric(ctx, x.dtype(), [&]<typename T>() -> Status {
    const T* px = x.data<T>();
    int64_t* py = y->data<int64_t>();
    auto better = [last](Acc<T> v, Acc<T> b) {
      if constexpr (kMax) return last ? v >= b : v > b;
      else return last ? v <= b : v < b;
    };
    ctx.pool().ParallelFor(outer, std::max<int64_t>(1, 16384 / std::max<int64_t>(1, n * inner)),
                           [&](int64_t ob, int64_t oe) {
      for (int64_t o = ob; o < oe; ++o) {
        for (int64_t i = 0; i < inner; ++i) {
          const T* p = px + o * n * inner + i;
          Acc<T> best = Acc<T>(p[0]);
          int64_t bi = 0;
          for (int64_t k = 1; k < n; ++k) {
            Acc<T> v = Acc<T>(p[k * inner]);
            if (better(v, best)) best = v, bi = k;
          }
          py[o * inner + i] = bi;
        }
      }
    });
    return Status::Ok();
  });
}

}  // namespace

OUTPOST_REGISTER_OP(ArgMax, "", 1, 25, ArgKernel<true>);
OUTPOST_REGISTER_OP(ArgMin, "", 1, 25, ArgKernel<false>);

}  // namespace outpost::kernels::cpu
