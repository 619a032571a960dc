// The handoff (/outpost/v1/handoff) and the SIGTERM drain forwarding to the cloud, end to end:
// two real outpostd processes on 127.0.0.1 with ephemeral ports, the "device" and the "cloud",
// both serving the bundled Iris model; the device's manifest names the cloud in
// outpost.io/fallback-endpoints. Answers are checked against ONNX Runtime's golden output, who
// answered by the Outpost-Served-By header and by the cloud's own request counter.
#include <gtest/gtest.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>

#include "outpostd/test_util.h"

namespace outpost::testing {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

Json IrisRequest(const NpyFloat& in, int64_t row) {
  std::vector<float> data(in.data.begin() + row * 4, in.data.begin() + row * 4 + 4);
  return Json{
      {"inputs",
       Json::array(
           {{{"name", "input"}, {"datatype", "FP32"}, {"shape", {1, 4}}, {"data", data}}})}};
}

// A non-loopback IPv4 address of this machine ("" when it has none).
std::string NonLoopbackIpv4() {
  ifaddrs* ifs = nullptr;
  if (::getifaddrs(&ifs) != 0) return "";
  std::string out;
  for (ifaddrs* i = ifs; i && out.empty(); i = i->ifa_next) {
    if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET || (i->ifa_flags & IFF_LOOPBACK) ||
        !(i->ifa_flags & IFF_UP))
      continue;
    char buf[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(i->ifa_addr)->sin_addr, buf, sizeof buf);
    out = buf;
  }
  ::freeifaddrs(ifs);
  return out;
}

class HandoffTest : public ::testing::Test {
 public:  // (the Client thread below reads iris_ and calls Wrong)
  void SetUp() override {
    std::string err;
    auto g = LoadGolden("iris_mlp", &err);
    ASSERT_TRUE(g) << err;
    iris_ = std::move(*g);
    cloud_box_.AddManifest("iris.yaml", Manifest("iris", "iris_mlp.onnx", {{"threads", "1"}}));
    cloud_ = cloud_box_.Start({}, &err);
    ASSERT_TRUE(cloud_) << err;
    cloud_url_ = "http://127.0.0.1:" + std::to_string(cloud_->port);
    // The device: iris falls back to a closed port first (down), then the cloud; iris-local has
    // no fallback.
    down_url_ = "http://127.0.0.1:" + std::to_string(FreePort());
  }
  void TearDown() override {
    if (!HasFailure()) return;
    if (device_) std::fprintf(stderr, "---- device ----\n%s\n", device_->proc->Stderr().c_str());
    if (cloud_) std::fprintf(stderr, "---- cloud ----\n%s\n", cloud_->proc->Stderr().c_str());
  }
  // `iris_extra`: more annotations for the device's iris (batching settings).
  void StartDevice(const std::string& listen = "127.0.0.1:0",
                   const std::map<std::string, std::string>& iris_extra = {}) {
    std::map<std::string, std::string> ann = {{"threads", "1"},
                                              {"fallback-endpoints", down_url_ + "," + cloud_url_}};
    ann.insert(iris_extra.begin(), iris_extra.end());
    box_.AddManifest("iris.yaml", Manifest("iris", "iris_mlp.onnx", ann));
    box_.AddManifest("iris-local.yaml",
                     Manifest("iris-local", "iris_mlp.onnx", {{"threads", "1"}}));
    std::string err;
    StartOptions o;
    o.listen = listen;
    device_ = box_.Start(o, &err);
    ASSERT_TRUE(device_) << err;
  }
  static double Metric(const Daemon& d, const std::string& name,
                       const std::map<std::string, std::string>& labels = {}) {
    V2Client c(d.port);
    auto r = c.Get("/metrics");
    return r && r->status == 200 ? Value(ParsePrometheus(r->body), name, labels) : NAN;
  }
  // Iris requests the cloud answered (the series exists from the first one on).
  double CloudServed() {
    const double v =
        Metric(*cloud_, "outpost_requests_total", {{"model", "iris"}, {"outcome", "success"}});
    return std::isnan(v) ? 0 : v;
  }
  // Checks an Iris answer for `row` against ONNX Runtime's; "" when right.
  std::string Wrong(const std::optional<HttpResponse>& r, int64_t row) {
    if (!r) return "no answer";
    if (r->status != 200) return "status " + std::to_string(r->status) + ": " + r->body;
    std::vector<double> got;
    FlattenJson(r->JsonBody()["outputs"][0]["data"], &got);
    if (got.size() != 3) return "not 3 values: " + r->body;
    return FirstMismatch(got, iris_.output.data, static_cast<size_t>(row * 3)) == -1
               ? ""
               : "values differ from ONNX Runtime's: " + r->body;
  }
  std::optional<HttpResponse> Admin(const std::string& method, const std::string& body = "") {
    V2Client c(device_->port);
    return c.http().Request(method, "/outpost/v1/handoff", body,
                            {{"Content-Type", "application/json"}});
  }

