// AveragePool: mean over N-d windows (pads, auto_pad, ceil_mode, dilations, count_include_pad).
#include "cpu/common.h"
#include "cpu/gemm.h"

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
  return DispatchFloat(ctx, x.dtype(), [&]<typename T>() {
    const T* xp = x.data<T>();
    T* yp = y->data<T>();
    ForEachWindow(&ctx.pool(), g, x.dim(0) * x.dim(1), [&](int64_t p, int64_t o, const int64_t* st) {
      const T* xc = xp + p * g.in_size;
      Acc<T> sum = 0;
      int64_t valid = 0;
      const int64_t padded = ForWindowElems(g, st, [&](int64_t i) {
        sum += static_cast<Acc<T>>(xc[i]);
        ++valid;
      });
      const int64_t count = include_pad ? padded : valid;
      yp[p * g.out_size + o] = FromAcc<T>(count ? sum / static_cast<Acc<T>>(count) : Acc<T>(0));
    });
    return Status::Ok();
  });
}

}  // namespace

OUTPOST_REGISTER_OP(AveragePool, "", 1, 23, AveragePoolKernel);

}  // namespace outpost::kernels::cpu
