// Conv + activation fusion and the packed-weight convolution, against a naive convolution
// written here (the expected values never come from the runtime itself).
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <thread>

#include "model_builder.h"

namespace outpost::engine {
namespace {

using enginetest::AddInitializer;
using enginetest::ModelBuilder;

struct ConvCase {
  int64_t n = 1, c = 3, h = 9, w = 9, m = 13, k = 3, stride = 1, pad = 1, group = 1;
  int64_t oh() const { return (h + 2 * pad - k) / stride + 1; }
  int64_t ow() const { return (w + 2 * pad - k) / stride + 1; }
};

std::vector<float> Pattern(size_t n, float scale, int seed) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i)
    v[i] = scale * static_cast<float>(((i * 7919 + seed * 104729) % 23) - 11) / 11.f;
  return v;
}

// y = clamp(conv2d(x, w) + b) by the definition, in double.
std::vector<float> NaiveConv(const ConvCase& p, const std::vector<float>& x,
                             const std::vector<float>& w, const std::vector<float>& b, float lo,
                             float hi) {
  const int64_t cg = p.c / p.group, mg = p.m / p.group, oh = p.oh(), ow = p.ow();
  std::vector<float> y(p.n * p.m * oh * ow);
  for (int64_t n = 0; n < p.n; ++n)
    for (int64_t m = 0; m < p.m; ++m)
      for (int64_t i = 0; i < oh; ++i)
        for (int64_t j = 0; j < ow; ++j) {
          double acc = b[m];
          const int64_t g = m / mg;
          for (int64_t c = 0; c < cg; ++c)
            for (int64_t u = 0; u < p.k; ++u)
              for (int64_t v = 0; v < p.k; ++v) {
                const int64_t ih = i * p.stride - p.pad + u, iw = j * p.stride - p.pad + v;
                if (ih < 0 || ih >= p.h || iw < 0 || iw >= p.w) continue;
                acc += static_cast<double>(x[((n * p.c + g * cg + c) * p.h + ih) * p.w + iw]) *
                       w[((m * cg + c) * p.k + u) * p.k + v];
              }
          y[((n * p.m + m) * oh + i) * ow + j] =
              std::min(std::max(static_cast<float>(acc), lo), hi);
        }
  return y;
}

// x -> Conv -> act -> y, with `act` one of "Relu", "Clip", "" (none).
ModelBuilder ConvModel(const ConvCase& p, const std::string& act, int opset = 17) {
  ModelBuilder b(opset);
  b.Input("x", {p.n, p.c, p.h, p.w});
  AddInitializer(b.g, "W", {p.m, p.c / p.group, p.k, p.k},
                 Pattern(p.m * p.c / p.group * p.k * p.k, 0.5f, 1));
  AddInitializer(b.g, "B", {p.m}, Pattern(p.m, 0.25f, 2));
  auto* conv = b.Node("Conv", {"x", "W", "B"}, {act.empty() ? "y" : "c"}, "conv");
  auto attr_ints = [&](const char* name, std::vector<int64_t> v) {
    auto* a = conv->add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::INTS);
    for (int64_t x : v) a->add_ints(x);
  };
  attr_ints("pads", {p.pad, p.pad, p.pad, p.pad});
  attr_ints("strides", {p.stride, p.stride});
  auto* g = conv->add_attribute();
  g->set_name("group");
  g->set_type(onnx::AttributeProto::INT);
  g->set_i(p.group);
  if (act == "Relu") b.Node("Relu", {"c"}, {"y"}, "act");
  if (act == "Clip") {
    AddInitializer(b.g, "lo", {}, {-0.3f});
    AddInitializer(b.g, "hi", {}, {0.4f});
    b.Node("Clip", {"c", "lo", "hi"}, {"y"}, "act");
  }
  b.Output("y");
  return b;
}

void ExpectNear(const Tensor& got, const std::vector<float>& want) {
  ASSERT_EQ(got.numel(), static_cast<int64_t>(want.size()));
  for (size_t i = 0; i < want.size(); ++i)
    ASSERT_NEAR(got.data<float>()[i], want[i], 1e-4f + 1e-4f * std::fabs(want[i])) << "at " << i;
}

