// Cross-backend tests: every OpenCL op against the CPU reference kernel on random inputs.
#include <gtest/gtest.h>

#define CL_TARGET_OPENCL_VERSION 120
#include <CL/cl.h>
#include <unistd.h>

#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <tuple>

#include "kernels/op_harness.h"
#include "kernels/opencl_harness.h"
#include "outpost/core/metrics.h"
#include "outpost/kernels/backend.h"
#include "outpost/kernels/fusion.h"

namespace outpost {
namespace {

using kernels::Attribute;
using kernels::Attributes;

kernels::Backend* Cl() { return testing::SharedOpenClBackend(); }

Attribute Str(std::string v) {
  Attribute a;
  a.kind = Attribute::Kind::kString;
  a.s = std::move(v);
  return a;
}

Tensor Rand(DataType t, Shape s, double lo = -1, double hi = 1, uint32_t seed = 1) {
  Tensor x = Tensor::Allocate(t, s).value();
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> u(lo, hi);
  for (int64_t i = 0; i < x.numel(); ++i) {
    double v = u(rng);
    switch (t) {
      case DataType::kFloat:
        x.data<float>()[i] = static_cast<float>(v);
        break;
      case DataType::kDouble:
        x.data<double>()[i] = v;
        break;
      case DataType::kInt32:
        x.data<int32_t>()[i] = static_cast<int32_t>(std::floor(v));
        break;
      case DataType::kInt64:
        x.data<int64_t>()[i] = static_cast<int64_t>(std::floor(v));
        break;
      case DataType::kInt8:
        x.data<int8_t>()[i] = static_cast<int8_t>(std::floor(v));
        break;
      case DataType::kUInt8:
        x.data<uint8_t>()[i] = static_cast<uint8_t>(std::floor(std::fabs(v)));
        break;
      case DataType::kBool:
        x.data<bool>()[i] = v > 0;
        break;
      default:
        break;
    }
  }
  return x;
}

template <typename T>
Tensor Vec(DataType t, Shape s, std::vector<T> v) {
  Tensor x = Tensor::Allocate(t, s).value();
  std::memcpy(x.raw(), v.data(), v.size() * sizeof(T));
  return x;
}
Tensor I64(std::vector<int64_t> v) {
  return Vec(DataType::kInt64, Shape{static_cast<int64_t>(v.size())}, v);
}

class DeviceSink : public kernels::OutputSink {
 public:
  Expected<Tensor*> Allocate(int index, DataType dtype, const Shape& shape) override {
    if (outputs.size() <= static_cast<size_t>(index))
      outputs.resize(index + 1), bufs.resize(index + 1);
    if (bufs[index] && outputs[index].dtype() == dtype && outputs[index].shape() == shape)
      return &outputs[index];  // a repeated run (the benchmark) writes the same buffer
    // (Resizing moves earlier outputs: the backend must copy the views it gets.)
    auto b = Cl()->Allocate(std::max<size_t>(Tensor::Meta(dtype, shape).nbytes(), 1) + 64);
    if (!b.ok()) return b.status();
    bufs[index] = *b;
    outputs[index] = bufs[index]->View(dtype, shape, 64);  // a non-zero offset on purpose
    return &outputs[index];
  }
  std::vector<Tensor> outputs;
  std::vector<std::shared_ptr<kernels::Buffer>> bufs;
};

double Get(const Tensor& t, int64_t i) {
  if (t.dtype() == DataType::kBool) return t.data<bool>()[i];
  return IsFloating(t.dtype()) ? ReadDouble(t, i) : static_cast<double>(ReadInt(t, i));
}

// Runs `op` on the CPU reference and on OpenCL and compares. `consts` marks inputs that are
// constants (initializers) at load. With `fused` active, the OpenCL node carries the engine's
// fused-clamp attributes and the reference output is clamped on the host.
void Check(const std::string& op, Attributes attrs, std::vector<Tensor> inputs,
           std::vector<bool> consts = {}, int num_outputs = 1, int opset = 17, double rtol = 1e-4,
           double atol = 1e-5, kernels::FusedClamp fused = {}) {
  SCOPED_TRACE(op);
  if (!Cl()) GTEST_SKIP() << "no OpenCL device";
  consts.resize(inputs.size(), false);
  std::vector<const Tensor*> in_ptrs;
  for (auto& t : inputs) in_ptrs.push_back(t.defined() ? &t : nullptr);
  auto ref = testing::RunOp(op, attrs, in_ptrs, num_outputs, opset);
  if (!ref.ok()) {
    if (ref.status().code() == Code::kNotFound) GTEST_SKIP() << ref.status().ToString();
    FAIL() << "reference failed: " << ref.status().ToString();
  }
  testing::EngineMetas metas(inputs, consts);  // as the engine passes them
  std::vector<Tensor> out_metas;
  for (auto& t : *ref) out_metas.push_back(Tensor::Meta(t.dtype(), t.shape()));
  std::vector<const Tensor*> out_ptrs;
  for (auto& t : out_metas) out_ptrs.push_back(&t);
  if (fused.active) {
    for (auto& t : *ref)
      for (int64_t i = 0; i < t.numel(); ++i)
        t.data<float>()[i] = std::min(std::max(t.data<float>()[i], fused.lo), fused.hi);
    attrs.Set(kernels::kFusedMin, testing::AttrFloat(fused.lo));
    attrs.Set(kernels::kFusedMax, testing::AttrFloat(fused.hi));
  }
  kernels::NodeInfo node{"n", op, "", opset, attrs};
  std::string why;
  ASSERT_TRUE(Cl()->SupportsOp(node, metas.ptrs, out_ptrs, &why)) << why;
  auto prepared = Cl()->Prepare(node, metas.ptrs, out_ptrs);
  ASSERT_TRUE(prepared.ok()) << prepared.status().ToString();
  // Upload non-constant inputs at an offset.
  testing::DeviceInputs dev;
  ASSERT_TRUE(dev.Upload(Cl(), inputs, consts, [](DataType) { return size_t{128}; }).ok());
  DeviceSink sink;
  Status st = (*prepared)->Execute(dev.ptrs, &sink);
  ASSERT_TRUE(st.ok()) << st.ToString();
  ASSERT_TRUE(Cl()->Synchronize().ok());
  for (size_t o = 0; o < ref->size(); ++o) {
    const Tensor& want = (*ref)[o];
    ASSERT_LT(o, sink.outputs.size());
    const Tensor& dev = sink.outputs[o];
    ASSERT_EQ(dev.shape(), want.shape());
    ASSERT_EQ(dev.dtype(), want.dtype());
    Tensor got = Tensor::Allocate(want.dtype(), want.shape()).value();
    ASSERT_TRUE(Cl()->CopyToHost(dev, got).ok());
    bool exact = !IsFloating(want.dtype());
    int bad = 0;
    for (int64_t i = 0; i < want.numel() && bad < 5; ++i) {
      double w = Get(want, i), g = Get(got, i);
      bool same = exact ? w == g
                        : (std::isnan(w) && std::isnan(g)) || w == g ||
                              std::fabs(w - g) <= atol + rtol * std::fabs(w);
      if (!same) {
        ++bad;
        ADD_FAILURE() << op << " output " << o << " element " << i << ": want " << w << " got "
                      << g;
      }
    }
  }
}

TEST(OpenClTest, BackendDescribesDevice) {
  if (!Cl()) GTEST_SKIP() << "no OpenCL device";
  EXPECT_EQ(Cl()->name(), "opencl");
  EXPECT_FALSE(Cl()->description().empty());
}

TEST(OpenClTest, BadDeviceIndexIsUnavailable) {
  kernels::BackendOptions o;
  o.opencl_platform = 99;
  auto r = kernels::CreateOpenClBackend(o);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kUnavailable);
}

// Choosing the device by name: case-insensitive substrings of the names the ICD reports (read
// here through the OpenCL API itself); no match lists what there is.
TEST(OpenClTest, DeviceChosenByName) {
  cl_platform_id plat = nullptr;
  ASSERT_EQ(clGetPlatformIDs(1, &plat, nullptr), CL_SUCCESS);
  cl_device_id dev = nullptr;
  ASSERT_EQ(clGetDeviceIDs(plat, CL_DEVICE_TYPE_ALL, 1, &dev, nullptr), CL_SUCCESS);
  char pname[256] = {}, dname[256] = {};
  clGetPlatformInfo(plat, CL_PLATFORM_NAME, sizeof pname - 1, pname, nullptr);
  clGetDeviceInfo(dev, CL_DEVICE_NAME, sizeof dname - 1, dname, nullptr);
  std::string plat_name(pname), dev_name(dname);
  ASSERT_GE(plat_name.size(), 4u);
  ASSERT_GE(dev_name.size(), 3u);
  auto flip = [](std::string s) {  // the same letters in the other case
    for (char& c : s)
      c = std::islower(static_cast<unsigned char>(c)) ? static_cast<char>(std::toupper(c))
                                                      : static_cast<char>(std::tolower(c));
    return s;
  };
  kernels::BackendOptions o;
  o.opencl_cache_dir = ::testing::TempDir() + "/outpost-opencl-test-cache";
  o.opencl_platform_name = flip(plat_name.substr(1, 3));
  o.opencl_device_name = flip(dev_name.substr(0, 3));
  auto r = kernels::CreateOpenClBackend(o);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_NE((*r)->description().find(dev_name), std::string::npos) << (*r)->description();

  kernels::BackendOptions none = o;
  none.opencl_device_name = "no-such-accelerator-xyz";
  auto bad = kernels::CreateOpenClBackend(none);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), Code::kUnavailable);
  EXPECT_NE(bad.status().message().find("no-such-accelerator-xyz"), std::string::npos);
  EXPECT_NE(bad.status().message().find(plat_name), std::string::npos) << bad.status().message();
  EXPECT_NE(bad.status().message().find(dev_name), std::string::npos) << bad.status().message();
}

