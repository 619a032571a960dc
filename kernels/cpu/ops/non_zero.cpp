// NonZero: the coordinates of the non-zero elements, as int64 [rank, count].
#include "cpu/movement.h"

namespace outpost::kernels::cpu {
namespace {

Status NonZeroKernel(KernelContext& ctx) {
  if (!ctx.has_input(0)) return ctx.Fail("missing input 0");
  const Tensor& x = ctx.input(0);
  if (!ctx.input_known(0)) return ctx.DataDependent();
  std::vector<int64_t> hits;
  auto scan = [&]<typename T>() {
    const T* p = x.data<T>();
    for (int64_t i = 0; i < x.numel(); ++i)
      if (static_cast<Acc<T>>(p[i]) != Acc<T>(0)) hits.push_back(i);
    return Status::Ok();
  };
  if (x.dtype() == DataType::kBool) {
    OP_RETURN_IF_ERROR(scan.template operator()<bool>());
  } else {
    OP_RETURN_IF_ERROR(DispatchNumeric(ctx, x.dtype(), scan));
  }
  const int r = x.rank();
  const int64_t n = static_cast<int64_t>(hits.size());
  OP_ASSIGN_OR_RETURN(Tensor* y, ctx.Output(0, DataType::kInt64, Shape{r, n}));
  if (ctx.infer_only() || !y) return Status::Ok();
  int64_t* out = y->data<int64_t>();
  for (int64_t j = 0; j < n; ++j) {
    int64_t rem = hits[j];
    for (int k = r - 1; k >= 0; --k) {
      out[k * n + j] = rem % x.dim(k);
      rem /= x.dim(k);
    }
  }
  return Status::Ok();
}

}  // namespace

OUTPOST_REGISTER_OP(NonZero, "", 9, 25, NonZeroKernel);

}  // namespace outpost::kernels::cpu
