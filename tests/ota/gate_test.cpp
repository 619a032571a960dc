// The health gate's verdict on hand-made observations; expected values worked out by hand.
#include "outpost/ota/gate.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>

namespace outpost::ota {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

GateInput Healthy() {
  GateInput in;
  in.daemon_ready = true;
  in.deadline_ms = 30000;
  in.elapsed_ms = 1200;
  ModelCheck m;
  m.model = "iris";
  OutputCheck o;
  o.name = "probabilities";
  o.datatype = o.got_datatype = "FP32";
  o.golden = {0.1, -2.0, 100.0};
  o.got = {0.1 + 5e-5, -2.0 - 0.0015, 100.0 + 0.1};  // limits: 1e-4, 2.1e-3, 0.1001
  m.outputs.push_back(o);
  OutputCheck label;  // an integer output: exact
  label.name = "label";
  label.datatype = label.got_datatype = "INT64";
  label.exact = true;
  label.golden_int = {2, (int64_t{1} << 53) + 1};  // not representable as a double
  label.got_int = label.golden_int;
  m.outputs.push_back(label);
  m.latencies_ms = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20};
  m.p95_budget_ms = 19;  // nearest rank: ceil(0.95 * 20) = 19th value = 19
  in.models.push_back(m);
  return in;
}

TEST(OtaGate, P95IsNearestRank) {
  EXPECT_EQ(P95({}), 0);
  EXPECT_EQ(P95({7}), 7);
  EXPECT_EQ(P95({3, 1, 2}), 3);  // ceil(2.85) = 3rd
  std::vector<double> s;
  for (int i = 100; i >= 1; --i) s.push_back(i);
  EXPECT_EQ(P95(s), 95);
  EXPECT_EQ(P95({1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 100}), 19);
}

TEST(OtaGate, PassesWithinToleranceBudgetAndDeadline) {
  GateVerdict v = Judge(Healthy());
  EXPECT_TRUE(v.pass);
  EXPECT_TRUE(v.failures.empty());
}

TEST(OtaGate, WrongAnswersFail) {
  GateInput in = Healthy();
  in.models[0].outputs[0].got[2] = 100.2;  // |0.2| > 0.1001
  in.models[0].outputs[0].got[0] = NAN;
  GateVerdict v = Judge(in);
  EXPECT_FALSE(v.pass);
  ASSERT_EQ(v.failures.size(), 1u);
  EXPECT_THAT(v.failures[0], HasSubstr("model 'iris' output 'probabilities': 2 of 3 values "
                                       "outside tolerance (first [0] = nan"));
  in = Healthy();
  in.models[0].outputs[0].got.pop_back();
  v = Judge(in);
  EXPECT_THAT(v.failures,
              ElementsAre("model 'iris' output 'probabilities': 2 values, golden has 3"));
  // Integers exactly: off by one at 2^53 + 1 (the same double) fails.
  in = Healthy();
  in.models[0].outputs[1].got_int[1] = int64_t{1} << 53;
  EXPECT_THAT(Judge(in).failures,
              ElementsAre("model 'iris' output 'label': 1 of 2 values differ, compared exactly "
                          "(first [1] = 9007199254740992, golden 9007199254740993)"));
  in = Healthy();
  in.models[0].outputs[1].got_datatype = "FP32";
  EXPECT_THAT(Judge(in).failures,
              ElementsAre("model 'iris' output 'label': answered FP32, golden is INT64"));
  in = Healthy();
  in.models[0].outputs.clear();
  EXPECT_THAT(Judge(in).failures, ElementsAre("model 'iris': no golden output was compared"));
  in = Healthy();
  in.models[0].error = "HTTP 404 model not found";
  v = Judge(in);
  EXPECT_THAT(v.failures, ElementsAre("model 'iris': HTTP 404 model not found"));
}

TEST(OtaGate, LatencyDeadlineReadinessAndBrokerFail) {
  GateInput in = Healthy();
  in.models[0].p95_budget_ms = 18.5;
  in.daemon_ready = false;
  in.elapsed_ms = 30001;
  in.broker_required = true;
  GateVerdict v = Judge(in);
  EXPECT_FALSE(v.pass);
  EXPECT_THAT(v.failures,
              ElementsAre("outpostd is not ready", "the MQTT broker is unreachable",
                          "deadline: the gate took 30001 ms, over 30000 ms",
                          "model 'iris': p95 latency 19 ms over its budget of 18.5 ms"));
  in = Healthy();
  in.models[0].latencies_ms.clear();
  EXPECT_THAT(Judge(in).failures,
              ElementsAre("model 'iris': no latency measured against its budget"));
  in = Healthy();
  in.models.clear();
  EXPECT_THAT(Judge(in).failures, ElementsAre("no model was checked"));
}

}  // namespace
}  // namespace outpost::ota
