#include "outpost/serve/registry.h"

#include <sys/stat.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>

#include "outpost/config/golden.h"
#include "outpost/core/log.h"
#include "outpost/core/metrics.h"

namespace outpost::serve {
namespace {

Counter& LoadCounter(const std::string& model, const char* outcome) {
  return MetricsRegistry::Global().GetCounter("outpost_model_loads_total",
                                              "Model loads and reloads, by outcome",
                                              {{"model", model}, {"outcome", outcome}});
}

std::string FileIdentity(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return path + ":missing";
  return path + ":" + std::to_string(st.st_size) + ":" + std::to_string(st.st_mtim.tv_sec) + "." +
         std::to_string(st.st_mtim.tv_nsec);
}

// A host tensor for warm-up when the manifest names no golden input: zeros, dynamic dims as 1.
Expected<Tensor> ZeroInput(const engine::ValueInfo& v) {
  std::vector<int64_t> dims;
  for (int64_t d : v.dims) dims.push_back(d < 0 ? 1 : d);
  OP_ASSIGN_OR_RETURN(Shape s, Shape::From(dims));
  return Tensor::Allocate(v.dtype, s);
}

// |got - want| <= atol + rtol * |want| everywhere (the tolerance of tests/models).
Status CompareGolden(const Tensor& got, const Tensor& want, const std::string& what) {
  if (got.shape() != want.shape())
    return InvalidModel(what + ": output shape " + got.shape().ToString() + ", golden " +
                        want.shape().ToString());
  if (got.dtype() != want.dtype())
    return InvalidModel(what + ": output type " + std::string(DataTypeName(got.dtype())) +
                        ", golden " + std::string(DataTypeName(want.dtype())));
  if (got.dtype() == DataType::kString) {
    for (int64_t i = 0; i < got.numel(); ++i)
      if (got.data<std::string>()[i] != want.data<std::string>()[i])
        return InvalidModel(what + ": element " + std::to_string(i) + " differs from golden");
    return Status::Ok();
  }
  if (IsInteger(got.dtype()) || got.dtype() == DataType::kBool) {  // exact
    for (int64_t i = 0; i < got.numel(); ++i)
      if (ReadInt(got, i) != ReadInt(want, i))
        return InvalidModel(what + ": element " + std::to_string(i) + " is " +
                            std::to_string(ReadInt(got, i)) + ", golden " +
                            std::to_string(ReadInt(want, i)) + " (integers compared exactly)");
    return Status::Ok();
  }
  constexpr double kAtol = 1e-4, kRtol = 1e-3;
  for (int64_t i = 0; i < got.numel(); ++i) {
    const double g = ReadDouble(got, i), w = ReadDouble(want, i);
    if (std::isnan(w) && std::isnan(g)) continue;
    if (!(std::fabs(g - w) <= kAtol + kRtol * std::fabs(w))) {
      std::ostringstream m;
      m << what << ": element " << i << " is " << g << ", golden " << w
        << " (tolerance 1e-4 + 1e-3*|golden|)";
      return InvalidModel(m.str());
    }
  }
  return Status::Ok();
}

}  // namespace

const char* ModelEventName(ModelEvent e) {
  switch (e) {
    case ModelEvent::kLoaded:
      return "model_loaded";
    case ModelEvent::kReloaded:
      return "model_reloaded";
    case ModelEvent::kLoadFailed:
      return "model_load_failed";
    case ModelEvent::kUnloaded:
      return "model_unloaded";
  }
  return "model_event";
}

const char* RefusalName(Refusal r) {
  switch (r) {
    case Refusal::kQueueFull:
      return "queue_full";
    case Refusal::kDeadline:
      return "deadline";
    case Refusal::kDraining:
      return "draining";
  }
  return "refused";
}

void ModelRegistry::Tell(ModelEvent e, const std::string& model, const std::string& version,
                         const std::string& detail, double load_seconds) const {
  if (opts_.observer != nullptr)
    opts_.observer->OnModelEvent({e, model, version, detail, load_seconds});
}

std::string Fingerprint(const config::ModelManifest& m) {
  std::ostringstream f;
  f << FileIdentity(m.source) << "|" << FileIdentity(m.model_path) << "|" << m.version << "|"
    << m.backend << "|" << m.threads << "|" << m.max_batch_size << "|" << m.max_queue_delay_us
    << "|" << m.queue_size << "|" << m.timeout_ms;
  for (const std::string* golden : {&m.golden_input, &m.golden_output}) {
    if (golden->empty()) continue;
    f << "|" << FileIdentity(*golden);
    if (auto files = config::ListGoldenFiles(*golden); files.ok() && (*files)[0].tensor != "")
      for (const auto& g : *files) f << "|" << FileIdentity(g.path);  // a directory's files
  }
  return f.str();
}

ModelRegistry::ModelRegistry(RegistryOptions options) : opts_(std::move(options)) {}

ModelRegistry::~ModelRegistry() {
  DrainAll(opts_.drain_timeout);
}

Expected<std::shared_ptr<ModelRunner>> ModelRegistry::Build(const config::ModelManifest& m) {
  const auto t0 = std::chrono::steady_clock::now();
  engine::SessionOptions so;
  so.backend = m.backend.empty() ? "cpu" : m.backend;
  so.backend_options = opts_.backend_options;
  so.backend_options.threads = m.threads > 0 ? m.threads : opts_.default_threads;
  so.backend_options.pool_nice_steps = opts_.compute_nice_steps;
  auto loaded = engine::Session::Load(m.model_path, so);
  if (!loaded.ok())
    return loaded.status().WithContext("model '" + m.name + "' (" + m.model_path + ")");
  std::shared_ptr<engine::Session> session(std::move(loaded).value());

  // Warm-up: one run, on the golden input when there is one (kernels compile, plans build).
  std::vector<std::pair<std::string, Tensor>> inputs;
  if (!m.golden_input.empty()) {
    // One file (a one-input model) or a directory of <input name>.npy|.pb (config/golden.h).
    std::vector<std::string> names;
    for (const auto& v : session->inputs()) names.push_back(v.name);
    OP_ASSIGN_OR_RETURN(auto files, config::MatchGoldenInputs(m.golden_input, names));
    for (const auto& g : files) {
      OP_ASSIGN_OR_RETURN(Tensor t, engine::ReadTensorFile(g.path));
      inputs.push_back({g.tensor, std::move(t)});
    }
  } else {
    for (const auto& v : session->inputs()) {
      OP_ASSIGN_OR_RETURN(Tensor t, ZeroInput(v));
      inputs.push_back({v.name, std::move(t)});
    }
  }
  auto out = session->Run(inputs);
  if (!out.ok()) return out.status().WithContext("model '" + m.name + "' warm-up run");
  if (!m.golden_output.empty()) {
    // One file (the first output) or a directory: every <output name> file in it is compared.
    std::vector<std::string> names;
    for (const auto& v : session->outputs()) names.push_back(v.name);
    OP_ASSIGN_OR_RETURN(auto files, config::MatchGoldenOutputs(m.golden_output, names));
    for (const auto& g : files) {
      const size_t k = static_cast<size_t>(
          std::find(names.begin(), names.end(), g.tensor) - names.begin());
      OP_ASSIGN_OR_RETURN(Tensor want, engine::ReadTensorFile(g.path));
      OP_RETURN_IF_ERROR(CompareGolden(
          (*out)[k], want, "model '" + m.name + "' golden check, output '" + g.tensor + "'"));
    }
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  auto& reg = MetricsRegistry::Global();
  const Labels l = {{"model", m.name}, {"version", m.version}};
  reg.GetGauge("outpost_model_load_seconds", "Load and warm-up time of the serving version", l)
      .Set(secs);
  std::map<std::string, int> nodes;
  for (const auto& p : session->report().placement) ++nodes[p.backend];
  for (const char* b : {"cpu", "opencl", "folded"}) {
    Labels bl = l;
    bl.push_back({"backend", b});
    reg.GetGauge("outpost_model_nodes", "Graph nodes of the serving version, by placement", bl)
        .Set(nodes[b]);
  }
  reg.GetGauge("outpost_model_planned_bytes", "Peak planned activation memory of the model", l)
      .Set(static_cast<double>(session->report().planned_peak_bytes));
  OP_LOG_INFO("model '{}' version {} loaded from {} in {:.1f} ms ({} nodes on cpu, {} on opencl)",
              m.name, m.version, m.model_path, secs * 1e3, nodes["cpu"], nodes["opencl"]);

  RunnerOptions ro;
  ro.max_batch_size = std::max(1, m.max_batch_size);
  ro.max_queue_delay = std::chrono::microseconds(m.max_queue_delay_us);
  ro.queue_size = static_cast<size_t>(std::max(1, m.queue_size));
  ro.default_timeout = std::chrono::milliseconds(m.timeout_ms);
  ro.worker_nice_steps = opts_.compute_nice_steps;
  return std::make_shared<ModelRunner>(m.name, m.version, std::move(session), ro);
}

void ModelRegistry::Retire(std::shared_ptr<ModelRunner> old) {
  if (!old) return;
  // Queued requests finish on the old version, off the caller's thread.
  std::lock_guard<std::mutex> lock(mu_);
  retiring_.emplace_back([old = std::move(old), t = opts_.drain_timeout]() mutable {
    old->Drain(t);
    old.reset();
  });
}

Status ModelRegistry::Load(const config::ModelManifest& manifest) {
  std::lock_guard<std::mutex> load_lock(load_mu_);
  const auto t0 = std::chrono::steady_clock::now();
  auto built = Build(manifest);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::shared_ptr<ModelRunner> old;
  bool failed = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    Entry& e = models_[manifest.name];
    if (!built.ok()) {
      e.error = built.status().message();
      if (!e.runner) e.manifest = manifest;
      LoadCounter(manifest.name, "failed").Inc();
      OP_LOG_ERROR("loading model '{}' failed{}: {}", manifest.name,
                   e.runner ? " (the previous version keeps serving)" : "",
                   built.status().ToString());
      failed = true;
    } else {
      old = std::move(e.runner);
      e.runner = std::move(built).value();
      e.manifest = manifest;
      e.fingerprint = Fingerprint(manifest);
      e.error.clear();
      e.unloaded = false;
    }
  }
  if (failed) {
    Tell(ModelEvent::kLoadFailed, manifest.name, manifest.version, built.status().message(), secs);
    return built.status();
  }
  LoadCounter(manifest.name, old ? "reloaded" : "loaded").Inc();
  Tell(old ? ModelEvent::kReloaded : ModelEvent::kLoaded, manifest.name, manifest.version,
       manifest.model_path, secs);
  Retire(std::move(old));
  return Status::Ok();
}

Status ModelRegistry::Unload(const std::string& name) {
  std::shared_ptr<ModelRunner> old;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = models_.find(name);
    if (it == models_.end() || !it->second.runner)
      return NotFound("model '" + name + "' is not loaded");
    old = std::move(it->second.runner);
    it->second.unloaded = true;
    it->second.error = "unloaded";
  }
  OP_LOG_INFO("model '{}' unloaded", name);
  Tell(ModelEvent::kUnloaded, name, old->version(), "unloaded");
  Retire(std::move(old));
  return Status::Ok();
}

