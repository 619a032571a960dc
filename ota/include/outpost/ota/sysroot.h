// The libostree side of the update agent: a GPG-verified remote, pulls verified against trusted
// keys, deployments with /etc merged and /var kept, rollback by rewriting the deployment list.
// Works on a real sysroot ("/") and on a fake one made by `ostree admin init-fs` (tests).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "outpost/core/status.h"

namespace outpost::ota {

struct SysrootConfig {
  std::string sysroot = "/";  // the physical root
  std::string osname;         // the stateroot (`ostree admin os-init NAME`)
  std::string remote;         // remote name in the sysroot's repo
  std::string ref;            // the OS ref on that remote
  // A commit counts as signed only with a valid signature by one of these (V4 fingerprints,
  // primary or subkey): libostree also trusts its global keyring, which is not ours to trust.
  std::vector<std::string> trusted_fingerprints;
  // Non-empty: AddRemote, Pull, RemoteHead and VerifyCommit use the plain repository at this
  // path instead of the sysroot's (model-only updates); created bare-user-only when missing.
  std::string repo;
};

// Adds (or replaces) the remote with gpg-verify and gpg-verify-summary on, and imports the
// public keys (armored or binary files) into its keyring.
Status AddRemote(const SysrootConfig& cfg, const std::string& url,
                 const std::vector<std::string>& key_files);

// Pulls the ref (static deltas used when the summary lists one) and verifies its commit; returns
// the commit. Unsigned, untrusted or tampered content is refused (kInvalidArgument), network
// failures are kUnavailable.
Expected<std::string> Pull(const SysrootConfig& cfg);

// The commit the remote's ref points at, from its summary (signature checked by libostree with
// gpg-verify-summary; nothing else is fetched). The check before a pull.
Expected<std::string> RemoteHead(const SysrootConfig& cfg);

// A commit in the sysroot's repo has a valid signature by a trusted key (kInvalidArgument if not).
Status VerifyCommit(const SysrootConfig& cfg, const std::string& commit);

struct Deployment {
  std::string commit;
  std::string version;  // commit metadata "version"
  int serial = 0;
  std::string path;  // absolute deployment directory
};

// The deployments of cfg.osname, default first (the bootloader order).
Expected<std::vector<Deployment>> ListDeployments(const SysrootConfig& cfg);

// The commit of the deployment the system booted (ostree's view); empty when none was booted
// from this sysroot (a fake sysroot in tests, a container).
Expected<std::string> BootedCommit(const SysrootConfig& cfg);

// Deploys a verified commit as the new default, /etc merged from the current default and /var
// shared; the previous default stays as the rollback deployment.
Expected<Deployment> Deploy(const SysrootConfig& cfg, const std::string& commit);

// Makes the deployment of `previous` the default again and removes those of `failed` (empty:
// keep them). kNotFound when no deployment of `previous` exists.
Status RollBack(const SysrootConfig& cfg, const std::string& previous, const std::string& failed);

// A model bundle commit as `outpost image build` writes it (its metadata; image/README.md).
struct BundleFileMeta {
  std::string path;    // relative to the bundle
  std::string sha256;  // hex
  uint64_t bytes = 0;
};
struct ModelCommitInfo {
  std::string kind;        // outpost.kind: "model" for a bundle
  std::string version;     // version
  std::string model_name;  // outpost.model.name
  uint32_t runtime_abi = 0;
  std::vector<std::string> ref_bindings;  // ostree.ref-binding
  std::vector<BundleFileMeta> files;      // outpost.model.files
};
// Reads the metadata of `commit` in the repo (kNotFound when it is not there).
Expected<ModelCommitInfo> ReadModelCommit(const SysrootConfig& cfg, const std::string& commit);
// Checks the tree of `commit` out to `dest` (which must not exist) as plain copies: nothing in
// the checkout is a hard link into the repository, so a later change there cannot corrupt it.
Status CheckoutCommit(const SysrootConfig& cfg, const std::string& commit,
                      const std::string& dest);

}  // namespace outpost::ota
