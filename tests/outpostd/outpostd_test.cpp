// End-to-end tests of the outpostd daemon: the real binary on 127.0.0.1 with an ephemeral port,
// each test in its own temp dir with its own manifests, spoken to over real sockets with the V2
// client of v2_client.h (written from the Open Inference Protocol spec) and the curl CLI.
// Expected values come from the specs and from ONNX Runtime's golden outputs, never from outpostd.
#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <barrier>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "outpost/core/thread_priority.h"
#include "outpostd/test_util.h"

namespace outpost::testing {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

double MsSince(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

// Iris rows [row0, row0 + rows) of the golden input as a V2 request, flat or nested.
Json IrisRequest(const NpyFloat& in, int64_t row0, int64_t rows, bool nested = false) {
  Json data = Json::array();
  for (int64_t r = row0; r < row0 + rows; ++r) {
    Json row = Json::array();
    for (int c = 0; c < 4; ++c) {
      if (nested)
        row.push_back(in.data[r * 4 + c]);
      else
        data.push_back(in.data[r * 4 + c]);
    }
    if (nested) data.push_back(row);
  }
  return Json{
      {"inputs",
       Json::array(
           {{{"name", "input"}, {"datatype", "FP32"}, {"shape", {rows, 4}}, {"data", data}}})}};
}

// Checks a JSON infer response for iris rows [row0, row0+rows) against ONNX Runtime's outputs.
void ExpectIrisOutput(const Json& body, const NpyFloat& want, int64_t row0, int64_t rows) {
  ASSERT_TRUE(body.is_object()) << body;
  ASSERT_TRUE(body.contains("outputs")) << body;
  ASSERT_EQ(body["outputs"].size(), 1u) << body;
  const Json& o = body["outputs"][0];
  EXPECT_EQ(o["name"], "probabilities");
  EXPECT_EQ(o["datatype"], "FP32");
  EXPECT_EQ(o["shape"], Json({rows, 3}));
  std::vector<double> got;
  FlattenJson(o["data"], &got);
  ASSERT_EQ(got.size(), static_cast<size_t>(rows * 3));
  const int64_t bad = FirstMismatch(got, want.data, static_cast<size_t>(row0 * 3));
  EXPECT_EQ(bad, -1) << "element " << bad << ": got " << (bad >= 0 ? got[bad] : 0) << ", ORT "
                     << (bad >= 0 ? want.data[row0 * 3 + bad] : 0);
}

class OutpostdTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string err;
    auto g = LoadGolden("iris_mlp", &err);
    ASSERT_TRUE(g) << err;
    iris_ = std::move(*g);
  }
  void TearDown() override {
    // Show the daemons' logs when something failed.
    if (HasFailure() && daemon_ && daemon_->proc)
      std::fprintf(stderr, "---- outpostd stderr ----\n%s\n", daemon_->proc->Stderr().c_str());
  }

  // Starts outpostd on this test's sandbox; fails the test when it does not come up.
  void StartDaemon(StartOptions o = {}, const std::string& models_dir = kModelsDir) {
    std::string err;
    daemon_ = box_.Start(o, &err, models_dir);
    ASSERT_TRUE(daemon_) << err;
  }
  // Start options with --config <sandbox>/device.yaml.
  StartOptions WithConfig() {
    StartOptions o;
    o.args = {"--config", box_.path("device.yaml")};
    return o;
  }
  void AddIris(const std::map<std::string, std::string>& ann = {{"threads", "1"}},
               const std::string& name = "iris", const std::string& uri = "iris_mlp.onnx") {
    box_.AddManifest(name + ".yaml", Manifest(name, uri, ann));
  }

  std::vector<Sample> Metrics() {
    V2Client c(daemon_->port);
    auto r = c.Get("/metrics");
    EXPECT_TRUE(r && r->status == 200);
    return r ? ParsePrometheus(r->body) : std::vector<Sample>{};
  }

  Sandbox box_;
  std::unique_ptr<Daemon> daemon_;
  Golden iris_;
};

// ---- health, metadata, routing ----------------------------------------------------------

TEST_F(OutpostdTest, HealthAndServerMetadata) {
  AddIris();
  ASSERT_NO_FATAL_FAILURE(StartDaemon());
  V2Client c(daemon_->port);

  auto live = c.Get("/v2/health/live");
  ASSERT_TRUE(live) << c.http().last_error();
  EXPECT_EQ(live->status, 200);
  EXPECT_EQ(live->JsonBody(), Json({{"live", true}}));
  auto ready = c.Get("/v2/health/ready");
  ASSERT_TRUE(ready);
  EXPECT_EQ(ready->status, 200);
  EXPECT_EQ(ready->JsonBody(), Json({{"ready", true}}));

  // $metadata_server_response: name, version, extensions.
  auto meta = c.Get("/v2");
  ASSERT_TRUE(meta);
  EXPECT_EQ(meta->status, 200);
  Json m = meta->JsonBody();
  EXPECT_EQ(m["name"], "outpost");
  ASSERT_TRUE(m["version"].is_string());
  EXPECT_FALSE(m["version"].get<std::string>().empty());
  std::set<std::string> ext(m["extensions"].begin(), m["extensions"].end());
  EXPECT_TRUE(ext.count("binary_tensor_data")) << m;
  EXPECT_TRUE(ext.count("model_repository")) << m;
  EXPECT_EQ(meta->Header("Content-Type").value_or(""), "application/json");
  // All of that on one keep-alive connection.
  EXPECT_GE(c.http().reused(), 2);
}

TEST_F(OutpostdTest, ModelMetadataReadyAndErrors) {
  AddIris();
  ASSERT_NO_FATAL_FAILURE(StartDaemon());
  V2Client c(daemon_->port);

  // $metadata_model_response for iris_mlp.onnx: input float32[N,4], output float32[N,3].
  auto md = c.Get("/v2/models/iris");
  ASSERT_TRUE(md);
  ASSERT_EQ(md->status, 200) << md->body;
  Json m = md->JsonBody();
  EXPECT_EQ(m["name"], "iris");
  EXPECT_EQ(m["versions"], Json::array({"1"}));
  EXPECT_EQ(m["platform"], "onnx_onnxv1");
  ASSERT_EQ(m["inputs"].size(), 1u) << m;
  EXPECT_EQ(m["inputs"][0]["name"], "input");
  EXPECT_EQ(m["inputs"][0]["datatype"], "FP32");
  EXPECT_EQ(m["inputs"][0]["shape"], Json({-1, 4}));
  ASSERT_EQ(m["outputs"].size(), 1u) << m;
  EXPECT_EQ(m["outputs"][0]["name"], "probabilities");
  EXPECT_EQ(m["outputs"][0]["datatype"], "FP32");
  EXPECT_EQ(m["outputs"][0]["shape"], Json({-1, 3}));

  auto v1 = c.Get("/v2/models/iris/versions/1");
  ASSERT_TRUE(v1);
  EXPECT_EQ(v1->status, 200);
  EXPECT_EQ(v1->JsonBody()["name"], "iris");

  auto rd = c.Get("/v2/models/iris/ready");
  ASSERT_TRUE(rd);
  EXPECT_EQ(rd->status, 200);
  EXPECT_EQ(rd->JsonBody()["ready"], true);
  auto rdv = c.Get("/v2/models/iris/versions/1/ready");
  ASSERT_TRUE(rdv);
  EXPECT_EQ(rdv->status, 200);

  // Unknown model, unknown version, unknown path: 404 with {"error": "..."}.
  for (const std::string p :
       {"/v2/models/nope", "/v2/models/nope/ready", "/v2/models/iris/versions/7",
        "/v2/models/iris/versions/7/ready", "/v2/nothing-here"}) {
    auto r = c.Get(p);
    ASSERT_TRUE(r) << p;
    EXPECT_EQ(r->status, 404) << p;
    EXPECT_FALSE(r->Error().empty()) << p << ": " << r->body;
  }
  auto r = c.Infer("nope", IrisRequest(iris_.input, 0, 1));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 404);
  EXPECT_NE(r->Error().find("nope"), std::string::npos) << r->body;

  // Wrong methods: 405 with a JSON error.
  const std::vector<std::pair<std::string, std::string>> wrong = {{"POST", "/v2/health/live"},
                                                                  {"POST", "/v2/health/ready"},
                                                                  {"DELETE", "/v2"},
                                                                  {"PUT", "/v2/models/iris"},
                                                                  {"POST", "/v2/models/iris/ready"},
                                                                  {"GET", "/v2/models/iris/infer"},
                                                                  {"GET", "/v2/repository/index"},
                                                                  {"POST", "/metrics"}};
  for (const auto& [method, path] : wrong) {
    auto w = c.http().Request(method, path, method == "GET" ? "" : "{}");
    ASSERT_TRUE(w) << method << " " << path;
    EXPECT_EQ(w->status, 405) << method << " " << path << ": " << w->body;
    EXPECT_FALSE(w->Error().empty()) << method << " " << path << ": " << w->body;
  }
}

