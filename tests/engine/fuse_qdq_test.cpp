// The QDQ fusion pass (runtime/engine/src/fuse_qdq.cpp): every fused pattern gives the outputs of
// the same model run unfused (DequantizeLinear -> float op -> QuantizeLinear, each op on its own)
// within one quantization step, and is reported as integer by the load report; patterns that
// must not be fused are left alone and still give the unfused outputs.
//
// Why one step and not exact equality: the float graph accumulates Conv / MatMul / pool sums in
// float32 (rounded at every add, in an order of its own) while the integer kernels accumulate
// exactly and scale once; a result that lands within a float32 rounding error of a rounding tie
// can quantize one step apart. QLinearAdd/Mul/Concat and the pass-through ops compute in the
// float graph's order and are checked for exact equality.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <map>
#include <set>

#include "model_builder.h"
#include "outpost/kernels/kernel.h"

namespace outpost::engine {
namespace {

using enginetest::AddInitializer;
using enginetest::ModelBuilder;

struct QP {
  bool int8 = true;
  std::vector<float> scale = {0.05f};
  std::vector<int> zp = {0};
  int axis = 1;
};

class QdqModel {
 public:
  explicit QdqModel(int opset = 13) : b(opset) {}
  ModelBuilder b;

  std::string Name(const std::string& p) { return p + std::to_string(uid_++); }
  // Scale and zero point initializers of q (1-D when more than one value, else scalars).
  std::pair<std::string, std::string> Params(const QP& q) {
    const std::string s = Name("scale"), z = Name("zp");
    std::vector<int64_t> dims;
    if (q.scale.size() > 1) dims = {static_cast<int64_t>(q.scale.size())};
    AddInitializer(b.g, s, dims, q.scale);
    Int(z, dims, q.zp, q.int8);
    return {s, z};
  }
  void Int(const std::string& name, std::vector<int64_t> dims, const std::vector<int>& v,
           bool int8) {
    auto* t = b.g->add_initializer();
    t->set_name(name);
    t->set_data_type(int8 ? onnx::TensorProto::INT8 : onnx::TensorProto::UINT8);
    for (int64_t d : dims) t->add_dims(d);
    for (int x : v) t->add_int32_data(x);
  }
  void Int32(const std::string& name, std::vector<int64_t> dims, const std::vector<int>& v) {
    auto* t = b.g->add_initializer();
    t->set_name(name);
    t->set_data_type(onnx::TensorProto::INT32);
    for (int64_t d : dims) t->add_dims(d);
    for (int x : v) t->add_int32_data(x);
  }
  onnx::NodeProto* DqNode(const std::string& in, const QP& q, const std::string& out) {
    auto [s, z] = Params(q);
    auto* n = b.Node("DequantizeLinear", {in, s, z}, {out});
    if (q.scale.size() > 1) SetInt(n, "axis", q.axis);
    return n;
  }
  std::string Dq(const std::string& in, const QP& q) {
    const std::string out = Name("dq");
    DqNode(in, q, out);
    return out;
  }
  std::string Q(const std::string& in, const QP& q, const std::string& out_name = "") {
    auto [s, z] = Params(q);
    const std::string out = out_name.empty() ? Name("q") : out_name;
    b.Node("QuantizeLinear", {in, s, z}, {out});
    return out;
  }
  // A float graph input x of `dims`, quantized with q: returns the quantized value.
  std::string QInput(const std::string& x, std::vector<int64_t> dims, const QP& q) {
    b.Input(x, dims);
    return Q(x, q);
  }
  // A constant weight of 8-bit integers, dequantized with q.
  std::string Weight(std::vector<int64_t> dims, const QP& q, int seed) {
    int64_t n = 1;
    for (int64_t d : dims) n *= d;
    std::vector<int> v(n);
    const int lo = q.int8 ? -127 : 0, span = q.int8 ? 255 : 256;
    for (int64_t i = 0; i < n; ++i) v[i] = lo + static_cast<int>((i * 7919 + seed * 104729) % span);
    const std::string w = Name("w");
    Int(w, dims, v, q.int8);
    return Dq(w, q);
  }
  static void SetInt(onnx::NodeProto* n, const std::string& k, int64_t v) {
    auto* a = n->add_attribute();
    a->set_name(k);
    a->set_type(onnx::AttributeProto::INT);
    a->set_i(v);
  }
  static void SetInts(onnx::NodeProto* n, const std::string& k, std::vector<int64_t> v) {
    auto* a = n->add_attribute();
    a->set_name(k);
    a->set_type(onnx::AttributeProto::INTS);
    for (int64_t x : v) a->add_ints(x);
  }

