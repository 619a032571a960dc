// DynamicQuantizeLinear: uint8 quantization of x with scale and zero point from its range.
#include <algorithm>

#include "cpu/quant.h"

namespace outpost::kernels::cpu {
namespace {

Status DynamicQuantizeLinearKernel(KernelContext& ctx) {
  if (!ctx.has_input(0)) return ctx.Fail("missing input x");
  const Tensor& x = ctx.input(0);
  if (x.dtype() != DataType::kFloat)
    return ctx.NotSupported("data type " + std::string(DataTypeName(x.dtype())));
  OP_ASSIGN_OR_RETURN(Tensor * y, ctx.Output(0, DataType::kUInt8, x.shape()));
  OP_ASSIGN_OR_RETURN(Tensor * ys, ctx.Output(1, DataType::kFloat, Shape{}));
  OP_ASSIGN_OR_RETURN(Tensor * yz, ctx.Output(2, DataType::kUInt8, Shape{}));
  if (ctx.infer_only()) return Status::Ok();
  const float* xp = x.data<float>();
  float mx = 0.f, mn = 0.f;
  for (int64_t i = 0; i < x.numel(); ++i) mx = std::max(mx, xp[i]), mn = std::min(mn, xp[i]);
  const float scale = mx == mn ? 1.f : (mx - mn) / 255.f;
  const float zp = static_cast<float>(RoundSat(std::clamp(0.f - mn / scale, 0.f, 255.f), 0, 255));
  if (y)
    for (int64_t i = 0; i < x.numel(); ++i)
      y->data<uint8_t>()[i] =
          static_cast<uint8_t>(RoundSat(static_cast<double>(std::nearbyint(xp[i] / scale)) + zp, 0, 255));
  if (ys) ys->data<float>()[0] = scale;
  if (yz) yz->data<uint8_t>()[0] = static_cast<uint8_t>(zp);
  return Status::Ok();
}

}  // namespace

OUTPOST_REGISTER_OP(DynamicQuantizeLinear, "", 11, 25, DynamicQuantizeLinearKernel);

}  // namespace outpost::kernels::cpu