// Readiness follows the models: ready is never answered before they are loaded, and it is 503
// while a declared model has no serving version.
TEST_F(OutpostdTest, ReadyOnlyWithLoadedModels) {
  AddIris();
  // A second model whose file is not an ONNX model: it never loads.
  fs::copy_file(kModelsDir + "/bad/truncated.onnx", box_.models() + "/broken.onnx");
  box_.CopyModel("iris_mlp.onnx", "iris_mlp.onnx");
  AddIris({{"threads", "1"}}, "broken", "broken.onnx");
  // Poll from the moment the process starts, on a port chosen beforehand: the first answer
  // outpostd gives to /v2/health/ready must already reflect the loaded models.
  const uint16_t port = FreePort();
  ASSERT_NE(port, 0);
  StartOptions o;
  o.listen = "127.0.0.1:" + std::to_string(port);
  o.wait_listening = false;
  ASSERT_NO_FATAL_FAILURE(StartDaemon(o, box_.models()));
  std::optional<HttpResponse> first;
  const auto t0 = Clock::now();
  while (!first && MsSince(t0) < 20000) {
    HttpClient h(port);
    first = h.Request("GET", "/v2/health/ready");
    if (!first) std::this_thread::sleep_for(milliseconds(2));
    ASSERT_TRUE(daemon_->proc->running() || first) << daemon_->proc->Stderr();
  }
  ASSERT_TRUE(first) << "outpostd never answered";
  // iris loaded, broken did not: not ready, but alive and serving iris.
  EXPECT_EQ(first->status, 503) << first->body;
  EXPECT_EQ(first->JsonBody(), Json({{"ready", false}}));
  V2Client c(port);
  auto live = c.Get("/v2/health/live");
  ASSERT_TRUE(live);
  EXPECT_EQ(live->status, 200);
  auto iris = c.Get("/v2/models/iris/ready");
  ASSERT_TRUE(iris);
  EXPECT_EQ(iris->status, 200);
  auto broken = c.Get("/v2/models/broken/ready");
  ASSERT_TRUE(broken);
  EXPECT_NE(broken->status, 200);

  // Remove the broken manifest and reload: now every declared model serves, ready is 200.
  fs::remove(box_.manifests() + "/broken.yaml");
  ASSERT_TRUE(daemon_->proc->Signal(SIGHUP));
  std::optional<HttpResponse> r;
  for (int i = 0; i < 200; ++i) {
    r = c.Get("/v2/health/ready");
    if (r && r->status == 200) break;
    std::this_thread::sleep_for(milliseconds(25));
  }
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200) << r->body;
}

// ---- inference ----------------------------------------------------------------------------

TEST_F(OutpostdTest, InferIrisGoldenFlatAndNested) {
  AddIris();
  ASSERT_NO_FATAL_FAILURE(StartDaemon());
  V2Client c(daemon_->port);
  const int64_t n = iris_.input.rows();
  ASSERT_EQ(n, 45);
  ASSERT_EQ(iris_.output.shape, (std::vector<int64_t>{45, 3}));

  for (bool nested : {false, true}) {
    SCOPED_TRACE(nested ? "nested" : "flat");
    auto r = c.Infer("iris", IrisRequest(iris_.input, 0, n, nested));
    ASSERT_TRUE(r) << c.http().last_error();
    ASSERT_EQ(r->status, 200) << r->body;
    Json b = r->JsonBody();
    EXPECT_EQ(b["model_name"], "iris");
    EXPECT_EQ(b["model_version"], "1");
    EXPECT_FALSE(b.contains("id")) << "no id was sent";
    ExpectIrisOutput(b, iris_.output, 0, n);
  }
  // Row by row, also through the versioned URL.
  for (int64_t row = 0; row < n; row += 11) {
    auto r = c.Infer("iris", IrisRequest(iris_.input, row, 1), "1");
    ASSERT_TRUE(r);
    ASSERT_EQ(r->status, 200) << r->body;
    ExpectIrisOutput(r->JsonBody(), iris_.output, row, 1);
  }
  // Softmax: every row sums to 1.
  auto r = c.Infer("iris", IrisRequest(iris_.input, 0, n));
  ASSERT_TRUE(r);
  std::vector<double> p;
  FlattenJson(r->JsonBody()["outputs"][0]["data"], &p);
  ASSERT_EQ(p.size(), 135u);
  for (int64_t row = 0; row < n; ++row)
    EXPECT_NEAR(p[row * 3] + p[row * 3 + 1] + p[row * 3 + 2], 1.0, 1e-5);
}

TEST_F(OutpostdTest, InferIdParametersAndOutputSelection) {
  AddIris();
  ASSERT_NO_FATAL_FAILURE(StartDaemon());
  V2Client c(daemon_->port);

  Json req = IrisRequest(iris_.input, 3, 2);
  req["id"] = "request-42";
  req["parameters"] = {{"trace", "abc"}, {"priority", 3}, {"debug", true}};
  req["outputs"] = Json::array({{{"name", "probabilities"}}});
  auto r = c.Infer("iris", req);
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  Json b = r->JsonBody();
  EXPECT_EQ(b["id"], "request-42");
  // The request's parameters come back (the pass-through rule of runtime/serve/v2/README.md).
  EXPECT_EQ(b["parameters"], Json({{"trace", "abc"}, {"priority", 3}, {"debug", true}})) << b;
  ExpectIrisOutput(b, iris_.output, 3, 2);

  // An output the model does not have: 400 naming it.
  req["outputs"] = Json::array({{{"name", "logits"}}});
  r = c.Infer("iris", req);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
  EXPECT_NE(r->Error().find("logits"), std::string::npos) << r->body;
}

TEST_F(OutpostdTest, InferBinaryTensorData) {
  AddIris();
  ASSERT_NO_FATAL_FAILURE(StartDaemon());
  V2Client c(daemon_->port);
  const int64_t n = iris_.input.rows();
  const std::string in_bytes = Fp32Bytes(iris_.input.data);
  ASSERT_EQ(in_bytes.size(), static_cast<size_t>(n * 4 * 4));

  // Binary input, binary output for the whole request (binary_data_output).
  Json h = {{"id", "bin-1"},
            {"parameters", {{"binary_data_output", true}}},
            {"inputs", Json::array({{{"name", "input"},
                                     {"datatype", "FP32"},
                                     {"shape", {n, 4}},
                                     {"parameters", {{"binary_data_size", in_bytes.size()}}}}})}};
  auto r = c.InferBinary("iris", h, in_bytes);
  ASSERT_TRUE(r) << c.http().last_error();
  ASSERT_EQ(r->status, 200) << r->body;
  ASSERT_TRUE(r->Header("Inference-Header-Content-Length")) << "binary output without the header";
  Json b = r->JsonBody();
  ASSERT_TRUE(b.is_object()) << r->body.substr(0, 200);
  EXPECT_EQ(b["id"], "bin-1");
  ASSERT_EQ(b["outputs"].size(), 1u);
  const Json& o = b["outputs"][0];
  EXPECT_EQ(o["name"], "probabilities");
  EXPECT_EQ(o["shape"], Json({n, 3}));
  EXPECT_FALSE(o.contains("data")) << "a binary output carries no JSON data";
  EXPECT_EQ(o["parameters"]["binary_data_size"], n * 3 * 4);
  const std::string bin = r->BinaryPart();
  ASSERT_EQ(bin.size(), static_cast<size_t>(n * 3 * 4));
  std::vector<float> got = Fp32FromBytes(bin);
  std::vector<double> gotd(got.begin(), got.end());
  EXPECT_EQ(FirstMismatch(gotd, iris_.output.data), -1);

  // Binary input, JSON output (no binary_data_output): a plain JSON response.
  h.erase("parameters");
  r = c.InferBinary("iris", h, in_bytes);
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_FALSE(r->Header("Inference-Header-Content-Length"));
  ExpectIrisOutput(r->JsonBody(), iris_.output, 0, n);

  // JSON input, binary output chosen per output ("binary_data": true).
  Json j = IrisRequest(iris_.input, 0, n);
  j["outputs"] =
      Json::array({{{"name", "probabilities"}, {"parameters", {{"binary_data", true}}}}});
  r = c.Infer("iris", j);
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  ASSERT_TRUE(r->Header("Inference-Header-Content-Length"));
  EXPECT_EQ(r->JsonBody()["outputs"][0]["parameters"]["binary_data_size"], n * 3 * 4);
  got = Fp32FromBytes(r->BinaryPart());
  gotd.assign(got.begin(), got.end());
  ASSERT_EQ(gotd.size(), static_cast<size_t>(n * 3));
  EXPECT_EQ(FirstMismatch(gotd, iris_.output.data), -1);

  // A binary_data_size that does not match the bytes sent: 400 naming the problem.
  Json bad = h;
  bad["inputs"][0]["parameters"]["binary_data_size"] = in_bytes.size() - 4;
  r = c.InferBinary("iris", bad, in_bytes);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
  EXPECT_FALSE(r->Error().empty()) << r->body;
}

