// HannWindow, HammingWindow, BlackmanWindow: generalized cosine windows of a given size.
#include <cmath>

#include "cpu/common.h"

namespace outpost::kernels::cpu {
namespace {

// w[n] = a0 - a1 cos(2 pi n / D) + a2 cos(4 pi n / D), D = N (periodic) or N - 1 (symmetric).
template <int kWhich>
Status WindowKernel(KernelContext& ctx) {
  if (!ctx.has_input(0)) return ctx.Fail("missing size");
  if (!IsInteger(ctx.input(0).dtype()) || ctx.input(0).numel() != 1)
    return ctx.Fail("size must be an integer scalar");
  const auto dt = static_cast<DataType>(ctx.attrs().Int("output_datatype", 1));
  if (!IsFloating(dt) && !IsInteger(dt))
    return ctx.NotSupported("output_datatype " + std::string(DataTypeName(dt)));
  if (!ctx.input_known(0)) return ctx.DataDependent();
  const int64_t n = ReadInt(ctx.input(0), 0);
  if (n < 0) return ctx.BadInput("negative window size");
  const bool periodic = ctx.attrs().Int("periodic", 1) != 0;
  OP_ASSIGN_OR_RETURN(Tensor* y, ctx.Output(0, dt, Shape{n}));
  if (ctx.infer_only() || !y) return Status::Ok();
  const double a0 = kWhich == 0 ? 0.5 : kWhich == 1 ? 25.0 / 46 : 0.42;
  const double a1 = kWhich == 0 ? 0.5 : kWhich == 1 ? 21.0 / 46 : 0.5;
  const double a2 = kWhich == 2 ? 0.08 : 0.0;
  const double d = periodic ? static_cast<double>(n) : static_cast<double>(n - 1);
  return DispatchNumeric(ctx, dt, [&]<typename T>() -> Status {
    for (int64_t i = 0; i < n; ++i) {
      const double x = d > 0 ? 2 * M_PI * static_cast<double>(i) / d : 0.0;
      y->data<T>()[i] = static_cast<T>(static_cast<Acc<T>>(a0 - a1 * std::cos(x) + a2 * std::cos(2 * x)));
    }
    return Status::Ok();
  });
}

}  // namespace

OUTPOST_REGISTER_OP(HannWindow, "", 17, 25, WindowKernel<0>);
OUTPOST_REGISTER_OP(HammingWindow, "", 17, 25, WindowKernel<1>);
OUTPOST_REGISTER_OP(BlackmanWindow, "", 17, 25, WindowKernel<2>);

}  // namespace outpost::kernels::cpu
