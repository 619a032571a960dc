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

class OtaGateProbeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    box_.AddManifest("iris.yaml", testing::Manifest("iris", "iris_mlp.onnx", {{"threads", "1"}}));
    std::string err;
    daemon_ = box_.Start({}, &err);
    ASSERT_TRUE(daemon_) << err;
  }
  void TearDown() override {
    if (HasFailure() && daemon_ && daemon_->proc)
      std::fprintf(stderr, "---- outpostd stderr ----\n%s\n", daemon_->proc->Stderr().c_str());
  }
  ProbeConfig Config(const std::string& golden_output) {
    ProbeConfig c;
    c.port = daemon_->port;
    c.runs = 5;
    c.deadline_ms = 60000;
    GoldenModel m;
    m.name = "iris";
    m.golden_input = testing::kModelsDir + "/golden/iris_mlp/input_0.npy";
    m.golden_output = golden_output;
    c.models.push_back(m);
    return c;
  }
  testing::Sandbox box_;
  std::unique_ptr<testing::Daemon> daemon_;
};

TEST_F(OtaGateProbeTest, GoldenOutputsPassThroughTheRunningDaemon) {
  GateInput in = Probe(Config(testing::kModelsDir + "/golden/iris_mlp/output_0.npy"));
  EXPECT_TRUE(in.daemon_ready);
  ASSERT_EQ(in.models.size(), 1u);
  EXPECT_EQ(in.models[0].error, "");
  EXPECT_EQ(in.models[0].latencies_ms.size(), 5u);
  EXPECT_EQ(in.models[0].got.size(), in.models[0].golden.size());
  EXPECT_GT(in.models[0].golden.size(), 0u);
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
  EXPECT_THAT(v.failures[0], HasSubstr("model 'iris': 1 of "));
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
