// The agent daemon: RunOnce in a loop with its timing, and the reboot (ota/daemon.h).
#include "outpost/ota/daemon.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <sys/wait.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <thread>

#include "http_client.h"
#include "outpost/core/log.h"
#include "outpost/core/metrics.h"
#include "outpost/ota/gate_probe.h"

namespace outpost::ota {

namespace fs = std::filesystem;

namespace {

using Clock = std::chrono::steady_clock;

void CountReboot(const char* outcome) {
  MetricsRegistry::Global()
      .GetCounter("outpost_ota_reboots_total",
                  "Reboots by outcome: issued, deferred (window, busy), failed",
                  {{"outcome", outcome}})
      .Inc();
}

// numeric IPv4 of a host name or literal; "" when it does not resolve.
std::string Ipv4Of(const std::string& host) {
  addrinfo hints{};
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (getaddrinfo(host.c_str(), nullptr, &hints, &res) != 0 || !res) return "";
  char buf[64] = {};
  auto* a = reinterpret_cast<sockaddr_in*>(res->ai_addr);
  inet_ntop(AF_INET, &a->sin_addr, buf, sizeof buf);
  freeaddrinfo(res);
  return buf;
}

int LocalSecondOfDay() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  localtime_r(&t, &tm);
  return tm.tm_hour * 3600 + tm.tm_min * 60 + tm.tm_sec;
}

class Daemon {
 public:
  Daemon(const DaemonConfig& cfg, DaemonControl& c)
      : cfg_(cfg), c_(c), rng_(std::random_device{}()) {}

  int Run() {
    auto loaded = StateFile(cfg_.agent.state_dir).Load();
    const bool in_progress = !loaded.ok() || (*loaded && InProgress((*loaded)->state));
    double delay = in_progress ? 0 : cfg_.jitter_s * U();
    OP_LOG_INFO("ota agent: started; {} in {:.0f} s (interval {:.0f} s + up to {:.0f} s jitter, "
                "maintenance window {})",
                in_progress ? "resuming" : "first check", delay, cfg_.check_interval_s,
                cfg_.jitter_s, WindowText());
    int retries = 0;
    while (Sleep(delay)) {
      c_.check_now = false;
      StepResult r = RunOnce(cfg_.agent);
      // Model refs on the same schedule, while no OS cycle is in progress.
      const std::string model_retry = r.outcome != Outcome::kRebootRequested &&
                                              !InProgress(r.record.state)
                                          ? CheckModels()
                                          : "";
      if (!model_retry.empty() && !r.retry) r.message = model_retry;
      if (r.outcome == Outcome::kRebootRequested) {
        retries = 0;
        delay = Reboot(r);
      } else if ((r.retry || !model_retry.empty()) && retries < cfg_.retry_max) {
        ++retries;
        delay = RetryDelayS(retries, cfg_.retry_base_s, cfg_.retry_max_delay_s, U());
        MetricsRegistry::Global()
            .GetCounter("outpost_ota_agent_retries_total",
                        "Agent steps retried with backoff after a transient failure")
            .Inc();
        OP_LOG_WARN("ota agent: retry {}/{} in {:.1f} s: {}", retries, cfg_.retry_max, delay,
                    r.message);
      } else {
        if (r.retry || !model_retry.empty())
          OP_LOG_WARN("ota agent: {} retries spent; next check at the interval", retries);
        retries = 0;
        delay = CheckDelayS(cfg_.check_interval_s, cfg_.jitter_s, U());
        OP_LOG_INFO("ota agent: next check in {:.0f} s", delay);
      }
    }
    OP_LOG_INFO("ota agent: stopping");
    return 0;
  }

 private:
  static bool InProgress(State s) {
    return s != State::kIdle && s != State::kCommitted && s != State::kRolledBack &&
           s != State::kFailed;
  }

  double U() { return std::uniform_real_distribution<double>(0.0, 1.0)(rng_); }