// Runs Neg on `b` (a backend of its own, not Cl()) and checks the answer.
void RunNegOn(kernels::Backend* b) {
  Tensor x = Vec<float>(DataType::kFloat, {4}, {1.5f, -2.f, 0.f, 7.25f});
  Tensor meta = Tensor::Meta(DataType::kFloat, {4});
  std::vector<const Tensor*> in_meta = {&meta}, out_meta = {&meta};
  kernels::NodeInfo node{"n", "Neg", "", 17, {}};
  auto prepared = b->Prepare(node, in_meta, out_meta);
  ASSERT_TRUE(prepared.ok()) << prepared.status().ToString();
  auto in_buf = b->Allocate(x.nbytes());
  ASSERT_TRUE(in_buf.ok());
  Tensor dev_in = (*in_buf)->View(DataType::kFloat, {4}, 0);
  ASSERT_TRUE(b->CopyFromHost(x, dev_in).ok());
  struct Sink : kernels::OutputSink {
    kernels::Backend* be;
    std::shared_ptr<kernels::Buffer> buf;
    Tensor out;
    Expected<Tensor*> Allocate(int, DataType dtype, const Shape& shape) override {
      auto r = be->Allocate(Tensor::Meta(dtype, shape).nbytes());
      if (!r.ok()) return r.status();
      buf = *r;
      out = buf->View(dtype, shape, 0);
      return &out;
    }
  } sink;
  sink.be = b;
  const Tensor* run_in[] = {&dev_in};
  ASSERT_TRUE((*prepared)->Execute(run_in, &sink).ok());
  ASSERT_TRUE(b->Synchronize().ok());
  Tensor got = Tensor::Allocate(DataType::kFloat, {4}).value();
  ASSERT_TRUE(b->CopyToHost(sink.out, got).ok());
  EXPECT_EQ(got.data<float>()[0], -1.5f);
  EXPECT_EQ(got.data<float>()[1], 2.f);
  EXPECT_EQ(got.data<float>()[3], -7.25f);
}

