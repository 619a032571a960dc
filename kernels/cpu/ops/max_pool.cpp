// MaxPool: max over N-d windows, with the optional Indices output (storage_order 0/1).
#include <limits>
#include <vector>

#include "cpu/common.h"
#include "cpu/gemm.h"
#include "cpu/packed.h"
#include "cpu/scratch.h"

namespace outpost::kernels::cpu {
namespace {

// Without Indices: row-wise max (NaN never wins, as in the reference).
template <typename T>
void FastMaxPool(KernelContext& ctx, const ConvGeom& g, Tensor* y) {
  const Tensor& x = ctx.input(0);
  using A = Acc<T>;
  const T* xp = x.data<T>();
  T* yp = y->data<T>();
  const int64_t planes = x.dim(0) * x.dim(1);
  ctx.pool().ParallelFor(planes, 1, [&](int64_t p0, int64_t p1) {
    ScratchVec<A> buf(g.out_size);
    for (int64_t p = p0; p < p1; ++p) {
      A lowest = std::numeric_limits<A>::lowest();
      if constexpr (std::is_floating_point_v<A>) lowest = -std::numeric_limits<A>::infinity();
      std::fill(buf.begin(), buf.end(), lowest);
      PoolPlaneRows<A>(g, xp + p * g.in_size, buf.data(), [](A a, A b) { return b > a ? b : a; });
      for (int64_t o = 0; o < g.out_size; ++o) yp[p * g.out_size + o] = FromAcc<T>(buf[o]);
    }
  });
}

template <typename T>
void RunMaxPool(KernelContext& ctx, const ConvGeom& g, bool col_major, Tensor* y, Tensor* ind) {
  const Tensor& x = ctx.input(0);
  const T* xp = x.data<T>();
  T* yp = y ? y->data<T>() : nullptr;
  int64_t* ip = ind ? ind->data<int64_t>() : nullptr;
  ForEachWindow(&ctx.pool(), g, x.dim(0) * x.dim(1), [&](int64_t p, int64_t o, const int64_t* st) {
    const T* xc = xp + p * g.in_size;
    Acc<T> best = std::numeric_limits<Acc<T>>::lowest();
    if constexpr (std::is_floating_point_v<Acc<T>>) best = -std::numeric_limits<Acc<T>>::infinity();
    int64_t arg = -1;
    ForWindowElems(g, st, [&](int64_t i) {
      const Acc<T> v = static_cast<Acc<T>>(xc[i]);
      if (v > best || arg < 0) {
        if (arg >= 0 || !(v != v)) best = v, arg = i;
      }
    });
    if (yp) yp[p * g.out_size + o] = FromAcc<T>(best);
    if (ip) {
      int64_t idx = std::max<int64_t>(arg, 0);
      if (col_major) {  // spatial index in column-major order
        const int64_t iw = idx % g.in[2], ih = (idx / g.in[2]) % g.in[1],
                      id = idx / (g.in[2] * g.in[1]);
        idx = id + g.in[0] * (ih + g.in[1] * iw);
      }
      ip[p * g.out_size + o] = p * g.in_size + idx;
    }
  });
}

Status MaxPoolKernel(KernelContext& ctx) {
  if (!ctx.has_input(0)) return ctx.Fail("missing input X");
  const Tensor& x = ctx.input(0);
  OP_ASSIGN_OR_RETURN(auto ks, PoolKernelShape(ctx, x.shape()));
  const bool ceil_mode = ctx.attrs().Int("ceil_mode", 0) != 0;
  const bool col_major = ctx.attrs().Int("storage_order", 0) != 0;
  OP_ASSIGN_OR_RETURN(ConvGeom g, MakeConvGeom(ctx, x.shape(), ks, ceil_mode));
  const DataType dt = x.dtype();
  if (!IsFloating(dt) && dt != DataType::kInt8 && dt != DataType::kUInt8)
    return ctx.NotSupported("data type " + std::string(DataTypeName(dt)));
  const Shape out = ConvOutShape(g, x.dim(0), x.dim(1));
  OP_ASSIGN_OR_RETURN(Tensor * y, ctx.Output(0, dt, out));
  OP_ASSIGN_OR_RETURN(Tensor * ind, ctx.Output(1, DataType::kInt64, out));
  if (ctx.infer_only() || out.numel() == 0) return Status::Ok();
  return DispatchNumeric(ctx, dt, [&]<typename T>() {
    if constexpr (std::is_floating_point_v<Acc<T>> || std::is_same_v<T, int8_t> ||
                  std::is_same_v<T, uint8_t>) {
      bool packed = false;
      if constexpr (std::is_same_v<T, float>) packed = !ind && y && PackedPoolApplies(g);
      bool widened = false;  // 8-bit codes (quantized models) through the float kernel: exact
      if constexpr (sizeof(T) == 1) widened = !ind && y && PackedPoolApplies(g);
      if (packed) {
        PackedMaxPool(&ctx.pool(), g, x.dim(0) * x.dim(1), x.data<float>(), y->data<float>());
      } else if (widened) {
        ScratchVec<float> xf(x.numel()), yf(y->numel());
        const T* xp = x.data<T>();
        for (int64_t i = 0; i < x.numel(); ++i) xf[i] = static_cast<float>(xp[i]);
        PackedMaxPool(&ctx.pool(), g, x.dim(0) * x.dim(1), xf.data(), yf.data());
        T* yp = y->data<T>();
        for (int64_t i = 0; i < y->numel(); ++i) yp[i] = static_cast<T>(yf[i]);
      } else if (ind) {
        RunMaxPool<T>(ctx, g, col_major, y, ind);
      } else if (y) {
        FastMaxPool<T>(ctx, g, y);
      }
      return Status::Ok();
    } else {
      return ctx.NotSupported("data type " + std::string(DataTypeName(dt)));
    }
  });
}

}  // namespace

OUTPOST_REGISTER_OP(MaxPool, "", 1, 25, MaxPoolKernel);

}  // namespace outpost::kernels::cpu
