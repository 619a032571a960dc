#include "outpost/config/manifest.h"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <regex>
#include <tuple>
#include <type_traits>

#include "net_util.h"
#include "outpost/config/golden.h"
#include "outpost/core/metrics.h"
#include "yaml_util.h"

namespace outpost::config {

namespace fs = std::filesystem;
using internal::Entry;
using internal::MapView;
using internal::Quote;

namespace {

constexpr std::string_view kApiVersion = "serving.kserve.io/v1beta1";
constexpr std::string_view kKind = "InferenceService";
constexpr std::string_view kPrefix = "outpost.io/";

// Fields KServe (v1beta1) and Kubernetes define at the levels we read. Known-but-unused fields
// are accepted and ignored; anything else is a typo and rejected.
const std::vector<std::string_view> kTopFields = {"apiVersion", "kind", "metadata", "spec",
                                                  "status"};
const std::vector<std::string_view> kObjectMetaFields = {"name",
                                                         "generateName",
                                                         "namespace",
                                                         "selfLink",
                                                         "uid",
                                                         "resourceVersion",
                                                         "generation",
                                                         "creationTimestamp",
                                                         "deletionTimestamp",
                                                         "deletionGracePeriodSeconds",
                                                         "labels",
                                                         "annotations",
                                                         "ownerReferences",
                                                         "finalizers",
                                                         "managedFields"};
const std::vector<std::string_view> kSpecFields = {"predictor", "explainer", "transformer"};
// Framework-specific predictors (the older form). Outpost reads only spec.predictor.model.
const std::vector<std::string_view> kFrameworkFields = {
    "sklearn", "xgboost",     "tensorflow", "pytorch",  "triton",
    "onnx",    "huggingface", "pmml",       "lightgbm", "paddle"};
const std::vector<std::string_view> kPredictorOtherFields = {
    "model", "workerSpec",
    // ComponentExtensionSpec
    "minReplicas", "maxReplicas", "scaleTarget", "scaleMetric", "scaleMetricType", "autoScaling",
    "containerConcurrency", "timeout", "canaryTrafficPercent", "logger", "batcher", "labels",
    "annotations", "deploymentStrategy",
    // corev1.PodSpec (inlined)
    "volumes", "initContainers", "containers", "ephemeralContainers", "restartPolicy",
    "terminationGracePeriodSeconds", "activeDeadlineSeconds", "dnsPolicy", "nodeSelector",
    "serviceAccountName", "serviceAccount", "automountServiceAccountToken", "nodeName",
    "hostNetwork", "hostPID", "hostIPC", "shareProcessNamespace", "securityContext",
    "imagePullSecrets", "hostname", "subdomain", "affinity", "schedulerName", "tolerations",
    "hostAliases", "priorityClassName", "priority", "dnsConfig", "readinessGates",
    "runtimeClassName", "enableServiceLinks", "preemptionPolicy", "overhead",
    "topologySpreadConstraints", "setHostnameAsFQDN", "os", "hostUsers", "schedulingGates",
    "resourceClaims", "resources"};
const std::vector<std::string_view> kModelFields = {
    // ModelSpec / PredictorExtensionSpec
    "modelFormat", "runtime", "storageUri", "storageUris", "runtimeVersion", "protocolVersion",
    "storage",
    // corev1.Container (inlined)
    "name", "image", "command", "args", "workingDir", "ports", "envFrom", "env", "resources",
    "resizePolicy", "restartPolicy", "volumeMounts", "volumeDevices", "livenessProbe",
    "readinessProbe", "startupProbe", "lifecycle", "terminationMessagePath",
    "terminationMessagePolicy", "imagePullPolicy", "securityContext", "stdin", "stdinOnce", "tty"};
const std::vector<std::string_view> kAnnotations = {"outpost.io/version",
                                                    "outpost.io/backend",
                                                    "outpost.io/threads",
                                                    "outpost.io/max-batch-size",
                                                    "outpost.io/max-queue-delay-us",
                                                    "outpost.io/queue-size",
                                                    "outpost.io/timeout-ms",
                                                    "outpost.io/latency-budget-ms",
                                                    "outpost.io/fallback-endpoints",
                                                    "outpost.io/golden-input",
                                                    "outpost.io/golden-output"};

bool MatchesName(std::string_view s, bool must_start_with_letter) {
  if (s.empty() || s.size() > 63) return false;
  for (char c : s) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) return false;
  }
  if (must_start_with_letter && !(s.front() >= 'a' && s.front() <= 'z')) return false;
  return s.front() != '-' && s.back() != '-';
}

