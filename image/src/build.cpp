// outpost image build: the OS commit, the model commits, signatures, static deltas, summary.
#include <sys/stat.h>

#include <filesystem>
#include <map>

#include "compose.h"
#include "ostree_util.h"
#include "outpost/core/log.h"

#ifndef OUTPOST_VERSION
#define OUTPOST_VERSION "unknown"
#endif

namespace outpost::image {

using namespace internal;  // NOLINT(google-build-using-namespace): this file's own internals
namespace fs = std::filesystem;

namespace {

// Which tree a commit filter is looking at.
enum class Phase { kBase, kBaseEtc, kOverlay };

struct FilterCtx {
  Phase phase = Phase::kBase;
  std::vector<std::string> dropped;  // top entries of runtime-only directories of the base
};

// Runtime-only or per-deployment directories of a base rootfs: kept empty in the commit.
constexpr const char* kEmptied[] = {"/var/", "/tmp/", "/run/", "/proc/", "/sys/", "/dev/"};

// Canonical metadata: everything owned by root, no host xattrs, modes 0644/0755 (directories
// 0755, sticky ones 01777), setuid/setgid kept, symlinks 0777.
OstreeRepoCommitFilterResult Canonicalize(OstreeRepo*, const char* path, GFileInfo* fi,
                                          gpointer user_data) {
  auto* ctx = static_cast<FilterCtx*>(user_data);
  std::string p(path);
  if (ctx->phase == Phase::kBase) {
    if (p == "/etc") return OSTREE_REPO_COMMIT_FILTER_SKIP;  // goes to /usr/etc
    for (const char* d : kEmptied) {
      std::string dir(d);
      if (p.rfind(dir, 0) == 0) {
        if (p.find('/', dir.size()) == std::string::npos) ctx->dropped.push_back(p);
        return OSTREE_REPO_COMMIT_FILTER_SKIP;
      }
    }
  }
  guint32 mode = g_file_info_get_attribute_uint32(fi, "unix::mode");
  guint32 type = mode & S_IFMT;
  guint32 perm;
  if (type == S_IFDIR)
    perm = (mode & S_ISVTX) ? 01777 : 0755;
  else if (type == S_IFLNK)
    perm = 0777;
  else
    perm = ((mode & S_IXUSR) ? 0755 : 0644) | (mode & (S_ISUID | S_ISGID));
  g_file_info_set_attribute_uint32(fi, "unix::mode", type | perm);
  g_file_info_set_attribute_uint32(fi, "unix::uid", 0);
  g_file_info_set_attribute_uint32(fi, "unix::gid", 0);
  return OSTREE_REPO_COMMIT_FILTER_ALLOW;
}

Status WriteDir(OstreeRepo* repo, const std::string& dir, OstreeMutableTree* mtree,
                OstreeRepoCommitModifier* mod) {
  g_autoptr(GFile) f = g_file_new_for_path(dir.c_str());
  g_autoptr(GError) err = nullptr;
  if (!ostree_repo_write_directory_to_mtree(repo, f, mtree, mod, nullptr, &err))
    return FromGError(err, "committing '" + dir + "'");
  return Status::Ok();
}

// Integers in commit metadata are big-endian, the OSTree convention (`ostree show` byteswaps).

// Sorted a{sv}: the serialized order, hence the commit checksum, does not depend on hashing.
GVariant* SortedDict(std::map<std::string, GVariant*>& entries) {
  GVariantBuilder b;
  g_variant_builder_init(&b, G_VARIANT_TYPE("a{sv}"));
  for (auto& [k, v] : entries) g_variant_builder_add(&b, "{sv}", k.c_str(), v);
  return g_variant_ref_sink(g_variant_builder_end(&b));
}

GVariant* RefBinding(const std::string& ref) {
  const char* refs[] = {ref.c_str(), nullptr};
  return g_variant_new_strv(refs, -1);
}

struct Written {
  std::string commit;
  bool is_new = false;
};

// Writes a commit of `root` on `ref` (parent = the ref's current commit) unless that commit
// already has the same tree and metadata and `skip_if_unchanged`.
Expected<Written> WriteCommit(OstreeRepo* repo, const std::string& ref, GFile* root,
                              GVariant* metadata, const std::string& subject, int64_t timestamp,
                              bool skip_if_unchanged) {
  OP_ASSIGN_OR_RETURN(std::string parent, ResolveRef(repo, ref));
  g_autoptr(GError) err = nullptr;
  if (skip_if_unchanged && !parent.empty()) {
    g_autoptr(GFile) old_root = nullptr;
    g_autoptr(GVariant) old_commit = nullptr;
    if (ostree_repo_read_commit(repo, parent.c_str(), &old_root, nullptr, nullptr, &err) &&
        ostree_repo_load_commit(repo, parent.c_str(), &old_commit, nullptr, &err) &&
        ostree_repo_file_ensure_resolved(OSTREE_REPO_FILE(old_root), &err) &&
        ostree_repo_file_ensure_resolved(OSTREE_REPO_FILE(root), &err)) {
      g_autoptr(GVariant) old_meta = g_variant_get_child_value(old_commit, 0);
      if (g_strcmp0(ostree_repo_file_tree_get_contents_checksum(OSTREE_REPO_FILE(old_root)),
                    ostree_repo_file_tree_get_contents_checksum(OSTREE_REPO_FILE(root))) == 0 &&
          g_strcmp0(ostree_repo_file_tree_get_metadata_checksum(OSTREE_REPO_FILE(old_root)),
                    ostree_repo_file_tree_get_metadata_checksum(OSTREE_REPO_FILE(root))) == 0 &&
          g_variant_equal(old_meta, metadata))
        return Written{parent, false};
    }
    g_clear_error(&err);
  }
  g_autofree char* csum = nullptr;
  if (!ostree_repo_write_commit_with_time(repo, parent.empty() ? nullptr : parent.c_str(),
                                          subject.c_str(), nullptr, metadata,
                                          OSTREE_REPO_FILE(root), static_cast<guint64>(timestamp),
                                          &csum, nullptr, &err))
    return FromGError(err, "writing the commit for '" + ref + "'");
  ostree_repo_transaction_set_ref(repo, nullptr, ref.c_str(), csum);
  return Written{csum, true};
}

Status ValidateOptions(const BuildOptions& o) {
  if (o.repo.empty()) return InvalidArgument("repository not given");
  if (o.ref.empty()) return InvalidArgument("ref not given");
  g_autoptr(GError) err = nullptr;
  if (!ostree_validate_rev(o.ref.c_str(), &err))
    return FromGError(err, "ref '" + o.ref + "'", Code::kInvalidArgument);
  if (o.version.empty()) return InvalidArgument("version not given");
  if (o.timestamp < 0)
    return InvalidArgument("no timestamp: pass --timestamp SECONDS or set SOURCE_DATE_EPOCH "
                           "(a reproducible build needs a fixed commit time)");
  if (o.sign && (o.key.gpg_homedir.empty() || o.key.key_id.empty()))
    return InvalidArgument("signing needs a GnuPG home directory and a key id");
  if (o.delta_depth < 0 || o.delta_depth > 100)
    return InvalidArgument("delta depth must be within 0..100");
  for (const auto& [k, v] : o.build_info) {
    if (k.empty() || k == "tool" || k == "timestamp")
      return InvalidArgument("build info key '" + k + "' is reserved or empty");
  }
  return Status::Ok();
}

std::string ModelRefPrefix(const BuildOptions& o) {
  if (!o.model_ref_prefix.empty()) return o.model_ref_prefix;
  auto slash = o.ref.rfind('/');
  return slash == std::string::npos ? "models" : o.ref.substr(0, slash) + "/models";
}

GVariant* ModelMetadata(const StagedModel& m, const std::string& ref) {
  std::map<std::string, GVariant*> md;
  md["version"] = g_variant_new_string(m.version.c_str());
  md["outpost.kind"] = g_variant_new_string("model");
  md["outpost.runtime.abi"] = g_variant_new_uint32(GUINT32_TO_BE(kRuntimeAbi));
  md["outpost.model.name"] = g_variant_new_string(m.name.c_str());
  md["outpost.model.sha256"] = g_variant_new_string(m.model.sha256.c_str());
  md["outpost.model.bytes"] = g_variant_new_uint64(GUINT64_TO_BE(m.model.bytes));
  GVariantBuilder files;
  g_variant_builder_init(&files, G_VARIANT_TYPE("a(sst)"));
  for (const auto& f : m.files)
    g_variant_builder_add(&files, "(sst)", f.path.c_str(), f.digest.sha256.c_str(),
                          GUINT64_TO_BE(static_cast<guint64>(f.digest.bytes)));
  md["outpost.model.files"] = g_variant_builder_end(&files);
  md["ostree.ref-binding"] = RefBinding(ref);
  return SortedDict(md);
}

Expected<GVariant*> OsMetadata(const BuildOptions& o, const StagedOs& os, GFile* root) {
  std::map<std::string, GVariant*> md;
  // ostree.linux and ostree.bootable, as `ostree commit --bootable` sets them.
  g_auto(GVariantDict) boot;
  g_variant_dict_init(&boot, nullptr);
  g_autoptr(GError) err = nullptr;
  if (!ostree_commit_metadata_for_bootable(root, &boot, nullptr, &err))
    return FromGError(err, "finding the kernel in the composed tree", Code::kInvalidArgument);
  for (const char* k : {"ostree.linux", "ostree.bootable"}) {
    GVariant* v = g_variant_dict_lookup_value(&boot, k, nullptr);
    if (v) md[k] = v;  // floating-free reference, consumed by the builder below
  }
  md["version"] = g_variant_new_string(o.version.c_str());
  md["outpost.kind"] = g_variant_new_string("os");
  md["outpost.runtime.abi"] = g_variant_new_uint32(GUINT32_TO_BE(kRuntimeAbi));
  md["outpost.outpostd.sha256"] = g_variant_new_string(os.outpostd.sha256.c_str());
  md["outpost.device-config.sha256"] = g_variant_new_string(os.device_config.sha256.c_str());
  GVariantBuilder models;
  g_variant_builder_init(&models, G_VARIANT_TYPE("a(ssst)"));
  for (const auto& m : os.models)
    g_variant_builder_add(&models, "(ssst)", m.name.c_str(), m.version.c_str(),
                          m.model.sha256.c_str(), GUINT64_TO_BE(static_cast<guint64>(m.model.bytes)));
  md["outpost.models"] = g_variant_builder_end(&models);
  std::map<std::string, std::string> info = o.build_info;
  info["tool"] = std::string("outpost image ") + OUTPOST_VERSION;
  info["timestamp"] = std::to_string(o.timestamp);
  GVariantBuilder b;
  g_variant_builder_init(&b, G_VARIANT_TYPE("a{ss}"));
  for (const auto& [k, v] : info) g_variant_builder_add(&b, "{ss}", k.c_str(), v.c_str());
  md["outpost.build"] = g_variant_builder_end(&b);
  md["ostree.ref-binding"] = RefBinding(o.ref);
  GVariant* out = SortedDict(md);
  for (const char* k : {"ostree.linux", "ostree.bootable"})
    if (md.count(k)) g_variant_unref(md[k]);
  return out;
}

Expected<BuildResult> BuildImpl(const BuildOptions& opts) {
  OP_RETURN_IF_ERROR(ValidateOptions(opts));
  OP_ASSIGN_OR_RETURN(TempDir stage, TempDir::Make("outpost-image"));
  OP_ASSIGN_OR_RETURN(StagedOs os, Stage(opts, stage.path()));
  OP_ASSIGN_OR_RETURN(OstreeRepo * repo_raw, OpenOrCreateRepo(opts.repo));
  g_autoptr(OstreeRepo) repo = repo_raw;
  g_autoptr(GError) err = nullptr;
  if (!ostree_repo_prepare_transaction(repo, nullptr, nullptr, &err))
    return FromGError(err, "starting a transaction in '" + opts.repo + "'");
  struct Abort {
    OstreeRepo* repo;
    bool done = false;
    ~Abort() {
      if (!done) ostree_repo_abort_transaction(repo, nullptr, nullptr);
    }
  } abort_guard{repo};

  FilterCtx ctx;
  g_autoptr(OstreeRepoCommitModifier) mod = ostree_repo_commit_modifier_new(
      OSTREE_REPO_COMMIT_MODIFIER_FLAGS_SKIP_XATTRS, Canonicalize, &ctx, nullptr);
  BuildResult result;
  std::vector<std::pair<std::string, Written>> commits;  // ref, commit

  // Models, each alone on its ref.
  std::string prefix = ModelRefPrefix(opts);
  for (const auto& m : os.models) {
    std::string ref = prefix + "/" + m.name;
    if (!ostree_validate_rev(ref.c_str(), &err))
      return FromGError(err, "model ref '" + ref + "'", Code::kInvalidArgument);
    ctx.phase = Phase::kOverlay;
    g_autoptr(OstreeMutableTree) mt = ostree_mutable_tree_new();
    OP_RETURN_IF_ERROR(WriteDir(repo, m.dir, mt, mod));
    g_autoptr(GFile) root = nullptr;
    if (!ostree_repo_write_mtree(repo, mt, &root, nullptr, &err))
      return FromGError(err, "writing the tree of model '" + m.name + "'");
    g_autoptr(GVariant) md = ModelMetadata(m, ref);
    OP_ASSIGN_OR_RETURN(Written w, WriteCommit(repo, ref, root, md,
                                               "model " + m.name + " " + m.version,
                                               opts.timestamp, /*skip_if_unchanged=*/true));
    result.models.push_back({m.name, m.version, m.model.sha256, m.model.bytes, ref, w.commit,
                             w.is_new});
    commits.emplace_back(ref, w);
  }

  // The OS: base (with /etc moved to /usr/etc), then the overlay.
  g_autoptr(OstreeMutableTree) mt = ostree_mutable_tree_new();
  ctx.phase = Phase::kBase;
  OP_RETURN_IF_ERROR(WriteDir(repo, opts.base_rootfs, mt, mod));
  std::error_code ec;
  fs::path base_etc = fs::path(opts.base_rootfs) / "etc";
  if (fs::is_directory(base_etc, ec)) {
    g_autoptr(OstreeMutableTree) usr = nullptr;
    g_autoptr(OstreeMutableTree) usr_etc = nullptr;
    if (!ostree_mutable_tree_ensure_dir(mt, "usr", &usr, &err) ||
        !ostree_mutable_tree_ensure_dir(usr, "etc", &usr_etc, &err))
      return FromGError(err, "moving the base's /etc to /usr/etc");
    ctx.phase = Phase::kBaseEtc;
    OP_RETURN_IF_ERROR(WriteDir(repo, base_etc.string(), usr_etc, mod));
  }
  for (const auto& d : ctx.dropped)
    OP_LOG_WARN("image: base rootfs entry '{}' left out (runtime or per-deployment state; "
                "OSTree keeps /var local: use tmpfiles.d)", d);
  ctx.phase = Phase::kOverlay;
  OP_RETURN_IF_ERROR(WriteDir(repo, os.overlay, mt, mod));
  g_autoptr(GFile) root = nullptr;
  if (!ostree_repo_write_mtree(repo, mt, &root, nullptr, &err))
    return FromGError(err, "writing the OS tree");
  OP_ASSIGN_OR_RETURN(GVariant * md_raw, OsMetadata(opts, os, root));
  g_autoptr(GVariant) md = md_raw;
  OP_ASSIGN_OR_RETURN(Written osw, WriteCommit(repo, opts.ref, root, md, "Outpost OS " + opts.version,
                                               opts.timestamp, /*skip_if_unchanged=*/false));
  result.commit = osw.commit;
  commits.emplace_back(opts.ref, osw);

  if (!ostree_repo_commit_transaction(repo, nullptr, nullptr, &err))
    return FromGError(err, "committing the transaction");
  abort_guard.done = true;

  for (const auto& [ref, w] : commits) {
    if (!w.is_new) continue;
    if (opts.sign) OP_RETURN_IF_ERROR(SignCommit(repo, w.commit, opts.key));
    OP_ASSIGN_OR_RETURN(auto chain, Ancestors(repo, w.commit, opts.delta_depth));
    std::vector<std::string> froms(chain.begin() + 1, chain.end());
    froms.push_back("");  // from empty
    for (const auto& from : froms) {
      OP_RETURN_IF_ERROR(GenerateDelta(repo, from, w.commit, ""));
      result.deltas.push_back({ref, from, w.commit, InRepoDeltaBytes(opts.repo, from, w.commit)});
    }
  }
  if (opts.sign) {
    OP_RETURN_IF_ERROR(UpdateSignedSummary(repo, opts.key));
  } else if (!ostree_repo_regenerate_summary(repo, nullptr, nullptr, &err)) {
    return FromGError(err, "regenerating the summary");
  }
  return result;
}

}  // namespace

Expected<BuildResult> Build(const BuildOptions& opts) {
  auto r = BuildImpl(opts);
  CountOutcome("build", r.status());
  if (!r.ok()) OP_LOG_ERROR("image build failed: {}", r.status().ToString());
  return r;
}

}  // namespace outpost::image
