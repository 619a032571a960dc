// The quantized kernels' igemm fast paths (kernels/cpu/igemm.h) against the double-precision
// reference kernels, byte for byte, on every dispatch path this CPU supports: randomized shapes
// (odd sizes, groups, strides, pads, dilations), per-tensor and per-channel quantization, both
// signednesses on each side, zero points at the extremes and outputs driven into saturation.
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "cpu/igemm.h"
#include "kernels/op_harness.h"
#include "outpost/kernels/fusion.h"

namespace outpost {
namespace {

using kernels::cpu::IgemmIsa;

using testing::AttrFloat;
using testing::AttrInt;
using testing::AttrInts;

// Random 8-bit tensor: mostly uniform, with a share of extreme values.
Tensor Bytes(std::mt19937& rng, bool is_signed, Shape s) {
  Tensor t = Tensor::Allocate(is_signed ? DataType::kInt8 : DataType::kUInt8, s).value();
  std::uniform_int_distribution<int> byte(0, 255), pick(0, 9);
  for (int64_t i = 0; i < t.numel(); ++i) {
    int v = byte(rng);
    if (pick(rng) == 0) v = pick(rng) < 5 ? 0 : 255;  // extremes in the source's bit pattern
    if (pick(rng) == 1) v = 0x80;
    if (pick(rng) == 2) v = 0x7F;
    t.data<uint8_t>()[i] = static_cast<uint8_t>(v);
  }
  return t;
}

// A zero point: an extreme of the type, its middle, or random.
Tensor ZeroPoint(std::mt19937& rng, bool is_signed, int64_t n) {
  Shape s = n == 0 ? Shape{} : Shape{n};
  Tensor t = Tensor::Allocate(is_signed ? DataType::kInt8 : DataType::kUInt8, s).value();
  std::uniform_int_distribution<int> kind(0, 4), byte(0, 255);
  for (int64_t i = 0; i < t.numel(); ++i) {
    const int k = kind(rng);
    int v = byte(rng);
    if (k == 0) v = is_signed ? 0x80 : 0;    // lowest
    if (k == 1) v = is_signed ? 0x7F : 255;  // highest
    if (k == 2) v = is_signed ? 0 : 128;     // middle
    t.data<uint8_t>()[i] = static_cast<uint8_t>(v);
  }
  return t;
}

Tensor Floats(std::vector<float> v) {
  Shape s = v.size() == 1 ? Shape{} : Shape{static_cast<int64_t>(v.size())};
  return testing::Make<float>(DataType::kFloat, s, v);
}

std::vector<uint8_t> AllBytes(const Tensor& t) {
  std::vector<uint8_t> b(t.nbytes());
  std::memcpy(b.data(), t.raw(), b.size());
  return b;
}

// Runs the op on the reference kernels, then on every supported igemm path; all must agree.
void ExpectFastMatchesReference(const std::string& op, const kernels::Attributes& at,
                                std::vector<const Tensor*> in, const std::string& what,
                                int opset = 21, const std::string& domain = "") {
  kernels::cpu::SetQuantFastPaths(false);
  auto ref = testing::RunOp(op, at, in, 1, opset, domain);
  kernels::cpu::SetQuantFastPaths(true);
  ASSERT_TRUE(ref.ok()) << what << ": " << ref.status().ToString();
  const std::vector<uint8_t> want = AllBytes((*ref)[0]);
  for (int isa = 0; isa < 4; ++isa) {
    if (!kernels::cpu::IgemmIsaSupported(static_cast<IgemmIsa>(isa))) continue;
    kernels::cpu::SetIgemmIsaOverride(isa);
    const int64_t calls = kernels::cpu::IgemmCallCount();
    auto got = testing::RunOp(op, at, in, 1, opset, domain);
    kernels::cpu::SetIgemmIsaOverride(-1);
    ASSERT_TRUE(got.ok()) << what << ": " << got.status().ToString();
    EXPECT_GT(kernels::cpu::IgemmCallCount(), calls) << what << ": the fast path did not run";
    ASSERT_EQ((*got)[0].shape(), (*ref)[0].shape()) << what;
    const std::vector<uint8_t> have = AllBytes((*got)[0]);
    size_t bad = 0;
    while (bad < have.size() && have[bad] == want[bad]) ++bad;
    ASSERT_EQ(bad, have.size()) << what << " on "
                                << kernels::cpu::IgemmIsaName(static_cast<IgemmIsa>(isa))
                                << ": first differing byte " << bad << " of " << have.size() << " ("
                                << int(have[bad]) << " vs reference " << int(want[bad]) << ")";
  }
}

struct ConvCase {
  int n, c, m, group, h, w, kh, kw, sh, sw, pt, pl, pb, pr, dh, dw;
};

ConvCase RandomConv(std::mt19937& rng, int i) {
  auto r = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  ConvCase c{};
  c.n = r(1, 2);
  const int kind = i % 4;  // 0: general, 1: pointwise, 2: depthwise, 3: grouped
  c.group = kind == 2 ? r(1, 17) : (kind == 3 ? r(2, 4) : 1);
  c.c = kind == 2 ? c.group : c.group * r(1, 9);
  c.m = kind == 2 ? c.group : c.group * r(1, 29);
  c.h = r(1, 13);
  c.w = r(1, 41);
  c.kh = kind == 1 ? 1 : r(1, 5);
  c.kw = kind == 1 ? 1 : r(1, 5);
  c.sh = kind == 1 ? 1 : r(1, 3);
  c.sw = kind == 1 ? 1 : r(1, 3);
  c.dh = kind == 1 ? 1 : r(1, 2);
  c.dw = kind == 1 ? 1 : r(1, 2);
  c.pt = kind == 1 ? 0 : r(0, 2);
  c.pl = kind == 1 ? 0 : r(0, 2);
  c.pb = kind == 1 ? 0 : r(0, 2);
  c.pr = kind == 1 ? 0 : r(0, 2);
  // The padded input must hold one dilated window.
  c.h = std::max(c.h, (c.kh - 1) * c.dh + 1 - c.pt - c.pb);
  c.w = std::max(c.w, (c.kw - 1) * c.dw + 1 - c.pl - c.pr);
  return c;
}

std::string Describe(const ConvCase& c) {
  char buf[256];
  std::snprintf(buf, sizeof buf, "n%d c%d m%d g%d in%dx%d k%dx%d s%dx%d d%dx%d pads %d,%d,%d,%d",
                c.n, c.c, c.m, c.group, c.h, c.w, c.kh, c.kw, c.sh, c.sw, c.dh, c.dw, c.pt, c.pl,
                c.pb, c.pr);
  return buf;
}

kernels::Attributes ConvAttrs(const ConvCase& c) {
  kernels::Attributes at;
  at.Set("kernel_shape", AttrInts({c.kh, c.kw}));
  at.Set("strides", AttrInts({c.sh, c.sw}));
  at.Set("dilations", AttrInts({c.dh, c.dw}));
  at.Set("pads", AttrInts({c.pt, c.pl, c.pb, c.pr}));
  at.Set("group", AttrInt(c.group));
  return at;
}

TEST(QuantFast, EveryIgemmPathIsTestedHere) {
  // The machine the suite runs on should offer more than the scalar path; the AVX2 path is the
  // floor of the x86-64-v3 build.
  EXPECT_TRUE(kernels::cpu::IgemmIsaSupported(IgemmIsa::kScalar));
  EXPECT_TRUE(kernels::cpu::IgemmIsaSupported(IgemmIsa::kAvx2));
  for (int isa = 0; isa < 4; ++isa) {
    kernels::cpu::SetIgemmIsaOverride(isa);
    const IgemmIsa got = kernels::cpu::IgemmActiveIsa();
    if (kernels::cpu::IgemmIsaSupported(static_cast<IgemmIsa>(isa)))
      EXPECT_EQ(static_cast<int>(got), isa);
    else
      EXPECT_TRUE(kernels::cpu::IgemmIsaSupported(got));
    // The backend description says plainly when 8-bit products lack VNNI.
    const std::string said = kernels::cpu::IgemmPathDescription();
    const bool vnni = got == IgemmIsa::kAvx512Vnni || got == IgemmIsa::kAvxVnni;
    EXPECT_EQ(said.find("slower than float32") == std::string::npos, vnni) << said;
  }
  kernels::cpu::SetIgemmIsaOverride(-1);
}

TEST(QuantFast, QLinearConvMatchesReference) {
  std::mt19937 rng(20261201);
  for (int i = 0; i < 120; ++i) {
    const ConvCase c = RandomConv(rng, i);
    const bool xs8 = rng() & 1, ws8 = rng() & 1, ys8 = rng() & 1;
    const bool per_channel = rng() & 1, with_bias = rng() % 3 != 0;
    const int k = (c.c / c.group) * c.kh * c.kw;
    Tensor x = Bytes(rng, xs8, {c.n, c.c, c.h, c.w});
    Tensor w = Bytes(rng, ws8, {c.m, c.c / c.group, c.kh, c.kw});
    Tensor xz = ZeroPoint(rng, xs8, 0);
    Tensor wz = ZeroPoint(rng, ws8, per_channel ? c.m : 0);
    Tensor yz = ZeroPoint(rng, ys8, 0);
    std::uniform_real_distribution<float> sc(0.001f, 0.05f);
    const float xsv = sc(rng);
    std::vector<float> wsv(per_channel ? c.m : 1);
    for (float& v : wsv) v = sc(rng);
    // y_scale from "saturates a lot" to "fine": the accumulator spans ~sqrt(k) * 128 * 128.
    const float spread = std::vector<float>{0.02f, 0.3f, 1.f, 4.f}[rng() % 4];
    const float ysv = xsv * wsv[0] * std::sqrt(float(k)) * 128.f * spread / 64.f;
    Tensor xs = Floats({xsv}), ws = Floats(wsv), ys = Floats({ysv});
    Tensor bias = Tensor::Allocate(DataType::kInt32, {c.m}).value();
    // Some biases near the int32 limits, where S + bias needs more than 32 bits.
    const int32_t bmax = i % 7 == 0 ? 2147483000 : 200000;
    std::uniform_int_distribution<int32_t> bd(-bmax, bmax);
    for (int64_t j = 0; j < c.m; ++j) bias.data<int32_t>()[j] = bd(rng);
    kernels::Attributes at = ConvAttrs(c);
    const int clamp = rng() % 3;  // none, Relu, Clip(-0.5, 2)
    if (clamp == 1) at.Set(kernels::kFusedMin, AttrFloat(0.f));
    if (clamp == 2) {
      at.Set(kernels::kFusedMin, AttrFloat(-0.5f));
      at.Set(kernels::kFusedMax, AttrFloat(2.f));
    }
    const std::string what = "QLinearConv " + Describe(c) + (xs8 ? " x:s8" : " x:u8") +
                             (ws8 ? " w:s8" : " w:u8") + (ys8 ? " y:s8" : " y:u8") +
                             (per_channel ? " per-channel" : "") + " clamp " +
                             std::to_string(clamp);
    ExpectFastMatchesReference("QLinearConv", at,
                               {&x, &xs, &xz, &w, &ws, &wz, &ys, &yz, with_bias ? &bias : nullptr},
                               what);
  }
}

// The fused AVX-512 VNNI paths take the common case the random cases above rarely hit: weight
// zero point 0 (symmetric, or u8 weights centred at 128), one multiplier per output channel.
// Depthwise 3x3 / 5x5 / 1xN at strides 1 and 2 on planes narrower and wider than the 32-output
// blocks, 1x1 / 3x3 convolutions with M and N off the 12 x 32 tile, and stride-2 im2col rows
// long enough for its vector gather.
TEST(QuantFast, SymmetricWeightsConvMatchesReference) {
  std::mt19937 rng(20261202);
  const std::vector<ConvCase> cases = {
      // n c m group h w kh kw sh sw pt pl pb pr dh dw
      {1, 8, 8, 8, 14, 14, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1},
      {1, 5, 5, 5, 7, 7, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1},
      {2, 6, 6, 6, 9, 70, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1},
      {1, 4, 4, 4, 33, 33, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1},
      {1, 3, 3, 3, 12, 65, 3, 3, 2, 2, 0, 1, 1, 0, 1, 1},
      {1, 3, 3, 3, 11, 40, 5, 5, 1, 2, 2, 2, 2, 2, 2, 1},
      {1, 2, 2, 2, 3, 37, 1, 4, 1, 1, 0, 0, 0, 3, 1, 1},
      {1, 16, 29, 1, 9, 11, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1},
      {2, 7, 13, 1, 6, 13, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1},
      {1, 3, 8, 1, 9, 150, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1},  // im2col, stride 2, 75 columns
      {1, 2, 5, 1, 4, 131, 2, 3, 1, 2, 0, 0, 0, 0, 1, 1},   // stride 2, no padding
  };
  const int64_t fused_before = kernels::cpu::IgemmFusedCallCount();
  for (size_t i = 0; i < cases.size() * 4; ++i) {
    const ConvCase& c = cases[i % cases.size()];
    const bool xs8 = i % 2, ws8 = (i / 2) % 2 == 0, ys8 = (i / 4) % 2;
    const int k = (c.c / c.group) * c.kh * c.kw;
    Tensor x = Bytes(rng, xs8, {c.n, c.c, c.h, c.w});
    Tensor w = Bytes(rng, ws8, {c.m, c.c / c.group, c.kh, c.kw});
    Tensor xz = ZeroPoint(rng, xs8, 0);
    Tensor wz = Tensor::Allocate(ws8 ? DataType::kInt8 : DataType::kUInt8, {c.m}).value();
    for (int64_t j = 0; j < c.m; ++j) static_cast<uint8_t*>(wz.raw())[j] = ws8 ? 0 : 128;
    Tensor yz = ZeroPoint(rng, ys8, 0);
    std::uniform_real_distribution<float> sc(0.001f, 0.05f);
    const float xsv = sc(rng);
    std::vector<float> wsv(c.m);
    for (float& v : wsv) v = sc(rng);
    const float spread = std::vector<float>{0.02f, 0.3f, 1.f, 4.f}[i % 4];
    const float ysv = xsv * wsv[0] * std::sqrt(float(k)) * 128.f * spread / 64.f;
    Tensor xs = Floats({xsv}), ws = Floats(wsv), ys = Floats({ysv});
    Tensor bias = Tensor::Allocate(DataType::kInt32, {c.m}).value();
    std::uniform_int_distribution<int32_t> bd(-200000, 200000);
    for (int64_t j = 0; j < c.m; ++j) bias.data<int32_t>()[j] = bd(rng);
    kernels::Attributes at = ConvAttrs(c);
    if (i % 3 == 1) at.Set(kernels::kFusedMin, AttrFloat(0.f));
    if (i % 3 == 2) {
      at.Set(kernels::kFusedMin, AttrFloat(0.f));
      at.Set(kernels::kFusedMax, AttrFloat(6.f));
    }
    ExpectFastMatchesReference("QLinearConv", at, {&x, &xs, &xz, &w, &ws, &wz, &ys, &yz, &bias},
                               "QLinearConv " + Describe(c) + (xs8 ? " x:s8" : " x:u8") +
                                   (ws8 ? " w:s8" : " w:u8") + (ys8 ? " y:s8" : " y:u8") +
                                   " clamp " + std::to_string(i % 3));
  }
  if (kernels::cpu::IgemmIsaSupported(IgemmIsa::kAvx512Vnni)) {
    EXPECT_GE(kernels::cpu::IgemmFusedCallCount() - fused_before,
              static_cast<int64_t>(cases.size() * 4))
        << "the fused AVX-512 VNNI paths did not run";
  }
}

TEST(QuantFast, ConvIntegerMatchesReference) {
  std::mt19937 rng(7);
  for (int i = 0; i < 60; ++i) {
    const ConvCase c = RandomConv(rng, i);
    const bool xs8 = rng() & 1, ws8 = rng() & 1, per_channel = rng() & 1;
    Tensor x = Bytes(rng, xs8, {c.n, c.c, c.h, c.w});
    Tensor w = Bytes(rng, ws8, {c.m, c.c / c.group, c.kh, c.kw});
    Tensor xz = ZeroPoint(rng, xs8, 0);
    Tensor wz = ZeroPoint(rng, ws8, per_channel ? c.m : 0);
    const bool with_zp = i % 5 != 0;
    ExpectFastMatchesReference("ConvInteger", ConvAttrs(c),
                               {&x, &w, with_zp ? &xz : nullptr, with_zp ? &wz : nullptr},
                               "ConvInteger " + Describe(c) + (xs8 ? " x:s8" : " x:u8") +
                                   (ws8 ? " w:s8" : " w:u8") + (per_channel ? " per-channel" : ""));
  }
}

struct MatCase {
  std::vector<int64_t> a, b;  // shapes
};

MatCase RandomMatMul(std::mt19937& rng, int i) {
  auto r = [&](int lo, int hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(rng); };
  const int64_t m = r(1, 40), k = r(1, 300), n = r(1, 80);
  switch (i % 4) {
    case 0:
      return {{m, k}, {k, n}};
    case 1:
      return {{r(2, 3), m, k}, {k, n}};  // folded batches, shared B
    case 2:
      return {{2, m, k}, {2, k, n}};  // B per batch
    default:
      return {{1, m, k}, {k, n}};
  }
}

std::string ShapeText(const MatCase& c) {
  return Shape(c.a).ToString() + " @ " + Shape(c.b).ToString();
}

TEST(QuantFast, MatMulIntegerMatchesReference) {
  std::mt19937 rng(11);
  for (int i = 0; i < 80; ++i) {
    const MatCase c = RandomMatMul(rng, i);
    const bool as8 = rng() & 1, bs8 = rng() & 1;
    const int64_t m = c.a[c.a.size() - 2], n = c.b.back();
    const bool a_rows = i % 3 == 1 && c.a.size() >= 2, b_cols = i % 3 == 2;
    Tensor a = Bytes(rng, as8, Shape(c.a)), b = Bytes(rng, bs8, Shape(c.b));
    Tensor az = ZeroPoint(rng, as8, a_rows ? m : 0), bz = ZeroPoint(rng, bs8, b_cols ? n : 0);
    ExpectFastMatchesReference("MatMulInteger", {}, {&a, &b, &az, &bz},
                               "MatMulInteger " + ShapeText(c) + (a_rows ? " a per row" : "") +
                                   (b_cols ? " b per column" : ""));
  }
}

// Scales of a quantized product: a (one value), b (one or per column), and y from "saturates
// a lot" to "fine" (the accumulator spans about sqrt(k) * 128 * 128).
struct ProductScales {
  Tensor a, b, y;
};
ProductScales RandomScales(std::mt19937& rng, int64_t b_count, int64_t k) {
  std::uniform_real_distribution<float> sc(0.001f, 0.05f);
  std::vector<float> bsv(b_count);
  for (float& v : bsv) v = sc(rng);
  const float asv = sc(rng);
  const float spread = std::vector<float>{0.02f, 0.3f, 1.f, 4.f}[rng() % 4];
  return {Floats({asv}), Floats(bsv),
          Floats({asv * bsv[0] * std::sqrt(float(k)) * 128.f * spread / 64.f})};
}

TEST(QuantFast, QLinearMatMulMatchesReference) {
  std::mt19937 rng(13);
  for (int i = 0; i < 80; ++i) {
    const MatCase c = RandomMatMul(rng, i);
    const bool as8 = rng() & 1, bs8 = rng() & 1, ys8 = rng() & 1, b_cols = i % 2;
    const int64_t n = c.b.back(), k = c.b[c.b.size() - 2];
    Tensor a = Bytes(rng, as8, Shape(c.a)), b = Bytes(rng, bs8, Shape(c.b));
    Tensor az = ZeroPoint(rng, as8, 0), bz = ZeroPoint(rng, bs8, b_cols ? n : 0);
    Tensor yz = ZeroPoint(rng, ys8, 0);
    auto [as, bs, ys] = RandomScales(rng, b_cols ? n : 1, k);
    kernels::Attributes at;
    const int clamp = rng() % 3;
    if (clamp == 1) at.Set(kernels::kFusedMin, AttrFloat(0.f));
    if (clamp == 2) at.Set(kernels::kFusedMax, AttrFloat(1.f));
    ExpectFastMatchesReference("QLinearMatMul", at, {&a, &as, &az, &b, &bs, &bz, &ys, &yz},
                               "QLinearMatMul " + ShapeText(c) + (b_cols ? " b per column" : "") +
                                   " clamp " + std::to_string(clamp));
  }
}

// A case worked by hand: (A - 1) @ B + C = [[3, -2], [9, -4]], scale 0.5 * 0.25 / 0.125 = 1.
TEST(QuantFast, QGemmWorkedExample) {
  Tensor a = testing::Make<uint8_t>(DataType::kUInt8, {2, 2}, {1, 2, 3, 4});
  Tensor b = testing::Make<int8_t>(DataType::kInt8, {2, 2}, {1, -1, 2, 0});
  Tensor az = testing::Make<uint8_t>(DataType::kUInt8, {}, {1});
  Tensor bz = testing::Make<int8_t>(DataType::kInt8, {}, {0});
  Tensor c = testing::Make<int32_t>(DataType::kInt32, {2}, {1, -2});
  Tensor as = Floats({0.5f}), bs = Floats({0.25f}), ys = Floats({0.125f});
  Tensor yz = testing::Make<uint8_t>(DataType::kUInt8, {}, {10});
  for (bool fast : {false, true}) {
    kernels::cpu::SetQuantFastPaths(fast);
    auto q = testing::RunOp("QGemm", {}, {&a, &as, &az, &b, &bs, &bz, &c, &ys, &yz}, 1, 1,
                            "com.microsoft");
    ASSERT_TRUE(q.ok()) << q.status().ToString();
    EXPECT_EQ(AllBytes((*q)[0]), (std::vector<uint8_t>{13, 8, 19, 6})) << "fast " << fast;
    // No y_scale / y_zero_point: float, scale 0.5 * 0.25.
    auto f = testing::RunOp("QGemm", {}, {&a, &as, &az, &b, &bs, &bz, &c}, 1, 1, "com.microsoft");
    ASSERT_TRUE(f.ok()) << f.status().ToString();
    const float* y = (*f)[0].data<float>();
    EXPECT_EQ(std::vector<float>(y, y + 4), (std::vector<float>{0.375f, -0.25f, 1.125f, -0.5f}));
  }
  kernels::cpu::SetQuantFastPaths(true);
}

TEST(QuantFast, QGemmMatchesReference) {
  std::mt19937 rng(17);
  auto r = [&](int lo, int hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(rng); };
  for (int i = 0; i < 80; ++i) {
    const int64_t m = r(1, 30), k = r(1, 200), n = r(1, 70);
    const bool ta = rng() & 1, tb = rng() & 1, as8 = rng() & 1, bs8 = rng() & 1;
    const bool b_cols = rng() & 1, quant = i % 4 != 0, ys8 = rng() & 1;
    Tensor a = Bytes(rng, as8, ta ? Shape{k, m} : Shape{m, k});
    Tensor b = Bytes(rng, bs8, tb ? Shape{n, k} : Shape{k, n});
    Tensor az = ZeroPoint(rng, as8, 0), bz = ZeroPoint(rng, bs8, b_cols ? n : 0);
    Tensor yz = ZeroPoint(rng, ys8, 0);
    auto [as, bs, ys] = RandomScales(rng, b_cols ? n : 1, k);
    const int c_kind = i % 5;  // none, scalar, [N], [M, 1], [M, N]
    const Shape cshape = c_kind == 1   ? Shape{}
                         : c_kind == 2 ? Shape{n}
                         : c_kind == 3 ? Shape{m, 1}
                                       : Shape{m, n};
    Tensor c = Tensor::Allocate(DataType::kInt32, cshape).value();
    for (int64_t j = 0; j < c.numel(); ++j)
      c.data<int32_t>()[j] = static_cast<int32_t>(r(-90000, 90000));
    kernels::Attributes at;
    at.Set("transA", AttrInt(ta));
    at.Set("transB", AttrInt(tb));
    at.Set("alpha", AttrFloat(std::vector<float>{1.f, 0.5f, 2.5f}[rng() % 3]));
    if (i % 3 == 1) at.Set(kernels::kFusedMin, AttrFloat(0.f));
    std::vector<const Tensor*> in = {&a, &as, &az, &b, &bs, &bz, c_kind ? &c : nullptr};
    if (quant) in.insert(in.end(), {&ys, &yz});
    ExpectFastMatchesReference("QGemm", at, in,
                               "QGemm m" + std::to_string(m) + " k" + std::to_string(k) + " n" +
                                   std::to_string(n) + (ta ? " tA" : "") + (tb ? " tB" : "") +
                                   " C kind " + std::to_string(c_kind) +
                                   (quant ? " quantized" : " float"),
                               1, "com.microsoft");
  }
}

// Weights within [-64, 64] after the signedness shift (ONNX Runtime's reduce_range): the AVX2
// path then uses vpmaddubsw, whose pair sums cannot saturate; every path must still match.
Tensor SmallWeights(std::mt19937& rng, bool is_signed, Shape s) {
  Tensor t = Bytes(rng, is_signed, s);
  std::uniform_int_distribution<int> d(-64, 64);
  for (int64_t i = 0; i < t.numel(); ++i) {
    const int v = i % 11 == 0 ? (i % 2 ? 64 : -64) : d(rng);
    t.data<uint8_t>()[i] = static_cast<uint8_t>(is_signed ? v : v + 128);
  }
  return t;
}

TEST(QuantFast, ReduceRangeWeightsMatchReference) {
  std::mt19937 rng(23);
  for (int i = 0; i < 40; ++i) {
    const ConvCase c = RandomConv(rng, i % 2 ? 0 : 1);  // general and pointwise (igemm)
    const bool xs8 = rng() & 1, ws8 = rng() & 1;
    Tensor x = Bytes(rng, xs8, {c.n, c.c, c.h, c.w});
    Tensor w = SmallWeights(rng, ws8, {c.m, c.c / c.group, c.kh, c.kw});
    Tensor xz = ZeroPoint(rng, xs8, 0), wz = ZeroPoint(rng, ws8, 0);
    ExpectFastMatchesReference("ConvInteger", ConvAttrs(c), {&x, &w, &xz, &wz},
                               "ConvInteger (small weights) " + Describe(c));
    const MatCase mc = RandomMatMul(rng, i);
    Tensor a = Bytes(rng, xs8, Shape(mc.a)), b = SmallWeights(rng, ws8, Shape(mc.b));
    Tensor bz = ZeroPoint(rng, ws8, 0);
    ExpectFastMatchesReference("MatMulInteger", {}, {&a, &b, &xz, &bz},
                               "MatMulInteger (small weights) " + ShapeText(mc));
  }
}

}  // namespace
}  // namespace outpost
