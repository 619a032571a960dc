// The publisher against a real mosquitto started by the test (label integration).
#include <signal.h>
#include <sys/wait.h>

#include <filesystem>
#include <fstream>
#include <random>

#include "broker.h"
#include "outpost/config/device_config.h"
#include "outpost/core/metrics.h"
#include "outpost/telemetry/publisher.h"
#include "outpost/telemetry/telemetry.h"

namespace outpost::telemetry {
namespace {

namespace fs = std::filesystem;
using testing::Broker;
using testing::Collector;
using testing::Proxy;
using testing::AllAcked;
using testing::Mqtt;
using testing::TempDir;

std::string Event(uint64_t i) { return nlohmann::json{{"type", "test"}, {"i", i}}.dump(); }

class MqttTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fs::exists(OUTPOST_MOSQUITTO_BIN)) GTEST_SKIP() << "mosquitto not installed";
    ASSERT_TRUE(broker_.Start()) << "could not start mosquitto";
    collector_ = std::make_unique<Collector>(broker_.port());
    ASSERT_TRUE(collector_->subscribed());
  }
  Broker broker_;
  std::unique_ptr<Collector> collector_;
};

// Uplink down for a while, then up: every record arrives, in order, duplicates detectable by seq.
void DownThenUp(MqttTest* t, Collector& col, int broker_port, int protocol) {
  TempDir dir;
  Proxy proxy(broker_port);
  proxy.SetDown(true);
  QueueOptions qo;
  qo.dir = dir.path();
  qo.live_share_percent = 0;  // strict sequence order on the wire
  auto q = DiskQueue::Open(qo);
  ASSERT_TRUE(q.ok());
  std::string device = "dev-down-up-" + std::to_string(protocol);
  Publisher pub(q->get(), Mqtt(proxy.port(), device, protocol));
  ASSERT_TRUE(pub.Start().ok());
  constexpr uint64_t kN = 3000;
  std::vector<std::string> ps;
  for (uint64_t i = 1; i <= kN; ++i) ps.push_back(Event(i));
  auto append = [&](uint64_t from, uint64_t to) {  // [from, to), in groups of 100
    for (uint64_t i = from; i < to; i += 100) {
      std::vector<std::string_view> v(ps.begin() + static_cast<long>(i),
                                      ps.begin() + static_cast<long>(i + 100));
      ASSERT_TRUE((*q)->AppendBatch(Stream::kEvents, v).ok());
    }
  };
  auto acked = [&] { return (*q)->Stats(Stream::kEvents).acked_seq; };
  append(0, 1000);  // uplink down from the start
  ASSERT_TRUE(Collector::WaitFor([&] { return pub.stats().connect_failures > 0; }, 5000));
  proxy.SetDown(false);
  ASSERT_TRUE(Collector::WaitFor([&] { return acked() >= 100; }, 10000));
  proxy.SetDown(true);  // cut while draining: whatever was in flight is sent again
  ASSERT_TRUE(Collector::WaitFor([&] { return !pub.stats().connected; }, 5000));
  append(1000, 2000);
  proxy.SetDown(false);
  append(2000, 3000);
  ASSERT_TRUE(Collector::WaitFor([&] { return AllAcked(**q); }, 30000));
  EXPECT_GT(pub.stats().connect_failures, 0u);
  EXPECT_GE(pub.stats().connects, 2u);
  ASSERT_TRUE(
      Collector::WaitFor([&] { return col.Stream(device, "events").data.size() >= kN; }, 10000));
  auto v = col.Stream(device, "events");
  ASSERT_EQ(v.data.size(), kN);
  for (uint64_t i = 1; i <= kN; ++i) EXPECT_EQ(v.data[i]["i"], i) << i;
  testing::ExpectCompleteInOrder(v, kN, device, "events");
  pub.Stop();
  (void)t;
}

