#include "outpost/telemetry/publisher.h"

#include <mosquitto.h>
#include <mqtt_protocol.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <fstream>
#include <mutex>
#include <random>
#include <sstream>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include "outpost/config/device_config.h"
#include "outpost/core/log.h"
#include "outpost/core/metrics.h"
#include "outpost/core/thread_name.h"
#include "payload.h"

namespace outpost::telemetry {
namespace {

void LibInit() {
  static std::once_flag once;
  std::call_once(once, [] { mosquitto_lib_init(); });
}

using Clock = std::chrono::steady_clock;

}  // namespace

Expected<MqttOptions> MqttOptionsFromConfig(const config::TelemetryConfig& cfg) {
  MqttOptions o;
  std::string url = cfg.broker_url;
  std::string rest;
  if (url.rfind("mqtt://", 0) == 0) {
    rest = url.substr(7);
  } else if (url.rfind("mqtts://", 0) == 0) {
    rest = url.substr(8);
    o.tls = true;
  } else {
    return InvalidArgument("telemetry.broker_url must start with mqtt:// or mqtts://: '" + url +
                           "'");
  }
  if (!rest.empty() && rest.back() == '/') rest.pop_back();
  o.port = o.tls ? 8883 : 1883;
  size_t colon = rest.rfind(':');
  if (colon != std::string::npos && rest.find(']') == std::string::npos) {
    std::string p = rest.substr(colon + 1);
    rest = rest.substr(0, colon);
    try {
      o.port = std::stoi(p);
    } catch (...) {
      return InvalidArgument("telemetry.broker_url: bad port '" + p + "'");
    }
    if (o.port <= 0 || o.port > 65535) return InvalidArgument("telemetry.broker_url: bad port");
  }
  if (rest.empty()) return InvalidArgument("telemetry.broker_url has no host");
  o.host = rest;
  o.ca_file = cfg.tls_ca_file;
  o.cert_file = cfg.tls_cert_file;
  o.key_file = cfg.tls_key_file;
  if (!o.tls && (!o.ca_file.empty() || !o.cert_file.empty() || !o.key_file.empty()))
    return InvalidArgument("telemetry: TLS files are set but the broker URL is mqtt:// (plain "
                           "TCP); use mqtts://");
  o.username = cfg.username;
  if (!cfg.password_file.empty()) {
    std::ifstream f(cfg.password_file);
    if (!f) return NotFound("telemetry.password_file: cannot read " + cfg.password_file);
    std::getline(f, o.password);
    while (!o.password.empty() && (o.password.back() == '\r' || o.password.back() == ' '))
      o.password.pop_back();
  }
  o.device_id = cfg.device_id;
  if (o.device_id.empty()) {
    char host[256] = {};
    ::gethostname(host, sizeof host - 1);
    o.device_id = host[0] ? host : "unknown";
  }
  o.fleet = cfg.fleet;
  o.topic_prefix = cfg.topic_prefix.empty() ? "outpost" : cfg.topic_prefix;
  o.qos = cfg.qos;
  o.keepalive_s = cfg.keepalive_s;
  o.protocol_version = cfg.mqtt_version == 311 ? 311 : 5;
  o.max_inflight = cfg.max_inflight;
  return o;
}

std::string TopicFor(const MqttOptions& o, const std::string& leaf) {
  return o.topic_prefix + "/" + o.fleet + "/" + o.device_id + "/" + leaf;
}

struct Publisher::Impl {
  DiskQueue* q;
  MqttOptions o;
  std::thread th;
  std::mutex mu;  // guards stop + the cv used for backoff sleeps
  std::condition_variable cv;
  bool stop = false;

  // Loop-thread state (the mosquitto callbacks run on the loop thread too).
  struct Flight {
    Stream stream;
    uint64_t first;
    size_t records;
    Clock::time_point sent;
  };
  std::unordered_map<int, Flight> inflight;
  std::unordered_set<int> early;        // on_publish seen before mosquitto_publish returned (QoS 0)
  std::unordered_set<int> status_mids;  // birth / offline messages
  bool connack = false;
  int connack_rc = -1;
  bool lost = false;
  bool nack = false;
  std::string lib_error;  // the last error libmosquitto logged (TLS details), for our log line
  std::string last_logged;  // the last connection failure logged at warn level
  Clock::time_point last_logged_at{};

