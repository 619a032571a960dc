// Shapes and tensors. A Tensor is a typed, shaped view over storage that lives on a device
// (host memory for the CPU, a cl_mem for OpenCL). Storage may be owned (shared) or borrowed.
#pragma once

#include <array>
#include <cassert>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "outpost/core/dtype.h"
#include "outpost/core/status.h"

namespace outpost {

// Fixed-capacity shape: no heap allocation, so kernels may build shapes on the request path.
class Shape {
 public:
  static constexpr int kMaxRank = 12;
  Shape() = default;
  Shape(std::initializer_list<int64_t> dims);
  explicit Shape(std::span<const int64_t> dims);
  // Fails on rank above kMaxRank or negative dims.
  static Expected<Shape> From(std::span<const int64_t> dims);

  int rank() const { return rank_; }
  int64_t operator[](int i) const {
    assert(i >= 0 && i < rank_);
    return dims_[i];
  }
  int64_t& operator[](int i) {
    assert(i >= 0 && i < rank_);
    return dims_[i];
  }
  int64_t dim(int i) const { return (*this)[i]; }
  void push_back(int64_t d) {
    assert(rank_ < kMaxRank);
    dims_[rank_++] = d;
  }
  void resize(int r, int64_t fill = 1);
  int64_t numel() const;
  std::span<const int64_t> dims() const { return {dims_.data(), static_cast<size_t>(rank_)}; }
  const int64_t* begin() const { return dims_.data(); }
  const int64_t* end() const { return dims_.data() + rank_; }
  std::vector<int64_t> vec() const { return {begin(), end()}; }
  std::string ToString() const;  // "[2,3,4]"
  bool operator==(const Shape& o) const;
  bool operator!=(const Shape& o) const { return !(*this == o); }

 private:
  std::array<int64_t, kMaxRank> dims_{};
  int rank_ = 0;
};

// Row-major strides of a shape, in elements.
void Strides(const Shape& s, int64_t* out);

enum class DeviceKind : uint8_t { kCpu = 0, kOpenCL = 1 };
const char* DeviceKindName(DeviceKind d);

class Tensor {
 public:
  Tensor() = default;

  // Owned host tensor; contents zeroed (strings empty). Fails on absurd sizes.
  static Expected<Tensor> Allocate(DataType dtype, const Shape& shape);
  // Borrowed host memory; the caller keeps it alive.
  static Tensor View(DataType dtype, const Shape& shape, void* data);
  // Tensor on a device other than the host: `handle` is backend-specific (a cl_mem for OpenCL).
  static Tensor DeviceView(DeviceKind dev, DataType dtype, const Shape& shape, void* handle,
                           size_t offset);

  DataType dtype() const { return dtype_; }
  const Shape& shape() const { return shape_; }
  int rank() const { return shape_.rank(); }
  int64_t dim(int i) const { return shape_[i]; }
  int64_t numel() const { return shape_.numel(); }
  size_t nbytes() const { return static_cast<size_t>(numel()) * DataTypeSize(dtype_); }
  DeviceKind device() const { return device_; }
  bool on_host() const { return device_ == DeviceKind::kCpu; }
  bool defined() const { return dtype_ != DataType::kUndefined; }
  // True when the tensor has storage (shape-only tensors used during inference have none).
  bool has_data() const { return data_ != nullptr || (defined() && numel() == 0); }

  void* raw() const { return data_; }
  size_t offset() const { return offset_; }
  template <typename T>
  T* data() const {
    assert(on_host());
    assert(TypeOf<T>::value == dtype_ ||
           (sizeof(T) == DataTypeSize(dtype_) && dtype_ != DataType::kString));
    return static_cast<T*>(data_);
  }
  template <typename T>
  std::span<T> span() const {
    return {data<T>(), static_cast<size_t>(numel())};
  }

  // Same storage, new shape (same element count).
  Tensor Reshaped(const Shape& s) const;
  // Deep copy into owned host memory.
  Expected<Tensor> Clone() const;
  // Shape/type only; no storage (used by shape inference).
  static Tensor Meta(DataType dtype, const Shape& shape);

  std::string Describe() const;  // "float32[1,3,224,224]"

 private:
  DataType dtype_ = DataType::kUndefined;
  Shape shape_;
  void* data_ = nullptr;
  size_t offset_ = 0;
  DeviceKind device_ = DeviceKind::kCpu;
  std::shared_ptr<void> owner_;
};

// Reads a scalar or element `i` of an integer tensor (any integer type) as int64.
int64_t ReadInt(const Tensor& t, int64_t i);
double ReadDouble(const Tensor& t, int64_t i);

}  // namespace outpost
