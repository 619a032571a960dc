// libostree C API behind ota/sysroot.h (Debian 12: libostree 2022.7, GPG only).
#include "outpost/ota/sysroot.h"

#include <fcntl.h>
#include <ostree.h>

#include <algorithm>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <utility>

#include "delta.h"
#include "outpost/core/log.h"
#include "outpost/core/metrics.h"

namespace outpost::ota {
namespace {

void Count(const char* op, const Status& s) {
  MetricsRegistry::Global()
      .GetCounter("outpost_ota_operations_total", "OTA libostree operations by outcome",
                  {{"op", op}, {"outcome", s.ok() ? "ok" : CodeName(s.code())}})
      .Inc();
  if (!s.ok()) OP_LOG_WARN("ota: {} failed: {}", op, s.message());
}

// ENOSPC (or a quota) anywhere under libostree: the repo, the deployments, /boot; or libostree
// refusing to start because the space would not suffice.
bool NoSpace(const GError* e) {
  return e && (g_error_matches(e, G_IO_ERROR, G_IO_ERROR_NO_SPACE) ||
               strstr(e->message, "No space left on device") ||
               strstr(e->message, "Disk quota exceeded") ||
               // libostree's own checks before writing: a static delta's size
               // ("Delta requires N MB free space, but only M MB available") and the repo's
               // min-free-space-percent/-size ("... would be exceeded").
               strstr(e->message, "free space, but only") ||
               strstr(e->message, "min-free-space"));
}

Status FromGError(const GError* e, const std::string& what, Code code = Code::kIoError) {
  if (NoSpace(e)) {
    MetricsRegistry::Global()
        .GetCounter("outpost_ota_disk_full_total",
                    "OTA operations stopped by a full disk (the update stays resumable)")
        .Inc();
    return ResourceExhausted(what + ": disk full: " + e->message);
  }
  return Status(code, what + ": " + (e ? e->message : "unknown error"));
}

// A loaded, locked sysroot and its repo; unlocked on destruction.
struct Loaded {
  OstreeSysroot* sysroot = nullptr;
  OstreeRepo* repo = nullptr;
  bool locked = false;
  ~Loaded() {
    if (locked) ostree_sysroot_unlock(sysroot);
    if (repo) g_object_unref(repo);
    if (sysroot) g_object_unref(sysroot);
  }
};

Status Load(const SysrootConfig& cfg, Loaded& l, bool lock) {
  if (!cfg.repo.empty()) {  // a plain repository (model updates): no sysroot, no lock
    g_autoptr(GFile) rpath = g_file_new_for_path(cfg.repo.c_str());
    l.repo = ostree_repo_new(rpath);
    g_autoptr(GError) err = nullptr;
    std::error_code ec;
    if (!std::filesystem::exists(cfg.repo + "/config", ec)) {
      std::filesystem::create_directories(cfg.repo, ec);
      if (!ostree_repo_create(l.repo, OSTREE_REPO_MODE_BARE_USER_ONLY, nullptr, &err))
        return FromGError(err, "cannot create repo '" + cfg.repo + "'");
      OP_LOG_INFO("ota: created repo {} (bare-user-only)", cfg.repo);
    } else if (!ostree_repo_open(l.repo, nullptr, &err)) {
      return FromGError(err, "cannot open repo '" + cfg.repo + "'");
    }
    return Status::Ok();
  }
  g_autoptr(GFile) path = g_file_new_for_path(cfg.sysroot.c_str());
  l.sysroot = ostree_sysroot_new(path);
  g_autoptr(GError) err = nullptr;
  if (!ostree_sysroot_load(l.sysroot, nullptr, &err))
    return FromGError(err, "cannot load sysroot '" + cfg.sysroot + "'");
  if (lock) {
    if (!ostree_sysroot_lock(l.sysroot, &err))
      return FromGError(err, "cannot lock sysroot '" + cfg.sysroot + "'");
    l.locked = true;
  }
  if (!ostree_sysroot_get_repo(l.sysroot, &l.repo, nullptr, &err))
    return FromGError(err, "cannot open the repo of sysroot '" + cfg.sysroot + "'");
  return Status::Ok();
}

// A failed deploy may leave a deployment directory (or a half-written boot directory) that no
// boot entry names: ostree_sysroot_cleanup removes what the current deployments do not use.
Status CleanedUp(Loaded& l, Status failed) {
  g_autoptr(GError) err = nullptr;
  if (!ostree_sysroot_cleanup(l.sysroot, nullptr, &err))
    OP_LOG_WARN("ota: cleanup after a failed deploy: {}", err ? err->message : "?");
  return failed;
}

// A valid signature in `res` by one of cfg.trusted_fingerprints (primary or subkey).
Status TrustedSignature(OstreeGpgVerifyResult* res, const SysrootConfig& cfg,
                        const std::string& what) {
  g_autoptr(GError) err = nullptr;
  std::string foreign;
  bool trusted = false;
  for (guint i = 0, n = ostree_gpg_verify_result_count_all(res); i < n; ++i) {
    g_autoptr(GVariant) all = ostree_gpg_verify_result_get_all(res, i);
    gboolean valid = FALSE;
    const char *fp = nullptr, *primary = nullptr;
    g_variant_get_child(all, OSTREE_GPG_SIGNATURE_ATTR_VALID, "b", &valid);
    g_variant_get_child(all, OSTREE_GPG_SIGNATURE_ATTR_FINGERPRINT, "&s", &fp);
    g_variant_get_child(all, OSTREE_GPG_SIGNATURE_ATTR_FINGERPRINT_PRIMARY, "&s", &primary);
    if (!valid) continue;
    auto in = [&](const char* f) {
      return f && std::find(cfg.trusted_fingerprints.begin(), cfg.trusted_fingerprints.end(),
                            std::string(f)) != cfg.trusted_fingerprints.end();
    };
    if (in(fp) || in(primary))
      trusted = true;
    else if (fp)
      foreign = fp;
  }
  if (!ostree_gpg_verify_result_require_valid_signature(res, &err))
    return FromGError(err, what + ": no valid signature", Code::kInvalidArgument);
  if (!trusted)
    return InvalidArgument(what + ": signed only by key " + foreign +
                           ", which is not among the trusted keys");
  return Status::Ok();
}

Status VerifyIn(OstreeRepo* repo, const SysrootConfig& cfg, const std::string& commit) {
  if (cfg.trusted_fingerprints.empty())
    return InvalidArgument("no trusted key fingerprints configured");
  const std::string what = "commit " + commit;
  g_autoptr(GError) err = nullptr;
  g_autoptr(OstreeGpgVerifyResult) res =
      ostree_repo_verify_commit_for_remote(repo, commit.c_str(), cfg.remote.c_str(), nullptr, &err);
  if (!res) return FromGError(err, what + " refused", Code::kInvalidArgument);
  return TrustedSignature(res, cfg, what);
}

std::string VersionOf(OstreeRepo* repo, const char* commit) {
  g_autoptr(GVariant) c = nullptr;
  if (!ostree_repo_load_variant(repo, OSTREE_OBJECT_TYPE_COMMIT, commit, &c, nullptr)) return "";
  g_autoptr(GVariant) meta = g_variant_get_child_value(c, 0);
  const char* v = nullptr;
  if (!g_variant_lookup(meta, "version", "&s", &v)) return "";
  return v;
}

Deployment Describe(OstreeSysroot* s, OstreeRepo* repo, OstreeDeployment* d) {
  Deployment out;
  out.commit = ostree_deployment_get_csum(d);
  out.serial = ostree_deployment_get_deployserial(d);
  out.version = VersionOf(repo, out.commit.c_str());
  g_autofree char* rel = ostree_sysroot_get_deployment_dirpath(s, d);
  g_autofree char* root = g_file_get_path(ostree_sysroot_get_path(s));
  out.path = std::string(root) + "/" + rel;
  return out;
}

}  // namespace

Status AddRemote(const SysrootConfig& cfg, const std::string& url,
                 const std::vector<std::string>& key_files) {
  Status s = [&]() -> Status {
    Loaded l;
    OP_RETURN_IF_ERROR(Load(cfg, l, true));
    g_auto(GVariantBuilder) b;
    g_variant_builder_init(&b, G_VARIANT_TYPE("a{sv}"));
    g_variant_builder_add(&b, "{sv}", "gpg-verify", g_variant_new_boolean(TRUE));
    g_variant_builder_add(&b, "{sv}", "gpg-verify-summary", g_variant_new_boolean(TRUE));
    g_autoptr(GVariant) opts = g_variant_ref_sink(g_variant_builder_end(&b));
    g_autoptr(GError) err = nullptr;
    if (!ostree_repo_remote_change(l.repo, nullptr, OSTREE_REPO_REMOTE_CHANGE_REPLACE,
                                   cfg.remote.c_str(), url.c_str(), opts, nullptr, &err))
      return FromGError(err, "cannot add remote '" + cfg.remote + "'");
    if (key_files.empty()) return InvalidArgument("no trusted key files for the remote");
    for (const auto& k : key_files) {
      g_autoptr(GFile) f = g_file_new_for_path(k.c_str());
      g_autoptr(GFileInputStream) in = g_file_read(f, nullptr, &err);
      if (!in) return FromGError(err, "cannot read key '" + k + "'", Code::kNotFound);
      guint imported = 0;
      if (!ostree_repo_remote_gpg_import(l.repo, cfg.remote.c_str(), G_INPUT_STREAM(in), nullptr,
                                         &imported, nullptr, &err))
        return FromGError(err, "cannot import key '" + k + "'", Code::kInvalidArgument);
    }
    return Status::Ok();
  }();
  Count("add-remote", s);
  return s;
}

Expected<std::string> Pull(const SysrootConfig& cfg) {
  Expected<std::string> r = [&]() -> Expected<std::string> {
    Loaded l;
    OP_RETURN_IF_ERROR(Load(cfg, l, false));
    g_auto(GVariantBuilder) b;
    g_variant_builder_init(&b, G_VARIANT_TYPE("a{sv}"));
    const char* refs[] = {cfg.ref.c_str(), nullptr};
    g_variant_builder_add(&b, "{sv}", "refs", g_variant_new_strv(refs, -1));
    g_variant_builder_add(&b, "{sv}", "flags", g_variant_new_int32(OSTREE_REPO_PULL_FLAGS_NONE));
    // A ref moved back to an older (even signed) commit is a downgrade: refused.
    g_variant_builder_add(&b, "{sv}", "timestamp-check", g_variant_new_boolean(TRUE));
    g_autoptr(GVariant) opts = g_variant_ref_sink(g_variant_builder_end(&b));
    g_autoptr(GError) err = nullptr;
    if (!ostree_repo_pull_with_options(l.repo, cfg.remote.c_str(), opts, nullptr, nullptr, &err)) {
      // Signature and checksum problems are refusals; the rest is the network or the server.
      bool refused =
          !NoSpace(err) &&
          (g_error_matches(err, OSTREE_GPG_ERROR, OSTREE_GPG_ERROR_NO_SIGNATURE) ||
          g_error_matches(err, OSTREE_GPG_ERROR, OSTREE_GPG_ERROR_MISSING_KEY) ||
          g_error_matches(err, OSTREE_GPG_ERROR, OSTREE_GPG_ERROR_INVALID_SIGNATURE) ||
          (err && (strstr(err->message, "GPG") || strstr(err->message, "ignature") ||
                   strstr(err->message, "Corrupted") || strstr(err->message, "checksum") ||
                   strstr(err->message, "chronologically older"))));
      return FromGError(err, "pull of " + cfg.remote + ":" + cfg.ref + " failed",
                        refused ? Code::kInvalidArgument : Code::kUnavailable);
    }
    g_autofree char* commit = nullptr;
    std::string refspec = cfg.remote + ":" + cfg.ref;
    if (!ostree_repo_resolve_rev(l.repo, refspec.c_str(), FALSE, &commit, &err))
      return FromGError(err, "cannot resolve " + refspec, Code::kInternal);
    OP_RETURN_IF_ERROR(VerifyIn(l.repo, cfg, commit));
    return std::string(commit);
  }();
  Count("pull", r.status());
  return r;
}

Expected<std::string> RemoteHead(const SysrootConfig& cfg) {
  Expected<std::string> r = [&]() -> Expected<std::string> {
    Loaded l;
    OP_RETURN_IF_ERROR(Load(cfg, l, false));
    g_autoptr(GHashTable) refs = nullptr;
    g_autoptr(GError) err = nullptr;
    if (!ostree_repo_remote_list_refs(l.repo, cfg.remote.c_str(), &refs, nullptr, &err)) {
      bool refused = err && (strstr(err->message, "GPG") || strstr(err->message, "ignature"));
      return FromGError(err, "cannot read the summary of remote " + cfg.remote,
                        refused ? Code::kInvalidArgument : Code::kUnavailable);
    }
    auto* commit = static_cast<const char*>(g_hash_table_lookup(refs, cfg.ref.c_str()));
    if (!commit) return NotFound("remote " + cfg.remote + " has no ref " + cfg.ref);
    return std::string(commit);
  }();
  Count("check", r.status());
  return r;
}

Expected<std::string> BootedCommit(const SysrootConfig& cfg) {
  Loaded l;
  OP_RETURN_IF_ERROR(Load(cfg, l, false));
  OstreeDeployment* d = ostree_sysroot_get_booted_deployment(l.sysroot);
  return std::string(d ? ostree_deployment_get_csum(d) : "");
}

Status VerifyCommit(const SysrootConfig& cfg, const std::string& commit) {
  Loaded l;
  Status s = Load(cfg, l, false);
  if (s.ok()) s = VerifyIn(l.repo, cfg, commit);
  Count("verify", s);
  return s;
}

Expected<std::vector<Deployment>> ListDeployments(const SysrootConfig& cfg) {
  Loaded l;
  OP_RETURN_IF_ERROR(Load(cfg, l, false));
  std::vector<Deployment> out;
  g_autoptr(GPtrArray) deps = ostree_sysroot_get_deployments(l.sysroot);
  for (guint i = 0; i < deps->len; ++i) {
    auto* d = static_cast<OstreeDeployment*>(deps->pdata[i]);
    if (cfg.osname == ostree_deployment_get_osname(d))
      out.push_back(Describe(l.sysroot, l.repo, d));
  }
  return out;
}

Expected<Deployment> Deploy(const SysrootConfig& cfg, const std::string& commit) {
  Expected<Deployment> r = [&]() -> Expected<Deployment> {
    Loaded l;
    OP_RETURN_IF_ERROR(Load(cfg, l, true));
    // Never deploy on the word of the pull alone (an offline delta carries no check at all).
    OP_RETURN_IF_ERROR(VerifyIn(l.repo, cfg, commit));
    std::string refspec = cfg.remote + ":" + cfg.ref;
    g_autoptr(GKeyFile) origin = ostree_sysroot_origin_new_from_refspec(l.sysroot, refspec.c_str());
    g_autoptr(OstreeDeployment) merge =
        ostree_sysroot_get_merge_deployment(l.sysroot, cfg.osname.c_str());
    OstreeSysrootDeployTreeOpts opts = {};
    g_autoptr(OstreeDeployment) dep = nullptr;
    g_autoptr(GError) err = nullptr;
    if (!ostree_sysroot_deploy_tree_with_options(l.sysroot, cfg.osname.c_str(), commit.c_str(),
                                                 origin, merge, &opts, &dep, nullptr, &err))
      return CleanedUp(l, FromGError(err, "cannot deploy " + commit));
    if (!ostree_sysroot_simple_write_deployment(l.sysroot, cfg.osname.c_str(), dep, merge,
                                                OSTREE_SYSROOT_SIMPLE_WRITE_DEPLOYMENT_FLAGS_NONE,
                                                nullptr, &err))
      return CleanedUp(l, FromGError(err, "cannot write the deployments with " + commit));
    return Describe(l.sysroot, l.repo, dep);
  }();
  Count("deploy", r.status());
  return r;
}

Status RollBack(const SysrootConfig& cfg, const std::string& previous, const std::string& failed) {
  Status s = [&]() -> Status {
    Loaded l;
    OP_RETURN_IF_ERROR(Load(cfg, l, true));
    g_autoptr(GPtrArray) deps = ostree_sysroot_get_deployments(l.sysroot);
    g_autoptr(GPtrArray) next = g_ptr_array_new_with_free_func(g_object_unref);
    OstreeDeployment* good = nullptr;
    for (guint i = 0; i < deps->len; ++i) {
      auto* d = static_cast<OstreeDeployment*>(deps->pdata[i]);
      if (!good && cfg.osname == ostree_deployment_get_osname(d) &&
          previous == ostree_deployment_get_csum(d))
        good = d;
    }
    if (!good) return NotFound("no deployment of " + previous + " to roll back to");
    g_ptr_array_add(next, g_object_ref(good));
    for (guint i = 0; i < deps->len; ++i) {
      auto* d = static_cast<OstreeDeployment*>(deps->pdata[i]);
      if (d == good) continue;
      if (!failed.empty() && cfg.osname == ostree_deployment_get_osname(d) &&
          failed == ostree_deployment_get_csum(d))
        continue;
      g_ptr_array_add(next, g_object_ref(d));
    }
    g_autoptr(GError) err = nullptr;
    if (!ostree_sysroot_write_deployments(l.sysroot, next, nullptr, &err))
      return FromGError(err, "cannot write the deployments for the rollback to " + previous);
    return Status::Ok();
  }();
  Count("rollback", s);
  return s;
}

Expected<ModelCommitInfo> ReadModelCommit(const SysrootConfig& cfg, const std::string& commit) {
  Loaded l;
  OP_RETURN_IF_ERROR(Load(cfg, l, false));
  g_autoptr(GVariant) c = nullptr;
  g_autoptr(GError) err = nullptr;
  if (!ostree_repo_load_variant(l.repo, OSTREE_OBJECT_TYPE_COMMIT, commit.c_str(), &c, &err))
    return FromGError(err, "commit " + commit + " not in the repo", Code::kNotFound);
  g_autoptr(GVariant) meta = g_variant_get_child_value(c, 0);
  ModelCommitInfo info;
  const char* v = nullptr;
  if (g_variant_lookup(meta, "outpost.kind", "&s", &v)) info.kind = v;
  if (g_variant_lookup(meta, "version", "&s", &v)) info.version = v;
  if (g_variant_lookup(meta, "outpost.model.name", "&s", &v)) info.model_name = v;
  guint32 abi = 0;
  if (g_variant_lookup(meta, "outpost.runtime.abi", "u", &abi)) info.runtime_abi = GUINT32_FROM_BE(abi);
  g_autofree const char** binds = nullptr;
  if (g_variant_lookup(meta, "ostree.ref-binding", "^a&s", &binds))
    for (const char** b = binds; b && *b; ++b) info.ref_bindings.emplace_back(*b);
  g_autoptr(GVariant) files = g_variant_lookup_value(meta, "outpost.model.files",
                                                     G_VARIANT_TYPE("a(sst)"));
  if (files) {
    for (gsize i = 0, n = g_variant_n_children(files); i < n; ++i) {
      const char *path = nullptr, *sha = nullptr;
      guint64 bytes = 0;
      g_variant_get_child(files, i, "(&s&st)", &path, &sha, &bytes);
      info.files.push_back({path, sha, GUINT64_FROM_BE(bytes)});
    }
  }
  return info;
}

Status CheckoutCommit(const SysrootConfig& cfg, const std::string& commit,
                      const std::string& dest) {
  Status s = [&]() -> Status {
    Loaded l;
    OP_RETURN_IF_ERROR(Load(cfg, l, false));
    OstreeRepoCheckoutAtOptions opts{};
    opts.mode = OSTREE_REPO_CHECKOUT_MODE_USER;
    opts.overwrite_mode = OSTREE_REPO_CHECKOUT_OVERWRITE_NONE;
    opts.force_copy = TRUE;
    g_autoptr(GError) err = nullptr;
    if (!ostree_repo_checkout_at(l.repo, &opts, AT_FDCWD, dest.c_str(), commit.c_str(), nullptr,
                                 &err))
      return FromGError(err, "checkout of " + commit + " to '" + dest + "' failed");
    return Status::Ok();
  }();
  Count("checkout", s);
  return s;
}

namespace internal {

namespace {

// OSTREE_STATIC_DELTA_SUPERBLOCK_FORMAT (a private header in libostree): metadata, timestamp,
// from, to, the commit, dependencies, part headers (version, sha256, compressed size,
// uncompressed size, objects), fallback objects.
constexpr const char* kSuperblockType = "(a{sv}tayay(a{sv}aya(say)sstayay)aya(uayttay)a(yaytt))";

std::string HexOf(GVariant* ay) {
  gsize n = 0;
  const auto* b = static_cast<const guint8*>(g_variant_get_fixed_array(ay, &n, 1));
  if (n != 32) return "";
  char hex[65];
  ostree_checksum_inplace_from_bytes(b, hex);
  return hex;
}

std::string Iso(guint64 t) {
  std::time_t tt = static_cast<std::time_t>(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char b[32];
  std::strftime(b, sizeof b, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return b;
}

Expected<guint64> CommitTime(OstreeRepo* repo, const std::string& commit) {
  g_autoptr(GVariant) c = nullptr;
  g_autoptr(GError) err = nullptr;
  if (!ostree_repo_load_variant(repo, OSTREE_OBJECT_TYPE_COMMIT, commit.c_str(), &c, &err))
    return FromGError(err, "commit " + commit + " not in the repo", Code::kNotFound);
  return ostree_commit_get_timestamp(c);
}

Status NotOlderIn(OstreeRepo* repo, const SysrootConfig& cfg, const std::string& commit, uint64_t t,
                  const std::string& not_older_than) {
  const std::string refspec = cfg.remote + ":" + cfg.ref;
  g_autoptr(GError) err = nullptr;
  g_autofree char* current = nullptr;
  if (!ostree_repo_resolve_rev(repo, refspec.c_str(), TRUE, &current, &err))
    return FromGError(err, "cannot resolve " + refspec, Code::kInternal);
  for (std::string older : {std::string(current ? current : ""), not_older_than}) {
    if (older.empty() || older == commit) continue;
    auto t0 = CommitTime(repo, older);
    if (t0.ok() && t < *t0)
      return InvalidArgument("commit " + commit + " (" + Iso(t) +
                             ") is chronologically older than " + older + " (" + Iso(*t0) +
                             "): a downgrade, refused");
  }
  return Status::Ok();
}

}  // namespace

Status CheckNotOlder(const SysrootConfig& cfg, const std::string& commit, uint64_t t,
                     const std::string& not_older_than) {
  Loaded l;
  OP_RETURN_IF_ERROR(Load(cfg, l, false));
  return NotOlderIn(l.repo, cfg, commit, t, not_older_than);
}

Expected<RemoteSummary> ReadRemoteSummary(const SysrootConfig& cfg) {
  Loaded l;
  OP_RETURN_IF_ERROR(Load(cfg, l, false));
  RemoteSummary out;
  g_autoptr(GError) err = nullptr;
  g_autofree char* url = nullptr;
  if (!ostree_repo_remote_get_url(l.repo, cfg.remote.c_str(), &url, &err))
    return FromGError(err, "remote " + cfg.remote, Code::kNotFound);
  out.url = url;
  while (!out.url.empty() && out.url.back() == '/') out.url.pop_back();
  g_autoptr(GBytes) summary = nullptr;
  g_autoptr(GBytes) sigs = nullptr;
  if (!ostree_repo_remote_fetch_summary_with_options(l.repo, cfg.remote.c_str(), nullptr, &summary,
                                                     &sigs, nullptr, &err)) {
    bool refused = err && (strstr(err->message, "GPG") || strstr(err->message, "ignature"));
    return FromGError(err, "cannot read the summary of remote " + cfg.remote,
                      refused ? Code::kInvalidArgument : Code::kUnavailable);
  }
  if (!summary) return Unavailable("remote " + cfg.remote + " has no summary");
  if (!sigs) return InvalidArgument("the summary of remote " + cfg.remote + " is not signed");
  // libostree checked it with gpg-verify-summary against its keyrings; ours is narrower.
  g_autoptr(OstreeGpgVerifyResult) res =
      ostree_repo_verify_summary(l.repo, cfg.remote.c_str(), summary, sigs, nullptr, &err);
  if (!res)
    return FromGError(err, "the summary of remote " + cfg.remote + " refused",
                      Code::kInvalidArgument);
  OP_RETURN_IF_ERROR(TrustedSignature(res, cfg, "the summary of remote " + cfg.remote));
  g_autoptr(GVariant) v = g_variant_ref_sink(
      g_variant_new_from_bytes(G_VARIANT_TYPE("(a(s(taya{sv}))a{sv})"), summary, FALSE));
  g_autoptr(GVariant) refs = g_variant_get_child_value(v, 0);
  for (gsize i = 0, n = g_variant_n_children(refs); i < n; ++i) {
    const char* name = nullptr;
    g_autoptr(GVariant) csum = nullptr;
    g_variant_get_child(refs, i, "(&s(t@aya{sv}))", &name, nullptr, &csum, nullptr);
    if (cfg.ref == name) out.head = HexOf(csum);
  }
  if (out.head.empty()) return NotFound("remote " + cfg.remote + " has no ref " + cfg.ref);
  g_autoptr(GVariant) meta = g_variant_get_child_value(v, 1);
  g_autoptr(GVariant) deltas =
      g_variant_lookup_value(meta, "ostree.static-deltas", G_VARIANT_TYPE("a{sv}"));
  if (deltas) {
    for (gsize i = 0, n = g_variant_n_children(deltas); i < n; ++i) {
      const char* name = nullptr;
      g_autoptr(GVariant) digest = nullptr;
      g_variant_get_child(deltas, i, "{&sv}", &name, &digest);
      if (g_variant_is_of_type(digest, G_VARIANT_TYPE("ay"))) out.deltas[name] = HexOf(digest);
    }
  }
  return out;
}

std::string DeltaRelPath(const std::string& from, const std::string& to) {
  auto b64 = [](const std::string& c) {
    g_autofree guchar* bytes = ostree_checksum_to_bytes(c.c_str());
    g_autofree char* s = ostree_checksum_b64_from_bytes(bytes);
    return std::string(s);
  };
  const std::string name = from.empty() ? b64(to) : b64(from) + "-" + b64(to);
  return "deltas/" + name.substr(0, 2) + "/" + name.substr(2);
}

Expected<Superblock> ReadSuperblock(const std::string& path) {
  g_autoptr(GError) err = nullptr;
  g_autoptr(GMappedFile) m = g_mapped_file_new(path.c_str(), FALSE, &err);
  if (!m) return FromGError(err, "cannot read the static delta '" + path + "'", Code::kNotFound);
  g_autoptr(GBytes) bytes = g_mapped_file_get_bytes(m);
  g_autoptr(GVariant) sb =
      g_variant_ref_sink(g_variant_new_from_bytes(G_VARIANT_TYPE(kSuperblockType), bytes, FALSE));
  g_autoptr(GVariant) meta = g_variant_get_child_value(sb, 0);
  g_autoptr(GVariant) from = g_variant_get_child_value(sb, 2);
  g_autoptr(GVariant) to = g_variant_get_child_value(sb, 3);
  g_autoptr(GVariant) parts = g_variant_get_child_value(sb, 6);
  g_autoptr(GVariant) fallbacks = g_variant_get_child_value(sb, 7);
  g_autoptr(GVariant) commit = g_variant_get_child_value(sb, 4);
  Superblock out;
  out.timestamp = ostree_commit_get_timestamp(commit);
  out.to = HexOf(to);
  if (g_variant_n_children(from) > 0) out.from = HexOf(from);
  if (out.to.empty() || (g_variant_n_children(from) > 0 && out.from.empty()))
    return InvalidArgument("'" + path + "' is not a static delta superblock");
  // Sizes are in the generator's byte order, named by ostree.endianness ('l' or 'B').
  guchar order = 'B';
  g_variant_lookup(meta, "ostree.endianness", "y", &order);
  for (gsize i = 0, n = g_variant_n_children(parts); i < n; ++i) {
    guint32 version = 0;
    guint64 size = 0, uncompressed = 0;
    g_autoptr(GVariant) csum = nullptr;
    g_autoptr(GVariant) objects = nullptr;
    g_variant_get_child(parts, i, "(u@aytt@ay)", &version, &csum, &size, &uncompressed, &objects);
    Superblock::Part p;
    p.sha256 = HexOf(csum);
    p.bytes = order == 'l' ? GUINT64_FROM_LE(size) : GUINT64_FROM_BE(size);
    if (p.sha256.empty())
      return InvalidArgument("'" + path + "': part " + std::to_string(i) + " has no sha256");
    out.parts.push_back(p);
  }
  out.fallbacks = g_variant_n_children(fallbacks);
  return out;
}

Expected<std::string> ApplyStaticDelta(const SysrootConfig& cfg, const std::string& path,
                                       const std::string& expected_to,
                                       const std::string& not_older_than) {
  Expected<std::string> r = [&]() -> Expected<std::string> {
    std::error_code ec;
    const bool dir = std::filesystem::is_directory(path, ec);
    OP_ASSIGN_OR_RETURN(Superblock ends, ReadSuperblock(dir ? path + "/superblock" : path));
    if (!expected_to.empty() && ends.to != expected_to)
      return InvalidArgument("static delta '" + path + "' leads to " + ends.to + ", expected " +
                             expected_to);
    Loaded l;
    OP_RETURN_IF_ERROR(Load(cfg, l, false));
    g_autoptr(GError) err = nullptr;
    if (!ends.from.empty()) {
      gboolean have = FALSE;
      if (!ostree_repo_has_object(l.repo, OSTREE_OBJECT_TYPE_COMMIT, ends.from.c_str(), &have,
                                  nullptr, &err) ||
          !have)
        return NotFound("static delta '" + path + "': its base commit " + ends.from +
                        " is not in the repo");
    }
    // Objects only: libostree's offline application checks no signature and moves no ref.
    if (!ostree_repo_prepare_transaction(l.repo, nullptr, nullptr, &err))
      return FromGError(err, "cannot start a transaction");
    g_autoptr(GFile) f = g_file_new_for_path(path.c_str());
    if (!ostree_repo_static_delta_execute_offline(l.repo, f, FALSE, nullptr, &err)) {
      // A delta that does not match what it claims is refused; anything else (I/O) may pass.
      const bool corrupt = strstr(err->message, "hecksum") || strstr(err->message, "orrupt") ||
                           strstr(err->message, "nvalid") || strstr(err->message, "xpected");
      Status s = FromGError(err, "static delta '" + path + "' not applied",
                            corrupt ? Code::kInvalidArgument : Code::kIoError);
      g_autoptr(GError) abort_err = nullptr;
      ostree_repo_abort_transaction(l.repo, nullptr, &abort_err);
      return s;
    }
    if (!ostree_repo_commit_transaction(l.repo, nullptr, nullptr, &err))
      return FromGError(err, "static delta '" + path + "': cannot commit the transaction");
    // Our checks, which the offline application does not make.
    OP_RETURN_IF_ERROR(VerifyIn(l.repo, cfg, ends.to));
    OP_ASSIGN_OR_RETURN(guint64 t, CommitTime(l.repo, ends.to));
    OP_RETURN_IF_ERROR(NotOlderIn(l.repo, cfg, ends.to, t, not_older_than));
    const std::string refspec = cfg.remote + ":" + cfg.ref;
    if (!ostree_repo_set_ref_immediate(l.repo, cfg.remote.c_str(), cfg.ref.c_str(), ends.to.c_str(),
                                       nullptr, &err))
      return FromGError(err, "cannot set " + refspec + " to " + ends.to);
    return ends.to;
  }();
  Count("apply-delta", r.status());
  return r;
}

}  // namespace internal

}  // namespace outpost::ota
