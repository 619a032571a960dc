// Session behaviour on small graphs built in memory: validation, planning, concurrency.
#include <thread>

#include <gtest/gtest.h>

#include "model_builder.h"
#include "outpost/engine/session.h"

namespace outpost::engine {
namespace {

using enginetest::Filled;
using enginetest::ModelBuilder;

TEST(Session, ListsEveryUnsupportedNodeAtOnce) {
  ModelBuilder b;
  b.Input("x", {2});
  b.Node("FancyOpA", {"x"}, {"y"}, "first_bad");
  b.Node("FancyOpB", {"y"}, {"z"}, "second_bad");
  b.Output("z");
  auto s = b.Load();
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), Code::kUnsupported);
  EXPECT_NE(s.status().message().find("2 node(s) cannot run"), std::string::npos) << s.status().message();
  EXPECT_NE(s.status().message().find("'first_bad' (FancyOpA"), std::string::npos) << s.status().message();
  EXPECT_NE(s.status().message().find("'second_bad' (FancyOpB"), std::string::npos) << s.status().message();
}

TEST(Session, RefusesCyclesAndDanglingValues) {
  {
    ModelBuilder b;
    b.Input("x", {2});
    b.Node("Identity", {"b"}, {"a"}, "n1");
    b.Node("Identity", {"a"}, {"b"}, "n2");
    b.Output("a");
    auto s = b.Load();
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(s.status().code(), Code::kInvalidModel);
    EXPECT_NE(s.status().message().find("cycle"), std::string::npos) << s.status().message();
    EXPECT_NE(s.status().message().find("'n1'"), std::string::npos) << s.status().message();
  }
  {
    ModelBuilder b;
    b.Input("x", {2});
    b.Node("Identity", {"nowhere"}, {"y"}, "lonely");
    b.Output("y");
    auto s = b.Load();
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(s.status().code(), Code::kInvalidModel);
    EXPECT_NE(s.status().message().find("'nowhere'"), std::string::npos) << s.status().message();
    EXPECT_NE(s.status().message().find("'lonely'"), std::string::npos) << s.status().message();
  }
}

TEST(Session, RefusesNewerOpsetAndGarbage) {
  ModelBuilder b(99);
  b.Input("x", {2});
  b.Node("Identity", {"x"}, {"y"});
  b.Output("y");
  auto s = b.Load();
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), Code::kUnsupported);
  EXPECT_NE(s.status().message().find("opset 99"), std::string::npos);
  auto g = Session::LoadFromBytes("this is not a protobuf at all \xff\xff\xff", "", {});
  ASSERT_FALSE(g.ok());
  EXPECT_EQ(g.status().code(), Code::kInvalidModel);
  auto missing = Session::Load("/nonexistent/model.onnx", {});
  EXPECT_EQ(missing.status().code(), Code::kNotFound);
}

// Opsets 24 and 25 changed only element-type lists, except Attention (kernels/README.md): a
// model at 25 runs its ops, an Attention node at 24 is refused by name, 26 is refused whole.
TEST(Session, RunsOpset25ModelsAndRefusesWhatChangedAfter23) {
  {
    ModelBuilder b(25);
    b.Input("x", {3});
    b.Node("Relu", {"x"}, {"y"});
    b.Output("y");
    auto s = b.Load();
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    Tensor x = Tensor::Allocate(DataType::kFloat, Shape{3}).value();
    x.data<float>()[0] = -1.f;
    x.data<float>()[1] = 0.5f;
    x.data<float>()[2] = 2.f;
    auto out = (*s)->Run({{"x", x}});
    ASSERT_TRUE(out.ok()) << out.status().ToString();
    EXPECT_EQ((*out)[0].data<float>()[0], 0.f);
    EXPECT_EQ((*out)[0].data<float>()[2], 2.f);
  }
  {
    ModelBuilder b(24);
    b.Input("q", {1, 2, 3, 4});
    b.Input("k", {1, 2, 3, 4});
    b.Input("v", {1, 2, 3, 4});
    b.Node("Attention", {"q", "k", "v"}, {"y"});
    b.Output("y");
    auto s = b.Load();
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(s.status().code(), Code::kUnsupported);
    EXPECT_NE(s.status().message().find("not supported at opset 24 (supported: 23-23)"),
              std::string::npos)
        << s.status().message();
  }
  {
    ModelBuilder b(26);
    b.Input("x", {3});
    b.Node("Relu", {"x"}, {"y"});
    b.Output("y");
    auto s = b.Load();
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(s.status().code(), Code::kUnsupported);
    EXPECT_NE(s.status().message().find("opsets 1 to 25"), std::string::npos)
        << s.status().message();
  }
}

