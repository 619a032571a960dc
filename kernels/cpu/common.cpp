#include "cpu/common.h"

namespace outpost::kernels::cpu {

Expected<Shape> BroadcastShapes(KernelContext& ctx, std::span<const Shape> shapes) {
  int rank = 0;
  for (auto& s : shapes) rank = std::max(rank, s.rank());
  Shape out;
  out.resize(rank, 1);
  for (auto& s : shapes) {
    int off = rank - s.rank();
    for (int i = 0; i < s.rank(); ++i) {
      int64_t d = s[i];
      int64_t& o = out[off + i];
      if (d == o || d == 1) continue;
      if (o == 1) {
        o = d;
        continue;
      }
      std::string msg = "shapes cannot be broadcast together:";
      for (auto& x : shapes) msg += " " + x.ToString();
      return ctx.BadInput(msg);
    }
  }
  return out;
}

BroadcastIndexer::BroadcastIndexer(const Shape& in, const Shape& out) : rank_(out.rank()) {
  int off = out.rank() - in.rank();
  int64_t stride = 1;
  for (int i = out.rank() - 1; i >= 0; --i) {
    out_dims_[i] = out[i];
    int j = i - off;
    int64_t d = j >= 0 ? in[j] : 1;
    in_strides_[i] = (d == 1) ? 0 : stride;
    stride *= d;
  }
  identity_ = in == out;
  scalar_ = in.numel() == 1;
}

int64_t BroadcastIndexer::Offset(int64_t idx) const {
  if (identity_) return idx;
  if (scalar_) return 0;
  int64_t off = 0;
  for (int i = rank_ - 1; i >= 0 && idx > 0; --i) {
    int64_t c = idx % out_dims_[i];
    idx /= out_dims_[i];
    off += c * in_strides_[i];
  }
  return off;
}

void BroadcastIndexer::Fill(std::vector<int64_t>* offsets) const {
  int64_t n = 1;
  for (int i = 0; i < rank_; ++i) n *= out_dims_[i];
  offsets->resize(n);
  for (int64_t i = 0; i < n; ++i) (*offsets)[i] = Offset(i);
}

Expected<int> NormalizeAxis(KernelContext& ctx, int64_t axis, int rank) {
  if (axis < -rank || axis >= std::max(rank, 1))
    return ctx.BadInput("axis " + std::to_string(axis) + " out of range for rank " +
                        std::to_string(rank));
  return static_cast<int>(axis < 0 ? axis + rank : axis);
}

IntList ReadInts(const Tensor& t) {
  IntList v(static_cast<size_t>(t.numel()));
  for (int64_t i = 0; i < t.numel(); ++i) v[i] = ReadInt(t, i);
  return v;
}

}  // namespace outpost::kernels::cpu