std::vector<Status> ModelRegistry::Reconcile(const std::vector<config::ModelManifest>& manifests) {
  std::vector<Status> errors;
  std::vector<std::string> keep;
  for (const auto& m : manifests) {
    keep.push_back(m.name);
    std::string current;
    bool serving = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = models_.find(m.name);
      if (it != models_.end()) {
        current = it->second.fingerprint;
        serving = it->second.runner != nullptr || it->second.unloaded;
      }
    }
    const std::string fp = Fingerprint(m);
    if (serving && fp == current) continue;
    {  // a model that failed with this exact manifest and file is not retried on every scan
      std::lock_guard<std::mutex> lock(mu_);
      auto it = models_.find(m.name);
      if (it != models_.end() && !it->second.error.empty() && it->second.fingerprint == fp)
        continue;
    }
    Status s = Load(m);
    if (!s.ok()) {
      std::lock_guard<std::mutex> lock(mu_);
      models_[m.name].fingerprint = fp;
      errors.push_back(s);
    }
  }
  std::vector<std::string> gone;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [name, e] : models_)
      if (std::find(keep.begin(), keep.end(), name) == keep.end()) gone.push_back(name);
  }
  for (const auto& name : gone) {
    std::shared_ptr<ModelRunner> old;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = models_.find(name);
      if (it == models_.end()) continue;
      old = std::move(it->second.runner);
      models_.erase(it);
    }
    OP_LOG_INFO("model '{}' removed (its manifest is gone)", name);
    Tell(ModelEvent::kUnloaded, name, old ? old->version() : "", "manifest removed");
    Retire(std::move(old));
  }
  return errors;
}

