// Quantized ops on OpenCL against the CPU reference kernels, byte for byte: QuantizeLinear,
// DequantizeLinear, QLinearMatMul, MatMulInteger, QLinearConv, ConvInteger, with both integer
// GEMM variants forced through $OUTPOST_OPENCL_QGEMM (portable, and the u8 x s8 fast kernel,
// which on PoCL must build: forcing it where it does not fails the test).
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <random>

#include "kernels/op_harness.h"
#include "kernels/opencl_harness.h"
#include "outpost/kernels/backend.h"
#include "outpost/kernels/fusion.h"

namespace outpost {
namespace {

using kernels::Attribute;
using kernels::Attributes;

kernels::Backend* Cl() { return testing::SharedOpenClBackend(); }

// Uniform integers in [lo, hi] of an integer type, or floats in [lo, hi).
Tensor Rand(DataType t, Shape s, double lo, double hi, uint32_t seed) {
  Tensor x = Tensor::Allocate(t, s).value();
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> u(lo, hi);
  std::uniform_int_distribution<int> ui(static_cast<int>(lo), static_cast<int>(hi));
  for (int64_t i = 0; i < x.numel(); ++i) {
    switch (t) {
      case DataType::kFloat:
        x.data<float>()[i] = static_cast<float>(u(rng));
        break;
      case DataType::kFloat16:
        x.data<Float16>()[i] = Float16(static_cast<float>(u(rng)));
        break;
      case DataType::kInt8:
        x.data<int8_t>()[i] = static_cast<int8_t>(ui(rng));
        break;
      case DataType::kUInt8:
        x.data<uint8_t>()[i] = static_cast<uint8_t>(ui(rng));
        break;
      case DataType::kInt32:
        x.data<int32_t>()[i] = ui(rng);
        break;
      case DataType::kInt16:
        x.data<int16_t>()[i] = static_cast<int16_t>(ui(rng));
        break;
      default:
        ADD_FAILURE() << "Rand: type";
    }
  }
  return x;
}
Tensor Scalar(DataType t, double v) { return Rand(t, Shape{}, v, v, 0); }
Tensor Floats(Shape s, std::vector<float> v) {
  Tensor x = Tensor::Allocate(DataType::kFloat, s).value();
  std::memcpy(x.raw(), v.data(), v.size() * sizeof(float));
  return x;
}

// kFast: the u8 x s8 AVX2 GEMM (and the vector depthwise kernel); kVnni: the AVX-512 VNNI
// convolution, which must build where the host CPU has VNNI and the device is PoCL's.
enum class Variant { kPortable, kFast, kVnni };
const char* VariantName(Variant v) {
  return v == Variant::kFast ? "fast" : v == Variant::kVnni ? "vnni" : "portable";
}
struct ScopedVariant {
  explicit ScopedVariant(Variant v) { setenv("OUTPOST_OPENCL_QGEMM", VariantName(v), 1); }
  ~ScopedVariant() { unsetenv("OUTPOST_OPENCL_QGEMM"); }
};
bool HasVnni() {
  if (!Cl()) return false;
  std::string d = Cl()->description();
  for (char& ch : d) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
#if defined(__x86_64__)
  return d.find("pocl") != std::string::npos && __builtin_cpu_supports("avx512vnni");
#else
  return false;
#endif
}
// The convolution variants this machine can run: VNNI only where it exists.
std::vector<Variant> ConvVariants() {
  std::vector<Variant> v = {Variant::kPortable, Variant::kFast};
  if (HasVnni()) v.push_back(Variant::kVnni);
  return v;
}

// Runs `op` on the CPU reference and on OpenCL (inputs marked in `consts` are constants at
// load) and requires the same bytes. `fused` adds the engine's fused clamp to the OpenCL node;
// the reference output is then clamped on the host to [qlo, qhi].
void Check(const std::string& op, Attributes attrs, std::vector<Tensor> inputs,
           std::vector<bool> consts, Variant variant = Variant::kPortable, int opset = 21,
           kernels::FusedClamp fused = {}, int qlo = 0, int qhi = 0, const std::string& domain = "",
           const Tensor* expected = nullptr) {
  if (!Cl()) GTEST_SKIP() << "no OpenCL device";
  ScopedVariant sv(variant);
  consts.resize(inputs.size(), false);
  std::vector<const Tensor*> in_ptrs;
  for (auto& t : inputs) in_ptrs.push_back(t.defined() ? &t : nullptr);
  auto ref = expected ? Expected<std::vector<Tensor>>(std::vector<Tensor>{*expected})
                      : testing::RunOp(op, attrs, in_ptrs, 1, opset, domain);
  ASSERT_TRUE(ref.ok()) << ref.status().ToString();
  Tensor& want = (*ref)[0];
  if (fused.active) {
    for (int64_t i = 0; i < want.numel(); ++i) {
      const int64_t v = std::clamp<int64_t>(ReadInt(want, i), qlo, qhi);
      if (want.dtype() == DataType::kUInt8)
        want.data<uint8_t>()[i] = static_cast<uint8_t>(v);
      else
        want.data<int8_t>()[i] = static_cast<int8_t>(v);
    }
    attrs.Set(kernels::kFusedMin, testing::AttrFloat(fused.lo));
    attrs.Set(kernels::kFusedMax, testing::AttrFloat(fused.hi));
  }
  testing::EngineMetas metas(inputs, consts);
  Tensor out_meta = Tensor::Meta(want.dtype(), want.shape());
  const Tensor* out_ptr = &out_meta;
  kernels::NodeInfo node{"n", op, domain, opset, attrs};
  std::string why;
  ASSERT_TRUE(Cl()->SupportsOp(node, metas.ptrs, {&out_ptr, 1}, &why)) << why;
  auto prepared = Cl()->Prepare(node, metas.ptrs, {&out_ptr, 1});
  ASSERT_TRUE(prepared.ok()) << prepared.status().ToString();
  testing::DeviceInputs dev;
  ASSERT_TRUE(dev.Upload(Cl(), inputs, consts,
                         [](DataType t) {
                           return 3 * DataTypeSize(t);  // an odd element offset
                         })
                  .ok());
  struct Sink : kernels::OutputSink {
    Expected<Tensor*> Allocate(int, DataType dt, const Shape& s) override {
      auto b = Cl()->Allocate(Tensor::Meta(dt, s).nbytes() + 64);
      if (!b.ok()) return b.status();
      buf = *b;
      out = buf->View(dt, s, 5 * DataTypeSize(dt));
      return &out;
    }
    std::shared_ptr<kernels::Buffer> buf;
    Tensor out;
  } sink;
  Status st = (*prepared)->Execute(dev.ptrs, &sink);
  ASSERT_TRUE(st.ok()) << st.ToString();
  ASSERT_TRUE(Cl()->Synchronize().ok());
  ASSERT_EQ(sink.out.shape(), want.shape());
  ASSERT_EQ(sink.out.dtype(), want.dtype());
  Tensor got = Tensor::Allocate(want.dtype(), want.shape()).value();
  ASSERT_TRUE(Cl()->CopyToHost(sink.out, got).ok());
  const size_t esize = DataTypeSize(want.dtype());
  int bad = 0;
  for (int64_t i = 0; i < want.numel() && bad < 5; ++i)
    if (std::memcmp(static_cast<const char*>(want.raw()) + i * esize,
                    static_cast<const char*>(got.raw()) + i * esize, esize) != 0) {
      ++bad;
      ADD_FAILURE() << op << " element " << i << ": want " << ReadDouble(want, i) << " got "
                    << ReadDouble(got, i);
    }
}

constexpr DataType kI8 = DataType::kInt8, kU8 = DataType::kUInt8;
double Lo(DataType t) { return t == kI8 ? -128 : 0; }
double Hi(DataType t) { return t == kI8 ? 127 : 255; }

TEST(OpenClQuantTest, QuantizeLinearRoundsHalfToEvenAndSaturates) {
  for (DataType q : {kU8, kI8}) {
    SCOPED_TRACE(DataTypeName(q));
    // x / 0.125 hits every half-integer between -400 and 400 (exact ties), then far out and inf.
    std::vector<float> xs;
    for (int i = -1600; i <= 1600; ++i) xs.push_back(static_cast<float>(i) / 16.0f);
    for (float v : {1e9f, -1e9f, std::numeric_limits<float>::infinity(),
                    -std::numeric_limits<float>::infinity(), 0.0f, -0.0f})
      xs.push_back(v);
    const int64_t n = static_cast<int64_t>(xs.size());
    Tensor x = Floats(Shape{n}, xs);
    Check("QuantizeLinear", {}, {x, Scalar(DataType::kFloat, 0.125), Scalar(q, q == kU8 ? 3 : -5)},
          {});
    Check("QuantizeLinear", {},
          {Rand(DataType::kFloat, Shape{7, 33}, -40, 40, 2), Scalar(DataType::kFloat, 0.173),
           Scalar(q, 17)},
          {false, true, true});
  }
  // No zero point: uint8.
  Check("QuantizeLinear", {},
        {Rand(DataType::kFloat, Shape{100}, -5, 60, 3), Scalar(DataType::kFloat, 0.2)}, {});
}

TEST(OpenClQuantTest, QuantizeLinearPerAxisAndBlocked) {
  for (DataType q : {kU8, kI8}) {
    Tensor x = Rand(DataType::kFloat, Shape{2, 5, 6}, -30, 30, 4);
    Attributes axis;
    axis.Set("axis", testing::AttrInt(1));
    Check("QuantizeLinear", axis,
          {x, Rand(DataType::kFloat, Shape{5}, 0.05, 0.3, 5), Rand(q, Shape{5}, Lo(q), Hi(q), 6)},
          {});
    Attributes blocked;
    blocked.Set("axis", testing::AttrInt(2));
    blocked.Set("block_size", testing::AttrInt(4));
    Check("QuantizeLinear", blocked,
          {x, Rand(DataType::kFloat, Shape{2, 5, 2}, 0.05, 0.3, 7),
           Rand(q, Shape{2, 5, 2}, Lo(q), Hi(q), 8)},
          {});
  }
}

TEST(OpenClQuantTest, DequantizeLinear) {
  for (DataType q : {kU8, kI8}) {
    Tensor x = Rand(q, Shape{3, 4, 10}, Lo(q), Hi(q), 9);
    Check("DequantizeLinear", {}, {x, Scalar(DataType::kFloat, 0.0371), Scalar(q, Lo(q) + 7)}, {});
    Check("DequantizeLinear", {}, {x, Scalar(DataType::kFloat, 3.5)}, {});
    Attributes axis;
    axis.Set("axis", testing::AttrInt(1));
    Check("DequantizeLinear", axis,
          {x, Rand(DataType::kFloat, Shape{4}, 0.01, 2, 10), Rand(q, Shape{4}, Lo(q), Hi(q), 11)},
          {});
    Attributes blocked;
    blocked.Set("axis", testing::AttrInt(2));
    blocked.Set("block_size", testing::AttrInt(3));
    Check("DequantizeLinear", blocked,
          {x, Rand(DataType::kFloat, Shape{3, 4, 4}, 0.01, 2, 12),
           Rand(q, Shape{3, 4, 4}, Lo(q), Hi(q), 13)},
          {});
  }
}

// Types the OpenCL kernels do not take are refused with a reason (the CPU runs them).
TEST(OpenClQuantTest, UnsupportedTypesAreRefusedWithReason) {
  if (!Cl()) GTEST_SKIP() << "no OpenCL device";
  Tensor x = Tensor::Meta(DataType::kFloat, Shape{4});
  Tensor s = Scalar(DataType::kFloat, 0.5), z = Scalar(DataType::kInt16, 0);
  Tensor y = Tensor::Meta(DataType::kInt16, Shape{4});
  const Tensor* in[] = {&x, &s, &z};
  const Tensor* out[] = {&y};
  kernels::NodeInfo node{"n", "QuantizeLinear", "", 21, {}};
  std::string why;
  EXPECT_FALSE(Cl()->SupportsOp(node, in, out, &why));
  EXPECT_NE(why.find("int16"), std::string::npos) << why;
}

struct MatMulCase {
  Shape a, b;
  DataType ta, tb, ty;
};

TEST(OpenClQuantTest, QLinearMatMulBothVariants) {
  const MatMulCase cases[] = {
      {Shape{37, 50}, Shape{50, 29}, kU8, kI8, kU8},       // odd M, K, N
      {Shape{3, 9, 64}, Shape{64, 40}, kI8, kI8, kI8},     // batch broadcast of B
      {Shape{2, 5, 23}, Shape{2, 23, 17}, kU8, kU8, kU8},  // batched B
      {Shape{16, 130}, Shape{130, 33}, kI8, kU8, kU8},
  };
  uint32_t seed = 20;
  for (const auto& mc : cases) {
    const int64_t n = mc.b[mc.b.rank() - 1];
    for (bool per_column : {false, true})
      for (bool const_b : {true, false})
        for (Variant v : {Variant::kPortable, Variant::kFast}) {
          SCOPED_TRACE(::testing::Message() << mc.a.ToString() << " x " << mc.b.ToString()
                                            << " per_column " << per_column << " const_b "
                                            << const_b << " fast " << (v == Variant::kFast));
          Shape ps = per_column ? Shape{n} : Shape{};
          Tensor a = Rand(mc.ta, mc.a, Lo(mc.ta), Hi(mc.ta), ++seed);
          Tensor b = Rand(mc.tb, mc.b, Lo(mc.tb), Hi(mc.tb), ++seed);
          // y_scale small enough that some outputs saturate at both ends.
          std::vector<Tensor> in = {a,
                                    Scalar(DataType::kFloat, 0.02),
                                    Scalar(mc.ta, mc.ta == kU8 ? 131 : -3),
                                    b,
                                    Rand(DataType::kFloat, ps, 0.001, 0.01, ++seed),
                                    Rand(mc.tb, ps, Lo(mc.tb), Hi(mc.tb), ++seed),
                                    Scalar(DataType::kFloat, 0.05),
                                    Scalar(mc.ty, mc.ty == kU8 ? 120 : 5)};
          Check("QLinearMatMul", {}, in, {false, true, true, const_b, true, true, true, true}, v);
        }
  }
}

// float16 scales: the multiplier is rounded to half after each step, as in the reference.
TEST(OpenClQuantTest, QLinearMatMulHalfScales) {
  for (Variant v : {Variant::kPortable, Variant::kFast}) {
    std::vector<Tensor> in = {Rand(kU8, Shape{6, 20}, 0, 255, 40),
                              Scalar(DataType::kFloat16, 0.0234),
                              Scalar(kU8, 100),
                              Rand(kU8, Shape{20, 9}, 0, 255, 41),
                              Rand(DataType::kFloat16, Shape{9}, 0.001, 0.02, 42),
                              Rand(kU8, Shape{9}, 0, 255, 43),
                              Scalar(DataType::kFloat16, 0.07),
                              Scalar(kU8, 128)};
    Check("QLinearMatMul", {}, in, {false, false, false, true, false, true, false, false}, v);
  }
}

// A multiplier of exactly 0.5 makes every odd accumulator a tie: rounded half to even.
TEST(OpenClQuantTest, QLinearMatMulTiesRoundToEven) {
  for (Variant v : {Variant::kPortable, Variant::kFast})
    for (bool const_scales : {true, false}) {
      std::vector<Tensor> in = {Rand(kU8, Shape{9, 7}, 125, 137, 60),
                                Scalar(DataType::kFloat, 1.0),
                                Scalar(kU8, 131),
                                Rand(kI8, Shape{7, 12}, -4, 4, 61),
                                Scalar(DataType::kFloat, 0.5),
                                Scalar(kI8, 0),
                                Scalar(DataType::kFloat, 1.0),
                                Scalar(kI8, 1)};
      Check("QLinearMatMul", {}, in,
            {false, const_scales, true, true, const_scales, true, const_scales, true}, v);
    }
}

// Extreme operands: every product at its largest (|a - za| = |b - zb| = 255), which also drives
// the fast kernel's int16 pair sums to their limits.
TEST(OpenClQuantTest, MatMulIntegerExtremes) {
  for (Variant v : {Variant::kPortable, Variant::kFast}) {
    Tensor a = Rand(kU8, Shape{5, 300}, 255, 255, 0);
    Tensor b = Rand(kI8, Shape{300, 18}, -128, -128, 0);
    Check("MatMulInteger", {}, {a, b, Scalar(kU8, 0), Scalar(kI8, 127)}, {false, true, true, true},
          v);
    Tensor b2 = Rand(kU8, Shape{300, 18}, 0, 0, 0);
    Check("MatMulInteger", {}, {a, b2, Scalar(kU8, 0), Scalar(kU8, 255)}, {false, true, true, true},
          v);
  }
}

TEST(OpenClQuantTest, MatMulIntegerPerRowAndColumnZeroPoints) {
  uint32_t seed = 50;
  for (DataType ta : {kU8, kI8})
    for (DataType tb : {kU8, kI8})
      for (Variant v : {Variant::kPortable, Variant::kFast})
        for (bool const_b : {true, false}) {
          SCOPED_TRACE(::testing::Message() << DataTypeName(ta) << " x " << DataTypeName(tb));
          std::vector<Tensor> in = {Rand(ta, Shape{2, 11, 45}, Lo(ta), Hi(ta), ++seed),
                                    Rand(tb, Shape{45, 21}, Lo(tb), Hi(tb), ++seed),
                                    Rand(ta, Shape{11}, Lo(ta), Hi(ta), ++seed),
                                    Rand(tb, Shape{21}, Lo(tb), Hi(tb), ++seed)};
          Check("MatMulInteger", {}, in, {false, const_b, false, const_b}, v);
        }
}

struct ConvCase {
  Shape x, w;
  std::vector<int64_t> strides, pads;
  int64_t group;
  std::vector<int64_t> dilations = {};
};

Attributes ConvAttrs(const ConvCase& cc) {
  Attributes a;
  a.Set("strides", testing::AttrInts(cc.strides));
  a.Set("pads", testing::AttrInts(cc.pads));
  a.Set("group", testing::AttrInt(cc.group));
  if (!cc.dilations.empty()) a.Set("dilations", testing::AttrInts(cc.dilations));
  return a;
}

const ConvCase kConvs[] = {
    {Shape{1, 8, 9, 9}, Shape{16, 8, 3, 3}, {1, 1}, {1, 1, 1, 1}, 1},    // 3x3 pad 1
    {Shape{2, 6, 10, 7}, Shape{10, 6, 3, 3}, {2, 2}, {1, 0, 1, 1}, 1},   // stride 2, odd pads
    {Shape{1, 12, 6, 6}, Shape{12, 1, 3, 3}, {1, 1}, {1, 1, 1, 1}, 12},  // depthwise
    {Shape{2, 4, 7, 8}, Shape{8, 1, 3, 3}, {2, 2}, {1, 1, 0, 1}, 4},     // depthwise x2, stride 2
    {Shape{1, 8, 5, 5}, Shape{6, 4, 1, 1}, {1, 1}, {0, 0, 0, 0}, 2},     // grouped 1x1
    {Shape{2, 4, 17}, Shape{5, 4, 3}, {1}, {2, 1}, 1},                   // 1-D
    // 1x1 (the VNNI packing's contiguous path), Cg = 5 padded to 8, M = 11, P = 703 (tails)
    {Shape{1, 5, 19, 37}, Shape{11, 5, 1, 1}, {1, 1}, {0, 0, 0, 0}, 1},
    {Shape{1, 3, 23, 21}, Shape{9, 3, 3, 3}, {2, 2}, {1, 1, 1, 1}, 1},          // Cg = 3, stride 2
    {Shape{2, 16, 9, 9}, Shape{20, 4, 3, 3}, {1, 1}, {1, 1, 1, 1}, 4},          // groups of 4 -> 5
    {Shape{1, 6, 11, 13}, Shape{7, 6, 3, 3}, {1, 1}, {2, 2, 2, 2}, 1, {2, 2}},  // dilation 2
    {Shape{1, 6, 20, 40}, Shape{6, 1, 3, 3}, {1, 1}, {1, 1, 1, 1}, 6},          // depthwise, wide
    {Shape{1, 4, 21, 70}, Shape{4, 1, 3, 3}, {2, 2}, {1, 1, 1, 1}, 4},          // wide, stride 2
    {Shape{1, 3, 18, 35}, Shape{6, 1, 5, 5}, {1, 2}, {2, 1, 0, 2}, 3},          // 5x5, x2, odd pads
    {Shape{1, 2, 12, 34}, Shape{2, 1, 3, 3}, {1, 1}, {2, 2, 2, 2}, 2, {2, 2}},  // dilated dw
    {Shape{1, 64, 4, 4}, Shape{40, 64, 1, 1}, {1, 1}, {0, 0, 0, 0}, 1},         // K = 64, P = 16
    {Shape{1, 4, 11, 20}, Shape{6, 4, 2, 3}, {3, 3}, {0, 1, 1, 0}, 1},          // stride 3, 2x3
};

TEST(OpenClQuantTest, QLinearConvBothVariants) {
  uint32_t seed = 70;
  for (const auto& cc : kConvs)
    for (DataType tx : {kU8, kI8})
      for (bool per_channel : {false, true})
        for (bool seven_bit : {false, true})  // weights in 7 bits: the fast kernel's unsplit path
          for (Variant v : ConvVariants()) {
            SCOPED_TRACE(::testing::Message() << cc.x.ToString() << " * " << cc.w.ToString() << " "
                                              << DataTypeName(tx) << " per_channel " << per_channel
                                              << " 7-bit " << seven_bit << " " << VariantName(v));
            const int64_t m = cc.w[0];
            Shape pc = per_channel ? Shape{m} : Shape{};
            std::vector<Tensor> in = {
                Rand(tx, cc.x, Lo(tx), Hi(tx), ++seed),
                Scalar(DataType::kFloat, 0.031),
                Scalar(tx, tx == kU8 ? 128 : -2),
                Rand(kI8, cc.w, seven_bit ? -64 : -128, seven_bit ? 63 : 127, ++seed),
                Rand(DataType::kFloat, pc, 0.002, 0.02, ++seed),
                Rand(kI8, pc, seven_bit ? 0 : -20, seven_bit ? 0 : 20, ++seed),
                Scalar(DataType::kFloat, 0.04),
                Scalar(tx, tx == kU8 ? 110 : 3),
                Rand(DataType::kInt32, Shape{m}, -5000, 5000, ++seed)};
            Check("QLinearConv", ConvAttrs(cc), in,
                  {false, true, true, true, true, true, true, true, true}, v);
          }
}

// uint8 weights (offset by 128 in the fast kernel) and non-constant weights (portable kernel).
TEST(OpenClQuantTest, QLinearConvUint8WeightsAndRuntimeWeights) {
  const ConvCase& cc = kConvs[0];
  for (bool const_w : {true, false})
    for (Variant v : ConvVariants()) {
      std::vector<Tensor> in = {Rand(kU8, cc.x, 0, 255, 90),
                                Scalar(DataType::kFloat, 0.05),
                                Scalar(kU8, 0),
                                Rand(kU8, cc.w, 0, 255, 91),
                                Scalar(DataType::kFloat, 0.004),
                                Scalar(kU8, 133),
                                Scalar(DataType::kFloat, 0.11),
                                Scalar(kU8, 64),
                                Rand(DataType::kInt32, Shape{16}, -900, 900, 92)};
      Check("QLinearConv", ConvAttrs(cc), in,
            {false, false, false, const_w, false, const_w, false, false, false}, v);
    }
}

TEST(OpenClQuantTest, ConvIntegerBothVariants) {
  uint32_t seed = 100;
  for (const auto& cc : kConvs)
    for (DataType tw : {kU8, kI8})
      for (Variant v : ConvVariants()) {
        SCOPED_TRACE(::testing::Message()
                     << cc.x.ToString() << " " << DataTypeName(tw) << " " << VariantName(v));
        const int64_t m = cc.w[0];
        std::vector<Tensor> in = {Rand(kU8, cc.x, 0, 255, ++seed),
                                  Rand(tw, cc.w, Lo(tw), Hi(tw), ++seed), Scalar(kU8, 77),
                                  Rand(tw, Shape{m}, Lo(tw), Hi(tw), ++seed)};
        Check("ConvInteger", ConvAttrs(cc), in, {false, true, true, true}, v, 10);
      }
}

// The engine's fused Relu / Relu6 on QLinearConv: the output is clamped to
// [y_zp + round(lo / y_scale), y_zp + round(hi / y_scale)] after requantization.
TEST(OpenClQuantTest, QLinearConvFusedClamp) {
  const ConvCase& cc = kConvs[0];
  const float ys = 0.04f;
  const int yzp = 110;
  for (Variant v : ConvVariants()) {
    std::vector<Tensor> in = {Rand(kU8, cc.x, 0, 255, 120),
                              Scalar(DataType::kFloat, 0.031),
                              Scalar(kU8, 128),
                              Rand(kI8, cc.w, -128, 127, 121),
                              Scalar(DataType::kFloat, 0.01),
                              Scalar(kI8, 0),
                              Scalar(DataType::kFloat, ys),
                              Scalar(kU8, yzp),
                              Rand(DataType::kInt32, Shape{16}, -900, 900, 122)};
    std::vector<bool> consts(9, true);
    consts[0] = false;
    kernels::FusedClamp relu6{true, 0.0f, 6.0f};
    const int hi = yzp + static_cast<int>(std::nearbyint(6.0 / ys));  // 110 + 150 = 260 -> 255
    Check("QLinearConv", ConvAttrs(cc), in, consts, v, 21, relu6, yzp, std::min(hi, 255));
    kernels::FusedClamp clip{true, -1.0f, 2.0f};
    Check("QLinearConv", ConvAttrs(cc), in, consts, v, 21, clip, yzp - 25, yzp + 50);
  }
}

// com.microsoft QLinearAdd / QLinearMul on same-shape operands (the residual adds) against the
// CPU reference kernels of the graph they stand for, DequantizeLinear x 2 -> Add / Mul ->
// QuantizeLinear (the engine's QDQ fusion promises those bits): values of both types, scales
// that put results on rounding ties and past saturation, and a broadcasting case that stays on
// the CPU with its reason. The CPU kernels must match that graph too.
Tensor UnfusedBinary(const std::string& op, const std::vector<Tensor>& in) {
  auto dq = [&](int i) {
    auto r = testing::RunOp("DequantizeLinear", {}, {&in[i], &in[i + 1], &in[i + 2]}, 1, 21);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return (*r)[0];
  };
  const Tensor a = dq(0), b = dq(3);
  auto r = testing::RunOp(op == "QLinearAdd" ? "Add" : "Mul", {}, {&a, &b}, 1, 14);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  auto q = testing::RunOp("QuantizeLinear", {}, {&(*r)[0], &in[6], &in[7]}, 1, 21);
  EXPECT_TRUE(q.ok()) << q.status().ToString();
  return (*q)[0];
}

TEST(OpenClQuantTest, QLinearAddMulMatchTheUnfusedGraph) {
  uint32_t seed = 300;
  for (const char* op : {"QLinearAdd", "QLinearMul"})
    for (DataType t : {kU8, kI8})
      for (auto [as, bs, cs] : {std::tuple{0.05, 0.03, 0.08}, {0.5, 0.5, 1.0}, {0.02, 0.1, 0.01}}) {
        SCOPED_TRACE(::testing::Message() << op << " " << DataTypeName(t) << " " << cs);
        const Shape s{2, 3, 5, 37};
        std::vector<Tensor> in = {
            Rand(t, s, Lo(t), Hi(t), ++seed), Scalar(DataType::kFloat, as),
            Scalar(t, t == kU8 ? 121 : -7),   Rand(t, s, Lo(t), Hi(t), ++seed),
            Scalar(DataType::kFloat, bs),     Scalar(t, t == kU8 ? 130 : 4),
            Scalar(DataType::kFloat, cs),     Scalar(t, t == kU8 ? 128 : 0)};
        const Tensor want = UnfusedBinary(op, in);
        // The CPU kernel too (compiled without floating-point contraction for this reason).
        std::vector<const Tensor*> ptrs;
        for (const Tensor& t : in) ptrs.push_back(&t);
        auto cpu = testing::RunOp(op, {}, ptrs, 1, 1, "com.microsoft");
        ASSERT_TRUE(cpu.ok()) << cpu.status().ToString();
        ASSERT_EQ(std::memcmp((*cpu)[0].raw(), want.raw(), want.nbytes()), 0) << "CPU kernel";
        Check(op, {}, in, {false, true, true, false, true, true, true, true}, Variant::kPortable, 1,
              {}, 0, 0, "com.microsoft", &want);
      }
  if (!Cl()) return;
  Tensor a = Rand(kU8, Shape{2, 3}, 0, 255, 1), b = Rand(kU8, Shape{3}, 0, 255, 2);
  Tensor s = Scalar(DataType::kFloat, 0.1), z = Scalar(kU8, 128);
  testing::EngineMetas metas({a, s, z, b, s, z, s, z},
                             {false, true, true, false, true, true, true, true});
  Tensor out_meta = Tensor::Meta(kU8, Shape{2, 3});
  const Tensor* out_ptr = &out_meta;
  kernels::NodeInfo node{"n", "QLinearAdd", "com.microsoft", 1, {}};
  std::string why;
  EXPECT_FALSE(Cl()->SupportsOp(node, metas.ptrs, {&out_ptr, 1}, &why));
  EXPECT_NE(why.find("broadcasting"), std::string::npos) << why;
}

// Milliseconds per run of one node on OpenCL (median of 7 rounds of 3 runs). Inputs marked in
// `consts` are constants at load.
double TimeNode(const std::string& op, const Attributes& attrs, const std::vector<Tensor>& in,
                const std::vector<bool>& consts, const Tensor& out_meta, int opset) {
  std::vector<Tensor> metas;
  std::vector<const Tensor*> mp, run;
  std::vector<std::shared_ptr<kernels::Buffer>> bufs;
  std::vector<Tensor> dev(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    metas.push_back(consts[i] ? in[i] : Tensor::Meta(in[i].dtype(), in[i].shape()));
    if (consts[i]) continue;
    bufs.push_back(*Cl()->Allocate(in[i].nbytes()));
    dev[i] = bufs.back()->View(in[i].dtype(), in[i].shape(), 0);
    EXPECT_TRUE(Cl()->CopyFromHost(in[i], dev[i]).ok());
  }
  for (size_t i = 0; i < in.size(); ++i) {
    mp.push_back(&metas[i]);
    run.push_back(consts[i] ? &in[i] : &dev[i]);
  }
  const Tensor* out = &out_meta;
  kernels::NodeInfo node{"n", op, "", opset, attrs};
  auto prep = Cl()->Prepare(node, mp, {&out, 1});
  EXPECT_TRUE(prep.ok()) << prep.status().ToString();
  if (!prep.ok()) return 0;
  struct Sink : kernels::OutputSink {
    Expected<Tensor*> Allocate(int, DataType dt, const Shape& s) override {
      if (!buf) buf = *Cl()->Allocate(Tensor::Meta(dt, s).nbytes());
      out = buf->View(dt, s, 0);
      return &out;
    }
    std::shared_ptr<kernels::Buffer> buf;
    Tensor out;
  } sink;
  EXPECT_TRUE((*prep)->Execute(run, &sink).ok());
  EXPECT_TRUE(Cl()->Synchronize().ok());
  std::vector<double> ms;
  for (int rep = 0; rep < 7; ++rep) {
    auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < 3; ++i) EXPECT_TRUE((*prep)->Execute(run, &sink).ok());
    EXPECT_TRUE(Cl()->Synchronize().ok());
    ms.push_back(
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() /
        3);
  }
  std::sort(ms.begin(), ms.end());
  return ms[3];
}

// QLinearMatMul / QLinearConv (fast and portable kernels) against float MatMul / Conv on layer
// shapes of ResNet-18 and MobileNetV2 (informational; set OUTPOST_OPENCL_BENCH=1).
TEST(OpenClQuantTest, Throughput) {
  if (!Cl() || !std::getenv("OUTPOST_OPENCL_BENCH")) GTEST_SKIP() << "set OUTPOST_OPENCL_BENCH=1";
  // int8 weights in 8 bits (the fast kernel's split path) and in 7 bits (one vpmaddubsw).
  const bool seven = std::getenv("OUTPOST_BENCH_7BIT_WEIGHTS") != nullptr;
  const double wlo = seven ? -64 : -128, whi = seven ? 63 : 127;
  auto report = [&](const std::string& what, double ops, double f32, double fast, double portable) {
    std::printf(
        "[bench] %-34s f32 %8.3f ms %6.1f GOP/s | int8%s fast %8.3f ms %6.1f GOP/s "
        "(x%.2f) | portable %8.3f ms %6.1f GOP/s\n",
        what.c_str(), f32, ops / f32 * 1e-6, seven ? " (7-bit w)" : "", fast, ops / fast * 1e-6,
        f32 / fast, portable, ops / portable * 1e-6);
  };
  auto qlinear_inputs = [](Tensor x, Tensor w, bool bias) {
    std::vector<Tensor> in = {x,
                              Scalar(DataType::kFloat, 0.02),
                              Scalar(kU8, 128),
                              w,
                              Scalar(DataType::kFloat, 0.003),
                              Scalar(kI8, 0),
                              Scalar(DataType::kFloat, 0.05),
                              Scalar(kU8, 128)};
    if (bias) in.push_back(Rand(DataType::kInt32, Shape{w.dim(0)}, -1000, 1000, 3));
    return in;
  };
  for (auto [m, k, n, what] : {std::tuple<int, int, int, const char*>{1, 512, 1000, "ResNet-18 fc"},
                               {196, 256, 1024, "GEMM 196x256x1024"},
                               {1024, 1024, 1024, "GEMM 1024^3"}}) {
    const double ops = 2.0 * m * k * n;
    Tensor af = Rand(DataType::kFloat, Shape{m, k}, -1, 1, 1),
           bf = Rand(DataType::kFloat, Shape{k, n}, -1, 1, 2);
    const double f32 = TimeNode("MatMul", {}, {af, bf}, {false, true},
                                Tensor::Meta(DataType::kFloat, Shape{m, n}), 13);
    Tensor a = Rand(kU8, Shape{m, k}, 0, 255, 1), b = Rand(kI8, Shape{k, n}, wlo, whi, 2);
    auto in = qlinear_inputs(a, b, false);
    std::vector<bool> consts = {false, true, true, true, true, true, true, true};
    double t[2];
    for (Variant v : {Variant::kFast, Variant::kPortable}) {
      ScopedVariant sv(v);
      t[v == Variant::kFast ? 0 : 1] =
          TimeNode("QLinearMatMul", {}, in, consts, Tensor::Meta(kU8, Shape{m, n}), 21);
    }
    report(std::string("MatMul ") + what, ops, f32, t[0], t[1]);
  }
  struct Layer {
    const char* what;
    int ci, co, hw, k, stride, group;
  };
  const Layer layers[] = {{"ResNet-18 conv2 3x3 64 56^2", 64, 64, 56, 3, 1, 1},
                          {"ResNet-18 conv3 3x3 128 28^2", 128, 128, 28, 3, 1, 1},
                          {"ResNet-18 conv4 3x3 256 14^2", 256, 256, 14, 3, 1, 1},
                          {"ResNet-18 conv5 3x3 512 7^2", 512, 512, 7, 3, 1, 1},
                          {"MobileNetV2 1x1 16->96 112^2", 16, 96, 112, 1, 1, 1},
                          {"MobileNetV2 1x1 96->24 56^2", 96, 24, 56, 1, 1, 1},
                          {"MobileNetV2 1x1 160->960 7^2", 160, 960, 7, 1, 1, 1},
                          {"MobileNetV2 dw 3x3 144 56^2", 144, 144, 56, 3, 1, 144}};
  for (const Layer& l : layers) {
    const int o = (l.hw - 1) / l.stride + 1, cg = l.ci / l.group;
    const double ops = 2.0 * l.co * cg * l.k * l.k * o * o;
    Attributes at;
    const int64_t p = l.k / 2;
    at.Set("pads", testing::AttrInts({p, p, p, p}));
    at.Set("strides", testing::AttrInts({l.stride, l.stride}));
    at.Set("group", testing::AttrInt(l.group));
    const double f32 =
        TimeNode("Conv", at,
                 {Rand(DataType::kFloat, Shape{1, l.ci, l.hw, l.hw}, -1, 1, 1),
                  Rand(DataType::kFloat, Shape{l.co, cg, l.k, l.k}, -1, 1, 2),
                  Rand(DataType::kFloat, Shape{l.co}, -1, 1, 3)},
                 {false, true, true}, Tensor::Meta(DataType::kFloat, Shape{1, l.co, o, o}), 13);
    auto in = qlinear_inputs(Rand(kU8, Shape{1, l.ci, l.hw, l.hw}, 0, 255, 1),
                             Rand(kI8, Shape{l.co, cg, l.k, l.k}, wlo, whi, 2), true);
    std::vector<bool> consts(in.size(), true);
    consts[0] = false;
    double t[2];
    for (Variant v : {Variant::kFast, Variant::kPortable}) {
      ScopedVariant sv(v);
      t[v == Variant::kFast ? 0 : 1] =
          TimeNode("QLinearConv", at, in, consts, Tensor::Meta(kU8, Shape{1, l.co, o, o}), 21);
    }
    report(std::string("Conv ") + l.what, ops, f32, t[0], t[1]);
  }
}

}  // namespace
}  // namespace outpost