// The raw binary request: Inference-Header-Content-Length: 0 and the single input's bytes.
TEST_F(OutpostdTest, InferRawBinaryRequest) {
  AddIris();
  ASSERT_NO_FATAL_FAILURE(StartDaemon());
  V2Client c(daemon_->port);
  const int64_t n = iris_.input.rows();
  auto r = c.Post(
      "/v2/models/iris/infer", Fp32Bytes(iris_.input.data),
      {{"Content-Type", "application/octet-stream"}, {"Inference-Header-Content-Length", "0"}});
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  ASSERT_TRUE(r->Header("Inference-Header-Content-Length"));
  Json b = r->JsonBody();
  ASSERT_EQ(b["outputs"].size(), 1u) << b;
  EXPECT_EQ(b["outputs"][0]["shape"], Json({n, 3}));
  std::vector<float> got = Fp32FromBytes(r->BinaryPart());
  std::vector<double> gotd(got.begin(), got.end());
  ASSERT_EQ(gotd.size(), static_cast<size_t>(n * 3));
  EXPECT_EQ(FirstMismatch(gotd, iris_.output.data), -1);
  // Bytes that are not whole rows of 4 floats: 400.
  r = c.Post("/v2/models/iris/infer", std::string(20, '\0'),
             {{"Inference-Header-Content-Length", "0"}});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400) << r->body;
}