  std::atomic<bool> connected{false};
  std::atomic<uint64_t> connects{0}, connect_failures{0}, published{0}, acked{0}, acked_records{0};
  std::atomic<int> inflight_n{0};

  Gauge& g_connected = MetricsRegistry::Global().GetGauge(
      "outpost_telemetry_mqtt_connected", "1 while the telemetry MQTT session is up");
  Gauge& g_inflight = MetricsRegistry::Global().GetGauge(
      "outpost_telemetry_mqtt_inflight", "Telemetry batches published and not yet acknowledged");

  Counter& Failures(const std::string& reason) {
    return MetricsRegistry::Global().GetCounter("outpost_telemetry_mqtt_failures_total",
                                                "Telemetry MQTT connection and publish failures",
                                                {{"reason", reason}});
  }

  bool Stopping() {
    std::lock_guard<std::mutex> lk(mu);
    return stop;
  }

  void Acked(int mid, int reason_code) {
    if (status_mids.erase(mid)) return;
    auto it = inflight.find(mid);
    if (it == inflight.end()) {
      early.insert(mid);
      return;
    }
    if (reason_code >= 0x80) {  // MQTT 5 negative PUBACK: the broker did not take it
      Failures("puback_error").Inc();
      nack = true;
      inflight.erase(it);
      return;
    }
    q->Ack(it->second.stream, it->second.first);
    acked++;
    acked_records += it->second.records;
    MetricsRegistry::Global()
        .GetCounter("outpost_telemetry_mqtt_published_records_total",
                    "Telemetry records acknowledged by the broker",
                    {{"stream", StreamName(it->second.stream)}})
        .Inc(it->second.records);
    inflight.erase(it);
  }

  static void OnConnect(mosquitto*, void* ud, int rc, int, const mosquitto_property*) {
    auto* self = static_cast<Impl*>(ud);
    self->connack = true;
    self->connack_rc = rc;
  }
  static void OnDisconnect(mosquitto*, void* ud, int, const mosquitto_property*) {
    static_cast<Impl*>(ud)->lost = true;
  }
  static void OnPublish(mosquitto*, void* ud, int mid, int reason, const mosquitto_property*) {
    static_cast<Impl*>(ud)->Acked(mid, reason);
  }
  static void OnLog(mosquitto*, void* ud, int level, const char* text) {
    if ((level & (MOSQ_LOG_ERR | MOSQ_LOG_WARNING)) && text) {
      auto* self = static_cast<Impl*>(ud);
      if (self->lib_error.empty()) self->lib_error = text;  // the first one says the most
    }
  }

  // A failed connection attempt: counted by reason; logged at warn when the reason changes or
  // once a minute (the publisher retries with backoff, it would flood the log otherwise).
  void ConnectFailed(const std::string& reason, const std::string& what) {
    Failures(reason).Inc();
    std::string line = "telemetry: cannot connect to " +
                       std::string(o.tls ? "mqtts://" : "mqtt://") + o.host + ":" +
                       std::to_string(o.port) + ": " + what;
    if (!lib_error.empty()) line += " (" + lib_error + ")";
    const auto now = Clock::now();
    if (line != last_logged || now - last_logged_at > std::chrono::seconds(60)) {
      OP_LOG_WARN("{}; retrying with backoff", line);
      last_logged = line;
      last_logged_at = now;
    } else {
      OP_LOG_DEBUG("{}", line);
    }
  }

  // Whether a connection attempt that failed before CONNACK with `rc` failed in TLS. Socket
  // errors (refused, unreachable: MOSQ_ERR_ERRNO) are not; with TLS on, anything else is: a
  // certificate the broker refuses shows up after the client's side of a TLS 1.3 handshake is
  // done, as a protocol error or a lost connection, often with nothing logged by libmosquitto.
  // libmosquitto reports some OpenSSL failures as MOSQ_ERR_ERRNO with errno EPROTO; a broker
  // that drops the connection during the handshake resets it (ECONNRESET).
  bool TlsFailure(int rc, int err = 0) const {
    if (!o.tls) return false;
    if (rc == MOSQ_ERR_ERRNO) return err == EPROTO || err == ECONNRESET;
    return rc == MOSQ_ERR_TLS || rc == MOSQ_ERR_PROTOCOL || rc == MOSQ_ERR_CONN_LOST ||
           !lib_error.empty();
  }

