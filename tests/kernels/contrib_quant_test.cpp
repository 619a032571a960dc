// Unit tests for the com.microsoft quantized ops (QLinearAdd, QLinearMul, QLinearConcat,
// QLinearGlobalAveragePool, QLinearAveragePool), MatMulNBits, and our QLinearConvTranspose. Every
// expected value is worked out by hand in the comment beside it from the op's definition.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

#include "kernels/op_harness.h"

namespace outpost {
namespace {

using testing::Make;
constexpr const char* kMs = "com.microsoft";

Tensor F(float v) { return Make<float>(DataType::kFloat, Shape{}, {v}); }
Tensor U8(uint8_t v) { return Make<uint8_t>(DataType::kUInt8, Shape{}, {v}); }
Tensor I8(int8_t v) { return Make<int8_t>(DataType::kInt8, Shape{}, {v}); }

template <typename T>
std::vector<T> Values(const Tensor& t) {
  return std::vector<T>(t.data<T>(), t.data<T>() + t.numel());
}

Expected<std::vector<Tensor>> Ms(const std::string& op, kernels::Attributes attrs,
                                 std::vector<const Tensor*> in) {
  return testing::RunOp(op, std::move(attrs), std::move(in), 1, 1, kMs);
}

TEST(QLinearAddTest, Uint8BroadcastScalarAndRoundsHalfToEven) {
  // A = (a - 10) * 0.5 = [0, 5, 10, 95]; B = 4 * 0.25 = 1; A + B = [1, 6, 11, 96].
  Tensor a = Make<uint8_t>(DataType::kUInt8, Shape{4}, {10, 20, 30, 200});
  Tensor b = Make<uint8_t>(DataType::kUInt8, Shape{1}, {4});
  Tensor as = F(0.5f), az = U8(10), bs = F(0.25f), bz = U8(0);
  {  // C = round((A + B) / 0.5) + 5 = [2, 12, 22, 192] + 5
    Tensor cs = F(0.5f), cz = U8(5);
    auto r = Ms("QLinearAdd", {}, {&a, &as, &az, &b, &bs, &bz, &cs, &cz});
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(Values<uint8_t>((*r)[0]), (std::vector<uint8_t>{7, 17, 27, 197}));
  }
  {  // (A + B) / 2 = [0.5, 3, 5.5, 48] -> half to even [0, 3, 6, 48], + 5
    Tensor cs = F(2.f), cz = U8(5);
    auto r = Ms("QLinearAdd", {}, {&a, &as, &az, &b, &bs, &bz, &cs, &cz});
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(Values<uint8_t>((*r)[0]), (std::vector<uint8_t>{5, 8, 11, 53}));
  }
}

TEST(QLinearAddTest, Int8SaturatesAndBroadcastsRowsAgainstColumns) {
  // A [2,1] = [100, -100], B [1,3] = [0, 100, -100], scales 1, zero points 0 (omitted for C):
  // sums [[100, 200, 0], [-100, 0, -200]] -> saturated to int8.
  Tensor a = Make<int8_t>(DataType::kInt8, Shape{2, 1}, {100, -100});
  Tensor b = Make<int8_t>(DataType::kInt8, Shape{1, 3}, {0, 100, -100});
  Tensor one = F(1.f), z = I8(0);
  auto r = Ms("QLinearAdd", {}, {&a, &one, &z, &b, &one, &z, &one, nullptr});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ((*r)[0].shape(), (Shape{2, 3}));
  EXPECT_EQ(Values<int8_t>((*r)[0]), (std::vector<int8_t>{100, 127, 0, -100, 0, -128}));
}

// Equal shapes take the vectorized path (runs of 8 and a tail, split across threads): every
// element against the definition, the DequantizeLinear -> op -> QuantizeLinear graph in float32,
// including ties (scales of powers of two make exact halves) and saturation.
template <typename Q>
void CheckEqualShapes(const std::string& op) {
  const int64_t n = 3 * 16384 + 13;
  std::vector<Q> av(n), bv(n);
  for (int64_t i = 0; i < n; ++i) {
    av[i] = static_cast<Q>((i * 29) % 256);
    bv[i] = static_cast<Q>((i * 83 + 7) % 256);
  }
  const bool s8 = std::is_same_v<Q, int8_t>;
  const DataType dt = s8 ? DataType::kInt8 : DataType::kUInt8;
  Tensor a = Make<Q>(dt, Shape{n}, av), b = Make<Q>(dt, Shape{n}, bv);
  const float as = 0.5f, bs = 0.25f, cs = op == "QLinearMul" ? 2.f : 0.5f;
  const Q az = static_cast<Q>(s8 ? -3 : 120), bz = static_cast<Q>(s8 ? 5 : 130);
  const Q cz = static_cast<Q>(s8 ? 1 : 128);
  Tensor tas = F(as), tbs = F(bs), tcs = F(cs);
  Tensor taz = Make<Q>(dt, Shape{}, {az}), tbz = Make<Q>(dt, Shape{}, {bz});
  Tensor tcz = Make<Q>(dt, Shape{}, {cz});
  auto r = Ms(op, {}, {&a, &tas, &taz, &b, &tbs, &tbz, &tcs, &tcz});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const double lo = s8 ? -128 : 0, hi = s8 ? 127 : 255;
  int ties = 0, saturated = 0;
  for (int64_t i = 0; i < n; ++i) {
    const float x = (static_cast<float>(av[i]) - static_cast<float>(az)) * as;
    const float y = (static_cast<float>(bv[i]) - static_cast<float>(bz)) * bs;
    const float v = (op == "QLinearMul" ? x * y : x + y) / cs;
    ties += v - std::floor(v) == 0.5f;
    const double q = std::nearbyint(static_cast<double>(v)) + cz;
    saturated += q < lo || q > hi;
    ASSERT_EQ((*r)[0].data<Q>()[i], static_cast<Q>(std::min(hi, std::max(lo, q))))
        << op << " " << i;
  }
  EXPECT_GT(ties, 100);
  EXPECT_GT(saturated, 100);
}

TEST(QLinearAddTest, EqualShapesMatchTheDefinition) {
  CheckEqualShapes<int8_t>("QLinearAdd");
  CheckEqualShapes<uint8_t>("QLinearAdd");
  CheckEqualShapes<int8_t>("QLinearMul");
  CheckEqualShapes<uint8_t>("QLinearMul");
}

TEST(QLinearMulTest, Int8AsymmetricScales) {
  // A = (a + 2) * 0.5 = [-1, 4]; B = (b - 1) * 1 = [2, -4]; A * B = [-2, -16];
  // C = round(AB / 0.25) + 3 = [-8 + 3, -64 + 3].
  Tensor a = Make<int8_t>(DataType::kInt8, Shape{2}, {-4, 6});
  Tensor b = Make<int8_t>(DataType::kInt8, Shape{2}, {3, -3});
  Tensor as = F(0.5f), az = I8(-2), bs = F(1.f), bz = I8(1), cs = F(0.25f), cz = I8(3);
  auto r = Ms("QLinearMul", {}, {&a, &as, &az, &b, &bs, &bz, &cs, &cz});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(Values<int8_t>((*r)[0]), (std::vector<int8_t>{-5, -61}));
}

TEST(QLinearMulTest, RefusesMixedTypesAndPerAxisScales) {
  Tensor a = Make<int8_t>(DataType::kInt8, Shape{2}, {1, 2});
  Tensor b = Make<uint8_t>(DataType::kUInt8, Shape{2}, {1, 2});
  Tensor s = F(1.f);
  EXPECT_FALSE(Ms("QLinearMul", {}, {&a, &s, nullptr, &b, &s, nullptr, &s, nullptr}).ok());
  Tensor s2 = Make<float>(DataType::kFloat, Shape{2}, {1.f, 2.f});
  EXPECT_FALSE(Ms("QLinearMul", {}, {&a, &s2, nullptr, &a, &s, nullptr, &s, nullptr}).ok());
}

TEST(QLinearConcatTest, RequantizesInputsWithOtherScales) {
  // Y: scale 1, zp 0. X1 [1,2] = [1, 2] with Y's scale: copied. X2 [1,2]: (x - 10) * 0.5 =
  // [0, 5] -> [0, 5]. X3 [1,1]: (7 - 0) * 0.5 = 3.5 -> 4 (half to even). Axis 1.
  Tensor ys = F(1.f), yz = U8(0);
  Tensor x1 = Make<uint8_t>(DataType::kUInt8, Shape{1, 2}, {1, 2});
  Tensor x2 = Make<uint8_t>(DataType::kUInt8, Shape{1, 2}, {10, 20});
  Tensor x3 = Make<uint8_t>(DataType::kUInt8, Shape{1, 1}, {7});
  Tensor s1 = F(1.f), z1 = U8(0), s2 = F(0.5f), z2 = U8(10), s3 = F(0.5f), z3 = U8(0);
  kernels::Attributes at;
  at.Set("axis", testing::AttrInt(1));
  auto r = Ms("QLinearConcat", at, {&ys, &yz, &x1, &s1, &z1, &x2, &s2, &z2, &x3, &s3, &z3});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ((*r)[0].shape(), (Shape{1, 5}));
  EXPECT_EQ(Values<uint8_t>((*r)[0]), (std::vector<uint8_t>{1, 2, 0, 5, 4}));
}

TEST(QLinearGlobalAveragePoolTest, NchwAndChannelsLast) {
  // Channel 0 = [1, 2, 3, 4], channel 1 = [10, 10, 10, 14]; x: scale 0.5, zp 1; y: 0.25, zp 2.
  // ch0: mean(x - 1) = 1.5 -> 0.75 -> / 0.25 = 3 -> 5. ch1: mean = 10 -> 5 -> 20 -> 22.
  Tensor xs = F(0.5f), xz = U8(1), ys = F(0.25f), yz = U8(2);
  Tensor nchw = Make<uint8_t>(DataType::kUInt8, Shape{1, 2, 2, 2}, {1, 2, 3, 4, 10, 10, 10, 14});
  auto r = Ms("QLinearGlobalAveragePool", {}, {&nchw, &xs, &xz, &ys, &yz});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ((*r)[0].shape(), (Shape{1, 2, 1, 1}));
  EXPECT_EQ(Values<uint8_t>((*r)[0]), (std::vector<uint8_t>{5, 22}));
  // The same values laid out NHWC.
  Tensor nhwc = Make<uint8_t>(DataType::kUInt8, Shape{1, 2, 2, 2}, {1, 10, 2, 10, 3, 10, 4, 14});
  kernels::Attributes cl;
  cl.Set("channels_last", testing::AttrInt(1));
  r = Ms("QLinearGlobalAveragePool", cl, {&nhwc, &xs, &xz, &ys, &yz});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ((*r)[0].shape(), (Shape{1, 1, 1, 2}));
  EXPECT_EQ(Values<uint8_t>((*r)[0]), (std::vector<uint8_t>{5, 22}));
}

TEST(QLinearAveragePoolTest, WindowsPaddingAndChannelsLast) {
  // X 3x3 = 0..8, scales 1, zero points 0.
  std::vector<uint8_t> v = {0, 1, 2, 3, 4, 5, 6, 7, 8};
  Tensor x = Make<uint8_t>(DataType::kUInt8, Shape{1, 1, 3, 3}, v);
  Tensor one = F(1.f), z = U8(0);
  {  // 2x2 windows, stride 1: (0+1+3+4)/4 = 2, (1+2+4+5)/4 = 3, 5, 6.
    kernels::Attributes at;
    at.Set("kernel_shape", testing::AttrInts({2, 2}));
    auto r = Ms("QLinearAveragePool", at, {&x, &one, &z, &one, &z});
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ((*r)[0].shape(), (Shape{1, 1, 2, 2}));
    EXPECT_EQ(Values<uint8_t>((*r)[0]), (std::vector<uint8_t>{2, 3, 5, 6}));
  }
  kernels::Attributes at;
  at.Set("kernel_shape", testing::AttrInts({3, 3}));
  at.Set("pads", testing::AttrInts({1, 1, 1, 1}));
  at.Set("strides", testing::AttrInts({2, 2}));
  {  // Padding not counted: the same four 2x2 corners as above.
    auto r = Ms("QLinearAveragePool", at, {&x, &one, &z, &one, &z});
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(Values<uint8_t>((*r)[0]), (std::vector<uint8_t>{2, 3, 5, 6}));
  }
  at.Set("count_include_pad", testing::AttrInt(1));
  {  // Counted: 8/9 -> 1, 12/9 -> 1, 20/9 -> 2, 24/9 -> 3.
    auto r = Ms("QLinearAveragePool", at, {&x, &one, &z, &one, &z});
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(Values<uint8_t>((*r)[0]), (std::vector<uint8_t>{1, 1, 2, 3}));
  }
  {  // Two channels NHWC, int8: channel 0 = v, channel 1 = v + 100; zp -5, scales 2 in and out.
    std::vector<int8_t> nhwc;
    for (uint8_t e : v) {
      nhwc.push_back(static_cast<int8_t>(e));
      nhwc.push_back(static_cast<int8_t>(e + 100));
    }
    Tensor xc = Make<int8_t>(DataType::kInt8, Shape{1, 3, 3, 2}, nhwc);
    Tensor s = F(2.f), zx = I8(-5), zy = I8(-5);
    kernels::Attributes a2;
    a2.Set("kernel_shape", testing::AttrInts({2, 2}));
    a2.Set("channels_last", testing::AttrInt(1));
    // Means of x - zp: ch0 [7, 8, 10, 11], ch1 [107, ...]; * 2 / 2, + (-5): ch0 [2, 3, 5, 6],
    // ch1 [102, 103, 105, 106]; NHWC order interleaves them.
    auto r = Ms("QLinearAveragePool", a2, {&xc, &s, &zx, &s, &zy});
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ((*r)[0].shape(), (Shape{1, 2, 2, 2}));
    EXPECT_EQ(Values<int8_t>((*r)[0]), (std::vector<int8_t>{2, 102, 3, 103, 5, 105, 6, 106}));
  }
}

TEST(QLinearConvTransposeTest, OverlapsStridesAndBias) {
  // x [1,1,2,2] = [1, 2, 3, 4] (scale 1, zp 0), w [1,1,2,2] int8 = [[1, 0], [0, 1]].
  // Stride 1: each x[i,j] adds x[i,j] * w at (i+u, j+v) of a 3x3 output:
  // [1, 2, 0, 3, 4+1, 2, 0, 3, 4]. w scale 0.25, y scale 0.5: * 0.5 ->
  // [0.5, 1, 0, 1.5, 2.5, 1, 0, 1.5, 2] -> half to even [0, 1, 0, 2, 2, 1, 0, 2, 2], + y_zp 10.
  Tensor x = Make<uint8_t>(DataType::kUInt8, Shape{1, 1, 2, 2}, {1, 2, 3, 4});
  Tensor w = Make<int8_t>(DataType::kInt8, Shape{1, 1, 2, 2}, {1, 0, 0, 1});
  Tensor xs = F(1.f), xz = U8(0), ws = F(0.25f), wz = I8(0), ys = F(0.5f), yz = U8(10);
  auto ct = [](kernels::Attributes a, std::vector<const Tensor*> in) {
    return testing::RunOp("QLinearConvTranspose", std::move(a), std::move(in), 1, 1, "ai.outpost");
  };
  auto r = ct({}, {&x, &xs, &xz, &w, &ws, &wz, &ys, &yz});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ((*r)[0].shape(), (Shape{1, 1, 3, 3}));
  EXPECT_EQ(Values<uint8_t>((*r)[0]), (std::vector<uint8_t>{10, 11, 10, 12, 12, 11, 10, 12, 12}));
  // Bias 4 (int32, scale 0.25): [5, 6, 4, 7, 9, 6, 4, 7, 8] * 0.5 -> [2.5, 3, 2, 3.5, 4.5, 3, 2,
  // 3.5, 4] -> [2, 3, 2, 4, 4, 3, 2, 4, 4], + 10.
  Tensor b = Make<int32_t>(DataType::kInt32, Shape{1}, {4});
  r = ct({}, {&x, &xs, &xz, &w, &ws, &wz, &ys, &yz, &b});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(Values<uint8_t>((*r)[0]), (std::vector<uint8_t>{12, 13, 12, 14, 14, 13, 12, 14, 14}));
  // Stride 2: no overlap, a 4x4 of x[i,j] * w blocks; w scale 0.5 = y scale: the values as they
  // are.
  kernels::Attributes at;
  at.Set("strides", testing::AttrInts({2, 2}));
  Tensor ws2 = F(0.5f), yz0 = U8(0);
  r = ct(at, {&x, &xs, &xz, &w, &ws2, &wz, &ys, &yz0});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ((*r)[0].shape(), (Shape{1, 1, 4, 4}));
  EXPECT_EQ(Values<uint8_t>((*r)[0]),
            (std::vector<uint8_t>{1, 0, 2, 0, 0, 1, 0, 2, 3, 0, 4, 0, 0, 3, 0, 4}));
}

// Packs 4-bit codes (one per K position) low nibble first.
std::vector<uint8_t> Pack4(const std::vector<int>& codes) {
  std::vector<uint8_t> out((codes.size() + 1) / 2, 0);
  for (size_t i = 0; i < codes.size(); ++i)
    out[i / 2] |= static_cast<uint8_t>((codes[i] & 0xF) << ((i % 2) * 4));
  return out;
}

TEST(MatMulNBitsTest, DefaultZeroPointAndBias) {
  // K = 16, N = 2, block 16. Row 0 codes k (0..15), scale 0.5; row 1 codes 9, scale 2.
  // Default zero point 8: W0[k] = (k - 8) * 0.5, W1[k] = 2. A = ones [1, 16]:
  // y0 = 0.5 * (120 - 128) = -4, y1 = 32; bias [1, -1] -> [-3, 31].
  std::vector<int> c0, c1(16, 9);
  for (int k = 0; k < 16; ++k) c0.push_back(k);
  std::vector<uint8_t> packed = Pack4(c0);
  for (uint8_t b : Pack4(c1)) packed.push_back(b);
  Tensor b = Make<uint8_t>(DataType::kUInt8, Shape{2, 1, 8}, packed);
  Tensor s = Make<float>(DataType::kFloat, Shape{2}, {0.5f, 2.f});
  Tensor a = Make<float>(DataType::kFloat, Shape{1, 16}, std::vector<float>(16, 1.f));
  Tensor bias = Make<float>(DataType::kFloat, Shape{2}, {1.f, -1.f});
  kernels::Attributes at;
  at.Set("K", testing::AttrInt(16));
  at.Set("N", testing::AttrInt(2));
  at.Set("bits", testing::AttrInt(4));
  at.Set("block_size", testing::AttrInt(16));
  auto r = testing::RunOp("MatMulNBits", at, {&a, &b, &s, nullptr, nullptr, &bias}, 1, 1, kMs);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ((*r)[0].shape(), (Shape{1, 2}));
  EXPECT_EQ(Values<float>((*r)[0]), (std::vector<float>{-3.f, 31.f}));
  // Zero points 0 (row 0) and 9 (row 1): y0 = 0.5 * 120 = 60, y1 = 0. Packed (one block per
  // row: one byte per row) and as floats give the same.
  Tensor zp = Make<uint8_t>(DataType::kUInt8, Shape{2}, {0x00, 0x09});
  r = testing::RunOp("MatMulNBits", at, {&a, &b, &s, &zp}, 1, 1, kMs);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(Values<float>((*r)[0]), (std::vector<float>{60.f, 0.f}));
  Tensor zf = Make<float>(DataType::kFloat, Shape{2}, {0.f, 9.f});
  r = testing::RunOp("MatMulNBits", at, {&a, &b, &s, &zf}, 1, 1, kMs);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(Values<float>((*r)[0]), (std::vector<float>{60.f, 0.f}));
}

TEST(MatMulNBitsTest, TwoBlocksPackedZeroPointsAndBatchedA) {
  // K = 32, N = 1, block 16: codes all 5; scales [1, 10]; zero points packed in one byte, block 0
  // in the low nibble (1), block 1 in the high nibble (3): W = 16 x (5-1)*1 = 4, then 16 x
  // (5-3)*10 = 20. A [2, 1, 32]: batch 0 ones -> 64 + 320 = 384; batch 1 twos -> 768.
  Tensor b = Make<uint8_t>(DataType::kUInt8, Shape{1, 2, 8}, Pack4(std::vector<int>(32, 5)));
  Tensor s = Make<float>(DataType::kFloat, Shape{1, 2}, {1.f, 10.f});
  Tensor zp = Make<uint8_t>(DataType::kUInt8, Shape{1}, {0x31});
  std::vector<float> av(32, 1.f);
  av.resize(64, 2.f);
  Tensor a = Make<float>(DataType::kFloat, Shape{2, 1, 32}, av);
  kernels::Attributes at;
  at.Set("K", testing::AttrInt(32));
  at.Set("N", testing::AttrInt(1));
  at.Set("block_size", testing::AttrInt(16));
  auto r = testing::RunOp("MatMulNBits", at, {&a, &b, &s, &zp}, 1, 1, kMs);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ((*r)[0].shape(), (Shape{2, 1, 1}));
  EXPECT_EQ(Values<float>((*r)[0]), (std::vector<float>{384.f, 768.f}));
  // A block size that is not a power of two in [16, 256] is refused.
  at.Set("block_size", testing::AttrInt(24));
  EXPECT_FALSE(testing::RunOp("MatMulNBits", at, {&a, &b, &s, &zp}, 1, 1, kMs).ok());
}

}  // namespace
}  // namespace outpost
