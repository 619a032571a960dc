// The health gate against the real outpostd (started by the test on an ephemeral port): golden
// inputs through the V2 API, ONNX Runtime's golden outputs as the expected answers.
#include "outpost/ota/gate_probe.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "outpost/core/metrics.h"
#include "outpost/ota/daemon.h"
#include "outpost/ota/gate.h"
#include "outpostd/test_util.h"

namespace outpost::ota {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

// A real outpostd serving the manifests a test adds; its stderr printed when the test fails.
class DaemonTest : public ::testing::Test {
 protected:
  void StartDaemon(const std::string& manifest_file, const std::string& manifest) {
    box_.AddManifest(manifest_file, manifest);
    std::string err;
    daemon_ = box_.Start({}, &err);
    ASSERT_TRUE(daemon_) << err;
  }
  void TearDown() override {
    if (HasFailure() && daemon_ && daemon_->proc)
      std::fprintf(stderr, "---- outpostd stderr ----\n%s\n", daemon_->proc->Stderr().c_str());
  }
  ProbeConfig OneModel(const std::string& name, const std::string& in, const std::string& out,
                       int runs) {
    ProbeConfig c;
    c.port = daemon_->port;
    c.runs = runs;
    c.deadline_ms = 60000;
    GoldenModel m;
    m.name = name;
    m.golden_input = in;
    m.golden_output = out;
    c.models.push_back(m);
    return c;
  }
  testing::Sandbox box_;
  std::unique_ptr<testing::Daemon> daemon_;
};

class OtaGateProbeTest : public DaemonTest {
 protected:
  void SetUp() override {
    StartDaemon("iris.yaml", testing::Manifest("iris", "iris_mlp.onnx", {{"threads", "1"}}));
  }
  ProbeConfig Config(const std::string& golden_output) {
    return OneModel("iris", testing::kModelsDir + "/golden/iris_mlp/input_0.npy", golden_output, 5);
  }
};

TEST_F(OtaGateProbeTest, GoldenOutputsPassThroughTheRunningDaemon) {
  GateInput in = Probe(Config(testing::kModelsDir + "/golden/iris_mlp/output_0.npy"));
  EXPECT_TRUE(in.daemon_ready);
  ASSERT_EQ(in.models.size(), 1u);
  EXPECT_EQ(in.models[0].error, "");
  EXPECT_EQ(in.models[0].latencies_ms.size(), 5u);
  ASSERT_EQ(in.models[0].outputs.size(), 1u);  // one file: the first output
  EXPECT_EQ(in.models[0].outputs[0].datatype, "FP32");
  EXPECT_EQ(in.models[0].outputs[0].got.size(), in.models[0].outputs[0].golden.size());
  EXPECT_GT(in.models[0].outputs[0].golden.size(), 0u);
  GateVerdict v = Judge(in);
  EXPECT_TRUE(v.pass) << ::testing::PrintToString(v.failures);
}

TEST_F(OtaGateProbeTest, WrongAnswersAndMissingModelFail) {
  // A release whose model answers differently: the golden output with one value changed.
  std::string golden = testing::kModelsDir + "/golden/iris_mlp/output_0.npy";
  std::string wrong = box_.path("wrong.npy");
  fs::copy_file(golden, wrong);
  {
    std::fstream f(wrong, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(-4, std::ios::end);
    float big = 1234.5f;
    f.write(reinterpret_cast<const char*>(&big), 4);
  }
  GateVerdict v = Judge(Probe(Config(wrong)));
  EXPECT_FALSE(v.pass);
  ASSERT_EQ(v.failures.size(), 1u);
  EXPECT_THAT(v.failures[0], HasSubstr("model 'iris' output '"));
  EXPECT_THAT(v.failures[0], HasSubstr("': 1 of 135 values outside tolerance"));
  EXPECT_THAT(v.failures[0], HasSubstr("golden 1234.5"));

  ProbeConfig c = Config(golden);
  c.models[0].name = "ghost";
  v = Judge(Probe(c));
  EXPECT_FALSE(v.pass);
  EXPECT_THAT(v.failures[0], HasSubstr("model 'ghost': metadata: HTTP 404"));

  // The broker is part of the gate when configured: a closed port fails it.
  c = Config(golden);
  c.broker_host = "127.0.0.1";
  c.broker_port = testing::FreePort();
  v = Judge(Probe(c));
  EXPECT_THAT(v.failures, ::testing::ElementsAre("the MQTT broker is unreachable"));
}

// A two-input two-output model (tests/models/make_multi_io.py; goldens computed with numpy):
// float32 and int64 inputs, a float32 and an int64 output, goldens as directories of one file per
// tensor, .npy and TensorProto .pb. outpostd's own warm-up reads the same directories.
class OtaGateMultiIoTest : public DaemonTest {
 protected:
  static std::string Golden(const std::string& sub) {
    return testing::kModelsDir + "/golden_numpy/multi_io/" + sub;
  }
  void Start(const std::string& golden_input, const std::string& golden_output) {
    StartDaemon("multi.yaml", testing::Manifest("multi", "multi_io.onnx",
                                                {{"threads", "1"},
                                                 {"golden-input", golden_input},
                                                 {"golden-output", golden_output}}));
  }
  ProbeConfig Config(const std::string& in, const std::string& out) {
    return OneModel("multi", in, out, 3);
  }
};

TEST_F(OtaGateMultiIoTest, EveryGoldenOutputOfATwoInputModelPassesWithNpyAndPbGoldens) {
  ASSERT_NO_FATAL_FAILURE(Start(Golden("input"), Golden("output")));
  for (const auto& [in, out] : {std::pair{Golden("input"), Golden("output")},
                                std::pair{Golden("input_pb"), Golden("output_pb")},
                                std::pair{Golden("input_pb"), Golden("output")}}) {
    GateInput g = Probe(Config(in, out));
    ASSERT_EQ(g.models.size(), 1u);
    const ModelCheck& m = g.models[0];
    EXPECT_EQ(m.error, "") << in;
    ASSERT_EQ(m.outputs.size(), 2u) << in;
    // Sorted by name: idx, y. The numbers are numpy's (make_multi_io.py prints them).
    EXPECT_EQ(m.outputs[0].name, "idx");
    EXPECT_EQ(m.outputs[0].datatype, "INT64");
    EXPECT_EQ(m.outputs[0].got_datatype, "INT64");
    EXPECT_TRUE(m.outputs[0].exact);
    EXPECT_EQ(m.outputs[0].golden_int, (std::vector<int64_t>{1, 0}));
    EXPECT_EQ(m.outputs[0].got_int, (std::vector<int64_t>{1, 0}));
    EXPECT_EQ(m.outputs[1].name, "y");
    EXPECT_EQ(m.outputs[1].got_datatype, "FP32");
    ASSERT_EQ(m.outputs[1].got.size(), 8u);
    EXPECT_NEAR(m.outputs[1].got[1], 9.021354675292969, 1e-5);
    EXPECT_EQ(m.outputs[1].got[5], 0.0);
    GateVerdict v = Judge(g);
    EXPECT_TRUE(v.pass) << in << ": " << ::testing::PrintToString(v.failures);
  }
}

TEST_F(OtaGateMultiIoTest, AWrongIntegerGoldenFailsNamingTheModelAndTheOutput) {
  ASSERT_NO_FATAL_FAILURE(Start(Golden("input"), Golden("output")));
  GateVerdict v = Judge(Probe(Config(Golden("input"), Golden("output_wrong_idx"))));
  EXPECT_FALSE(v.pass);
  EXPECT_THAT(v.failures, ::testing::ElementsAre(
                              "model 'multi' output 'idx': 1 of 2 values differ, compared "
                              "exactly (first [0] = 1, golden 2)"));
  // One golden file cannot feed two inputs; a directory missing an input is named.
  v = Judge(Probe(Config(Golden("input/x.npy"), Golden("output"))));
  EXPECT_THAT(v.failures, ::testing::ElementsAre(HasSubstr(
                              "model 'multi': golden input " +
                              Golden("input/x.npy") + " is one file, but the model has 2 inputs")));
  v = Judge(Probe(Config(Golden("output"), Golden("output"))));
  EXPECT_THAT(v.failures[0], HasSubstr("has no file for input 'x' (x.npy or x.pb)"));
}

TEST_F(OtaGateMultiIoTest, OutpostdDoesNotServeAModelWhoseGoldenOutputDirectoryDisagrees) {
  ASSERT_NO_FATAL_FAILURE(Start(Golden("input_pb"), Golden("output_wrong_idx")));
  auto r = HttpGet("127.0.0.1", daemon_->port, "/v2/models/multi/ready", 5000);
  ASSERT_TRUE(r.ok());
  EXPECT_NE(r->status, 200);
  EXPECT_THAT(daemon_->proc->Stderr(),
              HasSubstr("model 'multi' golden check, output 'idx': element 0 is 1, golden 2 "
                        "(integers compared exactly)"));
}

TEST(OtaGateProbe, NoDaemonFails) {
  ProbeConfig c;
  c.port = testing::FreePort();
  c.deadline_ms = 2000;
  GoldenModel m;
  m.name = "iris";
  m.golden_input = testing::kModelsDir + "/golden/iris_mlp/input_0.npy";
  m.golden_output = testing::kModelsDir + "/golden/iris_mlp/output_0.npy";
  c.models.push_back(m);
  GateVerdict v = Judge(Probe(c));
  EXPECT_FALSE(v.pass);
  EXPECT_EQ(v.failures[0], "outpostd is not ready");
  EXPECT_THAT(v.failures[1], HasSubstr("model 'iris': metadata: connect to 127.0.0.1:"));
}

}  // namespace
}  // namespace outpost::ota

