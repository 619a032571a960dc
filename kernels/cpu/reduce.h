// Private helpers for reductions over a set of axes: a plan that merges adjacent dims and a
// driver that accumulates every input element into its output slot, parallel where safe.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "cpu/common.h"

namespace outpost::kernels::cpu {

// Which axes a reduction folds (rank <= Shape::kMaxRank, so it never allocates).
using AxisMask = SmallVector<bool, Shape::kMaxRank>;

// The input shape with size-1 dims dropped and adjacent dims of the same kind (reduced or kept)
// merged. ostride is the output stride of a merged dim (0 for reduced dims).
struct ReducePlan {
  int n = 0;
  int64_t dims[Shape::kMaxRank];
  bool red[Shape::kMaxRank];
  int64_t ostride[Shape::kMaxRank];
  int64_t in_numel = 1;
  int64_t out_numel = 1;
  int64_t count = 1;  // input elements folded into each output
};

inline ReducePlan MakeReducePlan(const Shape& in, const AxisMask& reduced) {
  ReducePlan p;
  for (int i = 0; i < in.rank(); ++i) {
    int64_t d = in[i];
    p.in_numel *= d;
    if (reduced[i]) p.count *= d; else p.out_numel *= d;
    if (d == 1) continue;
    if (p.n > 0 && p.red[p.n - 1] == reduced[i]) {
      p.dims[p.n - 1] *= d;
    } else {
      p.dims[p.n] = d;
      p.red[p.n++] = reduced[i];
    }
  }
  if (p.n == 0) {  // a single element
    p.dims[0] = 1;
    p.red[0] = false;
    p.n = 1;
  }
  int64_t s = 1;
  for (int i = p.n - 1; i >= 0; --i) {
    p.ostride[i] = p.red[i] ? 0 : s;
    if (!p.red[i]) s *= p.dims[i];
  }
  return p;
}

// For every input element x at flat index k mapping to output j: acc[j] = comb(acc[j], map(x, j)).
// acc must hold the identity for every output beforehand.
template <typename T, typename A, typename Map, typename Comb>
void ReduceAccumulate(ThreadPool& pool, const ReducePlan& p, const T* x, A* acc, Map map,
                      Comb comb) {
  if (p.in_numel == 0) return;
  const int n = p.n;
  const int64_t inner = p.dims[n - 1];
  const bool inner_red = p.red[n - 1];
  // Runs outer (merged dims 0..n-2) flat indices [ob, oe) over inner slice [ib, ie).
  auto run = [&](int64_t ob, int64_t oe, int64_t ib, int64_t ie) {
    int64_t coord[Shape::kMaxRank] = {};
    int64_t rem = ob, oo = 0;
    for (int d = n - 2; d >= 0; --d) {
      coord[d] = rem % p.dims[d];
      rem /= p.dims[d];
      oo += coord[d] * p.ostride[d];
    }
    for (int64_t o = ob; o < oe; ++o) {
      const T* row = x + o * inner;
      if (inner_red) {
        A a = acc[oo];
        for (int64_t i = ib; i < ie; ++i) a = comb(a, map(row[i], oo));
        acc[oo] = a;
      } else {
        A* out = acc + oo;
        for (int64_t i = ib; i < ie; ++i) out[i] = comb(out[i], map(row[i], oo + i));
      }
      for (int d = n - 2; d >= 0; --d) {  // odometer step
        oo += p.ostride[d];
        if (++coord[d] < p.dims[d]) break;
        oo -= p.ostride[d] * p.dims[d];
        coord[d] = 0;
      }
    }
  };
  const int64_t outer = p.in_numel / inner;
  const bool big = p.in_numel >= (1 << 16) && pool.size() > 1;
  if (big && n >= 2 && !p.red[0]) {
    // Distinct indices of merged dim 0 write distinct outputs.
    const int64_t per = outer / p.dims[0];
    pool.ParallelFor(p.dims[0], 1, [&](int64_t b, int64_t e) { run(b * per, e * per, 0, inner); });
  } else if (big && !inner_red) {
    // Slices of the (kept) innermost dim write distinct outputs.
    pool.ParallelFor(inner, 64, [&](int64_t b, int64_t e) { run(0, outer, b, e); });
  } else {
    run(0, outer, 0, inner);
  }
}

// Reads the axes of a reduction (attribute before `input_opset`, input 1 from then on) into a mask.
// Returns kUnavailable (DataDependent) when the axes input is not known during inference.
// *noop is set when the op must copy its input (noop_with_empty_axes with empty axes).
inline Status ReadReduceAxes(KernelContext& ctx, int rank, int input_opset,
                             AxisMask* mask, bool* noop) {
  IntList axes;
  bool axes_from_input = ctx.opset() >= input_opset;
  *noop = false;
  if (axes_from_input) {
    if (ctx.has_input(1)) {
      if (!ctx.input_known(1)) return ctx.DataDependent();
      if (!IsInteger(ctx.input(1).dtype())) return ctx.Fail("axes must be an integer tensor");
      axes = ReadInts(ctx.input(1));
    }
    if (axes.empty() && ctx.attrs().Int("noop_with_empty_axes", 0)) *noop = true;
  } else {
    axes = IntList(ctx.attrs().IntsView("axes"));
  }
  mask->clear();
  mask->resize(static_cast<size_t>(rank), axes.empty() && !*noop);
  for (int64_t a : axes) {
    OP_ASSIGN_OR_RETURN(int ax, NormalizeAxis(ctx, a, rank));
    if (rank == 0) continue;
    (*mask)[ax] = true;
  }
  return Status::Ok();
}

// The output shape of a reduction.
inline Shape ReducedShape(const Shape& in, const AxisMask& mask, bool keepdims) {
  Shape out;
  for (int i = 0; i < in.rank(); ++i) {
    if (!mask[i]) out.push_back(in[i]);
    else if (keepdims) out.push_back(1);
  }
  return out;
}

}  // namespace outpost::kernels::cpu

