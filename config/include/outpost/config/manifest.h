// Model manifests: KServe InferenceService files (serving.kserve.io/v1beta1) with Outpost's
// device-specific settings as `outpost.io/` annotations. The same file can be applied unchanged
// to a KServe cluster. Every field and annotation read is documented in config/README.md.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "outpost/config/device_config.h"
#include "outpost/core/status.h"

namespace outpost::config {

// Kubernetes resource quantities from `spec.predictor.model.resources.{requests,limits}`.
struct ResourceQuantities {
  std::optional<int64_t> cpu_millis;    // "500m" -> 500, "2" -> 2000
  std::optional<int64_t> memory_bytes;  // "512Mi" -> 536870912, "1G" -> 1000000000
};

struct ModelManifest {
  std::string source;          // the manifest file
  std::string name;            // metadata.name: the V2 model name (/v2/models/<name>)
  int name_line = 0;           // line of metadata.name in `source` (for messages about this model)
  std::string namespace_name;  // metadata.namespace; empty when absent
  std::string model_format = "onnx";          // spec.predictor.model.modelFormat.name (always onnx)
  std::optional<std::string> format_version;  // modelFormat.version
  std::string runtime;        // spec.predictor.model.runtime (informational; KServe's runtime)
  std::string storage_uri;    // as written
  std::string model_path;     // absolute path of the .onnx file (checked to exist)
  std::string version = "1";  // outpost.io/version
  ResourceQuantities requests;
  ResourceQuantities limits;

  // outpost.io/ annotations, with the device config's defaults filled in.
  std::string backend;  // "cpu" | "opencl" (compute.default_backend when not annotated)
  int threads = 0;      // 0 = compute.threads
  int max_batch_size = 1;
  int64_t max_queue_delay_us = 0;
  int queue_size = 64;
  int64_t timeout_ms = 0;                       // default request deadline; 0 = none
  int64_t latency_budget_ms = 0;                // routing: 0 = no budget
  std::vector<std::string> fallback_endpoints;  // routing: V2 base URLs, in order
  std::string golden_input;                     // absolute path; empty = none
  std::string golden_output;                    // absolute path; empty = none

  std::map<std::string, std::string> labels;       // metadata.labels as written
  std::map<std::string, std::string> annotations;  // metadata.annotations as written (all)
};

// Parses Kubernetes quantities. Negative values are rejected (kInvalidArgument); fractions round
// up, as Kubernetes does.
Expected<int64_t> ParseCpuMillis(std::string_view quantity);
Expected<int64_t> ParseMemoryBytes(std::string_view quantity);

// Reads one manifest and resolves it against `cfg` (model_dir, per-model defaults). Missing
// file or model: kNotFound; content errors: kInvalidArgument "FILE:LINE: KEY: what";
// well-formed but unservable here (model format, storage scheme, protocol v1, transformer):
// kUnsupported, same shape.
Expected<ModelManifest> LoadManifest(const std::string& path, const DeviceConfig& cfg);

// Same, from text; relative golden paths resolve against the directory of `source_name`.
Expected<ModelManifest> ParseManifest(std::string_view yaml_text, std::string_view source_name,
                                      const DeviceConfig& cfg);

// Loads every *.yaml / *.yml file directly in `dir` (sorted by name; dot files skipped).
// With `per_file_errors`: a bad file is reported there and skipped, the others are returned; a
// model name declared twice keeps the first file (in name order) and reports the later one,
// naming both. Without it (nullptr): the first error is returned. A missing `dir` is kNotFound.
Expected<std::vector<ModelManifest>> LoadManifestDir(const std::string& dir,
                                                     const DeviceConfig& cfg,
                                                     std::vector<Status>* per_file_errors);

// Rewrites the scalar values of spec.predictor.model.storageUri and of the golden-input/output
// annotations in a manifest's text, keeping everything else as written (comments, quoting).
// `source` names the text in errors. A value spanning lines is refused.
Expected<std::string> RewriteManifestPaths(const std::string& text, const std::string& source,
                                           const std::string& storage_uri,
                                           const std::string& golden_input,
                                           const std::string& golden_output);

}  // namespace outpost::config
