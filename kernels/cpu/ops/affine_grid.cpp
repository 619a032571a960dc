// AffineGrid: sampling grid [N, (D,) H, W, 2|3] from affine matrices theta and an output size.
#include "cpu/common.h"

namespace outpost::kernels::cpu {
namespace {

Status AffineGridKernel(KernelContext& ctx) {
  if (!ctx.has_input(0) || !ctx.has_input(1)) return ctx.Fail("missing input");
  const Tensor& theta = ctx.input(0);
  if (!ctx.input_known(1)) return ctx.DataDependent();
  const IntList size = ReadInts(ctx.input(1));
  const bool is3d = size.size() == 5;
  if (size.size() != 4 && !is3d) return ctx.Fail("size must have 4 or 5 elements");
  const int nd = is3d ? 3 : 2;
  if (theta.rank() != 3 || theta.dim(0) != size[0] || theta.dim(1) != nd || theta.dim(2) != nd + 1)
    return ctx.Fail("theta must be [N, 2, 3] (2D) or [N, 3, 4] (3D)");
  for (int64_t s : size)
    if (s < 0) return ctx.BadInput("negative size");
  const int64_t N = size[0], D = is3d ? size[2] : 1, H = size[nd], W = size[nd + 1];
  Shape out = is3d ? Shape{N, D, H, W, 3} : Shape{N, H, W, 2};
  const bool align = ctx.attrs().Int("align_corners", 0) != 0;
  return DispatchFloat(ctx, theta.dtype(), [&]<typename T>() -> Status {
    OP_ASSIGN_OR_RETURN(Tensor* y, ctx.Output(0, theta.dtype(), out));
    if (ctx.infer_only() || !y) return Status::Ok();
    auto coord = [align](int64_t i, int64_t n) {
      if (n <= 1) return 0.0;
      return align ? -1.0 + 2.0 * static_cast<double>(i) / static_cast<double>(n - 1)
                   : (2.0 * static_cast<double>(i) + 1.0) / static_cast<double>(n) - 1.0;
    };
    T* py = y->data<T>();
    for (int64_t n = 0; n < N; ++n) {
      const T* th = theta.data<T>() + n * nd * (nd + 1);
      for (int64_t d = 0; d < D; ++d)
        for (int64_t h = 0; h < H; ++h)
          for (int64_t w = 0; w < W; ++w) {
            const double base[3] = {coord(w, W), coord(h, H), coord(d, D)};  // x, y, z
            for (int k = 0; k < nd; ++k) {
              double v = double(th[k * (nd + 1) + nd]);
              for (int j = 0; j < nd; ++j) v += double(th[k * (nd + 1) + j]) * base[j];
              *py++ = T(static_cast<Acc<T>>(v));
            }
          }
    }
    return Status::Ok();
  });
}

}  // namespace

OUTPOST_REGISTER_OP(AffineGrid, "", 20, 25, AffineGridKernel);

}  // namespace outpost::kernels::cpu
