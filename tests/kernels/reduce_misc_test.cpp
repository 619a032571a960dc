// Unit tests for the reduction family and the misc ops (expected values hand-computed).
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "kernels/op_harness.h"

namespace outpost {
namespace {

using testing::Make;

kernels::Attributes IntAttr(const std::string& name, int64_t v) {
  kernels::Attributes a;
  kernels::Attribute at;
  at.kind = kernels::Attribute::Kind::kInt;
  at.i = v;
  a.Set(name, at);
  return a;
}

TEST(Reduce, SumOverAxesInput) {
  Tensor x = Make<float>(DataType::kFloat, {2, 3}, {1, 2, 3, 4, 5, 6});
  Tensor axes = Make<int64_t>(DataType::kInt64, {1}, {1});
  auto out = testing::RunOp("ReduceSum", IntAttr("keepdims", 0), {&x, &axes}, 1, 13);
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  ASSERT_EQ((*out)[0].shape(), (Shape{2}));
  EXPECT_FLOAT_EQ((*out)[0].data<float>()[0], 6);   // 1+2+3
  EXPECT_FLOAT_EQ((*out)[0].data<float>()[1], 15);  // 4+5+6
  // Axes input unknown during inference: the shape depends on data.
  Tensor meta_axes = Tensor::Meta(DataType::kInt64, Shape{1});
  auto meta = testing::RunOp("ReduceSum", {}, {&x, &meta_axes}, 1, 13, "", true);
  EXPECT_EQ(meta.status().code(), Code::kUnavailable);
}

TEST(Reduce, MeanOverLeadingAxisAndAllAxes) {
  Tensor x = Make<float>(DataType::kFloat, {2, 2}, {1, 2, 3, 6});
  Tensor axes0 = Make<int64_t>(DataType::kInt64, {1}, {0});
  auto out = testing::RunOp("ReduceMean", {}, {&x, &axes0}, 1, 18);
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  ASSERT_EQ((*out)[0].shape(), (Shape{1, 2}));
  EXPECT_FLOAT_EQ((*out)[0].data<float>()[0], 2);  // (1+3)/2
  EXPECT_FLOAT_EQ((*out)[0].data<float>()[1], 4);  // (2+6)/2
  auto all = testing::RunOp("ReduceL2", IntAttr("keepdims", 0), {&x}, 1, 18);
  ASSERT_TRUE(all.ok());
  EXPECT_EQ((*all)[0].shape(), Shape{});
  EXPECT_FLOAT_EQ((*all)[0].data<float>()[0], std::sqrt(50.0f));  // 1+4+9+36
}

TEST(Reduce, EmptySetGivesIdentity) {
  Tensor x = Tensor::Allocate(DataType::kFloat, Shape{2, 0}).value();
  Tensor axes = Make<int64_t>(DataType::kInt64, {1}, {1});
  auto mx = testing::RunOp("ReduceMax", {}, {&x, &axes}, 1, 18);
  ASSERT_TRUE(mx.ok());
  EXPECT_EQ((*mx)[0].data<float>()[0], -std::numeric_limits<float>::infinity());
  auto prod = testing::RunOp("ReduceProd", {}, {&x, &axes}, 1, 18);
  ASSERT_TRUE(prod.ok());
  EXPECT_EQ((*prod)[0].data<float>()[1], 1.0f);
}

TEST(Reduce, AxesAttributeBeforeOpset18AndNoop) {
  Tensor x = Make<int32_t>(DataType::kInt32, {2, 2}, {1, 2, 3, 4});
  kernels::Attributes a;
  kernels::Attribute axes;
  axes.kind = kernels::Attribute::Kind::kInts;
  axes.ints = {1};
  a.Set("axes", axes);
  auto out = testing::RunOp("ReduceMax", a, {&x}, 1, 13);
  ASSERT_TRUE(out.ok());
  EXPECT_EQ((*out)[0].data<int32_t>()[0], 2);
  EXPECT_EQ((*out)[0].data<int32_t>()[1], 4);
  Tensor none = Tensor::Allocate(DataType::kInt64, Shape{0}).value();
  auto noop = testing::RunOp("ReduceSum", IntAttr("noop_with_empty_axes", 1), {&x, &none}, 1, 13);
  ASSERT_TRUE(noop.ok());
  EXPECT_EQ((*noop)[0].shape(), (Shape{2, 2}));
  EXPECT_EQ((*noop)[0].data<int32_t>()[3], 4);
}

TEST(Reduce, ArgMaxSelectLastIndex) {
  Tensor x = Make<float>(DataType::kFloat, {3}, {1, 3, 3});
  auto first = testing::RunOp("ArgMax", {}, {&x}, 1, 13);
  auto last = testing::RunOp("ArgMax", IntAttr("select_last_index", 1), {&x}, 1, 13);
  ASSERT_TRUE(first.ok() && last.ok());
  EXPECT_EQ((*first)[0].data<int64_t>()[0], 1);
  EXPECT_EQ((*last)[0].data<int64_t>()[0], 2);
}

TEST(Misc, EinsumMatmulAndDet) {
  Tensor a = Make<float>(DataType::kFloat, {2, 2}, {1, 2, 3, 4});
  Tensor b = Make<float>(DataType::kFloat, {2, 2}, {5, 6, 7, 8});
  kernels::Attributes eq;
  kernels::Attribute s;
  s.kind = kernels::Attribute::Kind::kString;
  s.s = "ij,jk->ik";
  eq.Set("equation", s);
  auto mm = testing::RunOp("Einsum", eq, {&a, &b}, 1, 12);
  ASSERT_TRUE(mm.ok()) << mm.status().ToString();
  const float want[4] = {19, 22, 43, 50};  // [[1,2],[3,4]] x [[5,6],[7,8]]
  for (int i = 0; i < 4; ++i) EXPECT_FLOAT_EQ((*mm)[0].data<float>()[i], want[i]);
  auto det = testing::RunOp("Det", {}, {&a}, 1, 22);
  ASSERT_TRUE(det.ok());
  EXPECT_FLOAT_EQ((*det)[0].data<float>()[0], -2);  // 1*4 - 2*3
}

TEST(Misc, NllLossMeanAndBadTarget) {
  Tensor x = Make<float>(DataType::kFloat, {2, 2}, {-1, -2, -3, -4});
  Tensor t = Make<int64_t>(DataType::kInt64, {2}, {1, 0});
  auto out = testing::RunOp("NegativeLogLikelihoodLoss", {}, {&x, &t}, 1, 22);
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_FLOAT_EQ((*out)[0].data<float>()[0], 2.5f);  // (2 + 3) / 2
  Tensor bad = Make<int64_t>(DataType::kInt64, {2}, {1, 7});
  auto err = testing::RunOp("NegativeLogLikelihoodLoss", {}, {&x, &bad}, 1, 22);
  EXPECT_EQ(err.status().code(), Code::kInvalidArgument);
}

}  // namespace
}  // namespace outpost
