// Helpers shared by the CPU shape and data-movement kernels: strided copies, fills, int inputs.
#pragma once

#include <cstdint>
#include <cstring>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "cpu/common.h"
#include "cpu/scratch.h"

namespace outpost::kernels::cpu {

// Pointer to element `i` of a host tensor, whatever its type.
inline char* ElemPtr(const Tensor& t, int64_t i) {
  return static_cast<char*>(t.raw()) + i * static_cast<int64_t>(DataTypeSize(t.dtype()));
}

// Calls f.template operator()<S>() with S a trivially copyable type of the element size of `t`
// (or std::string): for kernels that only move elements around. False when `t` has no storage.
template <typename F>
bool VisitStorage(DataType t, F&& f) {
  if (t == DataType::kString) return f.template operator()<std::string>(), true;
  switch (DataTypeSize(t)) {
    case 1: return f.template operator()<uint8_t>(), true;
    case 2: return f.template operator()<uint16_t>(), true;
    case 4: return f.template operator()<uint32_t>(), true;
    case 8: return f.template operator()<uint64_t>(), true;
    default: return false;
  }
}

// VisitStorage for kernels whose body returns a Status; unsupported types are refused by name.
template <typename F>
Status DispatchStorage(KernelContext& ctx, DataType t, F&& f) {
  Status st;
  if (!VisitStorage(t, [&]<typename S>() { st = f.template operator()<S>(); }))
    return ctx.NotSupported("data type " + std::string(DataTypeName(t)));
  return st;
}

// NotSupported naming the type unless tensors of `t` can be held.
inline Status CheckStorable(KernelContext& ctx, DataType t) {
  if (IsStorable(t)) return Status::Ok();
  return ctx.NotSupported("data type " + std::string(DataTypeName(t)));
}

// Runs body(begin, end) over [0, rows): inline when the work (rows * per_row elements) is small,
// else on the pool in chunks of about 16K elements.
template <typename F>
void ParallelRows(KernelContext& ctx, int64_t rows, int64_t per_row, const F& body) {
  per_row = std::max<int64_t>(per_row, 1);
  if (rows < 2 || rows * per_row < (1 << 15)) {
    if (rows > 0) body(0, rows);
    return;
  }
  ctx.pool().ParallelFor(rows, std::max<int64_t>(1, (1 << 14) / per_row), body);
}

// Copies n contiguous elements of type t (strings are assigned).
void CopyElems(DataType t, void* dst, const void* src, int64_t n);
// Sets n elements of type t to the single element at `value`.
void FillElems(DataType t, void* dst, const void* value, int64_t n);

// Sets n elements of type t to zero (empty strings).
void FillZero(DataType t, void* dst, int64_t n);

// Copies a box of elements: for every index vector i < dims,
//   dst[sum(i_k * dst_strides_k)] = src[sum(i_k * src_strides_k)]   (strides in elements, any sign)
// Adjacent dims are merged, size-1 dims dropped, transposes are blocked, and big copies run on
// the pool. `dst`/`src` point at the element of index 0.
void CopyBox(DataType t, void* dst, const void* src, std::span<const int64_t> dims,
             std::span<const int64_t> dst_strides, std::span<const int64_t> src_strides,
             ThreadPool* pool);

// Row-major element strides of `s` as a vector.
IntList StridesOf(const Shape& s);

// Reads input i (a 1-D or scalar integer tensor) when present; fails when it is not an integer.
Expected<IntList> IntsInput(KernelContext& ctx, int i);

// Reads an int list given as attribute `name` before opset `input_from` and as input `index`
// from then on. Sets *present to whether it was given; DataDependent (in inference) when the
// input exists but is not known.
Expected<IntList> IntsArg(KernelContext& ctx, int input_from, int index, const char* name,
                          bool* present);

// Element offsets into a tensor of shape `data` for GatherElements/ScatterElements: one per
// element of `indices` (same rank as data), the index replacing the coordinate on `axis`.
// Fills ElementOffsetCount(indices) entries of `out` (the caller's scratch).
inline int64_t ElementOffsetCount(const Tensor& indices) { return indices.numel(); }
Status ElementOffsets(KernelContext& ctx, const Shape& data, const Tensor& indices, int axis,
                      std::span<int64_t> out);

// Offsets of the slices addressed by GatherND/ScatterND index tuples (the last dim of
// `indices`), after `batch_dims` leading batch dims. *slice gets the slice length. Fills
// NdOffsetCount(indices) entries of `out`.
int64_t NdOffsetCount(const Tensor& indices);
Status NdOffsets(KernelContext& ctx, const Shape& data, const Tensor& indices, int batch_dims,
                 int64_t* slice, std::span<int64_t> out);

// ScatterElements/ScatterND: out[offsets[i] + j] (reduction)= updates[i * slice + j].
Status ScatterInto(KernelContext& ctx, Tensor* out, const Tensor& updates,
                   std::span<const int64_t> offsets, int64_t slice);

// Copies all of `src` into `dst` (same element count and type).
inline void CopyTensor(const Tensor& src, Tensor* dst) {
  CopyElems(src.dtype(), dst->raw(), src.raw(), src.numel());
}

// Declares output 0 as input 0 with `shape` (same element count) and copies the data.
inline Status EmitReshaped(KernelContext& ctx, const Shape& shape) {
  const Tensor& x = ctx.input(0);
  OP_RETURN_IF_ERROR(CheckStorable(ctx, x.dtype()));
  if (shape.numel() != x.numel())
    return ctx.BadInput("cannot reshape " + x.shape().ToString() + " to " + shape.ToString());
  OP_ASSIGN_OR_RETURN(Tensor* y, ctx.Output(0, x.dtype(), shape));
  if (ctx.infer_only() || !y) return Status::Ok();
  CopyTensor(x, y);
  return Status::Ok();
}

// Builds a shape from dims, failing (InvalidArgument) on negative dims or too high a rank.
inline Expected<Shape> MakeShape(KernelContext& ctx, std::span<const int64_t> dims) {
  auto s = Shape::From(dims);
  if (!s.ok()) {
    const std::string& m = s.status().message();
    return s.status().code() == Code::kUnsupported ? ctx.NotSupported(m) : ctx.BadInput(m);
  }
  return s;
}

}  // namespace outpost::kernels::cpu