// A field that Kubernetes types as a string: an unquoted number/bool/null would be rejected
// by the API server, so we reject it too (the file must apply unchanged to a cluster).
Status KString(const MapView& m, const Entry& e, std::string* out) {
  if (internal::PlainScalarIsNonString(e.value)) {
    if (!e.value.IsDefined() || e.value.IsNull()) {
      return m.Error(e, "expected a string, got null (no value)");
    }
    return m.Error(e, "Kubernetes requires a string here; quote it: " + Quote(e.value.Scalar()));
  }
  return m.ScalarOf(e, "a string", out);
}

Status KStringMap(const MapView& parent, std::string_view key,
                  std::map<std::string, std::string>* out, MapView* view) {
  OP_RETURN_IF_ERROR(parent.Section(key, view));
  for (const Entry& e : view->entries()) {
    std::string v;
    OP_RETURN_IF_ERROR(KString(*view, e, &v));
    (*out)[e.key] = v;
  }
  return Status::Ok();
}

bool PercentDecode(std::string_view in, std::string* out) {
  out->clear();
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '%') {
      *out += in[i];
      continue;
    }
    if (i + 2 >= in.size() || !std::isxdigit(static_cast<unsigned char>(in[i + 1])) ||
        !std::isxdigit(static_cast<unsigned char>(in[i + 2]))) {
      return false;
    }
    const char c = static_cast<char>(std::stoi(std::string(in.substr(i + 1, 2)), nullptr, 16));
    if (c == '\0') return false;
    *out += c;
    i += 2;
  }
  return true;
}

bool IsUnder(const fs::path& p, const fs::path& dir) {
  auto [d, q] = std::mismatch(dir.begin(), dir.end(), p.begin(), p.end());
  // A trailing empty component (from "dir/") matches anything.
  return d == dir.end() || (std::next(d) == dir.end() && d->empty());
}

// storageUri -> absolute path of an existing .onnx file.
Status ResolveStorageUri(const MapView& m, const Entry& e, const std::string& uri,
                         const DeviceConfig& cfg, const fs::path& manifest_dir,
                         std::string* model_path) {
  static const std::regex kScheme("^([A-Za-z][A-Za-z0-9+.-]*)://.*");
  std::error_code ec;
  fs::path base = cfg.models.model_dir.empty() ? manifest_dir : fs::path(cfg.models.model_dir);
  base = fs::absolute(base, ec).lexically_normal();
  const std::string base_desc = cfg.models.model_dir.empty()
                                    ? "the manifest's directory " + base.string()
                                    : "models.model_dir " + base.string();
  std::smatch sm;
  fs::path target;
  bool confined = false;  // a relative path: must stay under `base`
  std::string rel;
  if (std::regex_match(uri, sm, kScheme)) {
    const std::string scheme = sm[1].str();
    if (scheme == "file") {
      std::string rest = uri.substr(7);
      if (rest.starts_with("localhost/")) rest = rest.substr(9);
      if (!rest.starts_with("/")) {
        return m.Error(e,
                       "file:// URIs hold an absolute path (file:///models/x.onnx); write a "
                       "relative path without a scheme to resolve it under " +
                           base_desc + ", got " + Quote(uri));
      }
      std::string decoded;
      if (!PercentDecode(rest, &decoded)) return m.Error(e, "bad %-escape in " + Quote(uri));
      target = fs::path(decoded);
    } else if (scheme == "pvc") {
      const std::string rest = uri.substr(6);
      const size_t slash = rest.find('/');
      if (slash == 0 || slash == std::string::npos || slash + 1 >= rest.size()) {
        return m.Error(e, "expected pvc://<claim>/<path>, got " + Quote(uri));
      }
      confined = true;
      rel = rest.substr(slash + 1);
    } else {
      return m.Error(e,
                     "storage scheme " + Quote(scheme + "://") +
                         " is not supported on the device: outpostd does not download models. "
                         "Ship the file into models.model_dir (e.g. with an OTA bundle) and use "
                         "a relative path, pvc://<claim>/<path> or file:///absolute/path",
                     Code::kUnsupported);
    }
  } else if (uri.starts_with("/")) {
    target = fs::path(uri);
  } else {
    confined = true;
    rel = uri;
  }
  if (confined) {
    const fs::path r = fs::path(rel).lexically_normal();
    if (r.is_absolute() || (!r.empty() && *r.begin() == "..")) {
      return m.Error(e, "path " + Quote(rel) + " escapes " + base_desc);
    }
    target = base / r;
  }
  target = fs::absolute(target, ec).lexically_normal();
  fs::file_status st = fs::status(target, ec);
  if (st.type() == fs::file_type::not_found) {
    return m.Error(e, "model not found: " + target.string(), Code::kNotFound);
  }
  if (ec)
    return m.Error(e, "cannot access " + target.string() + ": " + ec.message(), Code::kIoError);
  if (fs::is_directory(st)) {
    // KServe convention: storageUri names a directory holding the model.
    if (fs::is_regular_file(target / "model.onnx", ec)) {
      target /= "model.onnx";
    } else {
      std::vector<fs::path> found;
      for (const auto& de : fs::directory_iterator(target, ec)) {
        if (de.path().extension() == ".onnx" && de.is_regular_file(ec)) found.push_back(de.path());
      }
      if (found.size() != 1) {
        return m.Error(e,
                       "directory " + target.string() + " holds " + std::to_string(found.size()) +
                           " .onnx files; expected model.onnx or exactly one .onnx file",
                       found.empty() ? Code::kNotFound : Code::kInvalidArgument);
      }
      target = found[0];
    }
  } else if (!fs::is_regular_file(st)) {
    return m.Error(e, target.string() + " is not a regular file");
  }
  if (confined) {
    const fs::path real = fs::canonical(target, ec);
    const fs::path real_base = fs::canonical(base, ec);
    if (ec || !IsUnder(real, real_base)) {
      return m.Error(e, "path " + Quote(rel) + " resolves (through a symbolic link) to " +
                            real.string() + ", outside " + base_desc);
    }
  }
  *model_path = target.string();
  return Status::Ok();
}

