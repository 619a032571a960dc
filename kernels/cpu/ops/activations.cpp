// Activations: Relu Sigmoid Tanh Softplus Softsign Elu Selu Celu LeakyRelu HardSigmoid HardSwish
// ThresholdedRelu Shrink Mish Gelu PRelu.
#include <cmath>

#include "cpu/elementwise.h"

namespace outpost::kernels::cpu {
namespace {
using namespace ew;  // NOLINT(build/namespaces)

template <typename V>
inline V Softplus(V x) {
  return x > V(20) ? x : std::log1p(std::exp(x));
}

struct ReluOp {
  template <typename T>
  static auto Make(const Attributes&) {
    return [](Acc<T> x) -> Acc<T> { return x < 0 ? Acc<T>(0) : x; };  // NaN passes through
  }
};
OUTPOST_EW_UNARY(SigmoidOp, V(1) / (V(1) + std::exp(-x)));
OUTPOST_EW_UNARY(TanhOp, std::tanh(x));
OUTPOST_EW_UNARY(SoftplusOp, Softplus(x));
OUTPOST_EW_UNARY(SoftsignOp, x / (V(1) + std::fabs(x)));
OUTPOST_EW_UNARY(MishOp, x* std::tanh(Softplus(x)));

// Ops with float attributes: `Make` reads them once per call.
struct EluOp {
  template <typename T>
  static auto Make(const Attributes& a) {
    using V = Acc<T>;
    V alpha = a.Float("alpha", 1.0f);
    return [alpha](V x) -> V { return x >= 0 ? x : alpha * std::expm1(x); };
  }
};
struct SeluOp {
  template <typename T>
  static auto Make(const Attributes& a) {
    using V = Acc<T>;
    V alpha = a.Float("alpha", 1.67326319217681884765625f);
    V gamma = a.Float("gamma", 1.05070102214813232421875f);
    return [alpha, gamma](V x) -> V { return x > 0 ? gamma * x : gamma * alpha * std::expm1(x); };
  }
};
struct CeluOp {
  template <typename T>
  static auto Make(const Attributes& a) {
    using V = Acc<T>;
    V alpha = a.Float("alpha", 1.0f);
    return [alpha](V x) -> V { return x > 0 ? x : alpha * std::expm1(x / alpha); };
  }
};
struct LeakyReluOp {
  template <typename T>
  static auto Make(const Attributes& a) {
    using V = Acc<T>;
    V alpha = a.Float("alpha", 0.01f);
    return [alpha](V x) -> V { return x >= 0 ? x : alpha * x; };
  }
};
template <typename V>
inline V HardSigmoid(V x, V alpha, V beta) {
  return std::max(V(0), std::min(V(1), alpha * x + beta));
}
struct HardSigmoidOp {
  template <typename T>
  static auto Make(const Attributes& a) {
    using V = Acc<T>;
    V alpha = a.Float("alpha", 0.2f), beta = a.Float("beta", 0.5f);
    return [alpha, beta](V x) -> V { return HardSigmoid(x, alpha, beta); };
  }
};
struct HardSwishOp {
  template <typename T>
  static auto Make(const Attributes&) {
    using V = Acc<T>;
    return [](V x) -> V { return x * HardSigmoid(x, V(1) / V(6), V(0.5)); };
  }
};
struct ThresholdedReluOp {
  template <typename T>
  static auto Make(const Attributes& a) {
    using V = Acc<T>;
    V alpha = a.Float("alpha", 1.0f);
    return [alpha](V x) -> V { return x > alpha ? x : V(0); };
  }
};
// Shrink accepts integer inputs too: compute in double, cast back.
struct ShrinkOp {
  template <typename T>
  static auto Make(const Attributes& a) {
    double bias = a.Float("bias", 0.0f), lambd = a.Float("lambd", 0.5f);
    return [bias, lambd](Acc<T> v) -> Acc<T> {
      double x = static_cast<double>(v);
      return static_cast<Acc<T>>(x < -lambd ? x + bias : (x > lambd ? x - bias : 0.0));
    };
  }
};
struct GeluOp {
  static Status Check(KernelContext& ctx) {
    std::string m = ctx.attrs().String("approximate", "none");
    if (m != "none" && m != "tanh") return ctx.Fail("approximate must be 'none' or 'tanh'");
    return Status::Ok();
  }
  template <typename T>
  static auto Make(const Attributes& a) {
    using V = Acc<T>;
    bool tanh_approx = a.String("approximate", "none") == "tanh";
    return [tanh_approx](V x) -> V {
      if (tanh_approx) {
        const V k = static_cast<V>(0.7978845608028654);  // sqrt(2/pi)
        return V(0.5) * x * (V(1) + std::tanh(k * (x + V(0.044715) * x * x * x)));
      }
      return V(0.5) * x * (V(1) + std::erf(x * static_cast<V>(0.7071067811865476)));
    };
  }
};

// PRelu: y = x < 0 ? slope * x : x, slope broadcast to x. Before opset 7, a 1-D slope of
// size C applies along axis 1.
Status PReluKernel(KernelContext& ctx) {
  if (!ctx.has_input(0) || !ctx.has_input(1)) return ctx.Fail("expects two inputs");
  const Tensor& x = ctx.input(0);
  const Tensor& slope = ctx.input(1);
  if (slope.dtype() != x.dtype()) return ctx.Fail("input types differ");
  std::array<Shape, 2> s{x.shape(), slope.shape()};
  if (ctx.opset() < 7 && s[1].rank() == 1 && x.rank() >= 2 && s[1][0] == x.dim(1) &&
      s[1][0] != 1) {
    Shape b{s[1][0]};
    for (int i = 2; i < x.rank(); ++i) b.push_back(1);
    s[1] = b;
  }
  OP_ASSIGN_OR_RETURN(Shape out, BroadcastShapes(ctx, s));
  if (out != x.shape())
    return ctx.BadInput("slope " + slope.shape().ToString() + " does not broadcast to " +
                        x.shape().ToString());
  return DispatchNumeric(ctx, x.dtype(), [&]<typename T>() -> Status {
    OP_ASSIGN_OR_RETURN(Tensor * y, ctx.Output(0, x.dtype(), out));
    if (ctx.infer_only() || !y) return Status::Ok();
    BinaryMap(ctx, x.data<T>(), s[0], slope.data<T>(), s[1], y->data<T>(), out,
              [](Acc<T> v, Acc<T> a) -> Acc<T> {
                if constexpr (std::is_unsigned_v<T>) return v;
                else return v < 0 ? WrapMul(a, v) : v;
              });
    return Status::Ok();
  });
}

}  // namespace

OUTPOST_REGISTER_OP(Relu, "", 1, 25, (UnaryKernel<ReluOp, Accepts::kSigned>));
OUTPOST_REGISTER_OP(Sigmoid, "", 1, 25, UnaryKernel<SigmoidOp>);
OUTPOST_REGISTER_OP(Tanh, "", 1, 25, UnaryKernel<TanhOp>);
OUTPOST_REGISTER_OP(Softplus, "", 1, 25, UnaryKernel<SoftplusOp>);
OUTPOST_REGISTER_OP(Softsign, "", 1, 25, UnaryKernel<SoftsignOp>);
OUTPOST_REGISTER_OP(Mish, "", 18, 25, UnaryKernel<MishOp>);
OUTPOST_REGISTER_OP(Elu, "", 1, 25, UnaryKernel<EluOp>);
OUTPOST_REGISTER_OP(Selu, "", 1, 25, UnaryKernel<SeluOp>);
OUTPOST_REGISTER_OP(Celu, "", 12, 25, UnaryKernel<CeluOp>);
OUTPOST_REGISTER_OP(LeakyRelu, "", 1, 25, UnaryKernel<LeakyReluOp>);
OUTPOST_REGISTER_OP(HardSigmoid, "", 1, 25, UnaryKernel<HardSigmoidOp>);
OUTPOST_REGISTER_OP(HardSwish, "", 14, 25, UnaryKernel<HardSwishOp>);
OUTPOST_REGISTER_OP(ThresholdedRelu, "", 10, 25, UnaryKernel<ThresholdedReluOp>);
OUTPOST_REGISTER_OP(Shrink, "", 9, 25, (UnaryKernel<ShrinkOp, Accepts::kNumeric>));
OUTPOST_REGISTER_OP(Gelu, "", 20, 25, UnaryKernel<GeluOp>);
OUTPOST_REGISTER_OP(PRelu, "", 1, 25, PReluKernel);

}  // namespace outpost::kernels::cpu
