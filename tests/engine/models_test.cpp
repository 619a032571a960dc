// End-to-end model tests: committed models vs ONNX Runtime goldens, digits accuracy, hostile files.
//
// Models, goldens and hostile files are written by tests/models/make_models.py; the golden
// outputs are ONNX Runtime's (tests/models/ort_reference.js), never Outpost's. Outputs must match
// within |ours - ort| <= 1e-4 + 1e-3 * |ort| (atol 1e-4, rtol 1e-3) on every element.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "outpost/engine/session.h"
#include "outpost/kernels/backend.h"

namespace outpost {
namespace {
namespace fs = std::filesystem;

constexpr double kRtol = 1e-3;
constexpr double kAtol = 1e-4;

// Every model with a golden folder; ModelsDir.EveryGoldenIsListed keeps this in sync.
const char* const kModels[] = {
    "iris_mlp",          "iris_mlp_opset9",           "digits_cnn",    "digits_cnn_opset17",
    "mobilenet_v2",      "mobilenet_v2_opset9",       "resnet18",      "squeezenet1_1",
    "transformer_block", "transformer_small_opset17", "tf_style_nhwc", "paddle_style",
    "qlinear_contrib",   "matmul_nbits",
};

// $OUTPOST_SOURCE_DIR/tests/models, else the first tests/models found walking up from the
// working directory or from the test binary (a build tree inside the source tree).
fs::path ModelsDir() {
  if (const char* src = std::getenv("OUTPOST_SOURCE_DIR"))
    return fs::path(src) / "tests" / "models";
  std::error_code ec;
  for (fs::path start : {fs::current_path(ec), fs::read_symlink("/proc/self/exe", ec)})
    for (fs::path p = start; !p.empty() && p != p.root_path(); p = p.parent_path())
      if (fs::exists(p / "tests" / "models" / "make_models.py", ec)) return p / "tests" / "models";
  return fs::path("tests") / "models";
}

std::string Slurp(const fs::path& p) {
  std::ifstream f(p);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// Returns a reason to skip when the OpenCL backend cannot open a device; fails on other errors.
bool OpenClUnavailable(std::string* why) {
  auto be = kernels::CreateOpenClBackend(kernels::BackendOptions{});
  if (be.ok()) return false;
  *why = be.status().ToString();
  return be.status().code() == Code::kUnavailable;
}

Expected<std::unique_ptr<engine::Session>> Load(const fs::path& model, const std::string& backend) {
  engine::SessionOptions opts;
  opts.backend = backend;
  opts.backend_options.threads = 2;
  return engine::Session::Load(model.string(), opts);
}

std::vector<float> AsFloats(const Tensor& t) {
  std::vector<float> v(static_cast<size_t>(t.numel()));
  for (int64_t i = 0; i < t.numel(); ++i) v[i] = static_cast<float>(ReadDouble(t, i));
  return v;
}

// Checks shape and every element; reports the worst element on failure.
void ExpectClose(const Tensor& ours, const Tensor& ort, const std::string& what) {
  ASSERT_EQ(ours.shape(), ort.shape())
      << what << ": ours " << ours.Describe() << " vs ORT " << ort.Describe();
  ASSERT_EQ(ours.dtype(), ort.dtype()) << what;
  auto a = AsFloats(ours), b = AsFloats(ort);
  int64_t bad = 0, worst = -1;
  double worst_excess = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    double diff = std::fabs(double(a[i]) - double(b[i]));
    double excess = diff - (kAtol + kRtol * std::fabs(double(b[i])));
    if (excess > 0 || std::isnan(a[i]) != std::isnan(b[i])) {
      ++bad;
      if (worst < 0 || excess > worst_excess)
        worst = static_cast<int64_t>(i), worst_excess = excess;
    }
  }
  EXPECT_EQ(bad, 0) << what << ": " << bad << " of " << a.size()
                    << " elements outside atol 1e-4 + rtol 1e-3; worst at flat index " << worst
                    << ": ours " << (worst >= 0 ? a[worst] : 0.f) << " vs ORT "
                    << (worst >= 0 ? b[worst] : 0.f);
}

class ModelGoldenTest : public ::testing::TestWithParam<std::tuple<std::string, std::string>> {};

TEST_P(ModelGoldenTest, MatchesOnnxRuntime) {
  const auto& [name, backend] = GetParam();
  std::string why;
  if (backend == "opencl" && OpenClUnavailable(&why)) GTEST_SKIP() << why;
  const fs::path dir = ModelsDir();
  auto session = Load(dir / (name + ".onnx"), backend);
  ASSERT_TRUE(session.ok()) << name << " on " << backend << ": " << session.status().ToString();
  auto& s = **session;
  std::vector<std::pair<std::string, Tensor>> inputs;
  for (size_t k = 0; k < s.inputs().size(); ++k) {
    auto t = engine::ReadTensorFile(
        (dir / "golden" / name / ("input_" + std::to_string(k) + ".npy")).string());
    ASSERT_TRUE(t.ok()) << t.status().ToString();
    inputs.emplace_back(s.inputs()[k].name, std::move(t).value());
  }
  auto outs = s.Run(inputs);
  ASSERT_TRUE(outs.ok()) << name << " on " << backend << ": " << outs.status().ToString();
  ASSERT_EQ(outs->size(), s.outputs().size());
  for (size_t k = 0; k < outs->size(); ++k) {
    auto ref = engine::ReadTensorFile(
        (dir / "golden" / name / ("output_" + std::to_string(k) + ".npy")).string());
    ASSERT_TRUE(ref.ok()) << ref.status().ToString();
    ExpectClose((*outs)[k], *ref, name + " output " + s.outputs()[k].name + " on " + backend);
  }
  if (backend == "opencl") {
    int on_device = 0;
    for (auto& p : s.report().placement) on_device += p.backend == "opencl";
    RecordProperty("opencl_nodes", on_device);
  }
}

std::vector<std::tuple<std::string, std::string>> AllCases() {
  std::vector<std::tuple<std::string, std::string>> r;
  for (const char* backend : {"cpu", "opencl"})
    for (const char* m : kModels) r.emplace_back(m, backend);
  return r;
}

INSTANTIATE_TEST_SUITE_P(Models, ModelGoldenTest, ::testing::ValuesIn(AllCases()),
                         [](const auto& info) {
                           return std::get<0>(info.param) + "_" + std::get<1>(info.param);
                         });

TEST(ModelsDir, EveryGoldenIsListed) {
  std::set<std::string> listed(std::begin(kModels), std::end(kModels));
  std::error_code ec;
  for (auto& e : fs::directory_iterator(ModelsDir() / "golden", ec)) {
    std::string n = e.path().filename().string();
    if (fs::exists(ModelsDir() / (n + ".onnx"))) {
      EXPECT_TRUE(listed.count(n)) << n << " not in kModels";
    }
  }
  ASSERT_FALSE(ec) << ModelsDir() << ": " << ec.message();
}

// ---------------------------------------------------------------------------- digits accuracy

double JsonNumber(const std::string& json, const std::string& key) {
  std::smatch m;
  std::regex re("\"" + key + "\"\\s*:\\s*([0-9.eE+-]+)");
  return std::regex_search(json, m, re) ? std::stod(m[1]) : -1.0;
}

class DigitsAccuracyTest : public ::testing::TestWithParam<std::string> {};

TEST_P(DigitsAccuracyTest, MatchesTrainingAccuracyAndOrt) {
  const std::string backend = GetParam();
  std::string why;
  if (backend == "opencl" && OpenClUnavailable(&why)) GTEST_SKIP() << why;
  const fs::path dir = ModelsDir();
  const double reported = JsonNumber(Slurp(dir / "digits_cnn.json"), "torch_test_accuracy");
  ASSERT_GT(reported, 0.5) << "digits_cnn.json has no torch_test_accuracy";
  auto x = engine::ReadTensorFile((dir / "data" / "digits_test_x.npy").string());
  auto y = engine::ReadTensorFile((dir / "data" / "digits_test_y.npy").string());
  auto ort =
      engine::ReadTensorFile((dir / "golden" / "digits_cnn_split" / "output_0.npy").string());
  ASSERT_TRUE(x.ok() && y.ok() && ort.ok());
  auto session = Load(dir / "digits_cnn.onnx", backend);
  ASSERT_TRUE(session.ok()) << session.status().ToString();
  auto outs = (*session)->Run({{"input", *x}});
  ASSERT_TRUE(outs.ok()) << outs.status().ToString();
  const Tensor& logits = (*outs)[0];
  const int64_t n = y->numel();
  ASSERT_EQ(logits.shape(), Shape({n, 10}));
  auto ours = AsFloats(logits), ref = AsFloats(*ort);
  auto argmax = [](const std::vector<float>& v, int64_t row) {
    int best = 0;
    for (int c = 1; c < 10; ++c)
      if (v[row * 10 + c] > v[row * 10 + best]) best = c;
    return best;
  };
  int64_t correct = 0, agree = 0;
  for (int64_t i = 0; i < n; ++i) {
    int p = argmax(ours, i);
    correct += p == ReadInt(*y, i);
    agree += p == argmax(ref, i);
  }
  const double acc = double(correct) / double(n);
  EXPECT_NEAR(acc * 100, reported * 100, 0.5) << "digits top-1 on " << n << " held-out samples";
  EXPECT_GE(double(agree) / double(n), 0.99) << "argmax agrees with ORT on " << agree << "/" << n;
  RecordProperty("digits_accuracy", std::to_string(acc));
}

INSTANTIATE_TEST_SUITE_P(Backends, DigitsAccuracyTest, ::testing::Values("cpu", "opencl"));

// ---------------------------------------------------------------------------- hostile models

struct BadCase {
  const char* file;
  Code code;
  std::vector<std::string> must_mention;  // every one must appear in the error message
};

void PrintTo(const BadCase& c, std::ostream* os) { *os << "bad/" << c.file << ".onnx"; }

class BadModelTest : public ::testing::TestWithParam<BadCase> {};

TEST_P(BadModelTest, FailsWithRightCodeAndMessage) {
  const BadCase& c = GetParam();
  auto session = Load(ModelsDir() / "bad" / (std::string(c.file) + ".onnx"), "cpu");
  ASSERT_FALSE(session.ok()) << c.file << " loaded";
  const Status& st = session.status();
  EXPECT_EQ(st.code(), c.code) << c.file << ": got " << st.ToString();
  for (auto& s : c.must_mention)
    EXPECT_NE(st.message().find(s), std::string::npos)
        << c.file << ": message does not mention '" << s << "': " << st.message();
}

INSTANTIATE_TEST_SUITE_P(
    Hostile, BadModelTest,
    ::testing::Values(
        BadCase{"truncated", Code::kInvalidModel, {"not a valid ONNX model"}},
        BadCase{"not_onnx", Code::kInvalidModel, {"not a valid ONNX model"}},
        BadCase{"empty", Code::kInvalidModel, {"empty"}},
        BadCase{"unknown_op",
                Code::kUnsupported,
                {"frob1", "FrobnicateTensor", "teleport1", "Teleport", "2 node(s)"}},
        BadCase{"opset99", Code::kUnsupported, {"opset 99"}},
        BadCase{"cycle", Code::kInvalidModel, {"cycle", "cyc_add", "cyc_relu", "cyc_neg"}},
        BadCase{"dangling_input", Code::kInvalidModel, {"haunted_add", "ghost_value"}},
        BadCase{"huge_dims", Code::kInvalidModel, {"huge_weight"}},
        BadCase{"negative_dims", Code::kInvalidModel, {"negative_weight", "-3"}},
        BadCase{"external_passwd", Code::kInvalidModel, {"stolen", "../../etc/passwd"}},
        BadCase{"external_past_end", Code::kInvalidModel, {"short_weight", "external_short.bin"}},
        BadCase{"deep_if", Code::kInvalidModel, {"16"}}),
    [](const auto& info) { return std::string(info.param.file); });

TEST(BadModelFiles, EveryHostileFileIsTested) {
  // The table above must cover every .onnx under tests/models/bad.
  int n = 0;
  std::error_code ec;
  for (auto& e : fs::directory_iterator(ModelsDir() / "bad", ec))
    n += e.path().extension() == ".onnx";
  ASSERT_FALSE(ec) << ModelsDir() << ": " << ec.message();
  EXPECT_EQ(n, 12);
}

}  // namespace
}  // namespace outpost
