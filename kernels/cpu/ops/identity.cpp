// Identity: y = x. (Also the pattern every CPU kernel follows.)
#include <cstring>

#include "cpu/common.h"

namespace outpost::kernels::cpu {
namespace {

Status IdentityKernel(KernelContext& ctx) {
  if (!ctx.has_input(0)) return ctx.Fail("missing input 0");
  const Tensor& x = ctx.input(0);
  if (!IsStorable(x.dtype())) return ctx.NotSupported("data type " + std::string(DataTypeName(x.dtype())));
  // 1. Declare outputs (this is all that runs during shape inference).
  OP_ASSIGN_OR_RETURN(Tensor* y, ctx.Output(0, x.dtype(), x.shape()));
  if (ctx.infer_only() || !y) return Status::Ok();
  // 2. Compute.
  if (x.dtype() == DataType::kString) {
    for (int64_t i = 0; i < x.numel(); ++i) y->data<std::string>()[i] = x.data<std::string>()[i];
  } else if (x.nbytes() && y->raw() != x.raw()) {
    std::memcpy(y->raw(), x.raw(), x.nbytes());
  }
  return Status::Ok();
}

}  // namespace

OUTPOST_REGISTER_OP(Identity, "", 1, 25, IdentityKernel);

}  // namespace outpost::kernels::cpu
