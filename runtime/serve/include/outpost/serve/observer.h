// ServiceObserver: what outpostd's telemetry (or any other listener) learns from the serving
// path. The registry reports model lifecycle events, the service reports its routing decision
// for each request and (optionally) the inputs of accepted ones. Set it in RegistryOptions /
// ServiceOptions; null (the default) costs one pointer test per request. Calls come from the
// serving threads (I/O threads, loaders): implementations must be thread-safe, cheap and must not
// call back into the registry or the service.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "outpost/core/tensor.h"

namespace outpost::serve {

enum class ModelEvent {
  kLoaded,      // first version of a model serving
  kReloaded,    // a new version replaced the serving one (SIGHUP, manifest change, load call)
  kLoadFailed,  // load or warm-up failed (a previous version, if any, keeps serving)
  kUnloaded,    // unloaded by an operator, or its manifest is gone
};
const char* ModelEventName(ModelEvent e);  // "model_loaded", "model_reloaded", ...

struct ModelEventInfo {
  ModelEvent event = ModelEvent::kLoaded;
  std::string model;
  std::string version;
  std::string detail;  // the error of a failed load; the reason of an unload; the model file
  double load_seconds = 0;
};

// Why a request was refused before it ran.
enum class Refusal {
  kQueueFull,  // 429: the model's queue is full
  kDeadline,   // 504: the expected wait overruns the request's deadline
  kDraining,   // 503: shutting down, or the version is being replaced
};
const char* RefusalName(Refusal r);  // "queue_full", "deadline", "draining"

// The routing decisions serve makes for an inference request that reached a model: run it on
// this device (`OnServedLocally`), refuse it (`OnRefused`), or forward it to the model's
// fallback endpoints (`OnForwarded`: during a handoff or the SIGTERM drain, runtime/route).
// Requests that fail their checks (400) or name no model (404) are not routed and not reported.
class ServiceObserver {
 public:
  virtual ~ServiceObserver() = default;
  virtual void OnModelEvent(const ModelEventInfo& info) = 0;
  // One call per request accepted by the model's runner (queued or run inline). Aggregate on
  // your side; do not emit one event per call.
  virtual void OnServedLocally(std::string_view model, std::string_view version) = 0;
  // One call per refused request (same).
  virtual void OnRefused(std::string_view model, std::string_view version, Refusal why) = 0;
  // One call per request handed to the fallback forwarder (same).
  virtual void OnForwarded(std::string_view model) { (void)model; }
  // The decoded inputs of a request about to be queued (after its checks passed). Return at once
  // when not interested; sample if the work is not tiny.
  virtual void OnInputs(std::string_view model, std::string_view version,
                        const std::vector<std::pair<std::string, Tensor>>& inputs) {
    (void)model, (void)version, (void)inputs;
  }
};

}  // namespace outpost::serve
