// SmallVector<T, N>: a vector of trivially copyable T that keeps up to N elements inline and
// spills to the heap only beyond that. Kernels use it for per-call int lists (axes, pads, perms,
// strides) so that steady-state runs of static-shape models do not allocate.
#pragma once

#include <cassert>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <new>
#include <span>
#include <type_traits>
#include <vector>

namespace outpost {

template <typename T, size_t N>
class SmallVector {
  static_assert(std::is_trivially_copyable_v<T>, "SmallVector holds trivially copyable types");

 public:
  using value_type = T;
  using iterator = T*;
  using const_iterator = const T*;

  SmallVector() = default;
  explicit SmallVector(size_t n, T fill = T()) { resize(n, fill); }
  void assign(size_t n, T fill) {
    size_ = 0;
    resize(n, fill);
  }
  SmallVector(std::initializer_list<T> init) { assign(init.begin(), init.end()); }
  template <typename It>
    requires(!std::is_integral_v<It>)
  SmallVector(It first, It last) {
    assign(first, last);
  }
  explicit SmallVector(std::span<const T> s) { assign(s.begin(), s.end()); }
  SmallVector(const SmallVector& o) { assign(o.begin(), o.end()); }
  SmallVector(SmallVector&& o) noexcept { MoveFrom(o); }
  SmallVector& operator=(const SmallVector& o) {
    if (this != &o) assign(o.begin(), o.end());
    return *this;
  }
  SmallVector& operator=(SmallVector&& o) noexcept {
    if (this != &o) {
      Free();
      MoveFrom(o);
    }
    return *this;
  }
  ~SmallVector() { Free(); }

  template <typename It>
    requires(!std::is_integral_v<It>)
  void assign(It first, It last) {
    size_ = 0;
    reserve(static_cast<size_t>(last - first));
    for (; first != last; ++first) data_[size_++] = static_cast<T>(*first);
  }

  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  size_t capacity() const { return cap_; }
  T* data() { return data_; }
  const T* data() const { return data_; }
  T* begin() { return data_; }
  T* end() { return data_ + size_; }
  const T* begin() const { return data_; }
  const T* end() const { return data_ + size_; }
  T& operator[](size_t i) {
    assert(i < size_);
    return data_[i];
  }
  const T& operator[](size_t i) const {
    assert(i < size_);
    return data_[i];
  }
  T& back() {
    assert(size_ > 0);
    return data_[size_ - 1];
  }
  const T& back() const {
    assert(size_ > 0);
    return data_[size_ - 1];
  }

  void clear() { size_ = 0; }
  void push_back(T v) {
    if (size_ == cap_) Grow(cap_ * 2);
    data_[size_++] = v;
  }
  void pop_back() {
    assert(size_ > 0);
    --size_;
  }
  void resize(size_t n, T fill = T()) {
    reserve(n);
    for (size_t i = size_; i < n; ++i) data_[i] = fill;
    size_ = n;
  }
  void reserve(size_t n) {
    if (n > cap_) Grow(n);
  }
  void insert(T* pos, T v) {
    const size_t at = static_cast<size_t>(pos - data_);
    assert(at <= size_);
    if (size_ == cap_) Grow(cap_ * 2);
    std::memmove(data_ + at + 1, data_ + at, (size_ - at) * sizeof(T));
    data_[at] = v;
    ++size_;
  }

  operator std::span<const T>() const { return {data_, size_}; }  // NOLINT
  operator std::span<T>() { return {data_, size_}; }               // NOLINT
  std::vector<T> vec() const { return {begin(), end()}; }
  bool operator==(const SmallVector& o) const {
    return size_ == o.size_ && std::memcmp(data_, o.data_, size_ * sizeof(T)) == 0;
  }

 private:
  bool inline_storage() const { return data_ == reinterpret_cast<const T*>(inline_); }
  void Grow(size_t n) {
    if (n < N) n = N;
    // operator new, so that allocation counters (tests/engine/alloc) see spills.
    T* p = static_cast<T*>(::operator new(n * sizeof(T)));
    if (size_) std::memcpy(p, data_, size_ * sizeof(T));
    Free();
    data_ = p;
    cap_ = n;
  }
  void Free() {
    if (!inline_storage()) ::operator delete(data_);
    data_ = reinterpret_cast<T*>(inline_);
    cap_ = N;
  }
  void MoveFrom(SmallVector& o) {
    if (o.inline_storage()) {
      data_ = reinterpret_cast<T*>(inline_);
      cap_ = N;
      std::memcpy(inline_, o.inline_, o.size_ * sizeof(T));
    } else {
      data_ = o.data_;
      cap_ = o.cap_;
      o.data_ = reinterpret_cast<T*>(o.inline_);
      o.cap_ = N;
    }
    size_ = o.size_;
    o.size_ = 0;
  }

  alignas(T) unsigned char inline_[N * sizeof(T)];
  T* data_ = reinterpret_cast<T*>(inline_);
  size_t size_ = 0;
  size_t cap_ = N;
};

// The int lists of kernels: ranks are at most Shape::kMaxRank (12); pads hold two per axis.
using IntList = SmallVector<int64_t, 24>;

}  // namespace outpost
