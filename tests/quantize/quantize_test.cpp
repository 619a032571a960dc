// outpost::quantize end to end on the committed digits models and splits
// (tests/models/quant/README.md). Accuracy is always measured by loading the *written* file in a
// fresh engine session and comparing its top-1 with the committed labels; the FP32 reference
// accuracy is torch's, recorded in figures.json by make_quant_data.py.
#include "outpost/quantize/quantize.h"

#include <gtest/gtest.h>
#include <onnx/onnx_pb.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "outpost/engine/session.h"

namespace outpost::quantize {
namespace {
namespace fs = std::filesystem;

fs::path Src() {
  const char* src = std::getenv("OUTPOST_SOURCE_DIR");
  return fs::path(src ? src : ".");
}
fs::path Quant() { return Src() / "tests" / "models" / "quant"; }

double Fp32Accuracy(const std::string& key) {
  std::ifstream f(Quant() / "figures.json");
  return nlohmann::json::parse(f).at(key).get<double>() * 100.0;
}

class TempDir {
 public:
  TempDir() {
    path_ = fs::temp_directory_path() /
            ("outpost_quantize_test_" + std::to_string(getpid()) + "_" + std::to_string(n_++));
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  fs::path operator/(const std::string& s) const { return path_ / s; }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
  static inline int n_ = 0;
};

// Top-1 accuracy (percent) of a model file on a test folder, read independently of quantize/.
double Accuracy(const fs::path& model, const fs::path& dir) {
  auto s = engine::Session::Load(model.string(), {});
  EXPECT_TRUE(s.ok()) << s.status().ToString();
  if (!s.ok()) return -1;
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().extension() == ".npy") files.push_back(e.path());
  std::sort(files.begin(), files.end());
  std::ifstream lf(dir / "labels.txt");
  int correct = 0;
  for (const fs::path& f : files) {
    int label = -1;
    lf >> label;
    auto x = engine::ReadTensorFile(f.string());
    EXPECT_TRUE(x.ok());
    auto y = (*s)->Run({{(*s)->inputs()[0].name, *x}});
    EXPECT_TRUE(y.ok()) << y.status().ToString();
    if (!y.ok()) return -1;
    const float* p = (*y)[0].data<float>();
    int best = 0;
    for (int j = 1; j < (*y)[0].dim(1); ++j)
      if (p[j] > p[best]) best = j;
    correct += best == label;
  }
  EXPECT_EQ(files.size(), 450u);
  return 100.0 * correct / files.size();
}

struct Case {
  const char* model;  // relative to tests/models
  const char* data;   // digits8 or digits32
  const char* figure;
};
const Case kCnn{"digits_cnn.onnx", "digits8", "digits_cnn_fp32_test_accuracy"};
const Case kMobileNet{"quant/digits_mobilenet.onnx", "digits32",
                      "digits_mobilenet_fp32_test_accuracy"};

Options Opts(const Case& c) {
  Options o;
  o.calibration_dir = (Quant() / c.data / "calib").string();
  o.eval_dir = (Quant() / c.data / "test").string();
  o.labels_file = (Quant() / c.data / "test" / "labels.txt").string();
  return o;
}

std::map<std::string, int> OpCounts(const fs::path& model) {
  onnx::ModelProto m;
  std::ifstream f(model, std::ios::binary);
  EXPECT_TRUE(m.ParseFromIstream(&f));
  std::map<std::string, int> ops;
  for (const auto& n : m.graph().node()) ++ops[n.op_type()];
  return ops;
}

void QuantizeAndCheck(const Case& c, Options o, double max_size_ratio) {
  TempDir tmp;
  const fs::path in = Src() / "tests" / "models" / c.model;
  const fs::path out = tmp / "q.onnx";
  auto r = QuantizeModel(in.string(), out.string(), o);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_TRUE(r->written);
  ASSERT_TRUE(fs::exists(out));
  const double fp32 = Fp32Accuracy(c.figure);
  // Our float run agrees with torch's figure (same model, same split).
  EXPECT_NEAR(Accuracy(in, Quant() / c.data / "test"), fp32, 0.23);  // one sample in 450
  const double q = Accuracy(out, Quant() / c.data / "test");
  EXPECT_GE(q, fp32 - 0.5) << "quantized " << q << "% vs FP32 " << fp32 << "%";
  // The report's figures are the written file's.
  EXPECT_NEAR(r->quant_accuracy, q, 1e-9);
  EXPECT_EQ(r->quant_bytes, fs::file_size(out));
  EXPECT_EQ(r->float_bytes, fs::file_size(in));
  if (max_size_ratio > 0) {
    EXPECT_LE(static_cast<double>(fs::file_size(out)), max_size_ratio * fs::file_size(in));
  }
  const auto ops = OpCounts(out);
  EXPECT_EQ(ops.count("BatchNormalization"), 0u);
  EXPECT_GT(ops.at("QuantizeLinear"), 0);
  EXPECT_GT(ops.at("DequantizeLinear"), ops.at("QuantizeLinear"));
  const int gemms = ops.count("Gemm") ? ops.at("Gemm") : 0;
  EXPECT_EQ(r->layers.size(), static_cast<size_t>(ops.at("Conv") + gemms));
  for (const auto& l : r->layers) EXPECT_GT(l.snr_db, 15.0) << l.node;
}

TEST(QuantizeDigits, CnnInt8PerTensor) { QuantizeAndCheck(kCnn, Opts(kCnn), 0.30); }

TEST(QuantizeDigits, CnnInt8PerChannelUint8) {
  Options o = Opts(kCnn);
  o.per_channel = true;
  o.activations = DataType::kUInt8;
  QuantizeAndCheck(kCnn, o, 0);  // per-channel scales cost ~2% of this small file: no size bound
}

TEST(QuantizeDigits, MobileNetInt8FoldsBatchNorm) {
  Options o = Opts(kMobileNet);
  TempDir tmp;
  auto r = QuantizeModel((Src() / "tests/models" / kMobileNet.model).string(),
                         (tmp / "q.onnx").string(), o);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->folded_batchnorms, 9);
  EXPECT_EQ(r->quantized_nodes, 10);  // 9 Conv + the classifier Gemm
  QuantizeAndCheck(kMobileNet, o, 0.30);
}

TEST(QuantizeDigits, MobileNetPerChannel) {
  Options o = Opts(kMobileNet);
  o.per_channel = true;
  QuantizeAndCheck(kMobileNet, o, 0);
}

TEST(QuantizeDigits, CnnEntropy) {
  Options o = Opts(kCnn);
  o.method = Method::kEntropy;
  QuantizeAndCheck(kCnn, o, 0.30);
}

// KL-divergence thresholds clip this model's early depthwise activations hard (about 8 points
// lost when every layer is quantized); --auto-exclude must find the few layers to keep in float.
TEST(QuantizeGate, MobileNetEntropyAutoExcludeIsMixedPrecision) {
  TempDir tmp;
  Options o = Opts(kMobileNet);
  o.method = Method::kEntropy;
  o.max_accuracy_drop = 0.5;
  const fs::path in = Src() / "tests/models" / kMobileNet.model;
  auto gate = QuantizeModel(in.string(), (tmp / "q.onnx").string(), o);
  ASSERT_TRUE(gate.ok()) << gate.status().ToString();
  ASSERT_FALSE(gate->written) << "entropy alone passed; this test no longer tests auto-exclude";
  o.auto_exclude = true;
  auto r = QuantizeModel(in.string(), (tmp / "q.onnx").string(), o);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_TRUE(r->written);
  EXPECT_GE(r->auto_excluded.size(), 1u);
  EXPECT_LE(r->auto_excluded.size(), 5u);
  EXPECT_EQ(r->quantized_nodes, 10 - static_cast<int>(r->auto_excluded.size()));
  EXPECT_GE(Accuracy(tmp / "q.onnx", Quant() / kMobileNet.data / "test"),
            Fp32Accuracy(kMobileNet.figure) - 0.5);
}

TEST(QuantizeDigits, MobileNetPercentile) {
  Options o = Opts(kMobileNet);
  o.method = Method::kPercentile;
  QuantizeAndCheck(kMobileNet, o, 0.30);
}

TEST(QuantizeDigits, ExcludeKeepsThoseNodesInFloat) {
  Options o = Opts(kCnn);
  o.exclude = {"Gemm"};
  TempDir tmp;
  auto r =
      QuantizeModel((Src() / "tests/models" / kCnn.model).string(), (tmp / "q.onnx").string(), o);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->quantized_nodes, 2);
  for (const auto& l : r->layers) EXPECT_EQ(l.quantized, l.op_type == "Conv") << l.node;
  // Float Gemm weights stay float initializers in the file.
  onnx::ModelProto m;
  std::ifstream f(tmp / "q.onnx", std::ios::binary);
  ASSERT_TRUE(m.ParseFromIstream(&f));
  for (const auto& n : m.graph().node()) {
    if (n.op_type() != "Gemm") continue;
    bool float_weight = false;
    for (const auto& t : m.graph().initializer())
      float_weight |= t.name() == n.input(1) && t.data_type() == onnx::TensorProto::FLOAT;
    EXPECT_TRUE(float_weight) << n.name();
  }
}