// Program binaries are cached on disk: a second backend (a second process, in effect) loads them
// instead of compiling; a corrupted cache file is noticed, counted, rebuilt and rewritten.
TEST(OpenClTest, ProgramBinariesAreCachedOnDiskAndCorruptionIsRebuilt) {
  if (!Cl()) GTEST_SKIP() << "no OpenCL device";
  namespace fs = std::filesystem;
  const fs::path dir =
      fs::path(::testing::TempDir()) / ("outpost-opencl-cache-test-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  auto count = [](const char* result) {
    return MetricsRegistry::Global()
        .GetCounter("outpost_opencl_program_cache_total", "", {{"result", result}})
        .value();
  };
  auto make = [&] {
    kernels::BackendOptions o;
    o.opencl_cache_dir = dir.string();
    auto r = kernels::CreateOpenClBackend(o);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? std::move(r).value() : nullptr;
  };
  auto bins = [&] {
    std::vector<fs::path> v;
    for (const auto& e : fs::directory_iterator(dir))
      if (e.path().extension() == ".bin") v.push_back(e.path());
    return v;
  };

  const uint64_t miss0 = count("miss"), hit0 = count("hit"), corrupt0 = count("corrupt");
  {
    auto first = make();
    ASSERT_TRUE(first);
    RunNegOn(first.get());
  }
  EXPECT_GT(count("miss"), miss0);
  ASSERT_TRUE(fs::is_directory(dir));
  const std::vector<fs::path> files = bins();
  ASSERT_FALSE(files.empty());

  const uint64_t miss1 = count("miss");
  {
    auto second = make();
    ASSERT_TRUE(second);
    RunNegOn(second.get());
  }
  EXPECT_GT(count("hit"), hit0);
  EXPECT_EQ(count("miss"), miss1);  // nothing compiled from source

  for (const fs::path& f : files) {  // flip a byte of each payload
    std::fstream io(f, std::ios::in | std::ios::out | std::ios::binary);
    io.seekg(40);
    char c = 0;
    io.read(&c, 1);
    c = static_cast<char>(c ^ 0x5a);
    io.seekp(40);
    io.write(&c, 1);
  }
  {
    auto third = make();
    ASSERT_TRUE(third);
    RunNegOn(third.get());  // still right: rebuilt from source
  }
  EXPECT_GE(count("corrupt"), corrupt0 + files.size());
  const uint64_t hit2 = count("hit");
  {
    auto fourth = make();  // the rewritten files are good again
    ASSERT_TRUE(fourth);
    RunNegOn(fourth.get());
  }
  EXPECT_GT(count("hit"), hit2);
  fs::remove_all(dir);
}

TEST(OpenClTest, UnaryFloat) {
  const char* ops[] = {"Abs",         "Neg",       "Exp",
                       "Floor",       "Ceil",      "Round",
                       "Sigmoid",     "Tanh",      "Relu",
                       "LeakyRelu",   "Elu",       "Selu",
                       "HardSigmoid", "HardSwish", "Softplus",
                       "Softsign",    "Sin",       "Cos",
                       "Tan",         "Atan",      "Sinh",
                       "Cosh",        "Asinh",     "Erf",
                       "Sign",        "Mish",      "ThresholdedRelu",
                       "Shrink",      "Celu",      "IsNaN",
                       "IsInf",       "Reciprocal"};
  for (const char* op : ops) Check(op, {}, {Rand(DataType::kFloat, {2, 3, 5}, -3, 3)}, {}, 1, 18);
  for (const char* op : {"Log", "Sqrt", "Acosh"})
    Check(op, {}, {Rand(DataType::kFloat, {7}, 1, 5)});
  for (const char* op : {"Asin", "Acos", "Atanh"})
    Check(op, {}, {Rand(DataType::kFloat, {7}, -0.9, 0.9)});
  Attributes g;
  g.Set("approximate", Str("tanh"));
  Check("Gelu", g, {Rand(DataType::kFloat, {9}, -3, 3)}, {}, 1, 20);
  Check("Gelu", {}, {Rand(DataType::kFloat, {9}, -3, 3)}, {}, 1, 20);
  Check("Neg", {}, {Rand(DataType::kInt32, {9}, -30, 30)});
  Check("Abs", {}, {Rand(DataType::kInt64, {9}, -30, 30)});
  Check("Not", {}, {Rand(DataType::kBool, {9})});
}

