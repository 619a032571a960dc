// Conv: N-d convolution (1-3 spatial dims) with groups, strides, dilations, pads/auto_pad, bias.
#include <vector>

#include "cpu/common.h"
#include "cpu/packed.h"
#include "cpu/gemm.h"
#include "outpost/kernels/fusion.h"

namespace outpost::kernels::cpu {
namespace {

template <typename T>
void RunConv(KernelContext& ctx, const ConvGeom& g, int64_t group, Tensor* y) {
  const Tensor& x = ctx.input(0);
  const Tensor& w = ctx.input(1);
  const Tensor* b = ctx.has_input(2) ? &ctx.input(2) : nullptr;
  const FusedClamp clamp = GetFusedClamp(ctx.attrs());
  if constexpr (std::is_same_v<T, float>) {
    if (PackedDepthwiseApplies(g, x.dim(1), w.dim(0), group)) {
      PackedDepthwise(&ctx.pool(), g, x.dim(0), x.dim(1), x.data<float>(), w.data<float>(),
                      b ? b->data<float>() : nullptr, clamp, y->data<float>());
      return;
    }
    if (PackedConvApplies(g, x.dim(1), group)) {
      const int64_t m = w.dim(0), kk = w.numel() / m;
      auto pack = [&] { return PackConvWeights(w.data<float>(), m, group, kk); };
      PackedConvWeights local;
      const PackedConvWeights* pw = &local;
      if (ctx.cache() && ctx.input_constant(1)) {
        pw = &ctx.cache()->Get<PackedConvWeights>(pack);
      } else {
        local = pack();
      }
      PackedConv(&ctx.pool(), g, x.dim(0), x.dim(1), *pw, x.data<float>(),
                 b ? b->data<float>() : nullptr, clamp, y->data<float>());
      return;
    }
  }
  ComputeBuf<T> xb(&x), wb(&w), bb(b), yb(y);
  const auto* xp = ComputeIn<T>(x, &xb);
  const auto* wp = ComputeIn<T>(w, &wb);
  auto* yp = ComputeOut<T>(y, &yb);
  ConvForward(&ctx.pool(), g, x.dim(0), x.dim(1), w.dim(0), group, xp, wp,
              b ? ComputeIn<T>(*b, &bb) : nullptr, yp);
  if (clamp.active) {
    using C = Compute<T>;
    const C lo = static_cast<C>(clamp.lo), hi = static_cast<C>(clamp.hi);
    for (int64_t i = 0; i < y->numel(); ++i) yp[i] = std::min(std::max(yp[i], lo), hi);
  }
  FinishOut<T>(y, yb);
}

Status ConvKernel(KernelContext& ctx) {
  if (!ctx.has_input(0) || !ctx.has_input(1)) return ctx.Fail("Conv needs X and W");
  const Tensor& x = ctx.input(0);
  const Tensor& w = ctx.input(1);
  if (w.dtype() != x.dtype()) return ctx.Fail("X and W types differ");
  int64_t group = 1;
  OP_ASSIGN_OR_RETURN(ConvGeom g, ConvSetup(ctx, x.shape(), w.shape(), &group));
  const int64_t m = w.dim(0);
  if (ctx.has_input(2) && (ctx.input(2).dtype() != x.dtype() || ctx.input(2).numel() != m))
    return ctx.Fail("bias must be [M] of the input type");
  const DataType dt = x.dtype();
  if (dt != DataType::kFloat && dt != DataType::kDouble && dt != DataType::kFloat16 &&
      dt != DataType::kBFloat16)
    return ctx.NotSupported("data type " + std::string(DataTypeName(dt)));
  OP_ASSIGN_OR_RETURN(Tensor * y, ctx.Output(0, dt, ConvOutShape(g, x.dim(0), m)));
  if (ctx.infer_only() || !y || y->numel() == 0) return Status::Ok();
  return DispatchFloat(ctx, dt, [&]<typename T>() {
    RunConv<T>(ctx, g, group, y);
    return Status::Ok();
  });
}

}  // namespace

OUTPOST_REGISTER_OP(Conv, "", 1, 25, ConvKernel);

}  // namespace outpost::kernels::cpu