  // Classifies a refused CONNACK (MQTT 5 reason codes, or 3.1.1 return codes).
  static const char* ConnackReason(int rc, int version) {
    if (version == 5) {
      if (rc == MQTT_RC_BAD_USERNAME_OR_PASSWORD || rc == MQTT_RC_NOT_AUTHORIZED) return "auth";
    } else if (rc == 4 || rc == 5) {
      return "auth";
    }
    return "refused";
  }

  mosquitto* NewClient() {
    mosquitto* m = mosquitto_new(o.device_id.c_str(), true, this);
    if (!m) return nullptr;
    mosquitto_int_option(m, MOSQ_OPT_PROTOCOL_VERSION,
                         o.protocol_version == 5 ? MQTT_PROTOCOL_V5 : MQTT_PROTOCOL_V311);
    mosquitto_int_option(m, MOSQ_OPT_SEND_MAXIMUM, std::max(o.max_inflight, 1) + 2);
    mosquitto_int_option(m, MOSQ_OPT_TCP_NODELAY, 1);
    mosquitto_connect_v5_callback_set(m, &OnConnect);
    mosquitto_disconnect_v5_callback_set(m, &OnDisconnect);
    mosquitto_publish_v5_callback_set(m, &OnPublish);
    mosquitto_log_callback_set(m, &OnLog);
    if (!o.username.empty())
      mosquitto_username_pw_set(m, o.username.c_str(),
                                o.password.empty() ? nullptr : o.password.c_str());
    if (o.tls) {
      int rc = mosquitto_tls_set(m, o.ca_file.empty() ? nullptr : o.ca_file.c_str(),
                                 o.ca_file.empty() ? "/etc/ssl/certs" : nullptr,
                                 o.cert_file.empty() ? nullptr : o.cert_file.c_str(),
                                 o.key_file.empty() ? nullptr : o.key_file.c_str(), nullptr);
      if (rc != MOSQ_ERR_SUCCESS) {
        OP_LOG_WARN("telemetry: TLS setup failed: {}", mosquitto_strerror(rc));
        Failures("tls_setup").Inc();
        mosquitto_destroy(m);
        return nullptr;
      }
    }
    std::string will = EncodeStatus(o, "offline", "connection lost", 0);
    mosquitto_will_set(m, TopicFor(o, "status").c_str(), static_cast<int>(will.size()), will.data(),
                       1, true);
    return m;
  }

  // Waits up to `ms` unless stopping; returns false when stopping.
  bool SleepMs(int ms) {
    std::unique_lock<std::mutex> lk(mu);
    return !cv.wait_for(lk, std::chrono::milliseconds(ms), [&] { return stop; });
  }

