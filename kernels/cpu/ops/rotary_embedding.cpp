// RotaryEmbedding (opset 23): rotates pairs of features (halves or interleaved) by cos/sin caches.
#include "cpu/common.h"

namespace outpost::kernels::cpu {
namespace {

Status RotaryKernel(KernelContext& ctx) {
  for (int i = 0; i < 3; ++i)
    if (!ctx.has_input(i)) return ctx.Fail("missing input " + std::to_string(i));
  const Tensor& x = ctx.input(0);
  const Tensor& cosc = ctx.input(1);
  const Tensor& sinc = ctx.input(2);
  const Tensor* pos = ctx.has_input(3) ? &ctx.input(3) : nullptr;
  const auto& at = ctx.attrs();
  const bool interleaved = at.Int("interleaved", 0) != 0;
  int64_t B, S, H, D;
  const bool four_d = x.rank() == 4;
  if (four_d) {
    B = x.dim(0), H = x.dim(1), S = x.dim(2), D = x.dim(3);
  } else if (x.rank() == 3) {
    H = at.Int("num_heads", 0);
    if (H <= 0 || x.dim(2) % H != 0) return ctx.Fail("3D input needs num_heads dividing hidden");
    B = x.dim(0), S = x.dim(1), D = x.dim(2) / H;
  } else {
    return ctx.Fail("input must be 3D or 4D");
  }
  int64_t rot = at.Int("rotary_embedding_dim", 0);
  if (rot == 0) rot = D;
  if (rot < 0 || rot > D || rot % 2) return ctx.Fail("bad rotary_embedding_dim");
  const int64_t half = rot / 2;
  if (cosc.shape() != sinc.shape() || cosc.dtype() != x.dtype() || sinc.dtype() != x.dtype())
    return ctx.Fail("cos_cache and sin_cache must match");
  if (pos) {
    if (cosc.rank() != 2 || cosc.dim(1) != half) return ctx.Fail("cache must be [max_pos, rot/2]");
    if (pos->rank() != 2 || pos->dim(0) != B || pos->dim(1) != S)
      return ctx.Fail("position_ids must be [batch, seq]");
  } else if (cosc.rank() != 3 || cosc.dim(0) != B || cosc.dim(1) != S || cosc.dim(2) != half) {
    return ctx.Fail("cache must be [batch, seq, rot/2] without position_ids");
  }
  return DispatchFloat(ctx, x.dtype(), [&]<typename T>() -> Status {
    OP_ASSIGN_OR_RETURN(Tensor* y, ctx.Output(0, x.dtype(), x.shape()));
    if (ctx.infer_only() || !y) return Status::Ok();
    const T* px = x.data<T>();
    T* py = y->data<T>();
    const int64_t max_pos = pos ? cosc.dim(0) : 0;
    for (int64_t b = 0; b < B; ++b) {
      for (int64_t s = 0; s < S; ++s) {
        int64_t row = b * S + s;
        if (pos) {
          row = ReadInt(*pos, b * S + s);
          if (row < 0 || row >= max_pos) return ctx.BadInput("position id out of range");
        }
        const T* c = cosc.data<T>() + row * half;
        const T* sn = sinc.data<T>() + row * half;
        for (int64_t h = 0; h < H; ++h) {
          const int64_t base = four_d ? ((b * H + h) * S + s) * D : ((b * S + s) * H + h) * D;
          const T* xi = px + base;
          T* yo = py + base;
          for (int64_t i = 0; i < half; ++i) {
            const int64_t i1 = interleaved ? 2 * i : i, i2 = interleaved ? 2 * i + 1 : i + half;
            const float x1 = float(xi[i1]), x2 = float(xi[i2]), cv = float(c[i]),
                        sv = float(sn[i]);
            yo[i1] = T(cv * x1 - sv * x2);
            yo[i2] = T(sv * x1 + cv * x2);
          }
          for (int64_t i = rot; i < D; ++i) yo[i] = xi[i];
        }
      }
    }
    return Status::Ok();
  });
}

}  // namespace

OUTPOST_REGISTER_OP(RotaryEmbedding, "", 23, 25, RotaryKernel);

}  // namespace outpost::kernels::cpu
