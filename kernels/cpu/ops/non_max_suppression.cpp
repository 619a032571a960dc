// NonMaxSuppression: greedy per-(batch, class) box selection by score and IoU.
#include <algorithm>
#include <numeric>

#include "cpu/common.h"

namespace outpost::kernels::cpu {
namespace {

Status NmsKernel(KernelContext& ctx) {
  if (!ctx.has_input(0) || !ctx.has_input(1)) return ctx.Fail("missing boxes or scores");
  const Tensor& boxes = ctx.input(0);
  const Tensor& scores = ctx.input(1);
  if (boxes.rank() != 3 || boxes.dim(2) != 4 || scores.rank() != 3 ||
      scores.dim(0) != boxes.dim(0) || scores.dim(2) != boxes.dim(1))
    return ctx.Fail("boxes must be [B, N, 4] and scores [B, C, N]");
  if (boxes.dtype() != DataType::kFloat || scores.dtype() != DataType::kFloat)
    return ctx.NotSupported("data type " + std::string(DataTypeName(boxes.dtype())));
  if (ctx.infer_only()) return ctx.DataDependent();
  auto scalar = [&](int i, double def) {
    return ctx.has_input(i) && ctx.input(i).numel() > 0 ? ReadDouble(ctx.input(i), 0) : def;
  };
  const int64_t max_out = ctx.has_input(2) && ctx.input(2).numel() > 0 ? ReadInt(ctx.input(2), 0) : 0;
  const float iou_th = static_cast<float>(scalar(3, 0.0));
  const bool has_score_th = ctx.has_input(4) && ctx.input(4).numel() > 0;
  const float score_th = static_cast<float>(scalar(4, 0.0));
  const bool center = ctx.attrs().Int("center_point_box", 0) != 0;
  const int64_t B = boxes.dim(0), N = boxes.dim(1), C = scores.dim(1);
  // Boxes as (y1, x1, y2, x2) with y1 <= y2, x1 <= x2.
  std::vector<float> bx(B * N * 4);
  for (int64_t i = 0; i < B * N; ++i) {
    const float* p = boxes.data<float>() + i * 4;
    float y1, x1, y2, x2;
    if (center) {
      x1 = p[0] - p[2] / 2, x2 = p[0] + p[2] / 2, y1 = p[1] - p[3] / 2, y2 = p[1] + p[3] / 2;
    } else {
      y1 = std::min(p[0], p[2]), y2 = std::max(p[0], p[2]);
      x1 = std::min(p[1], p[3]), x2 = std::max(p[1], p[3]);
    }
    bx[i * 4] = y1, bx[i * 4 + 1] = x1, bx[i * 4 + 2] = y2, bx[i * 4 + 3] = x2;
  }
  auto iou = [&](const float* a, const float* b) {
    const float ih = std::max(0.0f, std::min(a[2], b[2]) - std::max(a[0], b[0]));
    const float iw = std::max(0.0f, std::min(a[3], b[3]) - std::max(a[1], b[1]));
    const float inter = ih * iw;
    const float uni = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter;
    return uni > 0 ? inter / uni : 0.0f;
  };
  std::vector<int64_t> sel;
  std::vector<int64_t> order(N), picked;
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t c = 0; c < C; ++c) {
      const float* sc = scores.data<float>() + (b * C + c) * N;
      order.clear();
      for (int64_t i = 0; i < N; ++i)
        if (!has_score_th || sc[i] > score_th) order.push_back(i);
      std::stable_sort(order.begin(), order.end(),
                       [&](int64_t a, int64_t z) { return sc[a] > sc[z]; });
      picked.clear();
      for (int64_t i : order) {
        if (static_cast<int64_t>(picked.size()) >= max_out) break;
        bool keep = true;
        for (int64_t p : picked)
          if (iou(&bx[(b * N + i) * 4], &bx[(b * N + p) * 4]) > iou_th) keep = false;
        if (!keep) continue;
        picked.push_back(i);
        sel.insert(sel.end(), {b, c, i});
      }
    }
  }
  const int64_t k = static_cast<int64_t>(sel.size()) / 3;
  OP_ASSIGN_OR_RETURN(Tensor* y, ctx.Output(0, DataType::kInt64, Shape{k, 3}));
  if (y) std::copy(sel.begin(), sel.end(), y->data<int64_t>());
  return Status::Ok();
}

}  // namespace

OUTPOST_REGISTER_OP(NonMaxSuppression, "", 10, 25, NmsKernel);

}  // namespace outpost::kernels::cpu