  void Session(mosquitto* m) {
    // Connected (CONNACK ok). Everything handed out before is read again.
    q->Rewind();
    q->MarkLive();
    inflight.clear();
    early.clear();
    status_mids.clear();
    nack = false;
    std::string birth = EncodeStatus(o, "online", "", NowMs());
    int mid = 0;
    mosquitto_publish(m, &mid, TopicFor(o, "status").c_str(), static_cast<int>(birth.size()),
                      birth.data(), 1, true);
    status_mids.insert(mid);
    std::string topics[kNumStreams];
    for (int i = 0; i < kNumStreams; ++i)
      topics[i] = TopicFor(o, StreamName(static_cast<Stream>(i)));
    // Streams in the order they get a turn: events and gaps first, then metrics, then logs.
    const Stream order[] = {Stream::kEvents, Stream::kGaps, Stream::kMetrics, Stream::kLogs};
    size_t rr = 0;
    while (!Stopping() && !lost && !nack) {
      // Fill the window.
      int idle_streams = 0;
      while (static_cast<int>(inflight.size()) < o.max_inflight && idle_streams < kNumStreams) {
        Stream s = order[rr++ % kNumStreams];
        auto b = q->ReadNext(s, o.batch_max_records, o.batch_max_bytes);
        if (!b) {
          ++idle_streams;
          continue;
        }
        idle_streams = 0;
        if (b->records.empty()) continue;  // only expired records: already acked by the queue
        std::string payload = EncodeBatch(o, *b);
        int pmid = 0;
        int rc = mosquitto_publish(m, &pmid, topics[static_cast<int>(s)].c_str(),
                                   static_cast<int>(payload.size()), payload.data(), o.qos, false);
        if (rc != MOSQ_ERR_SUCCESS) {
          // Not sent: it will be read again after the reconnect (Rewind).
          OP_LOG_WARN("telemetry: publish failed: {}", mosquitto_strerror(rc));
          Failures("publish").Inc();
          lost = true;
          break;
        }
        published++;
        inflight[pmid] = {s, b->first_seq, b->records.size(), Clock::now()};
        if (early.erase(pmid)) Acked(pmid, 0);
        early.clear();
      }
      inflight_n = static_cast<int>(inflight.size());
      g_inflight.Set(inflight_n);
      if (lost) break;
      // Nothing to send or the window is full: wait for the network (PUBACKs) a little.
      bool busy = idle_streams < kNumStreams && static_cast<int>(inflight.size()) < o.max_inflight;
      int rc = mosquitto_loop(m, busy ? 0 : 20, 1);
      if (rc != MOSQ_ERR_SUCCESS) {
        lost = true;
        break;
      }
      if (!inflight.empty()) {
        auto oldest = Clock::now();
        for (auto& [k, f] : inflight) oldest = std::min(oldest, f.sent);
        if (Clock::now() - oldest > std::chrono::milliseconds(o.publish_timeout_ms)) {
          OP_LOG_WARN("telemetry: no PUBACK for {} ms; reconnecting", o.publish_timeout_ms);
          Failures("puback_timeout").Inc();
          break;
        }
      }
    }
    if (Stopping() && !lost) {
      // Graceful: retained offline status, then a clean DISCONNECT (no will).
      std::string bye = EncodeStatus(o, "offline", "shutdown", NowMs());
      int bmid = 0;
      mosquitto_publish(m, &bmid, TopicFor(o, "status").c_str(), static_cast<int>(bye.size()),
                        bye.data(), 1, true);
      status_mids.insert(bmid);
      auto until = Clock::now() + std::chrono::milliseconds(1000);
      while (Clock::now() < until && !lost && (!inflight.empty() || status_mids.count(bmid))) {
        if (mosquitto_loop(m, 20, 1) != MOSQ_ERR_SUCCESS) break;
      }
      mosquitto_disconnect(m);
      mosquitto_loop(m, 50, 1);
    }
  }

