// AveragePool: mean over N-d windows (pads, auto_pad, ceil_mode, dilations, count_include_pad).
#include <vector>

#include "cpu/common.h"
#include "cpu/gemm.h"
#include "cpu/scratch.h"

namespace outpost::kernels::cpu {
namespace {

Status AveragePoolKernel(KernelContext& ctx) {
  if (!ctx.has_input(0)) return ctx.Fail("missing input X");
  const Tensor& x = ctx.input(0);
  OP_ASSIGN_OR_RETURN(auto ks, PoolKernelShape(ctx, x.shape()));
  const bool ceil_mode = ctx.attrs().Int("ceil_mode", 0) != 0;
  const bool include_pad = ctx.attrs().Int("count_include_pad", 0) != 0;
  OP_ASSIGN_OR_RETURN(ConvGeom g, MakeConvGeom(ctx, x.shape(), ks, ceil_mode));
  if (!IsFloating(x.dtype()))
    return ctx.NotSupported("data type " + std::string(DataTypeName(x.dtype())));
  OP_ASSIGN_OR_RETURN(Tensor * y, ctx.Output(0, x.dtype(), ConvOutShape(g, x.dim(0), x.dim(1))));
  if (ctx.infer_only() || !y || y->numel() == 0) return Status::Ok();
  // Window element count per output position: the product over dims of the positions inside
  // the input (or, with count_include_pad, inside the padded input).
  ScratchVec<double> inv(g.out_size);
  {
    ScratchVec<int64_t> cnt0(g.out[0]), cnt1(g.out[1]), cnt2(g.out[2]);
    ScratchVec<int64_t>* cnt[ConvGeom::kDims] = {&cnt0, &cnt1, &cnt2};
    for (int d = 0; d < ConvGeom::kDims; ++d) {
      const int64_t lo = include_pad ? -g.pb[d] : 0, hi = g.in[d] + (include_pad ? g.pe[d] : 0);
      for (int64_t o = 0; o < g.out[d]; ++o) {
        int64_t c = 0;
        for (int64_t k = 0; k < g.k[d]; ++k) {
          const int64_t pos = o * g.s[d] - g.pb[d] + k * g.d[d];
          c += pos >= lo && pos < hi;
        }
        (*cnt[d])[o] = c;
      }
    }
    int64_t o = 0;
    for (int64_t a = 0; a < g.out[0]; ++a)
      for (int64_t b = 0; b < g.out[1]; ++b)
        for (int64_t c = 0; c < g.out[2]; ++c, ++o) {
          const int64_t n = cnt0[a] * cnt1[b] * cnt2[c];
          inv[o] = n ? 1.0 / static_cast<double>(n) : 0.0;
        }
  }
  return DispatchFloat(ctx, x.dtype(), [&]<typename T>() {
    using A = Acc<T>;
    const T* xp = x.data<T>();
    T* yp = y->data<T>();
    ctx.pool().ParallelFor(x.dim(0) * x.dim(1), 1, [&](int64_t p0, int64_t p1) {
      ScratchVec<A> buf(g.out_size);
      for (int64_t p = p0; p < p1; ++p) {
        std::fill(buf.begin(), buf.end(), A(0));
        PoolPlaneRows<A>(g, xp + p * g.in_size, buf.data(), [](A a, A b) { return a + b; });
        for (int64_t o = 0; o < g.out_size; ++o)
          yp[p * g.out_size + o] = FromAcc<T>(buf[o] * static_cast<A>(inv[o]));
      }
    });
    return Status::Ok();
  });
}

}  // namespace

OUTPOST_REGISTER_OP(AveragePool, "", 1, 23, AveragePoolKernel);

}  // namespace outpost::kernels::cpu
