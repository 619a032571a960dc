#include "cpu/scratch.h"

#include <algorithm>

namespace outpost::kernels::cpu {

ScratchArena& ScratchArena::ForThisThread() {
  static thread_local ScratchArena arena;
  return arena;
}

void* ScratchArena::Push(size_t bytes, size_t align) {
  ++depth_;
  if (bytes == 0) bytes = 1;
  // Alignment is computed on addresses, not offsets: a chunk is only as aligned as new[] made it.
  auto aligned_end = [&](size_t chunk, size_t off) {
    const uintptr_t base = reinterpret_cast<uintptr_t>(chunks_[chunk].mem.get());
    return (base + off + align - 1) / align * align - base + bytes;
  };
  auto fits = [&](size_t chunk, size_t off) {
    return chunk < chunks_.size() && aligned_end(chunk, off) <= chunks_[chunk].size;
  };
  if (!fits(cur_, off_)) {
    // The chunks above the current one hold nothing live (it is a stack): reuse the next one
    // when it is large enough, else replace it with one that is.
    const size_t next = chunks_.empty() ? 0 : cur_ + 1;
    if (!fits(next, 0)) {
      const size_t prev = chunks_.empty() ? 0 : chunks_.back().size;
      Chunk c;
      c.size = std::max({bytes + align, 2 * prev, size_t{64} << 10});
      c.mem.reset(new std::byte[c.size]);
      if (next < chunks_.size()) {
        chunks_[next] = std::move(c);
      } else {
        chunks_.push_back(std::move(c));
      }
    }
    cur_ = next;
    off_ = 0;
  }
  off_ = aligned_end(cur_, off_);
  return chunks_[cur_].mem.get() + (off_ - bytes);
}

void ScratchArena::PopTo(Mark m) {
  assert(depth_ > 0);
  --depth_;
  cur_ = m.chunk;
  off_ = m.offset;
  if (depth_ == 0 && chunks_.size() > 1) {
    // Empty again after growing into several chunks: one chunk of the total size holds the
    // next run's high-water mark without any further allocation.
    size_t total = 0;
    for (const Chunk& c : chunks_) total += c.size;
    chunks_.clear();
    cur_ = 0;
    off_ = 0;
    // A huge high-water mark (one outsized run) is not worth pinning to every thread.
    if (total > kMaxRetainedBytes) return;
    Chunk c;
    c.size = total;
    c.mem.reset(new std::byte[c.size]);
    chunks_.push_back(std::move(c));
  }
}

size_t ScratchArena::capacity() const {
  size_t total = 0;
  for (const Chunk& c : chunks_) total += c.size;
  return total;
}

}  // namespace outpost::kernels::cpu
