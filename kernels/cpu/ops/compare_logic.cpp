// Comparisons (Equal Less Greater LessOrEqual GreaterOrEqual) and logic (And Or Xor), bool output.
#include <functional>

#include "cpu/elementwise.h"

namespace outpost::kernels::cpu {
namespace {
using namespace ew;  // NOLINT(build/namespaces)

// Cmp is a transparent std:: comparator (std::less<> ...). kAllTypes adds bool and string.
template <typename Cmp, bool kAllTypes>
Status CompareKernel(KernelContext& ctx) {
  if (!ctx.has_input(0) || !ctx.has_input(1)) return ctx.Fail("expects two inputs");
  DataType dt = ctx.input(0).dtype();
  if (ctx.input(1).dtype() != dt) return ctx.Fail("input types differ");
  std::array<Shape, 2> s;
  Tensor* y;
  auto run = [&]<typename T>() -> Status {
    OP_RETURN_IF_ERROR(BinarySetup(ctx, DataType::kBool, &s, &y));
    if (!y) return Status::Ok();
    BinaryMap(ctx, ctx.input(0).data<T>(), s[0], ctx.input(1).data<T>(), s[1], y->data<bool>(),
              y->shape(), [](const auto& a, const auto& b) -> bool { return Cmp()(a, b); });
    return Status::Ok();
  };
  if constexpr (kAllTypes) return DispatchAll(ctx, dt, run);
  else return DispatchNumeric(ctx, dt, run);
}

template <typename Fn>
Status LogicKernel(KernelContext& ctx) {
  if (!ctx.has_input(0) || !ctx.has_input(1)) return ctx.Fail("expects two inputs");
  for (int i = 0; i < 2; ++i)
    if (ctx.input(i).dtype() != DataType::kBool) return TypeError(ctx, ctx.input(i).dtype());
  std::array<Shape, 2> s;
  Tensor* y;
  OP_RETURN_IF_ERROR(BinarySetup(ctx, DataType::kBool, &s, &y));
  if (!y) return Status::Ok();
  BinaryMap(ctx, ctx.input(0).data<bool>(), s[0], ctx.input(1).data<bool>(), s[1],
            y->data<bool>(), y->shape(), [](bool a, bool b) -> bool { return Fn()(a, b); });
  return Status::Ok();
}

}  // namespace

OUTPOST_REGISTER_OP(Equal, "", 1, 25, (CompareKernel<std::equal_to<>, true>));
OUTPOST_REGISTER_OP(Less, "", 1, 25, (CompareKernel<std::less<>, false>));
OUTPOST_REGISTER_OP(Greater, "", 1, 25, (CompareKernel<std::greater<>, false>));
OUTPOST_REGISTER_OP(LessOrEqual, "", 12, 25, (CompareKernel<std::less_equal<>, false>));
OUTPOST_REGISTER_OP(GreaterOrEqual, "", 12, 25, (CompareKernel<std::greater_equal<>, false>));
OUTPOST_REGISTER_OP(And, "", 1, 25, LogicKernel<std::logical_and<>>);
OUTPOST_REGISTER_OP(Or, "", 1, 25, LogicKernel<std::logical_or<>>);
OUTPOST_REGISTER_OP(Xor, "", 1, 25, LogicKernel<std::not_equal_to<>>);

}  // namespace outpost::kernels::cpu
