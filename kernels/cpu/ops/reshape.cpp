// Reshape: same data, new shape (0 copies a dim unless allowzero, -1 is inferred).
#include "cpu/movement.h"

namespace outpost::kernels::cpu {
namespace {

Status ReshapeKernel(KernelContext& ctx) {
  if (!ctx.has_input(0)) return ctx.Fail("missing input 0");
  const Tensor& x = ctx.input(0);
  IntList dims;
  if (ctx.opset() < 5) {
    dims = IntList(ctx.attrs().IntsView("shape"));
  } else {
    if (!ctx.has_input(1)) return ctx.Fail("missing shape input");
    if (!ctx.input_known(1)) return ctx.DataDependent();
    OP_ASSIGN_OR_RETURN(dims, IntsInput(ctx, 1));
  }
  const bool allowzero = ctx.attrs().Int("allowzero", 0) != 0;
  int infer = -1;
  int64_t known = 1;
  for (size_t i = 0; i < dims.size(); ++i) {
    if (dims[i] == 0 && !allowzero) {
      if (static_cast<int>(i) >= x.rank()) return ctx.BadInput("shape 0 past the input rank");
      dims[i] = x.dim(static_cast<int>(i));
    }
    if (dims[i] == -1) {
      if (infer >= 0) return ctx.BadInput("more than one -1 in shape");
      infer = static_cast<int>(i);
    } else if (dims[i] < 0) {
      return ctx.BadInput("negative dim " + std::to_string(dims[i]) + " in shape");
    } else {
      known *= dims[i];
    }
  }
  if (infer >= 0) {
    if (known == 0 || x.numel() % known != 0)
      return ctx.BadInput("cannot infer the -1 dim reshaping " + x.shape().ToString());
    dims[infer] = x.numel() / known;
  }
  OP_ASSIGN_OR_RETURN(Shape s, MakeShape(ctx, dims));
  return EmitReshaped(ctx, s);
}

}  // namespace

OUTPOST_REGISTER_OP(Reshape, "", 1, 25, ReshapeKernel);

}  // namespace outpost::kernels::cpu
