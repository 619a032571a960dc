// TelemetryService pieces that need no broker: drift input statistics, per-interval aggregated
// events, the bounded log buffer. Expected values are computed by hand from the definitions
// (population variance, fixed-width bins), not taken from the code under test.
#include <gtest/gtest.h>
#include <spdlog/logger.h>

#include <cmath>
#include <thread>

#include "outpost/config/device_config.h"
#include "outpost/core/metrics.h"
#include "outpost/telemetry/input_stats.h"
#include "outpost/telemetry/telemetry.h"
#include "test_util.h"

namespace outpost::telemetry {
namespace {

using testing::TempDir;

// A host float tensor of `dims` holding `values` (row-major).
Tensor Floats(std::vector<int64_t> dims, const std::vector<float>& values) {
  auto t = Tensor::Allocate(DataType::kFloat, *Shape::From(dims));
  EXPECT_TRUE(t.ok());
  EXPECT_EQ(static_cast<size_t>(t->numel()), values.size());
  std::copy(values.begin(), values.end(), t->data<float>());
  return *t;
}

std::vector<std::pair<std::string, Tensor>> One(const std::string& name, Tensor t) {
  std::vector<std::pair<std::string, Tensor>> v;
  v.emplace_back(name, std::move(t));
  return v;
}

TEST(InputStats, MeanVarianceHistogramPerFeature) {
  InputStatsOptions o;
  o.histogram_bins = 4;
  o.histogram_min = 0;
  o.histogram_max = 4;
  InputStats s(o);
  // Feature 0: 1, 2, 3, 4 -> mean 2.5, population variance 1.25; bins [0,1) [1,2) [2,3) [3,4):
  // 0,1,1,1 and 4 is above. Feature 1: 10, 10, 10, 10.5 -> mean 10.125, variance 0.046875,
  // all above. Two requests from two threads (different shards) plus one from this thread.
  std::thread a([&] { s.Observe("m", "1", One("x", Floats({2, 2}, {1, 10, 2, 10}))); });
  a.join();
  std::thread b([&] { s.Observe("m", "1", One("x", Floats({1, 2}, {3, 10}))); });
  b.join();
  s.Observe("m", "1", One("x", Floats({1, 2}, {4, 10.5f})));
  auto recs = s.Flush(100, 200);
  ASSERT_EQ(recs.size(), 1u);
  const auto& r = recs[0];
  EXPECT_EQ(r["model"], "m");
  EXPECT_EQ(r["version"], "1");
  EXPECT_EQ(r["input"], "x");
  EXPECT_EQ(r["window_start"], 100);
  EXPECT_EQ(r["window_end"], 200);
  EXPECT_EQ(r["requests"], 3);
  EXPECT_EQ(r["rows"], 4);
  ASSERT_EQ(r["features"].size(), 2u);
  const auto& f0 = r["features"][0];
  EXPECT_EQ(f0["count"], 4);
  EXPECT_NEAR(f0["mean"].get<double>(), 2.5, 1e-12);
  EXPECT_NEAR(f0["variance"].get<double>(), 1.25, 1e-12);
  EXPECT_EQ(f0["min"], 1.0);
  EXPECT_EQ(f0["max"], 4.0);
  EXPECT_EQ(f0["histogram"], nlohmann::json({0, 1, 1, 1}));
  EXPECT_EQ(f0["below"], 0);
  EXPECT_EQ(f0["above"], 1);
  const auto& f1 = r["features"][1];
  EXPECT_NEAR(f1["mean"].get<double>(), 10.125, 1e-9);
  EXPECT_NEAR(f1["variance"].get<double>(), 0.046875, 1e-9);
  EXPECT_EQ(f1["above"], 4);
  EXPECT_EQ(f1["histogram"], nlohmann::json({0, 0, 0, 0}));
  // The window was reset: nothing new, nothing sent.
  EXPECT_TRUE(s.Flush(200, 300).empty());
}

TEST(InputStats, AccurateFarFromZeroAndNanCounted) {
  InputStats s(InputStatsOptions{});
  std::vector<double> v = {1e9, 1e9 + 1, 1e9, 1e9 + 1, NAN};
  const std::vector<int64_t> dims = {5, 1};
  auto t = Tensor::Allocate(DataType::kDouble, *Shape::From(dims));
  ASSERT_TRUE(t.ok());
  std::copy(v.begin(), v.end(), t->data<double>());
  s.Observe("m", "1", One("x", *t));
  auto recs = s.Flush(0, 1);
  ASSERT_EQ(recs.size(), 1u);
  const auto& f = recs[0]["features"][0];
  EXPECT_EQ(f["count"], 4);
  EXPECT_EQ(f["nan"], 1);
  EXPECT_NEAR(f["mean"].get<double>(), 1e9 + 0.5, 1e-6);
  EXPECT_NEAR(f["variance"].get<double>(), 0.25, 1e-9);
}

TEST(InputStats, SamplingFeatureCapAndInputCap) {
  InputStatsOptions o;
  o.sample_every = 2;
  o.max_features = 2;
  o.max_inputs = 1;
  InputStats s(o);
  // Requests 1 and 3 are looked at (1 in 2): feature 0 sees 1 and 3.
  for (float x : {1.f, 2.f, 3.f, 4.f})
    s.Observe("m", "1", One("x", Floats({1, 5}, {x, x, x, x, x})));
  s.Observe("other", "1", One("y", Floats({1}, {7})));  // over max_inputs: ignored
  auto recs = s.Flush(0, 1);
  ASSERT_EQ(recs.size(), 1u);
  EXPECT_EQ(recs[0]["requests"], 2);
  ASSERT_EQ(recs[0]["features"].size(), 2u);  // of 5
  EXPECT_NEAR(recs[0]["features"][0]["mean"].get<double>(), 2.0, 1e-12);
}

config::TelemetryConfig TestConfig(const std::string& dir) {
  config::TelemetryConfig c;
  c.enabled = true;
  c.broker_url = "mqtt://127.0.0.1:1";  // never started in these tests
  c.device_id = "unit";
  c.buffer_dir = dir;
  c.max_bytes_metrics = c.max_bytes_events = c.max_bytes_logs = 1 << 20;
  return c;
}

std::vector<nlohmann::json> Parsed(DiskQueue& q, Stream s) {
  std::vector<nlohmann::json> out;
  for (auto& r : testing::DrainAll(q, s)) out.push_back(nlohmann::json::parse(r.payload));
  return out;
}

std::vector<nlohmann::json> Events(DiskQueue& q) { return Parsed(q, Stream::kEvents); }

TEST(TelemetryService, AggregatesOneEventPerKeyPerInterval) {
  TempDir dir;
  auto svc = TelemetryService::Create(TestConfig(dir.path()));
  ASSERT_TRUE(svc.ok()) << svc.status().ToString();
  for (int i = 0; i < 3; ++i) (*svc)->Count("overload", {{"model", "a"}, {"reason", "queue_full"}});
  (*svc)->Count("overload", {{"model", "b"}, {"reason", "deadline"}}, 5);
  ASSERT_TRUE((*svc)->FlushAggregates().ok());
  auto ev = Events((*svc)->queue());
  ASSERT_EQ(ev.size(), 2u);
  std::map<std::string, nlohmann::json> by_model;
  for (auto& e : ev) {
    EXPECT_EQ(e["type"], "overload");
    by_model[e["fields"]["model"]] = e["fields"];
  }
  EXPECT_EQ(by_model["a"]["count"], 3);
  EXPECT_EQ(by_model["a"]["reason"], "queue_full");
  EXPECT_EQ(by_model["b"]["count"], 5);
  EXPECT_LE(by_model["a"]["interval_start"].get<int64_t>(),
            by_model["a"]["interval_end"].get<int64_t>());
  // A new interval starts empty.
  ASSERT_TRUE((*svc)->FlushAggregates().ok());
  EXPECT_TRUE(Events((*svc)->queue()).empty());
}

TEST(TelemetryService, InputStatsOnlyWhenEnabled) {
  TempDir d1, d2;
  auto off = TelemetryService::Create(TestConfig(d1.path()));
  ASSERT_TRUE(off.ok());
  EXPECT_FALSE((*off)->input_stats_enabled());
  (*off)->ObserveInputs("m", "1", One("x", Floats({1, 1}, {1})));
  ASSERT_TRUE((*off)->FlushInputStats().ok());
  EXPECT_TRUE(Events((*off)->queue()).empty());

  auto cfg = TestConfig(d2.path());
  cfg.input_stats.enabled = true;
  auto on = TelemetryService::Create(cfg);
  ASSERT_TRUE(on.ok());
  EXPECT_TRUE((*on)->input_stats_enabled());
  (*on)->ObserveInputs("m", "1", One("x", Floats({2, 1}, {0.25f, 0.75f})));
  ASSERT_TRUE((*on)->FlushInputStats().ok());
  auto ev = Events((*on)->queue());
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0]["type"], "input_stats");
  EXPECT_NEAR(ev[0]["fields"]["features"][0]["mean"].get<double>(), 0.5, 1e-12);
}

