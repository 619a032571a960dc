// route::Forwarder against real outpostd processes on 127.0.0.1 (ephemeral ports) serving the
// bundled Iris model as the "cloud": the forwarded answer must be the one the endpoint gives to
// the same request sent directly (status, Content-Type, binary header length, body bytes), and
// its values ONNX Runtime's golden output. Endpoints that are down are a closed port (refused)
// and a socket that accepts into its backlog and never answers (timeout).
#include "outpost/route/forwarder.h"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <future>

#include "outpost/core/metrics.h"
#include "outpostd/test_util.h"

namespace outpost::testing {
namespace {

using route::Forwarder;
using route::ForwardRequest;

Json IrisRequest(const NpyFloat& in, int64_t rows) {
  std::vector<float> data(in.data.begin(), in.data.begin() + rows * 4);
  return Json{
      {"id", "r-1"},
      {"inputs",
       Json::array(
           {{{"name", "input"}, {"datatype", "FP32"}, {"shape", {rows, 4}}, {"data", data}}})}};
}

// A loopback TCP socket that listens but never accepts: connections complete into the backlog
// and no byte is ever answered.
class SilentListener {
 public:
  SilentListener() {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&a), len) == 0 && ::listen(fd_, 16) == 0 &&
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len) == 0)
      port_ = ntohs(a.sin_port);
  }
  ~SilentListener() { ::close(fd_); }
  uint16_t port() const { return port_; }

 private:
  int fd_ = -1;
  uint16_t port_ = 0;
};

class ForwarderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string err;
    auto g = LoadGolden("iris_mlp", &err);
    ASSERT_TRUE(g) << err;
    iris_ = std::move(*g);
    box_.AddManifest("iris.yaml", Manifest("iris", "iris_mlp.onnx", {{"threads", "1"}}));
    cloud_ = box_.Start({}, &err);
    ASSERT_TRUE(cloud_) << err;
  }
  void TearDown() override {
    if (HasFailure() && cloud_) std::fprintf(stderr, "cloud: %s\n", cloud_->proc->Stderr().c_str());
  }
  std::string CloudUrl() const { return "http://127.0.0.1:" + std::to_string(cloud_->port); }
  static std::string ClosedPortUrl() { return "http://127.0.0.1:" + std::to_string(FreePort()); }

  Sandbox box_;
  std::unique_ptr<Daemon> cloud_;
  Golden iris_;
};

TEST_F(ForwarderTest, JsonRequestAnsweredAsTheEndpointAnswersIt) {
  const std::string body = IrisRequest(iris_.input, 45).dump();
  V2Client direct(cloud_->port);
  auto want = direct.Post("/v2/models/iris/infer", body, {{"Content-Type", "application/json"}});
  ASSERT_TRUE(want && want->status == 200);

  Forwarder f;
  ForwardRequest req;
  req.model = "iris";
  req.content_type = "application/json";
  req.body = body;
  auto got = f.Forward({CloudUrl()}, req);
  ASSERT_EQ(got.status, 200) << got.body;
  EXPECT_EQ(got.endpoint, CloudUrl());
  EXPECT_EQ(got.content_type, *want->Header("Content-Type"));
  EXPECT_EQ(got.body, want->body);
  Json j = Json::parse(got.body);
  EXPECT_EQ(j["id"], "r-1");
  EXPECT_EQ(j["model_name"], "iris");
  std::vector<double> p;
  FlattenJson(j["outputs"][0]["data"], &p);
  EXPECT_EQ(FirstMismatch(p, iris_.output.data, 0), -1);

  // A version in the URL, and an error answer (4xx) passed back as the endpoint gave it.
  req.version = "1";
  EXPECT_EQ(f.Forward({CloudUrl()}, req).status, 200);
  req.version = "7";
  auto missing = f.Forward({CloudUrl()}, req);
  EXPECT_EQ(missing.status, 404);
  EXPECT_EQ(missing.endpoint, CloudUrl());
  EXPECT_NE(missing.body.find("version '7'"), std::string::npos) << missing.body;
}