Status ParseResources(const MapView& model, ModelManifest* mf) {
  MapView res;
  OP_RETURN_IF_ERROR(model.Section("resources", &res));
  OP_RETURN_IF_ERROR(res.RejectUnknown({"requests", "limits", "claims"}));
  for (const char* which : {"requests", "limits"}) {
    ResourceQuantities& q = std::string_view(which) == "requests" ? mf->requests : mf->limits;
    MapView rq;
    OP_RETURN_IF_ERROR(res.Section(which, &rq));
    for (const Entry& e : rq.entries()) {
      const std::string& name = e.key;
      std::string text;
      if (name == "cpu" || name == "memory") {
        OP_RETURN_IF_ERROR(rq.ScalarOf(e, "a quantity", &text));
        int64_t v = 0;
        const Status st = internal::ParseQuantity(text, name == "cpu" ? 3 : 0, &v);
        if (!st.ok()) return rq.Error(e, st.message());
        if (name == "cpu") {
          q.cpu_millis = v;
        } else {
          q.memory_bytes = v;
        }
      } else if (name.find('/') != std::string::npos || name == "ephemeral-storage" ||
                 name == "storage" || name.starts_with("hugepages-")) {
        // Extended or other standard resources: Kubernetes' business, not ours.
      } else {
        std::string msg =
            "unknown resource name (Kubernetes accepts cpu, memory, "
            "ephemeral-storage, hugepages-<size> or a domain-qualified name)";
        const std::string hint = internal::Suggest(name, {"cpu", "memory", "ephemeral-storage"});
        if (!hint.empty()) msg += "; did you mean " + Quote(hint) + "?";
        return rq.Error(e, msg);
      }
    }
  }
  if (mf->requests.cpu_millis && mf->limits.cpu_millis &&
      *mf->requests.cpu_millis > *mf->limits.cpu_millis) {
    MapView rq;
    OP_RETURN_IF_ERROR(res.Section("requests", &rq));
    return rq.Error(*rq.Find("cpu"), "request is greater than the limit");
  }
  if (mf->requests.memory_bytes && mf->limits.memory_bytes &&
      *mf->requests.memory_bytes > *mf->limits.memory_bytes) {
    MapView rq;
    OP_RETURN_IF_ERROR(res.Section("requests", &rq));
    return rq.Error(*rq.Find("memory"), "request is greater than the limit");
  }
  return Status::Ok();
}