// The same infer request through the curl CLI (an independent HTTP client), on one connection.
TEST_F(OutpostdTest, CurlClient) {
  if (FindExecutable("curl").empty()) GTEST_FAIL() << "curl is not installed";
  AddIris();
  ASSERT_NO_FATAL_FAILURE(StartDaemon());
  const std::string body = IrisRequest(iris_.input, 0, 2).dump();
  const std::string body_file = box_.path("req.json");
  WriteFile(body_file, body);
  CommandResult r = RunCommand(
      "curl -sS --max-time 10 -H 'Content-Type: application/json' "
      "--data-binary @" +
      ShellQuote(body_file) + " " + ShellQuote(daemon_->Url("/v2/models/iris/infer")));
  ASSERT_EQ(r.status, 0) << r.output;
  ExpectIrisOutput(Json::parse(r.output, nullptr, false), iris_.output, 0, 2);

  // Status codes as curl sees them; two URLs in one run reuse the keep-alive connection.
  r = RunCommand("curl -sS -v --max-time 10 -o /dev/null -o /dev/null -w '%{http_code}\\n' " +
                 ShellQuote(daemon_->Url("/v2/health/ready")) + " " +
                 ShellQuote(daemon_->Url("/v2/models/missing")) + " 2>&1");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("200\n"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("404\n"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("Re-using existing connection"), std::string::npos) << r.output;
  r = RunCommand("curl -sS --max-time 10 -X DELETE -w '\\n%{http_code}' " +
                 ShellQuote(daemon_->Url("/v2/models/iris")));
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(r.output.substr(r.output.rfind('\n') + 1), "405") << r.output;
}

// Overload shedding wired from the config to the V2 service: with a target no read delay can
// meet (1 µs), the I/O thread finds a standing queue within an interval and refuses inference
// requests with 429, Retry-After and a reason, before decoding them; health probes still pass.
// compute.nice_offset: the model's worker and its engine pool run that many nice steps below
// the HTTP event loop, read back from /proc (field 19 of each thread's stat is its nice value).
// server.io_slice_us: the HTTP threads run with that scheduler slice, the compute threads with
// the kernel's default (on kernels that have per-thread slices: Linux 6.12 and later).
TEST_F(OutpostdTest, ComputeThreadsRunBelowTheHttpThreads) {
  AddIris({{"threads", "2"}});  // two engine threads: the worker thread and one pool worker
  // On OpenCL (PoCL here) the driver's own worker threads, which it starts on the first device
  // query and names after the process, run lower too.
  AddIris({{"threads", "1"}, {"backend", "opencl"}}, "iris-cl");
  box_.AddConfig(
      "server:\n  io_slice_us: 200\ncompute:\n  nice_offset: 7\n"
      "models:\n  watch: false\n");
  ASSERT_NO_FATAL_FAILURE(StartDaemon(WithConfig()));
  std::map<std::string, std::vector<int>> nice;    // thread name -> nice values
  std::map<std::string, std::vector<int>> slices;  // thread name -> time slices, µs
  const std::string task = "/proc/" + std::to_string(daemon_->proc->pid()) + "/task";
  // A thread names itself once it runs, and the HTTP loop then sets its slice: it may not have
  // yet when the port is open.
  const bool kernel_has_slices = ThreadSliceUs() > 0;
  auto all_named = [&] {
    for (const char* n : {"op-http", "op-run-iris", "op-run-iris-cl", "op-pool"})
      if (!nice.count(n)) return false;
    return !kernel_has_slices || slices["op-http"] == std::vector<int>{200};
  };
  for (int attempt = 0; attempt < 200 && !all_named(); ++attempt) {
    if (attempt > 0) std::this_thread::sleep_for(milliseconds(10));
    nice.clear();
    slices.clear();
    for (const auto& e : std::filesystem::directory_iterator(task)) {
      std::ifstream f(e.path() / "stat");
      std::string stat((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
      const size_t open = stat.find('('), close = stat.rfind(')');
      if (open == std::string::npos || close == std::string::npos) continue;  // thread gone
      std::istringstream rest(stat.substr(close + 2));  // from field 3 (state) on
      std::string field;
      for (int i = 3; i <= 19 && rest >> field; ++i) {
      }
      const std::string name = stat.substr(open + 1, close - open - 1);
      nice[name].push_back(std::stoi(field));
      slices[name].push_back(ThreadSliceUs(std::stoi(e.path().filename())));
    }
  }
  ASSERT_EQ(nice.count("op-http"), 1u) << "threads: " << ::testing::PrintToString(nice);
  ASSERT_EQ(nice.count("op-run-iris"), 1u) << ::testing::PrintToString(nice);
  ASSERT_EQ(nice.count("op-pool"), 1u) << ::testing::PrintToString(nice);
  const int http = nice["op-http"][0];
  for (int n : nice["op-http"]) EXPECT_EQ(n, http);
  for (int n : nice["op-run-iris"]) EXPECT_EQ(n, std::min(19, http + 7));
  for (int n : nice["op-pool"]) EXPECT_EQ(n, std::min(19, http + 7));
  for (int n : nice["op-run-iris-cl"]) EXPECT_EQ(n, std::min(19, http + 7));
  // Unnamed threads are the main thread and the driver's; the driver's are the lowered ones.
  ASSERT_EQ(nice.count("outpostd"), 1u) << ::testing::PrintToString(nice);
  EXPECT_GE(std::count(nice["outpostd"].begin(), nice["outpostd"].end(), std::min(19, http + 7)), 1)
      << "no PoCL worker thread below the HTTP threads: " << ::testing::PrintToString(nice);
  if (kernel_has_slices) {
    EXPECT_EQ(slices["op-http"], std::vector<int>{200});
    for (int s : slices["op-run-iris"]) EXPECT_EQ(s, ThreadSliceUs());
    for (int s : slices["op-pool"]) EXPECT_EQ(s, ThreadSliceUs());
  }
  // And it serves.
  V2Client c(daemon_->port);
  auto r = c.Post("/v2/models/iris/infer", R"({"inputs":[{"name":"input","shape":[1,4],)"
                                           R"("datatype":"FP32","data":[5.1,3.5,1.4,0.2]}]})");
  ASSERT_TRUE(r) << c.http().last_error();
  EXPECT_EQ(r->status, 200) << r->body;
}

TEST_F(OutpostdTest, ShedTargetFromConfigRefusesInferenceWith429) {
  AddIris();
  box_.AddConfig("server:\n  shed_target_us: 1\n  shed_interval_ms: 1\n");
  ASSERT_NO_FATAL_FAILURE(StartDaemon(WithConfig()));
  const std::string body = R"({"inputs":[{"name":"input","shape":[1,4],"datatype":"FP32",)"
                           R"("data":[5.1,3.5,1.4,0.2]}]})";
  // Eight clients at once, so that requests wait behind each other in the loop (a lone client
  // is never refused: nothing else is waiting).
  std::atomic<int> ok{0}, shed{0};
  std::mutex mu;
  std::vector<std::string> problems;
  std::vector<std::thread> clients;
  for (int t = 0; t < 8; ++t)
    clients.emplace_back([&] {
      V2Client c(daemon_->port);
      for (int i = 0; i < 150; ++i) {
        auto r = c.Post("/v2/models/iris/infer", body);
        std::lock_guard<std::mutex> l(mu);
        if (!r) {
          problems.push_back("transport: " + c.http().last_error());
        } else if (r->status == 200) {
          ++ok;
        } else if (r->status != 429) {
          problems.push_back("status " + std::to_string(r->status) + " " + r->body);
        } else if (r->Error().find("server overloaded") == std::string::npos) {
          problems.push_back("429 without the reason: " + r->body);
        } else if (std::atoi(r->Header("Retry-After").value_or("0").c_str()) < 1) {
          problems.push_back("429 without a Retry-After of >= 1 s");
        } else {
          ++shed;
        }
      }
    });
  for (auto& t : clients) t.join();
  EXPECT_TRUE(problems.empty()) << Join(problems);
  EXPECT_GT(shed.load(), 0);
  V2Client c(daemon_->port);
  auto ready = c.Get("/v2/health/ready");
  ASSERT_TRUE(ready);
  EXPECT_EQ(ready->status, 200);
  auto m = Metrics();
  EXPECT_GE(Value(m, "outpost_http_shed_advised_total"), shed.load());
  EXPECT_GE(Value(m, "outpost_http_overload_episodes_total"), 1);
  std::printf("(%d answered, %d shed)\n", ok.load(), shed.load());
}

// ---- request errors -----------------------------------------------------------------------

TEST_F(OutpostdTest, BadRequestsAnswer400AndServingContinues) {
  AddIris();
  box_.AddConfig("server:\n  max_body_bytes: 2Ki\n");
  ASSERT_NO_FATAL_FAILURE(StartDaemon(WithConfig()));
  V2Client c(daemon_->port);
  auto input = [](Json shape, Json data, std::string dtype = "FP32", std::string name = "input") {
    return Json{
        {"inputs",
         Json::array({{{"name", name}, {"datatype", dtype}, {"shape", shape}, {"data", data}}})}};
  };
  struct Case {
    std::string what;
    std::string body;
    std::vector<std::string> mentions;  // the error names these
  };
  const std::vector<Case> cases = {
      {"wrong shape", input({1, 5}, {1, 2, 3, 4, 5}).dump(), {"input", "[1,5]", "4"}},
      {"wrong rank", input({4}, {1, 2, 3, 4}).dump(), {"input", "[4]"}},
      {"wrong datatype", input({1, 4}, {1, 2, 3, 4}, "INT32").dump(), {"input", "FP32", "INT32"}},
      {"unknown input", input({1, 4}, {1, 2, 3, 4}, "FP32", "features").dump(), {"features"}},
      {"missing input", R"({"inputs":[]})", {"input"}},
      {"count mismatch", input({2, 4}, {1, 2, 3, 4}).dump(), {"input"}},
      {"malformed JSON", R"({"inputs":[{"name":"input",)", {}},
      {"not an object", R"([1,2,3])", {}},
      {"string data", input({1, 4}, {"a", "b", "c", "d"}).dump(), {"input"}},
      {"bad timeout",
       [&] {
         Json j = input({1, 4}, {1, 2, 3, 4});
         j["parameters"] = {{"timeout", "soon"}};
         return j.dump();
       }(),
       {"timeout"}},
  };
  for (const auto& k : cases) {
    auto r = c.Post("/v2/models/iris/infer", k.body);
    ASSERT_TRUE(r) << k.what << ": " << c.http().last_error();
    EXPECT_EQ(r->status, 400) << k.what << ": " << r->body;
    const std::string e = r->Error();
    EXPECT_FALSE(e.empty()) << k.what << ": no JSON error in " << r->body;
    for (const auto& word : k.mentions)
      EXPECT_NE(e.find(word), std::string::npos) << k.what << ": '" << word << "' not in: " << e;
  }
  // A body over server.max_body_bytes (2 KiB here): 413 with a JSON error.
  {
    Json big = IrisRequest(iris_.input, 0, 45);
    big["id"] = std::string(3000, 'x');
    auto r = c.Post("/v2/models/iris/infer", big.dump());
    ASSERT_TRUE(r) << c.http().last_error();
    EXPECT_EQ(r->status, 413) << r->body;
    EXPECT_FALSE(r->Error().empty()) << r->body;
  }
  // Still serving, on a new connection as well as on the old client.
  V2Client fresh(daemon_->port);
  auto ok = fresh.Infer("iris", IrisRequest(iris_.input, 5, 1));
  ASSERT_TRUE(ok);
  ASSERT_EQ(ok->status, 200) << ok->body;
  ExpectIrisOutput(ok->JsonBody(), iris_.output, 5, 1);
  ok = c.Infer("iris", IrisRequest(iris_.input, 6, 1));
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 200);
  // The refusals were counted as bad requests of iris@1.
  auto m = Metrics();
  EXPECT_EQ(Value(m, "outpost_requests_total",
                  {{"model", "iris"}, {"version", "1"}, {"outcome", "bad_request"}}),
            static_cast<double>(cases.size()));
  EXPECT_EQ(Value(m, "outpost_requests_total",
                  {{"model", "iris"}, {"version", "1"}, {"outcome", "success"}}),
            2.0);
}

// ---- overload and deadlines ---------------------------------------------------------------

// The golden digits input (32 images) repeated to `rows` rows, as binary FP32 bytes.
struct DigitsLoad {
  NpyFloat input, output;
  std::string Bytes(int64_t rows) const {
    std::vector<float> v;
    v.reserve(rows * 64);
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t src = r % input.rows();
      v.insert(v.end(), input.data.begin() + src * 64, input.data.begin() + (src + 1) * 64);
    }
    return Fp32Bytes(v);
  }
  static Json Header(int64_t rows, size_t bytes, std::optional<int64_t> timeout_us = {}) {
    Json h = {{"parameters", {{"binary_data_output", true}}},
              {"inputs", Json::array({{{"name", "input"},
                                       {"datatype", "FP32"},
                                       {"shape", {rows, 1, 8, 8}},
                                       {"parameters", {{"binary_data_size", bytes}}}}})}};
    if (timeout_us) h["parameters"]["timeout"] = *timeout_us;
    return h;
  }
  // Checks a binary digits response for `rows` rows against ONNX Runtime's logits.
  ::testing::AssertionResult Check(const HttpResponse& r, int64_t rows) const {
    if (r.status != 200) return ::testing::AssertionFailure() << r.status << " " << r.body;
    std::vector<float> got = Fp32FromBytes(r.BinaryPart());
    if (got.size() != static_cast<size_t>(rows * 10))
      return ::testing::AssertionFailure() << got.size() << " logits for " << rows << " rows";
    for (int64_t row = 0; row < rows; ++row)
      for (int k = 0; k < 10; ++k) {
        const double want = output.data[(row % output.rows()) * 10 + k];
        if (!Close(got[row * 10 + k], want))
          return ::testing::AssertionFailure() << "row " << row << " logit " << k << ": "
                                               << got[row * 10 + k] << " vs ORT " << want;
      }
    return ::testing::AssertionSuccess();
  }
};

class OverloadTest : public OutpostdTest {
 protected:
  void SetUp() override {
    OutpostdTest::SetUp();
    std::string err;
    auto g = LoadGolden("digits_cnn", &err);
    ASSERT_TRUE(g) << err;
    digits_.input = std::move(g->input);
    digits_.output = std::move(g->output);
  }

  // Sends digits requests until one of `rows` takes about target_ms to answer; returns the row
  // count (digits on one thread is the "slow model").
  int64_t Calibrate(double target_ms) {
    V2Client c(daemon_->port);
    int64_t rows = 1024;
    for (int i = 0; i < 6; ++i) {
      const std::string bytes = digits_.Bytes(rows);
      const auto t0 = Clock::now();
      auto r = c.InferBinary("digits", DigitsLoad::Header(rows, bytes.size()), bytes, 30000);
      const double ms = MsSince(t0);
      EXPECT_TRUE(r) << c.http().last_error();
      if (r) {
        EXPECT_TRUE(digits_.Check(*r, rows));
      }
      if (ms >= 0.7 * target_ms) {
        std::printf("(digits: %lld rows take %.0f ms)\n", static_cast<long long>(rows), ms);
        return rows;
      }
      rows = std::min<int64_t>(
          200000, static_cast<int64_t>(rows * std::min(8.0, target_ms / std::max(ms, 1.0))) + 1);
    }
    return rows;
  }

  DigitsLoad digits_;
};

// queue-size 1: while one request runs and one waits, the others are refused at once with 429
// and Retry-After; the accepted ones are answered correctly.
TEST_F(OverloadTest, FullQueueRefusesQuicklyWith429) {
  box_.AddManifest("digits.yaml",
                   Manifest("digits", "digits_cnn.onnx",
                            {{"threads", "1"}, {"queue-size", "1"}, {"max-batch-size", "1"}}));
  ASSERT_NO_FATAL_FAILURE(StartDaemon());
  const int64_t rows = Calibrate(300);
  const std::string slow = digits_.Bytes(rows);
  const std::string slower = digits_.Bytes(3 * rows);  // A: about a second
  const std::string small = digits_.Bytes(1);

  // 1) Deterministic: A runs (its batch shows in outpost_serve_batch_size_count), B waits in the
  // queue (queue depth 1), then 1-row requests are hammered from 6 threads while A computes:
  // all refused, fast.
  std::optional<HttpResponse> ra, rb;
  std::atomic<bool> a_done{false};
  const auto start = Clock::now();
  std::vector<std::string> timeline;  // for the failure message
  std::mutex tl_mu;
  auto note = [&](const std::string& what) {
    std::lock_guard<std::mutex> l(tl_mu);
    timeline.push_back(std::to_string(static_cast<int>(MsSince(start))) + " ms " + what);
  };
  V2Client ca(daemon_->port), cb(daemon_->port);
  ASSERT_TRUE(ca.http().Connect() && cb.http().Connect());
  const double batches_before =
      Value(Metrics(), "outpost_serve_batch_size_count", {{"model", "digits"}});
  std::thread ta([&] {
    ra = ca.InferBinary("digits", DigitsLoad::Header(3 * rows, slower.size()), slower, 30000);
    a_done = true;
    note("A answered " + std::to_string(ra ? ra->status : 0));
  });
  // A is running once the worker observed its batch; then B is queued behind it.
  const std::map<std::string, std::string> dl = {{"model", "digits"}};
  bool a_running = false;
  for (int i = 0; i < 2500 && !a_running && !a_done; ++i) {
    a_running = Value(Metrics(), "outpost_serve_batch_size_count", dl) == batches_before + 1;
    if (!a_running) std::this_thread::sleep_for(milliseconds(2));
  }
  ASSERT_TRUE(a_running) << "A never started";
  note("A running");
  std::thread tb([&] {
    rb = cb.InferBinary("digits", DigitsLoad::Header(rows, slow.size()), slow, 30000);
    note("B answered " + std::to_string(rb ? rb->status : 0));
  });
  bool b_queued = false;
  for (int i = 0; i < 2500 && !b_queued && !a_done; ++i) {
    b_queued = Value(Metrics(), "outpost_serve_queue_depth", dl) == 1;
    if (!b_queued) std::this_thread::sleep_for(milliseconds(2));
  }
  note("queue depth 1 seen");
  std::mutex mu;
  std::vector<double> refusal_ms;
  std::vector<std::string> problems;
  std::vector<std::thread> hammer;
  for (int t = 0; t < 6 && b_queued; ++t)
    hammer.emplace_back([&] {
      V2Client c(daemon_->port);
      c.http().Connect();
      for (int i = 0; i < 3; ++i) {
        const auto t0 = Clock::now();
        auto r = c.InferBinary("digits", DigitsLoad::Header(1, small.size()), small);
        const double ms = MsSince(t0);
        note("hammer answered " + std::to_string(r ? r->status : 0));
        std::lock_guard<std::mutex> l(mu);
        if (!r)
          problems.push_back("transport: " + c.http().last_error());
        else if (r->status != 429)
          problems.push_back("status " + std::to_string(r->status) + " " + r->Error());
        else if (std::atoi(r->Header("Retry-After").value_or("0").c_str()) < 1)
          problems.push_back("429 without a Retry-After of >= 1 s");
        else if (r->Error().find("queue") == std::string::npos)
          problems.push_back("429 error does not say why: " + r->body);
        else
          refusal_ms.push_back(ms);
      }
    });
  for (auto& t : hammer) t.join();
  const bool a_done_while_hammering = a_done.load();
  ta.join();
  tb.join();
  ASSERT_TRUE(b_queued) << "B never showed in outpost_serve_queue_depth while A ran";
  ASSERT_FALSE(a_done_while_hammering)
      << "A (about 1 s of compute) finished before 18 refusals were answered: machine too slow; "
      << Join(timeline);
  EXPECT_TRUE(problems.empty()) << Join(problems) << "\ntimeline: " << Join(timeline);
  ASSERT_FALSE(refusal_ms.empty());
  std::sort(refusal_ms.begin(), refusal_ms.end());
  EXPECT_LT(refusal_ms.back(), 50.0) << "slowest 429 took " << refusal_ms.back() << " ms; median "
                                     << refusal_ms[refusal_ms.size() / 2] << " ms";
  ASSERT_TRUE(ra && rb);
  EXPECT_TRUE(digits_.Check(*ra, 3 * rows));
  EXPECT_TRUE(digits_.Check(*rb, rows));
  const double refused_first = static_cast<double>(refusal_ms.size());

  // 2) Eight slow requests at once: some accepted (and correct), the rest 429 + Retry-After.
  std::vector<std::optional<HttpResponse>> res(8);
  std::vector<double> ms(8);
  std::vector<std::unique_ptr<V2Client>> clients;
  for (int i = 0; i < 8; ++i) {
    clients.push_back(std::make_unique<V2Client>(daemon_->port));
    ASSERT_TRUE(clients.back()->http().Connect());
  }
  std::barrier go(8);
  std::vector<std::thread> ts;
  for (int i = 0; i < 8; ++i)
    ts.emplace_back([&, i] {
      go.arrive_and_wait();
      const auto t0 = Clock::now();
      res[i] =
          clients[i]->InferBinary("digits", DigitsLoad::Header(rows, slow.size()), slow, 30000);
      ms[i] = MsSince(t0);
    });
  for (auto& t : ts) t.join();
  int ok = 0, refused = 0, too_many = 0;
  for (int i = 0; i < 8; ++i) {
    ASSERT_TRUE(res[i]) << i;
    if (res[i]->status == 200) {
      ++ok;
      EXPECT_TRUE(digits_.Check(*res[i], rows)) << i;
    } else {
      ++refused;
      EXPECT_TRUE(res[i]->status == 429 || res[i]->status == 503) << res[i]->status;
      too_many += res[i]->status == 429;
      EXPECT_TRUE(res[i]->Header("Retry-After")) << res[i]->status;
      EXPECT_FALSE(res[i]->Error().empty());
    }
  }
  EXPECT_GE(ok, 1);
  EXPECT_GE(refused, 1);
  auto m = Metrics();
  EXPECT_EQ(
      Value(m, "outpost_serve_rejected_total", {{"model", "digits"}, {"reason", "queue_full"}}),
      refused_first + too_many);
  EXPECT_EQ(Value(m, "outpost_requests_total", {{"model", "digits"}, {"outcome", "rejected"}}),
            refused_first + refused);
}

// A `timeout` (microseconds) that the model cannot meet is answered 504 at once, not after the
// compute; one it can meet is served.
TEST_F(OverloadTest, UnmeetableDeadlineAnswered504AtOnce) {
  box_.AddManifest("digits.yaml", Manifest("digits", "digits_cnn.onnx",
                                           {{"threads", "1"}, {"max-batch-size", "1"}}));
  ASSERT_NO_FATAL_FAILURE(StartDaemon());
  const int64_t rows = Calibrate(200);
  const std::string slow = digits_.Bytes(rows);
  V2Client c(daemon_->port);
  // Measure the compute once more (this also settles outpostd's estimate).
  auto t0 = Clock::now();
  auto r = c.InferBinary("digits", DigitsLoad::Header(rows, slow.size()), slow, 30000);
  const double compute_ms = MsSince(t0);
  ASSERT_TRUE(r && digits_.Check(*r, rows));

  // "At once" is checked without a clock (this machine may be loaded): the model runs no batch
  // for any of them, so the 504 did not wait for a compute.
  const std::map<std::string, std::string> dl = {{"model", "digits"}};
  const double batches_before = Value(Metrics(), "outpost_serve_batch_size_count", dl);
  for (int64_t timeout_us :
       {int64_t{1}, int64_t{1000}, static_cast<int64_t>(compute_ms * 1000 / 10)}) {
    SCOPED_TRACE("timeout " + std::to_string(timeout_us) + " us, compute " +
                 std::to_string(compute_ms) + " ms");
    r = c.InferBinary("digits", DigitsLoad::Header(rows, slow.size(), timeout_us), slow, 30000);
    ASSERT_TRUE(r) << c.http().last_error();
    EXPECT_EQ(r->status, 504) << r->body;
    EXPECT_NE(r->Error().find("deadline"), std::string::npos) << r->body;
  }
  EXPECT_EQ(Value(Metrics(), "outpost_serve_batch_size_count", dl), batches_before)
      << "a request with an unmeetable deadline was run";
  // A generous deadline is met.
  r = c.InferBinary("digits", DigitsLoad::Header(rows, slow.size(), 30'000'000), slow, 30000);
  ASSERT_TRUE(r);
  EXPECT_TRUE(digits_.Check(*r, rows));
  auto m = Metrics();
  EXPECT_EQ(Value(m, "outpost_requests_total", {{"model", "digits"}, {"outcome", "deadline"}}),
            3.0);
  EXPECT_EQ(Value(m, "outpost_serve_rejected_total", {{"model", "digits"}, {"reason", "deadline"}}),
            3.0);
}

// ---- dynamic batching ---------------------------------------------------------------------

TEST_F(OutpostdTest, DynamicBatchingOfConcurrentRequests) {
  AddIris({{"threads", "1"}, {"max-batch-size", "8"}, {"max-queue-delay-us", "20000"}});
  ASSERT_NO_FATAL_FAILURE(StartDaemon());
  constexpr int kN = 8;
  std::vector<std::unique_ptr<V2Client>> clients;
  for (int i = 0; i < kN; ++i) {
    clients.push_back(std::make_unique<V2Client>(daemon_->port));
    ASSERT_TRUE(clients.back()->http().Connect());
  }
  std::vector<std::optional<HttpResponse>> res(kN);
  std::barrier go(kN);
  std::vector<std::thread> ts;
  for (int i = 0; i < kN; ++i)
    ts.emplace_back([&, i] {
      Json req = IrisRequest(iris_.input, i * 5, 1);
      req["id"] = "row-" + std::to_string(i * 5);
      go.arrive_and_wait();
      res[i] = clients[i]->Infer("iris", req);
    });
  for (auto& t : ts) t.join();
  for (int i = 0; i < kN; ++i) {
    SCOPED_TRACE(i);
    ASSERT_TRUE(res[i]);
    ASSERT_EQ(res[i]->status, 200) << res[i]->body;
    Json b = res[i]->JsonBody();
    EXPECT_EQ(b["id"], "row-" + std::to_string(i * 5));  // each answer went to its own request
    ExpectIrisOutput(b, iris_.output, i * 5, 1);
  }
  // outpost_serve_batch_size: 8 requests in fewer than 8 batches (at least one batch > 1).
  auto m = Metrics();
  const std::map<std::string, std::string> l = {{"model", "iris"}, {"version", "1"}};
  const double count = Value(m, "outpost_serve_batch_size_count", l);
  const double sum = Value(m, "outpost_serve_batch_size_sum", l);
  EXPECT_EQ(sum, kN);
  EXPECT_GE(count, 1);
  EXPECT_LT(count, kN) << "no batch held more than one request";
  auto le1 = l;
  le1["le"] = "1";
  EXPECT_LT(Value(m, "outpost_serve_batch_size_bucket", le1), count);
}

// ---- hot reload ---------------------------------------------------------------------------

// A client loops on iris while the manifest changes version twice (SIGHUP): the metadata
// follows, and not a single request fails during the swaps.
TEST_F(OutpostdTest, HotReloadSwapsVersionWithoutFailedRequests) {
  box_.CopyModel("iris_mlp.onnx", "iris_mlp.onnx");
  AddIris({{"threads", "1"}, {"version", "1"}});
  // Reloads here come from SIGHUP only. Overload shedding is off: two closed-loop clients on one
  // I/O thread wait behind each other, and on a loaded machine (or under ASan) those waits pass
  // the 500 us target and draw 429s, which say nothing about reloads (shedding has its own tests).
  box_.AddConfig("models:\n  watch: false\nserver:\n  shed_target_us: 0\n");
  ASSERT_NO_FATAL_FAILURE(StartDaemon(WithConfig(), box_.models()));
  std::atomic<bool> stop{false};
  std::atomic<int> sent{0};
  std::mutex mu;
  std::vector<std::string> failures;
  std::set<std::string> versions_seen;
  std::vector<std::thread> loopers;
  for (int t = 0; t < 2; ++t)
    loopers.emplace_back([&, t] {
      V2Client c(daemon_->port);
      int64_t row = t;
      while (!stop.load()) {
        row = (row + 1) % 45;
        auto r = c.Infer("iris", IrisRequest(iris_.input, row, 1));
        ++sent;
        std::lock_guard<std::mutex> l(mu);
        if (!r) {
          failures.push_back("transport: " + c.http().last_error());
        } else if (r->status != 200) {
          failures.push_back(std::to_string(r->status) + " " + r->body);
        } else {
          Json b = r->JsonBody();
          versions_seen.insert(b.value("model_version", "?"));
          std::vector<double> got;
          FlattenJson(b["outputs"][0]["data"], &got);
          if (FirstMismatch(got, iris_.output.data, row * 3) != -1)
            failures.push_back("wrong output for row " + std::to_string(row));
        }
      }
    });
  V2Client c(daemon_->port);
  auto wait_version = [&](const std::string& v) {
    for (int i = 0; i < 400; ++i) {
      auto r = c.Get("/v2/models/iris");
      if (r && r->status == 200 && r->JsonBody()["versions"] == Json::array({v})) return true;
      std::this_thread::sleep_for(milliseconds(25));
    }
    return false;
  };
  std::this_thread::sleep_for(milliseconds(150));
  for (const std::string v : {"2", "3"}) {
    AddIris({{"threads", "1"}, {"version", v}});
    ASSERT_TRUE(daemon_->proc->Signal(SIGHUP));
    EXPECT_TRUE(wait_version(v)) << "metadata never showed version " << v;
    std::this_thread::sleep_for(milliseconds(150));
  }
  stop = true;
  for (auto& t : loopers) t.join();
  EXPECT_TRUE(failures.empty()) << failures.size() << " of " << sent.load()
                                << " requests failed: " << Join(failures);
  EXPECT_GT(sent.load(), 20);
  EXPECT_TRUE(versions_seen.count("1") && versions_seen.count("3"))
      << "versions answered: " << Join({versions_seen.begin(), versions_seen.end()});
  auto v3 = c.Get("/v2/models/iris/versions/3");
  ASSERT_TRUE(v3);
  EXPECT_EQ(v3->status, 200);
  auto v1 = c.Get("/v2/models/iris/versions/1");
  ASSERT_TRUE(v1);
  EXPECT_EQ(v1->status, 404);
  auto m = Metrics();
  EXPECT_EQ(Value(m, "outpost_model_loads_total", {{"model", "iris"}, {"outcome", "reloaded"}}),
            2.0);
}

// A manifest switched to a corrupt model file: the load fails, the previous version keeps
// serving, and the repository index tells why. Found by the manifest watcher (no SIGHUP).
TEST_F(OutpostdTest, CorruptModelKeepsPreviousVersionServing) {
  box_.CopyModel("iris_mlp.onnx", "iris_mlp.onnx");
  fs::copy_file(kModelsDir + "/bad/truncated.onnx", box_.models() + "/iris_v2.onnx");
  AddIris({{"threads", "1"}});
  box_.AddConfig("models:\n  watch: true\n  watch_interval_ms: 100\n");
  ASSERT_NO_FATAL_FAILURE(StartDaemon(WithConfig(), box_.models()));
  V2Client c(daemon_->port);
  AddIris({{"threads", "1"}, {"version", "2"}}, "iris", "iris_v2.onnx");

  Json entry;
  for (int i = 0; i < 400 && entry.is_null(); ++i) {
    auto r = c.Post("/v2/repository/index", "{}");
    ASSERT_TRUE(r);
    ASSERT_EQ(r->status, 200) << r->body;
    for (const auto& e : r->JsonBody())
      if (e.value("name", "") == "iris" && !e.value("reason", "").empty()) entry = e;
    if (entry.is_null()) std::this_thread::sleep_for(milliseconds(25));
  }
  ASSERT_FALSE(entry.is_null()) << "the index never showed the failed load";
  EXPECT_EQ(entry["version"], "1") << entry;
  EXPECT_EQ(entry["state"], "READY") << entry;
  EXPECT_NE(entry["reason"].get<std::string>().find("iris_v2.onnx"), std::string::npos) << entry;

  auto r = c.Infer("iris", IrisRequest(iris_.input, 7, 1));
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(r->JsonBody()["model_version"], "1");
  ExpectIrisOutput(r->JsonBody(), iris_.output, 7, 1);
  auto ready = c.Get("/v2/health/ready");
  ASSERT_TRUE(ready);
  EXPECT_EQ(ready->status, 200);
  // The watcher does not retry the same broken file on every scan.
  std::this_thread::sleep_for(milliseconds(350));
  auto m = Metrics();
  EXPECT_EQ(Value(m, "outpost_model_loads_total", {{"model", "iris"}, {"outcome", "failed"}}), 1.0);

  // Fixing the manifest brings version 2 (now a good file).
  box_.CopyModel("iris_mlp.onnx", "iris_v2.onnx");
  AddIris({{"threads", "1"}, {"version", "2"}}, "iris", "iris_v2.onnx");
  bool switched = false;
  for (int i = 0; i < 400 && !switched; ++i) {
    auto md = c.Get("/v2/models/iris");
    switched = md && md->status == 200 && md->JsonBody()["versions"] == Json::array({"2"});
    if (!switched) std::this_thread::sleep_for(milliseconds(25));
  }
  EXPECT_TRUE(switched);
}

// The model repository extension: index, unload, load by name.
TEST_F(OutpostdTest, RepositoryUnloadThenLoad) {
  AddIris();
  box_.AddConfig("models:\n  watch: false\n");
  ASSERT_NO_FATAL_FAILURE(StartDaemon(WithConfig()));
  V2Client c(daemon_->port);
  auto index = [&](bool ready_only = false) {
    auto r = c.Post("/v2/repository/index", ready_only ? R"({"ready":true})" : "{}");
    EXPECT_TRUE(r && r->status == 200);
    return r ? r->JsonBody() : Json();
  };
  Json idx = index();
  ASSERT_TRUE(idx.is_array()) << idx;
  ASSERT_EQ(idx.size(), 1u) << idx;
  EXPECT_EQ(idx[0]["name"], "iris");
  EXPECT_EQ(idx[0]["version"], "1");
  EXPECT_EQ(idx[0]["state"], "READY");

  auto r = c.Post("/v2/repository/models/iris/unload", "");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200) << r->body;
  r = c.Get("/v2/models/iris");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 404);
  r = c.Infer("iris", IrisRequest(iris_.input, 0, 1));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 404);
  EXPECT_EQ(index(true).size(), 0u);
  r = c.Post("/v2/repository/models/iris/unload", "{}");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 404) << "unloading what is not loaded: " << r->body;

  r = c.Post("/v2/repository/models/iris/load", "{}");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200) << r->body;
  r = c.Infer("iris", IrisRequest(iris_.input, 9, 1));
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  ExpectIrisOutput(r->JsonBody(), iris_.output, 9, 1);
  idx = index(true);
  ASSERT_EQ(idx.size(), 1u);
  EXPECT_EQ(idx[0]["state"], "READY");

  // A name no manifest declares: an error naming it.
  r = c.Post("/v2/repository/models/ghost/load", "{}");
  ASSERT_TRUE(r);
  EXPECT_TRUE(r->status == 404 || r->status == 400) << r->status;
  EXPECT_NE(r->Error().find("ghost"), std::string::npos) << r->body;
}