TEST(Session, ValidatesInputsByName) {
  ModelBuilder b;
  b.Input("x", {-1, 3}, {"batch"});
  b.Node("Identity", {"x"}, {"y"});
  b.Output("y");
  auto s = b.Load();
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  auto wrong_dim = (*s)->Run({{"x", Filled(Shape{2, 4}, 0)}});
  ASSERT_FALSE(wrong_dim.ok());
  EXPECT_EQ(wrong_dim.status().code(), Code::kInvalidArgument);
  EXPECT_NE(wrong_dim.status().message().find("dimension 1: expected 3, got 4"), std::string::npos)
      << wrong_dim.status().message();
  auto missing = (*s)->Run({});
  EXPECT_NE(missing.status().message().find("missing input 'x'"), std::string::npos);
  auto unknown = (*s)->Run({{"zz", Filled(Shape{1, 3}, 0)}});
  EXPECT_NE(unknown.status().message().find("no input named 'zz'"), std::string::npos);
  auto int_in = Tensor::Allocate(DataType::kInt64, Shape{1, 3}).value();
  auto wrong_type = (*s)->Run({{"x", int_in}});
  EXPECT_NE(wrong_type.status().message().find("expected float32, got int64"), std::string::npos);
  // Symbolic batch: two different batch sizes both run (re-planned per shape).
  for (int64_t n : {1, 5, 1}) {
    auto out = (*s)->Run({{"x", Filled(Shape{n, 3}, 1)}});
    ASSERT_TRUE(out.ok()) << out.status().ToString();
    EXPECT_EQ((*out)[0].shape(), (Shape{n, 3}));
    EXPECT_EQ((*out)[0].data<float>()[3 * n - 1], static_cast<float>(3 * n));
  }
}

TEST(Session, PlansMemoryByLiveness) {
  // A chain of 6 identities over a 1 MB tensor: only two intermediates are alive at once.
  ModelBuilder b;
  b.Input("x", {256, 1024});
  std::string prev = "x";
  for (int i = 0; i < 6; ++i) {
    std::string out = "v" + std::to_string(i);
    b.Node("Identity", {prev}, {out});
    prev = out;
  }
  b.Output(prev);
  auto s = b.Load();
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  const uint64_t one = 256 * 1024 * 4;
  EXPECT_LE((*s)->report().planned_peak_bytes, 2 * one);
  EXPECT_GE((*s)->report().planned_peak_bytes, one);
  auto out = (*s)->Run({{"x", Filled(Shape{256, 1024}, 7)}});
  ASSERT_TRUE(out.ok());
  EXPECT_EQ((*out)[0].data<float>()[1000], 1007.0f);
}

TEST(Session, FoldsShapeOfNonConstantInputs) {
  // Shape reads only the (known) shape of x: folded at planning time, so the Reshape that
  // consumes it is planned statically, also when x has a symbolic dimension.
  ModelBuilder b;
  b.Input("x", {-1, 6}, {"batch"});
  b.Node("Relu", {"x"}, {"r"});
  b.Node("Shape", {"r"}, {"s"}, "shape_of_r");
  b.Node("Reshape", {"r", "s"}, {"y"});
  b.Output("y");
  auto s = b.Load();
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  int found = 0;
  for (const auto& p : (*s)->report().placement) {
    if (p.node != "shape_of_r") continue;
    ++found;
    EXPECT_EQ(p.backend, "folded");
  }
  EXPECT_EQ(found, 1);
  auto out = (*s)->Run({{"x", Filled(Shape{3, 6}, 1)}});
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_EQ((*out)[0].shape(), (Shape{3, 6}));
  EXPECT_EQ((*out)[0].data<float>()[17], 18.0f);
}

TEST(Session, ConcurrentRunsAreIndependent) {
  ModelBuilder b;
  b.Input("x", {64, 64});
  b.Node("Identity", {"x"}, {"a"});
  b.Node("Identity", {"a"}, {"y"});
  b.Output("y");
  auto s = b.Load();
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  std::vector<std::thread> threads;
  std::atomic<int> bad{0};
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int rep = 0; rep < 200; ++rep) {
        float base = static_cast<float>(t * 100000 + rep);
        auto out = (*s)->Run({{"x", Filled(Shape{64, 64}, base)}});
        if (!out.ok() || (*out)[0].data<float>()[0] != base || (*out)[0].data<float>()[4095] != base + 4095) ++bad;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(bad.load(), 0);
}

}  // namespace
}  // namespace outpost::engine
