// Private helpers for the CPU elementwise kernels: broadcast loop drivers and kernel skeletons.
#pragma once

#include <array>
#include <cmath>
#include <limits>
#include <string>
#include <type_traits>

#include "cpu/common.h"

namespace outpost::kernels::cpu::ew {

// Output and inputs never overlap except exactly (in-place folds): no loop-carried dependency,
// so GCC may vectorize without the runtime alias checks its -O2 cost model refuses.
#define OUTPOST_IVDEP _Pragma("GCC ivdep")

// Calls body(i) for i in [begin, end). The fixed-size inner block lets GCC's -O2 ("very cheap")
// vectorizer replace it with vector code entirely, which it refuses for a loop of unknown count.
template <typename Body>
inline void Blocked(int64_t begin, int64_t end, Body&& body) {
  constexpr int64_t kBlock = 32;
  int64_t i = begin;
  for (; i + kBlock <= end; i += kBlock) {
    OUTPOST_IVDEP
    for (int64_t j = 0; j < kBlock; ++j) body(i + j);
  }
  for (; i < end; ++i) body(i);
}

// Element counts above which loops are split across the thread pool.
constexpr int64_t kParallelGrain = 1 << 16;

template <typename T>
constexpr bool kIsHalf = std::is_same_v<T, Float16> || std::is_same_v<T, BFloat16>;

template <typename T>
inline Acc<T> Load(const T& v) {
  if constexpr (kIsHalf<T>) return static_cast<float>(v);
  else return v;
}
template <typename T, typename V>
inline T Store(V v) {
  if constexpr (kIsHalf<T>) return T(static_cast<float>(v));
  else return static_cast<T>(v);
}

// Runs fn(begin, end) over [0, n), in parallel when n is large.
template <typename F>
void ForRange(KernelContext& ctx, int64_t n, F&& fn) {
  if (n < 2 * kParallelGrain) {
    fn(int64_t{0}, n);
    return;
  }
  ctx.pool().ParallelFor(n, kParallelGrain, [&](int64_t b, int64_t e) { fn(b, e); });
}

// y[i] = f(x[i]) over Acc values.
template <typename TI, typename TO, typename F>
void UnaryMap(KernelContext& ctx, const TI* x, TO* y, int64_t n, F f) {
  ForRange(ctx, n, [&](int64_t b, int64_t e) {
    Blocked(b, e, [&](int64_t i) { y[i] = Store<TO>(f(Load(x[i]))); });
  });
}

// A broadcast of N inputs to one output shape, with adjacent dimensions merged where every input
// allows it. The innermost stride of each input is 0 (broadcast) or 1 (contiguous).
template <int N>
struct BroadcastPlan {
  int rank = 0;
  int64_t dims[Shape::kMaxRank];
  int64_t strides[N][Shape::kMaxRank];

