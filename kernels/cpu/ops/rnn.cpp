// RNN, GRU and LSTM: one recurrent driver (directions, sequence_lens, initial states, layout)
// with the per-op cell update.
#include <algorithm>
#include <cctype>
#include <cmath>

#include "cpu/common.h"
#include "cpu/scratch.h"

namespace outpost::kernels::cpu {
namespace {

enum class Cell { kRnn, kGru, kLstm };

struct Act {
  enum Kind { kRelu, kTanh, kSigmoid, kAffine, kLeakyRelu, kThresholdedRelu, kScaledTanh,
              kHardSigmoid, kElu, kSoftsign, kSoftplus } kind = kTanh;
  double alpha = 0, beta = 0;
  template <typename W>
  W operator()(W x) const {
    switch (kind) {
      case kRelu: return x > 0 ? x : W(0);
      case kTanh: return std::tanh(x);
      case kSigmoid: return W(1) / (W(1) + std::exp(-x));
      case kAffine: return W(alpha) * x + W(beta);
      case kLeakyRelu: return x >= 0 ? x : W(alpha) * x;
      case kThresholdedRelu: return x > W(alpha) ? x : W(0);
      case kScaledTanh: return W(alpha) * std::tanh(W(beta) * x);
      case kHardSigmoid: return std::max(W(0), std::min(W(1), W(alpha) * x + W(beta)));
      case kElu: return x >= 0 ? x : W(alpha) * (std::exp(x) - W(1));
      case kSoftsign: return x / (W(1) + std::abs(x));
      case kSoftplus: return std::log1p(std::exp(x));
    }
    return x;
  }
};

// Parses the activations attribute into out[per_dir * dirs]: `per_dir` functions per direction
// (one set given for two directions applies to both), `defaults` when absent. Allocation-free.
Status ParseActs(KernelContext& ctx, int dirs, int per_dir, std::span<const char* const> defaults,
                 Act* out) {
  const Attribute* an = ctx.attrs().Find("activations");
  const Attribute* aa = ctx.attrs().Find("activation_alpha");
  const Attribute* ab = ctx.attrs().Find("activation_beta");
  const size_t given = an ? an->strings.size() : 0;
  const size_t total = static_cast<size_t>(per_dir * dirs);
  if (given != 0 && given != total && !(given == static_cast<size_t>(per_dir) && dirs == 2))
    return ctx.Fail("expected " + std::to_string(total) + " activations");
  struct Known { const char* name; Act::Kind kind; double a, b; bool ua, ub; };
  static const Known kKnown[] = {
      {"relu", Act::kRelu, 0, 0, false, false},
      {"tanh", Act::kTanh, 0, 0, false, false},
      {"sigmoid", Act::kSigmoid, 0, 0, false, false},
      {"affine", Act::kAffine, 1, 0, true, true},
      {"leakyrelu", Act::kLeakyRelu, 0.01, 0, true, false},
      {"thresholdedrelu", Act::kThresholdedRelu, 1, 0, true, false},
      {"scaledtanh", Act::kScaledTanh, 1, 1, true, true},
      {"hardsigmoid", Act::kHardSigmoid, 0.2, 0.5, true, true},
      {"elu", Act::kElu, 1, 0, true, false},
      {"softsign", Act::kSoftsign, 0, 0, false, false},
      {"softplus", Act::kSoftplus, 0, 0, false, false}};
  auto same = [](std::string_view a, std::string_view b) {  // ASCII case-insensitive
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i)
      if (std::tolower(static_cast<unsigned char>(a[i])) != b[i]) return false;
    return true;
  };
  size_t ai = 0, bi = 0;
  for (size_t i = 0; i < total; ++i) {
    const std::string_view n =
        given ? std::string_view(an->strings[i % given]) : std::string_view(defaults[i % per_dir]);
    const Known* k = nullptr;
    for (const Known& kk : kKnown)
      if (same(n, kk.name)) k = &kk;
    if (!k) return ctx.NotSupported("activation " + std::string(n));
    Act a{k->kind, k->a, k->b};
    if (k->ua && aa && ai < aa->floats.size()) a.alpha = aa->floats[ai++];
    if (k->ub && ab && bi < ab->floats.size()) a.beta = ab->floats[bi++];
    out[i] = a;
  }
  return Status::Ok();
}

template <Cell kCell>
Status RecurrentKernel(KernelContext& ctx) {
  constexpr int G = kCell == Cell::kRnn ? 1 : kCell == Cell::kGru ? 3 : 4;
  constexpr int kNumActs = kCell == Cell::kRnn ? 1 : kCell == Cell::kGru ? 2 : 3;
  for (int i = 0; i < 3; ++i)
    if (!ctx.has_input(i)) return ctx.Fail("missing input " + std::to_string(i));
  const Tensor& x = ctx.input(0);
  const Tensor& w = ctx.input(1);
  const Tensor& r = ctx.input(2);
  auto opt = [&](int i) { return ctx.has_input(i) ? &ctx.input(i) : nullptr; };
  const Tensor* bias = opt(3);
  const Tensor* lens = opt(4);
  const Tensor* h0 = opt(5);
  const Tensor* c0 = kCell == Cell::kLstm ? opt(6) : nullptr;
  const Tensor* peep = kCell == Cell::kLstm ? opt(7) : nullptr;
  const auto& at = ctx.attrs();
  const std::string direction = at.String("direction", "forward");
  const int dirs = direction == "bidirectional" ? 2 : 1;
  if (direction != "forward" && direction != "reverse" && direction != "bidirectional")
    return ctx.Fail("bad direction " + direction);
  const int64_t layout = ctx.opset() >= 14 ? at.Int("layout", 0) : 0;
  const int64_t H = at.Int("hidden_size", 0);
  const float clip = at.Float("clip", 0.0f);
  const bool lbr = kCell == Cell::kGru && at.Int("linear_before_reset", 0) != 0;
  const bool input_forget = kCell == Cell::kLstm && at.Int("input_forget", 0) != 0;
  if (x.rank() != 3 || w.rank() != 3 || r.rank() != 3) return ctx.Fail("X, W, R must be 3D");
  const int64_t S = layout ? x.dim(1) : x.dim(0), B = layout ? x.dim(0) : x.dim(1), I = x.dim(2);
  if (H <= 0 || w.dim(0) != dirs || w.dim(1) != G * H || w.dim(2) != I || r.dim(0) != dirs ||
      r.dim(1) != G * H || r.dim(2) != H)
    return ctx.Fail("W/R shapes do not match hidden_size, input size and direction");
  if (bias && (bias->rank() != 2 || bias->dim(0) != dirs || bias->dim(1) != 2 * G * H))
    return ctx.Fail("bad B shape");
  if (lens && (lens->numel() != B || !IsInteger(lens->dtype())))
    return ctx.Fail("bad sequence_lens");
  const Shape state_shape = layout ? Shape{B, dirs, H} : Shape{dirs, B, H};
  if (h0 && h0->shape() != state_shape) return ctx.Fail("bad initial_h shape");
  if (c0 && c0->shape() != state_shape) return ctx.Fail("bad initial_c shape");
  if (peep && (peep->rank() != 2 || peep->dim(0) != dirs || peep->dim(1) != 3 * H))
    return ctx.Fail("bad P shape");
  static constexpr const char* kDefaults[] = {"Sigmoid", "Tanh", "Tanh"};
  const std::span<const char* const> defaults =
      kCell == Cell::kRnn ? std::span<const char* const>(kDefaults + 1, 1)
                          : std::span<const char* const>(kDefaults, kNumActs);
  Act acts[2 * kNumActs];
  OP_RETURN_IF_ERROR(ParseActs(ctx, dirs, kNumActs, defaults, acts));
  const Shape y_shape = layout ? Shape{B, S, dirs, H} : Shape{S, dirs, B, H};
  return DispatchFloat(ctx, x.dtype(), [&]<typename T>() -> Status {
    using W = std::conditional_t<std::is_same_v<T, double>, double, float>;
    OP_ASSIGN_OR_RETURN(Tensor* y, ctx.Output(0, x.dtype(), y_shape));
    OP_ASSIGN_OR_RETURN(Tensor* yh, ctx.Output(1, x.dtype(), state_shape));
    Tensor* yc = nullptr;
    if constexpr (kCell == Cell::kLstm) {
      OP_ASSIGN_OR_RETURN(yc, ctx.Output(2, x.dtype(), state_shape));
    }
    if (ctx.infer_only()) return Status::Ok();
    for (int i = 1; i < 8; ++i)
      if (ctx.has_input(i) && i != 4 && ctx.input(i).dtype() != x.dtype())
        return ctx.Fail("inputs must share X's type");
    ScratchVec<int64_t> len(B, S);
    for (int64_t b = 0; b < B && lens; ++b) {
      len[b] = ReadInt(*lens, b);
      if (len[b] < 0 || len[b] > S) return ctx.BadInput("sequence_lens out of range");
    }
    if (y) std::fill(y->data<T>(), y->data<T>() + y->numel(), T(0));
    auto xat = [&](int64_t t, int64_t b) { return x.data<T>() + (layout ? b * S + t : t * B + b) * I; };
    auto sidx = [&](int d, int64_t b) { return (layout ? b * dirs + d : d * B + b) * H; };
    auto yidx = [&](int64_t t, int d, int64_t b) {
      return (layout ? (b * S + t) * dirs + d : (t * dirs + d) * B + b) * H;
    };
    auto clipf = [clip](W v) { return clip > 0 ? std::clamp(v, W(-clip), W(clip)) : v; };
    ctx.pool().ParallelFor(dirs * B, 1, [&](int64_t pb, int64_t pe) {
      ScratchVec<W> h(H), c(H), g(G * H), rh(G * H), hn(H);
      for (int64_t p = pb; p < pe; ++p) {
        const int d = static_cast<int>(p / B);
        const int64_t b = p % B;
        const bool rev = direction == "reverse" || d == 1;
        const T* wd = w.data<T>() + d * G * H * I;
        const T* rd = r.data<T>() + d * G * H * H;
        const T* wb = bias ? bias->data<T>() + d * 2 * G * H : nullptr;
        const T* pp = peep ? peep->data<T>() + d * 3 * H : nullptr;
        const Act* f = &acts[d * kNumActs];
        for (int64_t j = 0; j < H; ++j) {
          h[j] = h0 ? W(h0->data<T>()[sidx(d, b) + j]) : W(0);
          c[j] = c0 ? W(c0->data<T>()[sidx(d, b) + j]) : W(0);
        }
        for (int64_t s = 0; s < len[b]; ++s) {
          const int64_t t = rev ? len[b] - 1 - s : s;
          const T* xt = xat(t, b);
          for (int64_t k = 0; k < G * H; ++k) {  // g = X W^T + Wb, rh = H R^T + Rb
            W a = wb ? W(wb[k]) : W(0), e = wb ? W(wb[G * H + k]) : W(0);
            const T* wr = wd + k * I;
            for (int64_t i = 0; i < I; ++i) a += W(xt[i]) * W(wr[i]);
            const T* rr = rd + k * H;
            if (kCell != Cell::kGru || k < 2 * H || lbr)
              for (int64_t i = 0; i < H; ++i) e += h[i] * W(rr[i]);
            g[k] = a;
            rh[k] = e;
          }
          if constexpr (kCell == Cell::kRnn) {
            for (int64_t j = 0; j < H; ++j) h[j] = f[0](clipf(g[j] + rh[j]));
          } else if constexpr (kCell == Cell::kGru) {
            for (int64_t j = 0; j < H; ++j) {
              hn[j] = f[0](clipf(g[H + j] + rh[H + j]));  // reset gate r
              c[j] = hn[j] * h[j];                        // r . h (c is free in GRU)
            }
            for (int64_t j = 0; j < H; ++j) {
              W pre = g[2 * H + j];
              if (lbr) {
                pre += hn[j] * rh[2 * H + j];
              } else {  // (r . h) R_h^T + Rb_h
                const T* rr = rd + (2 * H + j) * H;
                W e = rh[2 * H + j];
                for (int64_t i = 0; i < H; ++i) e += c[i] * W(rr[i]);
                pre += e;
              }
              g[2 * H + j] = f[1](clipf(pre));
            }
            for (int64_t j = 0; j < H; ++j) {
              const W z = f[0](clipf(g[j] + rh[j]));
              h[j] = (W(1) - z) * g[2 * H + j] + z * h[j];
            }
          } else {
            for (int64_t j = 0; j < H; ++j) {
              const W ci = c[j];
              W ig = g[j] + rh[j] + (pp ? W(pp[j]) * ci : W(0));
              W fg = g[2 * H + j] + rh[2 * H + j] + (pp ? W(pp[2 * H + j]) * ci : W(0));
              const W cg = f[1](clipf(g[3 * H + j] + rh[3 * H + j]));
              ig = f[0](clipf(ig));
              fg = input_forget ? W(1) - ig : f[0](clipf(fg));
              c[j] = fg * ci + ig * cg;
              const W og = f[0](clipf(g[H + j] + rh[H + j] + (pp ? W(pp[H + j]) * c[j] : W(0))));
              h[j] = og * f[2](c[j]);
            }
          }
          if (y)
            for (int64_t j = 0; j < H; ++j) y->data<T>()[yidx(t, d, b) + j] = T(h[j]);
        }
        if (yh)
          for (int64_t j = 0; j < H; ++j) yh->data<T>()[sidx(d, b) + j] = T(h[j]);
        if (yc)
          for (int64_t j = 0; j < H; ++j) yc->data<T>()[sidx(d, b) + j] = T(c[j]);
      }
    });
    return Status::Ok();
  });
}

}  // namespace

OUTPOST_REGISTER_OP(RNN, "", 7, 25, RecurrentKernel<Cell::kRnn>);
OUTPOST_REGISTER_OP(GRU, "", 7, 25, RecurrentKernel<Cell::kGru>);
OUTPOST_REGISTER_OP(LSTM, "", 7, 25, RecurrentKernel<Cell::kLstm>);

}  // namespace outpost::kernels::cpu