// The repository extension's index lists "every model available in a model repository, even
// if it is not currently loaded" (Open Inference Protocol, model repository extension): an
// unloaded model whose manifest is still there shows as not ready.
// compute.opencl_platform_name / opencl_device_name pick the OpenCL device by (case-insensitive)
// name; a name no device has leaves the model unloaded with an error that lists the devices.
TEST_F(OutpostdTest, OpenClDeviceChosenByNameInConfig) {
  AddIris({{"threads", "1"}, {"backend", "opencl"}});
  box_.AddConfig("compute:\n  opencl_platform_name: PORTABLE COMPUTING\nmodels:\n  watch: false\n");
  ASSERT_NO_FATAL_FAILURE(StartDaemon(WithConfig()));
  V2Client c(daemon_->port);
  auto r = c.Post("/v2/models/iris/infer", IrisRequest(iris_.input, 0, 2).dump());
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  ExpectIrisOutput(r->JsonBody(), iris_.output, 0, 2);
  double on_opencl = -1;
  for (const auto& s : Metrics())
    if (s.name == "outpost_model_nodes" && s.labels.count("model") &&
        s.labels.at("model") == "iris" && s.labels.count("backend") &&
        s.labels.at("backend") == "opencl")
      on_opencl = s.value;
  EXPECT_GT(on_opencl, 0) << "no iris node placed on OpenCL";
}

