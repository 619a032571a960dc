// Pad: constant, reflect, edge and wrap padding (negative pads crop), optional axes (18).
#include "cpu/movement.h"

namespace outpost::kernels::cpu {
namespace {

// Input coordinate for output coordinate i of a dim of size d padded by `before`; -1 = constant.
int64_t MapIndex(int mode, int64_t i, int64_t before, int64_t d) {
  int64_t j = i - before;
  if (j >= 0 && j < d) return j;
  switch (mode) {
    case 1:  // reflect
      if (d == 1) return 0;
      while (j < 0 || j >= d) j = j < 0 ? -j : 2 * (d - 1) - j;
      return j;
    case 2: return j < 0 ? 0 : d - 1;        // edge
    case 3: return ((j % d) + d) % d;         // wrap
    default: return -1;                       // constant
  }
}

Status PadKernel(KernelContext& ctx) {
  if (!ctx.has_input(0)) return ctx.Fail("missing input 0");
  const Tensor& x = ctx.input(0);
  OP_RETURN_IF_ERROR(CheckStorable(ctx, x.dtype()));
  const int r = x.rank();
  const std::string mode_s = ctx.attrs().String("mode", "constant");
  const int mode = mode_s == "constant" ? 0 : mode_s == "reflect" ? 1 : mode_s == "edge" ? 2
                 : mode_s == "wrap" && ctx.opset() >= 19 ? 3 : -1;
  if (mode < 0) return ctx.NotSupported("mode '" + mode_s + "'");
  IntList pads, axes;
  OP_ASSIGN_OR_RETURN(auto value, Tensor::Allocate(x.dtype(), Shape{}));
  if (ctx.opset() < 11) {
    pads = IntList(ctx.attrs().IntsView(ctx.opset() < 2 ? "paddings" : "pads"));
    const float f = ctx.attrs().Float("value", 0.f);
    if (x.dtype() == DataType::kBool) {
      value.data<bool>()[0] = f != 0;
    } else if (x.dtype() != DataType::kString) {
      OP_RETURN_IF_ERROR(DispatchNumeric(ctx, x.dtype(), [&]<typename T>() {
        value.data<T>()[0] = FromAcc<T>(static_cast<Acc<T>>(f));
        return Status::Ok();
      }));
    }
  } else {
    for (int i = 1; i < 4; ++i)
      if (ctx.has_input(i) && !ctx.input_known(i)) return ctx.DataDependent();
    if (!ctx.has_input(1)) return ctx.Fail("missing pads");
    OP_ASSIGN_OR_RETURN(pads, IntsInput(ctx, 1));
    if (ctx.has_input(2) && ctx.input(2).numel() > 0) {
      if (ctx.input(2).dtype() != x.dtype()) return ctx.Fail("constant_value differs in type");
      CopyElems(x.dtype(), value.raw(), ctx.input(2).raw(), 1);
    }
    if (ctx.has_input(3)) {
      OP_ASSIGN_OR_RETURN(axes, IntsInput(ctx, 3));
    }
  }
  if (axes.empty()) {
    for (int k = 0; k < r; ++k) axes.push_back(k);
  }
  const size_t na = axes.size();
  if (pads.size() != 2 * na) return ctx.Fail("pads needs two entries per axis");
  IntList before(r, 0), after(r, 0);
  Shape out = x.shape();
  for (size_t i = 0; i < na; ++i) {
    OP_ASSIGN_OR_RETURN(int ax, NormalizeAxis(ctx, axes[i], r));
    before[ax] = pads[i];
    after[ax] = pads[i + na];
    const int64_t d = x.dim(ax) + before[ax] + after[ax];
    if (d < 0) return ctx.BadInput("pads crop more than the dim");
    if (mode != 0 && x.dim(ax) == 0 && d > 0) return ctx.BadInput("cannot pad an empty dim");
    out[ax] = d;
  }
  OP_ASSIGN_OR_RETURN(Tensor* y, ctx.Output(0, x.dtype(), out));
  if (ctx.infer_only() || !y || out.numel() == 0) return Status::Ok();
  std::vector<std::vector<int64_t>> maps(r);  // per-dim index maps: sized by the output
  for (int k = 0; k < r; ++k)
    for (int64_t i = 0; i < out[k]; ++i) maps[k].push_back(MapIndex(mode, i, before[k], x.dim(k)));
  IntList xs = StridesOf(x.shape());
  return DispatchStorage(ctx, x.dtype(), [&]<typename S>() {
    const S* src = x.data<S>();
    S* dst = y->data<S>();
    const S pv = value.data<S>()[0];
    if (r == 0) {
      dst[0] = src[0];
      return Status::Ok();
    }
    const int64_t inner = out[r - 1], rows = out.numel() / inner;
    const std::vector<int64_t>& last = maps[r - 1];
    IntList idx(r, 0);
    for (int64_t row = 0; row < rows; ++row, dst += inner) {
      int64_t off = 0;
      bool pad = false;
      for (int k = 0; k < r - 1; ++k) {
        const int64_t m = maps[k][idx[k]];
        pad |= m < 0;
        off += m * xs[k];
      }
      for (int64_t i = 0; i < inner; ++i)
        dst[i] = pad || last[i] < 0 ? pv : src[off + last[i]];
      for (int k = r - 2; k >= 0; --k) {
        if (++idx[k] < out[k]) break;
        idx[k] = 0;
      }
    }
    return Status::Ok();
  });
}

}  // namespace

OUTPOST_REGISTER_OP(Pad, "", 1, 25, PadKernel);

}  // namespace outpost::kernels::cpu
