// outpostd: the on-device serving daemon. Reads the device config and model manifests, loads and
// warms the models, serves the KServe V2 / Open Inference Protocol over HTTP, and talks to
// systemd (READY=1 once the models are loaded, WATCHDOG=1 from a liveness probe of the serving
// path, STATUS= lines, graceful drain on SIGTERM, reload on SIGHUP or changed manifests).
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/sinks/systemd_sink.h>
#include <sys/socket.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "outpost/config/device_config.h"
#include "outpost/config/manifest.h"
#include "outpost/core/log.h"
#include "outpost/core/metrics.h"
#include "outpost/route/forwarder.h"
#include "outpost/serve/http/server.h"
#include "outpost/serve/registry.h"
#include "outpost/serve/observer.h"
#include "outpost/serve/service.h"
#include "outpost/telemetry/telemetry.h"

namespace {

namespace fs = std::filesystem;
using namespace outpost;
using Clock = std::chrono::steady_clock;

constexpr const char* kUsage =
    "usage: outpostd [--config FILE] [--listen ADDR:PORT] [--manifests DIR] [--models DIR]\n"
    "\n"
    "Serves ONNX models over the KServe V2 / Open Inference Protocol (HTTP/1.1).\n"
    "  --config FILE      device config (YAML; keys in config/README.md); default: built-in\n"
    "  --listen ADDR:PORT listen address, overrides server.listen_address/port\n"
    "  --manifests DIR    InferenceService manifests, overrides models.manifest_dir\n"
    "  --models DIR       model files, overrides models.model_dir\n"
    "  --version          print the version\n"
    "Without a config, serves the bundled example models (Iris, digits) on 127.0.0.1:8080.\n"
    "Signals: SIGHUP reloads the manifests; SIGTERM/SIGINT drain and exit.\n";

struct Args {
  std::string config, listen, manifests, models;
};

int Usage(const std::string& error) {
  std::fprintf(stderr, "outpostd: %s\n%s", error.c_str(), kUsage);
  return 2;
}

// Where the bundled example models and manifests are: $OUTPOST_DATA_DIR, an installed
// share/outpost next to the binary, or the source tree this binary was built from.
std::string BundledDir(const char* sub) {
  if (const char* env = std::getenv("OUTPOST_DATA_DIR")) return (fs::path(env) / sub).string();
  std::error_code ec;
  fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    fs::path installed = exe.parent_path().parent_path() / "share" / "outpost" / sub;
    if (fs::is_directory(installed, ec)) return installed.string();
  }
  return (fs::path(OUTPOST_SOURCE_DIR) /
          (std::string(sub) == "models" ? "tests/models" : "config/examples/manifests"))
      .string();
}

void SetupLogging(const config::LogConfig& log) {
  // Under systemd (journald attached to stderr, or started as a unit) log to the journal with
  // priorities; else to stderr.
  const bool journal = std::getenv("JOURNAL_STREAM") || std::getenv("INVOCATION_ID");
  std::shared_ptr<spdlog::logger> logger;
  if (journal) {
    logger = std::make_shared<spdlog::logger>(
        "outpost", std::make_shared<spdlog::sinks::systemd_sink_mt>("outpostd"));
  } else {
    logger = spdlog::stderr_color_mt("outpost");
  }
  const char* env = std::getenv("OUTPOST_LOG_LEVEL");
  logger->set_level(spdlog::level::from_str(env ? env : log.level));
  if (log.format == "json")
    logger->set_pattern(R"({"time":"%Y-%m-%dT%H:%M:%S.%e%z","level":"%l","msg":"%v"})");
  spdlog::set_default_logger(logger);
}

void Notify(const std::string& s) { sd_notify(0, s.c_str()); }

// ---- telemetry (issue #5) ----

// What the serving path tells telemetry. Model lifecycle events become one event each; the
// routing decision of every request is counted per (model, version, decision) and sent as one
// "routing" event per aggregate interval, refusals for overload (queue full, deadline) also as
// "overload" events; with telemetry.input_stats the inputs of accepted requests feed the drift
// statistics. Nothing here waits: events are posted to the service's bounded in-memory inbox,
// counts are added under a short lock.
class TelemetryObserver : public serve::ServiceObserver {
 public:
  explicit TelemetryObserver(telemetry::TelemetryService* t)
      : t_(t), stats_(t->input_stats_enabled()) {}

