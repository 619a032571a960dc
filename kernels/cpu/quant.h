// Shared helpers of the quantization kernels: scale/zero-point indexing (per-tensor, per-axis,
// blocked), rounding, saturation and integer-exact operand conversion.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "cpu/common.h"
#include "cpu/gemm.h"
#include "cpu/scratch.h"

namespace outpost::kernels::cpu {

// Maps a flat element index of x to the index of its scale / zero point.
struct QuantIndexer {
  enum Mode { kTensor, kAxis, kBlocked } mode = kTensor;
  int64_t inner = 1, axis_dim = 1, block = 1, nblocks = 1;
  int64_t operator()(int64_t i) const {
    if (mode == kTensor) return 0;
    const int64_t a = (i / inner) % axis_dim;
    if (mode == kAxis) return a;
    return ((i / (inner * axis_dim)) * nblocks + a / block) * inner + i % inner;
  }
};

inline Expected<QuantIndexer> MakeQuantIndexer(KernelContext& ctx, const Shape& x,
                                               const Shape& scale) {
  QuantIndexer q;
  if (scale.numel() == 1 && scale.rank() <= 1) return q;
  OP_ASSIGN_OR_RETURN(int axis, NormalizeAxis(ctx, ctx.attrs().Int("axis", 1), x.rank()));
  const int64_t block = ctx.attrs().Int("block_size", 0);
  q.axis_dim = x[axis];
  for (int i = axis + 1; i < x.rank(); ++i) q.inner *= x[i];
  if (block <= 0) {
    if (scale.rank() != 1 || scale[0] != x[axis])
      return ctx.BadInput("per-axis scale " + scale.ToString() + " does not match axis " +
                          std::to_string(axis) + " of " + x.ToString());
    q.mode = QuantIndexer::kAxis;
    return q;
  }
  q.mode = QuantIndexer::kBlocked;
  q.block = block;
  q.nblocks = (x[axis] + block - 1) / block;
  bool ok = scale.rank() == x.rank();
  for (int i = 0; ok && i < x.rank(); ++i) ok = scale[i] == (i == axis ? q.nblocks : x[i]);
  if (!ok) return ctx.BadInput("blocked scale " + scale.ToString() + " does not match " +
                               x.ToString() + " with block_size " + std::to_string(block));
  return q;
}

// Round half to even, then saturate to [lo, hi].
inline double RoundSat(double v, double lo, double hi) {
  v = std::nearbyint(v);
  return v < lo ? lo : (v > hi ? hi : v);
}

// The requantization of every quantized kernel (the igemm fast paths match it bit for bit):
// min(max(round_half_even(acc * mult + z), lo), hi), one rounding of the product and sum (fma).
// [lo, hi] is the type's range, narrowed by a fused activation clamp.
inline int32_t Requantize(double acc, double mult, double z, int32_t lo, int32_t hi) {
  const double v = std::nearbyint(std::fma(acc, mult, z));
  return static_cast<int32_t>(std::min<double>(std::max<double>(v, lo), hi));
}

template <typename Q>
inline Q SaturateTo(double v) {
  return static_cast<Q>(RoundSat(v, double(std::numeric_limits<Q>::lowest()),
                                 double(std::numeric_limits<Q>::max())));
}

// The integer types the quantized ops take (8 and 16 bit; int32 where allowed).
template <typename F>
Status DispatchQuant(KernelContext& ctx, DataType t, bool allow_int32, F&& f) {
  switch (t) {
    case DataType::kInt8: return f.template operator()<int8_t>();
    case DataType::kUInt8: return f.template operator()<uint8_t>();
    case DataType::kInt16: return f.template operator()<int16_t>();
    case DataType::kUInt16: return f.template operator()<uint16_t>();
    case DataType::kInt32:
      if (allow_int32) return f.template operator()<int32_t>();
      [[fallthrough]];
    default: return ctx.NotSupported("quantized type " + std::string(DataTypeName(t)));
  }
}

// x - zero_point as double (exact), the zero point broadcast numpy-style to x (null: 0).
class CenteredDoubles : public ScratchVec<double> {
 public:
  CenteredDoubles(const Tensor& x, const Tensor* zp) : ScratchVec<double>(x.numel()) {
    const Shape zs = zp ? zp->shape() : Shape{};
    BroadcastIndexer bi(zs, x.shape());
    for (int64_t i = 0; i < x.numel(); ++i)
      (*this)[i] = static_cast<double>(ReadInt(x, i)) -
                   (zp ? static_cast<double>(ReadInt(*zp, bi.Offset(i))) : 0.0);
  }
};

// a * b / c evaluated in the scales' type t, as numpy does (each step rounded to t).
inline double ScaleProduct(DataType t, double a, double b, double c) {
  if (t == DataType::kDouble) return a * b / c;
  auto round = [t](float v) {
    if (t == DataType::kFloat16) return static_cast<float>(Float16(v));
    if (t == DataType::kBFloat16) return static_cast<float>(BFloat16(v));
    return v;
  };
  return round(round(static_cast<float>(a) * static_cast<float>(b)) / static_cast<float>(c));
}

// Per-channel zero point of W [M, ...] (1-D of M elements) viewed as [M, 1, ...] so that it
// broadcasts over the output-channel axis; other zero points are returned as they are.
inline Tensor ChannelZeroPoint(const Tensor& zp, const Tensor& w, int axis) {
  if (zp.rank() != 1 || zp.numel() == 1 || w.rank() < 2 || zp.dim(0) != w.dim(axis)) return zp;
  Shape s;
  s.resize(w.rank() - axis, 1);
  s[0] = zp.dim(0);
  return zp.Reshaped(s);
}

// Integer convolution on zero-point-centred operands, exact in double: out[N, M, ...] as double.
// w_zp may be per output channel. B (int32 [M], optional) is added. Writes
// IntegerConvSize(g, x, w) doubles to `out`.
inline int64_t IntegerConvSize(const ConvGeom& g, const Tensor& x, const Tensor& w) {
  return x.dim(0) * w.dim(0) * g.out_size;
}
inline void IntegerConv(KernelContext& ctx, const ConvGeom& g, int64_t group, const Tensor& x,
                        const Tensor* x_zp, const Tensor& w, const Tensor* w_zp,
                        const Tensor* bias, double* out) {
  CenteredDoubles xd(x, x_zp);
  Tensor wz;
  if (w_zp) wz = ChannelZeroPoint(*w_zp, w, 0);
  CenteredDoubles wd(w, w_zp ? &wz : nullptr);
  ScratchVec<double> bd(bias ? bias->numel() : 0);
  for (size_t i = 0; i < bd.size(); ++i) bd[i] = static_cast<double>(ReadInt(*bias, i));
  ConvForward<double>(&ctx.pool(), g, x.dim(0), x.dim(1), w.dim(0), group, xd.data(), wd.data(),
                      bias ? bd.data() : nullptr, out);
}

}  // namespace outpost::kernels::cpu