TEST_F(MqttTest, UplinkDownThenUpMqtt5) { DownThenUp(this, *collector_, broker_.port(), 5); }
TEST_F(MqttTest, UplinkDownThenUpMqtt311) { DownThenUp(this, *collector_, broker_.port(), 311); }

TEST_F(MqttTest, BrokerRestartAndStatusMessages) {
  TempDir dir;
  QueueOptions qo;
  qo.dir = dir.path();
  auto q = DiskQueue::Open(qo);
  ASSERT_TRUE(q.ok());
  Proxy proxy(broker_.port());
  Publisher pub(q->get(), Mqtt(proxy.port(), "dev-status"));
  ASSERT_TRUE(pub.Start().ok());
  for (int i = 1; i <= 10; ++i) ASSERT_TRUE((*q)->Append(Stream::kEvents, Event(i)).ok());
  ASSERT_TRUE(Collector::WaitFor([&] { return AllAcked(**q); }, 10000));
  pub.Stop();
  // Birth then graceful offline, both retained on the status topic.
  std::vector<nlohmann::json> st;
  ASSERT_TRUE(Collector::WaitFor(
      [&] {
        st.clear();
        for (auto& m : collector_->messages())
          if (m.topic == "outpost/test/dev-status/status")
            st.push_back(nlohmann::json::parse(m.payload));
        return st.size() >= 2;
      },
      5000));
  EXPECT_EQ(st.front()["state"], "online");
  EXPECT_EQ(st.back()["state"], "offline");
  EXPECT_EQ(st.back()["reason"], "shutdown");
  // The retained value is what a late subscriber sees.
  Collector late(broker_.port());
  ASSERT_TRUE(Collector::WaitFor([&] { return !late.messages().empty(); }, 5000));
  bool found = false;
  for (auto& m : late.messages())
    if (m.topic == "outpost/test/dev-status/status")
      found = nlohmann::json::parse(m.payload)["state"] == "offline";
  EXPECT_TRUE(found);
}

TEST_F(MqttTest, ByteLimitSendsGapMarker) {
  TempDir dir;
  Proxy proxy(broker_.port());
  proxy.SetDown(true);
  QueueOptions qo;
  qo.dir = dir.path();
  qo.sync = SyncPolicy::kNone;
  qo.limits[0].max_bytes = 64 * 1024;  // 16 KiB segments
  auto q = DiskQueue::Open(qo);
  ASSERT_TRUE(q.ok());
  Publisher pub(q->get(), Mqtt(proxy.port(), "dev-limit"));
  ASSERT_TRUE(pub.Start().ok());
  constexpr uint64_t kN = 3000;
  for (uint64_t i = 1; i <= kN; ++i) {
    nlohmann::json j = {{"i", i}, {"pad", std::string(100, 'p')}};
    ASSERT_TRUE((*q)->Append(Stream::kMetrics, j.dump()).ok());
  }
  proxy.SetDown(false);
  ASSERT_TRUE(Collector::WaitFor([&] { return AllAcked(**q); }, 20000));
  ASSERT_TRUE(Collector::WaitFor(
      [&] { return collector_->Stream("dev-limit", "metrics").data.count(kN) > 0; }, 5000));
  auto m = collector_->Stream("dev-limit", "metrics");
  auto g = collector_->Stream("dev-limit", "gaps");
  std::set<uint64_t> covered;
  uint64_t counted = 0;
  for (auto& [seq, d] : g.data) {
    EXPECT_EQ(d["stream"], "metrics");
    EXPECT_EQ(d["reason"], "drop_oldest");
    counted += d["count"].get<uint64_t>();
    for (uint64_t s = d["first_seq"]; s <= d["last_seq"].get<uint64_t>(); ++s) covered.insert(s);
  }
  EXPECT_GT(counted, 0u);
  // Delivered records and gap ranges together account for every seq exactly once.
  for (uint64_t s = 1; s <= kN; ++s) EXPECT_NE(m.data.count(s) > 0, covered.count(s) > 0) << s;
  EXPECT_EQ(m.data.size() + counted, kN);
}

