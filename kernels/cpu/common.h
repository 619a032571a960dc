// Helpers shared by the CPU kernels: type dispatch, broadcasting, axis handling.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

#include "outpost/core/small_vector.h"
#include "outpost/core/tensor.h"
#include "outpost/kernels/kernel.h"

namespace outpost::kernels::cpu {

// Calls f.template operator()<T>() for the C++ type of `t`, if `t` is among the listed group.
// Returns Unsupported naming the type otherwise.
#define OUTPOST_DISPATCH_CASE(DT, CT) \
  case DataType::DT: return f.template operator()<CT>();

template <typename F>
Status DispatchFloat(KernelContext& ctx, DataType t, F&& f) {
  switch (t) {
    OUTPOST_DISPATCH_CASE(kFloat, float)
    OUTPOST_DISPATCH_CASE(kDouble, double)
    OUTPOST_DISPATCH_CASE(kFloat16, Float16)
    OUTPOST_DISPATCH_CASE(kBFloat16, BFloat16)
    default: return ctx.NotSupported("data type " + std::string(DataTypeName(t)));
  }
}

template <typename F>
Status DispatchInt(KernelContext& ctx, DataType t, F&& f) {
  switch (t) {
    OUTPOST_DISPATCH_CASE(kInt8, int8_t)
    OUTPOST_DISPATCH_CASE(kInt16, int16_t)
    OUTPOST_DISPATCH_CASE(kInt32, int32_t)
    OUTPOST_DISPATCH_CASE(kInt64, int64_t)
    OUTPOST_DISPATCH_CASE(kUInt8, uint8_t)
    OUTPOST_DISPATCH_CASE(kUInt16, uint16_t)
    OUTPOST_DISPATCH_CASE(kUInt32, uint32_t)
    OUTPOST_DISPATCH_CASE(kUInt64, uint64_t)
    default: return ctx.NotSupported("data type " + std::string(DataTypeName(t)));
  }
}

// Floating and integer types (not bool, not string).
template <typename F>
Status DispatchNumeric(KernelContext& ctx, DataType t, F&& f) {
  if (IsFloating(t)) return DispatchFloat(ctx, t, f);
  return DispatchInt(ctx, t, f);
}

// Every storable type, bool and string included (for data movement ops).
template <typename F>
Status DispatchAll(KernelContext& ctx, DataType t, F&& f) {
  if (t == DataType::kBool) return f.template operator()<bool>();
  if (t == DataType::kString) return f.template operator()<std::string>();
  return DispatchNumeric(ctx, t, f);
}
#undef OUTPOST_DISPATCH_CASE

// Compute type for arithmetic on T: float for the 16-bit floats, T otherwise.
template <typename T>
using Acc = std::conditional_t<std::is_same_v<T, Float16> || std::is_same_v<T, BFloat16>, float, T>;

template <typename T>
inline T FromAcc(Acc<T> v) {
  if constexpr (std::is_same_v<T, Float16> || std::is_same_v<T, BFloat16>) return T(v);
  else return v;
}

// Multidirectional (numpy) broadcast of two or more shapes.
Expected<Shape> BroadcastShapes(KernelContext& ctx, std::span<const Shape> shapes);

// Maps an output index to the flat input index of `in` broadcast to `out`, iterating all outputs.
// Usage: BroadcastIndexer bi(in_shape, out_shape); for (i...) bi.Offset(i)
class BroadcastIndexer {
 public:
  BroadcastIndexer(const Shape& in, const Shape& out);
  // Flat input offset for each output element, computed in order.
  void Fill(std::vector<int64_t>* offsets) const;
  bool identity() const { return identity_; }
  bool scalar() const { return scalar_; }
  int64_t Offset(int64_t out_index) const;

 private:
  int rank_;
  int64_t out_dims_[Shape::kMaxRank];
  int64_t in_strides_[Shape::kMaxRank];  // 0 where broadcast
  bool identity_ = false;
  bool scalar_ = false;
};

// Normalizes a possibly negative axis into [0, rank). Fails naming the axis when out of range.
Expected<int> NormalizeAxis(KernelContext& ctx, int64_t axis, int rank);

// Reads a 1-D integer input (int32 or int64) into a list (inline up to 24 values).
IntList ReadInts(const Tensor& t);

}  // namespace outpost::kernels::cpu
