// TopK: the k largest (or smallest) values along an axis and their indices, ties by lower index.
#include <algorithm>

#include "cpu/movement.h"

namespace outpost::kernels::cpu {
namespace {

Status TopKKernel(KernelContext& ctx) {
  if (!ctx.has_input(0)) return ctx.Fail("missing input 0");
  const Tensor& x = ctx.input(0);
  if (x.rank() == 0) return ctx.Fail("TopK needs rank >= 1");
  int64_t k;
  if (ctx.opset() < 10) {
    k = ctx.attrs().Int("k", -1);
  } else {
    if (!ctx.has_input(1)) return ctx.Fail("missing k");
    if (!ctx.input_known(1)) return ctx.DataDependent();
    if (ctx.input(1).numel() != 1 || !IsInteger(ctx.input(1).dtype()))
      return ctx.Fail("k must be one integer");
    k = ReadInt(ctx.input(1), 0);
  }
  OP_ASSIGN_OR_RETURN(int axis, NormalizeAxis(ctx, ctx.attrs().Int("axis", -1), x.rank()));
  const int64_t n = x.dim(axis);
  if (k < 0 || k > n) return ctx.BadInput("k " + std::to_string(k) + " out of range");
  const bool largest = ctx.attrs().Int("largest", 1) != 0;
  Shape out = x.shape();
  out[axis] = k;
  return DispatchNumeric(ctx, x.dtype(), [&]<typename T>() -> Status {
    // Declared last to first: a sink that grows a vector of outputs keeps earlier pointers valid.
    OP_ASSIGN_OR_RETURN(Tensor* yi, ctx.Output(1, DataType::kInt64, out));
    OP_ASSIGN_OR_RETURN(Tensor* yv, ctx.Output(0, x.dtype(), out));
    if (ctx.infer_only()) return Status::Ok();
    int64_t outer = 1, after = 1;
    for (int d = 0; d < axis; ++d) outer *= x.dim(d);
    for (int d = axis + 1; d < x.rank(); ++d) after *= x.dim(d);
    const T* src = x.data<T>();
    auto lines = [&](int64_t b, int64_t e) {
      std::vector<std::pair<Acc<T>, int64_t>> v(n);
      for (int64_t line = b; line < e; ++line) {
        const int64_t o = line / after, a = line % after;
        for (int64_t j = 0; j < n; ++j) v[j] = {src[(o * n + j) * after + a], j};
        auto better = [largest](const auto& p, const auto& q) {
          if (p.first != q.first) return largest ? p.first > q.first : p.first < q.first;
          return p.second < q.second;
        };
        std::partial_sort(v.begin(), v.begin() + k, v.end(), better);
        for (int64_t j = 0; j < k; ++j) {
          const int64_t at = (o * k + j) * after + a;
          if (yv) yv->data<T>()[at] = FromAcc<T>(v[j].first);
          if (yi) yi->data<int64_t>()[at] = v[j].second;
        }
      }
    };
    ParallelRows(ctx, outer * after, n, lines);
    return Status::Ok();
  });
}

}  // namespace

OUTPOST_REGISTER_OP(TopK, "", 1, 25, TopKKernel);

}  // namespace outpost::kernels::cpu