// A calibration set from another distribution (inputs x 40) gives ranges far too wide: the
// gate must catch the damage.
fs::path BadCalibration(const TempDir& tmp) {
  const fs::path dir = tmp / "calib_x40";
  fs::create_directories(dir);
  for (const auto& e : fs::directory_iterator(Quant() / "digits8" / "calib")) {
    auto t = engine::ReadTensorFile(e.path().string());
    EXPECT_TRUE(t.ok());
    for (float& v : t->span<float>()) v *= 40.f;
    EXPECT_TRUE(engine::WriteNpy((dir / e.path().filename()).string(), *t).ok());
  }
  return dir;
}

TEST(QuantizeGate, FailingGateWritesNothing) {
  TempDir tmp;
  Options o = Opts(kCnn);
  o.calibration_dir = BadCalibration(tmp).string();
  o.max_accuracy_drop = 0.5;
  const fs::path out = tmp / "q.onnx";
  auto r = QuantizeModel((Src() / "tests/models" / kCnn.model).string(), out.string(), o);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_FALSE(r->gate_passed);
  EXPECT_FALSE(r->written);
  EXPECT_FALSE(fs::exists(out));
  EXPECT_FALSE(fs::exists(out.string() + ".tmp"));
  EXPECT_GT(r->float_accuracy - r->quant_accuracy, 0.5);
  EXPECT_NEAR(r->float_accuracy, Fp32Accuracy(kCnn.figure), 0.23);
  EXPECT_NE(r->ToText().find("accuracy gate FAILED"), std::string::npos);
}

