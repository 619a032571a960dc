// Size: the element count of the input as an int64 scalar.
#include "cpu/movement.h"

namespace outpost::kernels::cpu {
namespace {

Status SizeKernel(KernelContext& ctx) {
  if (!ctx.has_input(0)) return ctx.Fail("missing input 0");
  OP_ASSIGN_OR_RETURN(Tensor* y, ctx.Output(0, DataType::kInt64, Shape{}));
  if (ctx.infer_only() || !y) return Status::Ok();
  y->data<int64_t>()[0] = ctx.input(0).numel();
  return Status::Ok();
}

}  // namespace

OUTPOST_REGISTER_OP(Size, "", 1, 25, SizeKernel);

}  // namespace outpost::kernels::cpu