TEST(OpenClTest, BinaryBroadcast) {
  for (const char* op : {"Add", "Sub", "Mul", "Div", "Less", "Greater", "Equal", "LessOrEqual",
                         "GreaterOrEqual", "PRelu"}) {
    Check(op, {},
          {Rand(DataType::kFloat, {2, 3, 4}, -2, 2, 1), Rand(DataType::kFloat, {3, 1}, 0.5, 2, 2)});
    if (std::string(op) != "PRelu")
      Check(op, {},
            {Rand(DataType::kFloat, {4}, -2, 2, 3), Rand(DataType::kFloat, {2, 1, 4}, 0.5, 2, 4)},
            {false, true});
  }
  Check("Pow", {}, {Rand(DataType::kFloat, {2, 3}, 0.5, 2), Rand(DataType::kFloat, {3}, -2, 2)});
  Check("Add", {},
        {Rand(DataType::kInt32, {2, 3}, -50, 50), Rand(DataType::kInt32, {1, 3}, -50, 50)});
  Check("Mul", {}, {Rand(DataType::kInt64, {5}, -50, 50), Rand(DataType::kInt64, {}, 2, 3)});
  Attributes m;
  m.Set("fmod", testing::AttrInt(0));
  Check("Mod", m, {Rand(DataType::kInt32, {8}, -50, 50), Rand(DataType::kInt32, {8}, 1, 7)});
  for (const char* op : {"And", "Or", "Xor"})
    Check(op, {}, {Rand(DataType::kBool, {3, 4}, -1, 1, 5), Rand(DataType::kBool, {4}, -1, 1, 6)});
  for (const char* op : {"Max", "Min", "Sum", "Mean"})
    Check(op, {},
          {Rand(DataType::kFloat, {2, 3}, -1, 1, 1), Rand(DataType::kFloat, {3}, -1, 1, 2),
           Rand(DataType::kFloat, {2, 1}, -1, 1, 3)});
}

TEST(OpenClTest, WhereClipCast) {
  Check(
      "Where", {},
      {Rand(DataType::kBool, {2, 3}), Rand(DataType::kFloat, {3}), Rand(DataType::kFloat, {2, 1})});
  Check("Clip", {},
        {Rand(DataType::kFloat, {10}, -2, 2), Vec<float>(DataType::kFloat, {}, {-0.5f}),
         Vec<float>(DataType::kFloat, {}, {0.7f})},
        {false, true, true}, 1, 13);
  Check("Clip", {},
        {Rand(DataType::kFloat, {10}, -2, 2), Tensor(), Vec<float>(DataType::kFloat, {}, {0.7f})},
        {false, false, true}, 1, 13);
  Attributes to;
  to.Set("to", testing::AttrInt(static_cast<int>(DataType::kInt32)));
  Check("Cast", to, {Rand(DataType::kFloat, {10}, -5, 5)});
  to.Set("to", testing::AttrInt(static_cast<int>(DataType::kFloat)));
  Check("Cast", to, {Rand(DataType::kInt64, {10}, -5, 5)});
  to.Set("to", testing::AttrInt(static_cast<int>(DataType::kBool)));
  Check("Cast", to, {Rand(DataType::kFloat, {10}, -1, 1)});
}

TEST(OpenClTest, Reductions) {
  const char* ops[] = {"ReduceSum", "ReduceMean", "ReduceMax",       "ReduceMin",      "ReduceProd",
                       "ReduceL1",  "ReduceL2",   "ReduceSumSquare", "ReduceLogSumExp"};
  for (const char* op : ops) {
    for (auto axes : std::vector<std::vector<int64_t>>{{1}, {0, 2}, {-1}, {}}) {
      for (int keep = 0; keep < 2; ++keep) {
        Attributes a;
        a.Set("keepdims", testing::AttrInt(keep));
        std::vector<Tensor> in = {Rand(DataType::kFloat, {3, 4, 5}, 0.5, 1.5)};
        std::vector<bool> consts = {false};
        if (!axes.empty()) in.push_back(I64(axes)), consts.push_back(true);
        Check(op, a, in, consts, 1, 18, 1e-4, 1e-5);
      }
    }
  }
  Check("ReduceLogSum", {}, {Rand(DataType::kFloat, {3, 4}, 0.5, 1.5)}, {}, 1, 18);
  Check("ReduceSum", {}, {Rand(DataType::kInt64, {3, 4}, -9, 9), I64({1})}, {false, true}, 1, 13);
  for (const char* op : {"ArgMax", "ArgMin"}) {
    Attributes a;
    a.Set("axis", testing::AttrInt(1));
    Check(op, a, {Rand(DataType::kFloat, {3, 6, 2})});
  }
  Check("GlobalAveragePool", {}, {Rand(DataType::kFloat, {2, 3, 4, 5})});
  Check("GlobalMaxPool", {}, {Rand(DataType::kFloat, {2, 3, 4, 5})});
  for (const char* op : {"Softmax", "LogSoftmax", "Hardmax"}) {
    for (int64_t axis : {0, 1, -1}) {
      Attributes a;
      a.Set("axis", testing::AttrInt(axis));
      Check(op, a, {Rand(DataType::kFloat, {3, 4, 5}, -3, 3)}, {}, 1, 13);
      Check(op, a, {Rand(DataType::kFloat, {3, 4, 5}, -3, 3)}, {}, 1, 11);
    }
  }
}

