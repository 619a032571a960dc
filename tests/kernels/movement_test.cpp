// Unit tests for the CPU shape and data-movement kernels. Expected values are hand-computed from
// the ONNX operator spec (each test says how).
#include <gtest/gtest.h>

#include <numeric>

#include "kernels/op_harness.h"

namespace outpost {
namespace {

using kernels::Attribute;
using kernels::Attributes;

template <typename T>
Tensor Make(Shape s, std::vector<T> v) {
  auto t = Tensor::Allocate(TypeOf<T>::value, s).value();
  EXPECT_EQ(static_cast<int64_t>(v.size()), s.numel());
  std::copy(v.begin(), v.end(), t.template data<T>());
  return t;
}

Tensor Iota(Shape s) {
  std::vector<float> v(s.numel());
  std::iota(v.begin(), v.end(), 0.f);
  return Make<float>(s, v);
}

template <typename T>
std::vector<T> Values(const Tensor& t) {
  return {t.template data<T>(), t.data<T>() + t.numel()};
}

Attribute Str(std::string v) {
  Attribute a;
  a.kind = Attribute::Kind::kString;
  a.s = std::move(v);
  return a;
}

std::vector<Tensor> RunK(const std::string& op, Attributes attrs, std::vector<const Tensor*> in,
                         int outs = 1, int opset = 18) {
  auto r = testing::RunOp(op, std::move(attrs), std::move(in), outs, opset);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? std::move(r).value() : std::vector<Tensor>{};
}

TEST(Movement, ReshapeZeroAndMinusOne) {
  Tensor x = Iota({2, 3, 4});
  Tensor shape = Make<int64_t>({2}, {0, -1});  // 0 copies dim 0 (2), -1 = 24 / 2
  auto out = RunK("Reshape", {}, {&x, &shape});
  EXPECT_EQ(out[0].shape(), (Shape{2, 12}));
  EXPECT_EQ(Values<float>(out[0])[13], 13.f);
  Attributes az;
  az.Set("allowzero", testing::AttrInt(1));
  Tensor e = Make<float>({0, 3}, {});
  Tensor shape0 = Make<int64_t>({2}, {3, 0});  // allowzero: 0 is a real zero
  auto out0 = RunK("Reshape", az, {&e, &shape0});
  EXPECT_EQ(out0[0].shape(), (Shape{3, 0}));
}

TEST(Movement, ReshapeUnknownShapeIsDataDependent) {
  Tensor x = Iota({2, 3});
  Tensor shape = Tensor::Meta(DataType::kInt64, Shape{2});
  auto r = testing::RunOp("Reshape", {}, {&x, &shape}, 1, 18, "", /*infer_only=*/true);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kUnavailable);
}

TEST(Movement, ShapeStartEnd) {
  Tensor x = Iota({2, 3, 4});
  Attributes a;
  a.Set("start", testing::AttrInt(-2));  // dims[1:] of [2,3,4]
  auto out = RunK("Shape", a, {&x});
  EXPECT_EQ(Values<int64_t>(out[0]), (std::vector<int64_t>{3, 4}));
}

TEST(Movement, TransposeSmallAndBlocked) {
  Tensor x = Iota({2, 3});
  auto out = RunK("Transpose", {}, {&x});  // default perm reverses: y[j][i] = x[i][j]
  EXPECT_EQ(Values<float>(out[0]), (std::vector<float>{0, 3, 1, 4, 2, 5}));
  // A large 3-D permutation checked against the definition y[a][b][c] = x[c][a][b] (perm 2,0,1).
  const int64_t D0 = 37, D1 = 53, D2 = 70;
  Tensor big = Iota({D0, D1, D2});
  Attributes a;
  a.Set("perm", testing::AttrInts({2, 0, 1}));
  auto ob = RunK("Transpose", a, {&big});
  ASSERT_EQ(ob[0].shape(), (Shape{D2, D0, D1}));
  const float* y = ob[0].data<float>();
  for (int64_t i = 0; i < D2; ++i)
    for (int64_t j = 0; j < D0; ++j)
      for (int64_t k = 0; k < D1; ++k)
        ASSERT_EQ(y[(i * D0 + j) * D1 + k], static_cast<float>((j * D1 + k) * D2 + i));
}

TEST(Movement, SliceNegativeStep) {
  Tensor x = Iota({10});
  Tensor s = Make<int64_t>({1}, {8}), e = Make<int64_t>({1}, {1}), ax = Make<int64_t>({1}, {0}),
         st = Make<int64_t>({1}, {-3});
  auto out = RunK("Slice", {}, {&x, &s, &e, &ax, &st});  // 8, 5, 2
  EXPECT_EQ(Values<float>(out[0]), (std::vector<float>{8, 5, 2}));
  Tensor s2 = Make<int64_t>({1}, {-100}), e2 = Make<int64_t>({1}, {INT64_MAX});  // clamped: all
  auto all = RunK("Slice", {}, {&x, &s2, &e2});
  EXPECT_EQ(all[0].numel(), 10);
}

TEST(Movement, ConcatAndSplit) {
  Tensor a = Iota({2, 2}), b = Make<float>({2, 1}, {9, 8});
  Attributes ax;
  ax.Set("axis", testing::AttrInt(1));
  auto c = RunK("Concat", ax, {&a, &b});
  EXPECT_EQ(Values<float>(c[0]), (std::vector<float>{0, 1, 9, 2, 3, 8}));
  // Split-18 num_outputs=3 of 7 elements: parts of ceil(7/3) = 3, 3, then the rest 1.
  Tensor x = Iota({7});
  Attributes n;
  n.Set("num_outputs", testing::AttrInt(3));
  auto parts = RunK("Split", n, {&x}, 3, 18);
  ASSERT_EQ(parts.size(), 3u);
  EXPECT_EQ(Values<float>(parts[2]), (std::vector<float>{6}));
  EXPECT_EQ(Values<float>(parts[1]), (std::vector<float>{3, 4, 5}));
}

TEST(Movement, GatherFamily) {
  Tensor x = Iota({3, 2});
  Tensor ind = Make<int64_t>({2}, {-1, 0});  // rows 2 and 0
  auto g = RunK("Gather", {}, {&x, &ind});
  EXPECT_EQ(Values<float>(g[0]), (std::vector<float>{4, 5, 0, 1}));
  // GatherND spec example 5 (batch_dims = 1).
  Tensor d = Iota({2, 2, 2});
  Tensor i2 = Make<int64_t>({2, 1}, {1, 0});
  Attributes bd;
  bd.Set("batch_dims", testing::AttrInt(1));
  auto nd = RunK("GatherND", bd, {&d, &i2});
  EXPECT_EQ(Values<float>(nd[0]), (std::vector<float>{2, 3, 4, 5}));
  // GatherElements spec example 1: axis 1, data [[1,2],[3,4]], indices [[0,0],[1,0]].
  Tensor e = Make<float>({2, 2}, {1, 2, 3, 4});
  Tensor ei = Make<int64_t>({2, 2}, {0, 0, 1, 0});
  Attributes a1;
  a1.Set("axis", testing::AttrInt(1));
  auto ge = RunK("GatherElements", a1, {&e, &ei});
  EXPECT_EQ(Values<float>(ge[0]), (std::vector<float>{1, 1, 4, 3}));
}

TEST(Movement, ScatterReductions) {
  // ScatterElements with duplicate indices and reduction add: data [[1,2,3,4,5]], axis 1,
  // indices [[1,1]], updates [[1.1,2.1]] -> [[1, 5.2, 3, 4, 5]] (spec example).
  Tensor d = Make<float>({1, 5}, {1, 2, 3, 4, 5});
  Tensor i = Make<int64_t>({1, 2}, {1, 1});
  Tensor u = Make<float>({1, 2}, {1.1f, 2.1f});
  Attributes a;
  a.Set("axis", testing::AttrInt(1));
  a.Set("reduction", Str("add"));
  auto out = RunK("ScatterElements", a, {&d, &i, &u});
  EXPECT_NEAR(Values<float>(out[0])[1], 5.2f, 1e-5);
  // ScatterND: data [1..8], indices [[4],[3],[1],[7]], updates [9,10,11,12] (spec example 1).
  Tensor nd = Make<float>({8}, {1, 2, 3, 4, 5, 6, 7, 8});
  Tensor ni = Make<int64_t>({4, 1}, {4, 3, 1, 7});
  Tensor nu = Make<float>({4}, {9, 10, 11, 12});
  auto o2 = RunK("ScatterND", {}, {&nd, &ni, &nu});
  EXPECT_EQ(Values<float>(o2[0]), (std::vector<float>{1, 11, 3, 10, 9, 6, 7, 12}));
}

TEST(Movement, PadModes) {
  Tensor x = Make<float>({3}, {1, 2, 3});
  Tensor pads = Make<int64_t>({2}, {2, 2});
  auto run = [&](const char* mode) {
    Attributes a;
    a.Set("mode", Str(mode));
    return Values<float>(RunK("Pad", a, {&x, &pads}, 1, 19)[0]);
  };
  EXPECT_EQ(run("reflect"), (std::vector<float>{3, 2, 1, 2, 3, 2, 1}));
  EXPECT_EQ(run("edge"), (std::vector<float>{1, 1, 1, 2, 3, 3, 3}));
  EXPECT_EQ(run("wrap"), (std::vector<float>{2, 3, 1, 2, 3, 1, 2}));
  EXPECT_EQ(run("constant"), (std::vector<float>{0, 0, 1, 2, 3, 0, 0}));
}

TEST(Movement, TileAndExpand) {
  Tensor x = Make<float>({2}, {1, 2});
  Tensor reps = Make<int64_t>({1}, {3});
  EXPECT_EQ(Values<float>(RunK("Tile", {}, {&x, &reps})[0]),
            (std::vector<float>{1, 2, 1, 2, 1, 2}));
  Tensor shape = Make<int64_t>({2}, {2, 1});  // broadcast [2] with [2,1] -> [2,2]
  auto e = RunK("Expand", {}, {&x, &shape});
  EXPECT_EQ(e[0].shape(), (Shape{2, 2}));
  EXPECT_EQ(Values<float>(e[0]), (std::vector<float>{1, 2, 1, 2}));
}

TEST(Movement, UniqueSortedAndNot) {
  // Spec example 2: [2,1,1,3,4,3].
  Tensor x = Make<float>({6}, {2, 1, 1, 3, 4, 3});
  auto s = RunK("Unique", {}, {&x}, 4);
  EXPECT_EQ(Values<float>(s[0]), (std::vector<float>{1, 2, 3, 4}));
  EXPECT_EQ(Values<int64_t>(s[1]), (std::vector<int64_t>{1, 0, 3, 4}));
  EXPECT_EQ(Values<int64_t>(s[2]), (std::vector<int64_t>{1, 0, 0, 2, 3, 2}));
  EXPECT_EQ(Values<int64_t>(s[3]), (std::vector<int64_t>{2, 1, 2, 1}));
  Attributes a;
  a.Set("sorted", testing::AttrInt(0));
  auto u = RunK("Unique", a, {&x}, 4);
  EXPECT_EQ(Values<float>(u[0]), (std::vector<float>{2, 1, 3, 4}));
  EXPECT_EQ(Values<int64_t>(u[2]), (std::vector<int64_t>{0, 1, 1, 2, 3, 2}));
}

TEST(Movement, TopKAndNonZero) {
  Tensor x = Make<float>({5}, {3, 1, 3, 7, 0});
  Tensor k = Make<int64_t>({1}, {3});
  auto t = RunK("TopK", {}, {&x, &k}, 2);  // ties keep the lower index first
  EXPECT_EQ(Values<float>(t[0]), (std::vector<float>{7, 3, 3}));
  EXPECT_EQ(Values<int64_t>(t[1]), (std::vector<int64_t>{3, 0, 2}));
  Tensor b = Make<bool>({2, 2}, {true, false, false, true});
  auto nz = RunK("NonZero", {}, {&b});
  EXPECT_EQ(nz[0].shape(), (Shape{2, 2}));
  EXPECT_EQ(Values<int64_t>(nz[0]), (std::vector<int64_t>{0, 1, 0, 1}));
}

TEST(Movement, DepthToSpaceModes) {
  Tensor x = Iota({1, 8, 1, 1});  // c = 2, blocksize 2
  Attributes a;
  a.Set("blocksize", testing::AttrInt(2));
  // DCR: y[ci][b1][b2] = x[(b1 * 2 + b2) * 2 + ci]
  EXPECT_EQ(Values<float>(RunK("DepthToSpace", a, {&x})[0]),
            (std::vector<float>{0, 2, 4, 6, 1, 3, 5, 7}));
  a.Set("mode", Str("CRD"));  // CRD: y[ci][b1][b2] = x[ci * 4 + b1 * 2 + b2]
  EXPECT_EQ(Values<float>(RunK("DepthToSpace", a, {&x})[0]),
            (std::vector<float>{0, 1, 2, 3, 4, 5, 6, 7}));
  Attributes s;
  s.Set("blocksize", testing::AttrInt(2));
  Tensor img = Iota({1, 1, 2, 2});  // SpaceToDepth: channel b1 * 2 + b2 holds pixel (b1, b2)
  EXPECT_EQ(Values<float>(RunK("SpaceToDepth", s, {&img})[0]), (std::vector<float>{0, 1, 2, 3}));
}

TEST(Movement, ResizeLinearAndNearest) {
  // half_pixel linear 1-D [1,2] -> 4: x_orig = (x + 0.5) / 2 - 0.5 = -0.25, 0.25, 0.75, 1.25,
  // clamped at the edges: 1, 1.25, 1.75, 2.
  Tensor x = Make<float>({1, 2}, {1, 2});
  Tensor roi = Make<float>({0}, {});
  Tensor scales = Make<float>({2}, {1, 2});
  Attributes a;
  a.Set("mode", Str("linear"));
  auto y = RunK("Resize", a, {&x, &roi, &scales}, 1, 19);
  EXPECT_EQ(Values<float>(y[0]), (std::vector<float>{1, 1.25f, 1.75f, 2}));
  // nearest asymmetric floor, sizes [1,3]: x_orig = x * 2 / 3 -> 0, 0.67, 1.33 -> 0, 0, 1.
  Tensor sizes = Make<int64_t>({2}, {1, 3});
  Attributes n;
  n.Set("coordinate_transformation_mode", Str("asymmetric"));
  n.Set("nearest_mode", Str("floor"));
  auto z = RunK("Resize", n, {&x, &roi, nullptr, &sizes}, 1, 19);
  EXPECT_EQ(Values<float>(z[0]), (std::vector<float>{1, 1, 2}));
}

TEST(Movement, CumSumExclusiveReverse) {
  Tensor x = Make<float>({4}, {1, 2, 3, 4});
  Tensor ax = Make<int64_t>({}, {0});
  Attributes a;
  a.Set("exclusive", testing::AttrInt(1));
  a.Set("reverse", testing::AttrInt(1));
  // reverse exclusive: y[i] = sum(x[i+1:]) = 9, 7, 4, 0
  EXPECT_EQ(Values<float>(RunK("CumSum", a, {&x, &ax})[0]), (std::vector<float>{9, 7, 4, 0}));
}

TEST(Movement, StringsMove) {
  Tensor x = Make<std::string>({2, 2}, {"a", "b", "c", "d"});
  auto t = RunK("Transpose", {}, {&x});
  EXPECT_EQ(Values<std::string>(t[0]), (std::vector<std::string>{"a", "c", "b", "d"}));
}

}  // namespace
}  // namespace outpost