TEST(QuantizeGate, AutoExcludeKeepsSensitiveLayersInFloatUntilItPasses) {
  TempDir tmp;
  Options o = Opts(kCnn);
  o.calibration_dir = BadCalibration(tmp).string();
  o.max_accuracy_drop = 0.5;
  o.auto_exclude = true;
  const fs::path out = tmp / "q.onnx";
  auto r = QuantizeModel((Src() / "tests/models" / kCnn.model).string(), out.string(), o);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(r->written);
  ASSERT_FALSE(r->auto_excluded.empty());
  EXPECT_LT(r->auto_excluded.size(), 4u) << "everything in float is not mixed precision";
  EXPECT_EQ(r->quantized_nodes, 4 - static_cast<int>(r->auto_excluded.size()));
  for (const auto& l : r->layers) {
    const bool excluded = std::find(r->auto_excluded.begin(), r->auto_excluded.end(), l.node) !=
                          r->auto_excluded.end();
    EXPECT_EQ(l.quantized, !excluded) << l.node;
  }
  const double q = Accuracy(out, Quant() / "digits8" / "test");
  EXPECT_GE(q, Fp32Accuracy(kCnn.figure) - 0.5);
}

// INT4 block-quantized MLP weights (opset 21). The engine cannot hold 4-bit tensors, so the test
// unpacks the written int4 initializers itself into int8 ones (same DequantizeLinear blocks) and
// measures that file's accuracy.
TEST(QuantizeInt4, MlpBlockedWeightsWithinOnePoint) {
  TempDir tmp;
  Options o = Opts(kCnn);
  o.weight_bits = 4;
  o.block_size = 32;
  const fs::path in = Quant() / "digits_mlp.onnx";
  auto r = QuantizeModel(in.string(), (tmp / "q4.onnx").string(), o);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_TRUE(r->written);
  EXPECT_EQ(r->quantized_nodes, 3);
  onnx::ModelProto m;
  {
    std::ifstream f(tmp / "q4.onnx", std::ios::binary);
    ASSERT_TRUE(m.ParseFromIstream(&f));
  }
  EXPECT_GE(m.ir_version(), 10);
  for (const auto& op : m.opset_import()) {
    if (op.domain().empty()) {
      EXPECT_GE(op.version(), 21);
    }
  }
  int blocked = 0;
  for (const auto& n : m.graph().node()) {
    EXPECT_NE(n.op_type(), "QuantizeLinear") << "int4 is weight-only";
    if (n.op_type() != "DequantizeLinear") continue;
    for (const auto& a : n.attribute())
      if (a.name() == "block_size") {
        EXPECT_EQ(a.i(), 32);
        ++blocked;
      }
  }
  EXPECT_EQ(blocked, 3);
  // Unpack: int4 (22), two per byte, low nibble first, sign-extended.
  int unpacked = 0;
  uint64_t int4_bytes = 0;
  for (auto& t : *m.mutable_graph()->mutable_initializer()) {
    if (t.data_type() != 22) continue;
    int64_t n = 1;
    for (auto d : t.dims()) n *= d;
    const std::string& raw = t.raw_data();
    ASSERT_EQ(static_cast<int64_t>(raw.size()), (n + 1) / 2);
    int4_bytes += raw.size();
    std::string out(n, '\0');
    for (int64_t i = 0; i < n; ++i) {
      int v = (static_cast<uint8_t>(raw[i / 2]) >> (4 * (i % 2))) & 0xF;
      out[i] = static_cast<char>(v >= 8 ? v - 16 : v);
    }
    t.set_data_type(onnx::TensorProto::INT8);
    t.set_raw_data(out);
    ++unpacked;
  }
  EXPECT_EQ(unpacked, 3);
  std::ofstream(tmp / "q8.onnx", std::ios::binary) << m.SerializeAsString();
  const double acc = Accuracy(tmp / "q8.onnx", Quant() / "digits8" / "test");
  const double fp32 = Fp32Accuracy("digits_mlp_fp32_test_accuracy");
  EXPECT_GE(acc, fp32 - 1.0) << "int4 " << acc << "% vs FP32 " << fp32 << "%";
  EXPECT_NEAR(r->quant_accuracy, acc, 1e-9);  // the report measured the same weights
  // The engine runs the packed int4 file itself (unpacked at load): the same accuracy as the
  // test's own unpacking above.
  EXPECT_NEAR(Accuracy(tmp / "q4.onnx", Quant() / "digits8" / "test"), acc, 1e-9);
  // Weights are 4 bits: the 64x256 + 256x128 + 128x10 weights take half their count in bytes.
  EXPECT_EQ(int4_bytes, (64u * 256 + 256 * 128 + 128 * 10) / 2);
  EXPECT_LE(static_cast<double>(fs::file_size(tmp / "q4.onnx")), 0.20 * fs::file_size(in));
}

