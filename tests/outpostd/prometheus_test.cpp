// A real Prometheus server (Debian's `prometheus`) scrapes outpostd's /metrics every second; the
// test asks Prometheus' HTTP API for the request counter and checks the series and its value.
#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <thread>

#include "outpostd/test_util.h"

namespace outpost::testing {
namespace {

std::string UrlEncode(const std::string& s) {
  static const char* hex = "0123456789ABCDEF";
  std::string o;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      o += static_cast<char>(c);
    } else {
      o += '%';
      o += hex[c >> 4];
      o += hex[c & 15];
    }
  }
  return o;
}

TEST(PrometheusTest, ScrapesOutpostdRequestCounter) {
  const std::string prometheus = FindExecutable("prometheus");
  ASSERT_FALSE(prometheus.empty())
      << "the `prometheus` server is not installed (Debian: apt-get install prometheus); this "
         "test needs it to scrape outpostd";

  Sandbox box;
  box.AddManifest("iris.yaml", Manifest("iris", "iris_mlp.onnx", {{"threads", "1"}}));
  std::string err;
  auto d = box.Start({}, &err);
  ASSERT_TRUE(d) << err;

  // Requests Prometheus must see: 4 successes, 1 bad request.
  V2Client c(d->port);
  const Json req = {{"inputs", Json::array({{{"name", "input"},
                                             {"datatype", "FP32"},
                                             {"shape", {1, 4}},
                                             {"data", {5.1, 3.5, 1.4, 0.2}}}})}};
  for (int i = 0; i < 4; ++i) {
    auto r = c.Infer("iris", req);
    ASSERT_TRUE(r && r->status == 200);
  }
  auto bad = c.Post("/v2/models/iris/infer", "{");
  ASSERT_TRUE(bad && bad->status == 400);

  const uint16_t web_port = FreePort();
  ASSERT_NE(web_port, 0);
  const std::string target = "127.0.0.1:" + std::to_string(d->port);
  WriteFile(box.path("prometheus.yml"),
            "global:\n"
            "  scrape_interval: 1s\n"
            "  scrape_timeout: 1s\n"
            "  evaluation_interval: 1s\n"
            "scrape_configs:\n"
            "  - job_name: outpostd\n"
            "    metrics_path: /metrics\n"
            "    static_configs:\n"
            "      - targets: ['" +
                target + "']\n");
  ProcessOptions po;
  po.argv = {prometheus, "--config.file=" + box.path("prometheus.yml"),
             "--storage.tsdb.path=" + box.path("prometheus-data"),
             "--web.listen-address=127.0.0.1:" + std::to_string(web_port), "--log.level=warn"};
  po.capture_stdout = false;
  po.stderr_path = box.path("prometheus.log");
  auto prom = Process::Start(po, &err);
  ASSERT_TRUE(prom) << err;

  // Wait until a scrape has happened and the counter is queryable (Prometheus starts in ~1 s,
  // scrapes every 1 s).
  HttpClient api(web_port);
  const std::string query = "outpost_requests_total{job=\"outpostd\",model=\"iris\"}";
  Json result;
  std::string last;
  const auto t0 = std::chrono::steady_clock::now();
  while (std::chrono::steady_clock::now() - t0 < std::chrono::seconds(30)) {
    ASSERT_TRUE(prom->running()) << "prometheus exited:\n" << prom->Stderr();
    auto r = api.Request("GET", "/api/v1/query?query=" + UrlEncode(query));
    if (r && r->status == 200) {
      Json j = r->JsonBody();
      last = r->body;
      if (j.value("status", "") == "success" && j["data"]["result"].size() >= 2) {
        result = j["data"]["result"];
        break;
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  ASSERT_TRUE(result.is_array()) << "no outpost_requests_total in Prometheus after 30 s; last "
                                    "answer: "
                                 << last << "\nprometheus log:\n"
                                 << prom->Stderr();
  // One series per outcome; values are [time, "value"].
  std::map<std::string, std::string> by_outcome;
  for (const auto& s : result) {
    const Json& m = s["metric"];
    EXPECT_EQ(m["__name__"], "outpost_requests_total");
    EXPECT_EQ(m["job"], "outpostd");
    EXPECT_EQ(m["instance"], target);
    EXPECT_EQ(m["model"], "iris");
    EXPECT_EQ(m["version"], "1");
    by_outcome[m["outcome"].get<std::string>()] = s["value"][1].get<std::string>();
  }
  EXPECT_EQ(by_outcome["success"], "4") << result;
  EXPECT_EQ(by_outcome["bad_request"], "1") << result;
  EXPECT_EQ(by_outcome["rejected"], "0") << result;

  // The target is up, and a histogram made it through as well.
  auto up = api.Request("GET", "/api/v1/query?query=" + UrlEncode("up{job=\"outpostd\"}"));
  ASSERT_TRUE(up && up->status == 200);
  Json u = up->JsonBody()["data"]["result"];
  ASSERT_EQ(u.size(), 1u) << u;
  EXPECT_EQ(u[0]["value"][1], "1");
  auto h =
      api.Request("GET", "/api/v1/query?query=" +
                             UrlEncode("outpost_request_duration_seconds_count{model=\"iris\"}"));
  ASSERT_TRUE(h && h->status == 200);
  Json hr = h->JsonBody()["data"]["result"];
  ASSERT_EQ(hr.size(), 1u) << hr;
  EXPECT_EQ(hr[0]["value"][1], "4");

  prom->Kill();
  d->proc->Kill();
}

}  // namespace
}  // namespace outpost::testing