// The outpost.io/ annotations. `ann` is the metadata.annotations view.
Status ParseAnnotations(const MapView& ann, const DeviceConfig& cfg, const fs::path& manifest_dir,
                        ModelManifest* mf) {
  for (const Entry& e : ann.entries()) {
    if (!std::string_view(e.key).starts_with(kPrefix)) continue;
    if (std::find(kAnnotations.begin(), kAnnotations.end(), e.key) == kAnnotations.end()) {
      std::string msg = "unknown outpost.io/ annotation";
      const std::string hint = internal::Suggest(e.key, kAnnotations);
      if (!hint.empty()) msg += " (did you mean " + Quote(hint) + "?)";
      return ann.Error(e, msg);
    }
  }
  auto value_of = [&](std::string_view key) -> const std::string* {
    auto it = mf->annotations.find(std::string(key));
    return it == mf->annotations.end() ? nullptr : &it->second;
  };
  auto integer = [&](std::string_view key, int64_t lo, int64_t hi, auto* out) -> Status {
    const std::string* v = value_of(key);
    if (v == nullptr) return Status::Ok();
    int64_t n = 0;
    if (!internal::ParseInt64(*v, &n) || n < lo || n > hi) {
      return ann.Error(*ann.Find(key), "expected an integer in " + std::to_string(lo) + ".." +
                                           std::to_string(hi) + ", got " + Quote(*v));
    }
    *out = static_cast<std::remove_pointer_t<decltype(out)>>(n);
    return Status::Ok();
  };

  mf->backend = cfg.compute.default_backend;
  mf->threads = 0;
  mf->max_batch_size = cfg.models.default_max_batch_size;
  mf->max_queue_delay_us = cfg.models.default_max_queue_delay_us;
  mf->queue_size = cfg.models.default_queue_size;
  mf->timeout_ms = cfg.models.default_timeout_ms;

  if (const std::string* v = value_of("outpost.io/version")) {
    static const std::regex kVersion("[A-Za-z0-9][A-Za-z0-9._-]{0,62}");
    if (!std::regex_match(*v, kVersion)) {
      return ann.Error(
          *ann.Find("outpost.io/version"),
          "expected letters, digits, '.', '_' or '-' (it appears in URLs), got " + Quote(*v));
    }
    mf->version = *v;
  }
  if (const std::string* v = value_of("outpost.io/backend")) {
    if (*v != "cpu" && *v != "opencl") {
      std::string msg = "expected one of cpu, opencl, got " + Quote(*v);
      const std::string hint = internal::Suggest(*v, {"cpu", "opencl"});
      if (!hint.empty()) msg += " (did you mean " + Quote(hint) + "?)";
      return ann.Error(*ann.Find("outpost.io/backend"), msg);
    }
    mf->backend = *v;
  }
  OP_RETURN_IF_ERROR(integer("outpost.io/threads", 0, 1024, &mf->threads));
  OP_RETURN_IF_ERROR(integer("outpost.io/max-batch-size", 1, 65536, &mf->max_batch_size));
  OP_RETURN_IF_ERROR(
      integer("outpost.io/max-queue-delay-us", 0, 60000000, &mf->max_queue_delay_us));
  OP_RETURN_IF_ERROR(integer("outpost.io/queue-size", 1, 1000000, &mf->queue_size));
  OP_RETURN_IF_ERROR(integer("outpost.io/timeout-ms", 0, 3600000, &mf->timeout_ms));
  OP_RETURN_IF_ERROR(integer("outpost.io/latency-budget-ms", 0, 3600000, &mf->latency_budget_ms));
  if (const std::string* v = value_of("outpost.io/fallback-endpoints")) {
    const Entry& e = *ann.Find("outpost.io/fallback-endpoints");
    size_t start = 0;
    while (start <= v->size()) {
      size_t comma = v->find(',', start);
      if (comma == std::string::npos) comma = v->size();
      std::string url = v->substr(start, comma - start);
      const size_t b = url.find_first_not_of(" \t\n");
      const size_t eidx = url.find_last_not_of(" \t\n");
      url = b == std::string::npos ? "" : url.substr(b, eidx - b + 1);
      if (url.empty()) return ann.Error(e, "empty entry in the comma-separated list");
      const std::string why = internal::CheckUrl(url, {"http", "https"});
      if (!why.empty()) return ann.Error(e, why);
      mf->fallback_endpoints.push_back(url);
      start = comma + 1;
      if (comma == v->size()) break;
    }
  }
  const std::string* gin = value_of("outpost.io/golden-input");
  const std::string* gout = value_of("outpost.io/golden-output");
  if ((gin == nullptr) != (gout == nullptr)) {
    const Entry& e = *ann.Find(gin ? "outpost.io/golden-input" : "outpost.io/golden-output");
    return ann.Error(e, "outpost.io/golden-input and outpost.io/golden-output go together");
  }
  for (auto [key, val, out] : {std::tuple{"outpost.io/golden-input", gin, &mf->golden_input},
                               std::tuple{"outpost.io/golden-output", gout, &mf->golden_output}}) {
    if (val == nullptr) continue;
    const Entry& e = *ann.Find(key);
    if (val->empty()) return ann.Error(e, "expected a path, got \"\"");
    fs::path p(*val);
    if (p.is_relative()) p = manifest_dir / p;
    std::error_code ec;
    p = fs::absolute(p, ec).lexically_normal();
    if (!fs::exists(p, ec)) return ann.Error(e, "file not found: " + p.string(), Code::kNotFound);
    // A file, or a directory of one <tensor name>.npy|.pb per tensor (config/golden.h).
    if (auto files = ListGoldenFiles(p.string()); !files.ok())
      return ann.Error(e, files.status().message(), files.status().code());
    *out = p.string();
  }
  return Status::Ok();
}

}  // namespace