  // One CheckModel() per ota.models name. Returns the messages of the checks that stopped on
  // something that may pass (kError), joined; empty when none did.
  std::string CheckModels() {
    std::string retry;
    for (const auto& name : cfg_.models) {
      if (c_.stop) break;
      const ModelStepResult m = CheckModel(cfg_.model_update, name);
      if (m.outcome != ModelOutcome::kUpToDate && cfg_.on_model_update)
        cfg_.on_model_update(name, m);
      if (m.outcome == ModelOutcome::kError)
        retry += (retry.empty() ? "model '" : "; model '") + name + "': " + m.message;
    }
    return retry;
  }

  std::string WindowText() const {
    if (cfg_.window.start_min < 0) return std::string("always");
    char b[32];
    std::snprintf(b, sizeof b, "%02d:%02d-%02d:%02d", cfg_.window.start_min / 60,
                  cfg_.window.start_min % 60, cfg_.window.end_min / 60, cfg_.window.end_min % 60);
    return b;
  }

  // Waits `s` seconds, less on SIGUSR1; false once stopped.
  bool Sleep(double s) {
    const auto until = Clock::now() + std::chrono::duration<double>(s);
    while (!c_.stop && !c_.check_now && Clock::now() < until)
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    return !c_.stop;
  }

  // Waits for outpostd to have nothing in flight, at most idle_wait_s. True when idle.
  bool WaitIdle() {
    const auto until = Clock::now() + std::chrono::duration<double>(cfg_.idle_wait_s);
    std::string last;
    for (;;) {
      auto n = InFlight(cfg_.agent.outpostd_host, cfg_.agent.outpostd_port, 2000);
      if (n.ok() && *n == 0) return true;
      const bool first = last.empty();
      last = n.ok() ? std::to_string(*n) + " inference requests in flight" : n.status().message();
      if (first)
        OP_LOG_INFO("ota agent: outpostd: {}; waiting up to {:.0f} s before the reboot", last,
                    cfg_.idle_wait_s);
      if (c_.stop || Clock::now() >= until) break;
      std::this_thread::sleep_for(std::chrono::duration<double>(cfg_.idle_poll_s));
    }
    OP_LOG_WARN("ota agent: outpostd not idle after {:.0f} s ({}); reboot deferred",
                cfg_.idle_wait_s, last);
    return false;
  }

  // Asks outpostd to start or end the handoff. A failure is logged and counted (StartHandoff)
  // and changes nothing else: the reboot logic goes on without it.
  void Handoff(bool on) {
    const auto& a = cfg_.agent;
    const double ttl_s = cfg_.idle_wait_s + cfg_.handoff_margin_s;
    Status s = on ? StartHandoff(a.outpostd_host, a.outpostd_port, "reboot", ttl_s, 2000)
                  : EndHandoff(a.outpostd_host, a.outpostd_port, 2000);
    if (!s.ok())
      OP_LOG_WARN("ota agent: outpostd's handoff could not be {}: {}", on ? "started" : "ended",
                  s.message());
    else if (on)
      OP_LOG_INFO(
          "ota agent: outpostd hands requests of models with fallback endpoints to them "
          "(for up to {:.0f} s)",
          ttl_s);
    else
      OP_LOG_INFO("ota agent: outpostd's handoff ended (no reboot now)");
  }

