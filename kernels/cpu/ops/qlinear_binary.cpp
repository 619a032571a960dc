// com.microsoft QLinearAdd / QLinearMul: C = quantize(dequantize(A) op dequantize(B)), numpy
// broadcasting, per-tensor scales and zero points, int8 or uint8.
//
// Each step is done in float32 in the order of the DequantizeLinear -> Add/Mul -> QuantizeLinear
// graph it replaces: a = (A - A_zp) * A_scale, b likewise, r = a op b, C = saturate(
// round_half_even(r / C_scale) + C_zp). The QDQ fusion pass (runtime/engine) therefore gives the
// same bits as the unfused graph. (ONNX Runtime precomputes A_scale / C_scale and B_scale /
// C_scale, which can differ from this by one step where a value falls near a rounding tie.)
#include "cpu/quant.h"
#include "cpu/quant_simd.h"

// (A - A_zp) * A_scale + b rounds after the product as the float graph does: the project builds
// with -std=c++20 (no GNU extensions), where GCC does not contract to fused multiply-adds.

namespace outpost::kernels::cpu {
namespace {

struct AddF {
  static constexpr bool kMul = false;
  static float Apply(float a, float b) { return a + b; }
};
struct MulF {
  static constexpr bool kMul = true;
  static float Apply(float a, float b) { return a * b; }
};

// The scalar value of an optional per-tensor scale or zero point input.
Expected<double> Scalar(KernelContext& ctx, int i, double dflt, const char* what) {
  if (!ctx.has_input(i)) return dflt;
  const Tensor& t = ctx.input(i);
  if (t.numel() != 1) return ctx.NotSupported(std::string(what) + " must be a scalar (per tensor)");
  if (!t.has_data()) return dflt;  // inference with a non-constant scale: checked when running
  return IsFloating(t.dtype()) ? ReadDouble(t, 0) : static_cast<double>(ReadInt(t, 0));
}

template <typename Op>
Status QLinearBinaryKernel(KernelContext& ctx) {
  for (int i : {0, 1, 3, 4, 6})
    if (!ctx.has_input(i))
      return ctx.Fail(ctx.node().op_type + " needs A, A_scale, B, B_scale, C_scale");
  const Tensor& a = ctx.input(0);
  const Tensor& b = ctx.input(3);
  if (a.dtype() != b.dtype() || (a.dtype() != DataType::kInt8 && a.dtype() != DataType::kUInt8))
    return ctx.NotSupported("A and B must both be int8 or both uint8, got " +
                            std::string(DataTypeName(a.dtype())) + " and " +
                            std::string(DataTypeName(b.dtype())));
  for (int i : {2, 5, 7})
    if (ctx.has_input(i) && ctx.input(i).dtype() != a.dtype())
      return ctx.Fail("zero point " + std::to_string(i) + " differs in type from A");
  for (int i : {1, 4, 6})
    if (!IsFloating(ctx.input(i).dtype())) return ctx.Fail("scales must be floating");
  const Shape shapes[2] = {a.shape(), b.shape()};
  OP_ASSIGN_OR_RETURN(Shape out, BroadcastShapes(ctx, shapes));
  OP_ASSIGN_OR_RETURN(double as, Scalar(ctx, 1, 1.0, "A_scale"));
  OP_ASSIGN_OR_RETURN(double az, Scalar(ctx, 2, 0.0, "A_zero_point"));
  OP_ASSIGN_OR_RETURN(double bs, Scalar(ctx, 4, 1.0, "B_scale"));
  OP_ASSIGN_OR_RETURN(double bz, Scalar(ctx, 5, 0.0, "B_zero_point"));
  OP_ASSIGN_OR_RETURN(double cs, Scalar(ctx, 6, 1.0, "C_scale"));
  OP_ASSIGN_OR_RETURN(double cz, Scalar(ctx, 7, 0.0, "C_zero_point"));
  return DispatchQuant(ctx, a.dtype(), false, [&]<typename Q>() -> Status {
    OP_ASSIGN_OR_RETURN(Tensor * c, ctx.Output(0, a.dtype(), out));
    if (ctx.infer_only() || !c) return Status::Ok();
    const BroadcastIndexer ia(a.shape(), out), ib(b.shape(), out);
    const Q* ap = a.data<Q>();
    const Q* bp = b.data<Q>();
    Q* cp = c->data<Q>();
    const float fas = static_cast<float>(as), fbs = static_cast<float>(bs);
    const float fcs = static_cast<float>(cs), faz = static_cast<float>(az);
    const float fbz = static_cast<float>(bz);
    if constexpr (sizeof(Q) == 1) {
      if (a.shape() == out && b.shape() == out) {  // no broadcasting (residual adds): vectorized
        const float fcz = static_cast<float>(cz);
        ctx.pool().ParallelFor(c->numel(), 16384, [&](int64_t b0, int64_t e0) {
          QLinearBinaryRunF32<Q, Op::kMul>(ap + b0, bp + b0, e0 - b0, fas, faz, fbs, fbz, fcs, fcz,
                                           cp + b0);
        });
        return Status::Ok();
      }
    }
    for (int64_t i = 0; i < c->numel(); ++i) {
      const float x = (static_cast<float>(ap[ia.Offset(i)]) - faz) * fas;
      const float y = (static_cast<float>(bp[ib.Offset(i)]) - fbz) * fbs;
      const float r = Op::Apply(x, y) / fcs;
      cp[i] = SaturateTo<Q>(std::nearbyint(static_cast<double>(r)) + cz);
    }
    return Status::Ok();
  });
}

}  // namespace

OUTPOST_REGISTER_OP(QLinearAdd, "com.microsoft", 1, 1, QLinearBinaryKernel<AddF>);
OUTPOST_REGISTER_OP(QLinearMul, "com.microsoft", 1, 1, QLinearBinaryKernel<MulF>);

}  // namespace outpost::kernels::cpu