  BroadcastPlan(const Shape& out, const std::array<Shape, N>& ins) {
    int r = out.rank();
    int64_t st[N][Shape::kMaxRank];
    for (int k = 0; k < N; ++k) {
      int off = r - ins[k].rank();
      int64_t s = 1;
      for (int i = r - 1; i >= 0; --i) {
        int64_t d = i >= off ? ins[k][i - off] : 1;
        st[k][i] = d == 1 ? 0 : s;
        s *= d;
      }
    }
    for (int i = 0; i < r; ++i) {
      if (out[i] == 1) continue;
      bool merge = rank > 0;
      for (int k = 0; k < N && merge; ++k)
        merge = strides[k][rank - 1] == st[k][i] * out[i];
      if (merge) {
        dims[rank - 1] *= out[i];
        for (int k = 0; k < N; ++k) strides[k][rank - 1] = st[k][i];
      } else {
        dims[rank] = out[i];
        for (int k = 0; k < N; ++k) strides[k][rank] = st[k][i];
        ++rank;
      }
    }
    if (rank == 0) {
      dims[0] = 1;
      for (int k = 0; k < N; ++k) strides[k][0] = 0;
      rank = 1;
    }
  }
};

// Drives a broadcast loop: calls row(offsets[N], out_offset, count, inner_strides[N]) over runs
// of the innermost merged dimension, in parallel for large outputs.
template <int N, typename Row>
void ForEachBroadcast(KernelContext& ctx, const Shape& out, const std::array<Shape, N>& ins,
                      Row&& row) {
  BroadcastPlan<N> p(out, ins);
  const int last = p.rank - 1;
  const int64_t inner = p.dims[last];
  std::array<int64_t, N> is;
  for (int k = 0; k < N; ++k) is[k] = p.strides[k][last];
  if (p.rank == 1) {
    ForRange(ctx, inner, [&](int64_t b, int64_t e) {
      std::array<int64_t, N> off;
      for (int k = 0; k < N; ++k) off[k] = b * is[k];
      row(off, b, e - b, is);
    });
    return;
  }
  int64_t rows = 1;
  for (int i = 0; i < last; ++i) rows *= p.dims[i];
  auto body = [&](int64_t b, int64_t e) {
    int64_t idx[Shape::kMaxRank];
    int64_t rem = b;
    std::array<int64_t, N> off{};
    for (int i = last - 1; i >= 0; --i) {
      idx[i] = rem % p.dims[i];
      rem /= p.dims[i];
      for (int k = 0; k < N; ++k) off[k] += idx[i] * p.strides[k][i];
    }
    for (int64_t r = b; r < e; ++r) {
      row(off, r * inner, inner, is);
      for (int i = last - 1; i >= 0; --i) {
        for (int k = 0; k < N; ++k) off[k] += p.strides[k][i];
        if (++idx[i] < p.dims[i]) break;
        for (int k = 0; k < N; ++k) off[k] -= p.dims[i] * p.strides[k][i];
        idx[i] = 0;
      }
    }
  };
  int64_t grain = std::max<int64_t>(1, kParallelGrain / inner);
  if (rows * inner < 2 * kParallelGrain) {
    body(0, rows);
  } else {
    ctx.pool().ParallelFor(rows, grain, body);
  }
}

// o = f(a, b) with broadcasting; f takes and returns compute (Acc) values. The same-shape and
// scalar cases become tight loops the compiler can vectorize.
template <typename TA, typename TB, typename TO, typename F>
void BinaryMap(KernelContext& ctx, const TA* a, const Shape& as, const TB* b, const Shape& bs,
               TO* o, const Shape& os, F f) {
  ForEachBroadcast<2>(ctx, os, {as, bs}, [&](const std::array<int64_t, 2>& off, int64_t oo,
                                             int64_t n, const std::array<int64_t, 2>& st) {
    const TA* pa = a + off[0];
    const TB* pb = b + off[1];
    TO* po = o + oo;
    if (st[0] && st[1]) {
      Blocked(0, n, [&](int64_t i) { po[i] = Store<TO>(f(Load(pa[i]), Load(pb[i]))); });
    } else if (st[1]) {
      const auto va = Load(pa[0]);
      Blocked(0, n, [&](int64_t i) { po[i] = Store<TO>(f(va, Load(pb[i]))); });
    } else if (st[0]) {
      const auto vb = Load(pb[0]);
      Blocked(0, n, [&](int64_t i) { po[i] = Store<TO>(f(Load(pa[i]), vb)); });
    } else {
      const TO v = Store<TO>(f(Load(pa[0]), Load(pb[0])));
      for (int64_t i = 0; i < n; ++i) po[i] = v;
    }
  });
}

// Shapes of inputs 0 and 1 for a binary op, applying the legacy (opset < 7) `broadcast`/`axis`
// attributes of Add, Sub, Mul, Div, Pow, And, Or, Xor, Equal, Less and Greater.
Expected<std::array<Shape, 2>> BinaryShapes(KernelContext& ctx);

// Validates inputs 0..1, declares output 0 with the broadcast shape and `dtype`. Sets *y to
// nullptr when there is nothing to compute (inference or unused output).
Status BinarySetup(KernelContext& ctx, DataType dtype, std::array<Shape, 2>* shapes, Tensor** y);

// Validates input 0 and declares output 0 of the same shape with `dtype` (nullptr: nothing to do).
Status UnarySetup(KernelContext& ctx, DataType dtype, Tensor** y);

inline Status TypeError(KernelContext& ctx, DataType t) {
  return ctx.NotSupported("data type " + std::string(DataTypeName(t)));
}

// Dispatches signed integers and floats (for ops such as Neg that exclude unsigned types).
template <typename F>
Status DispatchSigned(KernelContext& ctx, DataType t, F&& f) {
  if (IsInteger(t) && !IsSigned(t)) return TypeError(ctx, t);
  return DispatchNumeric(ctx, t, f);
}

// Which input types a unary op accepts.
enum class Accepts { kFloat, kSigned, kInt, kNumeric };

template <Accepts A, typename F>
Status DispatchAccepts(KernelContext& ctx, DataType t, F&& f) {
  if constexpr (A == Accepts::kFloat) return DispatchFloat(ctx, t, f);
  else if constexpr (A == Accepts::kSigned) return DispatchSigned(ctx, t, f);
  else if constexpr (A == Accepts::kInt) return DispatchInt(ctx, t, f);
  else return DispatchNumeric(ctx, t, f);
}

// A same-type unary op: Op::Make<T>(attrs) returns a lambda over Acc<T>. Op::Check(ctx) may
// validate attributes first.
template <typename Op, Accepts A = Accepts::kFloat>
Status UnaryKernel(KernelContext& ctx) {
  if (!ctx.has_input(0)) return ctx.Fail("missing input 0");
  const Tensor& x = ctx.input(0);
  if constexpr (requires { Op::Check(ctx); }) OP_RETURN_IF_ERROR(Op::Check(ctx));
  return DispatchAccepts<A>(ctx, x.dtype(), [&]<typename T>() -> Status {
    Tensor* y;
    OP_RETURN_IF_ERROR(UnarySetup(ctx, x.dtype(), &y));
    if (!y) return Status::Ok();
    UnaryMap(ctx, x.data<T>(), y->data<T>(), x.numel(), Op::template Make<T>(ctx.attrs()));
    return Status::Ok();
  });
}

// Defines a stateless unary op `Name` whose value is `expr` of `x` (of compute type V).
#define OUTPOST_EW_UNARY(Name, expr)                        \
  struct Name {                                             \
    template <typename T>                                   \
    static auto Make(const Attributes&) {                   \
      using V = Acc<T>;                                     \
      return [](V x) -> V { return static_cast<V>(expr); }; \
    }                                                       \
  }

// Wrapping integer arithmetic (numpy semantics) without signed-overflow UB.
template <typename T>
inline T WrapAdd(T a, T b) {
  if constexpr (std::is_integral_v<T>) {
    using U = std::make_unsigned_t<T>;
    return static_cast<T>(static_cast<U>(static_cast<U>(a) + static_cast<U>(b)));
  } else {
    return a + b;
  }
}
template <typename T>
inline T WrapSub(T a, T b) {
  if constexpr (std::is_integral_v<T>) {
    using U = std::make_unsigned_t<T>;
    return static_cast<T>(static_cast<U>(static_cast<U>(a) - static_cast<U>(b)));
  } else {
    return a - b;
  }
}
template <typename T>
inline T WrapMul(T a, T b) {
  if constexpr (std::is_integral_v<T>) {
    using U = std::conditional_t<(sizeof(T) < sizeof(unsigned)), unsigned, std::make_unsigned_t<T>>;
    return static_cast<T>(static_cast<U>(static_cast<U>(a) * static_cast<U>(b)));
  } else {
    return a * b;
  }
}

// NaN-propagating max/min (numpy maximum/minimum).
template <typename T>
inline T Max2(T a, T b) {
  if constexpr (std::is_floating_point_v<T>) return (b > a || b != b) ? b : a;
  else return b > a ? b : a;
}
template <typename T>
inline T Min2(T a, T b) {
  if constexpr (std::is_floating_point_v<T>) return (b < a || b != b) ? b : a;
  else return b < a ? b : a;
}

}  // namespace outpost::kernels::cpu::ew