 private:
  int uid_ = 0;
};

Tensor Input(Shape s, int seed, float range = 2.f) {
  Tensor t = Tensor::Allocate(DataType::kFloat, s).value();
  for (int64_t i = 0; i < t.numel(); ++i)
    t.data<float>()[i] =
        range * static_cast<float>(((i * 7919 + seed * 104729) % 201) - 100) / 100.f;
  return t;
}

struct Compared {
  int max_diff = 0;
  int64_t differing = 0, count = 0;
  size_t distinct = 0;  // distinct output values: a test whose outputs all saturate proves little
  std::map<std::string, int> precision;     // of the fused session's nodes that run
  std::map<std::string, std::string> from;  // node op type -> qdq_from
  std::string listing;                      // the fused session's nodes, for failure messages
};

// Loads the model fused and unfused, runs both on `inputs`, compares every output element.
Compared RunBoth(QdqModel& m, const std::vector<std::pair<std::string, Tensor>>& inputs) {
  Compared c;
  SessionOptions plain;
  plain.fuse_qdq = false;
  auto fused = m.b.Load();
  auto unfused = m.b.Load(plain);
  EXPECT_TRUE(fused.ok()) << fused.status().ToString();
  EXPECT_TRUE(unfused.ok()) << unfused.status().ToString();
  if (!fused.ok() || !unfused.ok()) return c;
  auto a = (*fused)->Run(inputs);
  auto b = (*unfused)->Run(inputs);
  EXPECT_TRUE(a.ok()) << a.status().ToString();
  EXPECT_TRUE(b.ok()) << b.status().ToString();
  if (!a.ok() || !b.ok()) return c;
  std::set<int64_t> values;
  for (size_t k = 0; k < a->size(); ++k) {
    const Tensor& x = (*a)[k];
    const Tensor& y = (*b)[k];
    EXPECT_EQ(x.dtype(), y.dtype());
    EXPECT_EQ(x.shape(), y.shape());
    if (x.shape() != y.shape() || x.dtype() != y.dtype()) continue;
    for (int64_t i = 0; i < x.numel(); ++i) {
      const int d = static_cast<int>(std::llabs(ReadInt(x, i) - ReadInt(y, i)));
      c.max_diff = std::max(c.max_diff, d);
      c.differing += d != 0;
      ++c.count;
      values.insert(ReadInt(x, i));
    }
  }
  c.distinct = values.size();

  for (const auto& p : (*fused)->report().placement) {
    if (p.backend == "folded") continue;
    c.precision[p.precision]++;
    c.listing += "\n  " + p.node + " " + p.op_type + " " + p.precision + " " + p.qdq_from;
    if (!p.qdq_from.empty()) c.from[p.op_type] = p.qdq_from;
  }
  return c;
}

struct ConvParam {
  bool int8;
  bool per_channel;
  bool asym;
  std::string act;   // "", "Relu", "Clip"
  std::string bias;  // "", "int32", "float"
};

class QdqConvTest : public ::testing::TestWithParam<ConvParam> {};

TEST_P(QdqConvTest, FusesIntoQLinearConvWithinOneStep) {
  const ConvParam p = GetParam();
  QdqModel m;
  const int64_t c = 3, mo = 4, h = 7, w = 7;
  QP qx{p.int8, {0.02f}, {p.asym ? (p.int8 ? 5 : 128) : (p.int8 ? 0 : 128)}};
  if (!p.int8 && !p.asym) qx.zp = {128};  // uint8 "symmetric" = zero point mid-range
  QP qw{p.int8, {0.01f}, {p.int8 ? 0 : 128}, 0};
  if (p.per_channel) {
    qw.scale = {0.01f, 0.02f, 0.005f, 0.015f};
    qw.zp = p.int8 ? std::vector<int>{0, 0, 0, 0} : std::vector<int>{128, 120, 130, 128};
  }
  QP qy{p.int8, {0.08f}, {p.asym ? (p.int8 ? -10 : 100) : (p.int8 ? 0 : 128)}};
  const std::string xq = m.QInput("x", {1, c, h, w}, qx);
  std::vector<std::string> ins = {m.Dq(xq, qx), m.Weight({mo, c, 3, 3}, qw, 3)};
  if (p.bias == "float") {
    AddInitializer(m.b.g, "bias", {mo}, {0.1f, -0.2f, 0.05f, 0.3f});
    ins.push_back("bias");
  } else if (p.bias == "int32") {
    std::vector<float> bs;
    for (int64_t k = 0; k < mo; ++k) bs.push_back(0.02f * qw.scale[p.per_channel ? k : 0]);
    m.Int32("bias_q", {mo}, {50, -100, 7, 400});
    AddInitializer(m.b.g, "bias_s", {mo}, bs);
    auto* d = m.b.Node("DequantizeLinear", {"bias_q", "bias_s"}, {"bias"});
    QdqModel::SetInt(d, "axis", 0);
    ins.push_back("bias");
  }
  auto* conv = m.b.Node("Conv", ins, {"conv"});
  QdqModel::SetInts(conv, "pads", {1, 1, 1, 1});
  std::string last = "conv";
  if (p.act == "Relu") {
    m.b.Node("Relu", {"conv"}, {"act"});
    last = "act";
  } else if (p.act == "Clip") {
    AddInitializer(m.b.g, "lo", {}, {0.f});
    AddInitializer(m.b.g, "hi", {}, {1.5f});
    m.b.Node("Clip", {"conv", "lo", "hi"}, {"act"});
    last = "act";
  }
  m.Q(last, qy, "y");
  m.b.Output("y");
  Compared r = RunBoth(m, {{"x", Input(Shape{1, c, h, w}, 1)}});
  EXPECT_LE(r.max_diff, 1);
  EXPECT_LT(r.differing * 20, r.count) << "more than 5% of outputs one step off";
  EXPECT_EQ(r.count, mo * h * w);
  EXPECT_GE(r.distinct, 10u);
  // The activation is folded into the integer convolution (its clamp attributes).
  EXPECT_EQ(r.from[p.act.empty() ? "QLinearConv" : "QLinearConv+" + p.act],
            p.act.empty() ? "Conv" : "Conv+" + p.act);
  EXPECT_EQ(r.from.count("Clip"), 0u);
  // The input QuantizeLinear stays (convert); the rest runs in integer.
  EXPECT_EQ(r.precision["float"], 0);
  EXPECT_EQ(r.precision["convert"], 1);
  EXPECT_GE(r.precision["integer"], 1);
}

INSTANTIATE_TEST_SUITE_P(Patterns, QdqConvTest,
                         ::testing::Values(ConvParam{true, false, false, "", ""},
                                           ConvParam{false, false, true, "", ""},
                                           ConvParam{true, true, false, "Relu", "int32"},
                                           ConvParam{false, true, true, "Relu", "float"},
                                           ConvParam{true, false, true, "Clip", "float"},
                                           ConvParam{false, false, false, "Clip", "int32"},
                                           ConvParam{true, true, true, "", "int32"},
                                           ConvParam{false, true, false, "Relu", ""}));

TEST(QdqFuseTest, ConvTransposeFusesIntoQLinearConvTranspose) {
  for (bool per_channel : {false, true}) {
    SCOPED_TRACE(per_channel ? "per channel" : "per tensor");
    QdqModel m;
    QP qx{false, {0.02f}, {120}}, qw{true, {0.01f}, {0}, 1}, qy{false, {0.05f}, {110}};
    if (per_channel) {
      qw.scale = {0.01f, 0.02f, 0.005f};
      qw.zp = {0, 0, 0};
    }
    const std::string xq = m.QInput("x", {1, 2, 5, 5}, qx);
    AddInitializer(m.b.g, "bias", {3}, {0.2f, -0.1f, 0.05f});
    auto* ct =
        m.b.Node("ConvTranspose", {m.Dq(xq, qx), m.Weight({2, 3, 3, 3}, qw, 5), "bias"}, {"ct"});
    QdqModel::SetInts(ct, "strides", {2, 2});
    QdqModel::SetInts(ct, "pads", {1, 1, 1, 1});
    m.b.Node("Relu", {"ct"}, {"r"});
    m.Q("r", qy, "y");
    m.b.Output("y");
    Compared r = RunBoth(m, {{"x", Input(Shape{1, 2, 5, 5}, 4)}});
    EXPECT_LE(r.max_diff, 1);
    EXPECT_EQ(r.count, 3 * 9 * 9);
    EXPECT_GE(r.distinct, 10u);
    EXPECT_EQ(r.from["QLinearConvTranspose"], "ConvTranspose+Relu");
    EXPECT_EQ(r.precision["float"], 0) << r.listing;
  }
}

TEST(QdqFuseTest, MatMulPerTensorAndPerColumn) {
  for (bool per_col : {false, true})
    for (bool int8 : {true, false}) {
      SCOPED_TRACE(std::string(per_col ? "per column" : "per tensor") +
                   (int8 ? " int8" : " uint8"));
      QdqModel m;
      QP qa{int8, {0.03f}, {int8 ? 3 : 120}};
      QP qb{int8, {0.02f}, {int8 ? 0 : 128}, 1};
      if (per_col) {
        qb.scale = {0.02f, 0.01f, 0.03f, 0.005f, 0.02f};
        qb.zp = int8 ? std::vector<int>{0, 0, 0, 0, 0} : std::vector<int>{128, 100, 128, 140, 128};
      }
      QP qy{int8, {0.1f}, {int8 ? -3 : 130}};
      const std::string aq = m.QInput("a", {3, 6}, qa);
      m.b.Node("MatMul", {m.Dq(aq, qa), m.Weight({6, 5}, qb, 7)}, {"mm"});
      m.Q("mm", qy, "y");
      m.b.Output("y");
      Compared r = RunBoth(m, {{"a", Input(Shape{3, 6}, 2)}});
      EXPECT_LE(r.max_diff, 1);
      EXPECT_EQ(r.count, 15);
      EXPECT_GE(r.distinct, 10u);
      EXPECT_EQ(r.from["QLinearMatMul"], "MatMul");
      EXPECT_EQ(r.precision["float"], 0);
    }
}

// Both MatMul operands activations (attention's Q @ K^T), followed by a Relu whose clamp the
// int8 output does not imply: QLinearMatMul, then an integer Clip.
TEST(QdqFuseTest, MatMulOfTwoActivationsWithRelu) {
  QdqModel m;
  QP qa{true, {0.03f}, {2}}, qb{true, {0.02f}, {-1}}, qy{true, {0.05f}, {-20}};
  const std::string aq = m.QInput("a", {2, 3, 4}, qa);
  const std::string bq = m.QInput("b", {2, 4, 5}, qb);
  m.b.Node("MatMul", {m.Dq(aq, qa), m.Dq(bq, qb)}, {"mm"});
  m.b.Node("Relu", {"mm"}, {"r"});
  m.Q("r", qy, "y");
  m.b.Output("y");
  Compared r = RunBoth(m, {{"a", Input(Shape{2, 3, 4}, 1)}, {"b", Input(Shape{2, 4, 5}, 2)}});
  EXPECT_LE(r.max_diff, 1);
  EXPECT_EQ(r.count, 30);
  EXPECT_GE(r.distinct, 8u);
  EXPECT_EQ(r.from["QLinearMatMul+Relu"], "MatMul+Relu");  // the Relu is the kernel's clamp
  EXPECT_EQ(r.from.count("Clip"), 0u);
  EXPECT_EQ(r.precision["float"], 0);
}

TEST(QdqFuseTest, AddAndMulExactWithBroadcasting) {
  for (const char* op : {"Add", "Mul"})
    for (bool int8 : {true, false}) {
      SCOPED_TRACE(std::string(op) + (int8 ? " int8" : " uint8"));
      QdqModel m;
      QP qa{int8, {0.02f}, {int8 ? -4 : 110}}, qb{int8, {0.03f}, {int8 ? 2 : 130}};
      QP qy{int8, {op == std::string("Add") ? 0.05f : 0.04f}, {int8 ? 1 : 125}};
      const std::string aq = m.QInput("a", {2, 3, 4}, qa);
      const std::string bq = m.QInput("b", {3, 1}, qb);
      m.b.Node(op, {m.Dq(aq, qa), m.Dq(bq, qb)}, {"sum"});
      m.Q("sum", qy, "y");
      m.b.Output("y");
      Compared r = RunBoth(m, {{"a", Input(Shape{2, 3, 4}, 3)}, {"b", Input(Shape{3, 1}, 4)}});
      EXPECT_EQ(r.max_diff, 0);
      EXPECT_EQ(r.count, 24);
      EXPECT_EQ(r.from[std::string("QLinear") + op], op);
      EXPECT_EQ(r.precision["float"], 0);
    }
}

TEST(QdqFuseTest, PoolsAndConcat) {
  QdqModel m;
  QP qx{false, {0.02f}, {120}}, qy{false, {0.015f}, {128}}, qz{false, {0.03f}, {100}};
  const std::string xq = m.QInput("x", {1, 2, 5, 5}, qx);
  auto* ap = m.b.Node("AveragePool", {m.Dq(xq, qx)}, {"ap"});
  QdqModel::SetInts(ap, "kernel_shape", {3, 3});
  QdqModel::SetInts(ap, "pads", {1, 1, 1, 1});
  const std::string apq = m.Q("ap", qy);
  m.b.Node("GlobalAveragePool", {m.Dq(xq, qx)}, {"gap"});
  m.Q("gap", qz, "g");
  // Concat of the pooled tensor (requantized) and the input (other scale) on channels.
  auto* cat = m.b.Node("Concat", {m.Dq(apq, qy), m.Dq(xq, qx)}, {"cat"});
  QdqModel::SetInt(cat, "axis", 1);
  m.Q("cat", qz, "c");
  m.b.Output("g");
  m.b.Output("c");
  Compared r = RunBoth(m, {{"x", Input(Shape{1, 2, 5, 5}, 5)}});
  EXPECT_LE(r.max_diff, 1);
  EXPECT_EQ(r.count, 2 + 4 * 25);
  EXPECT_EQ(r.from["QLinearAveragePool"], "AveragePool");
  EXPECT_EQ(r.from["QLinearGlobalAveragePool"], "GlobalAveragePool");
  EXPECT_EQ(r.from["QLinearConcat"], "Concat");
  EXPECT_EQ(r.precision["float"], 0) << r.listing;
}

TEST(QdqFuseTest, PassThroughOpsRunOnIntegersExactly) {
  QdqModel m;
  QP q{true, {0.02f}, {-7}};
  const std::string xq = m.QInput("x", {1, 2, 4, 4}, q);
  auto* mp = m.b.Node("MaxPool", {m.Dq(xq, q)}, {"mp"});
  QdqModel::SetInts(mp, "kernel_shape", {2, 2});
  std::string v = m.Q("mp", q);
  auto* tr = m.b.Node("Transpose", {m.Dq(v, q)}, {"tr"});
  QdqModel::SetInts(tr, "perm", {0, 2, 3, 1});
  v = m.Q("tr", q);
  m.b.Node("Relu", {m.Dq(v, q)}, {"relu"});
  v = m.Q("relu", q);
  auto* shape = m.b.g->add_initializer();
  shape->set_name("shape");
  shape->set_data_type(onnx::TensorProto::INT64);
  shape->add_dims(2);
  shape->add_int64_data(1);
  shape->add_int64_data(-1);
  m.b.Node("Reshape", {m.Dq(v, q), "shape"}, {"rs"});
  v = m.Q("rs", q);
  // [1, 18] -> Unsqueeze(2) [1, 18, 1] -> Squeeze(2) [1, 18] -> Flatten [1, 18] -> Clip(-0.1, 2)
  // -> Resize (nearest, x2 on the last axis) [1, 36].
  auto* axes = m.b.g->add_initializer();
  axes->set_name("axes");
  axes->set_data_type(onnx::TensorProto::INT64);
  axes->add_dims(1);
  axes->add_int64_data(2);
  m.b.Node("Unsqueeze", {m.Dq(v, q), "axes"}, {"us"});
  v = m.Q("us", q);
  m.b.Node("Squeeze", {m.Dq(v, q), "axes"}, {"sq"});
  v = m.Q("sq", q);
  m.b.Node("Flatten", {m.Dq(v, q)}, {"fl"});
  v = m.Q("fl", q);
  AddInitializer(m.b.g, "lo", {}, {-0.1f});
  AddInitializer(m.b.g, "hi", {}, {2.f});
  m.b.Node("Clip", {m.Dq(v, q), "lo", "hi"}, {"cl"});
  v = m.Q("cl", q);
  AddInitializer(m.b.g, "scales", {2}, {1.f, 2.f});
  m.b.Node("Resize", {m.Dq(v, q), "", "scales"}, {"rz"});
  m.Q("rz", q, "y");
  m.b.Output("y");
  Compared r = RunBoth(m, {{"x", Input(Shape{1, 2, 4, 4}, 6, 3.f)}});
  EXPECT_EQ(r.max_diff, 0);
  EXPECT_EQ(r.count, 36);
  EXPECT_GE(r.distinct, 5u);
  EXPECT_EQ(r.from["Unsqueeze"], "Unsqueeze");
  EXPECT_EQ(r.from["Squeeze"], "Squeeze");
  EXPECT_EQ(r.from["Flatten"], "Flatten");
  EXPECT_EQ(r.from["Resize"], "Resize");
  EXPECT_EQ(r.from["MaxPool"], "MaxPool");
  EXPECT_EQ(r.from["Transpose"], "Transpose");
  EXPECT_EQ(r.from["Reshape"], "Reshape");
  EXPECT_EQ(r.precision["integer"], 9);
  EXPECT_EQ(r.precision["float"], 0);
  EXPECT_EQ(r.precision["convert"], 1);
}

// Patterns that must stay as they are: a scale that is not constant, an op whose Q type differs
// from its inputs', a pass-through whose DQ and Q disagree. They still run, in float, and give the
// unfused outputs exactly (they are the unfused graph).
TEST(QdqFuseTest, UnfusablePatternsAreLeftAloneAndCorrect) {
  {  // Non-constant scale: the Conv input's scale is a graph input.
    QdqModel m;
    QP qx{true, {0.02f}, {0}}, qw{true, {0.01f}, {0}, 0}, qy{true, {0.05f}, {0}};
    const std::string xq = m.QInput("x", {1, 2, 4, 4}, qx);
    m.b.Input("xs", {});
    AddInitializer(m.b.g, "xz_f", {}, {0.f});
    m.Int("xz", {}, {0}, true);
    m.b.Node("DequantizeLinear", {xq, "xs", "xz"}, {"xf"});
    m.b.Node("Conv", {"xf", m.Weight({3, 2, 1, 1}, qw, 1)}, {"conv"});
    m.Q("conv", qy, "y");
    m.b.Output("y");
    Tensor xs = Tensor::Allocate(DataType::kFloat, Shape{}).value();
    xs.data<float>()[0] = 0.02f;
    Compared r = RunBoth(m, {{"x", Input(Shape{1, 2, 4, 4}, 1)}, {"xs", xs}});
    EXPECT_EQ(r.max_diff, 0);
    EXPECT_TRUE(r.from.empty());
    EXPECT_EQ(r.precision["float"], 1);  // the Conv
  }
  {  // Add whose QuantizeLinear has another type than its inputs: not a QLinearAdd.
    QdqModel m;
    QP qa{true, {0.02f}, {0}}, qy{false, {0.05f}, {128}};
    const std::string aq = m.QInput("a", {2, 3}, qa);
    const std::string bq = m.QInput("b", {2, 3}, qa);
    m.b.Node("Add", {m.Dq(aq, qa), m.Dq(bq, qa)}, {"sum"});
    m.Q("sum", qy, "y");
    m.b.Output("y");
    Compared r = RunBoth(m, {{"a", Input(Shape{2, 3}, 1)}, {"b", Input(Shape{2, 3}, 2)}});
    EXPECT_EQ(r.max_diff, 0);
    EXPECT_TRUE(r.from.empty());
    EXPECT_EQ(r.precision["float"], 1);
  }
  {  // MaxPool between a DQ and a Q of other scales: a requantization, not a pass-through.
    QdqModel m;
    QP qa{true, {0.02f}, {0}}, qb{true, {0.03f}, {0}};
    const std::string xq = m.QInput("x", {1, 1, 4, 4}, qa);
    auto* mp = m.b.Node("MaxPool", {m.Dq(xq, qa)}, {"mp"});
    QdqModel::SetInts(mp, "kernel_shape", {2, 2});
    m.Q("mp", qb, "y");
    m.b.Output("y");
    Compared r = RunBoth(m, {{"x", Input(Shape{1, 1, 4, 4}, 3)}});
    EXPECT_EQ(r.max_diff, 0);
    EXPECT_TRUE(r.from.empty());
    EXPECT_EQ(r.precision["float"], 1);
  }
}

// One DequantizeLinear shared by several consumers (as ONNX Runtime's quantizer writes a residual
// input): each fusable consumer gets a copy and fuses; a consumer that cannot fuse (here a float
// Sigmoid, and the DQ output being a graph output) keeps one shared DQ, not one each.
TEST(QdqFuseTest, SharedDequantizeLinearIsCopiedPerConsumer) {
  QdqModel m;
  QP qx{false, {0.02f}, {128}}, qw{true, {0.01f}, {0}, 0}, qy{false, {0.04f}, {120}};
  const std::string xq = m.QInput("x", {1, 2, 4, 4}, qx);
  const std::string xf = m.Dq(xq, qx);  // shared by Conv, Add, Sigmoid, Identity and the output
  m.b.Node("Conv", {xf, m.Weight({2, 2, 1, 1}, qw, 4)}, {"conv"});
  const std::string cq = m.Q("conv", qy);
  m.b.Node("Add", {m.Dq(cq, qy), xf}, {"sum"});
  m.Q("sum", qy, "y");
  m.b.Node("Sigmoid", {xf}, {"sig"});
  m.Q("sig", qy, "s");
  m.b.Node("Identity", {xf}, {"xf_copy"});
  m.b.Output("y");
  m.b.Output("s");
  m.b.Output("xf_copy");
  m.b.Output(xf);
  auto fused = m.b.Load();
  ASSERT_TRUE(fused.ok()) << fused.status().ToString();
  int dq = 0;
  for (const auto& p : (*fused)->report().placement) dq += p.op_type == "DequantizeLinear";
  EXPECT_EQ(dq, 1) << "the unfused consumers share one DequantizeLinear";
  std::map<std::string, std::string> from;
  for (const auto& p : (*fused)->report().placement)
    if (!p.qdq_from.empty()) from[p.op_type] = p.qdq_from;
  EXPECT_EQ(from["QLinearConv"], "Conv");
  EXPECT_EQ(from["QLinearAdd"], "Add");
  // Outputs against the unfused graph: the float ones exactly, the quantized within one step.
  SessionOptions plain;
  plain.fuse_qdq = false;
  auto unfused = m.b.Load(plain);
  ASSERT_TRUE(unfused.ok());
  auto a = (*fused)->Run({{"x", Input(Shape{1, 2, 4, 4}, 9)}});
  auto b = (*unfused)->Run({{"x", Input(Shape{1, 2, 4, 4}, 9)}});
  ASSERT_TRUE(a.ok() && b.ok());
  ASSERT_EQ(a->size(), 4u);
  for (size_t k = 0; k < a->size(); ++k) {
    const Tensor& x = (*a)[k];
    const Tensor& y = (*b)[k];
    ASSERT_EQ(x.shape(), y.shape());
    for (int64_t i = 0; i < x.numel(); ++i) {
      if (IsFloating(x.dtype()))
        EXPECT_EQ(x.data<float>()[i], y.data<float>()[i]) << k;
      else
        EXPECT_LE(std::llabs(ReadInt(x, i) - ReadInt(y, i)), 1) << k;
    }
  }
}

TEST(QdqFuseTest, GemmBecomesQGemmWhenRegistered) {
  if (!kernels::FindOp("com.microsoft", "QGemm", 1))
    GTEST_SKIP() << "no com.microsoft QGemm kernel in this build (the Gemm rewrite is gated on it)";
  QdqModel m;
  QP qa{false, {0.03f}, {120}}, qb{true, {0.02f, 0.01f, 0.03f}, {0, 0, 0}, 0},
      qy{false, {0.1f}, {128}};
  const std::string aq = m.QInput("a", {2, 4}, qa);
  AddInitializer(m.b.g, "c", {3}, {0.5f, -0.25f, 0.1f});
  auto* gemm = m.b.Node("Gemm", {m.Dq(aq, qa), m.Weight({3, 4}, qb, 2), "c"}, {"g"});
  QdqModel::SetInt(gemm, "transB", 1);
  m.Q("g", qy, "y");
  m.b.Output("y");
  Compared r = RunBoth(m, {{"a", Input(Shape{2, 4}, 8)}});
  EXPECT_LE(r.max_diff, 1);
  EXPECT_EQ(r.from["QGemm"], "Gemm");
}

// INT4 weight-only (opset 21): DequantizeLinear with block_size on a packed int4 / uint4 constant
// feeding MatMul. The weights are unpacked at load and the DQ is folded into a float constant.
// TensorProto.DataType values of UINT4 / INT4 (the Debian onnx headers predate them).
constexpr int kOnnxUInt4 = 21, kOnnxInt4 = 22;

TEST(QdqFuseTest, Int4BlockedWeightsFeedingMatMul) {
  // W [4, 2], blocks of 2 along axis 0: scales [[0.5, 1], [2, 0.25]].
  // int4 W = [[1, -2], [3, -8], [7, 0], [-1, 5]] -> W_f = [[0.5, -2], [1.5, -8], [14, 0],
  // [-2, 1.25]]; x = [1, 2, 3, 4]: y = [0.5 + 3 + 42 - 8, -2 - 16 + 0 + 5] = [37.5, -13].
  // Packed low nibble first: (1, -2) -> 0xE1, (3, -8) -> 0x83, (7, 0) -> 0x07, (-1, 5) -> 0x5F.
  // The uint4 version: W + 8 with zero points 8: (9, 6) -> 0x69, (11, 0) -> 0x0B, (15, 8) -> 0x8F,
  // (7, 13) -> 0xD7; zero points [2, 2] of 8 -> 0x88, 0x88.
  for (bool is_signed : {true, false}) {
    SCOPED_TRACE(is_signed ? "int4" : "uint4");
    ModelBuilder b(21);
    b.m.set_ir_version(10);
    b.Input("x", {1, 4});
    auto* w = b.g->add_initializer();
    w->set_name("w");
    w->set_data_type(is_signed ? kOnnxInt4 : kOnnxUInt4);
    w->add_dims(4);
    w->add_dims(2);
    w->set_raw_data(is_signed ? std::string("\xE1\x83\x07\x5F", 4)
                              : std::string("\x69\x0B\x8F\xD7", 4));
    AddInitializer(b.g, "s", {2, 2}, {0.5f, 1.f, 2.f, 0.25f});
    std::vector<std::string> dq_in = {"w", "s"};
    if (!is_signed) {
      auto* z = b.g->add_initializer();
      z->set_name("z");
      z->set_data_type(kOnnxUInt4);
      z->add_dims(2);
      z->add_dims(2);
      z->set_raw_data(std::string("\x88\x88", 2));
      dq_in.push_back("z");
    }
    auto* dq = b.Node("DequantizeLinear", dq_in, {"wf"});
    QdqModel::SetInt(dq, "axis", 0);
    QdqModel::SetInt(dq, "block_size", 2);
    b.Node("MatMul", {"x", "wf"}, {"y"});
    b.Output("y");
    auto s = b.Load();
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    Tensor x = Tensor::Allocate(DataType::kFloat, Shape{1, 4}).value();
    for (int i = 0; i < 4; ++i) x.data<float>()[i] = static_cast<float>(i + 1);
    auto out = (*s)->Run({{"x", x}});
    ASSERT_TRUE(out.ok()) << out.status().ToString();
    EXPECT_FLOAT_EQ((*out)[0].data<float>()[0], 37.5f);
    EXPECT_FLOAT_EQ((*out)[0].data<float>()[1], -13.f);
    EXPECT_EQ((*s)->report().folded_nodes, 1);  // the DequantizeLinear, once, at load
  }
}

// int2 / uint2 (opset 25, four values a byte) and float4e2m1 (two a byte) constants unpack at
// load with their own type, low bits first, and DequantizeLinear reads them.
TEST(QdqFuseTest, TwoBitAndFloat4ConstantsUnpack) {
  constexpr int kOnnxFloat4E2M1 = 23, kOnnxUInt2 = 25, kOnnxInt2 = 26;
  struct Case {
    int type;
    std::string packed;
    std::vector<float> want;  // decoded by hand, times the scale 0.5
  };
  const std::vector<Case> cases = {
      // int2 codes 01 10 11 00 | 10 -> 1, -2, -1, 0 | -2 (0x39: 00 11 10 01, low bits first)
      {kOnnxInt2, std::string("\x39\x02", 2), {0.5f, -1.f, -0.5f, 0.f, -1.f}},
      // uint2: the same codes are 1, 2, 3, 0 | 2
      {kOnnxUInt2, std::string("\x39\x02", 2), {0.5f, 1.f, 1.5f, 0.f, 1.f}},
      // float4e2m1 codes 0x7 (6), 0x9 (-0.5) | 0xC (-2), 0x3 (1.5) | 0x1 (0.5)
      {kOnnxFloat4E2M1, std::string("\x97\x3C\x01", 3), {3.f, -0.25f, -1.f, 0.75f, 0.25f}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.type);
    ModelBuilder b(25);
    b.m.set_ir_version(11);
    auto* w = b.g->add_initializer();
    w->set_name("w");
    w->set_data_type(c.type);
    w->add_dims(5);
    w->set_raw_data(c.packed);
    AddInitializer(b.g, "s", {}, {0.5f});
    b.Input("x", {5});
    b.Node("DequantizeLinear", {"w", "s"}, {"wf"});
    b.Node("Add", {"x", "wf"}, {"y"});
    b.Output("y");
    auto s = b.Load();
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    Tensor x = Tensor::Allocate(DataType::kFloat, Shape{5}).value();
    for (int i = 0; i < 5; ++i) x.data<float>()[i] = 0.f;
    auto out = (*s)->Run({{"x", x}});
    ASSERT_TRUE(out.ok()) << out.status().ToString();
    for (int i = 0; i < 5; ++i) EXPECT_FLOAT_EQ((*out)[0].data<float>()[i], c.want[i]) << i;
  }
  // A packed size that does not match the shape is named.
  ModelBuilder b(25);
  b.m.set_ir_version(11);
  auto* w = b.g->add_initializer();
  w->set_name("w");
  w->set_data_type(kOnnxInt2);
  w->add_dims(9);  // needs 3 bytes
  w->set_raw_data(std::string("\x39\x02", 2));
  AddInitializer(b.g, "s", {}, {0.5f});
  b.Node("DequantizeLinear", {"w", "s"}, {"y"});
  b.Output("y");
  auto s = b.Load();
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("2-bit tensor 'w' has 2 packed bytes"), std::string::npos)
      << s.status().ToString();
}

TEST(QdqFuseTest, ComMicrosoftDomainLoads) {
  // A QOperator model as ONNX Runtime's tools write it: QLinearAdd in com.microsoft.
  ModelBuilder b(13);
  auto* os = b.m.add_opset_import();
  os->set_domain("com.microsoft");
  os->set_version(1);
  b.Input("a", {2});
  auto* q = b.Node("QuantizeLinear", {"a", "s"}, {"aq"});
  (void)q;
  AddInitializer(b.g, "s", {}, {0.5f});
  auto* add = b.Node("QLinearAdd", {"aq", "s", "", "aq", "s", "", "s", ""}, {"y"});
  add->set_domain("com.microsoft");
  b.Output("y");
  auto s = b.Load();
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  Tensor a = Tensor::Allocate(DataType::kFloat, Shape{2}).value();
  a.data<float>()[0] =
      1.f;  // quantized 2 (uint8); 2 + 2 = 4 in value units of 0.5... (1 + 1) / 0.5 = 4
  a.data<float>()[1] = 3.f;  // quantized 6; (3 + 3) / 0.5 = 12
  auto out = (*s)->Run({{"a", a}});
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_EQ((*out)[0].data<uint8_t>()[0], 4);
  EXPECT_EQ((*out)[0].data<uint8_t>()[1], 12);
}

}  // namespace
}  // namespace outpost::engine
