// Telemetry end to end: the real outpostd with telemetry enabled against a real mosquitto (with
// persistence, on 127.0.0.1), and `outpost telemetry tail --json` as the subscriber. Inference
// requests go in; metric snapshots (the series of /metrics), model events, routing and overload
// aggregates, drift statistics and log records come out. Then the broker goes down (SIGTERM) and
// comes back on the same port while requests keep coming, and nothing is lost: after outpostd
// stops, every record its disk queue assigned a seq to has been acknowledged and printed by the
// tail. Expected counts are the requests this test sent.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <map>
#include <set>

#include "outpost/telemetry/queue.h"
#include "outpostd/test_util.h"

#ifndef OUTPOST_CLI_PATH
#error "OUTPOST_CLI_PATH must name the outpost binary"
#endif
#ifndef OUTPOST_MOSQUITTO_BIN
#error "OUTPOST_MOSQUITTO_BIN must name mosquitto"
#endif

namespace outpost::testing {
namespace {

using Clock = std::chrono::steady_clock;

bool CanConnect(uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(port);
  const bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  ::close(fd);
  return ok;
}

// mosquitto with persistence (sessions and queued messages survive a SIGTERM restart).
class Mosquitto {
 public:
  explicit Mosquitto(const std::string& dir) : dir_(dir) {
    fs::create_directories(dir_);
    ::chmod(dir_.c_str(), 0777);  // started as root it runs as the mosquitto user
  }
  bool Start() {
    if (port_ == 0) port_ = FreePort();
    WriteFile(dir_ + "/mosquitto.conf",
              "persistence true\npersistence_location " + dir_ +
                  "/\nautosave_interval 0\nlog_dest file " + dir_ +
                  "/mosquitto.log\nmax_queued_messages 100000\nlistener " + std::to_string(port_) +
                  " 127.0.0.1\nallow_anonymous true\n");
    for (int attempt = 0; attempt < 50; ++attempt) {
      ProcessOptions o;
      o.argv = {OUTPOST_MOSQUITTO_BIN, "-c", dir_ + "/mosquitto.conf"};
      o.capture_stdout = false;
      proc_ = Process::Start(o);
      if (!proc_) return false;
      for (int i = 0; i < 100 && proc_->running(); ++i) {
        if (CanConnect(port_)) return true;
        if (proc_->Wait(20)) break;  // exited: the port is still held, try again
      }
      proc_.reset();
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return false;
  }
  // SIGTERM: it saves its state and exits.
  void Stop() {
    if (proc_ && proc_->Signal(SIGTERM)) proc_->Wait(10000);
    proc_.reset();
  }
  uint16_t port() const { return port_; }
  std::string Log() const { return ReadFile(dir_ + "/mosquitto.log"); }

 private:
  std::string dir_;
  uint16_t port_ = 0;
  std::unique_ptr<Process> proc_;
};

// What `outpost telemetry tail --json` printed, by stream and seq (repeats collapse).
struct Received {
  std::map<std::string, std::map<uint64_t, Json>> by_stream;
  std::vector<Json> status;
  uint64_t lines = 0, repeats = 0;

