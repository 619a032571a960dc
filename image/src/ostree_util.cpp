#include "ostree_util.h"

#include <fcntl.h>
#include <stdlib.h>

#include <filesystem>

#include "outpost/core/metrics.h"

namespace outpost::image::internal {

namespace fs = std::filesystem;

Status FromGError(const GError* e, const std::string& context, Code code) {
  return Status(code, context + ": " + (e ? e->message : "unknown error"));
}

Expected<Digest> Sha256Stream(GInputStream* in, const std::string& what) {
  g_autoptr(GChecksum) ck = g_checksum_new(G_CHECKSUM_SHA256);
  Digest d;
  std::vector<guint8> buf(1 << 16);
  for (;;) {
    g_autoptr(GError) err = nullptr;
    gssize n = g_input_stream_read(in, buf.data(), buf.size(), nullptr, &err);
    if (n < 0) return FromGError(err, "reading " + what);
    if (n == 0) break;
    g_checksum_update(ck, buf.data(), n);
    d.bytes += static_cast<uint64_t>(n);
  }
  d.sha256 = g_checksum_get_string(ck);
  return d;
}

Expected<Digest> Sha256File(const std::string& path) {
  g_autoptr(GFile) f = g_file_new_for_path(path.c_str());
  g_autoptr(GError) err = nullptr;
  g_autoptr(GFileInputStream) in = g_file_read(f, nullptr, &err);
  if (!in) {
    Code c = g_error_matches(err, G_IO_ERROR, G_IO_ERROR_NOT_FOUND) ? Code::kNotFound
                                                                    : Code::kIoError;
    return FromGError(err, "cannot read '" + path + "'", c);
  }
  return Sha256Stream(G_INPUT_STREAM(in), "'" + path + "'");
}

Expected<OstreeRepo*> OpenRepo(const std::string& path) {
  std::error_code ec;
  if (!fs::is_directory(path, ec) || !fs::exists(fs::path(path) / "config", ec))
    return NotFound("not an OSTree repository: '" + path + "'");
  g_autoptr(GError) err = nullptr;
  OstreeRepo* repo = ostree_repo_open_at(AT_FDCWD, path.c_str(), nullptr, &err);
  if (!repo) return FromGError(err, "opening repository '" + path + "'");
  return repo;
}

Expected<OstreeRepo*> OpenOrCreateRepo(const std::string& path, OstreeRepoMode mode) {
  std::error_code ec;
  if (fs::exists(fs::path(path) / "config", ec)) return OpenRepo(path);
  fs::create_directories(path, ec);
  if (ec) return IoError("cannot create '" + path + "': " + ec.message());
  g_autoptr(GError) err = nullptr;
  OstreeRepo* repo =
      ostree_repo_create_at(AT_FDCWD, path.c_str(), mode, nullptr, nullptr, &err);
  if (!repo) return FromGError(err, "creating repository '" + path + "'");
  return repo;
}

Expected<TempDir> TempDir::Make(const std::string& prefix) {
  const char* base = getenv("TMPDIR");
  std::string tmpl = std::string(base && *base ? base : "/tmp") + "/" + prefix + "-XXXXXX";
  if (!mkdtemp(tmpl.data())) return IoError("cannot create a temporary directory under " + tmpl);
  return TempDir(tmpl);
}

TempDir::~TempDir() {
  if (path_.empty()) return;
  std::error_code ec;
  fs::remove_all(path_, ec);
}

Status SignCommit(OstreeRepo* repo, const std::string& commit, const SigningKey& key) {
  g_autoptr(GError) err = nullptr;
  if (!ostree_repo_sign_commit(repo, commit.c_str(), key.key_id.c_str(), key.gpg_homedir.c_str(),
                               nullptr, &err)) {
    // Signing twice with the same key is refused by libostree; that is not an error for us.
    if (g_error_matches(err, G_IO_ERROR, G_IO_ERROR_EXISTS)) return Status::Ok();
    return FromGError(err, "signing commit " + commit + " with key '" + key.key_id +
                               "' from '" + key.gpg_homedir + "'",
                      Code::kInvalidArgument);
  }
  return Status::Ok();
}

Status UpdateSignedSummary(OstreeRepo* repo, const SigningKey& key) {
  g_autoptr(GError) err = nullptr;
  if (!ostree_repo_regenerate_summary(repo, nullptr, nullptr, &err))
    return FromGError(err, "regenerating the summary");
  const gchar* ids[] = {key.key_id.c_str(), nullptr};
  if (!ostree_repo_add_gpg_signature_summary(repo, ids, key.gpg_homedir.c_str(), nullptr, &err))
    return FromGError(err, "signing the summary with key '" + key.key_id + "'",
                      Code::kInvalidArgument);
  return Status::Ok();
}

Expected<std::string> ResolveRef(OstreeRepo* repo, const std::string& ref) {
  g_autoptr(GError) err = nullptr;
  g_autofree char* csum = nullptr;
  if (!ostree_repo_resolve_rev(repo, ref.c_str(), TRUE, &csum, &err))
    return FromGError(err, "resolving ref '" + ref + "'");
  return std::string(csum ? csum : "");
}

Expected<std::vector<std::string>> Ancestors(OstreeRepo* repo, const std::string& commit,
                                             int depth) {
  std::vector<std::string> out;
  std::string cur = commit;
  for (int i = 0; i <= depth && !cur.empty(); ++i) {
    g_autoptr(GVariant) v = nullptr;
    g_autoptr(GError) err = nullptr;
    if (!ostree_repo_load_variant_if_exists(repo, OSTREE_OBJECT_TYPE_COMMIT, cur.c_str(), &v,
                                            &err))
      return FromGError(err, "loading commit " + cur);
    if (!v) break;  // history pruned or never pulled
    out.push_back(cur);
    g_autofree char* parent = ostree_commit_get_parent(v);
    cur = parent ? parent : "";
  }
  return out;
}

Status GenerateDelta(OstreeRepo* repo, const std::string& from, const std::string& to,
                     const std::string& filename) {
  g_auto(GVariantBuilder) params;
  g_variant_builder_init(&params, G_VARIANT_TYPE("a{sv}"));
  g_variant_builder_add(&params, "{sv}", "min-fallback-size", g_variant_new_uint32(0));
  if (!filename.empty()) {
    g_variant_builder_add(&params, "{sv}", "inline-parts", g_variant_new_boolean(TRUE));
    g_variant_builder_add(&params, "{sv}", "filename", g_variant_new_bytestring(filename.c_str()));
  }
  g_autoptr(GVariant) p = g_variant_ref_sink(g_variant_builder_end(&params));
  g_autoptr(GError) err = nullptr;
  if (!ostree_repo_static_delta_generate(repo, OSTREE_STATIC_DELTA_GENERATE_OPT_MAJOR,
                                         from.empty() ? nullptr : from.c_str(), to.c_str(),
                                         nullptr, p, nullptr, &err))
    return FromGError(err, "generating the static delta " + (from.empty() ? "empty" : from) +
                               " -> " + to);
  return Status::Ok();
}

uint64_t InRepoDeltaBytes(const std::string& repo_path, const std::string& from,
                          const std::string& to) {
  auto b64 = [](const std::string& c) {
    g_autofree guchar* bytes = ostree_checksum_to_bytes(c.c_str());
    g_autofree char* s = ostree_checksum_b64_from_bytes(bytes);
    return std::string(s);
  };
  std::string name = from.empty() ? b64(to) : b64(from) + "-" + b64(to);
  fs::path dir = fs::path(repo_path) / "deltas" / name.substr(0, 2) / name.substr(2);
  uint64_t total = 0;
  std::error_code ec;
  for (auto it = fs::directory_iterator(dir, ec); !ec && it != fs::directory_iterator();
       it.increment(ec))
    if (it->is_regular_file(ec)) total += it->file_size(ec);
  return total;
}

void CountOutcome(const char* op, const Status& s) {
  MetricsRegistry::Global()
      .GetCounter("outpost_image_operations_total",
                  "outpost image operations (build, bundle, verify) by outcome",
                  {{"op", op}, {"outcome", s.ok() ? "ok" : CodeName(s.code())}})
      .Inc();
}

}  // namespace outpost::image::internal