  Sandbox cloud_box_, box_;
  std::unique_ptr<Daemon> cloud_, device_;
  std::string cloud_url_, down_url_;
  Golden iris_;
};

// A client sending Iris requests back to back on one keep-alive connection; every answer is
// recorded with the phase the test was in when the request was sent.
class Client {
 public:
  Client(HandoffTest* t, uint16_t port, std::string model) : model_(std::move(model)) {
    thread_ = std::thread([this, t, port] {
      V2Client c(port);
      for (int64_t i = 0; !stop_; ++i) {
        const int64_t row = i % 45;
        const int phase = phase_.load();
        auto r = c.Infer(model_, IrisRequest(t->iris_.input, row));
        Result res{phase, t->Wrong(r, row), r ? r->Header("Outpost-Served-By") : std::nullopt};
        std::lock_guard<std::mutex> lock(mu_);
        results_.push_back(std::move(res));
      }
    });
  }
  ~Client() { Stop(); }
  void Stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  void SetPhase(int p) { phase_ = p; }
  size_t count() {
    std::lock_guard<std::mutex> lock(mu_);
    return results_.size();
  }
  // Waits until `n` more answers came.
  bool WaitMore(size_t n) {
    const size_t want = count() + n;
    for (int i = 0; i < 2000 && count() < want; ++i) std::this_thread::sleep_for(milliseconds(5));
    return count() >= want;
  }
  struct Result {
    int phase;
    std::string wrong;
    std::optional<std::string> served_by;
  };
  std::vector<Result> results() {
    std::lock_guard<std::mutex> lock(mu_);
    return results_;
  }

 private:
  std::string model_;
  std::atomic<bool> stop_{false};
  std::atomic<int> phase_{0};
  std::mutex mu_;
  std::vector<Result> results_;
  std::thread thread_;
};

