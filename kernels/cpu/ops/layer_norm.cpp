// LayerNormalization: normalize over dims [axis, rank), with Scale/B broadcast to those dims and
// optional Mean / InvStdDev outputs.
#include "cpu/norm.h"
#include "cpu/scratch.h"

namespace outpost::kernels::cpu {
namespace {

Status LayerNormKernel(KernelContext& ctx) {
  if (!ctx.has_input(0) || !ctx.has_input(1)) return ctx.Fail("LayerNormalization needs X, Scale");
  const Tensor& x = ctx.input(0);
  const Tensor& scale = ctx.input(1);
  const Tensor* bias = ctx.has_input(2) ? &ctx.input(2) : nullptr;
  if (!IsFloating(x.dtype()))
    return ctx.NotSupported("data type " + std::string(DataTypeName(x.dtype())));
  OP_ASSIGN_OR_RETURN(int axis, NormalizeAxis(ctx, ctx.attrs().Int("axis", -1), x.rank()));
  const double eps = ctx.attrs().Float("epsilon", 1e-5f);
  const int64_t stash = ctx.attrs().Int("stash_type", 1);
  if (stash != 1) return ctx.NotSupported("stash_type " + std::to_string(stash));
  Shape norm(std::span<const int64_t>(x.shape().begin() + axis, x.rank() - axis));
  for (const Tensor* t : {&scale, bias}) {
    if (!t) continue;
    Shape shapes[2] = {t->shape(), norm};
    OP_ASSIGN_OR_RETURN(Shape b, BroadcastShapes(ctx, shapes));
    if (b != norm) return ctx.BadInput("Scale/B " + t->shape().ToString() + " vs " + norm.ToString());
  }
  Shape stat = x.shape();
  for (int i = axis; i < stat.rank(); ++i) stat[i] = 1;
  OP_ASSIGN_OR_RETURN(Tensor * y, ctx.Output(0, x.dtype(), x.shape()));
  OP_ASSIGN_OR_RETURN(Tensor * mean, ctx.Output(1, DataType::kFloat, stat));
  OP_ASSIGN_OR_RETURN(Tensor * inv, ctx.Output(2, DataType::kFloat, stat));
  if (ctx.infer_only() || x.numel() == 0) return Status::Ok();
  const int64_t len = norm.numel(), rows = x.numel() / len;
  ScratchDoubles sv(&scale), bv(bias);
  // Scale/B broadcast to the full normalized shape.
  BroadcastIndexer si(scale.shape(), norm), bi(bias ? bias->shape() : norm, norm);
  return DispatchFloat(ctx, x.dtype(), [&]<typename T>() {
    using A = Acc<T>;
    ScratchVec<A> s(len), b(len, A(0));
    for (int64_t j = 0; j < len; ++j) {
      s[j] = static_cast<A>(sv[si.Offset(j)]);
      if (bias) b[j] = static_cast<A>(bv[bi.Offset(j)]);
    }
    ScratchVec<T> ytmp(y ? 0 : x.numel());
    T* yp = y ? y->data<T>() : ytmp.data();
    NormRows<T>(ctx.pool(), x.data<T>(), yp, rows, len, eps, false,
                [&](int64_t, int64_t j, A* sc, A* bi) { *sc = s[j], *bi = b[j]; },
                mean ? mean->data<float>() : nullptr, inv ? inv->data<float>() : nullptr);
    return Status::Ok();
  });
}

}  // namespace

OUTPOST_REGISTER_OP(LayerNormalization, "", 17, 25, LayerNormKernel);

}  // namespace outpost::kernels::cpu
