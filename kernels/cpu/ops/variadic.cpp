// Variadic elementwise ops with multidirectional broadcasting: Max Min Sum Mean.
#include "cpu/elementwise.h"

namespace outpost::kernels::cpu {
namespace {
using namespace ew;  // NOLINT(build/namespaces)

struct MaxF {
  template <typename V>
  V operator()(V a, V b) const { return Max2(a, b); }
};
struct MinF {
  template <typename V>
  V operator()(V a, V b) const { return Min2(a, b); }
};
struct SumF {
  template <typename V>
  V operator()(V a, V b) const { return WrapAdd(a, b); }
};

// Folds the inputs pairwise into the output: y = f(f(x0, x1), x2)...; kMean divides by the count.
template <typename Fn, bool kMean = false>
Status VariadicKernel(KernelContext& ctx) {
  int n = ctx.num_inputs();
  if (n < 1) return ctx.Fail("expects at least one input");
  SmallVector<Shape, 8> shapes;
  for (int i = 0; i < n; ++i) {
    if (!ctx.has_input(i)) return ctx.Fail("input " + std::to_string(i) + " is missing");
    if (ctx.input(i).dtype() != ctx.input(0).dtype()) return ctx.Fail("input types differ");
    shapes.push_back(ctx.input(i).shape());
  }
  DataType dt = ctx.input(0).dtype();
  auto run = [&]<typename T>() -> Status {
    OP_ASSIGN_OR_RETURN(Shape out, BroadcastShapes(ctx, shapes));
    OP_ASSIGN_OR_RETURN(Tensor * y, ctx.Output(0, dt, out));
    if (ctx.infer_only() || !y) return Status::Ok();
    T* po = y->data<T>();
    const T* x0 = ctx.input(0).data<T>();
    if (n == 1) {
      UnaryMap(ctx, x0, po, y->numel(), [](Acc<T> v) { return v; });
    } else {
      BinaryMap(ctx, x0, shapes[0], ctx.input(1).data<T>(), shapes[1], po, out, Fn());
      for (int i = 2; i < n; ++i)
        BinaryMap(ctx, static_cast<const T*>(po), out, ctx.input(i).data<T>(), shapes[i], po, out,
                  Fn());
    }
    if constexpr (kMean) {
      const Acc<T> cnt = static_cast<Acc<T>>(n);
      UnaryMap(ctx, static_cast<const T*>(po), po, y->numel(), [cnt](Acc<T> v) { return v / cnt; });
    }
    return Status::Ok();
  };
  if constexpr (kMean) return DispatchFloat(ctx, dt, run);
  else return DispatchNumeric(ctx, dt, run);
}

}  // namespace

OUTPOST_REGISTER_OP(Max, "", 1, 25, VariadicKernel<MaxF>);
OUTPOST_REGISTER_OP(Min, "", 1, 25, VariadicKernel<MinF>);
OUTPOST_REGISTER_OP(Sum, "", 1, 25, VariadicKernel<SumF>);
OUTPOST_REGISTER_OP(Mean, "", 1, 25, (VariadicKernel<SumF, true>));

}  // namespace outpost::kernels::cpu