  // The reboot a step asked for; returns the delay before the next step.
  double Reboot(const StepResult& r) {
    // Into a new release only inside the window; back from a failed one at once.
    const bool rollback = r.record.state == State::kRolledBack;
    if (!rollback) {
      const int wait = SecondsUntilWindow(cfg_.window, LocalSecondOfDay());
      if (wait > 0) {
        CountReboot("deferred-window");
        OP_LOG_INFO("ota agent: {} staged; reboot at the maintenance window {} (in {} s)",
                    r.record.target_commit, WindowText(), wait);
        return std::min<double>(wait, cfg_.busy_retry_s);
      }
    }
    // Requests of models with fallback endpoints go there from now on, so that the local ones
    // drain while clients keep being answered; the TTL ends it if nothing below does.
    Handoff(true);
    if (!WaitIdle()) {
      CountReboot("deferred-busy");
      Handoff(false);
      return cfg_.busy_retry_s;
    }
    OP_LOG_WARN("ota agent: rebooting ({}): {}", rollback ? "rollback" : "update", r.message);
    const int rc = std::system(cfg_.reboot_command.c_str());
    if (rc == -1 || !WIFEXITED(rc) || WEXITSTATUS(rc) != 0) {
      CountReboot("failed");
      OP_LOG_ERROR("ota agent: the reboot command '{}' failed (status {})", cfg_.reboot_command,
                   rc);
      Handoff(false);
      return RetryDelayS(1, cfg_.retry_base_s, cfg_.retry_max_delay_s, U());
    }
    CountReboot("issued");
    // The shutdown stops this process; if it does not come, the reboot did not happen.
    if (!Sleep(cfg_.reboot_wait_s)) return 0;
    if (c_.check_now) return 0;
    Handoff(false);
    CountReboot("failed");
    OP_LOG_ERROR("ota agent: still running {:.0f} s after '{}'; trying again",
                 cfg_.reboot_wait_s, cfg_.reboot_command);
    return 0;
  }

  const DaemonConfig& cfg_;
  DaemonControl& c_;
  std::mt19937_64 rng_;
};

}  // namespace

Expected<int64_t> InFlight(const std::string& host, uint16_t port, int timeout_ms) {
  auto reply = HttpGet(host, port, "/metrics", timeout_ms);
  if (!reply.ok()) {
    if (reply.status().message().find(std::strerror(ECONNREFUSED)) != std::string::npos)
      return int64_t{0};  // nothing listens: no outpostd, nothing in flight
    return reply.status();
  }
  if (reply->status != 200)
    return Unavailable("GET /metrics answered " + std::to_string(reply->status));
  std::istringstream in(reply->body);
  std::string line;
  const std::string key = "outpost_serve_in_flight ";
  while (std::getline(in, line))
    if (line.compare(0, key.size(), key) == 0)
      return static_cast<int64_t>(std::strtod(line.c_str() + key.size(), nullptr));
  return Unavailable("outpostd's /metrics has no outpost_serve_in_flight");
}

namespace {

Status HandoffCall(const std::string& host, uint16_t port, const char* call,
                   const std::string& method, const std::string& body, int timeout_ms) {
  auto reply = internal::Http(host, port, method, "/outpost/v1/handoff", body, timeout_ms);
  Status s = Status::Ok();
  if (!reply.ok())
    s = Unavailable("outpostd at " + host + ":" + std::to_string(port) + ": " +
                    reply.status().message());
  else if (reply->status != 200)
    s = Unavailable(method + " /outpost/v1/handoff answered " + std::to_string(reply->status) +
                    ": " + reply->body.substr(0, 300));
  MetricsRegistry::Global()
      .GetCounter("outpost_ota_handoff_calls_total",
                  "Handoff calls to outpostd before a reboot (start) and after it was called off "
                  "(end), by outcome",
                  {{"call", call}, {"outcome", s.ok() ? "ok" : "failed"}})
      .Inc();
  return s;
}

// ota.models: model-only updates on the agent's schedule, through the agent's remote and keys.
Status ModelUpdatesFromDevice(const config::DeviceConfig& dc, const AgentConfig& a,
                              DaemonConfig* d) {
  const config::OtaConfig& o = dc.ota;
  d->models = o.models;
  if (o.models.empty()) return Status::Ok();
  if (dc.models.manifest_dir.empty())
    return InvalidArgument(
        "ota.models needs models.manifest_dir: the agent writes each updated model's manifest "
        "where outpostd reads them");
  ModelUpdateConfig& m = d->model_update;
  m.source.repo = o.models_dir + "/.repo";
  m.source.remote = "outpost";
  m.remote_url = o.remote_url;
  m.key_files = a.key_files;
  m.ref_prefix = o.model_ref_prefix;
  m.models_root = o.models_dir;
  m.manifest_dir = dc.models.manifest_dir;
  m.state_dir = o.state_dir;
  m.outpostd_host = a.outpostd_host;
  m.outpostd_port = a.outpostd_port;
  m.download = a.download;  // the OS update's rate limit and delta downloads
  return Status::Ok();
}

}  // namespace

