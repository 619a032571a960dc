// Composition of the OS tree and the model bundles from the build inputs, before any commit.
#pragma once

#include <string>
#include <vector>

#include "ostree_util.h"
#include "outpost/config/manifest.h"

namespace outpost::image::internal {

// Where things live in the OS tree (paths relative to its root).
inline constexpr const char* kOsModelsDir = "usr/lib/outpost/models";  // <name>/ = one bundle
inline constexpr const char* kOsManifestsDir = "usr/etc/outpost/models.d";
inline constexpr const char* kDeviceManifestDir = "/etc/outpost/models.d";
inline constexpr const char* kOsDeviceConfig = "usr/etc/outpost/device.yaml";

struct BundleFile {
  std::string path;  // relative to the bundle directory
  Digest digest;
};

struct StagedModel {
  std::string name;
  std::string version;
  std::string dir;               // staged bundle directory (inside the staged OS overlay)
  Digest model;                  // model.onnx
  std::vector<BundleFile> files;  // every file of the bundle, sorted by path
};

struct StagedOs {
  std::string overlay;  // directory laid over the base (usr/bin/outpostd, units, config, models)
  std::vector<StagedModel> models;  // sorted by name
  Digest outpostd;
  Digest device_config;
};

// Validates the inputs and writes the overlay and the bundles under `stage_dir`.
Expected<StagedOs> Stage(const BuildOptions& opts, const std::string& stage_dir);


}  // namespace outpost::image::internal
