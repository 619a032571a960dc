// Elementwise math: Abs Neg Exp Log Sqrt Reciprocal trig/hyperbolic Ceil Floor Round Sign Erf
// IsNaN IsInf Not.
#include <cmath>

#include "cpu/elementwise.h"

namespace outpost::kernels::cpu {
namespace {
using namespace ew;  // NOLINT(build/namespaces)

struct AbsOp {
  template <typename T>
  static auto Make(const Attributes&) {
    return [](Acc<T> x) -> Acc<T> {
      if constexpr (std::is_unsigned_v<T>) return x;
      else if constexpr (std::is_integral_v<T>) return x < 0 ? WrapSub(T(0), x) : x;
      else return std::fabs(x);
    };
  }
};
struct NegOp {
  template <typename T>
  static auto Make(const Attributes&) {
    return [](Acc<T> x) -> Acc<T> { return WrapSub(Acc<T>(0), x); };
  }
};
struct SignOp {
  template <typename T>
  static auto Make(const Attributes&) {
    return [](Acc<T> x) -> Acc<T> {
      if constexpr (std::is_unsigned_v<T>) return x > 0 ? 1 : 0;
      else return x > 0 ? Acc<T>(1) : (x < 0 ? Acc<T>(-1) : x);  // NaN stays NaN
    };
  }
};
OUTPOST_EW_UNARY(ExpOp, std::exp(x));
OUTPOST_EW_UNARY(LogOp, std::log(x));
OUTPOST_EW_UNARY(SqrtOp, std::sqrt(x));
OUTPOST_EW_UNARY(ReciprocalOp, V(1) / x);
OUTPOST_EW_UNARY(SinOp, std::sin(x));
OUTPOST_EW_UNARY(CosOp, std::cos(x));
OUTPOST_EW_UNARY(TanOp, std::tan(x));
OUTPOST_EW_UNARY(AsinOp, std::asin(x));
OUTPOST_EW_UNARY(AcosOp, std::acos(x));
OUTPOST_EW_UNARY(AtanOp, std::atan(x));
OUTPOST_EW_UNARY(SinhOp, std::sinh(x));
OUTPOST_EW_UNARY(CoshOp, std::cosh(x));
OUTPOST_EW_UNARY(AsinhOp, std::asinh(x));
OUTPOST_EW_UNARY(AcoshOp, std::acosh(x));
OUTPOST_EW_UNARY(AtanhOp, std::atanh(x));
OUTPOST_EW_UNARY(CeilOp, std::ceil(x));
OUTPOST_EW_UNARY(FloorOp, std::floor(x));
OUTPOST_EW_UNARY(RoundOp, std::nearbyint(x));  // half to even in the default rounding mode
OUTPOST_EW_UNARY(ErfOp, std::erf(x));

// Float -> bool predicates: IsNaN, IsInf (detect_negative / detect_positive).
template <bool kInf>
Status FloatPredicate(KernelContext& ctx) {
  if (!ctx.has_input(0)) return ctx.Fail("missing input 0");
  const Tensor& x = ctx.input(0);
  bool neg = ctx.attrs().Int("detect_negative", 1) != 0;
  bool pos = ctx.attrs().Int("detect_positive", 1) != 0;
  return DispatchFloat(ctx, x.dtype(), [&]<typename T>() -> Status {
    Tensor* y;
    OP_RETURN_IF_ERROR(UnarySetup(ctx, DataType::kBool, &y));
    if (!y) return Status::Ok();
    UnaryMap(ctx, x.data<T>(), y->data<bool>(), x.numel(), [neg, pos](Acc<T> v) {
      if constexpr (kInf) return std::isinf(v) && (v > 0 ? pos : neg);
      else return v != v;
    });
    return Status::Ok();
  });
}

Status NotKernel(KernelContext& ctx) {
  if (!ctx.has_input(0)) return ctx.Fail("missing input 0");
  const Tensor& x = ctx.input(0);
  if (x.dtype() != DataType::kBool) return TypeError(ctx, x.dtype());
  Tensor* y;
  OP_RETURN_IF_ERROR(UnarySetup(ctx, DataType::kBool, &y));
  if (y) UnaryMap(ctx, x.data<bool>(), y->data<bool>(), x.numel(), [](bool v) { return !v; });
  return Status::Ok();
}

}  // namespace

OUTPOST_REGISTER_OP(Abs, "", 1, 25, (UnaryKernel<AbsOp, Accepts::kNumeric>));
OUTPOST_REGISTER_OP(Neg, "", 1, 25, (UnaryKernel<NegOp, Accepts::kSigned>));
OUTPOST_REGISTER_OP(Sign, "", 9, 25, (UnaryKernel<SignOp, Accepts::kNumeric>));
OUTPOST_REGISTER_OP(Exp, "", 1, 25, UnaryKernel<ExpOp>);
OUTPOST_REGISTER_OP(Log, "", 1, 25, UnaryKernel<LogOp>);
OUTPOST_REGISTER_OP(Sqrt, "", 1, 25, UnaryKernel<SqrtOp>);
OUTPOST_REGISTER_OP(Reciprocal, "", 1, 25, UnaryKernel<ReciprocalOp>);
OUTPOST_REGISTER_OP(Sin, "", 7, 25, UnaryKernel<SinOp>);
OUTPOST_REGISTER_OP(Cos, "", 7, 25, UnaryKernel<CosOp>);
OUTPOST_REGISTER_OP(Tan, "", 7, 25, UnaryKernel<TanOp>);
OUTPOST_REGISTER_OP(Asin, "", 7, 25, UnaryKernel<AsinOp>);
OUTPOST_REGISTER_OP(Acos, "", 7, 25, UnaryKernel<AcosOp>);
OUTPOST_REGISTER_OP(Atan, "", 7, 25, UnaryKernel<AtanOp>);
OUTPOST_REGISTER_OP(Sinh, "", 9, 25, UnaryKernel<SinhOp>);
OUTPOST_REGISTER_OP(Cosh, "", 9, 25, UnaryKernel<CoshOp>);
OUTPOST_REGISTER_OP(Asinh, "", 9, 25, UnaryKernel<AsinhOp>);
OUTPOST_REGISTER_OP(Acosh, "", 9, 25, UnaryKernel<AcoshOp>);
OUTPOST_REGISTER_OP(Atanh, "", 9, 25, UnaryKernel<AtanhOp>);
OUTPOST_REGISTER_OP(Ceil, "", 1, 25, UnaryKernel<CeilOp>);
OUTPOST_REGISTER_OP(Floor, "", 1, 25, UnaryKernel<FloorOp>);
OUTPOST_REGISTER_OP(Round, "", 11, 25, UnaryKernel<RoundOp>);
OUTPOST_REGISTER_OP(Erf, "", 9, 25, UnaryKernel<ErfOp>);
OUTPOST_REGISTER_OP(IsNaN, "", 9, 25, FloatPredicate<false>);
OUTPOST_REGISTER_OP(IsInf, "", 10, 25, FloatPredicate<true>);
OUTPOST_REGISTER_OP(Not, "", 1, 25, NotKernel);

}  // namespace outpost::kernels::cpu