// The broker of TestConfig is never reachable: Start() must not wait for it, and Stop() must
// still put everything posted on disk.
TEST(TelemetryService, AsyncPostsAreBoundedAndDropsReported) {
  TempDir dir;
  ServiceOptions so;
  so.inbox_records = 3;
  auto svc = TelemetryService::Create(TestConfig(dir.path()), so);
  ASSERT_TRUE(svc.ok());
  auto& dropped =
      MetricsRegistry::Global().GetCounter("outpost_telemetry_records_dropped_total", "",
                                           {{"stream", "logs"}, {"reason", "buffer_full"}});
  const uint64_t dropped_before = dropped.value();
  auto& after_stop =
      MetricsRegistry::Global().GetCounter("outpost_telemetry_records_dropped_total", "",
                                           {{"stream", "logs"}, {"reason", "after_stop"}});
  const uint64_t after_stop_before = after_stop.value();
  // Not started yet: posts wait in memory.
  EXPECT_TRUE((*svc)->LogAsync("warn", "a"));
  EXPECT_TRUE((*svc)->LogAsync("error", "b"));
  EXPECT_TRUE((*svc)->EmitAsync("model_loaded", {{"model", "m"}}));
  EXPECT_FALSE((*svc)->LogAsync("error", "c"));  // the fourth: the inbox holds 3
  ASSERT_TRUE((*svc)->Start().ok());
  (*svc)->Stop();
  EXPECT_FALSE((*svc)->LogAsync("error", "after stop"));
  EXPECT_EQ(dropped.value() - dropped_before, 1u);
  EXPECT_EQ(after_stop.value() - after_stop_before, 1u);
  auto logs = Parsed((*svc)->queue(), Stream::kLogs);
  ASSERT_EQ(logs.size(), 2u);
  EXPECT_EQ(logs[0]["level"], "warn");
  EXPECT_EQ(logs[0]["message"], "a");
  EXPECT_EQ(logs[1]["message"], "b");
  auto events = Parsed((*svc)->queue(), Stream::kEvents);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0]["type"], "model_loaded");
  EXPECT_EQ(events[0]["fields"]["model"], "m");
  // Stop() also left one metric snapshot.
  EXPECT_FALSE(Parsed((*svc)->queue(), Stream::kMetrics).empty());
  // The drop went upstream as a gap marker without a seq range.
  auto gaps = Parsed((*svc)->queue(), Stream::kGaps);
  ASSERT_EQ(gaps.size(), 1u);
  EXPECT_EQ(gaps[0]["stream"], "logs");
  EXPECT_EQ(gaps[0]["reason"], "buffer_full");
  EXPECT_EQ(gaps[0]["count"], 1);
  EXPECT_FALSE(gaps[0].contains("first_seq"));
}

