// ModelRegistry: the models outpostd serves, by name. Loading builds a session, warms it (one run
// on the golden input, checked against the golden output when the manifest names one) and then
// swaps it in atomically: requests already queued finish on the version they were sent to, and a
// load that fails leaves the serving version untouched.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "outpost/config/manifest.h"
#include "outpost/core/status.h"
#include "outpost/engine/session.h"
#include "outpost/serve/model_runner.h"
#include "outpost/serve/observer.h"

namespace outpost::serve {

struct RegistryOptions {
  int default_threads = 0;  // per-model intra-op threads when the manifest says 0 (0: all cores)
  kernels::BackendOptions backend_options;  // OpenCL platform/device, kernel cache
  // Model workers and the engine's pool workers run this many nice steps below the thread that
  // loads the model (outpostd: below its HTTP threads; config `compute.nice_offset`).
  int compute_nice_steps = 0;
  std::chrono::milliseconds drain_timeout{30000};  // for versions being replaced or unloaded
  // Told about loads, reloads, failed loads and unloads; null: nobody. Not owned; must outlive
  // the registry.
  ServiceObserver* observer = nullptr;
};

// What the model repository extension reports per model.
struct ModelState {
  std::string name;
  std::string version;
  std::string state;   // READY, UNAVAILABLE
  std::string reason;  // why not ready (the last load error)
};

class ModelRegistry {
 public:
  explicit ModelRegistry(RegistryOptions options);
  ~ModelRegistry();  // drains every model

  // Loads the model a manifest declares (or a new version of it), warms and checks it, then
  // makes it the serving version. On error the previous version (if any) keeps serving and the
  // error is remembered for the repository index.
  Status Load(const config::ModelManifest& manifest);
  // Stops serving `name` (queued requests finish first). NotFound when not loaded.
  Status Unload(const std::string& name);
  // Loads what `manifests` declare that is new or changed (manifest or model file), unloads what
  // is gone. Returns the errors (one per model that failed); the rest still loads.
  std::vector<Status> Reconcile(const std::vector<config::ModelManifest>& manifests);

  // The serving version of `name` (any version when `version` is empty); null when none.
  std::shared_ptr<ModelRunner> Find(const std::string& name, const std::string& version = "") const;
  std::shared_ptr<ModelRunner> Find(std::string_view name, std::string_view version) const {
    return Find(std::string(name), std::string(version));
  }
  // The manifest `name` was loaded from (empty name when unknown).
  config::ModelManifest ManifestOf(const std::string& name) const;
  // The manifest's `fallback_endpoints` of `name` (empty when none or unknown); no copy of the
  // rest of the manifest.
  std::vector<std::string> FallbackEndpoints(const std::string& name) const;
  std::vector<ModelState> Index() const;
  // True when at least one model is known and every known model has a serving version.
  bool AllReady() const;
  size_t serving_count() const;

  void DrainAll(std::chrono::milliseconds timeout);

 private:
  struct Entry {
    config::ModelManifest manifest;
    std::string fingerprint;  // manifest + model file identity, to notice changes
    std::shared_ptr<ModelRunner> runner;  // null when the last load failed and none serves
    std::string error;
    bool unloaded = false;  // explicitly unloaded: listed, not served, not reloaded by scans
  };
  Expected<std::shared_ptr<ModelRunner>> Build(const config::ModelManifest& m);
  void Retire(std::shared_ptr<ModelRunner> old);
  void Tell(ModelEvent e, const std::string& model, const std::string& version,
            const std::string& detail, double load_seconds = 0) const;

  const RegistryOptions opts_;
  mutable std::mutex mu_;
  std::map<std::string, Entry> models_;
  std::mutex load_mu_;  // one load at a time (loads are CPU heavy; keeps warm-up timings honest)
  std::vector<std::thread> retiring_;
};

// "name@version (file)" fingerprint inputs: manifest text and the model file's size and mtime.
std::string Fingerprint(const config::ModelManifest& m);

}  // namespace outpost::serve