TEST(OpenClTest, Movement) {
  Attributes t;
  t.Set("perm", testing::AttrInts({2, 0, 1}));
  Check("Transpose", t, {Rand(DataType::kFloat, {2, 3, 4})});
  Check("Transpose", {}, {Rand(DataType::kInt64, {2, 3, 4}, -9, 9)});
  Attributes ax1;
  ax1.Set("axis", testing::AttrInt(1));
  Check("Concat", ax1,
        {Rand(DataType::kFloat, {2, 3, 2}), Rand(DataType::kFloat, {2, 1, 2}),
         Rand(DataType::kFloat, {2, 4, 2})});
  Check("Split", ax1, {Rand(DataType::kFloat, {2, 6, 2}), I64({1, 2, 3})}, {false, true}, 3, 13);
  Check("Slice", {},
        {Rand(DataType::kFloat, {5, 6, 7}), I64({1, -1}), I64({4, 0}), I64({0, 2}), I64({2, -2})},
        {false, true, true, true, true}, 1, 13);
  Check("Expand", {}, {Rand(DataType::kFloat, {3, 1}), I64({2, 3, 4})}, {false, true}, 1, 13);
  Check("Tile", {}, {Rand(DataType::kFloat, {2, 3}), I64({2, 3})}, {false, true}, 1, 13);
  Check("Reshape", {}, {Rand(DataType::kFloat, {2, 6}), I64({3, 4})}, {false, true}, 1, 14);
  for (const char* mode : {"constant", "reflect", "edge", "wrap"}) {
    Attributes p;
    p.Set("mode", Str(mode));
    Check("Pad", p,
          {Rand(DataType::kFloat, {3, 4}), I64({1, 2, 2, 1}),
           Vec<float>(DataType::kFloat, {}, {1.5f})},
          {false, true, true}, 1, 19);
  }
  Check("Gather", ax1, {Rand(DataType::kFloat, {3, 4, 2}), I64({3, -1, 0})}, {false, false});
  Check("GatherElements", ax1,
        {Rand(DataType::kFloat, {3, 4}),
         Vec<int64_t>(DataType::kInt64, {3, 2}, {0, 1, 3, 2, -1, 0})});
  Attributes d2s;
  d2s.Set("blocksize", testing::AttrInt(2));
  Check("DepthToSpace", d2s, {Rand(DataType::kFloat, {1, 8, 2, 3})}, {}, 1, 13);
  Check("SpaceToDepth", d2s, {Rand(DataType::kFloat, {1, 2, 4, 6})}, {}, 1, 13);
  for (const char* mode : {"nearest", "linear"}) {
    for (const char* ctm : {"half_pixel", "asymmetric", "align_corners", "pytorch_half_pixel"}) {
      Attributes r;
      r.Set("mode", Str(mode));
      r.Set("coordinate_transformation_mode", Str(ctm));
      Check("Resize", r,
            {Rand(DataType::kFloat, {1, 2, 3, 4}), Tensor(),
             Vec<float>(DataType::kFloat, {4}, {1, 1, 2.0f, 1.5f})},
            {false, false, true}, 1, 19);
    }
  }
}

TEST(OpenClTest, GemmAndMatMul) {
  for (int ta = 0; ta < 2; ++ta) {
    for (int tb = 0; tb < 2; ++tb) {
      for (int konst = 0; konst < 2; ++konst) {
        Attributes a;
        a.Set("transA", testing::AttrInt(ta));
        a.Set("transB", testing::AttrInt(tb));
        a.Set("alpha", testing::AttrFloat(0.5f));
        a.Set("beta", testing::AttrFloat(2.0f));
        Shape as = ta ? Shape{37, 13} : Shape{13, 37}, bs = tb ? Shape{21, 37} : Shape{37, 21};
        Check("Gemm", a,
              {Rand(DataType::kFloat, as), Rand(DataType::kFloat, bs, -1, 1, 2),
               Rand(DataType::kFloat, {21}, -1, 1, 3)},
              {false, konst != 0, true}, 1, 13, 1e-4, 1e-4);
      }
    }
  }
  Check("Gemm", {},
        {Rand(DataType::kFloat, {5, 7}), Rand(DataType::kFloat, {7, 3}),
         Rand(DataType::kFloat, {5, 1})},
        {false, false, false}, 1, 13, 1e-4, 1e-4);
  Check("MatMul", {}, {Rand(DataType::kFloat, {2, 1, 5, 7}), Rand(DataType::kFloat, {3, 7, 33})},
        {false, false}, 1, 13, 1e-4, 1e-4);
  Check("MatMul", {}, {Rand(DataType::kFloat, {3, 5, 7}), Rand(DataType::kFloat, {7, 20})},
        {false, true}, 1, 13, 1e-4, 1e-4);
  Check("MatMul", {}, {Rand(DataType::kFloat, {7}), Rand(DataType::kFloat, {2, 7, 4})}, {}, 1, 13,
        1e-4, 1e-4);
  Check("MatMul", {}, {Rand(DataType::kFloat, {3, 7}), Rand(DataType::kFloat, {7})}, {}, 1, 13,
        1e-4, 1e-4);
  // Small K, many rows: each work-item walks several panels (the last one partial).
  Check("MatMul", {}, {Rand(DataType::kFloat, {260, 8}), Rand(DataType::kFloat, {8, 100})},
        {false, true}, 1, 13, 1e-4, 1e-4);
  Check("Conv", {},
        {Rand(DataType::kFloat, {1, 8, 10, 10}), Rand(DataType::kFloat, {260, 8, 1, 1})},
        {false, true}, 1, 11, 1e-4, 1e-4);
}

