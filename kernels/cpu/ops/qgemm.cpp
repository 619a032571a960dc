// com.microsoft QGemm (ONNX Runtime contrib op): Y = alpha * a_scale * b_scale *
// ((A - a_zp) @ (B - b_zp) + C) with op(A) / op(B) transposed per transA / transB, C an int32
// bias broadcast to [M, N] (in the accumulator's scale). With y_zero_point: requantized to its
// type with y_scale (round half to even, saturation, the fused activation clamp); without:
// float. b_scale / b_zero_point may be per column ([N]). Fast path: igemm (cpu/igemm.h), B
// packed once per prepared node when constant; the double-precision reference below is its
// oracle.
#include <cmath>

#include "cpu/igemm.h"
#include "cpu/quant.h"
#include "cpu/scratch.h"
#include "outpost/kernels/fusion.h"

namespace outpost::kernels::cpu {
namespace {

bool Is8Bit(DataType t) { return t == DataType::kInt8 || t == DataType::kUInt8; }

struct QGemmSetup {
  const Tensor *a = nullptr, *b = nullptr, *azp = nullptr, *bzp = nullptr, *c = nullptr,
               *yzp = nullptr;
  int64_t m = 0, n = 0, k = 0;
  bool ta = false, tb = false;
  // C broadcast to [M, N]: element (i, j) at c_rs * i + c_cs * j.
  int64_t c_rs = 0, c_cs = 0;
};

// Element (i, q) of op(A) and (q, j) of op(B), as stored.
inline int64_t AIndex(const QGemmSetup& s, int64_t i, int64_t q) {
  return s.ta ? q * s.m + i : i * s.k + q;
}
inline int64_t BIndex(const QGemmSetup& s, int64_t q, int64_t j) {
  return s.tb ? j * s.k + q : q * s.n + j;
}

// The reference: exact accumulation in double, then the shared requantization.
void QGemmReference(const QGemmSetup& s, const double* mult, int64_t mult_cs, int32_t qlo,
                    int32_t qhi, Tensor* y) {
  const Tensor &a = *s.a, &b = *s.b;
  const Tensor *azp = s.azp, *bzp = s.bzp, *c = s.c, *yzp = s.yzp;
  const double az = azp ? static_cast<double>(ReadInt(*azp, 0)) : 0.0;
  const double z = yzp ? static_cast<double>(ReadInt(*yzp, 0)) : 0.0;
  for (int64_t i = 0; i < s.m; ++i)
    for (int64_t j = 0; j < s.n; ++j) {
      const double bz = bzp ? static_cast<double>(ReadInt(*bzp, bzp->numel() == 1 ? 0 : j)) : 0.0;
      double acc = 0;
      for (int64_t q = 0; q < s.k; ++q)
        acc += (static_cast<double>(ReadInt(a, AIndex(s, i, q))) - az) *
               (static_cast<double>(ReadInt(b, BIndex(s, q, j))) - bz);
      if (c) acc += static_cast<double>(c->data<int32_t>()[i * s.c_rs + j * s.c_cs]);
      const double m = mult[j * mult_cs];
      const int64_t o = i * s.n + j;
      if (!yzp)
        y->data<float>()[o] = static_cast<float>(acc * m);
      else if (y->dtype() == DataType::kUInt8)
        y->data<uint8_t>()[o] = static_cast<uint8_t>(Requantize(acc, m, z, qlo, qhi));
      else
        y->data<int8_t>()[o] = static_cast<int8_t>(Requantize(acc, m, z, qlo, qhi));
    }
}

void QGemmFast(KernelContext& ctx, const QGemmSetup& s, const double* mult, int64_t mult_cs,
               int32_t qlo, int32_t qhi, Tensor* y) {
  const Tensor &a = *s.a, &b = *s.b;
  const Tensor *azp = s.azp, *bzp = s.bzp, *c = s.c, *yzp = s.yzp;
  const bool a_signed = a.dtype() == DataType::kInt8, b_signed = b.dtype() == DataType::kInt8;
  auto pack_to = [&](IgemmPacked* p, uint8_t* data, int32_t* sums) {
    IgemmPackTo(p, data, sums, false, b.data<uint8_t>(), s.n, s.k, s.tb ? s.k : 1, s.tb ? 1 : s.n,
                b_signed, false);
  };
  const bool cached = ctx.cache() && ctx.input_constant(3);
  ScratchVec<uint8_t> data(cached ? 0 : static_cast<size_t>(IgemmPackedBytes(false, s.n, s.k)));
  ScratchVec<int32_t> sums(cached ? 0 : static_cast<size_t>(IgemmPackedSums(false, s.n)));
  IgemmPacked local;
  const IgemmPacked* pb = &local;
  if (cached) {
    pb = &ctx.cache()->Get<IgemmPacked>([&] {
      IgemmPacked p;
      p.own_data.resize(static_cast<size_t>(IgemmPackedBytes(false, s.n, s.k)));
      p.own_sums.resize(static_cast<size_t>(IgemmPackedSums(false, s.n)));
      pack_to(&p, p.own_data.data(), p.own_sums.data());
      return p;
    });
  } else {
    pack_to(&local, data.data(), sums.data());
  }
  // op(A) row-major: A itself, or its transpose in scratch.
  ScratchVec<uint8_t> at(s.ta ? static_cast<size_t>(s.m * s.k) : 0);
  const uint8_t* ap = a.data<uint8_t>();
  if (s.ta) {
    for (int64_t i = 0; i < s.m; ++i)
      for (int64_t q = 0; q < s.k; ++q) at[i * s.k + q] = ap[q * s.m + i];
    ap = at.data();
  }
  const int32_t rz =
      StoredZeroPoint(azp ? static_cast<int32_t>(ReadInt(*azp, 0)) : 0, a_signed, true);
  ScratchVec<int32_t> vz(bzp && bzp->numel() > 1 ? s.n : 1);
  for (size_t j = 0; j < vz.size(); ++j)
    vz[j] = StoredZeroPoint(bzp ? static_cast<int32_t>(ReadInt(*bzp, j)) : 0, b_signed, false);
  IgemmEpilogue ep;
  ep.kind = !yzp                             ? IgemmEpilogue::kFloat
            : y->dtype() == DataType::kUInt8 ? IgemmEpilogue::kU8
                                             : IgemmEpilogue::kS8;
  ep.y = y->raw();
  ep.ldy = s.n;
  ep.mult = mult;
  ep.mult_cs = mult_cs;
  ep.bias = c ? c->data<int32_t>() : nullptr;
  ep.bias_rs = s.c_rs;
  ep.bias_cs = s.c_cs;
  ep.z = yzp ? static_cast<double>(ReadInt(*yzp, 0)) : 0.0;
  ep.qlo = qlo;
  ep.qhi = qhi;
  IgemmRowsByPacked(&ctx.pool(), s.m, ap, s.k, a_signed, *pb,
                    IgemmZeroPoints{&rz, 0, vz.data(), vz.size() > 1 ? 1 : 0}, ep);
}

Status QGemmKernel(KernelContext& ctx) {
  for (int i : {0, 1, 3, 4})
    if (!ctx.has_input(i)) return ctx.Fail("QGemm needs A, a_scale, B, b_scale");
  const Tensor& a = ctx.input(0);
  const Tensor& b = ctx.input(3);
  const Tensor& as = ctx.input(1);
  const Tensor& bs = ctx.input(4);
  const Tensor* azp = ctx.has_input(2) ? &ctx.input(2) : nullptr;
  const Tensor* bzp = ctx.has_input(5) ? &ctx.input(5) : nullptr;
  const Tensor* c = ctx.has_input(6) ? &ctx.input(6) : nullptr;
  const Tensor* ys = ctx.has_input(7) ? &ctx.input(7) : nullptr;
  const Tensor* yzp = ctx.has_input(8) ? &ctx.input(8) : nullptr;
  if (!Is8Bit(a.dtype()) || !Is8Bit(b.dtype()))
    return ctx.NotSupported("QGemm types " + std::string(DataTypeName(a.dtype())) + ", " +
                            std::string(DataTypeName(b.dtype())));
  if (a.rank() != 2 || b.rank() != 2) return ctx.Fail("QGemm A and B must be 2-D");
  QGemmSetup s{&a, &b, azp, bzp, c, yzp};
  s.ta = ctx.attrs().Int("transA", 0) != 0;
  s.tb = ctx.attrs().Int("transB", 0) != 0;
  s.m = s.ta ? a.dim(1) : a.dim(0);
  s.k = s.ta ? a.dim(0) : a.dim(1);
  s.n = s.tb ? b.dim(0) : b.dim(1);
  if ((s.tb ? b.dim(1) : b.dim(0)) != s.k)
    return ctx.Fail("QGemm inner dimensions differ: " + a.shape().ToString() + ", " +
                    b.shape().ToString());
  if (as.numel() != 1 || (azp && azp->numel() != 1) || (ys && ys->numel() != 1) ||
      (yzp && yzp->numel() != 1))
    return ctx.Fail("QGemm a_scale, a_zero_point, y_scale, y_zero_point must be one value");
  if (bs.numel() != 1 && bs.numel() != s.n) return ctx.Fail("QGemm b_scale must be [] or [N]");
  if (bzp && bzp->numel() != 1 && bzp->numel() != s.n)
    return ctx.Fail("QGemm b_zero_point must be [] or [N]");
  if (azp && azp->dtype() != a.dtype()) return ctx.Fail("QGemm a_zero_point type differs from A");
  if (bzp && bzp->dtype() != b.dtype()) return ctx.Fail("QGemm b_zero_point type differs from B");
  if (c) {
    const Shape& cs = c->shape();
    if (c->dtype() != DataType::kInt32) return ctx.Fail("QGemm C must be int32");
    if (c->numel() == 1) {
    } else if (cs.rank() == 1 && cs[0] == s.n) {
      s.c_cs = 1;
    } else if (cs.rank() == 2 && cs[0] == 1 && cs[1] == s.n) {
      s.c_cs = 1;
    } else if (cs.rank() == 2 && cs[0] == s.m && cs[1] == 1) {
      s.c_rs = 1;
    } else if (cs.rank() == 2 && cs[0] == s.m && cs[1] == s.n) {
      s.c_rs = s.n, s.c_cs = 1;
    } else {
      return ctx.Fail("QGemm C " + cs.ToString() + " does not broadcast to [M, N]");
    }
  }
  const DataType out = yzp ? yzp->dtype() : DataType::kFloat;
  if (yzp && !Is8Bit(out))
    return ctx.NotSupported("QGemm output type " + std::string(DataTypeName(out)));
  OP_ASSIGN_OR_RETURN(Tensor * y, ctx.Output(0, out, Shape{s.m, s.n}));
  if (ctx.infer_only() || !y || y->numel() == 0) return Status::Ok();
  // Output scale per column, in float as ONNX Runtime computes it: alpha * a_scale * b_scale
  // (/ y_scale when given).
  const float alpha = ctx.attrs().Float("alpha", 1.f);
  const int64_t mult_cs = bs.numel() == 1 ? 0 : 1;
  ScratchVec<double> mult(bs.numel());
  bool finite = true;
  for (int64_t j = 0; j < bs.numel(); ++j) {
    float v = alpha * static_cast<float>(ReadDouble(as, 0)) * static_cast<float>(ReadDouble(bs, j));
    if (ys) v /= static_cast<float>(ReadDouble(*ys, 0));
    mult[j] = v;
    finite = finite && std::isfinite(v);
  }
  const FusedClamp clamp = GetFusedClamp(ctx.attrs());
  int32_t qlo = 0, qhi = 0;
  if (yzp) {
    const bool u8 = out == DataType::kUInt8;
    QuantizedClampBounds(clamp.active, clamp.lo, clamp.hi, ys ? ReadDouble(*ys, 0) : 1.0,
                         static_cast<int32_t>(ReadInt(*yzp, 0)), u8 ? 0 : -128, u8 ? 255 : 127,
                         &qlo, &qhi);
  }
  if (QuantFastPathsEnabled() && finite && s.k <= kIgemmMaxK)
    QGemmFast(ctx, s, mult.data(), mult_cs, qlo, qhi, y);
  else
    QGemmReference(s, mult.data(), mult_cs, qlo, qhi, y);
  if (!yzp && clamp.active)
    for (int64_t i = 0; i < y->numel(); ++i)
      y->data<float>()[i] = std::min(std::max(y->data<float>()[i], clamp.lo), clamp.hi);
  return Status::Ok();
}

}  // namespace

OUTPOST_REGISTER_OP(QGemm, "com.microsoft", 1, 1, QGemmKernel);

}  // namespace outpost::kernels::cpu