  void Add(const std::string& line) {
    Json j = Json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.is_object()) return;
    ++lines;
    const std::string stream = j.value("stream", "");
    if (stream == "status") {
      status.push_back(j["data"]);
      return;
    }
    if (!by_stream[stream].emplace(j.value("seq", uint64_t{0}), j["data"]).second) ++repeats;
  }
  std::vector<Json> Events(const std::string& type) const {
    std::vector<Json> out;
    auto it = by_stream.find("events");
    if (it == by_stream.end()) return out;
    for (const auto& [seq, e] : it->second)
      if (e.value("type", "") == type) out.push_back(e["fields"]);
    return out;
  }
  // Sum of "count" over the aggregated events of `type` whose fields match `labels`.
  uint64_t Count(const std::string& type, const std::map<std::string, std::string>& labels) const {
    uint64_t n = 0;
    for (const auto& f : Events(type)) {
      bool match = true;
      for (const auto& [k, v] : labels) match = match && f.value(k, "") == v;
      if (match) n += f.value("count", uint64_t{0});
    }
    return n;
  }
  // The value of `name{labels}` in the newest metric snapshot that has it; -1 when none does.
  double LastMetric(const std::string& name,
                    const std::map<std::string, std::string>& labels) const {
    auto it = by_stream.find("metrics");
    if (it == by_stream.end()) return -1;
    for (auto s = it->second.rbegin(); s != it->second.rend(); ++s) {
      for (const auto& m : s->second["metrics"]) {
        if (m.value("name", "") != name) continue;
        bool match = true;
        for (const auto& [k, v] : labels) match = match && m["labels"].value(k, "") == v;
        if (match) return m["value"].get<double>();
      }
    }
    return -1;
  }
};

class TelemetryE2ETest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fs::exists(OUTPOST_MOSQUITTO_BIN)) GTEST_SKIP() << "mosquitto not installed";
    ::chmod(box_.dir().path().c_str(), 0755);  // mosquitto, as its own user, writes below it
    broker_ = std::make_unique<Mosquitto>(box_.path("mosquitto"));
    ASSERT_TRUE(broker_->Start()) << broker_->Log();
  }
  void TearDown() override {
    if (HasFailure()) {
      if (daemon_)
        std::fprintf(stderr, "---- outpostd ----\n%s\n", daemon_->proc->Stderr().c_str());
      if (tail_) std::fprintf(stderr, "---- tail ----\n%s\n", tail_->Stderr().c_str());
      if (broker_) std::fprintf(stderr, "---- mosquitto ----\n%s\n", broker_->Log().c_str());
    }
  }

  // Reads what the tail printed for up to `ms`, or until `done()` holds.
  template <typename F>
  bool ReadUntil(F done, int ms) {
    const auto until = Clock::now() + std::chrono::milliseconds(ms);
    while (!done()) {
      if (Clock::now() >= until) return false;
      if (auto line = tail_->ReadLine(50)) got_.Add(*line);
    }
    return true;
  }

  // One iris row; with `timeout_us` the deadline cannot be met and serve refuses it (504).
  std::optional<HttpResponse> Infer(V2Client& c, int64_t timeout_us = 0) {
    Json req = {{"inputs", Json::array({{{"name", "input"},
                                         {"datatype", "FP32"},
                                         {"shape", {1, 4}},
                                         {"data", {5.1, 3.5, 1.4, 0.2}}}})}};
    if (timeout_us > 0) req["parameters"] = {{"timeout", timeout_us}};
    return c.Infer("iris", req);
  }
  void Requests(int ok, int refused) {
    V2Client c(daemon_->port);
    for (int i = 0; i < ok; ++i) {
      auto r = Infer(c);
      ASSERT_TRUE(r);
      ASSERT_EQ(r->status, 200) << r->body;
    }
    for (int i = 0; i < refused; ++i) {
      auto r = Infer(c, 1);  // 1 us: gone before the runner sees it
      ASSERT_TRUE(r);
      ASSERT_EQ(r->status, 504) << r->body;
    }
  }

  Sandbox box_;
  std::unique_ptr<Mosquitto> broker_;
  std::unique_ptr<Daemon> daemon_;
  std::unique_ptr<Process> tail_;
  Received got_;
};

