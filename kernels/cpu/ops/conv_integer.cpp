// ConvInteger: int32 convolution of (x - x_zero_point) and (w - w_zero_point) for 8-bit operands.
// Fast path: igemm / the direct depthwise kernel (cpu/igemm.h); the double-precision reference
// below stays the oracle for the cases it does not take.
#include "cpu/igemm.h"
#include "cpu/quant.h"
#include "cpu/scratch.h"

namespace outpost::kernels::cpu {
namespace {

Status ConvIntegerKernel(KernelContext& ctx) {
  if (!ctx.has_input(0) || !ctx.has_input(1)) return ctx.Fail("ConvInteger needs x and w");
  const Tensor& x = ctx.input(0);
  const Tensor& w = ctx.input(1);
  for (DataType t : {x.dtype(), w.dtype()})
    if (t != DataType::kInt8 && t != DataType::kUInt8)
      return ctx.NotSupported("data type " + std::string(DataTypeName(t)));
  int64_t group = 1;
  OP_ASSIGN_OR_RETURN(ConvGeom g, ConvSetup(ctx, x.shape(), w.shape(), &group));
  OP_ASSIGN_OR_RETURN(Tensor * y,
                      ctx.Output(0, DataType::kInt32, ConvOutShape(g, x.dim(0), w.dim(0))));
  if (ctx.infer_only() || !y || y->numel() == 0) return Status::Ok();
  const Tensor* xzp = ctx.has_input(2) ? &ctx.input(2) : nullptr;
  const Tensor* wzp = ctx.has_input(3) ? &ctx.input(3) : nullptr;
  const int64_t m = w.dim(0);
  if (QuantFastPathsEnabled() && w.numel() / m <= kIgemmMaxK && (!xzp || xzp->numel() == 1) &&
      (!wzp || wzp->numel() == 1 || wzp->numel() == m)) {
    IgemmEpilogue ep;
    ep.kind = IgemmEpilogue::kInt32;
    ep.y = y->data<int32_t>();
    ep.ldy = g.out_size;
    RunIgemmConv(ctx, g, group, 1, wzp ? 3 : -1, xzp ? static_cast<int32_t>(ReadInt(*xzp, 0)) : 0,
                 ep);
    return Status::Ok();
  }
  ScratchVec<double> r(IntegerConvSize(g, x, w));
  IntegerConv(ctx, g, group, x, xzp, w, wzp, nullptr, r.data());
  for (int64_t i = 0; i < y->numel(); ++i) y->data<int32_t>()[i] = static_cast<int32_t>(r[i]);
  return Status::Ok();
}

}  // namespace

OUTPOST_REGISTER_OP(ConvInteger, "", 10, 25, ConvIntegerKernel);

}  // namespace outpost::kernels::cpu