TEST(QuantizeFp16, MobileNetInFloat16) {
  TempDir tmp;
  Options o = Opts(kMobileNet);
  o.fp16 = true;
  const fs::path in = Quant() / "digits_mobilenet.onnx";
  auto r = QuantizeModel(in.string(), (tmp / "h.onnx").string(), o);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_TRUE(r->written);
  EXPECT_TRUE(r->fp16);
  onnx::ModelProto m;
  {
    std::ifstream f(tmp / "h.onnx", std::ios::binary);
    ASSERT_TRUE(m.ParseFromIstream(&f));
  }
  int fp16_inits = 0;
  for (const auto& t : m.graph().initializer()) {
    EXPECT_NE(t.data_type(), onnx::TensorProto::FLOAT) << t.name();
    fp16_inits += t.data_type() == onnx::TensorProto::FLOAT16;
  }
  EXPECT_GT(fp16_inits, 10);
  // The interface stays float32: the session sees float inputs and outputs.
  auto s = engine::Session::Load((tmp / "h.onnx").string(), {});
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ((*s)->inputs()[0].dtype, DataType::kFloat);
  EXPECT_EQ((*s)->outputs()[0].dtype, DataType::kFloat);
  const double acc = Accuracy(tmp / "h.onnx", Quant() / kMobileNet.data / "test");
  EXPECT_GE(acc, Fp32Accuracy(kMobileNet.figure) - 0.5);
  EXPECT_LE(static_cast<double>(fs::file_size(tmp / "h.onnx")), 0.55 * fs::file_size(in));
  for (const auto& l : r->layers) EXPECT_GT(l.snr_db, 40.0) << l.node;
}

