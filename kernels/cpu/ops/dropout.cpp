// Dropout in inference mode: y = x, mask all true. Training mode is refused unless ratio is 0.
#include <cstring>

#include "cpu/elementwise.h"

namespace outpost::kernels::cpu {
namespace {
using namespace ew;  // NOLINT(build/namespaces)

Status DropoutKernel(KernelContext& ctx) {
  if (!ctx.has_input(0)) return ctx.Fail("missing input 0");
  const Tensor& x = ctx.input(0);
  // Opset 12+: optional ratio and training_mode inputs. Training with a non-zero ratio is random.
  if (ctx.has_input(2)) {
    const Tensor& tm = ctx.input(2);
    if (tm.dtype() != DataType::kBool || tm.numel() != 1)
      return ctx.Fail("training_mode must be a bool scalar");
    bool ratio_zero = ctx.input_known(1) && ReadDouble(ctx.input(1), 0) == 0;
    // A training_mode fed at run time could switch random dropout on: refuse it at load.
    if (!ctx.input_known(2) && ctx.infer_only() && !ratio_zero)
      return ctx.NotSupported(
          "training_mode supplied at run time (random dropout is not supported)");
    if (ctx.input_known(2) && tm.data<bool>()[0]) {
      if (!ctx.has_input(1)) return ctx.NotSupported("training mode (random dropout)");
      if (!ctx.input_known(1)) {
        if (ctx.infer_only()) return ctx.NotSupported("training mode with a computed ratio");
      } else if (ReadDouble(ctx.input(1), 0) != 0) {
        return ctx.NotSupported("training mode with a non-zero ratio (random dropout)");
      }
    }
  }
  // Before opset 10 the mask has the data's type; from 10 it is bool.
  DataType mask_t = ctx.opset() < 10 ? x.dtype() : DataType::kBool;
  return DispatchFloat(ctx, x.dtype(), [&]<typename T>() -> Status {
    OP_ASSIGN_OR_RETURN(Tensor * y, ctx.Output(0, x.dtype(), x.shape()));
    OP_ASSIGN_OR_RETURN(Tensor * mask, ctx.Output(1, mask_t, x.shape()));
    if (ctx.infer_only()) return Status::Ok();
    if (y && x.nbytes()) std::memcpy(y->raw(), x.raw(), x.nbytes());
    if (mask) {
      if (mask_t == DataType::kBool) std::fill_n(mask->data<bool>(), x.numel(), true);
      else std::fill_n(mask->data<T>(), x.numel(), Store<T>(1.0f));
    }
    return Status::Ok();
  });
}

}  // namespace

OUTPOST_REGISTER_OP(Dropout, "", 7, 25, DropoutKernel);

}  // namespace outpost::kernels::cpu
