// Internals shared by build, bundle and verify: GLib/libostree errors as Status, hashing, repos,
// temporary directories, signing and static delta paths.
#pragma once

#include <ostree.h>

#include <cstdint>
#include <string>
#include <vector>

#include "outpost/core/status.h"
#include "outpost/image/image.h"

namespace outpost::image::internal {

// "context: <GError message>" with `code`; clears nothing (the caller owns `e`).
Status FromGError(const GError* e, const std::string& context, Code code = Code::kIoError);

struct Digest {
  std::string sha256;
  uint64_t bytes = 0;
};
Expected<Digest> Sha256File(const std::string& path);
Expected<Digest> Sha256Stream(GInputStream* in, const std::string& what);

// Opens an existing repo (kNotFound when `path` is not one).
Expected<OstreeRepo*> OpenRepo(const std::string& path);
// Opens `path`, or creates a repo in `mode` there (with its parent directories).
Expected<OstreeRepo*> OpenOrCreateRepo(const std::string& path,
                                       OstreeRepoMode mode = OSTREE_REPO_MODE_ARCHIVE);

// A directory under $TMPDIR (or /tmp) removed with its contents on destruction.
class TempDir {
 public:
  static Expected<TempDir> Make(const std::string& prefix);
  TempDir(TempDir&& o) noexcept : path_(std::move(o.path_)) { o.path_.clear(); }
  TempDir& operator=(TempDir&&) = delete;
  TempDir(const TempDir&) = delete;
  ~TempDir();
  const std::string& path() const { return path_; }

 private:
  explicit TempDir(std::string p) : path_(std::move(p)) {}
  std::string path_;
};

Status SignCommit(OstreeRepo* repo, const std::string& commit, const SigningKey& key);
// Regenerates the summary (refs and static deltas) and signs it.
Status UpdateSignedSummary(OstreeRepo* repo, const SigningKey& key);

// Resolves `ref`; "" when the repo does not have it.
Expected<std::string> ResolveRef(OstreeRepo* repo, const std::string& ref);
// The commit and up to `depth` of its ancestors present in the repo, newest first.
Expected<std::vector<std::string>> Ancestors(OstreeRepo* repo, const std::string& commit, int depth);

// Generates a static delta from `from` ("" = empty) to `to`. Every object goes into the delta
// parts (no fallback objects), so the delta alone carries the update. With `filename` the delta
// is written there as one self-contained file (parts inline) instead of into the repo.
Status GenerateDelta(OstreeRepo* repo, const std::string& from, const std::string& to,
                     const std::string& filename);
// Bytes of an in-repo delta (superblock and parts).
uint64_t InRepoDeltaBytes(const std::string& repo_path, const std::string& from,
                          const std::string& to);

// Counts an outcome of build/bundle/verify in the metrics registry.
void CountOutcome(const char* op, const Status& s);

}  // namespace outpost::image::internal
