// Scratch memory for CPU kernels, sized by the data and reused across runs: a per-thread stack
// arena, so that a steady-state run allocates nothing for its temporaries (issue #2). A kernel
// writes `ScratchVec<float> buf(n);` where it would write `std::vector<float> buf(n);`.
//
// ScratchVec lives on the C++ stack and releases its memory when it goes out of scope; since
// locals are destroyed in reverse order, the arena is a stack. The arena of a thread keeps its
// high-water mark: it grows on the first runs (in chunks), folds its chunks into one when it is
// empty again, and from then on hands out memory without touching the heap. Pool workers have
// arenas of their own (thread_local), so ScratchVec works inside ParallelFor bodies too.
#pragma once

#include <cassert>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <type_traits>
#include <vector>

namespace outpost::kernels::cpu {

class ScratchArena {
 public:
  static ScratchArena& ForThisThread();

  // Stack position to return to; Push returns memory above it.
  struct Mark {
    size_t chunk = 0;
    size_t offset = 0;
  };
  Mark mark() const { return {cur_, off_}; }
  void* Push(size_t bytes, size_t align);
  void PopTo(Mark m);

  size_t capacity() const;  // bytes held by this thread's arena (for tests)

  // Above this high-water mark an arena gives its memory back when it empties, rather than keep
  // it for the next run (a run that large allocates each time, which is cheap beside its work).
  static constexpr size_t kMaxRetainedBytes = size_t{256} << 20;

 private:
  struct Chunk {
    std::unique_ptr<std::byte[]> mem;
    size_t size = 0;
  };
  std::vector<Chunk> chunks_;
  size_t cur_ = 0;  // chunk being filled
  size_t off_ = 0;  // first free byte in it
  int depth_ = 0;   // live allocations
};

// A fixed-size array of trivially destructible T on the thread's scratch arena. Not copyable
// or movable (it must be released in stack order).
template <typename T>
class ScratchVec {
  static_assert(std::is_trivially_destructible_v<T>, "scratch holds plain data only");

 public:
  explicit ScratchVec(size_t n) : ScratchVec(n, T{}) {}
  ScratchVec(size_t n, const T& value)
      : arena_(&ScratchArena::ForThisThread()), mark_(arena_->mark()), n_(n) {
    data_ = static_cast<T*>(arena_->Push(n * sizeof(T), alignof(T) < 64 ? 64 : alignof(T)));
    for (size_t i = 0; i < n; ++i) data_[i] = value;
  }
  ~ScratchVec() { arena_->PopTo(mark_); }
  ScratchVec(const ScratchVec&) = delete;
  ScratchVec& operator=(const ScratchVec&) = delete;

  T* data() { return data_; }
  const T* data() const { return data_; }
  size_t size() const { return n_; }
  bool empty() const { return n_ == 0; }
  T& operator[](size_t i) {
    assert(i < n_);
    return data_[i];
  }
  const T& operator[](size_t i) const {
    assert(i < n_);
    return data_[i];
  }
  T* begin() { return data_; }
  T* end() { return data_ + n_; }
  const T* begin() const { return data_; }
  const T* end() const { return data_ + n_; }

 private:
  ScratchArena* arena_;
  ScratchArena::Mark mark_;
  T* data_ = nullptr;
  size_t n_ = 0;
};

}  // namespace outpost::kernels::cpu
