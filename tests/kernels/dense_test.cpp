// Unit tests for the dense ops (Conv, Gemm, MatMul, pools, softmax, quantization). Expected values
// are hand-computed, or (for convolution) from a naive direct loop written here in the test.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>
#include <vector>

#include "kernels/op_harness.h"

namespace outpost {
namespace {

using testing::Make;

// Naive 2-D grouped convolution (the definition), for comparison.
std::vector<float> NaiveConv(const std::vector<float>& x, const std::vector<float>& w, int c, int h,
                             int wd, int m, int k, int s, int p, int d, int group, int* oh,
                             int* ow) {
  *oh = (h + 2 * p - (d * (k - 1) + 1)) / s + 1;
  *ow = (wd + 2 * p - (d * (k - 1) + 1)) / s + 1;
  const int cg = c / group, mg = m / group;
  std::vector<float> y(m * *oh * *ow, 0.f);
  for (int o = 0; o < m; ++o)
    for (int i = 0; i < *oh; ++i)
      for (int j = 0; j < *ow; ++j) {
        float acc = 0;
        for (int ci = 0; ci < cg; ++ci)
          for (int a = 0; a < k; ++a)
            for (int b = 0; b < k; ++b) {
              const int ih = i * s - p + a * d, iw = j * s - p + b * d;
              if (ih < 0 || ih >= h || iw < 0 || iw >= wd) continue;
              acc += x[((o / mg) * cg + ci) * h * wd + ih * wd + iw] *
                     w[((o * cg + ci) * k + a) * k + b];
            }
        y[(o * *oh + i) * *ow + j] = acc;
      }
  return y;
}

void CheckConv(int c, int m, int hw, int k, int s, int p, int d, int group) {
  std::vector<float> xv(c * hw * hw), wv(m * (c / group) * k * k);
  for (size_t i = 0; i < xv.size(); ++i) xv[i] = std::sin(0.37f * i);
  for (size_t i = 0; i < wv.size(); ++i) wv[i] = std::cos(0.11f * i);
  Tensor x = Make<float>(DataType::kFloat, {1, c, hw, hw}, xv);
  Tensor w = Make<float>(DataType::kFloat, {m, c / group, k, k}, wv);
  kernels::Attributes at;
  at.Set("strides", testing::AttrInts({s, s}));
  at.Set("pads", testing::AttrInts({p, p, p, p}));
  at.Set("dilations", testing::AttrInts({d, d}));
  at.Set("group", testing::AttrInt(group));
  auto out = testing::RunOp("Conv", at, {&x, &w});
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  int oh, ow;
  std::vector<float> want = NaiveConv(xv, wv, c, hw, hw, m, k, s, p, d, group, &oh, &ow);
  ASSERT_EQ((*out)[0].shape(), (Shape{1, m, oh, ow}));
  for (size_t i = 0; i < want.size(); ++i)
    ASSERT_NEAR((*out)[0].data<float>()[i], want[i], 1e-4) << "element " << i;
}

TEST(Dense, ConvMatchesDefinition) {
  CheckConv(3, 4, 9, 3, 1, 1, 1, 1);   // im2col + GEMM
  CheckConv(4, 6, 10, 3, 2, 1, 1, 2);  // groups
  CheckConv(4, 8, 11, 3, 2, 1, 1, 4);  // depthwise, multiplier 2, stride 2
  CheckConv(5, 5, 33, 3, 2, 1, 1, 5);  // depthwise stride 2, long rows (vector path)
  CheckConv(3, 3, 12, 3, 1, 2, 2, 3);  // depthwise, dilation 2
  CheckConv(8, 4, 6, 1, 1, 0, 1, 1);   // pointwise
}

TEST(Dense, GemmTransposeAlphaBetaRowBias) {
  // Y = 2 * A^T * I + 0.5 * [1, 2] with A = [[1, 2], [3, 4]].
  Tensor a = Make<float>(DataType::kFloat, {2, 2}, {1, 2, 3, 4});
  Tensor b = Make<float>(DataType::kFloat, {2, 2}, {1, 0, 0, 1});
  Tensor c = Make<float>(DataType::kFloat, {2}, {1, 2});
  kernels::Attributes at;
  at.Set("transA", testing::AttrInt(1));
  at.Set("alpha", testing::AttrFloat(2.f));
  at.Set("beta", testing::AttrFloat(0.5f));
  auto out = testing::RunOp("Gemm", at, {&a, &b, &c}, 1, 13);
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  const float want[] = {2.5f, 7.f, 4.5f, 9.f};
  for (int i = 0; i < 4; ++i) EXPECT_FLOAT_EQ((*out)[0].data<float>()[i], want[i]);
}

TEST(Dense, MatMulBatchTimesVector) {
  std::vector<float> av(12);
  for (int i = 0; i < 12; ++i) av[i] = float(i + 1);
  Tensor a = Make<float>(DataType::kFloat, {2, 2, 3}, av);
  Tensor b = Make<float>(DataType::kFloat, {3}, {1, 1, 1});
  auto out = testing::RunOp("MatMul", {}, {&a, &b}, 1, 13);
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  ASSERT_EQ((*out)[0].shape(), (Shape{2, 2}));
  const float want[] = {6, 15, 24, 33};  // row sums
  for (int i = 0; i < 4; ++i) EXPECT_FLOAT_EQ((*out)[0].data<float>()[i], want[i]);
}

TEST(Dense, QuantizeRoundsHalfToEvenAndSaturates) {
  Tensor x = Make<float>(DataType::kFloat, {7}, {0.5f, 1.5f, 2.5f, -0.5f, -1.5f, 300.f, -300.f});
  Tensor s = Make<float>(DataType::kFloat, {}, {1.f});
  Tensor z = Make<uint8_t>(DataType::kUInt8, {}, {128});
  auto out = testing::RunOp("QuantizeLinear", {}, {&x, &s, &z}, 1, 21);
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  const uint8_t want[] = {128, 130, 130, 128, 126, 255, 0};
  for (int i = 0; i < 7; ++i) EXPECT_EQ((*out)[0].data<uint8_t>()[i], want[i]) << i;
}

// int4 / uint2 / int2 outputs (held unpacked, one value a byte) saturate to their own range.
TEST(Dense, QuantizeToSubByteIntegersSaturatesToTheirRange) {
  Tensor x = Make<float>(DataType::kFloat, {6}, {7.4f, 7.5f, 8.6f, -8.5f, -9.f, 0.5f});
  Tensor s = Make<float>(DataType::kFloat, {}, {1.f});
  Tensor z4 = Make<int8_t>(DataType::kInt4, {}, {0});
  auto q4 = testing::RunOp("QuantizeLinear", {}, {&x, &s, &z4}, 1, 21);
  ASSERT_TRUE(q4.ok()) << q4.status().ToString();
  EXPECT_EQ((*q4)[0].dtype(), DataType::kInt4);
  const int8_t want4[] = {7, 7, 7, -8, -8, 0};  // 7.5 -> 8 and 8.6 -> 9 saturate; -8.5 -> -8
  for (int i = 0; i < 6; ++i) EXPECT_EQ((*q4)[0].data<int8_t>()[i], want4[i]) << i;
  // uint2 with zero point 1: round(x) + 1 within [0, 3].
  Tensor x2 = Make<float>(DataType::kFloat, {4}, {0.4f, 1.5f, -3.f, 10.f});
  Tensor z2 = Make<uint8_t>(DataType::kUInt2, {}, {1});
  auto q2 = testing::RunOp("QuantizeLinear", {}, {&x2, &s, &z2}, 1, 25);
  ASSERT_TRUE(q2.ok()) << q2.status().ToString();
  const uint8_t want2[] = {1, 3, 0, 3};
  for (int i = 0; i < 4; ++i) EXPECT_EQ((*q2)[0].data<uint8_t>()[i], want2[i]) << i;
  // int2 through output_dtype, no zero point: [-2, 1].
  kernels::Attributes at;
  at.Set("output_dtype", testing::AttrInt(static_cast<int>(DataType::kInt2)));
  auto qi2 = testing::RunOp("QuantizeLinear", at, {&x2, &s}, 1, 25);
  ASSERT_TRUE(qi2.ok()) << qi2.status().ToString();
  EXPECT_EQ((*qi2)[0].data<int8_t>()[0], 0);
  EXPECT_EQ((*qi2)[0].data<int8_t>()[1], 1);   // 2 -> 1
  EXPECT_EQ((*qi2)[0].data<int8_t>()[2], -2);  // -3 -> -2
  EXPECT_EQ((*qi2)[0].data<int8_t>()[3], 1);
  // Back: (x - zp) * scale.
  Tensor d = Make<int8_t>(DataType::kInt4, {3}, {-8, 7, 3});
  Tensor dz = Make<int8_t>(DataType::kInt4, {}, {-1});
  Tensor ds = Make<float>(DataType::kFloat, {}, {0.5f});
  auto dq = testing::RunOp("DequantizeLinear", {}, {&d, &ds, &dz}, 1, 21);
  ASSERT_TRUE(dq.ok()) << dq.status().ToString();
  const float wantd[] = {-3.5f, 4.f, 2.f};
  for (int i = 0; i < 3; ++i) EXPECT_EQ((*dq)[0].data<float>()[i], wantd[i]) << i;
}

// float8 / float4e2m1 outputs: x / scale rounded to the nearest code, ties to even.
TEST(Dense, QuantizeToFloat8AndFloat4RoundsToNearestEven) {
  Tensor s = Make<float>(DataType::kFloat, {}, {2.f});
  // E4M3FN: 2000 / 2 = 1000 saturates to 448 (0x7E); 6.6 / 2 = 3.3 -> 3.25 (code 69); with
  // saturate = 0 the overflow is NaN (0x7F).
  Tensor x8 = Make<float>(DataType::kFloat, {2}, {2000.f, 6.6f});
  Tensor z8 = Make<uint8_t>(DataType::kFloat8E4M3FN, {}, {0});
  auto q8 = testing::RunOp("QuantizeLinear", {}, {&x8, &s, &z8}, 1, 21);
  ASSERT_TRUE(q8.ok()) << q8.status().ToString();
  EXPECT_EQ(static_cast<const uint8_t*>((*q8)[0].raw())[0], 0x7E);
  EXPECT_EQ(static_cast<const uint8_t*>((*q8)[0].raw())[1], 69);
  kernels::Attributes ns;
  ns.Set("saturate", testing::AttrInt(0));
  auto q8n = testing::RunOp("QuantizeLinear", ns, {&x8, &s, &z8}, 1, 21);
  ASSERT_TRUE(q8n.ok()) << q8n.status().ToString();
  EXPECT_EQ(static_cast<const uint8_t*>((*q8n)[0].raw())[0], 0x7F);
  // float4e2m1 magnitudes 0, 0.5, 1, 1.5, 2, 3, 4, 6 (codes 0-7, sign 0x8). x / 2:
  // 1.25 -> tie of 1 and 1.5 -> 1 (code 2); 2.4 -> 2 (4); -10 -> saturates to -6 (0xF);
  // 0.25 -> tie of 0 and 0.5 -> 0; 0.75 -> tie of 0.5 and 1 -> 1 (code 2); 5 -> tie of 4 and 6
  // -> 4 (code 6).
  Tensor x4 = Make<float>(DataType::kFloat, {6}, {2.5f, 4.8f, -20.f, 0.5f, 1.5f, 10.f});
  Tensor z4 = Make<uint8_t>(DataType::kFloat4E2M1, {}, {0});
  auto q4 = testing::RunOp("QuantizeLinear", {}, {&x4, &s, &z4}, 1, 23);
  ASSERT_TRUE(q4.ok()) << q4.status().ToString();
  const uint8_t want4[] = {2, 4, 0xF, 0, 2, 6};
  for (int i = 0; i < 6; ++i)
    EXPECT_EQ(static_cast<const uint8_t*>((*q4)[0].raw())[i], want4[i]) << i;
  // The float4e2m1 zero point is added before rounding: 1 / 2 + 1.0 (code 2) = 1.5 (code 3).
  Tensor x1 = Make<float>(DataType::kFloat, {1}, {1.f});
  Tensor z1 = Make<uint8_t>(DataType::kFloat4E2M1, {}, {2});
  auto q1 = testing::RunOp("QuantizeLinear", {}, {&x1, &s, &z1}, 1, 23);
  ASSERT_TRUE(q1.ok()) << q1.status().ToString();
  EXPECT_EQ(static_cast<const uint8_t*>((*q1)[0].raw())[0], 3);
  // Back: code 69 (3.25) * 2 = 6.5; float4 0xF (-6) * 2 = -12.
  auto d8 = testing::RunOp("DequantizeLinear", {}, {&(*q8)[0], &s}, 1, 21);
  ASSERT_TRUE(d8.ok()) << d8.status().ToString();
  EXPECT_EQ((*d8)[0].data<float>()[1], 6.5f);
  auto d4 = testing::RunOp("DequantizeLinear", {}, {&(*q4)[0], &s}, 1, 23);
  ASSERT_TRUE(d4.ok()) << d4.status().ToString();
  EXPECT_EQ((*d4)[0].data<float>()[2], -12.f);
  // A float8 zero point must be 0.
  Tensor bad = Make<uint8_t>(DataType::kFloat8E4M3FN, {}, {0x38});
  auto dbad = testing::RunOp("DequantizeLinear", {}, {&(*q8)[0], &s, &bad}, 1, 21);
  ASSERT_FALSE(dbad.ok());
  EXPECT_NE(dbad.status().message().find("zero point of a float8e4m3fn input must be 0"),
            std::string::npos)
      << dbad.status().ToString();
}

// The vectorized paths (runs of 8 and a tail, per tensor and per axis, int8 and uint8) against
// the definition evaluated here: q = saturate(round_half_even(x / s) + zp), x' = (q - zp) * s.
template <typename Q>
void CheckQuantizeRoundTrip(Shape shape, int axis) {
  const int64_t n = shape.numel();
  const int64_t channels = axis < 0 ? 1 : shape[axis];
  int64_t inner = 1;
  for (int i = axis + 1; axis >= 0 && i < shape.rank(); ++i) inner *= shape[i];
  std::vector<float> xv(n), sv(channels);
  std::vector<Q> zv(channels);
  for (int64_t c = 0; c < channels; ++c) {
    sv[c] = 0.02f + 0.01f * static_cast<float>(c);
    zv[c] = static_cast<Q>(std::is_same_v<Q, int8_t> ? (c % 5) - 2 : 120 + c % 9);
  }
  for (int64_t i = 0; i < n; ++i) {
    const int64_t c = axis < 0 ? 0 : (i / inner) % channels;
    // Exact halves of a step (ties), ordinary values, and far out of range (saturation).
    xv[i] = i % 7 == 0 ? sv[c] * (static_cast<float>(i % 11) - 5.5f)
                       : 6.f * std::sin(0.7f * static_cast<float>(i)) * (i % 13 == 0 ? 100.f : 1.f);
  }
  Tensor x = Make<float>(DataType::kFloat, shape, xv);
  Shape ss = axis < 0 ? Shape{} : Shape{channels};
  Tensor s = Make<float>(DataType::kFloat, ss, sv);
  const DataType qt = std::is_same_v<Q, int8_t> ? DataType::kInt8 : DataType::kUInt8;
  Tensor z = Make<Q>(qt, ss, zv);
  kernels::Attributes at;
  if (axis >= 0) at.Set("axis", testing::AttrInt(axis));
  auto q = testing::RunOp("QuantizeLinear", at, {&x, &s, &z}, 1, 13);
  ASSERT_TRUE(q.ok()) << q.status().ToString();
  auto d = testing::RunOp("DequantizeLinear", at, {&(*q)[0], &s, &z}, 1, 13);
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  const double lo = std::numeric_limits<Q>::lowest(), hi = std::numeric_limits<Q>::max();
  for (int64_t i = 0; i < n; ++i) {
    const int64_t c = axis < 0 ? 0 : (i / inner) % channels;
    const double r = std::nearbyint(static_cast<double>(xv[i] / sv[c])) + zv[c];
    const Q want = static_cast<Q>(std::min(hi, std::max(lo, r)));
    ASSERT_EQ((*q)[0].data<Q>()[i], want) << "element " << i << " x " << xv[i];
    const float back = (static_cast<float>(want) - static_cast<float>(zv[c])) * sv[c];
    ASSERT_EQ((*d)[0].data<float>()[i], back) << "element " << i;
  }
}

TEST(Dense, QuantizeDequantizeVectorPathsMatchTheDefinition) {
  CheckQuantizeRoundTrip<int8_t>({3, 37}, -1);
  CheckQuantizeRoundTrip<uint8_t>({3, 37}, -1);
  CheckQuantizeRoundTrip<int8_t>({2, 5, 3, 7}, 1);  // runs of 21: two vectors and a tail
  CheckQuantizeRoundTrip<uint8_t>({2, 5, 3, 7}, 1);
  CheckQuantizeRoundTrip<int8_t>({4, 6}, 1);     // runs of 1: scalar only
  CheckQuantizeRoundTrip<uint8_t>({70000}, -1);  // several parallel chunks
}

// 8-bit MaxPool (quantized models) against the definition evaluated here, on geometries that
// take the widened float kernel and one that does not (3-d).
template <typename Q>
void CheckMaxPool8(Shape shape, int k, int s, int p) {
  const int64_t n = shape.numel();
  std::vector<Q> xv(n);
  for (int64_t i = 0; i < n; ++i)
    xv[i] = static_cast<Q>((i * 37 + (i / 5) * 11) % 256 - (std::is_same_v<Q, int8_t> ? 128 : 0));
  Tensor x = Make<Q>(std::is_same_v<Q, int8_t> ? DataType::kInt8 : DataType::kUInt8, shape, xv);
  const int sp = shape.rank() - 2;
  kernels::Attributes at;
  at.Set("kernel_shape", testing::AttrInts(std::vector<int64_t>(sp, k)));
  at.Set("strides", testing::AttrInts(std::vector<int64_t>(sp, s)));
  at.Set("pads", testing::AttrInts(std::vector<int64_t>(2 * sp, p)));
  auto out = testing::RunOp("MaxPool", at, {&x}, 1, 13);
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  const Tensor& y = (*out)[0];
  std::vector<int64_t> in(shape.begin() + 2, shape.end()), o(sp);
  int64_t osz = 1, isz = 1;
  for (int d = 0; d < sp; ++d) o[d] = (in[d] + 2 * p - k) / s + 1, osz *= o[d], isz *= in[d];
  ASSERT_EQ(y.numel(), shape[0] * shape[1] * osz);
  for (int64_t plane = 0; plane < shape[0] * shape[1]; ++plane)
    for (int64_t oi = 0; oi < osz; ++oi) {
      std::vector<int64_t> oc(sp);
      for (int d = sp - 1, r = oi; d >= 0; --d) oc[d] = r % o[d], r /= o[d];
      int best = std::numeric_limits<int>::min();
      for (int64_t w = 0; w < static_cast<int64_t>(std::pow(k, sp)); ++w) {
        int64_t idx = 0;
        bool inside = true;
        for (int d = 0, r = w; d < sp; ++d) {
          const int64_t kd =
              (sp - 1 - d == 0) ? r % k : (r / static_cast<int64_t>(std::pow(k, sp - 1 - d))) % k;
          const int64_t pos = oc[d] * s - p + kd;
          inside = inside && pos >= 0 && pos < in[d];
          idx = idx * in[d] + pos;
        }
        if (inside) best = std::max(best, static_cast<int>(xv[plane * isz + idx]));
      }
      ASSERT_EQ(static_cast<int>(y.data<Q>()[plane * osz + oi]), best)
          << "plane " << plane << " out " << oi;
    }
}

TEST(Dense, MaxPoolOn8BitCodesMatchesTheDefinition) {
  CheckMaxPool8<int8_t>({1, 3, 13, 11}, 3, 2, 1);
  CheckMaxPool8<uint8_t>({2, 2, 9, 9}, 2, 2, 0);
  CheckMaxPool8<int8_t>({1, 2, 5, 4, 6}, 2, 1, 0);
}

TEST(Dense, MaxPoolIndicesBothStorageOrders) {
  Tensor x = Make<float>(DataType::kFloat, {1, 1, 2, 3}, {1, 5, 2, 4, 3, 6});
  for (int order : {0, 1}) {
    kernels::Attributes at;
    at.Set("kernel_shape", testing::AttrInts({2, 2}));
    at.Set("storage_order", testing::AttrInt(order));
    auto out = testing::RunOp("MaxPool", at, {&x}, 2, 12);
    ASSERT_TRUE(out.ok()) << out.status().ToString();
    EXPECT_FLOAT_EQ((*out)[0].data<float>()[0], 5);
    EXPECT_FLOAT_EQ((*out)[0].data<float>()[1], 6);
    // (0,1) and (1,2): row-major 1 and 5; column-major (h + w * H) 2 and 5.
    EXPECT_EQ((*out)[1].data<int64_t>()[0], order ? 2 : 1);
    EXPECT_EQ((*out)[1].data<int64_t>()[1], 5);
  }
}

TEST(Dense, AveragePoolCountIncludePad) {
  Tensor x = Make<float>(DataType::kFloat, {1, 1, 2, 2}, {1, 2, 3, 4});
  for (int include : {0, 1}) {
    kernels::Attributes at;
    at.Set("kernel_shape", testing::AttrInts({2, 2}));
    at.Set("strides", testing::AttrInts({2, 2}));
    at.Set("pads", testing::AttrInts({1, 1, 1, 1}));
    at.Set("count_include_pad", testing::AttrInt(include));
    auto out = testing::RunOp("AveragePool", at, {&x}, 1, 19);
    ASSERT_TRUE(out.ok()) << out.status().ToString();
    // Each window holds one input element (and three pads).
    for (int i = 0; i < 4; ++i)
      EXPECT_FLOAT_EQ((*out)[0].data<float>()[i], float(i + 1) / (include ? 4.f : 1.f));
  }
}

TEST(Dense, SoftmaxLegacyCoercesTo2D) {
  Tensor x = Make<float>(DataType::kFloat, {2, 2}, {0, 0, 0, 0});
  kernels::Attributes at;
  at.Set("axis", testing::AttrInt(0));
  auto legacy = testing::RunOp("Softmax", at, {&x}, 1, 11);  // one row of 4
  auto modern = testing::RunOp("Softmax", at, {&x}, 1, 13);  // columns of 2
  ASSERT_TRUE(legacy.ok() && modern.ok());
  EXPECT_FLOAT_EQ((*legacy)[0].data<float>()[0], 0.25f);
  EXPECT_FLOAT_EQ((*modern)[0].data<float>()[0], 0.5f);
}

TEST(Dense, MatMulIntegerZeroPoints) {
  Tensor a = Make<uint8_t>(DataType::kUInt8, {1, 2}, {10, 20});
  Tensor b = Make<uint8_t>(DataType::kUInt8, {2, 1}, {1, 2});
  Tensor az = Make<uint8_t>(DataType::kUInt8, {}, {10});
  Tensor bz = Make<uint8_t>(DataType::kUInt8, {}, {1});
  auto out = testing::RunOp("MatMulInteger", {}, {&a, &b, &az, &bz}, 1, 10);
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_EQ((*out)[0].data<int32_t>()[0], 10);  // (10-10)*(1-1) + (20-10)*(2-1)
}

TEST(Dense, RefusesUnsupportedTypes) {
  Tensor a = Make<int8_t>(DataType::kInt8, {2, 2}, {1, 2, 3, 4});
  auto out = testing::RunOp("Gemm", {}, {&a, &a}, 1, 13);
  EXPECT_EQ(out.status().code(), Code::kUnsupported);
}

}  // namespace
}  // namespace outpost
