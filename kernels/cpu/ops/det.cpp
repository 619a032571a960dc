// Det: determinant of square matrices [..., M, M] by LU decomposition with partial pivoting.
#include <cmath>

#include "cpu/common.h"

namespace outpost::kernels::cpu {
namespace {

Status DetKernel(KernelContext& ctx) {
  if (!ctx.has_input(0)) return ctx.Fail("missing input");
  const Tensor& x = ctx.input(0);
  const int r = x.rank();
  if (r < 2 || x.dim(r - 1) != x.dim(r - 2)) return ctx.Fail("Det needs [..., M, M]");
  Shape out;
  for (int i = 0; i < r - 2; ++i) out.push_back(x.dim(i));
  const int64_t m = x.dim(r - 1);
  return DispatchFloat(ctx, x.dtype(), [&]<typename T>() -> Status {
    OP_ASSIGN_OR_RETURN(Tensor* y, ctx.Output(0, x.dtype(), out));
    if (ctx.infer_only() || !y) return Status::Ok();
    std::vector<double> a(m * m);
    for (int64_t b = 0; b < out.numel(); ++b) {
      const T* src = x.data<T>() + b * m * m;
      for (int64_t i = 0; i < m * m; ++i) a[i] = double(src[i]);
      double det = 1;
      for (int64_t c = 0; c < m && det != 0; ++c) {
        int64_t piv = c;
        for (int64_t i = c + 1; i < m; ++i)
          if (std::abs(a[i * m + c]) > std::abs(a[piv * m + c])) piv = i;
        if (a[piv * m + c] == 0) {
          det = 0;
          break;
        }
        if (piv != c) {
          for (int64_t k = 0; k < m; ++k) std::swap(a[c * m + k], a[piv * m + k]);
          det = -det;
        }
        det *= a[c * m + c];
        for (int64_t i = c + 1; i < m; ++i) {
          const double f = a[i * m + c] / a[c * m + c];
          for (int64_t k = c; k < m; ++k) a[i * m + k] -= f * a[c * m + k];
        }
      }
      y->data<T>()[b] = T(static_cast<Acc<T>>(det));
    }
    return Status::Ok();
  });
}

}  // namespace

OUTPOST_REGISTER_OP(Det, "", 11, 25, DetKernel);

}  // namespace outpost::kernels::cpu
