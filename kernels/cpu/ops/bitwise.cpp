// Integer bit ops: BitShift BitwiseAnd BitwiseOr BitwiseXor BitwiseNot.
#include <functional>

#include "cpu/elementwise.h"

namespace outpost::kernels::cpu {
namespace {
using namespace ew;  // NOLINT(build/namespaces)

// Bitwise binary ops over every integer type; kShift is BitShift (unsigned types only, the
// `direction` attribute; shifts of the type's width or more give 0).
template <typename Fn, bool kShift = false>
Status BitwiseBinary(KernelContext& ctx) {
  if (!ctx.has_input(0) || !ctx.has_input(1)) return ctx.Fail("expects two inputs");
  DataType dt = ctx.input(0).dtype();
  if (ctx.input(1).dtype() != dt) return ctx.Fail("input types differ");
  if (kShift && IsSigned(dt)) return TypeError(ctx, dt);
  bool left = true;
  if constexpr (kShift) {
    std::string d = ctx.attrs().String("direction", "");
    if (d != "LEFT" && d != "RIGHT") return ctx.Fail("direction must be LEFT or RIGHT");
    left = d == "LEFT";
  }
  std::array<Shape, 2> s;
  Tensor* y;
  return DispatchInt(ctx, dt, [&]<typename T>() -> Status {
    OP_RETURN_IF_ERROR(BinarySetup(ctx, dt, &s, &y));
    if (!y) return Status::Ok();
    auto run = [&](auto f) {
      BinaryMap(ctx, ctx.input(0).data<T>(), s[0], ctx.input(1).data<T>(), s[1], y->data<T>(),
                y->shape(), f);
    };
    if constexpr (kShift && std::is_unsigned_v<T>) {
      constexpr T kBits = sizeof(T) * 8;
      if (left) run([](T a, T b) -> T { return b >= kBits ? T(0) : static_cast<T>(a << b); });
      else run([](T a, T b) -> T { return b >= kBits ? T(0) : static_cast<T>(a >> b); });
    } else {
      run([](T a, T b) -> T { return static_cast<T>(Fn()(a, b)); });
    }
    return Status::Ok();
  });
}

struct BitwiseNotOp {
  template <typename T>
  static auto Make(const Attributes&) {
    return [](T x) -> T { return static_cast<T>(~x); };
  }
};

}  // namespace

OUTPOST_REGISTER_OP(BitShift, "", 11, 25, (BitwiseBinary<std::bit_and<>, true>));
OUTPOST_REGISTER_OP(BitwiseAnd, "", 18, 25, BitwiseBinary<std::bit_and<>>);
OUTPOST_REGISTER_OP(BitwiseOr, "", 18, 25, BitwiseBinary<std::bit_or<>>);
OUTPOST_REGISTER_OP(BitwiseXor, "", 18, 25, BitwiseBinary<std::bit_xor<>>);
OUTPOST_REGISTER_OP(BitwiseNot, "", 18, 25, (UnaryKernel<BitwiseNotOp, Accepts::kInt>));

}  // namespace outpost::kernels::cpu
