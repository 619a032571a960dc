// InferenceService: the KServe V2 / Open Inference Protocol REST API over the model registry.
// Routes HTTP requests (health, metadata, infer, model repository, /metrics) and answers them;
// inference is queued on the model's runner and answered from its worker thread.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "outpost/route/forwarder.h"
#include "outpost/serve/http/server.h"
#include "outpost/serve/observer.h"
#include "outpost/serve/registry.h"
#include "outpost/serve/v2/v2.h"

namespace outpost::serve {

struct ServiceOptions {
  std::string server_name = "outpost";
  std::string server_version;
  v2::Limits limits;
  // Model repository extension: load/unload by name resolve a manifest through this (the
  // daemon looks in its manifest directory); null disables load (unload still works).
  std::function<Expected<config::ModelManifest>(const std::string& name)> find_manifest;
  // Told about refused requests and (for drift statistics) accepted inputs; null: nobody. Not
  // owned; must outlive the service.
  ServiceObserver* observer = nullptr;
  // Forwards infer requests of models with `fallback_endpoints` during a handoff and while
  // draining (runtime/route); null: never forwarded, the handoff call answers 503. Not owned;
  // must outlive the service's HTTP server.
  route::Forwarder* forwarder = nullptr;
};

// The handoff (`/outpost/v1/handoff`, loopback peers only): while on, new infer requests of every
// model that has fallback endpoints go to them instead of the local queue; the others are
// served locally. Ends when cleared or when its TTL runs out.
struct HandoffState {
  bool active = false;
  std::string reason;
  double seconds_left = 0;
};

// True for "127.x.y.z:port", "[::1]:port" and "[::ffff:127.x.y.z]:port" (http::Request::peer).
bool IsLoopbackPeer(std::string_view peer);

class InferenceService {
 public:
  InferenceService(ModelRegistry* registry, ServiceOptions options);
  ~InferenceService();  // finishes the repository loads already accepted

  // The http::Handler.
  void Handle(http::Request&& req, std::shared_ptr<http::Responder> resp);
  http::Handler handler() {
    return [this](http::Request&& r, std::shared_ptr<http::Responder> s) {
      Handle(std::move(r), std::move(s));
    };
  }

  // /v2/health/ready answers ready only while this is set and every model serves.
  void set_ready(bool ready) { ready_.store(ready); }
  // While draining, readiness is false and new inference is refused with 503.
  void set_draining(bool draining) { draining_.store(draining); }
  // Local inference requests accepted and not yet answered (for drain and the watchdog's view;
  // forwarded requests are not counted).
  int64_t in_flight() const { return in_flight_.load(); }

  // Handoff on for `ttl` (replaces a running one); kUnavailable without a forwarder.
  Status StartHandoff(std::string reason, std::chrono::milliseconds ttl);
  // Handoff off (no-op when off); `why` goes to the log line.
  void EndHandoff(std::string_view why);
  // The handoff now; ends it (logged) when its TTL ran out. outpostd calls it every tick so that
  // the end is logged even when no request comes.
  HandoffState Handoff();

 private:
  // `version` as the request named it ("" = the current one), for a retry after a hot swap.
  void Infer(http::Request&& req, std::shared_ptr<http::Responder> resp,
             std::shared_ptr<ModelRunner> runner, std::string_view version);
  // Hands the request, body unchanged, to the forwarder; answered from its worker thread.
  void Forward(http::Request&& req, std::shared_ptr<http::Responder> resp,
               const ModelRunner& runner, std::string_view version,
               std::vector<std::string> endpoints);
  void HandoffCall(const http::Request& req, std::shared_ptr<http::Responder> resp);
  bool HandoffOn();  // cheap: one atomic load unless a handoff is set
  void Repository(const http::Request& req, std::string_view rest,
                  std::shared_ptr<http::Responder> resp);
  // Repository loads run on their own thread, one at a time, never on an I/O thread: a load
  // builds and warms a model (seconds for a large one) while the I/O threads keep serving the
  // version being replaced. The answer is sent once the new version serves (or failed).
  void LoaderLoop();

  struct PendingLoad {
    std::string name;
    std::shared_ptr<http::Responder> resp;
  };

  ModelRegistry* registry_;
  const ServiceOptions opts_;
  std::atomic<bool> ready_{false};
  std::atomic<bool> draining_{false};
  std::atomic<int64_t> in_flight_{0};
  // steady_clock time (ns since its epoch) at which the handoff ends; 0 = off.
  std::atomic<int64_t> handoff_until_{0};
  std::mutex handoff_mu_;  // serializes start/end and guards handoff_reason_
  std::string handoff_reason_;
  std::mutex load_mu_;
  std::condition_variable load_cv_;
  std::deque<PendingLoad> loads_;
  bool stop_loader_ = false;
  std::thread loader_;  // started by the first repository load
};

}  // namespace outpost::serve
