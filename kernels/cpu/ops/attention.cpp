// Attention (ONNX opset 23): scaled dot-product attention with masks, causal masking, KV cache,
// grouped-query heads, softcap and the optional QK output.
#include <cmath>
#include <cstring>
#include <limits>

#include "cpu/common.h"
#include "cpu/scratch.h"

namespace outpost::kernels::cpu {
namespace {

// Layout of a Q/K/V input as [B, heads, seq, head_size], from 3D [B, seq, heads*head] or 4D.
struct Qkv {
  int64_t b, h, s, d;
  bool three_d;
  // Flat index of element (bi, hi, si, di).
  int64_t At(int64_t bi, int64_t hi, int64_t si, int64_t di) const {
    return three_d ? ((bi * s + si) * h + hi) * d + di : ((bi * h + hi) * s + si) * d + di;
  }
};

Expected<Qkv> Layout(KernelContext& ctx, const Tensor& t, int64_t heads, const char* name) {
  if (t.rank() == 4) return Qkv{t.dim(0), t.dim(1), t.dim(2), t.dim(3), false};
  if (t.rank() != 3) return ctx.Fail(std::string(name) + " must be 3D or 4D");
  if (heads <= 0 || t.dim(2) % heads != 0)
    return ctx.Fail(std::string(name) + ": hidden size not divisible by the number of heads");
  return Qkv{t.dim(0), heads, t.dim(1), t.dim(2) / heads, true};
}

template <typename T>
using Wide = std::conditional_t<std::is_same_v<T, double>, double, float>;

Status AttentionKernel(KernelContext& ctx) {
  for (int i = 0; i < 3; ++i)
    if (!ctx.has_input(i)) return ctx.Fail("missing input " + std::to_string(i));
  if (ctx.has_input(6)) return ctx.NotSupported("nonpad_kv_seqlen");
  const Tensor& q = ctx.input(0);
  const Tensor& k = ctx.input(1);
  const Tensor& v = ctx.input(2);
  const Tensor* mask = ctx.has_input(3) ? &ctx.input(3) : nullptr;
  const Tensor* past_k = ctx.has_input(4) ? &ctx.input(4) : nullptr;
  const Tensor* past_v = ctx.has_input(5) ? &ctx.input(5) : nullptr;
  if (q.rank() != k.rank() || q.rank() != v.rank()) return ctx.Fail("Q, K, V ranks differ");
  if (k.dtype() != q.dtype() || v.dtype() != q.dtype()) return ctx.Fail("Q, K, V types differ");
  if ((past_k == nullptr) != (past_v == nullptr)) return ctx.Fail("past_key without past_value");
  const auto& at = ctx.attrs();
  OP_ASSIGN_OR_RETURN(Qkv lq, Layout(ctx, q, at.Int("q_num_heads", 0), "Q"));
  OP_ASSIGN_OR_RETURN(Qkv lk, Layout(ctx, k, at.Int("kv_num_heads", 0), "K"));
  OP_ASSIGN_OR_RETURN(Qkv lv, Layout(ctx, v, at.Int("kv_num_heads", 0), "V"));
  if (lk.b != lq.b || lv.b != lq.b || lk.h != lv.h || lk.s != lv.s || lk.d != lq.d)
    return ctx.Fail("incompatible Q/K/V shapes");
  if (lk.h <= 0 || lq.h % lk.h != 0)
    return ctx.Fail("q_num_heads must be a multiple of kv_num_heads");
  int64_t past = 0;
  if (past_k) {
    const Shape& pk = past_k->shape();
    const Shape& pv = past_v->shape();
    if (pk.rank() != 4 || pv.rank() != 4 || pk[0] != lq.b || pk[1] != lk.h || pk[3] != lk.d ||
        pv[0] != lq.b || pv[1] != lk.h || pv[2] != pk[2] || pv[3] != lv.d)
      return ctx.Fail("past_key/past_value shapes do not match K/V");
    past = pk[2];
  }
  const int64_t B = lq.b, Hq = lq.h, Hkv = lk.h, Sq = lq.s, D = lq.d, Dv = lv.d;
  const int64_t T = past + lk.s;
  // Mask broadcast to [B, Hq, Sq, Lm] (Lm <= T; missing columns are masked out).
  int64_t mstride[4] = {0, 0, 0, 0}, mlen = 0;
  if (mask) {
    const int r = mask->rank();
    if (r < 2 || r > 4) return ctx.Fail("attn_mask must have rank 2, 3 or 4");
    if (mask->dtype() != DataType::kBool && mask->dtype() != q.dtype())
      return ctx.Fail("attn_mask must be bool or the type of Q");
    const int64_t full[4] = {B, Hq, Sq, T};
    int64_t s = 1;
    for (int i = 3; i >= 4 - r; --i) {
      int64_t dm = mask->dim(i - (4 - r));
      if (i == 3) {
        if (dm > T) return ctx.Fail("attn_mask is longer than the total sequence");
        mlen = dm;
      } else if (dm != 1 && dm != full[i]) {
        return ctx.Fail("attn_mask shape " + mask->shape().ToString() + " does not broadcast");
      }
      mstride[i] = (dm == 1 && i != 3) ? 0 : s;
      s *= dm;
    }
  }
  const float scale_attr = at.Float("scale", 0.0f);
  const float softcap = at.Float("softcap", 0.0f);
  const bool causal = at.Int("is_causal", 0) != 0;
  const int64_t mode = at.Int("qk_matmul_output_mode", 0);
  if (mode < 0 || mode > 3) return ctx.Fail("qk_matmul_output_mode must be 0..3");

  Shape y_shape = lq.three_d ? Shape{B, Sq, Hq * Dv} : Shape{B, Hq, Sq, Dv};
  return DispatchFloat(ctx, q.dtype(), [&]<typename E>() -> Status {
    using W = Wide<E>;
    OP_ASSIGN_OR_RETURN(Tensor* y, ctx.Output(0, q.dtype(), y_shape));
    OP_ASSIGN_OR_RETURN(Tensor* pk_out, ctx.Output(1, q.dtype(), Shape{B, Hkv, T, D}));
    OP_ASSIGN_OR_RETURN(Tensor* pv_out, ctx.Output(2, q.dtype(), Shape{B, Hkv, T, Dv}));
    OP_ASSIGN_OR_RETURN(Tensor* qk_out, ctx.Output(3, q.dtype(), Shape{B, Hq, Sq, T}));
    if (ctx.infer_only()) return Status::Ok();
    // present key/value in [B, Hkv, T, d], in the compute type.
    ScratchVec<W> kc(B * Hkv * T * D), vc(B * Hkv * T * Dv);
    auto fill = [&](ScratchVec<W>& dst, const Tensor* pastt, const Tensor& cur, const Qkv& l) {
      const E* pc = cur.data<E>();
      for (int64_t b = 0; b < B; ++b)
        for (int64_t h = 0; h < Hkv; ++h)
          for (int64_t t = 0; t < T; ++t) {
            W* row = dst.data() + ((b * Hkv + h) * T + t) * l.d;
            if (t < past) {
              const E* pp = pastt->data<E>() + ((b * Hkv + h) * past + t) * l.d;
              for (int64_t d = 0; d < l.d; ++d) row[d] = W(pp[d]);
            } else {
              for (int64_t d = 0; d < l.d; ++d) row[d] = W(pc[l.At(b, h, t - past, d)]);
            }
          }
    };
    fill(kc, past_k, k, lk);
    fill(vc, past_v, v, lv);
    if (pk_out) for (size_t i = 0; i < kc.size(); ++i) pk_out->data<E>()[i] = E(kc[i]);
    if (pv_out) for (size_t i = 0; i < vc.size(); ++i) pv_out->data<E>()[i] = E(vc[i]);
    if (!y && !qk_out) return Status::Ok();
    const W scale = scale_attr != 0.0f ? W(scale_attr) : W(1) / std::sqrt(W(D));
    const E* pq = q.data<E>();
    const W kNegInf = -std::numeric_limits<W>::infinity();
    const int64_t reps = Hq / Hkv;
    ctx.pool().ParallelFor(B * Hq, 1, [&](int64_t hb, int64_t he) {
      ScratchVec<W> sc(T), qrow(D), acc(Dv);
      for (int64_t bh = hb; bh < he; ++bh) {
        const int64_t b = bh / Hq, h = bh % Hq, hk = h / reps;
        const W* kb = kc.data() + (b * Hkv + hk) * T * D;
        const W* vb = vc.data() + (b * Hkv + hk) * T * Dv;
        for (int64_t i = 0; i < Sq; ++i) {
          for (int64_t d = 0; d < D; ++d) qrow[d] = W(pq[lq.At(b, h, i, d)]);
          for (int64_t j = 0; j < T; ++j) {
            W s = 0;
            const W* kr = kb + j * D;
            for (int64_t d = 0; d < D; ++d) s += qrow[d] * kr[d];
            s *= scale;
            if (softcap > 0) s = W(softcap) * std::tanh(s / W(softcap));
            sc[j] = s;
          }
          E* qko = qk_out ? qk_out->data<E>() + (bh * Sq + i) * T : nullptr;
          if (qko && mode <= 1) for (int64_t j = 0; j < T; ++j) qko[j] = E(sc[j]);
          // Bias: attn_mask (missing columns masked) and causal (j > i + past masked).
          for (int64_t j = 0; j < T; ++j) {
            W bias = 0;
            if (mask) {
              if (j >= mlen) {
                bias = kNegInf;
              } else {
                int64_t off = b * mstride[0] + h * mstride[1] + i * mstride[2] + j * mstride[3];
                if (mask->dtype() == DataType::kBool) bias = mask->data<bool>()[off] ? 0 : kNegInf;
                else bias = W(mask->data<E>()[off]);
              }
            }
            if (causal && j > i + past) bias += kNegInf;
            sc[j] += bias;
          }
          if (qko && mode == 2) for (int64_t j = 0; j < T; ++j) qko[j] = E(sc[j]);
          W m = kNegInf;
          for (int64_t j = 0; j < T; ++j) m = std::max(m, sc[j]);
          W sum = 0;
          for (int64_t j = 0; j < T; ++j) sum += (sc[j] = std::exp(sc[j] - m));
          for (int64_t j = 0; j < T; ++j) sc[j] /= sum;
          if (qko && mode == 3) for (int64_t j = 0; j < T; ++j) qko[j] = E(sc[j]);
          if (!y) continue;
          std::fill(acc.begin(), acc.end(), W(0));
          for (int64_t j = 0; j < T; ++j) {
            const W p = sc[j];
            const W* vr = vb + j * Dv;
            for (int64_t d = 0; d < Dv; ++d) acc[d] += p * vr[d];
          }
          E* yo = y->data<E>();
          for (int64_t d = 0; d < Dv; ++d)
            yo[lq.three_d ? ((b * Sq + i) * Hq + h) * Dv + d : ((b * Hq + h) * Sq + i) * Dv + d] =
                E(acc[d]);
        }
      }
    });
    return Status::Ok();
  });
}

}  // namespace

OUTPOST_REGISTER_OP(Attention, "", 23, 23, AttentionKernel);

}  // namespace outpost::kernels::cpu
