// Unique: the distinct elements (or slices along an axis), their first indices, inverse and counts.
#include <algorithm>
#include <numeric>

#include "cpu/movement.h"

namespace outpost::kernels::cpu {
namespace {

Status UniqueKernel(KernelContext& ctx) {
  if (!ctx.has_input(0)) return ctx.Fail("missing input 0");
  const Tensor& x = ctx.input(0);
  OP_RETURN_IF_ERROR(CheckStorable(ctx, x.dtype()));
  if (!ctx.input_known(0)) return ctx.DataDependent();
  const bool flat = !ctx.attrs().Has("axis");
  const bool sorted = ctx.attrs().Int("sorted", 1) != 0;
  int axis = 0;
  if (!flat) {
    if (x.rank() == 0) return ctx.Fail("cannot take unique slices of a scalar");
    OP_ASSIGN_OR_RETURN(axis, NormalizeAxis(ctx, ctx.attrs().Int("axis", 0), x.rank()));
  }
  int64_t outer = 1, after = 1;
  const int64_t n = flat ? x.numel() : x.dim(axis);
  for (int k = 0; !flat && k < axis; ++k) outer *= x.dim(k);
  for (int k = axis + 1; !flat && k < x.rank(); ++k) after *= x.dim(k);
  std::vector<int64_t> order(n), first, inverse(n), counts;
  std::iota(order.begin(), order.end(), 0);
  OP_RETURN_IF_ERROR(DispatchAll(ctx, x.dtype(), [&]<typename T>() {
    const T* p = x.data<T>();
    // Lexicographic three-way comparison of slices a and b.
    auto cmp = [&](int64_t a, int64_t b) {
      for (int64_t o = 0; o < outer; ++o)
        for (int64_t i = 0; i < after; ++i) {
          const T& u = p[(o * n + a) * after + i];
          const T& v = p[(o * n + b) * after + i];
          if (u < v) return -1;
          if (v < u) return 1;
        }
      return 0;
    };
    std::stable_sort(order.begin(), order.end(),
                     [&](int64_t a, int64_t b) { return cmp(a, b) < 0; });
    std::vector<int64_t> group(n);  // sorted group of each slice
    int64_t g = -1;
    for (int64_t i = 0; i < n; ++i) {
      if (i == 0 || cmp(order[i - 1], order[i]) != 0) {
        ++g;
        first.push_back(order[i]);
        counts.push_back(0);
      }
      group[order[i]] = g;
      ++counts[g];
    }
    std::vector<int64_t> rank(first.size());  // output position of each group
    std::iota(rank.begin(), rank.end(), 0);
    if (!sorted) {
      std::vector<int64_t> perm(first.size());
      std::iota(perm.begin(), perm.end(), 0);
      std::sort(perm.begin(), perm.end(),
                [&](int64_t a, int64_t b) { return first[a] < first[b]; });
      std::vector<int64_t> f2, c2;
      for (size_t i = 0; i < perm.size(); ++i) {
        rank[perm[i]] = static_cast<int64_t>(i);
        f2.push_back(first[perm[i]]);
        c2.push_back(counts[perm[i]]);
      }
      first.swap(f2);
      counts.swap(c2);
    }
    for (int64_t i = 0; i < n; ++i) inverse[i] = rank[group[i]];
    return Status::Ok();
  }));
  const int64_t u = static_cast<int64_t>(first.size());
  Shape ys = flat ? Shape{u} : x.shape();
  if (!flat) ys[axis] = u;
  // Declared last to first: a sink that grows a vector of outputs keeps earlier pointers valid.
  OP_ASSIGN_OR_RETURN(Tensor* yc, ctx.Output(3, DataType::kInt64, Shape{u}));
  OP_ASSIGN_OR_RETURN(Tensor* yv, ctx.Output(2, DataType::kInt64, Shape{n}));
  OP_ASSIGN_OR_RETURN(Tensor* yi, ctx.Output(1, DataType::kInt64, Shape{u}));
  OP_ASSIGN_OR_RETURN(Tensor* y, ctx.Output(0, x.dtype(), ys));
  if (ctx.infer_only()) return Status::Ok();
  if (y) {
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t j = 0; j < u; ++j)
        CopyElems(x.dtype(), ElemPtr(*y, (o * u + j) * after),
                  ElemPtr(x, (o * n + first[j]) * after), after);
  }
  if (yi) std::copy(first.begin(), first.end(), yi->data<int64_t>());
  if (yv) std::copy(inverse.begin(), inverse.end(), yv->data<int64_t>());
  if (yc) std::copy(counts.begin(), counts.end(), yc->data<int64_t>());
  return Status::Ok();
}

}  // namespace

OUTPOST_REGISTER_OP(Unique, "", 11, 25, UniqueKernel);

}  // namespace outpost::kernels::cpu
