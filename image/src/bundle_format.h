// The USB bundle's index file (outpost-bundle.json); the format is in image/README.md.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "outpost/core/status.h"

namespace outpost::image::internal {

inline constexpr const char* kBundleIndex = "outpost-bundle.json";
inline constexpr const char* kBundleRepoDir = "repo";
inline constexpr const char* kBundleDeltaDir = "deltas";
inline constexpr const char* kBundleFormat = "outpost-bundle/1";

struct BundleDelta {
  std::string file;  // relative to the bundle directory: deltas/<name>.delta
  std::string ref;
  std::string from;  // "" = from empty
  std::string to;
  uint64_t bytes = 0;
  std::string sha256;
};

struct BundleIndex {
  std::map<std::string, std::string> refs;  // ref -> commit
  std::vector<BundleDelta> deltas;
};

Expected<BundleIndex> ReadBundleIndex(const std::string& path);
Status WriteBundleIndex(const std::string& path, const BundleIndex& index);

}  // namespace outpost::image::internal
