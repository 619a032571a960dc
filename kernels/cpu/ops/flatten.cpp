// Flatten: reshapes to 2-D [prod(dims[:axis]), prod(dims[axis:])].
#include "cpu/movement.h"

namespace outpost::kernels::cpu {
namespace {

Status FlattenKernel(KernelContext& ctx) {
  if (!ctx.has_input(0)) return ctx.Fail("missing input 0");
  const Shape& s = ctx.input(0).shape();
  int64_t axis = ctx.attrs().Int("axis", 1);
  if (axis < 0) axis += s.rank();
  if (axis < 0 || axis > s.rank()) return ctx.BadInput("axis out of range");
  int64_t outer = 1;
  for (int i = 0; i < axis; ++i) outer *= s[i];
  int64_t inner = 1;
  for (int i = static_cast<int>(axis); i < s.rank(); ++i) inner *= s[i];
  return EmitReshaped(ctx, Shape{outer, inner});
}

}  // namespace

OUTPOST_REGISTER_OP(Flatten, "", 1, 25, FlattenKernel);

}  // namespace outpost::kernels::cpu