TEST(TelemetryService, LogSinkForwardsAtOrAboveItsLevel) {
  TempDir dir;
  auto cfg = TestConfig(dir.path());
  cfg.log_level = "warn";
  auto svc = TelemetryService::Create(cfg);
  ASSERT_TRUE(svc.ok());
  std::shared_ptr<spdlog::sinks::sink> sink = (*svc)->log_sink();
  auto logger = std::make_shared<spdlog::logger>("telemetry-test", sink);
  logger->set_level(spdlog::level::trace);
  logger->info("not sent");
  logger->warn("disk {} almost full", "/data");
  logger->error("model {} failed", "m");
  logger->critical("out of memory");
  ASSERT_TRUE((*svc)->Start().ok());
  (*svc)->Stop();
  logger->error("after stop: dropped, and no crash");
  auto logs = Parsed((*svc)->queue(), Stream::kLogs);
  ASSERT_EQ(logs.size(), 3u);
  EXPECT_EQ(logs[0]["level"], "warn");
  EXPECT_EQ(logs[0]["message"], "disk /data almost full");
  EXPECT_EQ(logs[1]["level"], "error");
  EXPECT_EQ(logs[1]["message"], "model m failed");
  EXPECT_EQ(logs[2]["level"], "critical");
  EXPECT_GT(logs[0]["ts"].get<int64_t>(), 1600000000000);  // ms since the epoch
  svc->reset();                                            // the sink outlives the service
  logger->error("after the service is gone");
}

