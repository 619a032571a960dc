// Shape: the dims of the input as a 1-D int64 tensor (start/end slicing from opset 15).
#include <algorithm>

#include "cpu/movement.h"

namespace outpost::kernels::cpu {
namespace {

Status ShapeKernel(KernelContext& ctx) {
  if (!ctx.has_input(0)) return ctx.Fail("missing input 0");
  const Shape& s = ctx.input(0).shape();
  const int64_t r = s.rank();
  auto clamp = [r](int64_t v) { return std::clamp(v < 0 ? v + r : v, int64_t{0}, r); };
  int64_t start = clamp(ctx.attrs().Int("start", 0));
  int64_t end = ctx.attrs().Has("end") ? clamp(ctx.attrs().Int("end", r)) : r;
  int64_t n = std::max<int64_t>(0, end - start);
  OP_ASSIGN_OR_RETURN(Tensor* y, ctx.Output(0, DataType::kInt64, Shape{n}));
  if (ctx.infer_only() || !y) return Status::Ok();
  for (int64_t i = 0; i < n; ++i) y->data<int64_t>()[i] = s[static_cast<int>(start + i)];
  return Status::Ok();
}

}  // namespace

OUTPOST_REGISTER_OP(Shape, "", 1, 25, ShapeKernel);

}  // namespace outpost::kernels::cpu