// ---------------------------------------------------------------------------------- bad input

Status Refused(const std::string& model, const Options& o, const fs::path& out) {
  auto r = QuantizeModel(model, out.string(), o);
  EXPECT_FALSE(r.ok());
  EXPECT_FALSE(fs::exists(out));
  return r.ok() ? Status::Ok() : r.status();
}

// Quantization that does not pay on a backend is said plainly in the report, with what that
// backend does with 8-bit values; one that pays gets no such line.
TEST(QuantizeReport, SaysWhenQuantizedIsSlowerAndWhy) {
  Report r;
  LatencyReport slow;
  slow.backend = "cpu";
  slow.available = true;
  slow.float_ms = 2.0, slow.quant_ms = 3.0;
  slow.device = "cpu: CPU, 2 threads, 8-bit products on AVX2 without VNNI (...)";
  LatencyReport fast = slow;
  fast.backend = "opencl";
  fast.float_ms = 2.0, fast.quant_ms = 1.0;
  fast.device = "opencl: OpenCL CPU device";
  r.latency = {slow, fast};
  const std::string text = r.ToText();
  EXPECT_NE(text.find("quantized is 1.50x slower than float on cpu (cpu: CPU, 2 threads, 8-bit "
                      "products on AVX2 without VNNI (...))"),
            std::string::npos)
      << text;
  EXPECT_EQ(text.find("slower than float on opencl"), std::string::npos) << text;
  // The engine describes each backend it holds; the CPU's says which integer path it takes.
  auto s = engine::Session::Load((Src() / "tests/models/iris_mlp.onnx").string(), {});
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  ASSERT_FALSE((*s)->report().backends.empty());
  EXPECT_EQ((*s)->report().backends[0].rfind("cpu: CPU, ", 0), 0u) << (*s)->report().backends[0];
  EXPECT_NE((*s)->report().backends[0].find("8-bit products"), std::string::npos);
}