TEST_F(HandoffTest, RequestsGoToTheCloudDuringHandoffAndHomeAfter) {
  ASSERT_NO_FATAL_FAILURE(StartDevice());
  EXPECT_EQ(Metric(*device_, "outpost_serve_handoff"), 0);
  Client iris(this, device_->port, "iris");
  ASSERT_TRUE(iris.WaitMore(20));
  const double cloud_before = CloudServed();

  // Phase 1: handoff on. Requests sent after the call returned are the cloud's.
  iris.SetPhase(-1);  // (sent while the call was being made: either)
  auto on = Admin("POST", R"({"reason": "reboot", "ttl_s": 120})");
  ASSERT_TRUE(on);
  ASSERT_EQ(on->status, 200) << on->body;
  Json j = on->JsonBody();
  EXPECT_EQ(j["handoff"], true);
  EXPECT_EQ(j["forwarded_models"], Json::array({"iris"})) << j;
  EXPECT_NE(j["reason"].get<std::string>().find("reboot"), std::string::npos);
  iris.SetPhase(1);
  ASSERT_TRUE(iris.WaitMore(30));
  EXPECT_EQ(Metric(*device_, "outpost_serve_handoff"), 1);
  // Local inference drains to 0 while the client keeps sending (the agent's reading).
  bool drained = false;
  for (int i = 0; i < 200 && !drained; ++i) {
    drained = Metric(*device_, "outpost_serve_in_flight") == 0;
    if (!drained) std::this_thread::sleep_for(milliseconds(10));
  }
  EXPECT_TRUE(drained) << "outpost_serve_in_flight never reached 0 during the handoff";
  // A model without fallback endpoints is still served here.
  V2Client local(device_->port);
  auto lr = local.Infer("iris-local", IrisRequest(iris_.input, 3));
  EXPECT_EQ(Wrong(lr, 3), "");
  EXPECT_FALSE(lr->Header("Outpost-Served-By")) << *lr->Header("Outpost-Served-By");
  ASSERT_TRUE(iris.WaitMore(10));

  // Phase 2: handoff off. Requests sent after that are local again.
  iris.SetPhase(-1);
  auto off = Admin("DELETE");
  ASSERT_TRUE(off);
  ASSERT_EQ(off->status, 200) << off->body;
  EXPECT_EQ(off->JsonBody()["handoff"], false);
  iris.SetPhase(2);
  ASSERT_TRUE(iris.WaitMore(30));
  iris.Stop();
  EXPECT_EQ(Metric(*device_, "outpost_serve_handoff"), 0);

  size_t n[3] = {0, 0, 0};
  for (const auto& r : iris.results()) {
    ASSERT_EQ(r.wrong, "") << "phase " << r.phase;  // every request answered, correctly
    if (r.phase < 0) continue;
    ++n[r.phase];
    if (r.phase == 1) {
      ASSERT_TRUE(r.served_by) << "a request sent during the handoff was served locally";
      EXPECT_EQ(*r.served_by, "fallback " + cloud_url_);
    } else {
      EXPECT_FALSE(r.served_by) << "phase " << r.phase << ": " << *r.served_by;
    }
  }
  EXPECT_GE(n[0], 20u);
  EXPECT_GE(n[1], 40u);
  EXPECT_GE(n[2], 30u);
  // The cloud answered at least the phase-1 requests; the down endpoint was tried first.
  EXPECT_GE(CloudServed() - cloud_before, static_cast<double>(n[1]));
  EXPECT_GE(Metric(*device_, "outpost_route_forwarded_total",
                   {{"model", "iris"}, {"endpoint", down_url_}, {"outcome", "error"}}),
            static_cast<double>(n[1]));
  const std::string log = device_->proc->Stderr();
  EXPECT_NE(log.find("handoff on (reboot"), std::string::npos) << log;
  EXPECT_NE(log.find("handoff off (cleared by 127.0.0.1"), std::string::npos) << log;
}

// A local request accepted before the handoff (held by a batch that waits 3 s to fill) finishes
// here while the requests after the handoff call go to the cloud; the in-flight gauge goes from
// 1 to 0 with it.
TEST_F(HandoffTest, LocalRequestInFlightFinishesLocally) {
  ASSERT_NO_FATAL_FAILURE(
      StartDevice("127.0.0.1:0", {{"max-batch-size", "4"}, {"max-queue-delay-us", "3000000"}}));
  std::optional<HttpResponse> held;
  std::thread t([&] { held = V2Client(device_->port).Infer("iris", IrisRequest(iris_.input, 7)); });
  bool queued = false;
  for (int i = 0; i < 500 && !queued; ++i) {
    queued = Metric(*device_, "outpost_serve_in_flight") == 1;
    if (!queued) std::this_thread::sleep_for(milliseconds(5));
  }
  ASSERT_TRUE(queued) << "the held request never became in flight";
  auto on = Admin("POST", R"({"reason": "reboot", "ttl_s": 60})");
  ASSERT_TRUE(on && on->status == 200);
  V2Client c(device_->port);
  auto r = c.Infer("iris", IrisRequest(iris_.input, 8));
  EXPECT_EQ(Wrong(r, 8), "");
  ASSERT_TRUE(r && r->Header("Outpost-Served-By"));
  t.join();
  EXPECT_EQ(Wrong(held, 7), "");
  EXPECT_FALSE(held->Header("Outpost-Served-By")) << "accepted locally, answered locally";
  EXPECT_EQ(Metric(*device_, "outpost_serve_in_flight"), 0);
  EXPECT_EQ(Metric(*device_, "outpost_requests_total", {{"model", "iris"}, {"outcome", "success"}}),
            1);
}

