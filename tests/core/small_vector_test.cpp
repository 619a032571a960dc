#include "outpost/core/small_vector.h"

#include <gtest/gtest.h>

#include <numeric>

namespace outpost {
namespace {

TEST(SmallVector, StaysInlineUpToCapacityThenSpills) {
  SmallVector<int64_t, 4> v;
  EXPECT_TRUE(v.empty());
  for (int64_t i = 0; i < 4; ++i) v.push_back(i * 10);
  EXPECT_EQ(v.capacity(), 4u);
  const int64_t* inline_data = v.data();
  v.push_back(40);  // spills to the heap, keeping the contents
  EXPECT_NE(v.data(), inline_data);
  ASSERT_EQ(v.size(), 5u);
  for (int64_t i = 0; i < 5; ++i) EXPECT_EQ(v[i], i * 10);
  EXPECT_EQ(v.back(), 40);
}

TEST(SmallVector, CopyMoveAndAssign) {
  SmallVector<int64_t, 3> a{1, 2, 3};
  SmallVector<int64_t, 3> b = a;  // inline copy
  EXPECT_EQ(a, b);
  b.push_back(4);  // b spills, a does not change
  EXPECT_EQ(a.size(), 3u);
  SmallVector<int64_t, 3> c = std::move(b);  // heap buffer moves
  EXPECT_EQ(c.size(), 4u);
  EXPECT_EQ(c[3], 4);
  EXPECT_TRUE(b.empty());  // NOLINT(bugprone-use-after-move): moved-from is empty by contract
  c = a;
  EXPECT_EQ(c, a);
  SmallVector<int64_t, 3> d(5, 7);  // count + fill, not an iterator range
  EXPECT_EQ(d.size(), 5u);
  EXPECT_EQ(std::accumulate(d.begin(), d.end(), int64_t{0}), 35);
  d.assign(2, 9);
  EXPECT_EQ(d.vec(), (std::vector<int64_t>{9, 9}));
}

TEST(SmallVector, InsertResizeAndSpan) {
  IntList v{1, 3};
  v.insert(v.begin() + 1, 2);
  v.insert(v.end(), 4);
  EXPECT_EQ(v.vec(), (std::vector<int64_t>{1, 2, 3, 4}));
  v.resize(6, -1);
  EXPECT_EQ(v[5], -1);
  std::span<const int64_t> s = v;
  EXPECT_EQ(s.size(), 6u);
  EXPECT_EQ(s[1], 2);
  v.pop_back();
  v.clear();
  EXPECT_TRUE(v.empty());
  SmallVector<bool, 12> mask(12, false);
  mask[11] = true;
  EXPECT_TRUE(mask[11]);
  EXPECT_FALSE(mask[0]);
}

}  // namespace
}  // namespace outpost