TEST_F(OutpostdTest, OpenClDeviceNameThatMatchesNothingIsReported) {
  AddIris({{"threads", "1"}, {"backend", "opencl"}});
  box_.AddConfig("compute:\n  opencl_device_name: no-such-accelerator\nmodels:\n  watch: false\n");
  ASSERT_NO_FATAL_FAILURE(StartDaemon(WithConfig()));
  V2Client c(daemon_->port);
  auto r = c.Post("/v2/repository/index", "{}");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200);
  Json idx = r->JsonBody();
  ASSERT_EQ(idx.size(), 1u) << idx;
  EXPECT_NE(idx[0]["state"], "READY") << idx;
  const std::string reason = idx[0].value("reason", "");
  EXPECT_NE(reason.find("no OpenCL device matches"), std::string::npos) << idx;
  EXPECT_NE(reason.find("no-such-accelerator"), std::string::npos) << idx;
  EXPECT_NE(reason.find("Portable Computing Language"), std::string::npos) << idx;
  auto h = c.Get("/v2/health/ready");
  ASSERT_TRUE(h);
  EXPECT_EQ(h->status, 503);
}

TEST_F(OutpostdTest, RepositoryIndexListsUnloadedModels) {
  AddIris();
  box_.AddConfig("models:\n  watch: false\n");
  ASSERT_NO_FATAL_FAILURE(StartDaemon(WithConfig()));
  V2Client c(daemon_->port);
  auto r = c.Post("/v2/repository/models/iris/unload", "{}");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  r = c.Post("/v2/repository/index", "{}");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200);
  Json idx = r->JsonBody();
  ASSERT_EQ(idx.size(), 1u) << "the unloaded model is missing from the index: " << idx;
  EXPECT_EQ(idx[0]["name"], "iris");
  EXPECT_NE(idx[0]["state"], "READY") << idx;
}