TEST_F(ForwarderTest, BinaryExtensionRequestForwardedByteExact) {
  const int64_t rows = 45;
  std::vector<float> data(iris_.input.data.begin(), iris_.input.data.begin() + rows * 4);
  const std::string bytes = Fp32Bytes(data);
  const Json header = {
      {"inputs", Json::array({{{"name", "input"},
                               {"datatype", "FP32"},
                               {"shape", {rows, 4}},
                               {"parameters", {{"binary_data_size", bytes.size()}}}}})},
      {"outputs",
       Json::array({{{"name", "probabilities"}, {"parameters", {{"binary_data", true}}}}})}};
  V2Client direct(cloud_->port);
  auto want = direct.InferBinary("iris", header, bytes);
  ASSERT_TRUE(want && want->status == 200) << (want ? want->body : "no answer");
  ASSERT_TRUE(want->Header("Inference-Header-Content-Length"));

  Forwarder f;
  ForwardRequest req;
  req.model = "iris";
  req.content_type = "application/octet-stream";
  req.header_length = std::to_string(header.dump().size());
  req.body = header.dump() + bytes;
  auto got = f.Forward({CloudUrl()}, req);
  ASSERT_EQ(got.status, 200) << got.body;
  EXPECT_EQ(got.content_type, *want->Header("Content-Type"));
  ASSERT_EQ(got.headers.size(), 1u);
  EXPECT_EQ(got.headers[0].first, "Inference-Header-Content-Length");
  EXPECT_EQ(got.headers[0].second, *want->Header("Inference-Header-Content-Length"));
  EXPECT_EQ(got.body, want->body);
  const size_t n = std::stoul(got.headers[0].second);
  std::vector<float> probs = Fp32FromBytes(std::string_view(got.body).substr(n));
  std::vector<double> pd(probs.begin(), probs.end());
  ASSERT_EQ(pd.size(), 135u);
  EXPECT_EQ(FirstMismatch(pd, iris_.output.data, 0), -1);
}

TEST_F(ForwarderTest, EndpointsTriedInOrderUntilOneAnswers) {
  const std::string down = ClosedPortUrl();
  Forwarder f;
  ForwardRequest req;
  req.model = "iris";
  req.content_type = "application/json";
  req.body = IrisRequest(iris_.input, 1).dump();
  auto got = f.Forward({down, CloudUrl() + "/"}, req);
  ASSERT_EQ(got.status, 200) << got.body;
  EXPECT_EQ(got.endpoint, CloudUrl() + "/");
  auto& reg = MetricsRegistry::Global();
  EXPECT_EQ(reg.GetCounter("outpost_route_forwarded_total", "",
                           {{"model", "iris"}, {"endpoint", down}, {"outcome", "error"}})
                .value(),
            1u);
  // The cloud first: the closed port is never tried.
  got = f.Forward({CloudUrl(), down}, req);
  EXPECT_EQ(got.endpoint, CloudUrl());
  EXPECT_EQ(reg.GetCounter("outpost_route_forwarded_total", "",
                           {{"model", "iris"}, {"endpoint", down}, {"outcome", "error"}})
                .value(),
            1u);
  req.model = "no-such-model";
  got = f.Forward({CloudUrl()}, req);
  EXPECT_EQ(got.status, 404) << "4xx answers are the endpoint's answer, not a failure";
}

// A 5xx answer is the endpoint failing: the next one is tried. The 5xx comes from a real outpostd
// ("relay") in handoff whose own fallback endpoint is down: it answers 503.
TEST_F(ForwarderTest, ServerErrorMovesOnToTheNextEndpoint) {
  Sandbox relay_box;
  relay_box.AddManifest("iris.yaml",
                        Manifest("iris", "iris_mlp.onnx",
                                 {{"threads", "1"}, {"fallback-endpoints", ClosedPortUrl()}}));
  std::string err;
  auto relay = relay_box.Start({}, &err);
  ASSERT_TRUE(relay) << err;
  V2Client admin(relay->port);
  auto on = admin.http().Request("POST", "/outpost/v1/handoff", R"({"ttl_s": 60})");
  ASSERT_TRUE(on && on->status == 200) << (on ? on->body : admin.http().last_error());
  const std::string relay_url = "http://127.0.0.1:" + std::to_string(relay->port);

  Forwarder f;
  ForwardRequest req;
  req.model = "iris";
  req.content_type = "application/json";
  req.body = IrisRequest(iris_.input, 1).dump();
  auto alone = f.Forward({relay_url}, req);
  EXPECT_EQ(alone.status, 503);
  EXPECT_NE(alone.body.find(relay_url + " (answered 503: no fallback endpoint answered"),
            std::string::npos)
      << alone.body;
  auto got = f.Forward({relay_url, CloudUrl()}, req);
  ASSERT_EQ(got.status, 200) << got.body;
  EXPECT_EQ(got.endpoint, CloudUrl());
  EXPECT_EQ(
      MetricsRegistry::Global()
          .GetCounter("outpost_route_forwarded_total", "",
                      {{"model", "iris"}, {"endpoint", relay_url}, {"outcome", "server_error"}})
          .value(),
      2u);
}

