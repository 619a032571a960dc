#include <mosquitto.h>
#include <mqtt_protocol.h>
#include <unistd.h>

#include <chrono>
#include <ctime>
#include <mutex>
#include <sstream>
#include <thread>

#include "outpost/core/log.h"
#include "outpost/telemetry/telemetry.h"

namespace outpost::telemetry {

Expected<DecodedMessage> DecodeMessage(std::string_view topic, std::string_view payload) {
  DecodedMessage m;
  m.topic = std::string(topic);
  std::vector<std::string> parts;
  size_t pos = 0;
  while (true) {
    size_t s = topic.find('/', pos);
    parts.emplace_back(
        topic.substr(pos, s == std::string_view::npos ? std::string_view::npos : s - pos));
    if (s == std::string_view::npos) break;
    pos = s + 1;
  }
  if (parts.size() < 4) return InvalidArgument("not a telemetry topic: " + m.topic);
  m.leaf = parts.back();
  m.device = parts[parts.size() - 2];
  m.fleet = parts[parts.size() - 3];
  if (m.leaf != "status" && !ParseStream(m.leaf))
    return InvalidArgument("unknown telemetry topic leaf: " + m.leaf);
  m.body = nlohmann::json::parse(payload.begin(), payload.end(), nullptr, false);
  if (m.body.is_discarded()) return InvalidArgument("payload is not JSON on " + m.topic);
  if (m.leaf != "status") {
    const auto& b = m.body;
    if (!b.is_object() || !b.contains("first_seq") || !b.contains("last_seq") ||
        !b.contains("records") || !b["records"].is_array())
      return InvalidArgument("not a telemetry batch on " + m.topic);
  }
  return m;
}

namespace {
std::string TimeText(int64_t ms) {
  std::time_t t = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  char b[64];
  std::strftime(b, sizeof b, "%Y-%m-%dT%H:%M:%S", &tm);
  char out[80];
  std::snprintf(out, sizeof out, "%s.%03dZ", b, static_cast<int>(ms % 1000));
  return out;
}

std::string Summary(const std::string& leaf, const nlohmann::json& d) {
  if (!d.is_object()) return d.dump();
  if (leaf == "metrics" && d.contains("metrics")) {
    std::ostringstream os;
    os << d["metrics"].size() << " series";
    size_t n = 0;
    for (auto& m : d["metrics"]) {
      if (n++ == 3) {
        os << " ...";
        break;
      }
      os << (n == 1 ? ": " : ", ") << m.value("name", "?") << "=" << m["value"].dump();
    }
    return os.str();
  }
  if (leaf == "events")
    return d.value("type", "?") + " " + d.value("fields", nlohmann::json::object()).dump();
  if (leaf == "logs") return "[" + d.value("level", "?") + "] " + d.value("message", "");
  if (leaf == "gaps") {
    std::string s = d.value("stream", "?") + " lost " + std::to_string(d.value("count", 0)) + " (" +
                    d.value("reason", "?") + ")";
    if (d.contains("first_seq")) s += " seq " + d["first_seq"].dump() + ".." + d["last_seq"].dump();
    return s;
  }
  return d.dump();
}
}  // namespace

std::string FormatMessage(const DecodedMessage& m) {
  std::ostringstream os;
  if (m.leaf == "status" || m.leaf.empty()) {
    os << m.device << " status " << m.body.dump() << "\n";
    return os.str();
  }
  for (auto& r : m.body["records"]) {
    int64_t ts = r.value("ts", int64_t{0});
    os << m.device << " " << m.leaf << " #" << r.value("seq", uint64_t{0}) << " " << TimeText(ts)
       << " " << Summary(m.leaf, r.contains("data") ? r["data"] : nlohmann::json()) << "\n";
  }
  return os.str();
}

namespace {
struct TailCtx {
  std::mutex mu;
  std::vector<std::pair<std::string, std::string>> inbox;
  bool connected = false, subscribed = false, failed = false;
  std::string topic;
};
}  // namespace

Status Tail(const TailOptions& to, const std::function<bool(const DecodedMessage&)>& on_message,
            const std::atomic<bool>* stop) {
  static std::once_flag once;
  std::call_once(once, [] { mosquitto_lib_init(); });
  TailCtx ctx;
  ctx.topic =
      !to.topic.empty() ? to.topic : to.mqtt.topic_prefix + "/" + to.fleet + "/" + to.device + "/#";
  if (to.persistent_session && to.client_id.empty())
    return InvalidArgument("a persistent session needs a client id");
  std::string id =
      to.client_id.empty() ? "outpost-tail-" + std::to_string(::getpid()) : to.client_id;
  mosquitto* m = mosquitto_new(id.c_str(), !to.persistent_session, &ctx);
  if (!m) return Internal("mosquitto_new failed");
  mosquitto_int_option(m, MOSQ_OPT_PROTOCOL_VERSION,
                       to.mqtt.protocol_version == 5 ? MQTT_PROTOCOL_V5 : MQTT_PROTOCOL_V311);
  if (!to.mqtt.username.empty())
    mosquitto_username_pw_set(m, to.mqtt.username.c_str(),
                              to.mqtt.password.empty() ? nullptr : to.mqtt.password.c_str());
  if (to.mqtt.tls) {
    mosquitto_tls_set(m, to.mqtt.ca_file.empty() ? nullptr : to.mqtt.ca_file.c_str(),
                      to.mqtt.ca_file.empty() ? "/etc/ssl/certs" : nullptr,
                      to.mqtt.cert_file.empty() ? nullptr : to.mqtt.cert_file.c_str(),
                      to.mqtt.key_file.empty() ? nullptr : to.mqtt.key_file.c_str(), nullptr);
  }
  mosquitto_connect_callback_set(m, [](mosquitto* mm, void* ud, int rc) {
    auto* c = static_cast<TailCtx*>(ud);
    if (rc != 0) {
      c->failed = true;
      return;
    }
    c->connected = true;
    mosquitto_subscribe(mm, nullptr, c->topic.c_str(), 1);
  });
  mosquitto_subscribe_callback_set(m, [](mosquitto*, void* ud, int, int, const int*) {
    static_cast<TailCtx*>(ud)->subscribed = true;
  });
  mosquitto_message_callback_set(m, [](mosquitto*, void* ud, const mosquitto_message* msg) {
    auto* c = static_cast<TailCtx*>(ud);
    c->inbox.emplace_back(msg->topic,
                          std::string(static_cast<const char*>(msg->payload), msg->payloadlen));
  });
  mosquitto_property* props = nullptr;
  if (to.persistent_session && to.mqtt.protocol_version == 5)
    mosquitto_property_add_int32(&props, MQTT_PROP_SESSION_EXPIRY_INTERVAL, 86400);
  int rc = mosquitto_connect_bind_v5(m, to.mqtt.host.c_str(), to.mqtt.port, 30, nullptr, props);
  mosquitto_property_free_all(&props);
  if (rc != MOSQ_ERR_SUCCESS) {
    mosquitto_destroy(m);
    return Unavailable("cannot connect to " + to.mqtt.host + ":" + std::to_string(to.mqtt.port) +
                       ": " + mosquitto_strerror(rc));
  }
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(to.timeout_ms);
  Status result;
  bool go = true;
  while (go) {
    if (stop && stop->load()) break;
    if (to.timeout_ms > 0 && std::chrono::steady_clock::now() > deadline) break;
    rc = mosquitto_loop(m, 50, 1);
    if (rc != MOSQ_ERR_SUCCESS) {
      // Reconnect (the broker went away): keep tailing.
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      mosquitto_reconnect(m);
      continue;
    }
    if (ctx.failed) {
      result = Unavailable("broker refused the subscriber connection");
      break;
    }
    std::vector<std::pair<std::string, std::string>> msgs;
    msgs.swap(ctx.inbox);
    for (auto& [t, p] : msgs) {
      auto d = DecodeMessage(t, p);
      DecodedMessage dm;
      if (d.ok()) {
        dm = std::move(*d);
      } else {
        dm.topic = t;
        dm.body = {{"raw", p}, {"error", d.status().message()}};
      }
      if (!on_message(dm)) {
        go = false;
        break;
      }
    }
  }
  mosquitto_disconnect(m);
  mosquitto_destroy(m);
  return result;
}

}  // namespace outpost::telemetry
