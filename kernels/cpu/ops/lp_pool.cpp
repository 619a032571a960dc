// LpPool: (sum |x|^p)^(1/p) over N-d windows.
#include "cpu/common.h"
#include "cpu/gemm.h"

namespace outpost::kernels::cpu {
namespace {

Status LpPoolKernel(KernelContext& ctx) {
  if (!ctx.has_input(0)) return ctx.Fail("missing input X");
  const Tensor& x = ctx.input(0);
  OP_ASSIGN_OR_RETURN(auto ks, PoolKernelShape(ctx, x.shape()));
  const bool ceil_mode = ctx.attrs().Int("ceil_mode", 0) != 0;
  const Attribute* pa = ctx.attrs().Find("p");
  const double p = !pa ? 2.0 : pa->kind == Attribute::Kind::kFloat ? pa->f : double(pa->i);
  OP_ASSIGN_OR_RETURN(ConvGeom g, MakeConvGeom(ctx, x.shape(), ks, ceil_mode));
  if (!IsFloating(x.dtype()))
    return ctx.NotSupported("data type " + std::string(DataTypeName(x.dtype())));
  OP_ASSIGN_OR_RETURN(Tensor * y, ctx.Output(0, x.dtype(), ConvOutShape(g, x.dim(0), x.dim(1))));
  if (ctx.infer_only() || !y || y->numel() == 0) return Status::Ok();
  return DispatchFloat(ctx, x.dtype(), [&]<typename T>() {
    const T* xp = x.data<T>();
    T* yp = y->data<T>();
    ForEachWindow(&ctx.pool(), g, x.dim(0) * x.dim(1), [&](int64_t pl, int64_t o, const int64_t* st) {
      const T* xc = xp + pl * g.in_size;
      double sum = 0;
      ForWindowElems(g, st, [&](int64_t i) {
        sum += std::pow(std::fabs(static_cast<double>(xc[i])), p);
      });
      yp[pl * g.out_size + o] = FromAcc<T>(static_cast<Acc<T>>(std::pow(sum, 1.0 / p)));
    });
    return Status::Ok();
  });
}

}  // namespace

OUTPOST_REGISTER_OP(LpPool, "", 1, 25, LpPoolKernel);

}  // namespace outpost::kernels::cpu
