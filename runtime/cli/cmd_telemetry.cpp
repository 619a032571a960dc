// outpost telemetry tail: subscribes to a broker and prints the telemetry records it receives.
#include <signal.h>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <string>

#include "args.h"
#include "outpost/config/device_config.h"
#include "outpost/telemetry/telemetry.h"

namespace outpost::cli {

namespace {
const char* kTelemetryUsage =
    "usage: outpost telemetry tail --broker mqtt://HOST[:PORT] [options]\n"
    "\n"
    "Subscribes to <prefix>/<fleet>/<device>/# and prints each telemetry record it receives\n"
    "(metrics, events, logs, gap markers, status), one line each. Keeps going when the broker\n"
    "goes away and comes back.\n"
    "  --broker URL           mqtt://host[:port] or mqtts://host[:port] (required)\n"
    "  --fleet F              only this fleet (default: all)\n"
    "  --device D             only this device (default: all)\n"
    "  --topic-prefix P       first topic level (default: outpost)\n"
    "  --topic T              subscribe to this topic filter instead, e.g. outpost/+/+/events\n"
    "  --json                 one JSON object per line: "
    "{\"fleet\",\"device\",\"stream\",\"seq\",\"ts\",\n"
    "                         \"data\"}; status messages have stream \"status\" and no seq\n"
    "  --count N              exit 0 after N records (a status message counts as one);\n"
    "                         exit 1 if the timeout comes first\n"
    "  --timeout-s S          stop after S seconds (default: none)\n"
    "  --mqtt-version V       5 (default) or 3.1.1\n"
    "  --ca-file FILE         CA bundle for mqtts:// (default: the system's)\n"
    "  --cert-file FILE       client certificate (with --key-file)\n"
    "  --key-file FILE        client key\n"
    "  --username U           MQTT user name\n"
    "  --password-file FILE   file holding the MQTT password\n"
    "  --client-id ID         MQTT client id (default: outpost-tail-<pid>)\n"
    "  --persistent           keep the session on the broker while disconnected, so that what\n"
    "                         is published meanwhile arrives on reconnect (needs --client-id)\n"
    "Interrupt (Ctrl-C) stops it.\n";

std::atomic<bool> g_stop{false};
void OnSignal(int) { g_stop = true; }

// One JSON line per record of a decoded message.
void PrintJson(const telemetry::DecodedMessage& m, long long* printed, long long limit) {
  auto line = [&](nlohmann::json j) {
    if (limit > 0 && *printed >= limit) return;
    std::printf("%s\n", j.dump().c_str());
    ++*printed;
  };
  if (m.leaf.empty() || m.leaf == "status") {
    line({{"fleet", m.fleet},
          {"device", m.device},
          {"stream", m.leaf.empty() ? "unknown" : "status"},
          {"topic", m.topic},
          {"data", m.body}});
    return;
  }
  for (const auto& r : m.body["records"]) {
    line({{"fleet", m.fleet},
          {"device", m.device},
          {"stream", m.leaf},
          {"seq", r.value("seq", uint64_t{0})},
          {"ts", r.value("ts", int64_t{0})},
          {"key", m.body.value("key", "")},
          {"data", r.contains("data") ? r["data"] : nlohmann::json()}});
  }
}

void PrintText(const telemetry::DecodedMessage& m, long long* printed, long long limit) {
  std::string text = telemetry::FormatMessage(m);
  size_t pos = 0;
  while (pos < text.size() && (limit <= 0 || *printed < limit)) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string::npos) nl = text.size();
    std::printf("%s\n", text.substr(pos, nl - pos).c_str());
    ++*printed;
    pos = nl + 1;
  }
}

