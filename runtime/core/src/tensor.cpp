#include "outpost/core/tensor.h"

#include <cstdlib>
#include <cstring>
#include <limits>
#include <new>

namespace outpost {

Shape::Shape(std::initializer_list<int64_t> dims) {
  assert(dims.size() <= kMaxRank);
  for (int64_t d : dims) dims_[rank_++] = d;
}

Shape::Shape(std::span<const int64_t> dims) {
  assert(dims.size() <= kMaxRank);
  for (int64_t d : dims) dims_[rank_++] = d;
}

Expected<Shape> Shape::From(std::span<const int64_t> dims) {
  if (dims.size() > static_cast<size_t>(kMaxRank)) {
    return Unsupported("rank " + std::to_string(dims.size()) + " exceeds the supported maximum " +
                       std::to_string(kMaxRank));
  }
  Shape s;
  for (int64_t d : dims) {
    if (d < 0) return InvalidArgument("negative dimension " + std::to_string(d));
    s.dims_[s.rank_++] = d;
  }
  return s;
}

void Shape::resize(int r, int64_t fill) {
  assert(r >= 0 && r <= kMaxRank);
  for (int i = rank_; i < r; ++i) dims_[i] = fill;
  rank_ = r;
}

int64_t Shape::numel() const {
  int64_t n = 1;
  for (int i = 0; i < rank_; ++i) n *= dims_[i];
  return n;
}

std::string Shape::ToString() const {
  std::string s = "[";
  for (int i = 0; i < rank_; ++i) {
    if (i) s += ",";
    s += std::to_string(dims_[i]);
  }
  return s + "]";
}

bool Shape::operator==(const Shape& o) const {
  if (rank_ != o.rank_) return false;
  for (int i = 0; i < rank_; ++i)
    if (dims_[i] != o.dims_[i]) return false;
  return true;
}

void Strides(const Shape& s, int64_t* out) {
  int64_t st = 1;
  for (int i = s.rank() - 1; i >= 0; --i) {
    out[i] = st;
    st *= s[i];
  }
}

const char* DeviceKindName(DeviceKind d) { return d == DeviceKind::kCpu ? "cpu" : "opencl"; }

namespace {
// Largest single tensor we agree to allocate; a hostile shape must not take the machine down.
constexpr uint64_t kMaxTensorBytes = 16ull << 30;
}  // namespace

Expected<Tensor> Tensor::Allocate(DataType dtype, const Shape& shape) {
  size_t es = DataTypeSize(dtype);
  if (es == 0) return Unsupported("cannot allocate a tensor of type " + std::string(DataTypeName(dtype)));
  uint64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0) return InvalidArgument("negative dimension in shape " + shape.ToString());
    if (d != 0 && n > std::numeric_limits<uint64_t>::max() / static_cast<uint64_t>(d))
      return ResourceExhausted("tensor shape " + shape.ToString() + " overflows");
    n *= static_cast<uint64_t>(d);
  }
  if (n > kMaxTensorBytes / es)
    return ResourceExhausted("tensor " + std::string(DataTypeName(dtype)) + shape.ToString() +
                             " would need more than 16 GiB");
  Tensor t;
  t.dtype_ = dtype;
  t.shape_ = shape;
  size_t bytes = static_cast<size_t>(n) * es;
  if (dtype == DataType::kString) {
    auto* arr = new (std::nothrow) std::string[n == 0 ? 1 : n];
    if (!arr) return ResourceExhausted("out of memory for string tensor");
    t.owner_ = std::shared_ptr<void>(arr, [](void* p) { delete[] static_cast<std::string*>(p); });
    t.data_ = arr;
    return t;
  }
  void* p = std::aligned_alloc(64, (bytes + 63) / 64 * 64 + 64);
  if (!p) return ResourceExhausted("out of memory allocating " + std::to_string(bytes) + " bytes");
  std::memset(p, 0, bytes);
  t.owner_ = std::shared_ptr<void>(p, [](void* q) { std::free(q); });
  t.data_ = p;
  return t;
}

Tensor Tensor::View(DataType dtype, const Shape& shape, void* data) {
  Tensor t;
  t.dtype_ = dtype;
  t.shape_ = shape;
  t.data_ = data;
  return t;
}

Tensor Tensor::DeviceView(DeviceKind dev, DataType dtype, const Shape& shape, void* handle,
                          size_t offset) {
  Tensor t;
  t.dtype_ = dtype;
  t.shape_ = shape;
  t.data_ = handle;
  t.offset_ = offset;
  t.device_ = dev;
  return t;
}

Tensor Tensor::Meta(DataType dtype, const Shape& shape) {
  Tensor t;
  t.dtype_ = dtype;
  t.shape_ = shape;
  return t;
}

Tensor Tensor::Reshaped(const Shape& s) const {
  assert(s.numel() == numel());
  Tensor t = *this;
  t.shape_ = s;
  return t;
}

Expected<Tensor> Tensor::Clone() const {
  assert(on_host());
  OP_ASSIGN_OR_RETURN(Tensor t, Allocate(dtype_, shape_));
  if (!has_data()) return InvalidArgument("cannot clone a tensor without data");
  if (dtype_ == DataType::kString) {
    auto* src = static_cast<const std::string*>(data_);
    auto* dst = static_cast<std::string*>(t.data_);
    for (int64_t i = 0; i < numel(); ++i) dst[i] = src[i];
  } else if (nbytes()) {
    std::memcpy(t.data_, data_, nbytes());
  }
  return t;
}

std::string Tensor::Describe() const {
  return std::string(DataTypeName(dtype_)) + shape_.ToString();
}

int64_t ReadInt(const Tensor& t, int64_t i) {
  const void* p = t.raw();
  switch (t.dtype()) {
    case DataType::kInt64: return static_cast<const int64_t*>(p)[i];
    case DataType::kInt32: return static_cast<const int32_t*>(p)[i];
    case DataType::kInt16: return static_cast<const int16_t*>(p)[i];
    case DataType::kInt8:
    case DataType::kInt4:
    case DataType::kInt2: return static_cast<const int8_t*>(p)[i];
    case DataType::kUInt8:
    case DataType::kUInt4:
    case DataType::kUInt2: return static_cast<const uint8_t*>(p)[i];
    case DataType::kUInt16: return static_cast<const uint16_t*>(p)[i];
    case DataType::kUInt32: return static_cast<const uint32_t*>(p)[i];
    case DataType::kUInt64: return static_cast<int64_t>(static_cast<const uint64_t*>(p)[i]);
    case DataType::kBool: return static_cast<const bool*>(p)[i] ? 1 : 0;
    case DataType::kFloat:
    case DataType::kDouble:
    case DataType::kFloat16:
    case DataType::kBFloat16: return static_cast<int64_t>(ReadDouble(t, i));
    default:
      assert(false && "ReadInt on a non-numeric tensor");
      return 0;
  }
}

double ReadDouble(const Tensor& t, int64_t i) {
  const void* p = t.raw();
  switch (t.dtype()) {
    case DataType::kFloat: return static_cast<const float*>(p)[i];
    case DataType::kDouble: return static_cast<const double*>(p)[i];
    case DataType::kFloat16: return static_cast<const Float16*>(p)[i];
    case DataType::kBFloat16: return static_cast<const BFloat16*>(p)[i];
    case DataType::kString:
    case DataType::kUndefined:
      assert(false && "ReadDouble on a non-numeric tensor");
      return 0;
    default: return static_cast<double>(ReadInt(t, i));
  }
}

}  // namespace outpost
