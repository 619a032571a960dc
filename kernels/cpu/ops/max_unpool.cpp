// MaxUnpool: scatters X into a zero tensor at the flat positions given by MaxPool's Indices.
#include "cpu/common.h"

namespace outpost::kernels::cpu {
namespace {

Status MaxUnpoolKernel(KernelContext& ctx) {
  if (!ctx.has_input(0) || !ctx.has_input(1)) return ctx.Fail("MaxUnpool needs X and I");
  const Tensor& x = ctx.input(0);
  const Tensor& ind = ctx.input(1);
  if (ind.shape() != x.shape()) return ctx.BadInput("I must have the shape of X");
  const int nd = x.rank() - 2;
  if (nd < 1) return ctx.Fail("X must be [N, C, spatial...]");
  const Attributes& at = ctx.attrs();
  auto ints_or = [&](const char* name, size_t n, int64_t def) {
    std::span<const int64_t> v = at.IntsView(name);
    return v.empty() ? IntList(n, def) : IntList(v);
  };
  const IntList ks(at.IntsView("kernel_shape"));
  const IntList strides = ints_or("strides", nd, 1), pads = ints_or("pads", 2 * nd, 0);
  if (static_cast<int>(ks.size()) != nd || static_cast<int>(strides.size()) != nd ||
      static_cast<int>(pads.size()) != 2 * nd)
    return ctx.Fail("kernel_shape/strides/pads do not match the spatial dims");
  // Indices address the default output shape; an explicit output_shape pads it at the end
  // (as the ONNX reference does), so positions are re-raveled into it.
  Shape def{x.dim(0), x.dim(1)};
  for (int i = 0; i < nd; ++i)
    def.push_back((x.dim(2 + i) - 1) * strides[i] + ks[i] - pads[i] - pads[i + nd]);
  Shape out = def;
  if (ctx.has_input(2)) {
    if (!ctx.input_known(2)) return ctx.DataDependent();
    auto os = ReadInts(ctx.input(2));
    OP_ASSIGN_OR_RETURN(out, Shape::From(os));
    if (out.rank() != x.rank()) return ctx.BadInput("output_shape rank differs from X");
    for (int i = 0; i < out.rank(); ++i)
      if (out[i] < def[i]) return ctx.BadInput("output_shape " + out.ToString() + " is smaller than " + def.ToString());
  }
  if (!IsStorable(x.dtype()) || x.dtype() == DataType::kString || x.dtype() == DataType::kBool)
    return ctx.NotSupported("data type " + std::string(DataTypeName(x.dtype())));
  OP_ASSIGN_OR_RETURN(Tensor * y, ctx.Output(0, x.dtype(), out));
  if (ctx.infer_only() || !y) return Status::Ok();
  return DispatchNumeric(ctx, x.dtype(), [&]<typename T>() {
    T* yp = y->data<T>();
    std::fill(yp, yp + y->numel(), T());
    const bool same = def == out;
    for (int64_t i = 0; i < x.numel(); ++i) {
      int64_t idx = ReadInt(ind, i);
      if (idx < 0 || idx >= def.numel()) return ctx.BadInput("index out of range");
      if (!same) {  // unravel in `def`, ravel in `out`
        int64_t rem = idx, pos = 0, stride = 1;
        for (int d = def.rank() - 1; d >= 0; --d) {
          pos += (rem % def[d]) * stride;
          rem /= def[d];
          stride *= out[d];
        }
        idx = pos;
      }
      yp[idx] = x.data<T>()[i];
    }
    return Status::Ok();
  });
}

}  // namespace

OUTPOST_REGISTER_OP(MaxUnpool, "", 9, 25, MaxUnpoolKernel);

}  // namespace outpost::kernels::cpu
