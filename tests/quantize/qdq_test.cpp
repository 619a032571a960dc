// quantize/src pieces: BatchNorm folding against the engine's own BatchNormalization, the QDQ
// rewrite's arithmetic (scales, zero points, int32 bias scale = x_scale * w_scale), thresholds.
#include "qdq.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>

#include "calibrate.h"
#include "outpost/engine/session.h"
#include "samples.h"

namespace outpost::quantize {
namespace {
namespace fs = std::filesystem;

fs::path Models() {
  const char* src = std::getenv("OUTPOST_SOURCE_DIR");
  return fs::path(src ? src : ".") / "tests" / "models";
}

std::vector<float> Floats(const onnx::TensorProto& t) {
  int64_t n = 1;
  for (auto d : t.dims()) n *= d;
  std::vector<float> v(n);
  if (t.has_raw_data())
    std::memcpy(v.data(), t.raw_data().data(), n * sizeof(float));
  else
    std::copy(t.float_data().begin(), t.float_data().end(), v.begin());
  return v;
}

template <typename T>
std::vector<T> Raw(const onnx::TensorProto& t) {
  std::vector<T> v(t.raw_data().size() / sizeof(T));
  std::memcpy(v.data(), t.raw_data().data(), t.raw_data().size());
  return v;
}

const onnx::TensorProto& Init(const onnx::ModelProto& m, const std::string& name) {
  for (const auto& t : m.graph().initializer())
    if (t.name() == name) return t;
  ADD_FAILURE() << "no initializer " << name;
  static onnx::TensorProto none;
  return none;
}

const onnx::NodeProto* Producer(const onnx::ModelProto& m, const std::string& value) {
  for (const auto& n : m.graph().node())
    for (const auto& o : n.output())
      if (o == value) return &n;
  return nullptr;
}

std::unique_ptr<engine::Session> Load(const onnx::ModelProto& m) {
  std::string bytes;
  m.SerializeToString(&bytes);
  auto s = engine::Session::LoadFromBytes(bytes, Models().string(), {});
  EXPECT_TRUE(s.ok()) << s.status().ToString();
  return s.ok() ? std::move(s).value() : nullptr;
}

TEST(FoldBatchNorms, MobileNetMatchesTheUnfoldedModel) {
  auto m = ReadModel((Models() / "quant" / "digits_mobilenet.onnx").string());
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  onnx::ModelProto folded = *m;
  auto n = FoldBatchNorms(&folded);
  ASSERT_TRUE(n.ok()) << n.status().ToString();
  EXPECT_EQ(*n, 9);
  for (const auto& node : folded.graph().node()) EXPECT_NE(node.op_type(), "BatchNormalization");
  // The BatchNorm statistics are gone from the file, not just unused.
  for (const auto& t : folded.graph().initializer())
    EXPECT_EQ(t.name().find("running_mean"), std::string::npos) << t.name();
  auto a = Load(*m), b = Load(folded);
  ASSERT_TRUE(a && b);
  for (const char* f : {"0000.npy", "0101.npy", "0449.npy"}) {
    auto x = engine::ReadTensorFile((Models() / "quant" / "digits32" / "test" / f).string());
    ASSERT_TRUE(x.ok());
    auto ya = a->Run({{"input", *x}}), yb = b->Run({{"input", *x}});
    ASSERT_TRUE(ya.ok() && yb.ok());
    const float* pa = (*ya)[0].data<float>();
    const float* pb = (*yb)[0].data<float>();
    for (int64_t i = 0; i < (*ya)[0].numel(); ++i)
      EXPECT_NEAR(pb[i], pa[i], 1e-4 + 1e-3 * std::fabs(pa[i])) << f << " logit " << i;
  }
}

// Quantizes digits_cnn with hand-set activation ranges and checks the arithmetic in the file.
void CheckQdq(bool per_channel, DataType acts) {
  auto m = ReadModel((Models() / "digits_cnn.onnx").string());
  ASSERT_TRUE(m.ok());
  const std::vector<Target> targets = FindTargets(&*m, {});
  ASSERT_EQ(targets.size(), 4u);  // 2 Conv, 2 Gemm
  std::map<std::string, Range> ranges;
  for (const auto& v : ActivationValues(targets)) ranges[v] = {-1.f, 3.f};
  QdqOptions o;
  o.per_channel = per_channel;
  o.activations = acts;
  auto q = WriteQdq(*m, targets, ranges, o);
  ASSERT_TRUE(q.ok()) << q.status().ToString();
  const float want_xs = 4.f / 255.f;
  const int want_zp = acts == DataType::kUInt8 ? 64 : -64;  // round(qmin + 1 / (4 / 255))
  for (const Target& t : targets) {
    const onnx::NodeProto* node = nullptr;
    for (const auto& n : q->graph().node())
      if (n.name() == t.node) node = &n;
    ASSERT_NE(node, nullptr);
    // Activation: DQ(Q(x)) with the range's scale and zero point.
    const onnx::NodeProto* adq = Producer(*q, node->input(0));
    ASSERT_TRUE(adq && adq->op_type() == "DequantizeLinear") << t.node;
    EXPECT_FLOAT_EQ(Floats(Init(*q, adq->input(1)))[0], want_xs);
    const onnx::TensorProto& zp = Init(*q, adq->input(2));
    if (acts == DataType::kUInt8) {
      EXPECT_EQ(zp.data_type(), onnx::TensorProto::UINT8);
      EXPECT_EQ(Raw<uint8_t>(zp)[0], want_zp);
    } else {
      EXPECT_EQ(zp.data_type(), onnx::TensorProto::INT8);
      EXPECT_EQ(Raw<int8_t>(zp)[0], want_zp);
    }
    const onnx::NodeProto* aq = Producer(*q, adq->input(0));
    ASSERT_TRUE(aq && aq->op_type() == "QuantizeLinear");
    // Weight: int8, symmetric, within half a step of the float weight.
    const onnx::NodeProto* wdq = Producer(*q, node->input(1));
    ASSERT_TRUE(wdq && wdq->op_type() == "DequantizeLinear");
    const onnx::TensorProto& wq = Init(*q, wdq->input(0));
    ASSERT_EQ(wq.data_type(), onnx::TensorProto::INT8);
    const std::vector<int8_t> w8 = Raw<int8_t>(wq);
    const std::vector<float> ws = Floats(Init(*q, wdq->input(1)));
    const std::vector<float> w = Floats(Init(*m, t.weight));
    ASSERT_EQ(w8.size(), w.size());
    const int64_t channels = wq.dims(t.weight_axis);
    ASSERT_EQ(ws.size(), per_channel ? static_cast<size_t>(channels) : 1u);
    int64_t inner = 1;
    for (int d = t.weight_axis + 1; d < wq.dims_size(); ++d) inner *= wq.dims(d);
    for (size_t i = 0; i < w.size(); ++i) {
      const float s = ws[per_channel ? (i / inner) % channels : 0];
      ASSERT_NEAR(w8[i] * s, w[i], s / 2 + 1e-7) << t.node << " weight " << i;
      ASSERT_GE(w8[i], -127);
    }
    // Bias: int32 with scale x_scale * w_scale, zero point 0 (absent).
    ASSERT_FALSE(t.bias.empty());
    const onnx::NodeProto* bdq = Producer(*q, node->input(2));
    ASSERT_TRUE(bdq && bdq->op_type() == "DequantizeLinear");
    EXPECT_EQ(bdq->input_size(), 2);
    const onnx::TensorProto& bq = Init(*q, bdq->input(0));
    ASSERT_EQ(bq.data_type(), onnx::TensorProto::INT32);
    const std::vector<float> bs = Floats(Init(*q, bdq->input(1)));
    ASSERT_EQ(bs.size(), ws.size());
    for (size_t c = 0; c < bs.size(); ++c) EXPECT_FLOAT_EQ(bs[c], want_xs * ws[c]);
    const std::vector<int32_t> b32 = Raw<int32_t>(bq);
    const std::vector<float> b = Floats(Init(*m, t.bias));
    for (size_t i = 0; i < b.size(); ++i) {
      const float s = bs[per_channel ? i : 0];
      EXPECT_NEAR(b32[i] * s, b[i], s / 2 + 1e-7);
    }
    // The float weight and bias are gone.
    for (const auto& init : q->graph().initializer()) {
      EXPECT_NE(init.name(), t.weight);
      EXPECT_NE(init.name(), t.bias);
    }
  }
  // The file still runs, and gives the same class as float on a sample (ranges cover it).
  auto s = Load(*q);
  ASSERT_TRUE(s);
}

TEST(WriteQdq, PerTensorInt8) { CheckQdq(false, DataType::kInt8); }
TEST(WriteQdq, PerChannelInt8) { CheckQdq(true, DataType::kInt8); }
TEST(WriteQdq, PerTensorUint8) { CheckQdq(false, DataType::kUInt8); }

TEST(WriteQdq, ReluAfterConvIsWhereTheOutputIsRequantized) {
  auto m = ReadModel((Models() / "digits_cnn.onnx").string());
  ASSERT_TRUE(m.ok());
  const std::vector<Target> targets = FindTargets(&*m, {});
  ASSERT_EQ(targets.size(), 4u);
  const onnx::NodeProto* relu = nullptr;
  for (const auto& n : m->graph().node())
    if (n.op_type() == "Relu" && n.input(0) == targets[0].output) relu = &n;
  ASSERT_NE(relu, nullptr);
  EXPECT_EQ(targets[0].requant, relu->output(0));
  EXPECT_TRUE(targets[3].requant.empty());  // the last Gemm writes the graph output: float
}

// MobileNetV2's ReLU6 is a Clip: it is fused into the integer convolution, so the requantization
// goes after it (a Q/DQ pair between the two would leave the Clip in float).
TEST(WriteQdq, ClipAfterConvIsWhereTheOutputIsRequantized) {
  auto m = ReadModel((Models() / "mobilenet_v2.onnx").string());
  ASSERT_TRUE(m.ok());
  const std::vector<Target> targets = FindTargets(&*m, {});
  int clips = 0;
  for (const Target& t : targets) {
    for (const auto& n : m->graph().node()) {
      if (n.op_type() != "Clip" || n.input(0) != t.output) continue;
      ++clips;
      EXPECT_EQ(t.requant, n.output(0)) << t.node;
    }
  }
  EXPECT_GE(clips, 30);  // 35 ReLU6 in MobileNetV2
}

TEST(FindTargets, ExcludeByNameAndOpType) {
  auto m = ReadModel((Models() / "digits_cnn.onnx").string());
  ASSERT_TRUE(m.ok());
  const std::vector<Target> all = FindTargets(&*m, {});
  ASSERT_EQ(all.size(), 4u);
  auto by_type = FindTargets(&*m, {"Gemm"});
  ASSERT_EQ(by_type.size(), 2u);
  for (const auto& t : by_type) EXPECT_EQ(t.op_type, "Conv");
  auto by_name = FindTargets(&*m, {all[1].node});
  ASSERT_EQ(by_name.size(), 3u);
  for (const auto& t : by_name) EXPECT_NE(t.node, all[1].node);
}

TEST(Thresholds, Percentile) {
  std::vector<double> h(100, 1.0);  // uniform on [0, 100)
  EXPECT_FLOAT_EQ(PercentileThreshold(h, 1.0, 99.0), 99.f);
  EXPECT_FLOAT_EQ(PercentileThreshold(h, 0.5, 50.0), 25.f);
  EXPECT_FLOAT_EQ(PercentileThreshold(h, 1.0, 100.0), 100.f);
}

TEST(Thresholds, EntropyClipsALoneOutlier) {
  // Mass on the first 300 bins, decaying; one count at the far end.
  std::vector<double> h(kHistogramBins, 0.0);
  for (int i = 0; i < 300; ++i) h[i] = 1000.0 * std::exp(-i / 60.0) + 1;
  h[kHistogramBins - 1] = 1;
  const float t = EntropyThreshold(h, 1.0, 128);
  EXPECT_GE(t, 128.f);
  EXPECT_LE(t, 400.f);  // far below the outlier at 2047
  // Without the outlier and with mass everywhere, nothing should be clipped much.
  std::vector<double> flat(kHistogramBins, 5.0);
  EXPECT_GE(EntropyThreshold(flat, 1.0, 128), 0.9f * kHistogramBins);
}

// Several inputs: one subfolder per sample with <input name>.npy, taken in sorted order.
TEST(LoadSamples, MultiInputFoldersInSortedOrder) {
  const fs::path dir = fs::temp_directory_path() / ("outpost_samples_" + std::to_string(getpid()));
  fs::remove_all(dir);
  std::vector<engine::ValueInfo> inputs(2);
  inputs[0].name = "a", inputs[0].dtype = DataType::kFloat, inputs[0].dims = {-1, 3};
  inputs[1].name = "b", inputs[1].dtype = DataType::kFloat, inputs[1].dims = {1, 2};
  for (auto& in : inputs) in.dim_names = {"", ""};
  for (int k : {2, 0, 1}) {  // created out of order
    const fs::path sub = dir / ("s" + std::to_string(k));
    fs::create_directories(sub);
    auto a = Tensor::Allocate(DataType::kFloat, Shape{1, 3});
    auto b = Tensor::Allocate(DataType::kFloat, Shape{1, 2});
    ASSERT_TRUE(a.ok() && b.ok());
    a->data<float>()[0] = static_cast<float>(k);
    ASSERT_TRUE(engine::WriteNpy((sub / "a.npy").string(), *a).ok());
    ASSERT_TRUE(engine::WriteNpy((sub / "b.npy").string(), *b).ok());
  }
  auto s = LoadSamples(dir.string(), inputs, "calibration");
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  ASSERT_EQ(s->size(), 3u);
  for (int k = 0; k < 3; ++k) {
    ASSERT_EQ((*s)[k].size(), 2u);
    EXPECT_EQ((*s)[k][0].first, "a");
    EXPECT_EQ((*s)[k][0].second.data<float>()[0], static_cast<float>(k));
    EXPECT_EQ((*s)[k][1].first, "b");
  }
  // A sample without one of the inputs is named.
  fs::remove(dir / "s1" / "b.npy");
  s = LoadSamples(dir.string(), inputs, "calibration");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("lacks 'b.npy'"), std::string::npos) << s.status().message();
  // A fixed dimension that does not match.
  inputs[1].dims = {1, 5};
  fs::remove_all(dir / "s1");
  s = LoadSamples(dir.string(), inputs, "calibration");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("float32[1,2] does not match model input 'b'"),
            std::string::npos)
      << s.status().message();
  fs::remove_all(dir);
}

}  // namespace
}  // namespace outpost::quantize