int Tail(int argc, char** argv) {
  Args a;
  const std::vector<FlagSpec> specs = {
      {"--broker"},        {"--fleet"},     {"--device"},    {"--topic-prefix"},
      {"--json", false},   {"--count"},     {"--timeout-s"}, {"--mqtt-version"},
      {"--ca-file"},       {"--cert-file"}, {"--key-file"},  {"--username"},
      {"--password-file"}, {"--client-id"}, {"--topic"},     {"--persistent", false}};
  if (!a.Parse(argc, argv, 3, specs, 0, 0)) return Usage(kTelemetryUsage, a.error());
  if (a.help()) return std::fputs(kTelemetryUsage, stdout), 0;
  if (!a.Has("--broker")) return Usage(kTelemetryUsage, "--broker is required");
  long long count = 0, timeout_s = 0;
  if (!a.GetInt("--count", 0, 0, 1000000000, &count)) return Usage(kTelemetryUsage, a.error());
  if (!a.GetInt("--timeout-s", 0, 0, 86400 * 365, &timeout_s))
    return Usage(kTelemetryUsage, a.error());
  // The connection settings go through the same code as the device config's.
  config::TelemetryConfig cfg;
  cfg.broker_url = a.Get("--broker");
  cfg.tls_ca_file = a.Get("--ca-file");
  cfg.tls_cert_file = a.Get("--cert-file");
  cfg.tls_key_file = a.Get("--key-file");
  if (cfg.tls_cert_file.empty() != cfg.tls_key_file.empty())
    return Usage(kTelemetryUsage, "--cert-file and --key-file go together");
  cfg.username = a.Get("--username");
  cfg.password_file = a.Get("--password-file");
  cfg.device_id = "tail";
  const std::string v = a.Get("--mqtt-version", "5");
  if (v == "5") {
    cfg.mqtt_version = 5;
  } else if (v == "3.1.1" || v == "311") {
    cfg.mqtt_version = 311;
  } else {
    return Usage(kTelemetryUsage, "--mqtt-version must be 5 or 3.1.1, got '" + v + "'");
  }
  auto mo = telemetry::MqttOptionsFromConfig(cfg);
  if (!mo.ok()) {
    std::fprintf(stderr, "outpost: %s\n", mo.status().message().c_str());
    return 2;
  }
  telemetry::TailOptions to;
  to.mqtt = *mo;
  to.mqtt.topic_prefix = a.Get("--topic-prefix", "outpost");
  to.fleet = a.Get("--fleet", "+");
  to.device = a.Get("--device", "+");
  to.client_id = a.Get("--client-id");
  to.topic = a.Get("--topic");
  to.persistent_session = a.Has("--persistent");
  if (to.persistent_session && to.client_id.empty())
    return Usage(kTelemetryUsage, "--persistent needs --client-id");
  if (a.Has("--topic") && to.topic.empty()) return Usage(kTelemetryUsage, "--topic is empty");
  to.timeout_ms = static_cast<int>(std::min<long long>(timeout_s * 1000, 1LL << 30));
  for (const std::string* level : {&to.fleet, &to.device, &to.mqtt.topic_prefix})
    if (level->empty() || level->find_first_of("/#") != std::string::npos ||
        (level->find('+') != std::string::npos && *level != "+"))
      return Usage(kTelemetryUsage,
                   "--fleet, --device and --topic-prefix are single topic "
                   "levels, got '" +
                       *level + "'");

  struct sigaction sa {};
  sa.sa_handler = OnSignal;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);

  const bool json = a.Has("--json");
  long long printed = 0;
  Status s = telemetry::Tail(
      to,
      [&](const telemetry::DecodedMessage& m) {
        if (json)
          PrintJson(m, &printed, count);
        else
          PrintText(m, &printed, count);
        std::fflush(stdout);
        return count == 0 || printed < count;
      },
      &g_stop);
  if (!s.ok()) {
    std::fprintf(stderr, "outpost: telemetry tail: %s\n", s.ToString().c_str());
    return 1;
  }
  if (count > 0 && printed < count) {
    std::fprintf(stderr, "outpost: telemetry tail: %lld of %lld records before the timeout\n",
                 printed, count);
    return 1;
  }
  return 0;
}
}  // namespace

int CmdTelemetry(int argc, char** argv) {
  if (argc < 3) return Usage(kTelemetryUsage, "no telemetry command given (try 'tail')");
  const std::string sub = argv[2];
  if (sub == "--help" || sub == "-h") return std::fputs(kTelemetryUsage, stdout), 0;
  if (sub == "tail") return Tail(argc, argv);
  return Usage(kTelemetryUsage, "unknown telemetry command '" + sub + "'");
}

}  // namespace outpost::cli