  void Run() {
    LibInit();
    int attempt = 0;
    std::mt19937_64 rng(std::random_device{}() ^ static_cast<uint64_t>(::getpid()));
    while (!Stopping()) {
      mosquitto* m = NewClient();
      bool ok = false;
      if (m) {
        connack = false;
        connack_rc = -1;
        lost = false;
        lib_error.clear();
        int rc = mosquitto_connect(m, o.host.c_str(), o.port, o.keepalive_s);
        const int connect_errno = errno;
        if (rc == MOSQ_ERR_SUCCESS) {
          auto until = Clock::now() + std::chrono::milliseconds(o.connect_timeout_ms);
          int lrc = MOSQ_ERR_SUCCESS;
          int loop_errno = 0;
          while (!connack && !lost && Clock::now() < until && !Stopping()) {
            lrc = mosquitto_loop(m, 50, 1);
            if (lrc != MOSQ_ERR_SUCCESS) {
              loop_errno = errno;
              break;
            }
          }
          ok = connack && connack_rc == 0;
          if (connack && connack_rc != 0) {
            ConnectFailed(ConnackReason(connack_rc, o.protocol_version),
                          std::string("the broker refused the connection: ") +
                              (o.protocol_version == 5 ? mosquitto_reason_string(connack_rc)
                                                       : mosquitto_connack_string(connack_rc)));
          } else if (!ok && !Stopping()) {
            const bool closed = connack || lost || lrc != MOSQ_ERR_SUCCESS;
            const int why = lrc == MOSQ_ERR_SUCCESS ? MOSQ_ERR_CONN_LOST : lrc;
            const bool tls_err = closed && TlsFailure(why, loop_errno);
            ConnectFailed(tls_err ? "tls" : "connect",
                          !closed ? "no CONNACK within " + std::to_string(o.connect_timeout_ms) +
                                        " ms"
                          : tls_err
                              ? std::string("TLS handshake failed (is the client certificate "
                                            "accepted by the broker?): ") +
                                    (why == MOSQ_ERR_ERRNO ? std::strerror(loop_errno)
                                                           : mosquitto_strerror(why))
                              : std::string("connection closed before CONNACK: ") +
                                    (why == MOSQ_ERR_ERRNO ? std::strerror(loop_errno)
                                                           : mosquitto_strerror(why)));
          }
        } else {
          const bool tls_err = TlsFailure(rc, connect_errno);
          const std::string what = rc == MOSQ_ERR_ERRNO ? std::string(std::strerror(connect_errno))
                                                        : std::string(mosquitto_strerror(rc));
          ConnectFailed(tls_err ? "tls" : "connect",
                        tls_err ? "TLS handshake failed (is the client certificate accepted by "
                                  "the broker?): " + what
                                : what);
        }
      }
      if (ok) {
        if (!last_logged.empty()) OP_LOG_INFO("telemetry: connected to {}:{}", o.host, o.port);
        last_logged.clear();
        attempt = 0;
        connects++;
        connected = true;
        g_connected.Set(1);
        MetricsRegistry::Global()
            .GetCounter("outpost_telemetry_mqtt_connects_total", "Telemetry MQTT connections",
                        {{"result", "ok"}})
            .Inc();
        Session(m);
        connected = false;
        g_connected.Set(0);
        inflight.clear();
        inflight_n = 0;
        g_inflight.Set(0);
      } else {
        connect_failures++;
        MetricsRegistry::Global()
            .GetCounter("outpost_telemetry_mqtt_connects_total", "Telemetry MQTT connections",
                        {{"result", "error"}})
            .Inc();
      }
      if (m) mosquitto_destroy(m);
      if (Stopping()) break;
      // Exponential backoff with jitter: uniform in [d/2, d].
      int64_t d = o.backoff_initial_ms;
      for (int i = 0; i < attempt && d < o.backoff_max_ms; ++i) d *= 2;
      d = std::min<int64_t>(d, o.backoff_max_ms);
      if (ok) d = std::min<int64_t>(d, 100);  // a session that worked: come back quickly
      std::uniform_int_distribution<int64_t> jitter(d / 2, std::max<int64_t>(d, 1));
      ++attempt;
      SleepMs(static_cast<int>(jitter(rng)));
    }
  }
};

Publisher::Publisher(DiskQueue* queue, MqttOptions options) : impl_(std::make_unique<Impl>()) {
  impl_->q = queue;
  impl_->o = std::move(options);
}

Publisher::~Publisher() { Stop(); }

Status Publisher::Start() {
  if (impl_->th.joinable()) return Status::Ok();
  if (impl_->o.device_id.empty()) return InvalidArgument("telemetry: device id is empty");
  if (impl_->o.qos < 0 || impl_->o.qos > 2) return InvalidArgument("telemetry: qos must be 0..2");
  if (impl_->o.protocol_version != 5 && impl_->o.protocol_version != 311)
    return InvalidArgument("telemetry: protocol_version must be 5 or 311");
  {
    std::lock_guard<std::mutex> lk(impl_->mu);
    impl_->stop = false;
  }
  impl_->th = std::thread([this] {
    SetThreadName("op-mqtt");
    impl_->Run();
  });
  return Status::Ok();
}

void Publisher::Stop() {
  {
    std::lock_guard<std::mutex> lk(impl_->mu);
    impl_->stop = true;
  }
  impl_->cv.notify_all();
  if (impl_->th.joinable()) impl_->th.join();
}

Publisher::Stats Publisher::stats() const {
  Stats s;
  s.connected = impl_->connected;
  s.connects = impl_->connects;
  s.connect_failures = impl_->connect_failures;
  s.published_batches = impl_->published;
  s.acked_batches = impl_->acked;
  s.acked_records = impl_->acked_records;
  s.inflight = impl_->inflight_n;
  return s;
}

const MqttOptions& Publisher::options() const { return impl_->o; }

}  // namespace outpost::telemetry
