// AveragePool: mean over N-d windows (pads, auto_pad, ceil_mode, dilations, count_include_pad).
#include <vector>

#include "cpu/common.h"
#include "cpu/gemm.h"
#include "cpu/pool_count.h"
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
  // Window element count per output position (see cpu/pool_count.h).
  ScratchVec<double> inv(g.out_size);
  {
    ScratchVec<int64_t> cnt(g.out_size);
    AveragePoolCounts(g, include_pad, cnt.data());
    for (int64_t o = 0; o < g.out_size; ++o)
      inv[o] = cnt[o] ? 1.0 / static_cast<double>(cnt[o]) : 0.0;
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

OUTPOST_REGISTER_OP(AveragePool, "", 1, 25, AveragePoolKernel);

}  // namespace outpost::kernels::cpu
