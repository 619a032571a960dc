// EyeLike: a 2-D tensor like the input with ones on the k-th diagonal, zeros elsewhere.
#include "cpu/movement.h"

namespace outpost::kernels::cpu {
namespace {

Status EyeLikeKernel(KernelContext& ctx) {
  if (!ctx.has_input(0)) return ctx.Fail("missing input 0");
  const Tensor& x = ctx.input(0);
  if (x.rank() != 2) return ctx.Fail("EyeLike needs a 2-D input");
  const DataType t = ctx.attrs().Has("dtype")
                         ? static_cast<DataType>(ctx.attrs().Int("dtype", 1)) : x.dtype();
  if (t == DataType::kString) return ctx.NotSupported("data type string");
  const int64_t k = ctx.attrs().Int("k", 0), rows = x.dim(0), cols = x.dim(1);
  auto body = [&]<typename T>() -> Status {
    OP_ASSIGN_OR_RETURN(Tensor* y, ctx.Output(0, t, x.shape()));
    if (ctx.infer_only() || !y) return Status::Ok();
    T* out = y->data<T>();
    std::fill_n(out, rows * cols, T(0));
    for (int64_t i = 0; i < rows; ++i)
      if (i + k >= 0 && i + k < cols) out[i * cols + i + k] = T(1);
    return Status::Ok();
  };
  if (t == DataType::kBool) return body.template operator()<bool>();
  return DispatchNumeric(ctx, t, body);
}

}  // namespace

OUTPOST_REGISTER_OP(EyeLike, "", 9, 25, EyeLikeKernel);

}  // namespace outpost::kernels::cpu
