// Col2Im: rearranges column blocks [N, C * prod(block), L] into an image [N, C, image...],
// summing overlaps (1-3 spatial dims).
#include "cpu/common.h"
#include "cpu/gemm.h"

namespace outpost::kernels::cpu {
namespace {

Status Col2ImKernel(KernelContext& ctx) {
  if (!ctx.has_input(0) || !ctx.has_input(1) || !ctx.has_input(2))
    return ctx.Fail("Col2Im needs input, image_shape, block_shape");
  const Tensor& x = ctx.input(0);
  if (x.rank() != 3) return ctx.Fail("input must be [N, C * prod(block_shape), L]");
  if (!IsFloating(x.dtype()))
    return ctx.NotSupported("data type " + std::string(DataTypeName(x.dtype())));
  if (!ctx.input_known(1) || !ctx.input_known(2)) return ctx.DataDependent();
  const IntList image = ReadInts(ctx.input(1)), block = ReadInts(ctx.input(2));
  const size_t nd = image.size();
  if (block.size() != nd || nd == 0) return ctx.Fail("image_shape and block_shape differ in size");
  const Attributes& at = ctx.attrs();
  auto strides = at.Ints("strides", std::vector<int64_t>(nd, 1));
  auto dil = at.Ints("dilations", std::vector<int64_t>(nd, 1));
  auto pads = at.Ints("pads", std::vector<int64_t>(2 * nd, 0));
  OP_ASSIGN_OR_RETURN(ConvGeom g, GeomFrom(ctx, image, block, strides, dil, pads, {}));
  if (x.dim(1) % g.k_size != 0 || x.dim(2) != g.out_size)
    return ctx.BadInput("input " + x.shape().ToString() + " does not match the block count " +
                        std::to_string(g.out_size) + " / block size " + std::to_string(g.k_size));
  const int64_t c = x.dim(1) / g.k_size;
  Shape out{x.dim(0), c};
  for (int64_t v : image) out.push_back(v);
  OP_ASSIGN_OR_RETURN(Tensor * y, ctx.Output(0, x.dtype(), out));
  if (ctx.infer_only() || !y || y->numel() == 0) return Status::Ok();
  return DispatchFloat(ctx, x.dtype(), [&]<typename T>() {
    ComputeBuf<T> xb(&x), yb(y);
    const auto* xp = ComputeIn<T>(x, &xb);
    auto* yp = ComputeOut<T>(y, &yb);
    std::fill(yp, yp + y->numel(), Compute<T>(0));
    for (int64_t b = 0; b < x.dim(0); ++b)
      Col2Im(g, c, xp + b * x.dim(1) * g.out_size, yp + b * c * g.in_size);
    FinishOut<T>(y, yb);
    return Status::Ok();
  });
}

}  // namespace

OUTPOST_REGISTER_OP(Col2Im, "", 18, 25, Col2ImKernel);

}  // namespace outpost::kernels::cpu