TEST_F(TelemetryE2ETest, SourcesArriveAndNothingIsLostAcrossABrokerRestart) {
  const std::string broker_url = "mqtt://127.0.0.1:" + std::to_string(broker_->port());
  // The subscriber first, with a persistent session: it misses nothing while the broker restarts.
  ProcessOptions to;
  to.argv = {OUTPOST_CLI_PATH, "telemetry", "tail",        "--broker", broker_url,    "--device",
             "e2e-dev",        "--json",    "--client-id", "e2e-tail", "--persistent"};
  to.stderr_path = box_.path("tail.log");
  tail_ = Process::Start(to);
  ASSERT_TRUE(tail_);
  // Subscribed once it prints a probe published on one of its topics.
  const std::string pub_bin = FindExecutable("mosquitto_pub");
  ASSERT_FALSE(pub_bin.empty()) << "mosquitto_pub (mosquitto-clients) not installed";
  ASSERT_TRUE(ReadUntil(
      [&] {
        if (!got_.status.empty()) return true;
        const std::string cmd = pub_bin + " -p " + std::to_string(broker_->port()) +
                                " -t outpost/probe/e2e-dev/status -m '{\"state\":\"probe\"}'";
        (void)std::system(cmd.c_str());
        return false;
      },
      10000))
      << "the tail never subscribed";

  box_.AddManifest("iris.yaml", Manifest("iris", "iris_mlp.onnx", {{"threads", "1"}}));
  box_.AddManifest("broken.yaml", Manifest("broken", "bad/not_onnx.onnx"));
  const std::string buffer = box_.path("telemetry");
  box_.AddConfig(
      "telemetry:\n"
      "  enabled: true\n"
      "  broker_url: " +
      broker_url +
      "\n"
      "  device_id: e2e-dev\n"
      "  fleet: e2e\n"
      "  buffer_dir: " +
      buffer +
      "\n"
      "  sync: every-batch\n"
      "  metrics_interval_ms: 300\n"
      "  aggregate_interval_ms: 300\n"
      "  input_stats:\n"
      "    enabled: true\n"
      "    window_s: 1\n"
      "    histogram_bins: 4\n"
      "    histogram_min: 0\n"
      "    histogram_max: 8\n");
  StartOptions so;
  so.args = {"--config", box_.path("device.yaml")};
  std::string err;
  daemon_ = box_.Start(so, &err);
  ASSERT_TRUE(daemon_) << err;

  // ---- phase 1: the broker is up ----
  ASSERT_NO_FATAL_FAILURE(Requests(20, 3));
  const std::map<std::string, std::string> iris_ok = {{"model", "iris"}, {"outcome", "success"}};
  // (Live records may overtake a backlog on the wire: wait for all of them.)
  ASSERT_TRUE(ReadUntil(
      [&] {
        return got_.LastMetric("outpost_requests_total", iris_ok) == 20 &&
               got_.Count("routing", {{"model", "iris"}, {"decision", "local"}}) == 20 &&
               got_.Count("routing", {{"model", "iris"}, {"decision", "refused"}}) == 3 &&
               got_.Count("overload", {{"model", "iris"}, {"reason", "deadline"}}) == 3 &&
               !got_.Events("model_loaded").empty() && !got_.Events("model_load_failed").empty() &&
               !got_.Events("daemon_started").empty() && !got_.by_stream["logs"].empty();
      },
      20000))
      << "metric snapshot " << got_.LastMetric("outpost_requests_total", iris_ok) << ", "
      << got_.lines << " lines";
  // Metric snapshots carry the series /metrics shows, with its names, labels and values.
  V2Client c(daemon_->port);
  auto prom = c.Get("/metrics");
  ASSERT_TRUE(prom && prom->status == 200);
  double served = -1;
  for (const auto& s : ParsePrometheus(prom->body))
    if (s.name == "outpost_requests_total" && s.labels.count("model") &&
        s.labels.at("model") == "iris" && s.labels.at("outcome") == "success")
      served = s.value;
  EXPECT_EQ(served, 20);
  auto loaded = got_.Events("model_loaded");
  ASSERT_EQ(loaded.size(), 1u);
  EXPECT_EQ(loaded[0]["model"], "iris");
  EXPECT_EQ(loaded[0]["version"], "1");
  EXPECT_NE(loaded[0]["path"].get<std::string>().find("iris_mlp.onnx"), std::string::npos);
  auto failed = got_.Events("model_load_failed");
  ASSERT_EQ(failed.size(), 1u);
  EXPECT_EQ(failed[0]["model"], "broken");
  EXPECT_FALSE(failed[0]["error"].get<std::string>().empty());
  EXPECT_EQ(
      got_.Count("routing", {{"model", "iris"}, {"decision", "refused"}, {"reason", "deadline"}}),
      3u);
  EXPECT_EQ(got_.Events("daemon_started").size(), 1u);
  // The failed load was logged at error level: that record went upstream too.
  bool error_logged = false;
  for (const auto& [seq, l] : got_.by_stream["logs"])
    error_logged = error_logged || (l.value("level", "") == "error" &&
                                    l.value("message", "").find("broken") != std::string::npos);
  EXPECT_TRUE(error_logged);
  bool online = false;
  for (const auto& s : got_.status) online = online || s.value("state", "") == "online";
  EXPECT_TRUE(online);

  // ---- phase 2: the broker goes away, requests keep coming, the broker comes back ----
  broker_->Stop();
  // It saved the subscriber's session and what was queued for it (the test relies on that).
  ASSERT_TRUE(fs::exists(box_.path("mosquitto/mosquitto.db"))) << broker_->Log();
  ASSERT_NO_FATAL_FAILURE(Requests(10, 2));
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));  // snapshots pile up on disk
  ASSERT_TRUE(broker_->Start()) << broker_->Log();
  ASSERT_TRUE(
      ReadUntil([&] { return got_.LastMetric("outpost_requests_total", iris_ok) == 30; }, 30000))
      << "no snapshot after the restart";

  // ---- phase 3: outpostd stops (queues what is left, waits for the acknowledgements) ----
  ASSERT_TRUE(daemon_->proc->Signal(SIGTERM));
  auto rc = daemon_->proc->Wait(30000);
  ASSERT_TRUE(rc);
  EXPECT_EQ(*rc, 0);
  std::map<std::string, uint64_t> assigned;
  {
    // What the daemon's disk queue assigned and what the broker acknowledged.
    telemetry::QueueOptions qo;
    qo.dir = buffer;
    auto q = telemetry::DiskQueue::Open(qo);
    ASSERT_TRUE(q.ok()) << q.status().ToString();
    for (auto s : {telemetry::Stream::kMetrics, telemetry::Stream::kEvents,
                   telemetry::Stream::kLogs, telemetry::Stream::kGaps}) {
      const auto st = (*q)->Stats(s);
      assigned[telemetry::StreamName(s)] = st.next_seq - 1;
      EXPECT_EQ(st.acked_seq, st.next_seq - 1)
          << telemetry::StreamName(s) << ": not all acknowledged before outpostd exited";
    }
  }
  EXPECT_EQ(assigned["gaps"], 0u) << "a gap marker means something was lost";
  EXPECT_GT(assigned["metrics"], 5u);
  auto complete = [&] {
    for (const auto& [stream, n] : assigned)
      if (got_.by_stream[stream].size() < n) return false;
    return true;
  };
  ASSERT_TRUE(ReadUntil(complete, 20000));
  for (const auto& [stream, n] : assigned) {
    const auto& seqs = got_.by_stream[stream];
    EXPECT_EQ(seqs.size(), n) << stream;
    if (!seqs.empty()) {
      EXPECT_EQ(seqs.rbegin()->first, n) << stream << ": seqs are 1.." << n;
    }
  }
  // Every aggregate interval arrived: the counts add up to the requests sent.
  EXPECT_EQ(got_.Count("routing", {{"model", "iris"}, {"decision", "local"}}), 30u);
  EXPECT_EQ(got_.Count("routing", {{"model", "iris"}, {"decision", "refused"}}), 5u);
  EXPECT_EQ(got_.Count("overload", {{"model", "iris"}, {"reason", "deadline"}}), 5u);
  EXPECT_EQ(got_.LastMetric("outpost_requests_total", iris_ok), 30);
  // Drift statistics over every window: 35 requests passed their checks (the 5 refused ones were
  // refused by the runner, after that), all with the same row.
  uint64_t rows = 0, f0 = 0;
  std::vector<uint64_t> hist0(4, 0);
  for (const auto& s : got_.Events("input_stats")) {
    if (s["model"] != "iris" || s["input"] != "input") continue;
    rows += s["rows"].get<uint64_t>();
    ASSERT_EQ(s["features"].size(), 4u);
    const auto& f = s["features"][0];
    f0 += f["count"].get<uint64_t>();
    EXPECT_NEAR(f["mean"].get<double>(), 5.1, 1e-5);
    EXPECT_NEAR(f["variance"].get<double>(), 0.0, 1e-9);
    for (size_t b = 0; b < 4; ++b) hist0[b] += f["histogram"][b].get<uint64_t>();
  }
  EXPECT_EQ(rows, 35u);
  EXPECT_EQ(f0, 35u);
  EXPECT_EQ(hist0, (std::vector<uint64_t>{0, 0, 35, 0}));  // 5.1 is in [4, 6)
  EXPECT_EQ(got_.Events("daemon_stopping").size(), 1u);
  // The graceful stop left the "offline" status.
  EXPECT_TRUE(ReadUntil([&] { return got_.status.back().value("state", "") == "offline"; }, 10000));
  EXPECT_EQ(got_.status.back().value("reason", ""), "shutdown");
  std::printf("telemetry e2e: %llu lines, %llu repeats; metrics %llu, events %llu, logs %llu\n",
              static_cast<unsigned long long>(got_.lines),
              static_cast<unsigned long long>(got_.repeats),
              static_cast<unsigned long long>(assigned["metrics"]),
              static_cast<unsigned long long>(assigned["events"]),
              static_cast<unsigned long long>(assigned["logs"]));
  ASSERT_TRUE(tail_->Signal(SIGINT));
  auto tail_rc = tail_->Wait(10000);
  ASSERT_TRUE(tail_rc);
  EXPECT_EQ(*tail_rc, 0);
}

}  // namespace
}  // namespace outpost::testing