namespace outpost::ota {
namespace {

double HandoffGauge(uint16_t port) {
  testing::V2Client c(port);
  auto r = c.Get("/metrics");
  return r ? testing::Value(testing::ParsePrometheus(r->body), "outpost_serve_handoff") : -1;
}

uint64_t HandoffCalls(const char* call, const char* outcome) {
  return MetricsRegistry::Global()
      .GetCounter("outpost_ota_handoff_calls_total", "", {{"call", call}, {"outcome", outcome}})
      .value();
}

// The agent's handoff calls (before a reboot) against the real outpostd: on, then off; with no
// outpostd listening, an error that says so, counted.
TEST_F(OtaGateProbeTest, HandoffStartsAndEndsOnTheRunningDaemon) {
  EXPECT_EQ(HandoffGauge(daemon_->port), 0);
  Status s = StartHandoff("127.0.0.1", daemon_->port, "reboot", 30, 2000);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(HandoffGauge(daemon_->port), 1);
  EXPECT_EQ(HandoffCalls("start", "ok"), 1u);
  EXPECT_THAT(daemon_->proc->Stderr(), HasSubstr("handoff on (reboot"));
  s = EndHandoff("127.0.0.1", daemon_->port, 2000);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(HandoffGauge(daemon_->port), 0);
  EXPECT_EQ(HandoffCalls("end", "ok"), 1u);
  // A TTL outpostd refuses: its 400 in the message.
  s = StartHandoff("127.0.0.1", daemon_->port, "reboot", -1, 2000);
  EXPECT_EQ(s.code(), Code::kUnavailable);
  EXPECT_THAT(s.message(), HasSubstr("answered 400"));
  EXPECT_EQ(HandoffGauge(daemon_->port), 0);

  const uint16_t closed = testing::FreePort();
  s = StartHandoff("127.0.0.1", closed, "reboot", 30, 2000);
  EXPECT_EQ(s.code(), Code::kUnavailable);
  EXPECT_THAT(s.message(), HasSubstr(std::to_string(closed)));
  EXPECT_EQ(HandoffCalls("start", "failed"), 2u);
  EXPECT_FALSE(EndHandoff("127.0.0.1", closed, 2000).ok());
  EXPECT_EQ(HandoffCalls("end", "failed"), 1u);
}

}  // namespace
}  // namespace outpost::ota
