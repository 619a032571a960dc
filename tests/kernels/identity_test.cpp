#include <gtest/gtest.h>

#include "kernels/op_harness.h"

namespace outpost {
namespace {

TEST(Identity, CopiesValuesAndInfersShape) {
  auto x = Tensor::Allocate(DataType::kInt32, Shape{2, 2}).value();
  for (int i = 0; i < 4; ++i) x.data<int32_t>()[i] = i * 10;
  auto out = testing::RunOp("Identity", {}, {&x});
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  ASSERT_EQ((*out)[0].shape(), (Shape{2, 2}));
  EXPECT_EQ((*out)[0].data<int32_t>()[3], 30);
  auto meta = testing::RunOp("Identity", {}, {&x}, 1, 17, "", /*infer_only=*/true);
  ASSERT_TRUE(meta.ok());
  EXPECT_FALSE((*meta)[0].has_data());
  EXPECT_EQ((*meta)[0].dtype(), DataType::kInt32);
}

}  // namespace
}  // namespace outpost
