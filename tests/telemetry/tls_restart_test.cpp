// The publisher against a mosquitto configured with TLS (a CA, server and client certificates
// made with openssl when the suite starts), require_certificate and a password file made with
// mosquitto_passwd; MQTT 5 and 3.1.1. And a broker restart on the same port while records are
// being appended: everything arrives, in order per stream, repeats only detectable by seq.
// Label integration.
#include <sys/stat.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

#include "broker.h"
#include "outpost/config/device_config.h"
#include "outpost/core/metrics.h"
#include "outpost/telemetry/publisher.h"
#include "outpost/telemetry/telemetry.h"

namespace outpost::telemetry {
namespace {

namespace fs = std::filesystem;
using testing::AllAcked;
using testing::Broker;
using testing::BrokerOptions;
using testing::Collector;
using testing::TempDir;

constexpr const char* kUser = "edge";
constexpr const char* kPassword = "s3cret pass";

uint64_t FailureCount(const std::string& reason) {
  return MetricsRegistry::Global()
      .GetCounter("outpost_telemetry_mqtt_failures_total", "", {{"reason", reason}})
      .value();
}

std::string ReadAll(const std::string& path) {
  std::ifstream f(path);
  return std::string(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

// Runs a shell command, its output into `log`; true when it exits 0.
bool Sh(const std::string& cmd, const std::string& log) {
  const std::string full = "(" + cmd + ") >>'" + log + "' 2>&1";
  return std::system(full.c_str()) == 0;
}

// A CA, a server certificate for 127.0.0.1, a client certificate, a client certificate from
// another CA the broker does not trust, and the password file. Made once for the suite.
struct Pki {
  TempDir dir;
  std::string log, error;
  std::string Path(const std::string& f) const { return dir.path() + "/" + f; }

  bool Make() {
    log = Path("openssl.log");
    const std::string d = "cd '" + dir.path() + "' && ";
    const std::string key = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
    auto ca = [&](const std::string& name) {
      return Sh(d + "openssl req -x509 " + key + " -keyout " + name + ".key -out " + name +
                    ".pem -days 2 -subj /CN=" + name,
                log);
    };
    auto leaf = [&](const std::string& name, const std::string& cn, const std::string& ca_name,
                    const std::string& ext) {
      return Sh(d + "openssl req " + key + " -keyout " + name + ".key -out " + name +
                    ".csr -subj /CN=" + cn + " && openssl x509 -req -in " + name + ".csr -CA " +
                    ca_name + ".pem -CAkey " + ca_name + ".key -CAcreateserial -out " + name +
                    ".pem -days 2" + ext,
                log);
    };
    std::ofstream(Path("server.ext")) << "subjectAltName=IP:127.0.0.1,DNS:localhost\n";
    if (!ca("ca") || !ca("rogue-ca") ||
        !leaf("server", "127.0.0.1", "ca", " -extfile server.ext") ||
        !leaf("client", "dev-tls", "ca", "") || !leaf("rogue-client", "dev-tls", "rogue-ca", "")) {
      error = "openssl failed:\n" + ReadAll(log);
      return false;
    }
    if (!Sh(std::string(OUTPOST_MOSQUITTO_PASSWD_BIN) + " -b -c '" + Path("passwd") + "' " + kUser +
                " '" + kPassword + "'",
            log)) {
      error = "mosquitto_passwd failed:\n" + ReadAll(log);
      return false;
    }
    std::ofstream(Path("password")) << kPassword << "\n";
    std::ofstream(Path("wrong-password")) << "not the password\n";
    // mosquitto, started as root, reads them as the mosquitto user.
    ::chmod(dir.path().c_str(), 0755);
    for (const auto& e : fs::directory_iterator(dir.path())) ::chmod(e.path().c_str(), 0644);
    return true;
  }
};

class TlsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    pki_ = new Pki();
    if (!pki_->Make()) setup_error_ = pki_->error;
  }
  static void TearDownTestSuite() {
    delete pki_;
    pki_ = nullptr;
  }
  void SetUp() override {
    if (!fs::exists(OUTPOST_MOSQUITTO_BIN)) GTEST_SKIP() << "mosquitto not installed";
    ASSERT_TRUE(setup_error_.empty()) << setup_error_;
    BrokerOptions o;
    o.allow_anonymous = false;
    o.password_file = pki_->Path("passwd");
    o.listener_lines = {"cafile " + pki_->Path("ca.pem"), "certfile " + pki_->Path("server.pem"),
                        "keyfile " + pki_->Path("server.key"), "require_certificate true"};
    o.plain_listener = true;  // where the collector subscribes
    broker_ = std::make_unique<Broker>(o);
    ASSERT_TRUE(broker_->Start()) << "could not start mosquitto:\n" << broker_->Log();
    collector_ = std::make_unique<Collector>(broker_->plain_port());
    ASSERT_TRUE(collector_->subscribed());
  }
  void TearDown() override {
    if (HasFailure() && broker_)
      std::fprintf(stderr, "mosquitto log:\n%s\n", broker_->Log().c_str());
  }

  // The device's connection settings, as the device config gives them.
  config::TelemetryConfig Config(const std::string& device, int version) const {
    config::TelemetryConfig c;
    c.enabled = true;
    c.broker_url = "mqtts://127.0.0.1:" + std::to_string(broker_->port());
    c.device_id = device;
    c.fleet = "tls";
    c.username = kUser;
    c.password_file = pki_->Path("password");
    c.tls_ca_file = pki_->Path("ca.pem");
    c.tls_cert_file = pki_->Path("client.pem");
    c.tls_key_file = pki_->Path("client.key");
    c.mqtt_version = version;
    return c;
  }
  static MqttOptions Fast(MqttOptions o) {
    o.backoff_initial_ms = 50;
    o.backoff_max_ms = 300;
    o.batch_max_records = 40;
    o.keepalive_s = 5;
    return o;
  }

  void DeliversOverTls(int version) {
    TempDir dir;
    QueueOptions qo;
    qo.dir = dir.path();
    qo.live_share_percent = 0;  // strict sequence order on the wire
    auto q = DiskQueue::Open(qo);
    ASSERT_TRUE(q.ok());
    const std::string device = "dev-tls-" + std::to_string(version);
    auto mo = MqttOptionsFromConfig(Config(device, version));
    ASSERT_TRUE(mo.ok()) << mo.status().ToString();
    EXPECT_TRUE(mo->tls);
    EXPECT_EQ(mo->password, kPassword);
    EXPECT_EQ(mo->protocol_version, version);
    Publisher pub(q->get(), Fast(*mo));
    ASSERT_TRUE(pub.Start().ok());
    constexpr uint64_t kN = 300;
    for (uint64_t i = 1; i <= kN; ++i)
      ASSERT_TRUE((*q)->Append(Stream::kEvents, nlohmann::json{{"i", i}}.dump()).ok());
    ASSERT_TRUE(Collector::WaitFor([&] { return AllAcked(**q); }, 20000))
        << "connected: " << pub.stats().connected;
    ASSERT_TRUE(Collector::WaitFor(
        [&] { return collector_->Stream(device, "events").data.size() >= kN; }, 10000));
    auto v = collector_->Stream(device, "events");
    testing::ExpectCompleteInOrder(v, kN, device, "events");
    for (uint64_t i = 1; i <= kN; ++i) EXPECT_EQ(v.data[i]["i"], i);
    EXPECT_GE(pub.stats().connects, 1u);
    EXPECT_EQ(pub.stats().connect_failures, 0u);
    // The retained birth message went over the same session.
    bool online = false;
    for (auto& m : collector_->messages())
      if (m.topic == "outpost/tls/" + device + "/status")
        online = online || nlohmann::json::parse(m.payload)["state"] == "online";
    EXPECT_TRUE(online);
    pub.Stop();
  }

  // The publisher never gets a session, counts the failure as `reason`, delivers nothing.
  void Refused(config::TelemetryConfig c, const std::string& reason, const std::string& what) {
    TempDir dir;
    QueueOptions qo;
    qo.dir = dir.path();
    auto q = DiskQueue::Open(qo);
    ASSERT_TRUE(q.ok());
    ASSERT_TRUE((*q)->Append(Stream::kEvents, "{\"i\":1}").ok());
    auto mo = MqttOptionsFromConfig(c);
    ASSERT_TRUE(mo.ok()) << mo.status().ToString();
    const uint64_t before = FailureCount(reason);
    Publisher pub(q->get(), Fast(*mo));
    ASSERT_TRUE(pub.Start().ok());
    EXPECT_TRUE(Collector::WaitFor([&] { return pub.stats().connect_failures >= 2; }, 10000))
        << what;
    EXPECT_GE(FailureCount(reason) - before, 2u) << what << ": failures not counted as " << reason;
    EXPECT_EQ(pub.stats().connects, 0u) << what;
    EXPECT_EQ((*q)->Stats(Stream::kEvents).acked_seq, 0u) << what;
    pub.Stop();
    EXPECT_TRUE(collector_->Stream(c.device_id, "events").data.empty()) << what;
  }

  static Pki* pki_;
  static std::string setup_error_;
  std::unique_ptr<Broker> broker_;
  std::unique_ptr<Collector> collector_;
};

Pki* TlsTest::pki_ = nullptr;
std::string TlsTest::setup_error_;

TEST_F(TlsTest, ClientCertificateAndPasswordMqtt5) { DeliversOverTls(5); }
TEST_F(TlsTest, ClientCertificateAndPasswordMqtt311) { DeliversOverTls(311); }

TEST_F(TlsTest, RefusedWithoutValidCredentials) {
  for (int version : {5, 311}) {
    const std::string v = " (MQTT " + std::to_string(version) + ")";
    auto c = Config("dev-wrong-password", version);
    c.password_file = pki_->Path("wrong-password");
    Refused(c, "auth", "wrong password" + v);

    c = Config("dev-no-user", version);
    c.username.clear();
    c.password_file.clear();
    Refused(c, "auth", "no user name" + v);
  }
  auto c = Config("dev-no-cert", 5);
  c.tls_cert_file.clear();
  c.tls_key_file.clear();
  Refused(c, "tls", "no client certificate");

  c = Config("dev-rogue-cert", 5);
  c.tls_cert_file = pki_->Path("rogue-client.pem");
  c.tls_key_file = pki_->Path("rogue-client.key");
  Refused(c, "tls", "client certificate from an untrusted CA");

  c = Config("dev-wrong-ca", 5);
  c.tls_ca_file = pki_->Path("rogue-ca.pem");
  Refused(c, "tls", "server certificate not trusted");
}

// ---- broker restart ----------------------------------------------------------------------

// The broker is stopped (SIGTERM; with persistence it keeps its sessions and queued messages) and
// started again on the same port, twice, while two streams are being appended to. The collector
// keeps a persistent session, so that it misses nothing published while it reconnects.
void RestartWhileAppending(int version) {
  if (!fs::exists(OUTPOST_MOSQUITTO_BIN)) GTEST_SKIP() << "mosquitto not installed";
  BrokerOptions bo;
  bo.persistence = true;
  Broker broker(bo);
  ASSERT_TRUE(broker.Start()) << broker.Log();
  const std::string device = "dev-restart-" + std::to_string(version);
  Collector col(broker.port(), "collector-" + device);
  ASSERT_TRUE(col.subscribed());

  TempDir dir;
  QueueOptions qo;
  qo.dir = dir.path();
  qo.live_share_percent = 0;  // strict sequence order on the wire
  auto q = DiskQueue::Open(qo);
  ASSERT_TRUE(q.ok());
  MqttOptions mo = testing::Mqtt(broker.port(), device, version);
  mo.batch_max_records = 25;
  Publisher pub(q->get(), mo);
  ASSERT_TRUE(pub.Start().ok());

  std::atomic<bool> stop{false};
  std::atomic<int> append_errors{0};
  std::thread producer([&] {
    uint64_t i = 0;
    while (!stop) {
      std::vector<std::string> ev, met;
      for (int k = 0; k < 10; ++k, ++i) {
        ev.push_back(nlohmann::json{{"type", "test"}, {"i", i}}.dump());
        met.push_back(nlohmann::json{{"m", i}}.dump());
      }
      std::vector<std::string_view> e(ev.begin(), ev.end()), m(met.begin(), met.end());
      if (!(*q)->AppendBatch(Stream::kEvents, e).ok()) ++append_errors;
      if (!(*q)->AppendBatch(Stream::kMetrics, m).ok()) ++append_errors;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  });
  auto acked = [&] { return (*q)->Stats(Stream::kEvents).acked_seq; };
  for (int round = 0; round < 2; ++round) {
    const uint64_t a = acked();
    ASSERT_TRUE(Collector::WaitFor([&] { return acked() >= a + 200; }, 15000)) << round;
    broker.Stop();  // records keep coming while it is down
    ASSERT_TRUE(Collector::WaitFor([&] { return !pub.stats().connected; }, 5000));
    std::this_thread::sleep_for(std::chrono::milliseconds(400));
    ASSERT_TRUE(broker.Restart()) << broker.Log();
    ASSERT_TRUE(Collector::WaitFor([&] { return col.connects() >= round + 2; }, 10000)) << round;
  }
  ASSERT_TRUE(Collector::WaitFor([&] { return acked() >= 200 && pub.stats().connected; }, 15000));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  stop = true;
  producer.join();
  EXPECT_EQ(append_errors, 0);
  ASSERT_TRUE(Collector::WaitFor([&] { return AllAcked(**q); }, 30000));
  const uint64_t n_events = (*q)->Stats(Stream::kEvents).next_seq - 1;
  const uint64_t n_metrics = (*q)->Stats(Stream::kMetrics).next_seq - 1;
  ASSERT_GT(n_events, 400u);
  ASSERT_TRUE(Collector::WaitFor(
      [&] {
        return col.Stream(device, "events").data.size() >= n_events &&
               col.Stream(device, "metrics").data.size() >= n_metrics;
      },
      20000))
      << "events " << col.Stream(device, "events").data.size() << "/" << n_events << ", metrics "
      << col.Stream(device, "metrics").data.size() << "/" << n_metrics;
  auto ev = col.Stream(device, "events");
  auto met = col.Stream(device, "metrics");
  testing::ExpectCompleteInOrder(ev, n_events, device, "events");
  testing::ExpectCompleteInOrder(met, n_metrics, device, "metrics");
  // The payload of seq k is the k-th record appended.
  for (auto& [seq, data] : ev.data) EXPECT_EQ(data["i"], seq - 1);
  EXPECT_TRUE(col.Stream(device, "gaps").data.empty()) << "nothing was lost: no gap markers";
  EXPECT_GE(pub.stats().connects, 3u);
  EXPECT_GE(col.connects(), 3);
  std::printf("broker restart (MQTT %d): %llu events, %llu metrics, %llu + %llu repeats\n", version,
              static_cast<unsigned long long>(n_events), static_cast<unsigned long long>(n_metrics),
              static_cast<unsigned long long>(ev.duplicates),
              static_cast<unsigned long long>(met.duplicates));
  pub.Stop();
}

TEST(BrokerRestartTest, EverythingDeliveredInOrderMqtt5) { RestartWhileAppending(5); }
TEST(BrokerRestartTest, EverythingDeliveredInOrderMqtt311) { RestartWhileAppending(311); }

}  // namespace
}  // namespace outpost::telemetry