Expected<int64_t> ParseCpuMillis(std::string_view quantity) {
  int64_t v = 0;
  OP_RETURN_IF_ERROR(internal::ParseQuantity(quantity, 3, &v));
  return v;
}

Expected<int64_t> ParseMemoryBytes(std::string_view quantity) {
  int64_t v = 0;
  OP_RETURN_IF_ERROR(internal::ParseQuantity(quantity, 0, &v));
  return v;
}

Expected<ModelManifest> ParseManifest(std::string_view yaml_text, std::string_view source_name,
                                      const DeviceConfig& cfg) {
  const std::string source(source_name);
  std::error_code ec;
  fs::path manifest_dir = fs::path(source).parent_path();
  manifest_dir = fs::absolute(manifest_dir.empty() ? fs::path(".") : manifest_dir, ec);

  YAML::Node root;
  OP_RETURN_IF_ERROR(internal::ParseYaml(yaml_text, source, &root));
  if (!root.IsDefined() || root.IsNull()) {
    return internal::ErrorAt(Code::kInvalidArgument, source, 0, "",
                             "empty manifest; expected a KServe InferenceService");
  }
  if (!root.IsMap()) {
    return internal::ErrorAt(
        Code::kInvalidArgument, source, internal::LineOf(root, 1), "",
        "expected a KServe InferenceService (a mapping), got " + internal::Describe(root));
  }
  ModelManifest mf;
  mf.source = source;
  MapView top;
  OP_RETURN_IF_ERROR(MapView::Make(source, root, "", internal::LineOf(root, 1), &top));
  OP_RETURN_IF_ERROR(top.RejectUnknown(kTopFields));

  auto required = [](const MapView& m, std::string_view key, std::string_view what) {
    return internal::ErrorAt(Code::kInvalidArgument, m.source(), m.line(), m.PathOf(key),
                             "missing; " + std::string(what));
  };
  std::string s;
  const Entry* e = top.Find("apiVersion");
  if (e == nullptr) return required(top, "apiVersion", "expected " + std::string(kApiVersion));
  OP_RETURN_IF_ERROR(KString(top, *e, &s));
  if (s != kApiVersion) {
    return top.Error(*e, "expected " + std::string(kApiVersion) + ", got " + Quote(s));
  }
  e = top.Find("kind");
  if (e == nullptr) return required(top, "kind", "expected " + std::string(kKind));
  OP_RETURN_IF_ERROR(KString(top, *e, &s));
  if (s != kKind) return top.Error(*e, "expected " + std::string(kKind) + ", got " + Quote(s));

  // metadata
  if (top.Find("metadata") == nullptr) return required(top, "metadata", "expected metadata.name");
  MapView meta;
  OP_RETURN_IF_ERROR(top.Section("metadata", &meta));
  OP_RETURN_IF_ERROR(meta.RejectUnknown(kObjectMetaFields));
  e = meta.Find("name");
  if (e == nullptr) {
    return required(meta, "name", "every model needs a name (generateName is not supported)");
  }
  OP_RETURN_IF_ERROR(KString(meta, *e, &mf.name));
  if (!MatchesName(mf.name, true)) {
    return meta.Error(*e,
                      "expected a lowercase name of letters, digits and '-', starting with a "
                      "letter, ending with a letter or digit, at most 63 characters (KServe's "
                      "rule), got " +
                          Quote(mf.name));
  }
  mf.name_line = meta.LineOf(*e);
  if ((e = meta.Find("namespace")) != nullptr) {
    OP_RETURN_IF_ERROR(KString(meta, *e, &mf.namespace_name));
    if (!MatchesName(mf.namespace_name, false)) {
      return meta.Error(*e,
                        "expected a DNS-1123 label (lowercase letters, digits and '-', at "
                        "most 63 characters), got " +
                            Quote(mf.namespace_name));
    }
  }
  MapView labels, ann;
  OP_RETURN_IF_ERROR(KStringMap(meta, "labels", &mf.labels, &labels));
  OP_RETURN_IF_ERROR(KStringMap(meta, "annotations", &mf.annotations, &ann));

  // spec
  if (top.Find("spec") == nullptr) return required(top, "spec", "expected spec.predictor.model");
  MapView spec;
  OP_RETURN_IF_ERROR(top.Section("spec", &spec));
  OP_RETURN_IF_ERROR(spec.RejectUnknown(kSpecFields));
  for (const char* k : {"explainer", "transformer"}) {
    if ((e = spec.Find(k)) != nullptr) {
      return spec.Error(*e,
                        std::string(k) +
                            " components are not supported by outpostd (it "
                            "serves the predictor only)",
                        Code::kUnsupported);
    }
  }
  if (spec.Find("predictor") == nullptr) {
    return required(spec, "predictor", "expected spec.predictor.model");
  }
  MapView pred;
  OP_RETURN_IF_ERROR(spec.Section("predictor", &pred));
  std::vector<std::string_view> pred_known = kFrameworkFields;
  pred_known.insert(pred_known.end(), kPredictorOtherFields.begin(), kPredictorOtherFields.end());
  OP_RETURN_IF_ERROR(pred.RejectUnknown(pred_known));
  for (std::string_view k : kFrameworkFields) {
    if ((e = pred.Find(k)) != nullptr) {
      return pred.Error(*e,
                        "framework-specific predictors are not supported; use "
                        "spec.predictor.model with modelFormat.name: onnx",
                        Code::kUnsupported);
    }
  }
  if ((e = pred.Find("containers")) != nullptr) {
    return pred.Error(*e,
                      "custom predictor containers are not supported; use "
                      "spec.predictor.model with modelFormat.name: onnx",
                      Code::kUnsupported);
  }
  if (pred.Find("model") == nullptr) {
    return required(pred, "model", "expected spec.predictor.model with modelFormat and storageUri");
  }
  MapView model;
  OP_RETURN_IF_ERROR(pred.Section("model", &model));
  OP_RETURN_IF_ERROR(model.RejectUnknown(kModelFields));

  // modelFormat
  if (model.Find("modelFormat") == nullptr) {
    return required(model, "modelFormat", "expected modelFormat.name: onnx");
  }
  MapView fmt;
  OP_RETURN_IF_ERROR(model.Section("modelFormat", &fmt));
  OP_RETURN_IF_ERROR(fmt.RejectUnknown({"name", "version"}));
  if ((e = fmt.Find("name")) == nullptr) return required(fmt, "name", "expected onnx");
  OP_RETURN_IF_ERROR(KString(fmt, *e, &s));
  std::string lower = s;
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  if (lower != "onnx") {
    return fmt.Error(*e,
                     "model format " + Quote(s) +
                         " is not supported: outpostd serves ONNX "
                         "models only (modelFormat.name: onnx)",
                     Code::kUnsupported);
  }
  mf.model_format = "onnx";
  if ((e = fmt.Find("version")) != nullptr) {
    OP_RETURN_IF_ERROR(KString(fmt, *e, &s));
    mf.format_version = s;
  }
  if ((e = model.Find("runtime")) != nullptr) OP_RETURN_IF_ERROR(KString(model, *e, &mf.runtime));
  if ((e = model.Find("protocolVersion")) != nullptr) {
    OP_RETURN_IF_ERROR(KString(model, *e, &s));
    if (s != "v2") {
      const bool known = s == "v1" || s == "grpc-v1" || s == "grpc-v2";
      return model.Error(*e,
                         known ? "outpostd serves the V2 (Open Inference) protocol over HTTP "
                                 "only; use protocolVersion: v2 or leave it out"
                               : "expected one of v1, v2, grpc-v1, grpc-v2, got " + Quote(s),
                         known ? Code::kUnsupported : Code::kInvalidArgument);
    }
  }
  for (const char* k : {"storage", "storageUris"}) {
    if ((e = model.Find(k)) != nullptr) {
      return model.Error(*e, std::string(k) + " is not supported on the device; use storageUri",
                         Code::kUnsupported);
    }
  }
  if ((e = model.Find("storageUri")) == nullptr) {
    return required(model, "storageUri",
                    "expected the model's location (a path under models.model_dir, "
                    "pvc://<claim>/<path> or file:///absolute/path)");
  }
  OP_RETURN_IF_ERROR(KString(model, *e, &mf.storage_uri));
  if (mf.storage_uri.empty()) return model.Error(*e, "must not be empty");
  OP_RETURN_IF_ERROR(ParseResources(model, &mf));
  OP_RETURN_IF_ERROR(ParseAnnotations(ann, cfg, manifest_dir, &mf));
  // The model file last: a missing model should not hide a typo elsewhere.
  OP_RETURN_IF_ERROR(ResolveStorageUri(model, *model.Find("storageUri"), mf.storage_uri, cfg,
                                       manifest_dir, &mf.model_path));
  return mf;
}

