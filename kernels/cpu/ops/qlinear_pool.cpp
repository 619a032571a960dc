// com.microsoft QLinearAveragePool and QLinearGlobalAveragePool: Y = quantize(average pool of
// dequantize(X)), per-tensor scales and zero points, int8 or uint8, NCHW or (channels_last=1)
// NHWC. Window sums of X - X_zp are exact integers; the mean is scaled in double:
// Y = saturate(round_half_even(sum * X_scale / (count * Y_scale)) + Y_zp). Padding counts as a
// float zero (= X_zp), as in the DequantizeLinear -> AveragePool -> QuantizeLinear graph. That
// graph sums in float32, so the two can differ by one step where a mean falls near a rounding tie.
#include <vector>

#include "cpu/gemm.h"
#include "cpu/pool_count.h"
#include "cpu/quant.h"
#include "cpu/scratch.h"

namespace outpost::kernels::cpu {
namespace {

struct QParams {
  double xs = 1, xz = 0, ys = 1, yz = 0;
  bool channels_last = false;
};

// Checks X (int8 / uint8, rank >= 3) and reads the per-tensor scales and zero points.
Status ReadQParams(KernelContext& ctx, QParams* q) {
  for (int i : {0, 1, 3})
    if (!ctx.has_input(i)) return ctx.Fail(ctx.node().op_type + " needs X, x_scale, y_scale");
  const Tensor& x = ctx.input(0);
  const DataType dt = x.dtype();
  if (dt != DataType::kInt8 && dt != DataType::kUInt8)
    return ctx.NotSupported("data type " + std::string(DataTypeName(dt)));
  if (x.rank() < 3) return ctx.BadInput("X must have rank 3 or more, got " + x.shape().ToString());
  for (int i : {1, 2, 3, 4})
    if (ctx.has_input(i) && ctx.input(i).numel() != 1)
      return ctx.NotSupported("per-axis scales or zero points (only per-tensor)");
  for (int i : {2, 4})
    if (ctx.has_input(i) && ctx.input(i).dtype() != dt)
      return ctx.Fail("zero point differs in type from X");
  for (int i : {1, 3})
    if (!IsFloating(ctx.input(i).dtype())) return ctx.Fail("scales must be floating");
  auto val = [&](int i, double d) {
    if (!ctx.has_input(i) || !ctx.input(i).has_data()) return d;
    const Tensor& t = ctx.input(i);
    return IsFloating(t.dtype()) ? ReadDouble(t, 0) : static_cast<double>(ReadInt(t, 0));
  };
  q->xs = val(1, 1);
  q->xz = val(2, 0);
  q->ys = val(3, 1);
  q->yz = val(4, 0);
  q->channels_last = ctx.attrs().Int("channels_last", 0) != 0;
  return Status::Ok();
}

// X (NHWC...) -> NCHW... as centred doubles, or NCHW as is.
void Centred(const Tensor& x, double zp, bool channels_last, double* out) {
  const int64_t n = x.dim(0), c = x.dim(channels_last ? x.rank() - 1 : 1);
  const int64_t plane = c ? x.numel() / std::max<int64_t>(1, n * c) : 0;
  for (int64_t i = 0; i < x.numel(); ++i) {
    int64_t o = i;
    if (channels_last) {  // i = ((b * plane) + p) * c + ch
      const int64_t ch = i % c, p = (i / c) % plane, b = i / (c * plane);
      o = (b * c + ch) * plane + p;
    }
    out[o] = static_cast<double>(ReadInt(x, i)) - zp;
  }
}

template <typename Q>
void Store(const double* nchw, int64_t n, int64_t c, int64_t plane, bool channels_last, double mult,
           double yz, Q* y) {
  for (int64_t b = 0; b < n; ++b)
    for (int64_t ch = 0; ch < c; ++ch)
      for (int64_t p = 0; p < plane; ++p) {
        const double v = nchw[(b * c + ch) * plane + p] * mult;
        const int64_t o = channels_last ? (b * plane + p) * c + ch : (b * c + ch) * plane + p;
        y[o] = SaturateTo<Q>(std::nearbyint(v) + yz);
      }
}

Status QLinearGlobalAveragePoolKernel(KernelContext& ctx) {
  QParams q;
  OP_RETURN_IF_ERROR(ReadQParams(ctx, &q));
  const Tensor& x = ctx.input(0);
  const bool cl = q.channels_last;
  const int64_t n = x.dim(0), c = x.dim(cl ? x.rank() - 1 : 1);
  Shape out = x.shape();
  for (int d = 0; d < x.rank(); ++d)
    if (d != 0 && d != (cl ? x.rank() - 1 : 1)) out[d] = 1;
  return DispatchQuant(ctx, x.dtype(), false, [&]<typename Q>() -> Status {
    OP_ASSIGN_OR_RETURN(Tensor * y, ctx.Output(0, x.dtype(), out));
    if (ctx.infer_only() || !y || y->numel() == 0) return Status::Ok();
    const int64_t plane = x.numel() / (n * c);
    ScratchVec<double> xd(x.numel()), sums(n * c);
    Centred(x, q.xz, cl, xd.data());
    for (int64_t p = 0; p < n * c; ++p) {
      double s = 0;  // exact: integers below 2^53
      for (int64_t i = 0; i < plane; ++i) s += xd[p * plane + i];
      sums[p] = s;
    }
    const double mult = plane ? q.xs / (static_cast<double>(plane) * q.ys) : 0.0;
    Store<Q>(sums.data(), n, c, 1, cl, mult, q.yz, y->data<Q>());
    return Status::Ok();
  });
}

Status QLinearAveragePoolKernel(KernelContext& ctx) {
  QParams q;
  OP_RETURN_IF_ERROR(ReadQParams(ctx, &q));
  const Tensor& x = ctx.input(0);
  const bool cl = q.channels_last;
  // The geometry is computed on the NCHW view of X.
  Shape nchw = x.shape();
  if (cl) {
    nchw[1] = x.dim(x.rank() - 1);
    for (int d = 2; d < x.rank(); ++d) nchw[d] = x.dim(d - 1);
  }
  OP_ASSIGN_OR_RETURN(auto ks, PoolKernelShape(ctx, nchw));
  const bool ceil_mode = ctx.attrs().Int("ceil_mode", 0) != 0;
  const bool include_pad = ctx.attrs().Int("count_include_pad", 0) != 0;
  OP_ASSIGN_OR_RETURN(ConvGeom g, MakeConvGeom(ctx, nchw, ks, ceil_mode));
  const int64_t n = nchw[0], c = nchw[1];
  Shape out = ConvOutShape(g, n, c);
  if (cl) {
    Shape o = out;
    for (int d = 1; d + 1 < o.rank(); ++d) o[d] = out[d + 1];
    o[o.rank() - 1] = c;
    out = o;
  }
  return DispatchQuant(ctx, x.dtype(), false, [&]<typename Q>() -> Status {
    OP_ASSIGN_OR_RETURN(Tensor * y, ctx.Output(0, x.dtype(), out));
    if (ctx.infer_only() || !y || y->numel() == 0) return Status::Ok();
    ScratchVec<int64_t> cntv(g.out_size);
    AveragePoolCounts(g, include_pad, cntv.data());
    ScratchVec<double> xd(x.numel()), sums(n * c * g.out_size);
    Centred(x, q.xz, cl, xd.data());
    std::fill(sums.begin(), sums.end(), 0.0);
    for (int64_t p = 0; p < n * c; ++p) {
      double* s = sums.data() + p * g.out_size;
      PoolPlaneRows<double>(g, xd.data() + p * g.in_size, s,
                            [](double a, double b) { return a + b; });
      for (int64_t o = 0; o < g.out_size; ++o)
        s[o] = cntv[o] > 0 ? s[o] / static_cast<double>(cntv[o]) : 0.0;
    }
    Store<Q>(sums.data(), n, c, g.out_size, cl, q.xs / q.ys, q.yz, y->data<Q>());
    return Status::Ok();
  });
}

}  // namespace

OUTPOST_REGISTER_OP(QLinearGlobalAveragePool, "com.microsoft", 1, 1,
                    QLinearGlobalAveragePoolKernel);
OUTPOST_REGISTER_OP(QLinearAveragePool, "com.microsoft", 1, 1, QLinearAveragePoolKernel);

}  // namespace outpost::kernels::cpu