TEST_F(ForwarderTest, EveryEndpointDownIs503NamingThem) {
  const std::string a = ClosedPortUrl(), b = ClosedPortUrl();
  Forwarder f;
  ForwardRequest req;
  req.model = "iris";
  req.body = IrisRequest(iris_.input, 1).dump();
  auto got = f.Forward({a, b}, req);
  EXPECT_EQ(got.status, 503);
  EXPECT_TRUE(got.endpoint.empty());
  ASSERT_EQ(got.headers.size(), 1u);
  EXPECT_EQ(got.headers[0].first, "Retry-After");
  EXPECT_GE(std::stoi(got.headers[0].second), 1);
  Json j = Json::parse(got.body, nullptr, false);
  ASSERT_TRUE(j.is_object() && j["error"].is_string()) << got.body;
  const std::string e = j["error"];
  EXPECT_NE(e.find(a), std::string::npos) << e;
  EXPECT_NE(e.find(b), std::string::npos) << e;
  EXPECT_LT(e.find(a), e.find(b)) << "in the order tried: " << e;

  // Submit answers through the callback on a worker thread, the same answer.
  std::promise<route::ForwardResponse> done;
  ASSERT_TRUE(
      f.Submit({a}, req, [&](route::ForwardResponse r) { done.set_value(std::move(r)); }).ok());
  auto async = done.get_future().get();
  EXPECT_EQ(async.status, 503);
  EXPECT_NE(async.body.find(a), std::string::npos);
  EXPECT_FALSE(f.Submit({}, req, [](route::ForwardResponse) {}).ok());
}

TEST_F(ForwarderTest, DeadlineBoundsEveryTry) {
  SilentListener silent;
  ASSERT_NE(silent.port(), 0);
  const std::string mute = "http://127.0.0.1:" + std::to_string(silent.port());
  Forwarder f;
  ForwardRequest req;
  req.model = "iris";
  req.content_type = "application/json";
  req.body = IrisRequest(iris_.input, 1).dump();
  req.deadline = route::Clock::now() + std::chrono::milliseconds(300);
  // The silent endpoint uses the whole deadline: the cloud behind it is never reached.
  auto got = f.Forward({mute, CloudUrl()}, req);
  EXPECT_EQ(got.status, 504) << got.body;
  EXPECT_NE(got.body.find(mute), std::string::npos) << got.body;
  EXPECT_EQ(got.body.find(CloudUrl() + " ("), std::string::npos) << got.body;
  EXPECT_EQ(MetricsRegistry::Global()
                .GetCounter("outpost_route_forwarded_total", "",
                            {{"model", "iris"}, {"endpoint", mute}, {"outcome", "timeout"}})
                .value(),
            1u);
}

TEST_F(ForwarderTest, WorkerKeepsItsConnectionToAnEndpoint) {
  V2Client metrics(cloud_->port);
  auto before = metrics.Get("/metrics");
  ASSERT_TRUE(before);
  const double opened0 =
      Value(ParsePrometheus(before->body), "outpost_http_connections_opened_total", {});
  route::ForwarderOptions o;
  o.workers = 1;
  Forwarder f(o);
  ForwardRequest req;
  req.model = "iris";
  req.content_type = "application/json";
  req.body = IrisRequest(iris_.input, 2).dump();
  for (int i = 0; i < 10; ++i) {
    std::promise<int> done;
    ASSERT_TRUE(f.Submit({CloudUrl()}, req, [&](route::ForwardResponse r) {
                   done.set_value(r.status);
                 }).ok());
    EXPECT_EQ(done.get_future().get(), 200);
  }
  auto after = metrics.Get("/metrics");  // same connection as before
  ASSERT_TRUE(after);
  EXPECT_EQ(metrics.http().reused(), 1);
  EXPECT_EQ(Value(ParsePrometheus(after->body), "outpost_http_connections_opened_total", {}),
            opened0 + 1)
      << "10 forwards by one worker should use one connection";
}

}  // namespace
}  // namespace outpost::testing