TEST(QuantizeBadInput, CalibrationShapesThatDoNotMatchTheModel) {
  TempDir tmp;
  Options o = Opts(kCnn);
  o.calibration_dir = (Quant() / "digits32" / "calib").string();  // 32x32 for an 8x8 model
  Status s = Refused((Src() / "tests/models" / kCnn.model).string(), o, tmp / "q.onnx");
  EXPECT_EQ(s.code(), Code::kInvalidArgument);
  EXPECT_NE(s.message().find("0000.npy"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("float32[1,1,32,32]"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("'input'"), std::string::npos) << s.message();
}

TEST(QuantizeBadInput, EmptyCalibrationSet) {
  TempDir tmp;
  fs::create_directories(tmp / "empty");
  std::ofstream(tmp / "empty" / "README.txt") << "not a sample\n";
  Options o = Opts(kCnn);
  o.calibration_dir = (tmp / "empty").string();
  Status s = Refused((Src() / "tests/models" / kCnn.model).string(), o, tmp / "q.onnx");
  EXPECT_EQ(s.code(), Code::kInvalidArgument);
  EXPECT_NE(s.message().find("empty"), std::string::npos) << s.message();
}

TEST(QuantizeBadInput, MissingCalibrationFolder) {
  TempDir tmp;
  Options o = Opts(kCnn);
  o.calibration_dir = (tmp / "nowhere").string();
  Status s = Refused((Src() / "tests/models" / kCnn.model).string(), o, tmp / "q.onnx");
  EXPECT_EQ(s.code(), Code::kNotFound);
  EXPECT_NE(s.message().find("nowhere"), std::string::npos) << s.message();
}

TEST(QuantizeBadInput, UnsupportedModels) {
  TempDir tmp;
  Options o = Opts(kCnn);
  // Opset 9: no QuantizeLinear.
  Status s = Refused((Src() / "tests/models/iris_mlp_opset9.onnx").string(), o, tmp / "q.onnx");
  EXPECT_EQ(s.code(), Code::kUnsupported);
  EXPECT_NE(s.message().find("opset 9"), std::string::npos) << s.message();
  // Not a model at all.
  s = Refused((Src() / "tests/models/bad/truncated.onnx").string(), o, tmp / "q.onnx");
  EXPECT_EQ(s.code(), Code::kInvalidModel);
  // Nothing to quantize: a lone Relu.
  onnx::ModelProto m;
  m.set_ir_version(8);
  m.add_opset_import()->set_version(13);
  auto* g = m.mutable_graph();
  g->set_name("relu");
  auto* n = g->add_node();
  n->set_op_type("Relu"), n->add_input("input"), n->add_output("y");
  for (auto* vi : {g->add_input(), g->add_output()}) {
    vi->set_name(vi == &g->input(0) ? "input" : "y");
    auto* tt = vi->mutable_type()->mutable_tensor_type();
    tt->set_elem_type(onnx::TensorProto::FLOAT);
    for (int d : {1, 1, 8, 8}) tt->mutable_shape()->add_dim()->set_dim_value(d);
  }
  std::ofstream(tmp / "relu.onnx", std::ios::binary) << m.SerializeAsString();
  s = Refused((tmp / "relu.onnx").string(), o, tmp / "q.onnx");
  EXPECT_EQ(s.code(), Code::kUnsupported);
  EXPECT_NE(s.message().find("nothing to quantize"), std::string::npos) << s.message();
}

TEST(QuantizeBadInput, LabelsThatDoNotMatchTheEvalSet) {
  TempDir tmp;
  Options o = Opts(kCnn);
  std::ofstream(tmp / "labels.txt") << "1\n2\n3\n";
  o.labels_file = (tmp / "labels.txt").string();
  Status s = Refused((Src() / "tests/models" / kCnn.model).string(), o, tmp / "q.onnx");
  EXPECT_EQ(s.code(), Code::kInvalidArgument);
  EXPECT_NE(s.message().find("3 labels for 450"), std::string::npos) << s.message();
  std::ofstream(tmp / "labels.txt") << "seven\n";
  s = Refused((Src() / "tests/models" / kCnn.model).string(), o, tmp / "q.onnx");
  EXPECT_NE(s.message().find("'seven'"), std::string::npos) << s.message();
}

}  // namespace
}  // namespace outpost::quantize
