// ConstantOfShape: a tensor of the given shape filled with the one-element `value` (float 0).
#include "cpu/movement.h"

namespace outpost::kernels::cpu {
namespace {

Status ConstantOfShapeKernel(KernelContext& ctx) {
  if (!ctx.has_input(0)) return ctx.Fail("missing input 0");
  if (!ctx.input_known(0)) return ctx.DataDependent();
  OP_ASSIGN_OR_RETURN(auto dims, IntsInput(ctx, 0));
  OP_ASSIGN_OR_RETURN(Shape shape, MakeShape(ctx, dims));
  const Tensor* v = ctx.attrs().TensorAttr("value");
  if (v && v->numel() != 1) return ctx.Fail("value must hold one element");
  const DataType t = v ? v->dtype() : DataType::kFloat;
  OP_RETURN_IF_ERROR(CheckStorable(ctx, t));
  OP_ASSIGN_OR_RETURN(Tensor* y, ctx.Output(0, t, shape));
  if (ctx.infer_only() || !y) return Status::Ok();
  const float zero = 0.f;
  FillElems(t, y->raw(), v ? v->raw() : &zero, y->numel());
  return Status::Ok();
}

}  // namespace

OUTPOST_REGISTER_OP(ConstantOfShape, "", 9, 25, ConstantOfShapeKernel);

}  // namespace outpost::kernels::cpu