TEST_F(MqttTest, CorruptSegmentsStillSendTheRest) {
  TempDir dir;
  QueueOptions qo;
  qo.dir = dir.path();
  qo.segment_bytes = 4096;
  {
    auto q = DiskQueue::Open(qo);
    ASSERT_TRUE(q.ok());
    for (int i = 1; i <= 300; ++i) ASSERT_TRUE((*q)->Append(Stream::kEvents, Event(i)).ok());
  }
  std::vector<fs::path> segs;
  for (auto& e : fs::directory_iterator(dir.path() + "/events"))
    if (e.path().filename().string().rfind("seg-", 0) == 0) segs.push_back(e.path());
  std::sort(segs.begin(), segs.end());
  ASSERT_GE(segs.size(), 4u);
  {  // bit flip in the middle of the second segment
    std::fstream f(segs[1], std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(1000);
    f.put('\x7f');
  }
  fs::resize_file(segs[2], fs::file_size(segs[2]) / 2);  // cut tail of an older segment
  auto q = DiskQueue::Open(qo);
  ASSERT_TRUE(q.ok());
  EXPECT_EQ((*q)->recovery().streams[1].quarantined_segments, 2u);
  uint64_t lost = (*q)->recovery().streams[1].lost_records;
  EXPECT_GT(lost, 0u);
  Publisher pub(q->get(), Mqtt(broker_.port(), "dev-corrupt"));
  ASSERT_TRUE(pub.Start().ok());
  ASSERT_TRUE(Collector::WaitFor([&] { return AllAcked(**q); }, 10000));
  ASSERT_TRUE(Collector::WaitFor(
      [&] {
        return collector_->Stream("dev-corrupt", "events").data.size() + lost >= 300 &&
               !collector_->Stream("dev-corrupt", "gaps").data.empty();
      },
      5000));
  auto ev = collector_->Stream("dev-corrupt", "events");
  auto g = collector_->Stream("dev-corrupt", "gaps");
  std::set<uint64_t> covered;
  for (auto& [s, d] : g.data) {
    EXPECT_EQ(d["reason"], "corrupt");
    for (uint64_t x = d["first_seq"]; x <= d["last_seq"].get<uint64_t>(); ++x) covered.insert(x);
  }
  EXPECT_EQ(covered.size(), lost);
  for (uint64_t s = 1; s <= 300; ++s) {
    EXPECT_NE(ev.data.count(s) > 0, covered.count(s) > 0) << s;
    if (ev.data.count(s)) {
      EXPECT_EQ(ev.data[s]["i"], s);
    }
  }
}

TEST_F(MqttTest, StalledBrokerDoesNotBlockProducersBeyondPolicy) {
  TempDir dir;
  Proxy proxy(broker_.port());
  QueueOptions qo;
  qo.dir = dir.path();
  qo.limits[1] = {64 * 1024, FullPolicy::kBlock, 200, 0};
  qo.limits[0] = {64 * 1024, FullPolicy::kDropOldest, 0, 0};
  auto q = DiskQueue::Open(qo);
  ASSERT_TRUE(q.ok());
  auto mo = Mqtt(proxy.port(), "dev-slow");
  mo.max_inflight = 4;
  mo.batch_max_records = 10;
  Publisher pub(q->get(), mo);
  ASSERT_TRUE(pub.Start().ok());
  ASSERT_TRUE(Collector::WaitFor([&] { return pub.stats().connected; }, 5000));
  proxy.SetStalled(true);  // PUBLISHes go in, no PUBACK comes back
  int64_t worst_metrics = 0, worst_events = 0;
  int timeouts = 0;
  std::string pad(200, 'x');
  for (int i = 0; i < 800; ++i) {
    int64_t t0 = testing::MonoMs();
    ASSERT_TRUE((*q)->Append(Stream::kMetrics, nlohmann::json{{"i", i}, {"p", pad}}.dump()).ok());
    int64_t t1 = testing::MonoMs();
    auto r = (*q)->Append(Stream::kEvents, nlohmann::json{{"i", i}, {"p", pad}}.dump());
    int64_t t2 = testing::MonoMs();
    if (!r.ok()) {
      EXPECT_EQ(r.status().code(), Code::kDeadlineExceeded);
      ++timeouts;
      if (timeouts >= 3) break;
    }
    worst_metrics = std::max(worst_metrics, t1 - t0);
    worst_events = std::max(worst_events, t2 - t1);
  }
  EXPECT_EQ(pub.stats().inflight, 4);  // the window is full and stays bounded
  EXPECT_GE(timeouts, 3);              // events hit their limit and blocked ...
  EXPECT_LT(worst_events, 200 + 300);  // ... never much longer than block_timeout_ms
  EXPECT_LT(worst_metrics, 150);       // drop-oldest never waits for the broker
  proxy.SetStalled(false);
  ASSERT_TRUE(Collector::WaitFor([&] { return AllAcked(**q); }, 20000));
}

TEST_F(MqttTest, ServiceSnapshotsMetricsAndEmitsEvents) {
  TempDir dir;
  config::TelemetryConfig cfg;
  cfg.enabled = true;
  cfg.broker_url = "mqtt://127.0.0.1:" + std::to_string(broker_.port());
  cfg.device_id = "dev-svc";
  cfg.fleet = "test";
  cfg.buffer_dir = dir.path();
  cfg.metrics_interval_ms = 100;
  MetricsRegistry::Global()
      .GetCounter("outpost_test_requests_total", "test counter", {{"model", "m\"1"}})
      .Inc(7);
  auto svc = TelemetryService::Create(cfg);
  ASSERT_TRUE(svc.ok()) << svc.status().ToString();
  ASSERT_TRUE((*svc)->Start().ok());
  ASSERT_TRUE((*svc)->Emit("model_loaded", {{"model", "resnet"}, {"ms", 12}}).ok());
  ASSERT_TRUE((*svc)->Log("warn", "hello").ok());
  ASSERT_TRUE(Collector::WaitFor(
      [&] {
        return !collector_->Stream("dev-svc", "metrics").data.empty() &&
               !collector_->Stream("dev-svc", "events").data.empty() &&
               !collector_->Stream("dev-svc", "logs").data.empty();
      },
      10000));
  auto ev = collector_->Stream("dev-svc", "events").data.begin()->second;
  EXPECT_EQ(ev["type"], "model_loaded");
  EXPECT_EQ(ev["fields"]["model"], "resnet");
  auto met = collector_->Stream("dev-svc", "metrics").data.begin()->second;
  bool found = false;
  for (auto& m : met["metrics"]) {
    if (m["name"] == "outpost_test_requests_total") {
      EXPECT_EQ(m["type"], "counter");
      EXPECT_EQ(m["labels"]["model"], "m\"1");
      EXPECT_EQ(m["value"], 7);
      found = true;
    }
  }
  EXPECT_TRUE(found);
  // The decoder behind `outpost telemetry tail` reads what was sent.
  for (auto& msg : collector_->messages()) {
    if (msg.topic.find("dev-svc") == std::string::npos) continue;
    auto d = DecodeMessage(msg.topic, msg.payload);
    ASSERT_TRUE(d.ok()) << d.status().ToString();
    EXPECT_EQ(d->device, "dev-svc");
    EXPECT_FALSE(FormatMessage(*d).empty());
  }
  (*svc)->Stop();
}

TEST_F(MqttTest, TailReceivesAndDecodes) {
  TempDir dir;
  QueueOptions qo;
  qo.dir = dir.path();
  auto q = DiskQueue::Open(qo);
  ASSERT_TRUE(q.ok());
  TailOptions to;
  to.mqtt = Mqtt(broker_.port(), "");
  to.device = "dev-tail";
  to.timeout_ms = 10000;
  std::vector<DecodedMessage> got;
  std::atomic<bool> stop{false};
  std::thread tail([&] {
    auto st = Tail(
        to,
        [&](const DecodedMessage& m) {
          if (m.leaf == "events") got.push_back(m);
          return got.empty();
        },
        &stop);
    EXPECT_TRUE(st.ok()) << st.ToString();
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // subscribed by then
  Publisher pub(q->get(), Mqtt(broker_.port(), "dev-tail"));
  ASSERT_TRUE(
      (*q)->Append(Stream::kEvents, EventJson("reload", {{"model", "a"}}, 1700000000123)).ok());
  ASSERT_TRUE(pub.Start().ok());
  tail.join();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].device, "dev-tail");
  EXPECT_EQ(got[0].fleet, "test");
  std::string line = FormatMessage(got[0]);
  EXPECT_NE(line.find("dev-tail events #1"), std::string::npos) << line;
  EXPECT_NE(line.find("reload"), std::string::npos) << line;
}

// kill -9 of a producer (every-batch) at random moments, the uplink up or down: every seq it
// saw acknowledged arrives.
TEST_F(MqttTest, KillNineMatrix) {
  TempDir dir;
  Proxy proxy(broker_.port());
  std::string acks = dir.path() + "/acks.txt";
  std::string qdir = dir.path() + "/q";
  std::mt19937 rng(20240605);
  auto run = [&](const char* mode) {
    pid_t pid = ::fork();
    if (pid == 0) {
      std::string port = std::to_string(proxy.port());
      ::execl(OUTPOST_TELEMETRY_PRODUCER, "telemetry_test_producer", mode, qdir.c_str(),
              port.c_str(), acks.c_str(), static_cast<char*>(nullptr));
      ::_exit(127);
    }
    return pid;
  };
  constexpr int kKills = 55;
  int killed_while_up = 0;
  for (int i = 0; i < kKills; ++i) {
    bool up = rng() % 3 != 0;
    proxy.SetDown(!up);
    pid_t pid = run("produce");
    std::this_thread::sleep_for(std::chrono::milliseconds(30 + rng() % 220));
    ::kill(pid, SIGKILL);
    int st;
    ::waitpid(pid, &st, 0);
    ASSERT_TRUE(WIFSIGNALED(st)) << "producer exited by itself at round " << i;
    killed_while_up += up;
  }
  proxy.SetDown(false);
  pid_t pid = run("drain");
  int st;
  ::waitpid(pid, &st, 0);
  ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << "drain run failed";
  std::set<uint64_t> acked;
  {
    std::ifstream f(acks);
    uint64_t s;
    while (f >> s) acked.insert(s);
  }
  ASSERT_GT(acked.size(), 500u);
  ASSERT_TRUE(Collector::WaitFor(
      [&] { return collector_->Stream("dev-kill", "events").data.count(*acked.rbegin()) > 0; },
      10000));
  auto v = collector_->Stream("dev-kill", "events");
  uint64_t missing = 0;
  for (uint64_t s : acked) missing += v.data.count(s) == 0;
  EXPECT_EQ(missing, 0u) << "of " << acked.size() << " acknowledged records";
  // Nothing lost means no gap markers either.
  EXPECT_TRUE(collector_->Stream("dev-kill", "gaps").data.empty());
  RecordProperty("acknowledged", static_cast<int>(acked.size()));
  RecordProperty("duplicates", static_cast<int>(v.duplicates));
  std::printf(
      "kill matrix: %d kills (%d with the uplink up), %zu acknowledged, %zu delivered, "
      "%llu duplicates\n",
      kKills, killed_while_up, acked.size(), v.data.size(),
      static_cast<unsigned long long>(v.duplicates));
}

}  // namespace
}  // namespace outpost::telemetry