TEST(TelemetryService, QueueOptionsFollowTheConfig) {
  config::TelemetryConfig c;
  c.buffer_dir = "/tmp/x";
  c.max_bytes_metrics = 1 << 20;
  c.max_bytes_events = 2 << 20;
  c.max_bytes_logs = 3 << 20;
  c.full_policy_metrics = "reject";
  c.full_policy_events = "drop-oldest";
  c.full_policy_logs = "block";
  c.block_timeout_ms = 250;
  c.ttl_s_metrics = 60;
  c.ttl_s_logs = 7;
  c.sync = "interval=40ms";
  c.live_share_percent = 0;
  auto q = QueueOptionsFromConfig(c);
  ASSERT_TRUE(q.ok());
  EXPECT_EQ(q->dir, "/tmp/x");
  EXPECT_EQ(q->sync, SyncPolicy::kInterval);
  EXPECT_EQ(q->sync_interval_ms, 40);
  EXPECT_EQ(q->live_share_percent, 0);
  const auto& m = q->limits[static_cast<int>(Stream::kMetrics)];
  const auto& e = q->limits[static_cast<int>(Stream::kEvents)];
  const auto& l = q->limits[static_cast<int>(Stream::kLogs)];
  EXPECT_EQ(m.max_bytes, 1u << 20);
  EXPECT_EQ(m.full_policy, FullPolicy::kReject);
  EXPECT_EQ(m.ttl_ms, 60000);
  EXPECT_EQ(e.max_bytes, 2u << 20);
  EXPECT_EQ(e.full_policy, FullPolicy::kDropOldest);
  EXPECT_EQ(e.ttl_ms, 0);
  EXPECT_EQ(l.max_bytes, 3u << 20);
  EXPECT_EQ(l.full_policy, FullPolicy::kBlock);
  EXPECT_EQ(l.block_timeout_ms, 250);
  EXPECT_EQ(l.ttl_ms, 7000);
  EXPECT_TRUE(QueueOptionsFromConfig(config::TelemetryConfig{}).ok());
  EXPECT_EQ(QueueOptionsFromConfig(config::TelemetryConfig{})->dir, kDefaultBufferDir);
}

TEST(TelemetryService, MqttVersionFromConfig) {
  config::TelemetryConfig c;
  c.broker_url = "mqtt://h:1";
  c.device_id = "d";
  auto o5 = MqttOptionsFromConfig(c);
  ASSERT_TRUE(o5.ok());
  EXPECT_EQ(o5->protocol_version, 5);
  EXPECT_EQ(o5->max_inflight, 16);
  EXPECT_EQ(o5->device_id, "d");  // also the client id
  c.mqtt_version = 311;
  c.max_inflight = 3;
  auto o3 = MqttOptionsFromConfig(c);
  ASSERT_TRUE(o3.ok());
  EXPECT_EQ(o3->protocol_version, 311);
  EXPECT_EQ(o3->max_inflight, 3);
  EXPECT_FALSE(o3->tls);
  // TLS only with mqtts://; TLS files with mqtt:// are a mistake, not a silent upgrade.
  c.tls_ca_file = "/etc/ca.pem";
  auto mixed = MqttOptionsFromConfig(c);
  ASSERT_FALSE(mixed.ok());
  EXPECT_EQ(mixed.status().code(), Code::kInvalidArgument);
  c.broker_url = "mqtts://h";
  auto tls = MqttOptionsFromConfig(c);
  ASSERT_TRUE(tls.ok());
  EXPECT_TRUE(tls->tls);
  EXPECT_EQ(tls->port, 8883);
  EXPECT_EQ(tls->ca_file, "/etc/ca.pem");
}

}  // namespace
}  // namespace outpost::telemetry
