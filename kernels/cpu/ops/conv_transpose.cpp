// ConvTranspose: N-d transposed convolution (GEMM + col2im) with groups, strides, dilations,
// pads/auto_pad, output_padding, output_shape and bias.
#include "cpu/conv_transpose.h"

namespace outpost::kernels::cpu {

Expected<ConvTransposePlan> PlanConvTranspose(KernelContext& ctx, const Shape& xs, const Shape& ws) {
  ConvTransposePlan p;
  const int nd = xs.rank() - 2;
  if (nd < 1 || ws.rank() != xs.rank()) return ctx.Fail("bad ranks");
  const Attributes& at = ctx.attrs();
  const int64_t group = at.Int("group", 1), c = xs[1];
  if (group < 1 || c % group != 0 || ws[0] != c) return ctx.Fail("W must be [C, M/group, k...]");
  const int64_t m = ws[1] * group;
  // Attribute lists as inline IntLists (no heap in steady state).
  auto ints_or = [&](const char* name, int64_t def) {
    std::span<const int64_t> v = at.IntsView(name);
    return v.empty() ? IntList(static_cast<size_t>(nd), def) : IntList(v);
  };
  IntList ks(ws.begin() + 2, ws.end());
  IntList strides = ints_or("strides", 1), dil = ints_or("dilations", 1),
          opad = ints_or("output_padding", 0);
  std::span<const int64_t> os = at.IntsView("output_shape");
  if (static_cast<int>(os.size()) == nd + 2) os = os.subspan(2);
  IntList out_shape(os);
  const std::string ap = at.String("auto_pad", "NOTSET");  // short: no heap
  IntList pads(at.IntsView("pads"));
  if (static_cast<int>(strides.size()) != nd || static_cast<int>(dil.size()) != nd ||
      static_cast<int>(opad.size()) < nd || (!out_shape.empty() && static_cast<int>(out_shape.size()) != nd))
    return ctx.Fail("attribute sizes do not match the spatial dims");
  IntList in(xs.begin() + 2, xs.end()), out(static_cast<size_t>(nd));
  if (pads.empty() && (ap == "SAME_UPPER" || ap == "SAME_LOWER")) {
    pads.assign(2 * nd, 0);
    for (int i = 0; i < nd; ++i) {
      out[i] = out_shape.empty() ? in[i] * strides[i] : out_shape[i];
      const int64_t total =
          strides[i] * (in[i] - 1) + opad[i] + (ks[i] - 1) * dil[i] + 1 - out[i];
      pads[i] = ap == "SAME_UPPER" ? total / 2 : total - total / 2;
      pads[i + nd] = total - pads[i];
    }
  } else {
    if (pads.empty()) pads.assign(2 * nd, 0);
    if (static_cast<int>(pads.size()) != 2 * nd) return ctx.Fail("pads size");
    for (int i = 0; i < nd; ++i)
      out[i] = out_shape.empty() ? strides[i] * (in[i] - 1) + opad[i] + (ks[i] - 1) * dil[i] + 1 -
                                       pads[i] - pads[i + nd]
                                 : out_shape[i];
  }
  for (int i = 0; i < nd; ++i)
    if (out[i] < 0) return ctx.BadInput("negative output size");
  // Geometry of the equivalent convolution: image = our output, positions = our input.
  OP_ASSIGN_OR_RETURN(ConvGeom g, GeomFrom(ctx, out, ks, strides, dil, pads, in));
  Shape yshape{xs[0], m};
  for (int64_t v : out) yshape.push_back(v);
  p.g = g;
  p.c = c;
  p.m = m;
  p.group = group;
  p.yshape = yshape;
  return p;
}

namespace {

Status ConvTransposeKernel(KernelContext& ctx) {
  if (!ctx.has_input(0) || !ctx.has_input(1)) return ctx.Fail("ConvTranspose needs X and W");
  const Tensor& x = ctx.input(0);
  const Tensor& w = ctx.input(1);
  const Tensor* bias = ctx.has_input(2) ? &ctx.input(2) : nullptr;
  const DataType dt = x.dtype();
  if (w.dtype() != dt || (bias && bias->dtype() != dt)) return ctx.Fail("X, W, B types differ");
  if (!IsFloating(dt)) return ctx.NotSupported("data type " + std::string(DataTypeName(dt)));
  OP_ASSIGN_OR_RETURN(ConvTransposePlan p, PlanConvTranspose(ctx, x.shape(), w.shape()));
  const ConvGeom& g = p.g;
  const int64_t c = p.c, m = p.m, group = p.group;
  if (bias && bias->numel() != m) return ctx.Fail("B must have M elements");
  OP_ASSIGN_OR_RETURN(Tensor * y, ctx.Output(0, dt, p.yshape));
  if (ctx.infer_only() || !y || y->numel() == 0) return Status::Ok();
  return DispatchFloat(ctx, dt, [&]<typename T>() {
    ComputeBuf<T> xb(&x), wb(&w), bb(bias), yb(y);
    const auto* xp = ComputeIn<T>(x, &xb);
    const auto* wp = ComputeIn<T>(w, &wb);
    RunConvTranspose(&ctx.pool(), g, x.dim(0), c, m, group, xp, wp,
                     bias ? ComputeIn<T>(*bias, &bb) : nullptr, ComputeOut<T>(y, &yb));
    FinishOut<T>(y, yb);
    return Status::Ok();
  });
}

}  // namespace

OUTPOST_REGISTER_OP(ConvTranspose, "", 1, 25, ConvTransposeKernel);

}  // namespace outpost::kernels::cpu