// An explicit unload sticks: the manifest watcher must not load the model straight back.
TEST_F(OutpostdTest, UnloadedModelStaysUnloadedWhileWatching) {
  AddIris();
  box_.AddConfig("models:\n  watch: true\n  watch_interval_ms: 100\n");
  ASSERT_NO_FATAL_FAILURE(StartDaemon(WithConfig()));
  V2Client c(daemon_->port);
  auto r = c.Post("/v2/repository/models/iris/unload", "{}");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  // Several watch intervals (outpostd's main loop looks about once a second).
  std::this_thread::sleep_for(milliseconds(2500));
  r = c.Get("/v2/models/iris/ready");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 404) << "the model came back "
                            << "after an explicit unload";
}

// ---- SIGTERM drain ------------------------------------------------------------------------

TEST_F(OverloadTest, SigtermDrainsInFlightRequestAndExits0) {
  box_.AddManifest("digits.yaml", Manifest("digits", "digits_cnn.onnx",
                                           {{"threads", "1"}, {"max-batch-size", "1"}}));
  ASSERT_NO_FATAL_FAILURE(StartDaemon());
  const int64_t rows = Calibrate(500);
  const std::string slow = digits_.Bytes(rows);
  // An idle keep-alive connection must not hold up the drain.
  V2Client idle(daemon_->port);
  ASSERT_TRUE(idle.Get("/v2/health/live"));

  const double batches_before =
      Value(Metrics(), "outpost_serve_batch_size_count", {{"model", "digits"}});
  V2Client c(daemon_->port);
  ASSERT_TRUE(c.http().Connect());
  std::optional<HttpResponse> r;
  double answered_ms = 0;
  const auto t0 = Clock::now();
  std::thread t([&] {
    r = c.InferBinary("digits", DigitsLoad::Header(rows, slow.size()), slow, 30000);
    answered_ms = MsSince(t0);
  });
  // Wait until the request is computing (its batch was counted), then SIGTERM.
  bool running = false;
  for (int i = 0; i < 2500 && !running; ++i) {
    running = Value(Metrics(), "outpost_serve_batch_size_count", {{"model", "digits"}}) ==
              batches_before + 1;
    if (!running) std::this_thread::sleep_for(milliseconds(2));
  }
  ASSERT_TRUE(running) << "the slow request never started";
  ASSERT_TRUE(daemon_->proc->Signal(SIGTERM));
  // New connections are refused once the drain began (while the request still computes).
  bool refused = false;
  double refused_ms = 0;
  while (!refused && MsSince(t0) < 5000) {
    int fd = ConnectTcp("127.0.0.1", daemon_->port);
    if (fd < 0) {
      refused = errno == ECONNREFUSED;
      refused_ms = MsSince(t0);
    } else {
      ::close(fd);
      std::this_thread::sleep_for(milliseconds(5));
    }
  }
  t.join();
  EXPECT_TRUE(refused) << "new connections were still accepted after SIGTERM";
  ASSERT_TRUE(r) << c.http().last_error();
  EXPECT_TRUE(digits_.Check(*r, rows));
  EXPECT_LT(refused_ms, answered_ms) << "the listener closed only after the in-flight request";
  auto rc = daemon_->proc->Wait(10000);
  ASSERT_TRUE(rc) << "outpostd did not exit after SIGTERM";
  EXPECT_EQ(*rc, 0) << daemon_->proc->Stderr();
  EXPECT_LT(ConnectTcp("127.0.0.1", daemon_->port), 0);
}

