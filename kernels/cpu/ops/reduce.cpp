// The Reduce family: ReduceSum/Mean/Max/Min/Prod/L1/L2/LogSum/LogSumExp/SumSquare.
#include <cmath>
#include <limits>

#include "cpu/common.h"
#include "cpu/reduce.h"
#include "cpu/scratch.h"

namespace outpost::kernels::cpu {
namespace {

enum class Kind { kSum, kMean, kMax, kMin, kProd, kL1, kL2, kLogSum, kLogSumExp, kSumSquare };

template <typename A>
A Lowest() {
  if constexpr (std::numeric_limits<A>::has_infinity) return -std::numeric_limits<A>::infinity();
  else return std::numeric_limits<A>::lowest();
}
template <typename A>
A Highest() {
  if constexpr (std::numeric_limits<A>::has_infinity) return std::numeric_limits<A>::infinity();
  else return std::numeric_limits<A>::max();
}

template <typename A>
A MaxOf(A a, A x) { return (x > a || x != x) ? x : a; }  // NaN propagates
template <typename A>
A MinOf(A a, A x) { return (x < a || x != x) ? x : a; }

template <Kind K, typename T>
void RunReduce(ThreadPool& pool, const ReducePlan& p, const T* x, T* y) {
  using A = Acc<T>;
  using F = std::conditional_t<std::is_same_v<A, double>, double, float>;  // for sqrt/log
  // Accumulate straight into y when it has the accumulator's type (inputs never share a buffer
  // with the output: the planner's lifetimes overlap at the producing step); else in a scratch.
  ScratchVec<A> acc_heap(std::is_same_v<A, T> ? 0 : p.out_numel);
  A* acc;
  if constexpr (std::is_same_v<A, T>) {
    acc = y;
  } else {
    acc = acc_heap.data();
  }
  auto add = [](A a, A v) { return static_cast<A>(a + v); };
  if constexpr (K == Kind::kMax || K == Kind::kLogSumExp) {
    std::fill(acc, acc + p.out_numel, Lowest<A>());
    ReduceAccumulate(pool, p, x, acc, [](T v, int64_t) { return A(v); }, MaxOf<A>);
  } else if constexpr (K == Kind::kMin) {
    std::fill(acc, acc + p.out_numel, Highest<A>());
    ReduceAccumulate(pool, p, x, acc, [](T v, int64_t) { return A(v); }, MinOf<A>);
  } else if constexpr (K == Kind::kProd) {
    std::fill(acc, acc + p.out_numel, A(1));
    ReduceAccumulate(pool, p, x, acc, [](T v, int64_t) { return A(v); },
                     [](A a, A v) { return static_cast<A>(a * v); });
  } else {
    std::fill(acc, acc + p.out_numel, A(0));
    auto map = [](T t, int64_t) {
      A v = A(t);
      if constexpr (K == Kind::kL1) {
        if constexpr (std::is_signed_v<A>) return static_cast<A>(v < 0 ? -v : v);
        else return v;
      } else if constexpr (K == Kind::kL2 || K == Kind::kSumSquare) {
        return static_cast<A>(v * v);
      } else {
        return v;
      }
    };
    ReduceAccumulate(pool, p, x, acc, map, add);
  }
  if constexpr (K == Kind::kLogSumExp) {
    ScratchVec<F> sum(p.out_numel, F(0));
    const A* mx = acc;
    ReduceAccumulate(
        pool, p, x, sum.data(),
        [mx](T v, int64_t j) {
          F m = static_cast<F>(mx[j]);
          return std::isfinite(m) ? std::exp(static_cast<F>(A(v)) - m) : F(0);
        },
        [](F a, F v) { return a + v; });
    for (int64_t j = 0; j < p.out_numel; ++j) {
      F m = static_cast<F>(mx[j]);
      y[j] = FromAcc<T>(static_cast<A>(std::isfinite(m) ? std::log(sum[j]) + m : m));
    }
    return;
  }
  for (int64_t j = 0; j < p.out_numel; ++j) {
    A a = acc[j];
    if constexpr (K == Kind::kMean) {
      if constexpr (std::is_integral_v<A>) a = p.count ? static_cast<A>(a / p.count) : A(0);
      else a = a / static_cast<A>(p.count);
    } else if constexpr (K == Kind::kL2) {
      a = static_cast<A>(std::sqrt(static_cast<F>(a)));
    } else if constexpr (K == Kind::kLogSum) {
      a = static_cast<A>(std::log(static_cast<F>(a)));
    }
    y[j] = FromAcc<T>(a);
  }
}

template <Kind K>
Status ReduceKernel(KernelContext& ctx) {
  if (!ctx.has_input(0)) return ctx.Fail("missing input 0");
  const Tensor& x = ctx.input(0);
  const int input_opset = (K == Kind::kSum) ? 13 : 18;
  AxisMask mask;
  bool noop = false;
  DataType dt = x.dtype();
  const bool minmax = K == Kind::kMax || K == Kind::kMin;
  if (dt == DataType::kBool && !(minmax && ctx.opset() >= 20))
    return ctx.NotSupported("data type bool");
  if (!IsFloating(dt) && !IsInteger(dt) && dt != DataType::kBool)
    return ctx.NotSupported("data type " + std::string(DataTypeName(dt)));
  OP_RETURN_IF_ERROR(ReadReduceAxes(ctx, x.rank(), input_opset, &mask, &noop));
  const bool keepdims = ctx.attrs().Int("keepdims", 1) != 0;
  Shape out_shape = ReducedShape(x.shape(), mask, keepdims);
  OP_ASSIGN_OR_RETURN(Tensor* y, ctx.Output(0, dt, out_shape));
  if (ctx.infer_only() || !y) return Status::Ok();
  // With noop_with_empty_axes nothing is reduced: every output folds exactly one input.
  ReducePlan plan = MakeReducePlan(x.shape(), mask);
  auto body = [&]<typename T>() -> Status {
    RunReduce<K, T>(ctx.pool(), plan, x.data<T>(), y->data<T>());
    return Status::Ok();
  };
  if (dt == DataType::kBool) return body.template operator()<uint8_t>();
  return DispatchNumeric(ctx, dt, body);
}

}  // namespace

OUTPOST_REGISTER_OP(ReduceSum, "", 1, 25, ReduceKernel<Kind::kSum>);
OUTPOST_REGISTER_OP(ReduceMean, "", 1, 25, ReduceKernel<Kind::kMean>);
OUTPOST_REGISTER_OP(ReduceMax, "", 1, 25, ReduceKernel<Kind::kMax>);
OUTPOST_REGISTER_OP(ReduceMin, "", 1, 25, ReduceKernel<Kind::kMin>);
OUTPOST_REGISTER_OP(ReduceProd, "", 1, 25, ReduceKernel<Kind::kProd>);
OUTPOST_REGISTER_OP(ReduceL1, "", 1, 25, ReduceKernel<Kind::kL1>);
OUTPOST_REGISTER_OP(ReduceL2, "", 1, 25, ReduceKernel<Kind::kL2>);
OUTPOST_REGISTER_OP(ReduceLogSum, "", 1, 25, ReduceKernel<Kind::kLogSum>);
OUTPOST_REGISTER_OP(ReduceLogSumExp, "", 1, 25, ReduceKernel<Kind::kLogSumExp>);
OUTPOST_REGISTER_OP(ReduceSumSquare, "", 1, 25, ReduceKernel<Kind::kSumSquare>);

}  // namespace outpost::kernels::cpu