std::shared_ptr<ModelRunner> ModelRegistry::Find(const std::string& name,
                                                 const std::string& version) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = models_.find(name);
  if (it == models_.end() || !it->second.runner) return nullptr;
  if (!version.empty() && it->second.runner->version() != version) return nullptr;
  return it->second.runner;
}

config::ModelManifest ModelRegistry::ManifestOf(const std::string& name) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = models_.find(name);
  return it == models_.end() ? config::ModelManifest{} : it->second.manifest;
}

std::vector<std::string> ModelRegistry::FallbackEndpoints(const std::string& name) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = models_.find(name);
  return it == models_.end() ? std::vector<std::string>{} : it->second.manifest.fallback_endpoints;
}

std::vector<ModelState> ModelRegistry::Index() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<ModelState> out;
  for (const auto& [name, e] : models_) {
    ModelState s;
    s.name = name;
    s.version = e.runner ? e.runner->version() : e.manifest.version;
    s.state = e.runner ? "READY" : "UNAVAILABLE";
    s.reason = e.error;
    out.push_back(std::move(s));
  }
  return out;
}

bool ModelRegistry::AllReady() const {
  std::lock_guard<std::mutex> lock(mu_);
  if (models_.empty()) return false;
  bool any = false;
  for (const auto& [name, e] : models_) {
    if (e.unloaded) continue;  // an operator's unload does not make the server unready
    if (!e.runner) return false;  // a failed reload leaves the old version serving: still ready
    any = true;
  }
  return any;
}

size_t ModelRegistry::serving_count() const {
  std::lock_guard<std::mutex> lock(mu_);
  size_t n = 0;
  for (const auto& [name, e] : models_) n += e.runner != nullptr;
  return n;
}

void ModelRegistry::DrainAll(std::chrono::milliseconds timeout) {
  std::vector<std::shared_ptr<ModelRunner>> runners;
  std::vector<std::thread> retiring;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& [name, e] : models_)
      if (e.runner) runners.push_back(e.runner);
    retiring.swap(retiring_);
  }
  for (auto& r : runners) r->Drain(timeout);
  for (auto& t : retiring)
    if (t.joinable()) t.join();
}

}  // namespace outpost::serve
