// Where: y = cond ? x : y, with three-way numpy broadcasting; every storable type.
#include "cpu/elementwise.h"

namespace outpost::kernels::cpu {
namespace {
using namespace ew;  // NOLINT(build/namespaces)

Status WhereKernel(KernelContext& ctx) {
  for (int i = 0; i < 3; ++i)
    if (!ctx.has_input(i)) return ctx.Fail("expects three inputs");
  const Tensor& c = ctx.input(0);
  const Tensor& a = ctx.input(1);
  const Tensor& b = ctx.input(2);
  if (c.dtype() != DataType::kBool) return ctx.Fail("condition must be bool");
  if (a.dtype() != b.dtype()) return ctx.Fail("X and Y types differ");
  std::array<Shape, 3> s{c.shape(), a.shape(), b.shape()};
  return DispatchAll(ctx, a.dtype(), [&]<typename T>() -> Status {
    OP_ASSIGN_OR_RETURN(Shape out, BroadcastShapes(ctx, s));
    OP_ASSIGN_OR_RETURN(Tensor * y, ctx.Output(0, a.dtype(), out));
    if (ctx.infer_only() || !y) return Status::Ok();
    const bool* pc = c.data<bool>();
    const T* pa = a.data<T>();
    const T* pb = b.data<T>();
    T* po = y->data<T>();
    ForEachBroadcast<3>(ctx, out, s, [&](const std::array<int64_t, 3>& off, int64_t oo, int64_t n,
                                         const std::array<int64_t, 3>& st) {
      const bool* c0 = pc + off[0];
      const T* a0 = pa + off[1];
      const T* b0 = pb + off[2];
      T* o = po + oo;
      if (st[0] && st[1] && st[2]) {
        if constexpr (std::is_trivially_copyable_v<T>) {
          Blocked(0, n, [&](int64_t i) {  // both loads unconditional: a vector blend
            const T av = a0[i], bv = b0[i];
            o[i] = c0[i] ? av : bv;
          });
        } else {
          for (int64_t i = 0; i < n; ++i) o[i] = c0[i] ? a0[i] : b0[i];
        }
      } else {
        for (int64_t i = 0; i < n; ++i) o[i] = c0[i * st[0]] ? a0[i * st[1]] : b0[i * st[2]];
      }
    });
    return Status::Ok();
  });
}

}  // namespace

OUTPOST_REGISTER_OP(Where, "", 9, 25, WhereKernel);

}  // namespace outpost::kernels::cpu