namespace outpost::kernels::cpu {

// Negative log likelihood over log-probabilities `lp` laid out [N, C, D] (D = product of the
// spatial dims) with targets [N, D]: the body shared by NegativeLogLikelihoodLoss and
// SoftmaxCrossEntropyLoss. Writes [N, D] losses (reduction "none") or one scalar.
template <typename T>
Status NllLossCompute(KernelContext& ctx, const T* lp, const Tensor& target, const Tensor* weight,
                      int64_t n, int64_t c, int64_t d, const std::string& reduction,
                      int64_t ignore_index, T* out) {
  using A = std::conditional_t<std::is_same_v<T, double>, double, float>;
  const T* w = weight ? weight->data<T>() : nullptr;
  double total = 0, wsum = 0;
  const bool none = reduction == "none";
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t k = 0; k < d; ++k) {
      int64_t t = ReadInt(target, i * d + k);
      A loss = 0, wt = 0;
      if (t != ignore_index) {
        if (t < 0 || t >= c)
          return ctx.BadInput("target " + std::to_string(t) + " out of range [0, " +
                              std::to_string(c) + ")");
        wt = w ? A(w[t]) : A(1);
        loss = -A(lp[(i * c + t) * d + k]) * wt;
      }
      if (none) out[i * d + k] = T(loss);
      total += loss;
      wsum += wt;
    }
  }
  if (reduction == "sum") out[0] = T(static_cast<A>(total));
  else if (reduction == "mean") out[0] = T(static_cast<A>(total / wsum));
  return Status::Ok();
}

// Validates the shapes of a loss op (input [N, C, d1...], target [N, d1...], weight [C]) and
// returns the output shape; fills n, c, d.
inline Expected<Shape> LossShapes(KernelContext& ctx, const Shape& in, const Shape& tgt,
                                  const std::string& reduction, int64_t* n, int64_t* c,
                                  int64_t* d) {
  if (reduction != "none" && reduction != "sum" && reduction != "mean")
    return ctx.Fail("unknown reduction '" + reduction + "'");
  if (in.rank() < 2 || tgt.rank() != in.rank() - 1) return ctx.Fail("input/target ranks mismatch");
  *n = in[0];
  *c = in[1];
  *d = 1;
  Shape out{in[0]};
  if (tgt[0] != in[0]) return ctx.Fail("target batch mismatch");
  for (int i = 2; i < in.rank(); ++i) {
    if (tgt[i - 1] != in[i]) return ctx.Fail("target shape mismatch");
    *d *= in[i];
    out.push_back(in[i]);
  }
  if (reduction != "none") return Shape{};
  return out;
}

}  // namespace outpost::kernels::cpu
