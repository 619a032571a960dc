// Binary arithmetic with numpy broadcasting: Add Sub Mul Div Pow Mod (+ the shared setup helpers).
#include <cmath>

#include "cpu/elementwise.h"

namespace outpost::kernels::cpu {
namespace ew {

Expected<std::array<Shape, 2>> BinaryShapes(KernelContext& ctx) {
  if (!ctx.has_input(0) || !ctx.has_input(1)) return ctx.Fail("expects two inputs");
  std::array<Shape, 2> s{ctx.input(0).shape(), ctx.input(1).shape()};
  if (ctx.opset() >= 7 || !ctx.attrs().Has("broadcast")) return s;
  if (ctx.attrs().Int("broadcast", 0) == 0) {
    if (s[0] != s[1])
      return ctx.BadInput("shapes " + s[0].ToString() + " and " + s[1].ToString() +
                          " differ and broadcast=0");
    return s;
  }
  // Legacy broadcast: B's dimensions line up with A's starting at `axis` (default: trailing).
  int ra = s[0].rank(), rb = s[1].rank();
  if (rb > ra) return ctx.BadInput("legacy broadcast: B has higher rank than A");
  int64_t axis = ctx.attrs().Int("axis", ra - rb);
  if (axis < 0) axis += ra;
  if (axis < 0 || axis + rb > ra) return ctx.BadInput("legacy broadcast: axis out of range");
  Shape b;
  for (int i = 0; i < ra; ++i)
    b.push_back(i >= axis && i < axis + rb ? s[1][static_cast<int>(i - axis)] : 1);
  for (int i = 0; i < ra; ++i)
    if (b[i] != 1 && b[i] != s[0][i]) return ctx.BadInput("legacy broadcast: shape mismatch");
  s[1] = b;
  return s;
}

Status BinarySetup(KernelContext& ctx, DataType dtype, std::array<Shape, 2>* shapes, Tensor** y) {
  *y = nullptr;
  OP_ASSIGN_OR_RETURN(*shapes, BinaryShapes(ctx));
  OP_ASSIGN_OR_RETURN(Shape out, BroadcastShapes(ctx, *shapes));
  OP_ASSIGN_OR_RETURN(Tensor* t, ctx.Output(0, dtype, out));
  if (!ctx.infer_only()) *y = t;
  return Status::Ok();
}

Status UnarySetup(KernelContext& ctx, DataType dtype, Tensor** y) {
  *y = nullptr;
  if (!ctx.has_input(0)) return ctx.Fail("missing input 0");
  OP_ASSIGN_OR_RETURN(Tensor* t, ctx.Output(0, dtype, ctx.input(0).shape()));
  if (!ctx.infer_only()) *y = t;
  return Status::Ok();
}

}  // namespace ew

namespace {
using namespace ew;  // NOLINT(build/namespaces)

// Same-type binary op: `Op::template Apply<T>` returns a lambda over Acc<T>.
template <typename Op>
Status SameTypeBinary(KernelContext& ctx) {
  if (!ctx.has_input(0) || !ctx.has_input(1)) return ctx.Fail("expects two inputs");
  DataType dt = ctx.input(0).dtype();
  if (ctx.input(1).dtype() != dt) return ctx.Fail("input types differ");
  std::array<Shape, 2> s;
  Tensor* y;
  OP_RETURN_IF_ERROR(Op::Check(ctx, dt));
  return DispatchNumeric(ctx, dt, [&]<typename T>() -> Status {
    OP_RETURN_IF_ERROR(BinarySetup(ctx, dt, &s, &y));
    if (!y) return Status::Ok();
    BinaryMap(ctx, ctx.input(0).data<T>(), s[0], ctx.input(1).data<T>(), s[1], y->data<T>(),
              y->shape(), Op::template Fn<T>(ctx));
    return Status::Ok();
  });
}

struct AnyNumeric {
  static Status Check(KernelContext&, DataType) { return Status::Ok(); }
};

struct AddOp : AnyNumeric {
  template <typename T>
  static auto Fn(KernelContext&) { return [](Acc<T> a, Acc<T> b) { return WrapAdd(a, b); }; }
};
struct SubOp : AnyNumeric {
  template <typename T>
  static auto Fn(KernelContext&) { return [](Acc<T> a, Acc<T> b) { return WrapSub(a, b); }; }
};
struct MulOp : AnyNumeric {
  template <typename T>
  static auto Fn(KernelContext&) { return [](Acc<T> a, Acc<T> b) { return WrapMul(a, b); }; }
};
// Integer division truncates toward zero; division by zero yields 0 (documented, no trap).
struct DivOp : AnyNumeric {
  template <typename T>
  static auto Fn(KernelContext&) {
    return [](Acc<T> a, Acc<T> b) -> Acc<T> {
      if constexpr (std::is_integral_v<T>) {
        if (b == 0) return 0;
        if constexpr (std::is_signed_v<T>) {
          if (b == -1) return WrapSub(T(0), a);
        }
        return static_cast<T>(a / b);
      } else {
        return a / b;
      }
    };
  }
};
// fmod=0: result takes the divisor's sign (Python %); fmod=1: C fmod. x % 0 yields 0 for ints.
struct ModOp {
  static Status Check(KernelContext& ctx, DataType) {
    int64_t f = ctx.attrs().Int("fmod", 0);
    if (f != 0 && f != 1) return ctx.Fail("fmod must be 0 or 1");
    return Status::Ok();
  }
  template <typename T>
  static auto Fn(KernelContext& ctx) {
    bool use_fmod = ctx.attrs().Int("fmod", 0) != 0;
    return [use_fmod](Acc<T> a, Acc<T> b) -> Acc<T> {
      if constexpr (std::is_integral_v<T>) {
        if (b == 0) return 0;
        if constexpr (std::is_signed_v<T>) {
          if (b == -1) return 0;
          T r = static_cast<T>(a % b);
          if (!use_fmod && r != 0 && ((r < 0) != (b < 0))) r = static_cast<T>(r + b);
          return r;
        } else {
          return static_cast<T>(a % b);
        }
      } else {
        Acc<T> r = std::fmod(a, b);
        if (!use_fmod && r != 0 && ((r < 0) != (b < 0))) r += b;
        return r;
      }
    };
  }
};

Status AddKernel(KernelContext& ctx) { return SameTypeBinary<AddOp>(ctx); }
Status SubKernel(KernelContext& ctx) { return SameTypeBinary<SubOp>(ctx); }
Status MulKernel(KernelContext& ctx) { return SameTypeBinary<MulOp>(ctx); }
Status DivKernel(KernelContext& ctx) { return SameTypeBinary<DivOp>(ctx); }
Status ModKernel(KernelContext& ctx) { return SameTypeBinary<ModOp>(ctx); }

// Integer power by squaring (wrapping); negative exponents follow truncation of 1/a^n.
template <typename T>
T IntPow(T a, int64_t e) {
  if (e < 0) {
    if (a == 1) return 1;
    if constexpr (std::is_signed_v<T>) {
      if (a == -1) return (e & 1) ? T(-1) : T(1);
    }
    return 0;
  }
  T r = 1;
  while (e) {
    if (e & 1) r = WrapMul(r, a);
    a = WrapMul(a, a);
    e >>= 1;
  }
  return r;
}

// x^p for base type T and exponent compute type E.
template <typename T, typename E>
Acc<T> PowValue(Acc<T> x, E p) {
  if constexpr (std::is_integral_v<T> && std::is_integral_v<E>) {
    return IntPow<T>(x, static_cast<int64_t>(p));
  } else if constexpr (std::is_integral_v<T>) {
    double r = std::pow(static_cast<double>(x), static_cast<double>(p));
    if (!(r >= static_cast<double>(std::numeric_limits<T>::lowest()) &&
          r <= static_cast<double>(std::numeric_limits<T>::max())))
      return 0;
    return static_cast<T>(r);
  } else if constexpr (std::is_same_v<E, Acc<T>>) {
    return std::pow(x, p);
  } else {
    return static_cast<Acc<T>>(std::pow(static_cast<double>(x), static_cast<double>(p)));
  }
}

// Pow: the base type T fixes the output type; the exponent may be any numeric type. A differing
// exponent type is first widened to int64 (integer exponents) or double.
Status PowKernel(KernelContext& ctx) {
  if (!ctx.has_input(0) || !ctx.has_input(1)) return ctx.Fail("expects two inputs");
  DataType bt = ctx.input(0).dtype(), et = ctx.input(1).dtype();
  if (!IsFloating(et) && !IsInteger(et)) return TypeError(ctx, et);
  std::array<Shape, 2> s;
  Tensor* y;
  return DispatchNumeric(ctx, bt, [&]<typename T>() -> Status {
    OP_RETURN_IF_ERROR(BinarySetup(ctx, bt, &s, &y));
    if (!y) return Status::Ok();
    const Tensor& e = ctx.input(1);
    const T* a = ctx.input(0).data<T>();
    auto run = [&]<typename E>(const E* ep) {
      BinaryMap(ctx, a, s[0], ep, s[1], y->data<T>(), y->shape(),
                [](Acc<T> x, E p) { return PowValue<T, E>(x, p); });
    };
    if constexpr (std::is_floating_point_v<T>) {
      // x^2 (LayerNorm exported as ReduceMean(Pow(x - mean, 2))): one multiply instead of a
      // pow call per element; correctly rounded pow(x, 2) is exactly the rounded x * x.
      if (et == bt && e.numel() == 1 && e.data<T>()[0] == T(2)) {
        ew::UnaryMap(ctx, a, y->data<T>(), y->numel(), [](T x) { return x * x; });
        return Status::Ok();
      }
    }
    if constexpr (!kIsHalf<T>) {
      if (et == bt) {
        run(e.data<T>());
        return Status::Ok();
      }
    }
    if (IsInteger(et)) {
      IntList v = ReadInts(e);
      run(v.data());
    } else {
      std::vector<double> v(e.numel());
      for (int64_t i = 0; i < e.numel(); ++i) v[i] = ReadDouble(e, i);
      run(v.data());
    }
    return Status::Ok();
  });
}

}  // namespace

OUTPOST_REGISTER_OP(Add, "", 1, 25, AddKernel);
OUTPOST_REGISTER_OP(Sub, "", 1, 25, SubKernel);
OUTPOST_REGISTER_OP(Mul, "", 1, 25, MulKernel);
OUTPOST_REGISTER_OP(Div, "", 1, 25, DivKernel);
OUTPOST_REGISTER_OP(Mod, "", 10, 25, ModKernel);
OUTPOST_REGISTER_OP(Pow, "", 1, 25, PowKernel);

}  // namespace outpost::kernels::cpu