Status StartHandoff(const std::string& host, uint16_t port, const std::string& reason, double ttl_s,
                    int timeout_ms) {
  const std::string body = nlohmann::json{{"reason", reason}, {"ttl_s", ttl_s}}.dump();
  return HandoffCall(host, port, "start", "POST", body, timeout_ms);
}

Status EndHandoff(const std::string& host, uint16_t port, int timeout_ms) {
  return HandoffCall(host, port, "end", "DELETE", "", timeout_ms);
}

Expected<DaemonConfig> DaemonConfigFromDevice(const config::DeviceConfig& dc) {
  const config::OtaConfig& o = dc.ota;
  DaemonConfig d;
  AgentConfig& a = d.agent;
  a.state_dir = o.state_dir;
  a.remote_url = o.remote_url;
  if (!o.ref.empty()) a.sysroot.ref = o.ref;
  if (!o.trusted_keys_dir.empty()) {
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(o.trusted_keys_dir, ec))
      if (e.is_regular_file()) a.key_files.push_back(e.path().string());
    if (ec)
      return NotFound("ota.trusted_keys_dir '" + o.trusted_keys_dir + "': " + ec.message());
    std::sort(a.key_files.begin(), a.key_files.end());
    if (a.key_files.empty())
      return InvalidArgument("ota.trusted_keys_dir '" + o.trusted_keys_dir + "' holds no key");
  }
  a.limits.max_boots = static_cast<uint32_t>(o.max_boot_attempts);
  a.download.rate_limit_kbps = o.rate_limit_kbps;
  a.gate_deadline_ms = o.health_deadline_s * 1000.0;
  a.gate_runs = o.health_gate_runs;
  // outpostd on this device: a wildcard listen address is reached on loopback.
  std::string host = dc.server.listen_address;
  if (host.empty() || host == "0.0.0.0" || host == "::" || host == "::1") host = "127.0.0.1";
  a.outpostd_host = Ipv4Of(host);
  if (a.outpostd_host.empty())
    return InvalidArgument("server.listen_address '" + dc.server.listen_address +
                           "' has no IPv4 address (the health gate speaks IPv4)");
  if (dc.server.port == 0)
    return InvalidArgument("server.port is 0 (any free port): the agent cannot find outpostd");
  a.outpostd_port = static_cast<uint16_t>(dc.server.port);
  // The gate's broker check: telemetry's broker when telemetry is on.
  if (dc.telemetry.enabled && !dc.telemetry.broker_url.empty()) {
    const std::string& u = dc.telemetry.broker_url;
    const bool tls = u.rfind("mqtts://", 0) == 0;
    std::string hp = u.substr(u.find("://") + 3);
    if (auto slash = hp.find('/'); slash != std::string::npos) hp.resize(slash);
    int port = tls ? 8883 : 1883;
    if (auto colon = hp.rfind(':'); colon != std::string::npos && hp.find(']') == std::string::npos) {
      port = std::atoi(hp.c_str() + colon + 1);
      hp.resize(colon);
    }
    a.broker_host = Ipv4Of(hp);
    if (a.broker_host.empty())
      return InvalidArgument("telemetry.broker_url '" + u +
                             "': no IPv4 address for its host (the gate checks the broker)");
    a.broker_port = static_cast<uint16_t>(port);
  }
  d.check_interval_s = o.check_interval_s;
  d.jitter_s = o.jitter_s;
  d.window = {o.maintenance_start_min, o.maintenance_end_min};
  d.reboot_command = o.reboot_command;
  d.idle_wait_s = o.idle_wait_s;
  d.retry_max = o.retry_max;
  d.retry_base_s = o.retry_base_s;
  d.retry_max_delay_s = o.retry_max_delay_s;
  OP_RETURN_IF_ERROR(ModelUpdatesFromDevice(dc, a, &d));
  return d;
}

int RunDaemon(const DaemonConfig& cfg, DaemonControl& control) {
  return Daemon(cfg, control).Run();
}

}  // namespace outpost::ota