Expected<ModelManifest> LoadManifest(const std::string& path, const DeviceConfig& cfg) {
  std::string text;
  OP_RETURN_IF_ERROR(internal::ReadTextFile(path, "manifest", &text));
  return ParseManifest(text, path, cfg);
}

Expected<std::vector<ModelManifest>> LoadManifestDir(const std::string& dir,
                                                     const DeviceConfig& cfg,
                                                     std::vector<Status>* per_file_errors) {
  std::error_code ec;
  const fs::file_status st = fs::status(dir, ec);
  if (st.type() == fs::file_type::not_found) {
    return NotFound("manifest directory not found: " + dir);
  }
  if (ec) return IoError("cannot read manifest directory " + dir + ": " + ec.message());
  if (!fs::is_directory(st)) return IoError("not a directory: " + dir);
  std::vector<fs::path> files;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const fs::path& p = it->path();
    const std::string fname = p.filename().string();
    const std::string ext = p.extension().string();
    if (fname.starts_with(".") || (ext != ".yaml" && ext != ".yml")) continue;
    std::error_code fec;
    if (!it->is_regular_file(fec)) continue;
    files.push_back(p);
  }
  if (ec) return IoError("cannot list manifest directory " + dir + ": " + ec.message());
  std::sort(files.begin(), files.end(),
            [](const fs::path& a, const fs::path& b) { return a.filename() < b.filename(); });

  Counter& errors = MetricsRegistry::Global().GetCounter(
      "outpost_config_manifest_errors_total",
      "Model manifests rejected when loading a manifest directory");
  std::vector<ModelManifest> out;
  for (const fs::path& p : files) {
    Expected<ModelManifest> mf = LoadManifest(p.string(), cfg);
    Status bad;
    if (!mf.ok()) {
      bad = mf.status();
    } else {
      for (const ModelManifest& prev : out) {
        if (prev.name == mf->name) {
          bad = internal::ErrorAt(
              Code::kInvalidArgument, mf->source, mf->name_line, "metadata.name",
              "model " + Quote(mf->name) + " is already declared in " + prev.source + ":" +
                  std::to_string(prev.name_line) + " (the first file in name order wins)");
          break;
        }
      }
    }
    if (bad.ok()) {
      out.push_back(std::move(mf).value());
      continue;
    }
    errors.Inc();
    if (per_file_errors == nullptr) return bad;
    per_file_errors->push_back(std::move(bad));
  }
  return out;
}

}  // namespace outpost::config