// ---- configuration errors -----------------------------------------------------------------

TEST_F(OutpostdTest, BadConfigExits2NamingFileLineAndKey) {
  AddIris();
  const std::string cfg = box_.AddConfig("server:\n  port: 0\n  prot: 8080\n", "device.yaml");
  ProcessOptions po;
  po.argv = {kOutpostd, "--config", cfg, "--manifests", box_.manifests(), "--models", kModelsDir};
  po.stderr_path = box_.path("bad-config.log");
  auto p = Process::Start(po);
  ASSERT_TRUE(p);
  auto rc = p->Wait(10000);
  ASSERT_TRUE(rc) << "outpostd kept running with a bad config";
  EXPECT_EQ(*rc, 2);
  const std::string err = p->Stderr();
  EXPECT_NE(err.find("device.yaml:3:"), std::string::npos) << err;
  EXPECT_NE(err.find("server.prot"), std::string::npos) << err;
  EXPECT_NE(err.find("unknown key"), std::string::npos) << err;

  // A value of the wrong type: also 2, naming the key.
  const std::string cfg2 = box_.AddConfig("server:\n  port: eighty\n", "typo.yaml");
  po.argv[2] = cfg2;
  p = Process::Start(po);
  ASSERT_TRUE(p);
  rc = p->Wait(10000);
  ASSERT_TRUE(rc);
  EXPECT_EQ(*rc, 2);
  EXPECT_NE(p->Stderr().find("typo.yaml:2:"), std::string::npos) << p->Stderr();
  EXPECT_NE(p->Stderr().find("server.port"), std::string::npos) << p->Stderr();
}

TEST_F(OutpostdTest, BadArgumentsExit2) {
  const std::vector<std::vector<std::string>> bad = {{"--listen", "garbage"},
                                                     {"--listen", "127.0.0.1:99999"},
                                                     {"--listen", "127.0.0.1"},
                                                     {"--listen", "[::1:80"},
                                                     {"--frobnicate"},
                                                     {"--listen"},
                                                     {"--config", box_.path("missing.yaml")}};
  for (const auto& args : bad) {
    ProcessOptions po;
    po.argv = {kOutpostd};
    po.argv.insert(po.argv.end(), args.begin(), args.end());
    po.stderr_path = box_.path("args.log");
    auto p = Process::Start(po);
    ASSERT_TRUE(p);
    auto rc = p->Wait(10000);
    ASSERT_TRUE(rc) << Join(args, " ") << ": still running";
    EXPECT_EQ(*rc, 2) << Join(args, " ") << ": " << p->Stderr();
    EXPECT_FALSE(p->Stderr().empty()) << Join(args, " ");
    if (args[0] == "--listen" && args.size() == 2) {
      EXPECT_NE(p->Stderr().find("--listen"), std::string::npos) << p->Stderr();
    }
  }
  // --help and --version succeed.
  for (const std::string a : {"--help", "--version"}) {
    ProcessOptions po;
    po.argv = {kOutpostd, a};
    auto p = Process::Start(po);
    ASSERT_TRUE(p);
    auto line = p->ReadLine(5000);
    ASSERT_TRUE(line) << a;
    EXPECT_NE(line->find("outpostd"), std::string::npos) << *line;
    EXPECT_EQ(p->Wait(5000).value_or(-1), 0) << a;
  }
}

// ---- /metrics -----------------------------------------------------------------------------

TEST_F(OutpostdTest, PrometheusMetrics) {
  AddIris();
  ASSERT_NO_FATAL_FAILURE(StartDaemon());
  V2Client c(daemon_->port);
  constexpr int kOk = 5, kBad = 2;
  for (int i = 0; i < kOk; ++i) {
    auto r = c.Infer("iris", IrisRequest(iris_.input, i, 1));
    ASSERT_TRUE(r && r->status == 200);
  }
  for (int i = 0; i < kBad; ++i) {
    auto r = c.Post("/v2/models/iris/infer", "{not json");
    ASSERT_TRUE(r && r->status == 400);
  }
  auto r = c.Get("/metrics");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200);
  // The Prometheus text exposition format, version 0.0.4.
  const std::string ct = r->Header("Content-Type").value_or("");
  EXPECT_EQ(ct.rfind("text/plain", 0), 0u) << ct;
  EXPECT_NE(ct.find("version=0.0.4"), std::string::npos) << ct;
  EXPECT_NE(r->body.find("# TYPE outpost_requests_total counter\n"), std::string::npos);
  EXPECT_NE(r->body.find("# TYPE outpost_request_duration_seconds histogram\n"), std::string::npos);
  EXPECT_NE(r->body.find("# TYPE outpost_serve_queue_depth gauge\n"), std::string::npos);

  auto m = ParsePrometheus(r->body);
  const std::map<std::string, std::string> iris1 = {{"model", "iris"}, {"version", "1"}};
  auto with = [&](std::string k, std::string v) {
    auto l = iris1;
    l[k] = v;
    return l;
  };
  EXPECT_EQ(Value(m, "outpost_requests_total", with("outcome", "success")), kOk);
  EXPECT_EQ(Value(m, "outpost_requests_total", with("outcome", "bad_request")), kBad);
  EXPECT_EQ(Value(m, "outpost_requests_total", with("outcome", "rejected")), 0);
  // Latency histograms: cumulative buckets ending in +Inf == _count == the successful requests.
  for (const std::string h : {"outpost_request_duration_seconds", "outpost_request_queue_seconds",
                              "outpost_request_compute_seconds"}) {
    SCOPED_TRACE(h);
    auto buckets = Find(m, h + "_bucket", iris1);
    ASSERT_GE(buckets.size(), 2u);
    double prev = 0, prev_le = -INFINITY;
    for (const auto& b : buckets) {
      const double le = b.labels.at("le") == "+Inf" ? INFINITY : std::stod(b.labels.at("le"));
      EXPECT_GT(le, prev_le);
      EXPECT_GE(b.value, prev);
      prev = b.value;
      prev_le = le;
    }
    EXPECT_TRUE(std::isinf(prev_le));
    EXPECT_EQ(prev, kOk);
    EXPECT_EQ(Value(m, h + "_count", iris1), kOk);
    EXPECT_GT(Value(m, h + "_sum", iris1), 0);
  }
  EXPECT_EQ(Value(m, "outpost_serve_queue_depth", iris1), 0);
  EXPECT_GT(Value(m, "outpost_model_load_seconds", iris1), 0);
  // Node placement: the whole MLP on the CPU backend.
  EXPECT_GT(Value(m, "outpost_model_nodes", with("backend", "cpu")), 0);
  EXPECT_EQ(Value(m, "outpost_model_nodes", with("backend", "opencl")), 0);
  EXPECT_EQ(Value(m, "outpost_model_loads_total", {{"model", "iris"}, {"outcome", "loaded"}}), 1);

  // Prometheus' own linter accepts the exposition.
  const std::string promtool = FindExecutable("promtool");
  if (promtool.empty()) GTEST_FAIL() << "promtool (Debian package prometheus) is not installed";
  const std::string file = box_.path("metrics.txt");
  WriteFile(file, r->body);
  CommandResult lint = RunCommand(promtool + " check metrics < " + ShellQuote(file) + " 2>&1");
  EXPECT_EQ(lint.status, 0) << lint.output;
}

}  // namespace
}  // namespace outpost::testing
