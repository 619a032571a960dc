// The CPU kernels' per-thread scratch arena: stack order, alignment, value initialisation, growth
// and folding into one chunk, and no new chunk once the high-water mark is held.
#include "cpu/scratch.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <thread>

namespace outpost::kernels::cpu {
namespace {

TEST(ScratchArena, NestedVectorsAreDisjointAlignedAndInitialised) {
  ScratchVec<double> a(100, 1.5);
  ScratchVec<int64_t> b(37);
  ScratchVec<uint8_t> c(3, 7);
  EXPECT_EQ(a.size(), 100u);
  for (double v : a) EXPECT_EQ(v, 1.5);
  for (int64_t v : b) EXPECT_EQ(v, 0);
  for (uint8_t v : c) EXPECT_EQ(v, 7);
  for (const void* p : {static_cast<const void*>(a.data()), static_cast<const void*>(b.data()),
                        static_cast<const void*>(c.data())})
    EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % 64, 0u);
  // Disjoint: writing one leaves the others as they were.
  for (auto& v : b) v = -1;
  for (double v : a) EXPECT_EQ(v, 1.5);
  for (uint8_t v : c) EXPECT_EQ(v, 7);
  EXPECT_TRUE(reinterpret_cast<const char*>(b.data()) >=
                  reinterpret_cast<const char*>(a.data() + a.size()) ||
              reinterpret_cast<const char*>(b.data() + b.size()) <=
                  reinterpret_cast<const char*>(a.data()));
}

TEST(ScratchArena, ReleasedMemoryIsReusedInStackOrder) {
  const double* first;
  {
    ScratchVec<double> a(10);
    first = a.data();
  }
  ScratchVec<double> again(10);
  EXPECT_EQ(again.data(), first);
}

TEST(ScratchArena, GrowsIntoChunksThenFoldsAndHoldsTheHighWaterMark) {
  std::thread([] {  // a fresh thread: a fresh arena
    ScratchArena& arena = ScratchArena::ForThisThread();
    EXPECT_EQ(arena.capacity(), 0u);
    const size_t big = (1u << 20) / sizeof(double);  // 1 MiB each, beyond the first chunk
    {
      ScratchVec<double> a(big, 1.0), b(big, 2.0), c(big, 3.0);
      EXPECT_EQ(a[big - 1], 1.0);
      EXPECT_EQ(b[0], 2.0);
      EXPECT_EQ(c[big / 2], 3.0);
    }
    const size_t folded = arena.capacity();
    EXPECT_GE(folded, 3 * big * sizeof(double));
    for (int run = 0; run < 5; ++run) {  // the same demand again: no growth
      ScratchVec<double> a(big), b(big), c(big);
      a[0] = b[0] = c[0] = 1;
      EXPECT_EQ(arena.capacity(), folded);
    }
    EXPECT_EQ(arena.capacity(), folded);
  }).join();
}

TEST(ScratchArena, AnOutsizedHighWaterMarkIsGivenBack) {
  std::thread([] {
    ScratchArena& arena = ScratchArena::ForThisThread();
    const size_t half = ScratchArena::kMaxRetainedBytes / 2 + 1;
    {
      ScratchVec<uint8_t> a(half, 1), b(half, 2);  // two chunks, more than the limit together
      EXPECT_EQ(a[half - 1], 1);
      EXPECT_EQ(b[half - 1], 2);
    }
    EXPECT_EQ(arena.capacity(), 0u);
    ScratchVec<uint8_t> small(100, 3);  // and the arena still works
    EXPECT_EQ(small[99], 3);
  }).join();
}

}  // namespace
}  // namespace outpost::kernels::cpu