TEST(OpenClTest, ConvAndPool) {
  struct Case {
    Shape x, w;
    int64_t group;
    std::vector<int64_t> pads, strides, dil;
  };
  std::vector<Case> cases = {
      {{1, 3, 9, 9}, {16, 3, 3, 3}, 1, {1, 1, 1, 1}, {1, 1}, {1, 1}},
      {{2, 8, 10, 7}, {16, 4, 3, 2}, 2, {1, 0, 2, 1}, {2, 1}, {1, 2}},
      {{1, 6, 8, 8}, {6, 1, 3, 3}, 6, {1, 1, 1, 1}, {1, 1}, {1, 1}},
      {{1, 4, 12}, {8, 4, 3}, 1, {1, 1}, {2}, {1}},
      {{1, 2, 4, 5, 6}, {3, 2, 2, 2, 3}, 1, {0, 1, 1, 0, 1, 1}, {1, 1, 2}, {1, 1, 1}},
      {{1, 16, 14, 14}, {32, 16, 1, 1}, 1, {0, 0, 0, 0}, {1, 1}, {1, 1}},
      {{1, 3, 40, 40}, {16, 3, 7, 7}, 1, {3, 3, 3, 3}, {2, 2}, {1, 1}},  // im2col, stride 2
      // 1x1 read in place: groups, a partial last panel, batch 2
      {{2, 16, 7, 9}, {32, 8, 1, 1}, 2, {0, 0, 0, 0}, {1, 1}, {1, 1}},
      {{1, 8, 3, 3}, {8, 8, 1, 1}, 1, {0, 0, 0, 0}, {1, 1}, {1, 1}},
      // depthwise: strides 1/2/3, widths around the vector width, dilation, 5x5, multiplier 2
      {{2, 5, 15, 15}, {5, 1, 3, 3}, 5, {1, 1, 1, 1}, {2, 2}, {1, 1}},
      {{1, 3, 7, 7}, {3, 1, 3, 3}, 3, {0, 1, 2, 1}, {1, 1}, {1, 1}},
      {{1, 2, 9, 37}, {2, 1, 3, 3}, 2, {1, 1, 1, 1}, {1, 1}, {1, 1}},
      {{1, 2, 12, 40}, {2, 1, 3, 3}, 2, {1, 2, 1, 2}, {1, 2}, {2, 2}},
      {{1, 3, 11, 20}, {3, 1, 5, 5}, 3, {2, 2, 2, 2}, {1, 3}, {1, 1}},
      {{1, 4, 20, 17}, {8, 1, 3, 2}, 4, {0, 0, 1, 1}, {2, 1}, {1, 1}},
  };
  for (const auto& k : cases) {
    for (int konst = 0; konst < 2; ++konst) {
      Attributes a;
      a.Set("group", testing::AttrInt(k.group));
      a.Set("pads", testing::AttrInts(k.pads));
      a.Set("strides", testing::AttrInts(k.strides));
      a.Set("dilations", testing::AttrInts(k.dil));
      Check("Conv", a,
            {Rand(DataType::kFloat, k.x), Rand(DataType::kFloat, k.w, -1, 1, 2),
             Rand(DataType::kFloat, {k.w[0]}, -1, 1, 3)},
            {false, konst != 0, konst != 0}, 1, 11, 1e-4, 1e-4);
    }
  }
  Attributes same;
  same.Set("auto_pad", Str("SAME_UPPER"));
  same.Set("strides", testing::AttrInts({2, 2}));
  Check("Conv", same, {Rand(DataType::kFloat, {1, 3, 7, 7}), Rand(DataType::kFloat, {8, 3, 3, 3})},
        {false, true}, 1, 11, 1e-4, 1e-4);
  Attributes ct;
  ct.Set("strides", testing::AttrInts({2, 2}));
  ct.Set("pads", testing::AttrInts({1, 0, 1, 1}));
  ct.Set("group", testing::AttrInt(2));
  Check("ConvTranspose", ct,
        {Rand(DataType::kFloat, {1, 4, 3, 4}), Rand(DataType::kFloat, {4, 3, 3, 2}),
         Rand(DataType::kFloat, {6})},
        {false, true, true}, 1, 11, 1e-4, 1e-4);
  for (const char* op : {"MaxPool", "AveragePool", "LpPool"}) {
    for (int cip = 0; cip < 2; ++cip) {
      Attributes p;
      p.Set("kernel_shape", testing::AttrInts({3, 2}));
      p.Set("pads", testing::AttrInts({1, 1, 1, 0}));
      p.Set("strides", testing::AttrInts({2, 1}));
      if (std::string(op) == "AveragePool") p.Set("count_include_pad", testing::AttrInt(cip));
      Check(op, p, {Rand(DataType::kFloat, {2, 3, 7, 6})}, {}, 1, 18);
    }
  }
  Attributes mp;
  mp.Set("kernel_shape", testing::AttrInts({2, 2}));
  Check("MaxPool", mp, {Rand(DataType::kFloat, {1, 2, 4, 5})}, {}, 2, 12);
}

