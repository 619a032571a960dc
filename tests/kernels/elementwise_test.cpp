// Unit tests for the CPU elementwise kernels. Expected values are hand-computed or from numpy
// (noted per test).
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "kernels/op_harness.h"

namespace outpost {
namespace {

using testing::Make;
Tensor F(Shape s, std::vector<float> v) { return Make<float>(DataType::kFloat, s, v); }
Tensor I32(Shape s, std::vector<int32_t> v) { return Make<int32_t>(DataType::kInt32, s, v); }

template <typename T>
std::vector<T> Values(const Tensor& t) {
  return std::vector<T>(t.data<T>(), t.data<T>() + t.numel());
}

kernels::Attributes Attrs(std::initializer_list<std::pair<std::string, kernels::Attribute>> l) {
  kernels::Attributes a;
  for (auto& [k, v] : l) a.Set(k, v);
  return a;
}
kernels::Attribute IntAttr(int64_t i) {
  kernels::Attribute a;
  a.kind = kernels::Attribute::Kind::kInt;
  a.i = i;
  return a;
}
kernels::Attribute StrAttr(std::string s) {
  kernels::Attribute a;
  a.kind = kernels::Attribute::Kind::kString;
  a.s = std::move(s);
  return a;
}

Tensor Run1(const std::string& op, std::vector<const Tensor*> in, kernels::Attributes a = {},
            int opset = 17) {
  auto out = testing::RunOp(op, std::move(a), std::move(in), 1, opset);
  EXPECT_TRUE(out.ok()) << out.status().ToString();
  if (!out.ok()) return Tensor();
  return std::move((*out)[0]);
}

TEST(Elementwise, AddBroadcastsRowAndColumn) {
  // [2,1] + [3] -> [2,3]: by hand.
  Tensor a = F({2, 1}, {1, 10});
  Tensor b = F({3}, {1, 2, 3});
  Tensor y = Run1("Add", {&a, &b});
  EXPECT_EQ(y.shape(), (Shape{2, 3}));
  EXPECT_EQ(Values<float>(y), (std::vector<float>{2, 3, 4, 11, 12, 13}));
}

TEST(Elementwise, LegacyBroadcastAxis) {
  // Opset 6: B [3] aligned with A [2,3,2] at axis 1 -> adds B[j] along dim 1. By hand.
  Tensor a = F({2, 3, 2}, std::vector<float>(12, 0));
  Tensor b = F({3}, {1, 2, 3});
  Tensor y = Run1("Add", {&a, &b}, Attrs({{"broadcast", IntAttr(1)}, {"axis", IntAttr(1)}}), 6);
  EXPECT_EQ(Values<float>(y), (std::vector<float>{1, 1, 2, 2, 3, 3, 1, 1, 2, 2, 3, 3}));
}

TEST(Elementwise, LargeBroadcastRunsInParallelAndMatches) {
  const int64_t rows = 300, cols = 1000;
  std::vector<float> av(rows * cols), bv(cols);
  for (int64_t i = 0; i < rows * cols; ++i) av[i] = static_cast<float>(i % 97);
  for (int64_t j = 0; j < cols; ++j) bv[j] = static_cast<float>(j);
  Tensor a = F({rows, cols}, av), b = F({cols}, bv);
  Tensor y = Run1("Mul", {&a, &b});
  for (int64_t i = 0; i < rows * cols; i += 7919)
    EXPECT_EQ(y.data<float>()[i], av[i] * bv[i % cols]);
  Tensor s = F({}, {2});
  Tensor z = Run1("Sub", {&s, &a});  // scalar - tensor
  EXPECT_EQ(z.data<float>()[rows * cols - 1], 2 - av[rows * cols - 1]);
}

TEST(Elementwise, IntegerDivTruncatesAndZeroDivisorGivesZero) {
  // numpy: np.trunc(-7/2) = -3; 7/-2 -> -3; x/0 -> 0 by our documented rule.
  Tensor a = I32({4}, {-7, 7, 5, INT32_MIN});
  Tensor b = I32({4}, {2, -2, 0, -1});
  EXPECT_EQ(Values<int32_t>(Run1("Div", {&a, &b})), (std::vector<int32_t>{-3, -3, 0, INT32_MIN}));
}

TEST(Elementwise, ModSignRules) {
  // numpy: np.mod([-4,7,5,-3],[3,-2,-3,2]) = [2,-1,-1,1]; np.fmod(floats) = [-1.5,1,2,-1].
  Tensor a = I32({4}, {-4, 7, 5, -3}), b = I32({4}, {3, -2, -3, 2});
  EXPECT_EQ(Values<int32_t>(Run1("Mod", {&a, &b})), (std::vector<int32_t>{2, -1, -1, 1}));
  Tensor fa = F({4}, {-4.5f, 7, 5, -3}), fb = F({4}, {3, -2, -3, 2});
  EXPECT_EQ(Values<float>(Run1("Mod", {&fa, &fb}, Attrs({{"fmod", IntAttr(1)}}))),
            (std::vector<float>{-1.5f, 1, 2, -1}));
}

TEST(Elementwise, PowMixedTypes) {
  // numpy: np.power([2,3] int32, [2.5,0.5] float32).astype(int32) = [5, 1].
  Tensor a = I32({2}, {2, 3});
  Tensor e = F({2}, {2.5f, 0.5f});
  Tensor y = Run1("Pow", {&a, &e}, {}, 15);
  EXPECT_EQ(y.dtype(), DataType::kInt32);
  EXPECT_EQ(Values<int32_t>(y), (std::vector<int32_t>{5, 1}));
  Tensor f = F({2}, {2, 9});
  Tensor ie = Make<int64_t>(DataType::kInt64, {2}, {3, -1});
  Tensor z = Run1("Pow", {&f, &ie}, {}, 15);
  EXPECT_FLOAT_EQ(z.data<float>()[0], 8.0f);
  EXPECT_FLOAT_EQ(z.data<float>()[1], 1.0f / 9.0f);
}

TEST(Elementwise, CompareStringsAndBroadcast) {
  Tensor a = Make<std::string>(DataType::kString, {2}, {"a", "b"});
  Tensor b = Make<std::string>(DataType::kString, {}, {"b"});
  Tensor y = Run1("Equal", {&a, &b}, {}, 19);
  EXPECT_EQ(y.dtype(), DataType::kBool);
  EXPECT_EQ(Values<bool>(y), (std::vector<bool>{false, true}));
  Tensor x = F({3}, {1, 2, 3}), t = F({1}, {2});
  EXPECT_EQ(Values<bool>(Run1("GreaterOrEqual", {&x, &t})),
            (std::vector<bool>{false, true, true}));
}

TEST(Elementwise, WhereThreeWayBroadcast) {
  // cond [2,1], x [2] , y scalar -> [2,2]; by hand.
  Tensor c = Make<bool>(DataType::kBool, {2, 1}, {true, false});
  Tensor x = F({2}, {1, 2});
  Tensor y = F({}, {9});
  EXPECT_EQ(Values<float>(Run1("Where", {&c, &x, &y})), (std::vector<float>{1, 2, 9, 9}));
}

TEST(Elementwise, VariadicMaxAndMean) {
  // numpy: np.maximum.reduce of broadcast inputs; mean = sum / 3.
  Tensor a = F({3}, {1, 5, 3}), b = F({1}, {4}), c = F({3}, {2, 2, 6});
  EXPECT_EQ(Values<float>(Run1("Max", {&a, &b, &c})), (std::vector<float>{4, 5, 6}));
  EXPECT_EQ(Values<float>(Run1("Mean", {&a, &b, &c})),
            (std::vector<float>{7.0f / 3, 11.0f / 3, 13.0f / 3}));
  EXPECT_EQ(Values<float>(Run1("Sum", {&a})), (std::vector<float>{1, 5, 3}));
}

TEST(Elementwise, ClipInputsAndAttributes) {
  Tensor x = F({4}, {-2, 0, 3, 9});
  Tensor lo = F({}, {-1}), hi = F({}, {5});
  EXPECT_EQ(Values<float>(Run1("Clip", {&x, &lo, &hi}, {}, 13)),
            (std::vector<float>{-1, 0, 3, 5}));
  EXPECT_EQ(Values<float>(Run1("Clip", {&x, nullptr, &hi}, {}, 13)),
            (std::vector<float>{-2, 0, 3, 5}));
  kernels::Attribute mn;
  mn.kind = kernels::Attribute::Kind::kFloat;
  mn.f = 1;
  EXPECT_EQ(Values<float>(Run1("Clip", {&x}, Attrs({{"min", mn}}), 6)),
            (std::vector<float>{1, 1, 3, 9}));
}

TEST(Elementwise, ActivationsMatchFormulas) {
  // Hand formulas: Elu(-1) = exp(-1) - 1; LeakyRelu(-2, 0.01) = -0.02; HardSwish(1) = 1*(1/6+0.5).
  Tensor x = F({2}, {-1, 2});
  Tensor e = Run1("Elu", {&x});
  EXPECT_NEAR(e.data<float>()[0], std::exp(-1.0f) - 1, 1e-6);
  EXPECT_EQ(e.data<float>()[1], 2);
  Tensor x2 = F({1}, {-2});
  EXPECT_NEAR(Run1("LeakyRelu", {&x2}).data<float>()[0], -0.02f, 1e-7);
  Tensor one = F({1}, {1});
  EXPECT_NEAR(Run1("HardSwish", {&one}).data<float>()[0], 1.0f / 6 + 0.5f, 1e-6);
  // Gelu(1) = 0.5 * (1 + erf(1/sqrt(2))) = 0.8413447 (scipy.stats.norm.cdf(1)).
  EXPECT_NEAR(Run1("Gelu", {&one}, {}, 20).data<float>()[0], 0.8413447f, 1e-6);
}

TEST(Elementwise, RoundHalfToEvenAndBitShift) {
  // numpy: np.round([0.5, 1.5, 2.5, -0.5]) = [0, 2, 2, -0].
  Tensor x = F({4}, {0.5f, 1.5f, 2.5f, -0.5f});
  EXPECT_EQ(Values<float>(Run1("Round", {&x}, {}, 11)), (std::vector<float>{0, 2, 2, 0}));
  Tensor a = Make<uint8_t>(DataType::kUInt8, {3}, {1, 255, 16});
  Tensor s = Make<uint8_t>(DataType::kUInt8, {3}, {3, 1, 9});
  Tensor y = Run1("BitShift", {&a, &s}, Attrs({{"direction", StrAttr("LEFT")}}), 11);
  EXPECT_EQ(Values<uint8_t>(y), (std::vector<uint8_t>{8, 254, 0}));
}

TEST(Elementwise, CastNumbersStringsAndFloat16) {
  // numpy: np.float32([1.5, 100, 1e-5, -0.25]).astype(str) = ['1.5','100.0','1e-05','-0.25'].
  Tensor x = F({4}, {1.5f, 100, 1e-5f, -0.25f});
  Tensor s = Run1("Cast", {&x}, Attrs({{"to", IntAttr(8)}}), 13);
  EXPECT_EQ(Values<std::string>(s), (std::vector<std::string>{"1.5", "100.0", "1e-05", "-0.25"}));
  Tensor back = Run1("Cast", {&s}, Attrs({{"to", IntAttr(1)}}), 13);
  EXPECT_EQ(Values<float>(back), (std::vector<float>{1.5f, 100, 1e-5f, -0.25f}));
  Tensor h = Run1("Cast", {&x}, Attrs({{"to", IntAttr(10)}}), 13);
  EXPECT_EQ(h.data<Float16>()[0].bits, 0x3e00);  // 1.5 in IEEE half
  Tensor i = Run1("Cast", {&x}, Attrs({{"to", IntAttr(6)}}), 13);
  EXPECT_EQ(Values<int32_t>(i), (std::vector<int32_t>{1, 100, 0, 0}));
}

TEST(Elementwise, CastFloat8RoundsToNearestEvenAndSaturates) {
  // E4M3FN by hand: 0.1 -> 1.625*2^-4 = code 29; 1000 -> saturates to 448 (0x7E);
  // 3.3 -> 3.25 (code 69); 464 is the tie between 448 and the overflow step -> 448; -0 -> 0x80.
  Tensor x = F({5}, {0.1f, 1000, 3.3f, 464, -0.0f});
  Tensor y = Run1("Cast", {&x}, Attrs({{"to", IntAttr(17)}}), 19);
  const uint8_t* b = static_cast<const uint8_t*>(y.raw());
  EXPECT_EQ(std::vector<int>(b, b + 5), (std::vector<int>{29, 126, 69, 126, 128}));
  Tensor ns = Run1("Cast", {&x}, Attrs({{"to", IntAttr(17)}, {"saturate", IntAttr(0)}}), 19);
  EXPECT_EQ(static_cast<const uint8_t*>(ns.raw())[1], 0x7f);  // overflow -> NaN
  Tensor f = Run1("Cast", {&y}, Attrs({{"to", IntAttr(1)}}), 19);
  EXPECT_FLOAT_EQ(f.data<float>()[0], 0.1015625f);
  EXPECT_FLOAT_EQ(f.data<float>()[1], 448.0f);
}

// Casts to the sub-byte integers truncate and wrap modulo 2^bits, as numpy's astype does: -9
// is 7 in int4, 8 is -8; -3 is 1 in uint2, 5 is 1. float4e2m1 rounds to nearest even and
// saturates.
TEST(Elementwise, CastToSubByteTypesWrapsOrSaturates) {
  Tensor x = F({5}, {-9.f, 8.f, 7.9f, -1.f, -3.f});
  Tensor i4 = Run1("Cast", {&x}, Attrs({{"to", IntAttr(22)}}), 25);
  EXPECT_EQ(i4.dtype(), DataType::kInt4);
  EXPECT_EQ(std::vector<int8_t>(i4.data<int8_t>(), i4.data<int8_t>() + 5),
            (std::vector<int8_t>{7, -8, 7, -1, -3}));
  Tensor u2 = Run1("Cast", {&x}, Attrs({{"to", IntAttr(25)}}), 25);
  EXPECT_EQ(std::vector<uint8_t>(u2.data<uint8_t>(), u2.data<uint8_t>() + 5),
            (std::vector<uint8_t>{3, 0, 3, 3, 1}));
  Tensor f4 = Run1("Cast", {&x}, Attrs({{"to", IntAttr(23)}}), 25);
  const uint8_t* b = static_cast<const uint8_t*>(f4.raw());
  // -9 -> -6 (0xF), 8 -> 6 (0x7), 7.9 -> 6, -1 -> 0xA, -3 -> 0xD.
  EXPECT_EQ(std::vector<int>(b, b + 5), (std::vector<int>{0xF, 0x7, 0x7, 0xA, 0xD}));
  Tensor back = Run1("Cast", {&i4}, Attrs({{"to", IntAttr(1)}}), 25);
  EXPECT_EQ(Values<float>(back), (std::vector<float>{7, -8, 7, -1, -3}));
}

TEST(Elementwise, DropoutInferenceIsIdentity) {
  Tensor x = F({3}, {1, 2, 3});
  auto out = testing::RunOp("Dropout", {}, {&x}, 2, 13);
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_EQ(Values<float>((*out)[0]), (std::vector<float>{1, 2, 3}));
  EXPECT_EQ(Values<bool>((*out)[1]), (std::vector<bool>{true, true, true}));
  Tensor r = F({}, {0.5f});
  Tensor t = Make<bool>(DataType::kBool, {}, {true});
  auto tr = testing::RunOp("Dropout", {}, {&x, &r, &t}, 1, 13);
  EXPECT_EQ(tr.status().code(), Code::kUnsupported);
}

TEST(Elementwise, RefusesUnsupportedTypesAndInfersShapes) {
  Tensor s = Make<std::string>(DataType::kString, {1}, {"x"});
  auto r = testing::RunOp("Exp", {}, {&s});
  EXPECT_EQ(r.status().code(), Code::kUnsupported);
  Tensor u = Make<uint8_t>(DataType::kUInt8, {1}, {1});
  EXPECT_EQ(testing::RunOp("Neg", {}, {&u}).status().code(), Code::kUnsupported);
  Tensor a = F({2, 1, 4}, std::vector<float>(8, 0)), b = F({3, 1}, {0, 0, 0});
  auto m = testing::RunOp("Add", {}, {&a, &b}, 1, 17, "", /*infer_only=*/true);
  ASSERT_TRUE(m.ok());
  EXPECT_EQ((*m)[0].shape(), (Shape{2, 3, 4}));
  Tensor c = F({2}, {0, 0}), d = F({3}, {0, 0, 0});
  EXPECT_EQ(testing::RunOp("Add", {}, {&c, &d}).status().code(), Code::kInvalidArgument);
}

}  // namespace
}  // namespace outpost
