// outpost image: signed, reproducible OSTree commits of the device OS tree and of model bundles,
// USB bundles, and their offline verification. Layouts, metadata keys and the bundle format are
// documented in image/README.md.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "outpost/core/status.h"

namespace outpost::image {

// Version of the contract between an OS image and what runs on and updates it: the model bundle
// layout (model.onnx, manifest.yaml, golden/), the place of bundles and manifests in the OS
// tree, KServe v1beta1 manifests and the V2 protocol. Stored as `outpost.runtime.abi`; bumped
// when any of them changes incompatibly.
inline constexpr uint32_t kRuntimeAbi = 1;

struct SigningKey {
  std::string gpg_homedir;  // GnuPG home holding the secret key (no passphrase: batch signing)
  std::string key_id;       // key id or fingerprint
};

struct BuildOptions {
  std::string repo;          // OSTree repo; created (archive mode) when missing
  std::string ref;           // OS ref, e.g. "outpost/stable/x86_64"
  std::string base_rootfs;   // base OS tree (a directory); needs usr/lib/modules/<kver>/vmlinuz
  std::string outpostd;      // the outpostd binary
  std::string systemd_dir;   // outpostd's units, presets, sysusers and tmpfiles files
  std::string device_config; // device.yaml, validated, installed as /etc/outpost/device.yaml
  std::vector<std::string> manifests;  // model manifests (each needs golden input and output)
  // Relative storageUris resolve here; empty = against each manifest's own directory.
  std::string model_dir;
  std::string version;       // OS version ("version" in the commit)
  int64_t timestamp = -1;    // commit time, seconds since the epoch (required, >= 0)
  std::map<std::string, std::string> build_info;  // caller-supplied (e.g. git=..., ci-job=...)
  // Model refs are <model_ref_prefix>/<name>; empty = "<dirname of ref>/models".
  std::string model_ref_prefix;
  bool sign = true;          // false only for tests of the refusal path
  SigningKey key;
  int delta_depth = 2;       // static deltas from each of the last N commits (and from empty)
};

struct ModelInfo {
  std::string name;
  std::string version;
  std::string sha256;  // of model.onnx
  uint64_t bytes = 0;
  std::string ref;     // its own ref
  std::string commit;  // its commit on that ref
  bool new_commit = false;  // false: the ref already held an identical bundle
};

struct DeltaInfo {
  std::string ref;
  std::string from;  // empty: from nothing (first install)
  std::string to;
  uint64_t bytes = 0;  // superblock + parts on disk
};

struct BuildResult {
  std::string commit;  // the OS commit
  std::vector<ModelInfo> models;
  std::vector<DeltaInfo> deltas;
};

// Composes the OS tree, commits it and the model bundles, signs the commits and the summary, and
// generates the static deltas. Same inputs and same parent commit give the same checksum.
Expected<BuildResult> Build(const BuildOptions& opts);

struct BundleOptions {
  std::string repo;               // source repo (from Build)
  std::vector<std::string> refs;  // refs to carry; empty = every ref of the repo
  std::string out;                // bundle directory to create (must not exist, or be empty)
  int delta_depth = 2;            // delta files from the last N commits of each ref, and from empty
  SigningKey key;                 // signs the bundle repo's summary
};

// Writes a USB bundle: repo/ (archive repo holding the refs with their signatures, a signed
// summary), deltas/*.delta (self-contained static delta files) and outpost-bundle.json.
Expected<std::vector<DeltaInfo>> MakeBundle(const BundleOptions& opts);

struct VerifyOptions {
  std::string path;                       // an OSTree repo, or a bundle directory
  std::vector<std::string> trusted_keys;  // public key files (armored or binary) or directories
  std::vector<std::string> refs;          // refs to check; empty = all
};

struct VerifiedRef {
  std::string ref;
  std::string commit;
  std::string kind;     // "os" | "model"
  std::string version;
  std::vector<std::string> signed_by;  // fingerprints of the valid signatures
  std::vector<ModelInfo> models;       // os: its bundles; model: itself
};

struct VerifyReport {
  bool bundle = false;
  std::vector<VerifiedRef> refs;
  std::vector<DeltaInfo> deltas;  // bundle delta files applied and verified offline
};

// Offline verification: every commit signed by a trusted key, the summary signed and matching the
// refs, every reachable object intact, commit metadata complete and every model's sha256 equal to
// its metadata; for a bundle also each delta file applied into a scratch repo and its result
// verified the same way. The first problem is returned as kInvalidArgument (untrusted or tampered
// content) naming the ref, commit, object or file; kNotFound / kIoError for missing paths.
Expected<VerifyReport> Verify(const VerifyOptions& opts);

// The V4 fingerprints (primary keys and subkeys, upper-case hex) of public key files, armored or
// binary (a directory: every file in it), as Verify() matches signers against them. The update
// agent's trusted fingerprints come from here (`outpost ota run-once --trusted-key`).
Expected<std::vector<std::string>> KeyFingerprints(const std::vector<std::string>& key_files);

}  // namespace outpost::image
