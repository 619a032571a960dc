// DequantizeLinear: y = (x - zero_point) * scale, per-tensor, per-axis or blocked, from
// int8/uint8/int16/uint16/int32, the sub-byte integers int4/uint4/int2/uint2, the float8 formats
// and float4e2m1 (y = float(x) * scale: their zero point must be 0, or is ignored for float4e2m1,
// as the ONNX reference does).
#include "cpu/minifloat.h"
#include "cpu/quant.h"
#include "cpu/quant_simd.h"

namespace outpost::kernels::cpu {
namespace {

Status DequantizeLinearKernel(KernelContext& ctx) {
  if (!ctx.has_input(0) || !ctx.has_input(1)) return ctx.Fail("DequantizeLinear needs x, x_scale");
  const Tensor& x = ctx.input(0);
  const Tensor& scale = ctx.input(1);
  const Tensor* zp = ctx.has_input(2) ? &ctx.input(2) : nullptr;
  if (!IsFloating(scale.dtype())) return ctx.Fail("x_scale must be floating");
  if (zp && zp->dtype() != x.dtype()) return ctx.Fail("zero point type differs from x");
  DataType out = scale.dtype();
  if (const int64_t odt = ctx.attrs().Int("output_dtype", 0); odt != 0)
    out = static_cast<DataType>(odt);
  if (!IsFloating(out)) return ctx.Fail("output_dtype must be floating");
  OP_ASSIGN_OR_RETURN(QuantIndexer qi, MakeQuantIndexer(ctx, x.shape(), scale.shape()));
  if (const MiniFloatFormat* mf = MiniFloatFormatOf(x.dtype())) {
    if (zp && zp->has_data() && !ctx.infer_only() && x.dtype() != DataType::kFloat4E2M1) {
      const uint8_t* z = static_cast<const uint8_t*>(zp->raw());
      for (int64_t i = 0; i < zp->numel(); ++i)
        if (z[i] != 0)
          return ctx.BadInput("the zero point of a " + std::string(DataTypeName(x.dtype())) +
                              " input must be 0");
    }
    OP_ASSIGN_OR_RETURN(Tensor * y, ctx.Output(0, out, x.shape()));
    if (ctx.infer_only() || !y) return Status::Ok();
    const uint8_t* xp = static_cast<const uint8_t*>(x.raw());
    return DispatchFloat(ctx, out, [&]<typename T>() {
      T* yp = y->data<T>();
      for (int64_t i = 0; i < x.numel(); ++i) {
        const float v = MiniFloatDecode(*mf, xp[i]) * static_cast<float>(ReadDouble(scale, qi(i)));
        yp[i] = FromAcc<T>(static_cast<Acc<T>>(v));
      }
      return Status::Ok();
    });
  }
  // int4 / uint4 / int2 / uint2 are held as int8 / uint8 (dtype.h).
  DataType storage = x.dtype();
  if (storage == DataType::kInt4 || storage == DataType::kInt2) storage = DataType::kInt8;
  if (storage == DataType::kUInt4 || storage == DataType::kUInt2) storage = DataType::kUInt8;
  return DispatchQuant(ctx, storage, true, [&]<typename Q>() -> Status {
    OP_ASSIGN_OR_RETURN(Tensor * y, ctx.Output(0, out, x.shape()));
    if (ctx.infer_only() || !y) return Status::Ok();
    const Q* xp = x.data<Q>();
    // numpy: float32(x) - zero_point stays float32 except for int32 (promoted to float64).
    const bool wide = std::is_same_v<Q, int32_t> && zp;
    if constexpr (sizeof(Q) == 1) {
      // int8/uint8 to float32 with float32 scales, per tensor or per axis: vectorized.
      if (out == DataType::kFloat && scale.dtype() == DataType::kFloat &&
          (qi.mode == QuantIndexer::kTensor || qi.mode == QuantIndexer::kAxis)) {
        float* yp = y->data<float>();
        const float* sp = scale.data<float>();
        const Q* zpp = zp ? zp->data<Q>() : nullptr;
        const bool per_tensor = qi.mode == QuantIndexer::kTensor;
        ForEachQuantRun(ctx.pool(), x.numel(), qi.inner, per_tensor ? 0 : qi.axis_dim,
                        [&](int64_t off, int64_t n, int64_t si) {
                          DequantizeRunF32<Q>(xp + off, n, sp[si],
                                              zpp ? static_cast<float>(zpp[si]) : 0.f, yp + off);
                        });
        return Status::Ok();
      }
    }
    return DispatchFloat(ctx, out, [&]<typename T>() {
      T* yp = y->data<T>();
      for (int64_t i = 0; i < x.numel(); ++i) {
        const int64_t si = qi(i);
        const double z = zp ? static_cast<double>(zp->data<Q>()[si]) : 0.0;
        const double s = ReadDouble(scale, si);
        double v;
        if (wide)
          v = (static_cast<double>(xp[i]) - z) * s;
        else
          v = (static_cast<float>(xp[i]) - static_cast<float>(z)) * static_cast<float>(s);
        yp[i] = FromAcc<T>(static_cast<Acc<T>>(v));
      }
      return Status::Ok();
    });
  });
}

}  // namespace

OUTPOST_REGISTER_OP(DequantizeLinear, "", 10, 25, DequantizeLinearKernel);

}  // namespace outpost::kernels::cpu
