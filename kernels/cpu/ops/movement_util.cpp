// Shared implementation of kernels/cpu/movement.h (strided box copies, fills, int inputs).
#include <cassert>
#include <algorithm>
#include <cstring>

#include "cpu/movement.h"

namespace outpost::kernels::cpu {
namespace {

constexpr int kMaxBoxRank = 2 * Shape::kMaxRank;

struct Box {
  int rank = 0;
  int64_t dims[kMaxBoxRank];
  int64_t ds[kMaxBoxRank];
  int64_t ss[kMaxBoxRank];
};

// dst[a * dsa + b] = src[a + b * ssb] for a < na, b < nb, in cache-sized tiles.
template <typename S>
void Transpose2D(S* dst, const S* src, int64_t na, int64_t nb, int64_t dsa, int64_t ssb) {
  constexpr int64_t kTile = sizeof(S) >= 4 ? 16 : 32;
  for (int64_t a0 = 0; a0 < na; a0 += kTile) {
    int64_t a1 = std::min(na, a0 + kTile);
    for (int64_t b0 = 0; b0 < nb; b0 += kTile) {
      int64_t b1 = std::min(nb, b0 + kTile);
      for (int64_t a = a0; a < a1; ++a) {
        S* d = dst + a * dsa;
        const S* s = src + a;
        for (int64_t b = b0; b < b1; ++b) d[b] = s[b * ssb];
      }
    }
  }
}

template <typename S>
void CopyBoxT(S* dst, const S* src, const Box& box, ThreadPool* pool) {
  const int r = box.rank;
  const int64_t inner = box.dims[r - 1], dsi = box.ds[r - 1], ssi = box.ss[r - 1];
  // A dim read contiguously while the output's inner dim is not: transpose it in tiles.
  int blk = -1;
  if (dsi == 1 && ssi != 1) {
    for (int k = r - 2; k >= 0; --k)
      if (box.ss[k] == 1) blk = k;
  }
  int64_t od[kMaxBoxRank], ods[kMaxBoxRank], oss[kMaxBoxRank];
  int orank = 0;
  int64_t nouter = 1;
  for (int k = 0; k < r - 1; ++k) {
    if (k == blk) continue;
    od[orank] = box.dims[k];
    ods[orank] = box.ds[k];
    oss[orank] = box.ss[k];
    nouter *= box.dims[k];
    ++orank;
  }
  // The blocked dim is cut into chunks so that a lone 2-D transpose still runs in parallel.
  const int64_t na = blk >= 0 ? box.dims[blk] : 1, chunk = std::min<int64_t>(na, 64);
  const int64_t nchunks = (na + chunk - 1) / chunk;
  const int64_t per_outer = inner * chunk;
  auto rows = [&](int64_t begin, int64_t end) {
    int64_t idx[kMaxBoxRank];
    int64_t doff = 0, soff = 0, rem = begin;
    for (int k = orank - 1; k >= 0; --k) {
      idx[k] = rem % od[k];
      rem /= od[k];
      doff += idx[k] * ods[k];
      soff += idx[k] * oss[k];
    }
    for (int64_t o = begin; o < end; ++o) {
      S* d = dst + doff;
      const S* s = src + soff;
      if (dsi == 1 && ssi == 1) {
        if constexpr (std::is_trivially_copyable_v<S>) {
          std::memcpy(d, s, inner * sizeof(S));
        } else {
          for (int64_t i = 0; i < inner; ++i) d[i] = s[i];
        }
      } else if (ssi == 0) {
        const S v = *s;
        for (int64_t i = 0; i < inner; ++i) d[i * dsi] = v;
      } else {
        for (int64_t i = 0; i < inner; ++i) d[i * dsi] = s[i * ssi];
      }
      for (int k = orank - 1; k >= 0; --k) {
        doff += ods[k];
        soff += oss[k];
        if (++idx[k] < od[k]) break;
        doff -= od[k] * ods[k];
        soff -= od[k] * oss[k];
        idx[k] = 0;
      }
    }
  };
  auto body = [&](int64_t begin, int64_t end) {
    if (blk < 0) return rows(begin, end);
    for (int64_t t = begin; t < end; ++t) {  // one chunk of the blocked dim at one outer index
      int64_t doff = 0, soff = 0, rem = t / nchunks;
      for (int k = orank - 1; k >= 0; --k) {
        doff += (rem % od[k]) * ods[k];
        soff += (rem % od[k]) * oss[k];
        rem /= od[k];
      }
      const int64_t a0 = (t % nchunks) * chunk;
      Transpose2D(dst + doff + a0 * box.ds[blk], src + soff + a0, std::min(chunk, na - a0), inner,
                  box.ds[blk], ssi);
    }
  };
  const int64_t tasks = nouter * nchunks;
  if (!pool || tasks * per_outer < (1 << 16) || tasks == 1) {
    body(0, tasks);
  } else {
    pool->ParallelFor(tasks, std::max<int64_t>(1, (1 << 15) / per_outer), body);
  }
}


}  // namespace

void CopyElems(DataType t, void* dst, const void* src, int64_t n) {
  if (n <= 0 || dst == src) return;
  if (t == DataType::kString) {
    auto* d = static_cast<std::string*>(dst);
    auto* s = static_cast<const std::string*>(src);
    for (int64_t i = 0; i < n; ++i) d[i] = s[i];
  } else {
    std::memmove(dst, src, n * DataTypeSize(t));
  }
}

void FillElems(DataType t, void* dst, const void* value, int64_t n) {
  auto fill = [&]<typename S>() {
    S v;
    if constexpr (std::is_trivially_copyable_v<S>) std::memcpy(&v, value, sizeof(S));
    else v = *static_cast<const S*>(value);
    std::fill_n(static_cast<S*>(dst), n, v);
  };
  VisitStorage(t, fill);
}

void FillZero(DataType t, void* dst, int64_t n) {
  VisitStorage(t, [&]<typename S>() { std::fill_n(static_cast<S*>(dst), n, S{}); });
}

void CopyBox(DataType t, void* dst, const void* src, std::span<const int64_t> dims,
             std::span<const int64_t> dst_strides, std::span<const int64_t> src_strides,
             ThreadPool* pool) {
  Box box;
  for (size_t k = 0; k < dims.size(); ++k) {
    if (dims[k] == 0) return;
    if (dims[k] == 1) continue;
    if (box.rank > 0) {
      int p = box.rank - 1;
      // Merge with the previous dim when the pair walks memory like one dim on both sides.
      if (box.ds[p] == dst_strides[k] * dims[k] && box.ss[p] == src_strides[k] * dims[k]) {
        box.dims[p] *= dims[k];
        box.ds[p] = dst_strides[k];
        box.ss[p] = src_strides[k];
        continue;
      }
    }
    box.dims[box.rank] = dims[k];
    box.ds[box.rank] = dst_strides[k];
    box.ss[box.rank] = src_strides[k];
    ++box.rank;
  }
  if (box.rank == 0) {
    box.rank = 1;
    box.dims[0] = 1;
    box.ds[0] = box.ss[0] = 1;
  }
  auto run = [&]<typename S>() {
    CopyBoxT<S>(static_cast<S*>(dst), static_cast<const S*>(src), box, pool);
  };
  VisitStorage(t, run);
}

IntList StridesOf(const Shape& s) {
  IntList st(static_cast<size_t>(s.rank()));
  int64_t acc = 1;
  for (int i = s.rank() - 1; i >= 0; --i) {
    st[i] = acc;
    acc *= s[i];
  }
  return st;
}

Expected<IntList> IntsInput(KernelContext& ctx, int i) {
  const Tensor& t = ctx.input(i);
  if (!IsInteger(t.dtype()))
    return ctx.Fail("input " + std::to_string(i) + " must be an integer tensor, got " +
                    std::string(DataTypeName(t.dtype())));
  if (t.rank() > 1) return ctx.Fail("input " + std::to_string(i) + " must be 1-D");
  return ReadInts(t);
}

Expected<IntList> IntsArg(KernelContext& ctx, int input_from, int index, const char* name,
                          bool* present) {
  if (ctx.opset() < input_from) {
    *present = ctx.attrs().Has(name);
    return IntList(ctx.attrs().IntsView(name));
  }
  *present = ctx.has_input(index);
  if (!*present) return IntList{};
  if (!ctx.input_known(index)) return ctx.DataDependent();
  return IntsInput(ctx, index);
}

namespace {
// Reads index i of `indices`, wrapping negatives into [0, d); fails when out of range.
Expected<int64_t> IndexAt(KernelContext& ctx, const Tensor& indices, int64_t i, int64_t d) {
  int64_t v = ReadInt(indices, i);
  if (v < -d || v >= d)
    return ctx.BadInput("index " + std::to_string(v) + " out of range for dim " +
                        std::to_string(d));
  return v < 0 ? v + d : v;
}
}  // namespace

Status ElementOffsets(KernelContext& ctx, const Shape& data, const Tensor& indices, int axis,
                      std::span<int64_t> offsets) {
  const int r = data.rank();
  if (!IsInteger(indices.dtype())) return ctx.Fail("indices must be integers");
  if (indices.rank() != r || r == 0) return ctx.Fail("indices and data differ in rank");
  for (int k = 0; k < r; ++k)
    if (k != axis && indices.dim(k) > data[k])
      return ctx.BadInput("indices " + indices.shape().ToString() + " exceed data " +
                          data.ToString());
  IntList ds = StridesOf(data);
  assert(static_cast<int64_t>(offsets.size()) == indices.numel());
  IntList idx(static_cast<size_t>(r), 0);
  int64_t base = 0;
  for (int64_t i = 0; i < indices.numel(); ++i) {
    OP_ASSIGN_OR_RETURN(int64_t v, IndexAt(ctx, indices, i, data[axis]));
    offsets[i] = base + v * ds[axis];
    for (int k = r - 1; k >= 0; --k) {
      if (k != axis) base += ds[k];
      if (++idx[k] < indices.dim(k)) break;
      if (k != axis) base -= idx[k] * ds[k];
      idx[k] = 0;
    }
  }
  return Status::Ok();
}

int64_t NdOffsetCount(const Tensor& indices) {
  int64_t c = 1;
  for (int d = 0; d + 1 < indices.rank(); ++d) c *= indices.dim(d);
  return c;
}

Status NdOffsets(KernelContext& ctx, const Shape& data, const Tensor& indices, int batch_dims,
                 int64_t* slice, std::span<int64_t> offsets) {
  if (!IsInteger(indices.dtype())) return ctx.Fail("indices must be integers");
  const int q = indices.rank(), r = data.rank();
  if (q < 1 || batch_dims < 0 || batch_dims >= q || batch_dims >= r)
    return ctx.Fail("bad indices rank or batch_dims");
  const int64_t k = indices.dim(q - 1);
  if (k > r - batch_dims) return ctx.Fail("index tuples longer than the data rank");
  for (int b = 0; b < batch_dims; ++b)
    if (indices.dim(b) != data[b]) return ctx.BadInput("batch dims differ");
  IntList ds = StridesOf(data);
  *slice = 1;
  for (int d = batch_dims + static_cast<int>(k); d < r; ++d) *slice *= data[d];
  int64_t nbatch = 1;
  for (int b = 0; b < batch_dims; ++b) nbatch *= data[b];
  const int64_t ncount = NdOffsetCount(indices);
  assert(static_cast<int64_t>(offsets.size()) == ncount);
  const int64_t per_batch = nbatch ? ncount / nbatch : 0;
  const int64_t batch_stride = batch_dims ? ds[batch_dims - 1] : 0;
  for (int64_t t = 0; t < ncount; ++t) {
    int64_t off = per_batch ? (t / per_batch) * batch_stride : 0;
    for (int64_t j = 0; j < k; ++j) {
      const int d = batch_dims + static_cast<int>(j);
      OP_ASSIGN_OR_RETURN(int64_t v, IndexAt(ctx, indices, t * k + j, data[d]));
      off += v * ds[d];
    }
    offsets[t] = off;
  }
  return Status::Ok();
}

Status ScatterInto(KernelContext& ctx, Tensor* out, const Tensor& updates,
                   std::span<const int64_t> offsets, int64_t slice) {
  const std::string red = ctx.attrs().String("reduction", "none");
  if (updates.numel() != static_cast<int64_t>(offsets.size()) * slice)
    return ctx.BadInput("updates " + updates.shape().ToString() + " do not match the indices");
  if (red == "none") {
    for (size_t i = 0; i < offsets.size(); ++i)
      CopyElems(out->dtype(), ElemPtr(*out, offsets[i]), ElemPtr(updates, i * slice), slice);
    return Status::Ok();
  }
  int op = red == "add" ? 0 : red == "mul" ? 1 : red == "max" ? 2 : red == "min" ? 3 : -1;
  if (op < 0) return ctx.NotSupported("reduction '" + red + "'");
  if (op >= 2 && ctx.opset() < 18) return ctx.Fail("reduction '" + red + "' needs opset 18");
  if (out->dtype() == DataType::kBool) return ctx.NotSupported("reduction on bool");
  return DispatchNumeric(ctx, out->dtype(), [&]<typename T>() {
    T* o = out->data<T>();
    const T* u = updates.data<T>();
    for (size_t i = 0; i < offsets.size(); ++i) {
      for (int64_t j = 0; j < slice; ++j) {
        Acc<T> a = o[offsets[i] + j], b = u[i * slice + j];
        Acc<T> v = op == 0 ? a + b : op == 1 ? a * b : op == 2 ? std::max(a, b) : std::min(a, b);
        o[offsets[i] + j] = FromAcc<T>(v);
      }
    }
    return Status::Ok();
  });
}

}  // namespace outpost::kernels::cpu
