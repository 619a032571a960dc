// Static deltas outside libostree's pull (ota/README.md, "Delta download"): the remote's signed
// summary as the list of deltas, and the offline application of a delta followed by our own
// checks (signature by a trusted key, no downgrade) before the ref moves. Implemented in
// sysroot.cpp beside the other libostree calls; used by fetch.cpp and the USB bundle path.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "outpost/core/status.h"
#include "outpost/ota/sysroot.h"

namespace outpost::ota::internal {

struct RemoteSummary {
  std::string url;   // the remote's URL, no trailing '/'
  std::string head;  // the commit of cfg.ref
  // ostree.static-deltas: delta name ("FROM-TO", or "TO" from empty) -> sha256 (hex) of its
  // superblock.
  std::map<std::string, std::string> deltas;
};

// The remote's summary, fetched by libostree (gpg-verify-summary) and its signature checked
// again here against cfg.trusted_fingerprints. Untrusted or unsigned: kInvalidArgument; the
// network or the server: kUnavailable; no such ref: kNotFound.
Expected<RemoteSummary> ReadRemoteSummary(const SysrootConfig& cfg);

// ostree's server path of a delta, relative to the repo: deltas/<2>/<rest>[-<to>] in modified
// base64 (from empty: the "to" alone).
std::string DeltaRelPath(const std::string& from, const std::string& to);

// What a static delta's superblock says: the commit it carries ("to"), its base ("from"; empty:
// from nothing), its parts (sha256 and size of each part file) and how many objects it leaves
// to be fetched one by one (fallbacks). `path` is a superblock or a self-contained delta file.
struct Superblock {
  struct Part {
    std::string sha256;  // hex
    uint64_t bytes = 0;  // compressed: the size of the part file
  };
  std::string from, to;
  uint64_t timestamp = 0;  // of the commit it carries (seconds since the epoch)
  std::vector<Part> parts;
  size_t fallbacks = 0;
};
Expected<Superblock> ReadSuperblock(const std::string& path);

// The downgrade check: a commit of time `t` is refused (kInvalidArgument) when older than the
// commit cfg.remote:cfg.ref points at or `not_older_than` (when not empty and in the repo).
Status CheckNotOlder(const SysrootConfig& cfg, const std::string& commit, uint64_t t,
                     const std::string& not_older_than);

// Applies a static delta offline (`path`: a directory holding `superblock` and its parts `0`,
// `1`, ..., or one self-contained delta file) into the repo, then checks what libostree's
// offline application does not: the commit it carries is `expected_to` (when not empty), is
// signed by a trusted key (VerifyCommit's rule) and is not older than the ref's current commit
// nor `not_older_than` (when not empty). Only then does cfg.remote:cfg.ref point at it.
// Refusals: kInvalidArgument; a full disk: kResourceExhausted. Returns the commit.
Expected<std::string> ApplyStaticDelta(const SysrootConfig& cfg, const std::string& path,
                                       const std::string& expected_to,
                                       const std::string& not_older_than);

}  // namespace outpost::ota::internal