  void OnModelEvent(const serve::ModelEventInfo& i) override {
    nlohmann::json f = {{"model", i.model}, {"version", i.version}};
    switch (i.event) {
      case serve::ModelEvent::kLoaded:
      case serve::ModelEvent::kReloaded:
        f["path"] = i.detail;
        f["load_seconds"] = i.load_seconds;
        break;
      case serve::ModelEvent::kLoadFailed:
        f["error"] = i.detail;
        f["load_seconds"] = i.load_seconds;
        break;
      case serve::ModelEvent::kUnloaded:
        f["reason"] = i.detail;
        break;
    }
    t_->EmitAsync(serve::ModelEventName(i.event), std::move(f));
  }
  void OnServedLocally(std::string_view model, std::string_view version) override {
    t_->Count("routing", {{"model", model}, {"version", version}, {"decision", "local"}});
  }
  void OnForwarded(std::string_view model) override {
    t_->Count("routing", {{"model", model}, {"decision", "fallback"}});
  }
  void OnRefused(std::string_view model, std::string_view version, serve::Refusal why) override {
    const std::string_view reason = serve::RefusalName(why);
    t_->Count(
        "routing",
        {{"model", model}, {"version", version}, {"decision", "refused"}, {"reason", reason}});
    if (why != serve::Refusal::kDraining)
      t_->Count("overload", {{"model", model}, {"version", version}, {"reason", reason}});
  }
  void OnInputs(std::string_view model, std::string_view version,
                const std::vector<std::pair<std::string, Tensor>>& inputs) override {
    if (stats_) t_->ObserveInputs(model, version, inputs);
  }

 private:
  telemetry::TelemetryService* t_;
  const bool stats_;
};

// Creates and starts telemetry when enabled; its log sink joins the logger before any thread
// that logs exists. A failure (unusable buffer directory, unreadable password file) is logged
// and counted and outpostd serves without telemetry: it never keeps the daemon from starting.
// Start() does not wait for the broker (the publisher connects in the background, with backoff).
std::unique_ptr<telemetry::TelemetryService> StartTelemetry(const config::TelemetryConfig& cfg) {
  if (!cfg.enabled) return nullptr;
  auto fail = [](const Status& s) {
    MetricsRegistry::Global()
        .GetCounter("outpost_telemetry_start_failures_total",
                    "Times telemetry could not be started (outpostd ran without it)")
        .Inc();
    OP_LOG_ERROR("telemetry disabled: {}", s.ToString());
    return nullptr;
  };
  auto t = telemetry::TelemetryService::Create(cfg);
  if (!t.ok()) return fail(t.status());
  spdlog::default_logger()->sinks().push_back((*t)->log_sink());
  if (Status s = (*t)->Start(); !s.ok()) return fail(s);
  OP_LOG_INFO("telemetry: publishing to {} as {} (fleet {}, buffer {})", cfg.broker_url,
              (*t)->publisher().options().device_id, cfg.fleet,
              cfg.buffer_dir.empty() ? telemetry::kDefaultBufferDir : cfg.buffer_dir);
  return std::move(t).value();
}

// The watchdog's proof of life: GET /v2/health/live answered 200 by our own server in time.
bool ProbeLive(const std::string& addr, uint16_t port) {
  std::string host = addr == "0.0.0.0" ? "127.0.0.1" : addr == "::" ? "::1" : addr;
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* res = nullptr;
  if (getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &res) != 0) return false;
  bool ok = false;
  for (addrinfo* ai = res; ai && !ok; ai = ai->ai_next) {
    int fd = ::socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) continue;
    timeval tv{1, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (::connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
      const char req[] =
          "GET /v2/health/live HTTP/1.1\r\nHost: watchdog\r\nConnection: close\r\n\r\n";
      if (::send(fd, req, sizeof req - 1, MSG_NOSIGNAL) == static_cast<ssize_t>(sizeof req - 1)) {
        char buf[64];
        ssize_t n = ::recv(fd, buf, sizeof buf - 1, 0);
        ok = n >= 12 && std::memcmp(buf, "HTTP/1.1 200", 12) == 0;
      }
    }
    ::close(fd);
  }
  freeaddrinfo(res);
  return ok;
}