Tensor Input(const ConvCase& p, int seed) {
  Tensor t = Tensor::Allocate(DataType::kFloat, Shape{p.n, p.c, p.h, p.w}).value();
  auto v = Pattern(t.numel(), 1.f, seed);
  std::copy(v.begin(), v.end(), t.data<float>());
  return t;
}

void CheckCase(const ConvCase& p, const std::string& act, float lo, float hi) {
  auto s = ConvModel(p, act).Load();
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  const auto& placement = (*s)->report().placement;
  ASSERT_EQ(placement.size(), 1u) << "the activation should be fused into the Conv";
  EXPECT_EQ(placement[0].op_type, act.empty() ? "Conv" : "Conv+" + act);
  Tensor x = Input(p, 3);
  std::vector<float> xv(x.data<float>(), x.data<float>() + x.numel());
  auto want = NaiveConv(p, xv, Pattern(p.m * p.c / p.group * p.k * p.k, 0.5f, 1),
                        Pattern(p.m, 0.25f, 2), lo, hi);
  for (int rep = 0; rep < 2; ++rep) {  // the second run uses the cached packed weights
    auto out = (*s)->Run({{"x", x}});
    ASSERT_TRUE(out.ok()) << out.status().ToString();
    ExpectNear((*out)[0], want);
  }
}

constexpr float kInf = std::numeric_limits<float>::infinity();

TEST(Fusion, ConvReluMatchesDefinition) { CheckCase(ConvCase{}, "Relu", 0.f, kInf); }

TEST(Fusion, ConvClipMatchesDefinition) { CheckCase(ConvCase{}, "Clip", -0.3f, 0.4f); }

TEST(Fusion, PlainConvShapesAcrossTileEdges) {
  // Output channels and positions that leave partial tiles; strided, grouped, batched, 1x1.
  CheckCase(ConvCase{.n = 2, .c = 4, .h = 11, .w = 7, .m = 25, .k = 3, .stride = 2, .pad = 1}, "",
            -kInf, kInf);
  CheckCase(ConvCase{.c = 6, .h = 8, .w = 8, .m = 10, .k = 3, .stride = 1, .pad = 0, .group = 2},
            "Relu", 0.f, kInf);
  CheckCase(ConvCase{.c = 20, .h = 6, .w = 6, .m = 40, .k = 1, .stride = 1, .pad = 0}, "Relu", 0.f,
            kInf);
}

TEST(Fusion, DepthwiseConvs) {
  CheckCase(
      ConvCase{.c = 19, .h = 13, .w = 21, .m = 19, .k = 3, .stride = 1, .pad = 1, .group = 19},
      "Clip", -0.3f, 0.4f);
  CheckCase(
      ConvCase{.n = 2, .c = 8, .h = 12, .w = 35, .m = 8, .k = 3, .stride = 2, .pad = 1, .group = 8},
      "Relu", 0.f, kInf);
  CheckCase(ConvCase{.c = 4, .h = 9, .w = 9, .m = 4, .k = 5, .stride = 2, .pad = 2, .group = 4}, "",
            -kInf, kInf);
}

TEST(Fusion, NotFusedWhenTheConvOutputIsAlsoUsedElsewhere) {
  ConvCase p;
  ModelBuilder b = ConvModel(p, "Relu");
  b.Output("c");  // the pre-activation value is a graph output too
  auto s = b.Load();
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  ASSERT_EQ((*s)->report().placement.size(), 2u);
  EXPECT_EQ((*s)->report().placement[0].op_type, "Conv");
  auto out = (*s)->Run({{"x", Input(p, 4)}});
  ASSERT_TRUE(out.ok());
  const Tensor& y = (*out)[0];
  const Tensor& c = (*out)[1];
  for (int64_t i = 0; i < y.numel(); ++i)
    ASSERT_EQ(y.data<float>()[i], std::max(c.data<float>()[i], 0.f));
}

