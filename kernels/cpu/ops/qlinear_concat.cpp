// com.microsoft QLinearConcat: inputs Y_scale, Y_zero_point, then (X_i, X_i_scale,
// X_i_zero_point) triples; Y = concat over `axis` of quantize(dequantize(X_i)) with per-tensor
// scales and zero points, int8 or uint8. In float32, as DequantizeLinear -> Concat ->
// QuantizeLinear computes it, so the fused QDQ pattern gives the unfused graph's bits; an input
// whose scale and zero point equal Y's is copied as it is (the same value that formula gives).
#include "cpu/quant.h"

namespace outpost::kernels::cpu {
namespace {

Status QLinearConcatKernel(KernelContext& ctx) {
  const int n = (ctx.num_inputs() - 2) / 3;
  if (ctx.num_inputs() < 5 || (ctx.num_inputs() - 2) % 3 != 0)
    return ctx.Fail(
        "QLinearConcat takes Y_scale, Y_zero_point and (X, X_scale, X_zero_point) triples");
  if (!ctx.attrs().Has("axis")) return ctx.Fail("missing axis");
  for (int i = 0; i < ctx.num_inputs(); ++i)
    if (!ctx.has_input(i)) return ctx.Fail("missing input " + std::to_string(i));
  const Tensor& x0 = ctx.input(2);
  const DataType dt = x0.dtype();
  if (dt != DataType::kInt8 && dt != DataType::kUInt8)
    return ctx.NotSupported("data type " + std::string(DataTypeName(dt)));
  if (ctx.input(1).dtype() != dt) return ctx.Fail("Y_zero_point differs in type from the inputs");
  const int r = x0.rank();
  if (r == 0) return ctx.Fail("cannot concatenate scalars");
  OP_ASSIGN_OR_RETURN(int axis, NormalizeAxis(ctx, ctx.attrs().Int("axis", 0), r));
  Shape out = x0.shape();
  out[axis] = 0;
  for (int j = 0; j < n; ++j) {
    const Tensor& x = ctx.input(2 + 3 * j);
    if (x.dtype() != dt || ctx.input(4 + 3 * j).dtype() != dt)
      return ctx.Fail("input " + std::to_string(j) + " or its zero point differs in type");
    if (!IsFloating(ctx.input(3 + 3 * j).dtype())) return ctx.Fail("scales must be floating");
    if (ctx.input(3 + 3 * j).numel() != 1 || ctx.input(4 + 3 * j).numel() != 1)
      return ctx.NotSupported("per-axis scales (only per-tensor)");
    bool ok = x.rank() == r;
    for (int k = 0; ok && k < r; ++k) ok = k == axis || x.dim(k) == out[k];
    if (!ok)
      return ctx.BadInput("cannot concatenate " + x0.shape().ToString() + " and " +
                          x.shape().ToString() + " on axis " + std::to_string(axis));
    out[axis] += x.dim(axis);
  }
  if (ctx.input(0).numel() != 1 || ctx.input(1).numel() != 1)
    return ctx.NotSupported("per-axis output scale (only per-tensor)");
  return DispatchQuant(ctx, dt, false, [&]<typename Q>() -> Status {
    OP_ASSIGN_OR_RETURN(Tensor * y, ctx.Output(0, dt, out));
    if (ctx.infer_only() || !y) return Status::Ok();
    const float ys = static_cast<float>(ReadDouble(ctx.input(0), 0));
    const double yz = static_cast<double>(ReadInt(ctx.input(1), 0));
    int64_t outer = 1, after = 1;
    for (int k = 0; k < axis; ++k) outer *= out[k];
    for (int k = axis + 1; k < r; ++k) after *= out[k];
    const int64_t row = out[axis] * after;
    int64_t pos = 0;
    for (int j = 0; j < n; ++j) {
      const Tensor& x = ctx.input(2 + 3 * j);
      const float xs = static_cast<float>(ReadDouble(ctx.input(3 + 3 * j), 0));
      const int64_t xz = ReadInt(ctx.input(4 + 3 * j), 0);
      const bool same = xs == ys && static_cast<double>(xz) == yz;
      const int64_t inner = x.dim(axis) * after;
      const Q* xp = x.data<Q>();
      for (int64_t o = 0; o < outer; ++o) {
        Q* dst = y->data<Q>() + o * row + pos;
        const Q* src = xp + o * inner;
        for (int64_t i = 0; i < inner; ++i) {
          if (same) {
            dst[i] = src[i];
          } else {
            const float f = (static_cast<float>(src[i]) - static_cast<float>(xz)) * xs / ys;
            dst[i] = SaturateTo<Q>(std::nearbyint(static_cast<double>(f)) + yz);
          }
        }
      }
      pos += inner;
    }
    return Status::Ok();
  });
}

}  // namespace

OUTPOST_REGISTER_OP(QLinearConcat, "com.microsoft", 1, 1, QLinearConcatKernel);

}  // namespace outpost::kernels::cpu