// 8-bit MaxPool (quantized models keep it in int8 / uint8) on the tiled depthwise kernel,
// exactly: stride 2 with pads (ResNet's stem), odd widths past one vector, a window on the pads.
TEST(OpenClTest, MaxPool8Bit) {
  struct Case {
    Shape x;
    std::vector<int64_t> k, s, pads;
  };
  const Case cases[] = {{{1, 3, 13, 37}, {3, 3}, {2, 2}, {1, 1, 1, 1}},
                        {{2, 2, 9, 40}, {2, 2}, {2, 2}, {0, 0, 0, 0}},
                        {{1, 2, 7, 21}, {3, 2}, {1, 1}, {2, 1, 2, 1}}};
  for (const Case& k : cases)
    for (DataType t : {DataType::kInt8, DataType::kUInt8}) {
      SCOPED_TRACE(k.x.ToString() + " " + std::string(DataTypeName(t)));
      Attributes p;
      p.Set("kernel_shape", testing::AttrInts(k.k));
      p.Set("strides", testing::AttrInts(k.s));
      p.Set("pads", testing::AttrInts(k.pads));
      const bool s8 = t == DataType::kInt8;
      Check("MaxPool", p, {Rand(t, k.x, s8 ? -128 : 0, s8 ? 127.99 : 255.99, 7)}, {}, 1, 12, 0, 0);
    }
}

// The engine's fused Relu / Clip on every Conv path: GEMM (im2col and in place), depthwise,
// direct (few channels per group) and transposed.
TEST(OpenClTest, ConvFusedClamp) {
  struct Case {
    std::string op;
    Shape x, w;
    int64_t group, pad, stride;
  };
  std::vector<Case> cases = {
      {"Conv", {1, 3, 9, 9}, {16, 3, 3, 3}, 1, 1, 2},
      {"Conv", {1, 16, 7, 9}, {24, 16, 1, 1}, 1, 0, 1},
      {"Conv", {1, 6, 20, 20}, {6, 1, 3, 3}, 6, 1, 1},
      {"Conv", {1, 6, 9, 9}, {4, 3, 3, 3}, 2, 1, 1},
      {"ConvTranspose", {1, 4, 3, 4}, {4, 3, 3, 3}, 1, 1, 2},
  };
  for (const auto& k : cases) {
    for (auto [lo, hi] : {std::pair<float, float>{0.f, INFINITY}, {0.f, 0.5f}, {-0.25f, 0.25f}}) {
      Attributes a;
      a.Set("group", testing::AttrInt(k.group));
      a.Set("pads", testing::AttrInts({k.pad, k.pad, k.pad, k.pad}));
      a.Set("strides", testing::AttrInts({k.stride, k.stride}));
      int64_t m = k.op == "Conv" ? k.w[0] : k.w[1] * k.group;
      Check(k.op, a,
            {Rand(DataType::kFloat, k.x), Rand(DataType::kFloat, k.w, -1, 1, 2),
             Rand(DataType::kFloat, {m}, -1, 1, 3)},
            {false, true, true}, 1, 11, 1e-4, 1e-4, {true, lo, hi});
    }
  }
}

TEST(OpenClTest, Normalizations) {
  Check(
      "BatchNormalization", {},
      {Rand(DataType::kFloat, {2, 3, 4}), Rand(DataType::kFloat, {3}), Rand(DataType::kFloat, {3}),
       Rand(DataType::kFloat, {3}), Rand(DataType::kFloat, {3}, 0.5, 1)},
      {false, true, true, true, true}, 1, 15);
  Check("InstanceNormalization", {},
        {Rand(DataType::kFloat, {2, 3, 4, 5}), Rand(DataType::kFloat, {3}),
         Rand(DataType::kFloat, {3})},
        {false, true, true});
  for (int64_t axis : {-1, 1}) {
    Attributes a;
    a.Set("axis", testing::AttrInt(axis));
    Check("LayerNormalization", a,
          {Rand(DataType::kFloat, {2, 3, 4}),
           Rand(DataType::kFloat, axis == -1 ? Shape{4} : Shape{3, 4}),
           Rand(DataType::kFloat, axis == -1 ? Shape{4} : Shape{3, 4})},
          {false, true, true}, 3, 17, 1e-4, 1e-4);
  }
}