TEST_F(HandoffTest, HandoffEndsWhenItsTtlRunsOut) {
  ASSERT_NO_FATAL_FAILURE(StartDevice());
  auto on = Admin("POST", R"({"reason": "reboot", "ttl_s": 1})");
  ASSERT_TRUE(on && on->status == 200) << (on ? on->body : "no answer");
  V2Client c(device_->port);
  auto r = c.Infer("iris", IrisRequest(iris_.input, 0));
  EXPECT_EQ(Wrong(r, 0), "");
  ASSERT_TRUE(r->Header("Outpost-Served-By"));
  // No DELETE: the device serves locally again on its own, and says so in its log (the main
  // loop's tick ends it even without a request).
  bool home = false;
  for (int i = 0; i < 100 && !home; ++i) {
    std::this_thread::sleep_for(milliseconds(100));
    home = device_->proc->Stderr().find("handoff off (its TTL ran out)") != std::string::npos;
  }
  ASSERT_TRUE(home) << device_->proc->Stderr();
  auto state = Admin("GET");
  ASSERT_TRUE(state);
  EXPECT_EQ(state->JsonBody()["handoff"], false);
  r = c.Infer("iris", IrisRequest(iris_.input, 1));
  EXPECT_EQ(Wrong(r, 1), "");
  EXPECT_FALSE(r->Header("Outpost-Served-By"));
  EXPECT_EQ(Metric(*device_, "outpost_serve_handoff"), 0);
}

TEST_F(HandoffTest, MalformedHandoffCallsAreRefused) {
  ASSERT_NO_FATAL_FAILURE(StartDevice());
  const std::pair<std::string, std::string> bad[] = {
      {"not json", "JSON object"},
      {R"(["reboot", 5])", "JSON object"},
      {R"({"reason": "reboot"})", "'ttl_s' is required"},
      {R"({"reason": "reboot", "ttl_s": -3})", "(0, 86400]"},
      {R"({"reason": "reboot", "ttl_s": 0})", "(0, 86400]"},
      {R"({"reason": "reboot", "ttl_s": 100000})", "(0, 86400]"},
      {R"({"reason": "reboot", "ttl_s": "60"})", "number"},
      {R"({"reason": 7, "ttl_s": 60})", "'reason' must be a string"},
      {R"({"reason": "reboot", "ttl_s": 60, "forever": true})", "unknown member 'forever'"},
  };
  for (const auto& [body, says] : bad) {
    auto r = Admin("POST", body);
    ASSERT_TRUE(r) << body;
    EXPECT_EQ(r->status, 400) << body;
    EXPECT_NE(r->Error().find(says), std::string::npos) << body << " -> " << r->body;
  }
  auto put = Admin("PUT", R"({"ttl_s": 60})");
  ASSERT_TRUE(put);
  EXPECT_EQ(put->status, 405);
  auto state = Admin("GET");
  ASSERT_TRUE(state && state->status == 200);
  EXPECT_EQ(state->JsonBody()["handoff"], false);
  EXPECT_EQ(Metric(*device_, "outpost_serve_handoff"), 0);
  V2Client c(device_->port);
  auto r = c.Infer("iris", IrisRequest(iris_.input, 2));
  EXPECT_EQ(Wrong(r, 2), "");
  EXPECT_FALSE(r->Header("Outpost-Served-By"));
}

TEST_F(HandoffTest, HandoffCallFromANonLoopbackPeerIsRefused) {
  const std::string ip = NonLoopbackIpv4();
  if (ip.empty()) GTEST_SKIP() << "this machine has no non-loopback IPv4 address to call from";
  ASSERT_NO_FATAL_FAILURE(StartDevice("0.0.0.0:0"));
  V2Client remote(device_->port, ip);
  auto r =
      remote.http().Request("POST", "/outpost/v1/handoff", R"({"reason": "reboot", "ttl_s": 60})",
                            {{"Content-Type", "application/json"}});
  ASSERT_TRUE(r) << remote.http().last_error();
  EXPECT_EQ(r->status, 403) << r->body;
  EXPECT_NE(r->Error().find(ip), std::string::npos) << r->body;
  auto del = remote.http().Request("DELETE", "/outpost/v1/handoff");
  ASSERT_TRUE(del);
  EXPECT_EQ(del->status, 403);
  EXPECT_EQ(Metric(*device_, "outpost_serve_handoff"), 0);
  // Inference from that peer is served as always.
  auto inf = V2Client(device_->port, ip).Infer("iris", IrisRequest(iris_.input, 4));
  EXPECT_EQ(Wrong(inf, 4), "");
  // The same call from loopback is accepted.
  auto ok = Admin("POST", R"({"reason": "reboot", "ttl_s": 60})");
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 200);
}