std::string ModelSummary(const serve::ModelRegistry& reg) {
  std::string s;
  for (const auto& m : reg.Index())
    s += (s.empty() ? "" : ", ") + m.name + "@" + m.version +
         (m.state == "READY" ? "" : " (" + m.state + ")");
  return s.empty() ? "no models" : s;
}

int Run(const Args& args) {
  config::DeviceConfig cfg = config::DefaultDeviceConfig();
  if (!args.config.empty()) {
    auto c = config::LoadDeviceConfig(args.config);
    if (!c.ok()) {
      std::fprintf(stderr, "outpostd: %s\n", c.status().message().c_str());
      return 2;
    }
    cfg = std::move(c).value();
  }
  if (!args.listen.empty()) {
    if (Status s = config::ApplyListenOverride(cfg, args.listen); !s.ok()) {
      std::fprintf(stderr, "outpostd: --listen: %s\n", s.message().c_str());
      return 2;
    }
  }
  if (!args.manifests.empty()) cfg.models.manifest_dir = args.manifests;
  if (!args.models.empty()) cfg.models.model_dir = args.models;
  const bool bundled = cfg.models.manifest_dir.empty();
  if (cfg.models.manifest_dir.empty()) cfg.models.manifest_dir = BundledDir("manifests");
  if (cfg.models.model_dir.empty() && bundled) cfg.models.model_dir = BundledDir("models");
  SetupLogging(cfg.log);

  // Signals go to the main loop only (blocked before any thread starts).
  sigset_t sigs;
  sigemptyset(&sigs);
  for (int s : {SIGTERM, SIGINT, SIGHUP}) sigaddset(&sigs, s);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
  signal(SIGPIPE, SIG_IGN);

  // Telemetry first, so that model loads are reported; never blocks on the broker. Declared
  // before the registry and the service, so that it outlives them on every return.
  std::unique_ptr<telemetry::TelemetryService> telem = StartTelemetry(cfg.telemetry);
  std::unique_ptr<TelemetryObserver> observer;
  if (telem) {
    observer = std::make_unique<TelemetryObserver>(telem.get());
    telem->EmitAsync("daemon_started", {{"version", OUTPOST_VERSION}, {"pid", getpid()}});
  }

  serve::RegistryOptions ro;
  ro.observer = observer.get();
  ro.default_threads = cfg.compute.threads;
  ro.compute_nice_steps = cfg.compute.nice_offset;
  ro.backend_options.opencl_platform = cfg.compute.opencl_platform;
  ro.backend_options.opencl_device = cfg.compute.opencl_device;
  ro.backend_options.opencl_platform_name = cfg.compute.opencl_platform_name;
  ro.backend_options.opencl_device_name = cfg.compute.opencl_device_name;
  ro.backend_options.opencl_cache_dir = cfg.compute.kernel_cache_dir;
  ro.drain_timeout = std::chrono::milliseconds(cfg.server.drain_timeout_ms);
  serve::ModelRegistry registry(ro);

  auto& manifest_errors = MetricsRegistry::Global().GetGauge(
      "outpost_manifest_errors", "Manifests that failed to parse at the last scan");
  auto scan = [&]() {
    std::vector<Status> errors;
    auto ms = config::LoadManifestDir(cfg.models.manifest_dir, cfg, &errors);
    if (!ms.ok()) {
      OP_LOG_ERROR("manifest directory: {}", ms.status().message());
      manifest_errors.Set(1);
      return;
    }
    for (const auto& e : errors) OP_LOG_ERROR("manifest skipped: {}", e.message());
    auto load_errors = registry.Reconcile(*ms);
    manifest_errors.Set(static_cast<double>(errors.size()));
    (void)load_errors;  // logged and counted by the registry
  };

  Notify("STATUS=loading models from " + cfg.models.manifest_dir);
  OP_LOG_INFO("outpostd {} starting: manifests {}, models {}", OUTPOST_VERSION,
              cfg.models.manifest_dir, cfg.models.model_dir);
  scan();

  // Cloud fallback (runtime/route): during a handoff (/outpost/v1/handoff, the OTA agent's reboot)
  // and the SIGTERM drain, infer requests of models with `outpost.io/fallback-endpoints` are
  // forwarded there on the forwarder's own threads. Declared before the service and the server,
  // so that it outlives both.
  // 8 workers: up to 8 forwards in flight at once (each blocks its worker for one round trip to
  // the endpoint); more wait in the forwarder's queue (256), beyond it 429.
  route::ForwarderOptions fo;
  fo.workers = 8;
  route::Forwarder forwarder(fo);

  serve::ServiceOptions so;
  so.server_version = OUTPOST_VERSION;
  so.observer = observer.get();
  so.forwarder = &forwarder;
  so.find_manifest = [&cfg](const std::string& name) -> Expected<config::ModelManifest> {
    std::vector<Status> errors;
    OP_ASSIGN_OR_RETURN(auto ms, config::LoadManifestDir(cfg.models.manifest_dir, cfg, &errors));
    for (auto& m : ms)
      if (m.name == name) return m;
    for (const auto& e : errors)
      if (e.message().find(name) != std::string::npos) return e;
    return NotFound("no manifest in " + cfg.models.manifest_dir + " declares model '" + name + "'");
  };
  serve::InferenceService service(&registry, so);

  serve::http::ServerOptions ho;
  ho.address = cfg.server.listen_address;
  ho.port = cfg.server.port;
  ho.io_threads = cfg.server.io_threads;
  ho.max_header_bytes = cfg.server.max_header_bytes;
  ho.max_body_bytes = cfg.server.max_body_bytes;
  ho.max_connections = cfg.server.max_connections;
  ho.header_timeout_ms = cfg.server.header_timeout_ms;
  ho.idle_timeout_ms = cfg.server.idle_timeout_ms;
  ho.shed_target_us = cfg.server.shed_target_us;
  ho.shed_interval_ms = cfg.server.shed_interval_ms;
  ho.io_slice_us = cfg.server.io_slice_us;
  auto server = serve::http::Server::Start(ho, service.handler());
  if (!server.ok()) {
    OP_LOG_ERROR("cannot listen on {}:{}: {}", cfg.server.listen_address, cfg.server.port,
                 server.status().message());
    Notify("STATUS=cannot listen: " + server.status().message());
    return 1;
  }
  const uint16_t port = (*server)->port();
  service.set_ready(true);
  const std::string summary = ModelSummary(registry);
  OP_LOG_INFO("serving {} on http://{}:{}", summary, cfg.server.listen_address, port);
  // Machine-readable line for scripts and tests that asked for port 0.
  std::printf("outpostd listening on %s:%u\n", cfg.server.listen_address.c_str(), port);
  std::fflush(stdout);
  Notify("READY=1\nSTATUS=serving " + summary + " on port " + std::to_string(port) +
         "\nMAINPID=" + std::to_string(getpid()));

  // The systemd watchdog gets its own thread: a reload that loads a large model (minutes of
  // OpenCL compilation on a cold cache) must not starve it. Each ping follows a liveness probe of
  // the HTTP server, so a wedged server stops the pings; while draining it pings unconditionally
  // (the drain is bounded by drain_timeout_ms, and new connections are refused by then).
  uint64_t watchdog_us = 0;
  const bool watchdog = sd_watchdog_enabled(0, &watchdog_us) > 0;
  std::mutex wd_mu;
  std::condition_variable wd_cv;
  bool wd_stop = false;
  std::atomic<bool> draining{false};
  std::thread wd_thread;
  if (watchdog) {
    const auto wd_tick = std::chrono::milliseconds(std::max<int64_t>(100, watchdog_us / 2000));
    wd_thread = std::thread([&, wd_tick] {
      std::unique_lock<std::mutex> lock(wd_mu);
      while (!wd_cv.wait_for(lock, wd_tick, [&] { return wd_stop; })) {
        lock.unlock();
        if (draining.load() || ProbeLive(cfg.server.listen_address, port)) {
          Notify("WATCHDOG=1");
        } else {
          MetricsRegistry::Global()
              .GetCounter("outpost_watchdog_probe_failures_total",
                          "Liveness probes of the own HTTP server that failed")
              .Inc();
          OP_LOG_WARN("watchdog: the HTTP server did not answer its liveness probe");
        }
        lock.lock();
      }
    });
  }
  auto stop_watchdog = [&] {
    {
      std::lock_guard<std::mutex> lock(wd_mu);
      wd_stop = true;
    }
    wd_cv.notify_all();
    if (wd_thread.joinable()) wd_thread.join();
  };
  int64_t tick_ms = 1000;
  if (cfg.models.watch) tick_ms = std::min<int64_t>(tick_ms, cfg.models.watch_interval_ms);
  const auto tick = std::chrono::milliseconds(tick_ms);
  auto next_watch = Clock::now() + std::chrono::milliseconds(cfg.models.watch_interval_ms);
  for (;;) {
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(tick).count();
    timespec ts{static_cast<time_t>(ms / 1000), static_cast<long>((ms % 1000) * 1000000)};
    int sig = sigtimedwait(&sigs, nullptr, &ts);
    if (sig == SIGTERM || sig == SIGINT) {
      OP_LOG_INFO(
          "signal {}: draining (up to {} ms); requests of models with fallback endpoints "
          "are forwarded to them meanwhile",
          sig, cfg.server.drain_timeout_ms);
      Notify("STOPPING=1\nSTATUS=draining");
      draining = true;
      service.set_draining(true);
      // One budget for the whole drain: what the HTTP drain leaves goes to the model queues.
      const auto deadline = Clock::now() + std::chrono::milliseconds(cfg.server.drain_timeout_ms);
      const bool clean = (*server)->Drain(std::chrono::milliseconds(cfg.server.drain_timeout_ms));
      const auto left = std::max(Clock::duration::zero(), deadline - Clock::now());
      registry.DrainAll(std::chrono::duration_cast<std::chrono::milliseconds>(left));
      if (telem) {
        telem->EmitAsync("daemon_stopping", {{"clean_drain", clean}});
        telem->Stop();  // queues what is left, waits briefly for acks, "offline" status
      }
      stop_watchdog();
      OP_LOG_INFO("stopped{}", clean ? "" : " (drain timed out; open requests were cut)");
      return 0;
    }
    service.Handoff();  // ends (and logs) a handoff whose TTL ran out, even with no request
    if (sig == SIGHUP) {
      OP_LOG_INFO("SIGHUP: reloading manifests from {}", cfg.models.manifest_dir);
      Notify("RELOADING=1\nSTATUS=reloading");
      const std::string before = ModelSummary(registry);
      scan();
      const std::string after = ModelSummary(registry);
      Notify("READY=1\nSTATUS=serving " + after);
      if (telem)
        telem->EmitAsync("reload", {{"trigger", "sighup"}, {"before", before}, {"after", after}});
    } else if (cfg.models.watch && Clock::now() >= next_watch) {
      const std::string before = ModelSummary(registry);
      scan();
      const std::string after = ModelSummary(registry);
      if (after != before) {
        Notify("STATUS=serving " + after);
        if (telem)
          telem->EmitAsync("reload",
                           {{"trigger", "manifest_change"}, {"before", before}, {"after", after}});
      }
      next_watch = Clock::now() + std::chrono::milliseconds(cfg.models.watch_interval_ms);
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  Args args;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&](std::string* out) {
      if (i + 1 >= argc) return false;
      *out = argv[++i];
      return true;
    };
    if (a == "--help" || a == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    }
    if (a == "--version") {
      std::printf("outpostd %s\n", OUTPOST_VERSION);
      return 0;
    }
    std::string* dst = a == "--config"      ? &args.config
                       : a == "--listen"    ? &args.listen
                       : a == "--manifests" ? &args.manifests
                       : a == "--models"    ? &args.models
                                            : nullptr;
    if (!dst) return Usage("unknown argument '" + a + "'");
    if (!value(dst)) return Usage(a + " needs a value");
  }
  return Run(args);
}