TEST(Fusion, FusedAndUnfusedSessionsAgree) {
  ConvCase p{.c = 8, .h = 14, .w = 14, .m = 24, .k = 3, .stride = 2, .pad = 1};
  SessionOptions off;
  off.fuse_activations = false;
  auto fused = ConvModel(p, "Clip").Load();
  auto plain = ConvModel(p, "Clip").Load(off);
  ASSERT_TRUE(fused.ok() && plain.ok());
  EXPECT_EQ((*plain)->report().placement.size(), 2u);
  Tensor x = Input(p, 5);
  auto a = (*fused)->Run({{"x", x}});
  auto b = (*plain)->Run({{"x", x}});
  ASSERT_TRUE(a.ok() && b.ok());
  std::vector<float> want((*b)[0].data<float>(), (*b)[0].data<float>() + (*b)[0].numel());
  ExpectNear((*a)[0], want);
}

TEST(Fusion, ConcurrentRunsShareThePackedWeights) {
  ConvCase p{.c = 16, .h = 10, .w = 10, .m = 30, .k = 3};
  auto s = ConvModel(p, "Relu").Load();
  ASSERT_TRUE(s.ok());
  std::atomic<int> bad{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 6; ++t) {
    threads.emplace_back([&, t] {
      Tensor x = Input(p, 10 + t);
      std::vector<float> xv(x.data<float>(), x.data<float>() + x.numel());
      auto want = NaiveConv(p, xv, Pattern(p.m * p.c * p.k * p.k, 0.5f, 1), Pattern(p.m, 0.25f, 2),
                            0.f, kInf);
      for (int rep = 0; rep < 20; ++rep) {
        auto out = (*s)->Run({{"x", x}});
        if (!out.ok()) {
          ++bad;
          continue;
        }
        for (size_t i = 0; i < want.size(); ++i)
          if (std::fabs((*out)[0].data<float>()[i] - want[i]) >
              1e-4f + 1e-4f * std::fabs(want[i])) {
            ++bad;
            break;
          }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(bad.load(), 0);
}

// MatMul with constant B runs on packed weights: check shapes with partial row and column
// blocks, a single row, and a batched A folded into rows, against the definition.
TEST(PackedKernels, MatMulWithConstantWeights) {
  struct Case {
    std::vector<int64_t> a;
    int64_t n;
  };
  for (const Case& c : {Case{{13, 37}, 70}, Case{{1, 64}, 1000}, Case{{2, 5, 19}, 33}}) {
    const int64_t k = c.a.back();
    int64_t rows = 1;
    for (size_t i = 0; i + 1 < c.a.size(); ++i) rows *= c.a[i];
    ModelBuilder b;
    b.Input("x", c.a);
    const auto w = Pattern(k * c.n, 0.5f, 7);
    AddInitializer(b.g, "W", {k, c.n}, w);
    b.Node("MatMul", {"x", "W"}, {"y"});
    b.Output("y");
    auto s = b.Load();
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    Tensor x = Tensor::Allocate(DataType::kFloat, Shape::From(c.a).value()).value();
    const auto xv = Pattern(x.numel(), 1.f, 8);
    std::copy(xv.begin(), xv.end(), x.data<float>());
    std::vector<float> want(rows * c.n);
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t j = 0; j < c.n; ++j) {
        double acc = 0;
        for (int64_t q = 0; q < k; ++q) acc += static_cast<double>(xv[i * k + q]) * w[q * c.n + j];
        want[i * c.n + j] = static_cast<float>(acc);
      }
    for (int rep = 0; rep < 2; ++rep) {
      auto out = (*s)->Run({{"x", x}});
      ASSERT_TRUE(out.ok()) << out.status().ToString();
      ExpectNear((*out)[0], want);
    }
  }
}

TEST(Fusion, ModelsCannotSetTheReservedAttributes) {
  ModelBuilder b = ConvModel(ConvCase{}, "");
  auto* a = b.g->mutable_node(0)->add_attribute();
  a->set_name("_outpost_clamp_min");
  a->set_type(onnx::AttributeProto::FLOAT);
  a->set_f(0.f);
  auto s = b.Load();
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), Code::kInvalidModel);
  EXPECT_NE(s.status().message().find("reserved"), std::string::npos) << s.status().ToString();
}

}  // namespace
}  // namespace outpost::engine