// GFLOP/s of the GEMM and conv kernels (informational; set OUTPOST_OPENCL_BENCH=1).
TEST(OpenClTest, GemmThroughput) {
  if (!Cl() || !std::getenv("OUTPOST_OPENCL_BENCH")) GTEST_SKIP() << "set OUTPOST_OPENCL_BENCH=1";
  auto bench = [](const char* what, const std::string& op, Attributes attrs, std::vector<Tensor> in,
                  std::vector<bool> consts, const Shape& out_shape, double flops) {
    std::vector<Tensor> metas;
    for (size_t i = 0; i < in.size(); ++i)
      metas.push_back(consts[i] ? in[i] : Tensor::Meta(in[i].dtype(), in[i].shape()));
    std::vector<const Tensor*> mp;
    for (auto& t : metas) mp.push_back(&t);
    Tensor om = Tensor::Meta(DataType::kFloat, out_shape);
    std::vector<const Tensor*> op_out = {&om};
    kernels::NodeInfo node{"n", op, "", 13, attrs};
    auto prep = Cl()->Prepare(node, mp, op_out);
    ASSERT_TRUE(prep.ok()) << prep.status().ToString();
    std::vector<std::shared_ptr<kernels::Buffer>> bufs;
    std::vector<Tensor> dev(in.size());
    std::vector<const Tensor*> ptrs;
    for (size_t i = 0; i < in.size(); ++i) {
      if (consts[i]) {
        ptrs.push_back(&in[i]);
        continue;
      }
      bufs.push_back(*Cl()->Allocate(in[i].nbytes()));
      dev[i] = bufs.back()->View(in[i].dtype(), in[i].shape(), 0);
      ASSERT_TRUE(Cl()->CopyFromHost(in[i], dev[i]).ok());
      ptrs.push_back(&dev[i]);
    }
    DeviceSink sink;
    ASSERT_TRUE((*prep)->Execute(ptrs, &sink).ok());
    ASSERT_TRUE(Cl()->Synchronize().ok());
    std::vector<double> times;
    for (int rep = 0; rep < 7; ++rep) {
      auto t0 = std::chrono::steady_clock::now();
      for (int i = 0; i < 3; ++i) ASSERT_TRUE((*prep)->Execute(ptrs, &sink).ok());
      ASSERT_TRUE(Cl()->Synchronize().ok());
      times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() /
                      3);
    }
    std::sort(times.begin(), times.end());
    std::printf("[bench] %-28s median %8.3f ms  %7.1f GFLOP/s (best %7.1f)\n", what, times[3] * 1e3,
                flops / times[3] * 1e-9, flops / times[0] * 1e-9);
  };
  for (int n : {512, 1024}) {
    std::string name = "MatMul " + std::to_string(n) + "^3 const B";
    bench(name.c_str(), "MatMul", {},
          {Rand(DataType::kFloat, {n, n}), Rand(DataType::kFloat, {n, n})}, {false, true}, {n, n},
          2.0 * n * n * n);
  }
  bench("MatMul 1024^3 runtime B", "MatMul", {},
        {Rand(DataType::kFloat, {1024, 1024}), Rand(DataType::kFloat, {1024, 1024})},
        {false, false}, {1024, 1024}, 2.0 * 1024 * 1024 * 1024);
  Attributes c3;
  c3.Set("pads", testing::AttrInts({1, 1, 1, 1}));
  bench("Conv 64->64 3x3 56x56", "Conv", c3,
        {Rand(DataType::kFloat, {1, 64, 56, 56}), Rand(DataType::kFloat, {64, 64, 3, 3})},
        {false, true}, {1, 64, 56, 56}, 2.0 * 64 * 64 * 9 * 56 * 56);
  bench("Conv 256->256 3x3 14x14", "Conv", c3,
        {Rand(DataType::kFloat, {1, 256, 14, 14}), Rand(DataType::kFloat, {256, 256, 3, 3})},
        {false, true}, {1, 256, 14, 14}, 2.0 * 256 * 256 * 9 * 14 * 14);
  for (auto [ci, co, hw] :
       {std::tuple<int, int, int>{16, 96, 112}, {96, 24, 56}, {160, 960, 7}, {576, 64, 56}}) {
    std::string name = "Conv 1x1 " + std::to_string(ci) + "->" + std::to_string(co) + " " +
                       std::to_string(hw) + "^2";
    bench(name.c_str(), "Conv", {},
          {Rand(DataType::kFloat, {1, ci, hw, hw}), Rand(DataType::kFloat, {co, ci, 1, 1})},
          {false, true}, {1, co, hw, hw}, 2.0 * ci * co * hw * hw);
  }
  for (auto [ch, hw, stride] : {std::tuple<int, int, int>{32, 112, 1},
                                {96, 112, 2},
                                {144, 56, 1},
                                {576, 14, 1},
                                {960, 7, 1}}) {
    Attributes dw = c3;
    dw.Set("group", testing::AttrInt(ch));
    dw.Set("strides", testing::AttrInts({stride, stride}));
    int o = (hw - 1) / stride + 1;
    std::string name = "Conv dw " + std::to_string(ch) + " " + std::to_string(hw) + "^2 s" +
                       std::to_string(stride);
    bench(name.c_str(), "Conv", dw,
          {Rand(DataType::kFloat, {1, ch, hw, hw}), Rand(DataType::kFloat, {ch, 1, 3, 3})},
          {false, true}, {1, ch, o, o}, 2.0 * ch * 9 * o * o);
  }
}

}  // namespace
}  // namespace outpost