// SIGTERM, with the handoff off and on: requests still being received when the drain begins are
// answered by the cloud for a model with fallback endpoints, and refused (503) for one without.
class SigtermTest : public HandoffTest, public ::testing::WithParamInterface<bool> {};

TEST_P(SigtermTest, DrainForwardsRequestsOfModelsWithFallback) {
  ASSERT_NO_FATAL_FAILURE(StartDevice());
  if (GetParam()) {
    auto on = Admin("POST", R"({"reason": "reboot", "ttl_s": 60})");
    ASSERT_TRUE(on && on->status == 200);
  }
  const double cloud_before = CloudServed();
  size_t sent = 0;  // bytes of the two partial requests
  auto partial = [&](const std::string& model, HttpClient& h, std::string* rest) {
    const std::string body = IrisRequest(iris_.input, 5).dump();
    const std::string head = "POST /v2/models/" + model +
                             "/infer HTTP/1.1\r\nHost: device\r\nContent-Type: application/json"
                             "\r\nContent-Length: " +
                             std::to_string(body.size()) + "\r\n\r\n";
    ASSERT_TRUE(h.Connect());
    ASSERT_TRUE(h.SendAll(head + body.substr(0, 10)));
    sent += head.size() + 10;
    *rest = body.substr(10);
  };
  // The server must have read both partial requests before the drain begins (a connection with
  // nothing read yet is closed as idle): its byte counter, read over one keep-alive connection
  // whose own requests all have the same size, says when.
  V2Client m(device_->port);
  auto bytes_in = [&] {
    auto r = m.Get("/metrics");
    return r ? Value(ParsePrometheus(r->body), "outpost_http_bytes_received_total") : NAN;
  };
  const double b0 = bytes_in();
  const double per_call = bytes_in() - b0;
  ASSERT_GT(per_call, 0);
  HttpClient a(device_->port), b(device_->port);
  std::string rest_a, rest_b;
  ASSERT_NO_FATAL_FAILURE(partial("iris", a, &rest_a));
  ASSERT_NO_FATAL_FAILURE(partial("iris-local", b, &rest_b));
  bool read = false;
  for (int k = 2; k < 1000 && !read; ++k) {
    read = bytes_in() - b0 >= k * per_call + static_cast<double>(sent);
    if (!read) std::this_thread::sleep_for(milliseconds(5));
  }
  ASSERT_TRUE(read) << "the server never read the partial requests";
  ASSERT_TRUE(device_->proc->Signal(SIGTERM));
  // The drain began once new connections are refused.
  bool refused = false;
  for (int i = 0; i < 500 && !refused; ++i) {
    int fd = ConnectTcp("127.0.0.1", device_->port);
    refused = fd < 0;
    if (fd >= 0) ::close(fd);
    std::this_thread::sleep_for(milliseconds(10));
  }
  ASSERT_TRUE(refused) << "the drain never began";
  ASSERT_TRUE(a.SendAll(rest_a));
  ASSERT_TRUE(b.SendAll(rest_b));
  auto ra = a.ReadResponse();
  auto rb = b.ReadResponse();
  EXPECT_EQ(Wrong(ra, 5), "");
  ASSERT_TRUE(ra && ra->Header("Outpost-Served-By"));
  EXPECT_EQ(*ra->Header("Outpost-Served-By"), "fallback " + cloud_url_);
  EXPECT_EQ(ra->Header("Connection"), "close");
  ASSERT_TRUE(rb);
  EXPECT_EQ(rb->status, 503) << rb->body;
  EXPECT_TRUE(rb->Header("Retry-After"));
  EXPECT_EQ(CloudServed() - cloud_before, 1);
  auto rc = device_->proc->Wait(15000);
  ASSERT_TRUE(rc) << "outpostd did not exit after SIGTERM";
  EXPECT_EQ(*rc, 0) << device_->proc->Stderr();
}

INSTANTIATE_TEST_SUITE_P(Handoff, SigtermTest, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& i) {
                           return i.param ? std::string("handoff_on") : std::string("handoff_off");
                         });

}  // namespace
}  // namespace outpost::testing
