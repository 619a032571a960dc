// outpost image verify: offline checks of a repo or a USB bundle against trusted keys.
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "bundle_format.h"
#include "compose.h"
#include "ostree_util.h"
#include "outpost/core/log.h"

namespace outpost::image {

using namespace internal;  // NOLINT(google-build-using-namespace): this file's own internals
namespace fs = std::filesystem;

namespace {

Status Refused(const std::string& m) { return InvalidArgument(m); }

// An ASCII-armored OpenPGP block as binary packets (libostree 2022.7 concatenates keyring files
// into one binary keyring, so armored keys must be decoded first). Binary input is returned as is.
Expected<std::string> Dearmor(const std::string& text, const std::string& path) {
  const std::string kBegin = "-----BEGIN PGP PUBLIC KEY BLOCK-----";
  size_t b = text.find(kBegin);
  if (b == std::string::npos) return text;
  std::istringstream in(text.substr(b + kBegin.size()));
  std::string line, b64;
  bool body = false;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (!body) {
      if (line.empty()) body = true;  // armor headers end with a blank line
      continue;
    }
    if (line.rfind("-----END", 0) == 0 || (!line.empty() && line[0] == '=')) break;
    b64 += line;
  }
  if (b64.empty()) return InvalidArgument("trusted key '" + path + "': empty or malformed armor");
  gsize len = 0;
  g_autofree guchar* raw = g_base64_decode(b64.c_str(), &len);
  return std::string(reinterpret_cast<const char*>(raw), len);
}

// The V4 fingerprints of the primary keys and subkeys in binary OpenPGP data (RFC 4880 12.2:
// SHA-1 over 0x99, the two-byte length and the public key packet body).
Expected<std::vector<std::string>> Fingerprints(const std::string& raw, const std::string& path) {
  std::vector<std::string> out;
  size_t i = 0;
  auto bad = [&](const std::string& m) { return InvalidArgument("trusted key '" + path + "': " + m); };
  while (i < raw.size()) {
    auto b = static_cast<uint8_t>(raw[i++]);
    if (!(b & 0x80)) return bad("not OpenPGP data");
    int tag;
    size_t len = 0;
    auto byte = [&](size_t k) { return static_cast<size_t>(static_cast<uint8_t>(raw[k])); };
    if (b & 0x40) {  // new format
      tag = b & 0x3f;
      if (i >= raw.size()) return bad("truncated packet");
      size_t o1 = byte(i++);
      if (o1 < 192) {
        len = o1;
      } else if (o1 < 224) {
        if (i >= raw.size()) return bad("truncated packet");
        len = ((o1 - 192) << 8) + byte(i++) + 192;
      } else if (o1 == 255) {
        if (i + 4 > raw.size()) return bad("truncated packet");
        len = (byte(i) << 24) | (byte(i + 1) << 16) | (byte(i + 2) << 8) | byte(i + 3);
        i += 4;
      } else {
        return bad("partial-length packet in a key");
      }
    } else {  // old format
      tag = (b >> 2) & 0x0f;
      int lt = b & 3;
      if (lt == 3) return bad("indeterminate-length packet in a key");
      size_t n = lt == 0 ? 1 : lt == 1 ? 2 : 4;
      if (i + n > raw.size()) return bad("truncated packet");
      for (size_t k = 0; k < n; ++k) len = (len << 8) | byte(i + k);
      i += n;
    }
    if (len > raw.size() - i) return bad("truncated packet");
    if ((tag == 6 || tag == 14) && len > 0 && raw[i] == 4 && len <= 0xffff) {
      g_autoptr(GChecksum) ck = g_checksum_new(G_CHECKSUM_SHA1);
      const guint8 head[3] = {0x99, static_cast<guint8>(len >> 8), static_cast<guint8>(len & 0xff)};
      g_checksum_update(ck, head, 3);
      g_checksum_update(ck, reinterpret_cast<const guint8*>(raw.data() + i), len);
      std::string fp = g_checksum_get_string(ck);
      for (char& c : fp) c = static_cast<char>(toupper(c));
      out.push_back(fp);
    }
    i += len;
  }
  if (out.empty()) return bad("no OpenPGP version 4 public key in it");
  return out;
}

// Writes the trusted keys into one keyring directory as libostree reads it (*.gpg files) and
// collects their fingerprints.
Status MakeKeyringDir(const std::vector<std::string>& keys, const std::string& dir,
                      std::set<std::string>* fingerprints) {
  std::vector<fs::path> files;
  std::error_code ec;
  for (const auto& k : keys) {
    if (fs::is_directory(k, ec)) {
      for (const auto& e : fs::directory_iterator(k, ec))
        if (e.is_regular_file()) files.push_back(e.path());
    } else if (fs::is_regular_file(k, ec)) {
      files.push_back(k);
    } else {
      return NotFound("trusted key not found: '" + k + "'");
    }
  }
  if (files.empty()) return InvalidArgument("no trusted keys given: nothing can be verified");
  std::sort(files.begin(), files.end());
  for (size_t i = 0; i < files.size(); ++i) {
    std::ifstream in(files[i], std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    if (!in) return IoError("cannot read trusted key '" + files[i].string() + "'");
    OP_ASSIGN_OR_RETURN(std::string raw, Dearmor(ss.str(), files[i].string()));
    OP_ASSIGN_OR_RETURN(auto fps, Fingerprints(raw, files[i].string()));
    fingerprints->insert(fps.begin(), fps.end());
    std::ofstream out(fs::path(dir) / ("key" + std::to_string(i) + ".gpg"), std::ios::binary);
    out << raw;
    out.close();
    if (!out) return IoError("cannot write the temporary keyring in '" + dir + "'");
  }
  return Status::Ok();
}

// The trusted keys' fingerprints. libostree also trusts the keys of its global keyring
// (/usr/share/ostree/trusted.gpg.d or $OSTREE_GPG_HOME) when no remote is named, so a valid
// signature counts only when made by one of these.
struct Trusted {
  GFile* keyring;
  std::set<std::string> fingerprints;
};

// The valid signatures' fingerprints, or why there is none.
Expected<std::vector<std::string>> CheckGpgResult(OstreeGpgVerifyResult* res,
                                                  const std::string& what, const Trusted& trust) {
  std::vector<std::string> fps, foreign;
  guint n = ostree_gpg_verify_result_count_all(res);
  for (guint i = 0; i < n; ++i) {
    g_autoptr(GVariant) all = ostree_gpg_verify_result_get_all(res, i);
    gboolean valid = FALSE;
    const char* fp = nullptr;
    g_variant_get_child(all, OSTREE_GPG_SIGNATURE_ATTR_VALID, "b", &valid);
    const char* primary = nullptr;
    g_variant_get_child(all, OSTREE_GPG_SIGNATURE_ATTR_FINGERPRINT, "&s", &fp);
    g_variant_get_child(all, OSTREE_GPG_SIGNATURE_ATTR_FINGERPRINT_PRIMARY, "&s", &primary);
    if (!valid) continue;
    if (trust.fingerprints.count(fp) || (primary && trust.fingerprints.count(primary)))
      fps.emplace_back(fp);
    else
      foreign.emplace_back(fp);
  }
  g_autoptr(GError) err = nullptr;
  if (!ostree_gpg_verify_result_require_valid_signature(res, &err))
    return Refused(what + ": no valid signature by a trusted key (" + err->message + ")");
  if (fps.empty())
    return Refused(what + ": signed only by key " + foreign[0] +
                   ", which is not among the trusted keys (libostree's global keyring knows it)");
  return fps;
}

Status CheckObjects(OstreeRepo* repo, const std::string& commit, const std::string& what) {
  g_autoptr(GHashTable) reachable = nullptr;
  g_autoptr(GError) err = nullptr;
  if (!ostree_repo_traverse_commit(repo, commit.c_str(), 0, &reachable, nullptr, &err))
    return Refused(what + ": cannot walk its tree: " + err->message);
  std::vector<std::pair<std::string, OstreeObjectType>> objs;
  GHashTableIter it;
  gpointer key;
  g_hash_table_iter_init(&it, reachable);
  while (g_hash_table_iter_next(&it, &key, nullptr)) {
    const char* csum;
    OstreeObjectType type;
    ostree_object_name_deserialize(static_cast<GVariant*>(key), &csum, &type);
    objs.emplace_back(csum, type);
  }
  std::sort(objs.begin(), objs.end());
  for (const auto& [csum, type] : objs) {
    if (!ostree_repo_fsck_object(repo, type, csum.c_str(), nullptr, &err)) {
      g_autofree char* name = ostree_object_to_string(csum.c_str(), type);
      return Refused(what + ": object " + name + " is corrupt or missing: " + err->message);
    }
  }
  return Status::Ok();
}

Expected<Digest> DigestInCommit(GFile* root, const std::string& path, const std::string& what) {
  g_autoptr(GFile) f = g_file_resolve_relative_path(root, path.c_str());
  g_autoptr(GError) err = nullptr;
  g_autoptr(GFileInputStream) in = g_file_read(f, nullptr, &err);
  if (!in) return Refused(what + ": " + path + " is missing: " + err->message);
  return Sha256Stream(G_INPUT_STREAM(in), what + ": " + path);
}

template <typename... Args>
bool Lookup(GVariant* md, const char* key, const char* fmt, Args... out) {
  return g_variant_lookup(md, key, fmt, out...);
}

Expected<VerifiedRef> VerifyCommit(OstreeRepo* repo, const std::string& ref,
                                   const std::string& commit, const Trusted& trust) {
  std::string what = "ref '" + ref + "' (commit " + commit + ")";
  VerifiedRef vr;
  vr.ref = ref;
  vr.commit = commit;
  g_autoptr(GError) err = nullptr;
  if (!ostree_repo_fsck_object(repo, OSTREE_OBJECT_TYPE_COMMIT, commit.c_str(), nullptr, &err))
    return Refused(what + ": commit object is corrupt or missing: " + err->message);
  g_autoptr(OstreeGpgVerifyResult) res =
      ostree_repo_verify_commit_ext(repo, commit.c_str(), trust.keyring, nullptr, nullptr, &err);
  if (!res) return Refused(what + ": not signed: " + err->message);
  OP_ASSIGN_OR_RETURN(vr.signed_by, CheckGpgResult(res, what, trust));

  g_autoptr(GVariant) cv = nullptr;
  if (!ostree_repo_load_commit(repo, commit.c_str(), &cv, nullptr, &err))
    return Refused(what + ": " + err->message);
  g_autoptr(GVariant) md = g_variant_get_child_value(cv, 0);
  const char* kind = nullptr;
  const char* version = nullptr;
  guint32 abi = 0;
  g_autofree const char** binding = nullptr;
  if (!Lookup(md, "outpost.kind", "&s", &kind))
    return Refused(what + ": commit metadata has no outpost.kind: not built by outpost image");
  if (!Lookup(md, "version", "&s", &version)) return Refused(what + ": metadata has no version");
  if (!Lookup(md, "outpost.runtime.abi", "u", &abi))
    return Refused(what + ": metadata has no outpost.runtime.abi");
  abi = GUINT32_FROM_BE(abi);  // integers in commit metadata are big-endian
  if (!Lookup(md, "ostree.ref-binding", "^a&s", &binding))
    return Refused(what + ": metadata has no ostree.ref-binding");
  bool bound = false;
  for (const char** b = binding; *b; ++b) bound = bound || ref == *b;
  if (!bound)
    return Refused(what + ": the commit is bound to other refs (ostree.ref-binding): the ref "
                   "was pointed at a commit built for another one");
  vr.kind = kind;
  vr.version = version;

  OP_RETURN_IF_ERROR(CheckObjects(repo, commit, what));

  g_autoptr(GFile) root = nullptr;
  if (!ostree_repo_read_commit(repo, commit.c_str(), &root, nullptr, nullptr, &err))
    return Refused(what + ": " + err->message);
  if (vr.kind == "os") {
    g_autoptr(GVariant) models = g_variant_lookup_value(md, "outpost.models", G_VARIANT_TYPE("a(ssst)"));
    if (!models) return Refused(what + ": metadata has no outpost.models");
    GVariantIter it;
    g_variant_iter_init(&it, models);
    const char *name, *mver, *sha;
    guint64 bytes;
    while (g_variant_iter_next(&it, "(&s&s&st)", &name, &mver, &sha, &bytes)) {
      bytes = GUINT64_FROM_BE(bytes);
      std::string path = std::string(kOsModelsDir) + "/" + name + "/model.onnx";
      OP_ASSIGN_OR_RETURN(Digest d, DigestInCommit(root, path, what));
      if (d.sha256 != sha || d.bytes != bytes)
        return Refused(what + ": model '" + std::string(name) + "': " + path + " has sha256 " +
                       d.sha256 + " (" + std::to_string(d.bytes) + " bytes), metadata says " +
                       sha + " (" + std::to_string(bytes) + " bytes)");
      vr.models.push_back({name, mver, sha, bytes, "", "", false});
    }
  } else if (vr.kind == "model") {
    const char *name = nullptr, *sha = nullptr;
    guint64 bytes = 0;
    if (!Lookup(md, "outpost.model.name", "&s", &name) ||
        !Lookup(md, "outpost.model.sha256", "&s", &sha) ||
        !Lookup(md, "outpost.model.bytes", "t", &bytes))
      return Refused(what + ": metadata lacks outpost.model.name, .sha256 or .bytes");
    bytes = GUINT64_FROM_BE(bytes);
    g_autoptr(GVariant) files = g_variant_lookup_value(md, "outpost.model.files", G_VARIANT_TYPE("a(sst)"));
    if (!files) return Refused(what + ": metadata has no outpost.model.files");
    std::set<std::string> seen;
    GVariantIter it;
    g_variant_iter_init(&it, files);
    const char *path, *fsha;
    guint64 fbytes;
    while (g_variant_iter_next(&it, "(&s&st)", &path, &fsha, &fbytes)) {
      fbytes = GUINT64_FROM_BE(fbytes);
      OP_ASSIGN_OR_RETURN(Digest d, DigestInCommit(root, path, what));
      if (d.sha256 != fsha || d.bytes != fbytes)
        return Refused(what + ": " + path + " has sha256 " + d.sha256 + ", metadata says " + fsha);
      seen.insert(path);
    }
    for (const char* need : {"model.onnx", "manifest.yaml"})
      if (!seen.count(need)) return Refused(what + ": the bundle lists no " + need);
    OP_ASSIGN_OR_RETURN(Digest d, DigestInCommit(root, "model.onnx", what));
    if (d.sha256 != sha || d.bytes != bytes)
      return Refused(what + ": model.onnx has sha256 " + d.sha256 + ", metadata says " + sha);
    vr.models.push_back({name, version, sha, bytes, ref, commit, false});
  } else {
    return Refused(what + ": unknown outpost.kind '" + vr.kind + "'");
  }
  return vr;
}

Expected<GBytes*> ReadBytes(const std::string& path) {
  g_autoptr(GError) err = nullptr;
  gchar* data = nullptr;
  gsize len = 0;
  if (!g_file_get_contents(path.c_str(), &data, &len, &err)) return FromGError(err, path);
  return g_bytes_new_take(data, len);
}

// The summary must be signed by a trusted key and list exactly the repo's refs.
Status VerifySummary(OstreeRepo* repo, const std::string& repo_path,
                     const std::map<std::string, std::string>& refs, const Trusted& trust) {
  std::error_code ec;
  fs::path sum = fs::path(repo_path) / "summary", sig = fs::path(repo_path) / "summary.sig";
  if (!fs::exists(sum, ec)) return Refused("repository '" + repo_path + "' has no summary");
  if (!fs::exists(sig, ec)) return Refused("the summary of '" + repo_path + "' is not signed");
  OP_ASSIGN_OR_RETURN(GBytes * sum_raw, ReadBytes(sum.string()));
  g_autoptr(GBytes) sum_bytes = sum_raw;
  OP_ASSIGN_OR_RETURN(GBytes * sig_raw, ReadBytes(sig.string()));
  g_autoptr(GBytes) sig_bytes = sig_raw;
  g_autoptr(GVariant) sigv = g_variant_ref_sink(
      g_variant_new_from_bytes(G_VARIANT_TYPE("a{sv}"), sig_bytes, FALSE));
  g_autoptr(GVariant) gpgsigs = g_variant_lookup_value(sigv, "ostree.gpgsigs", G_VARIANT_TYPE("aay"));
  if (!gpgsigs || g_variant_n_children(gpgsigs) == 0)
    return Refused("the summary of '" + repo_path + "' carries no GPG signature");
  g_autoptr(GByteArray) all = g_byte_array_new();
  for (gsize i = 0; i < g_variant_n_children(gpgsigs); ++i) {
    g_autoptr(GVariant) one = g_variant_get_child_value(gpgsigs, i);
    g_byte_array_append(all, static_cast<const guint8*>(g_variant_get_data(one)),
                        g_variant_get_size(one));
  }
  g_autoptr(GBytes) sigs = g_byte_array_free_to_bytes(g_steal_pointer(&all));
  g_autoptr(GError) err = nullptr;
  g_autoptr(OstreeGpgVerifyResult) res =
      ostree_repo_gpg_verify_data(repo, nullptr, sum_bytes, sigs, trust.keyring, nullptr, nullptr, &err);
  if (!res) return Refused("summary of '" + repo_path + "': " + err->message);
  OP_ASSIGN_OR_RETURN(auto fps, CheckGpgResult(res, "summary of '" + repo_path + "'", trust));
  (void)fps;
  g_autoptr(GVariant) sv = g_variant_ref_sink(
      g_variant_new_from_bytes(OSTREE_SUMMARY_GVARIANT_FORMAT, sum_bytes, FALSE));
  g_autoptr(GVariant) sref = g_variant_get_child_value(sv, 0);
  std::map<std::string, std::string> listed;
  for (gsize i = 0; i < g_variant_n_children(sref); ++i) {
    g_autoptr(GVariant) e = g_variant_get_child_value(sref, i);
    const char* name = nullptr;
    g_autoptr(GVariant) target = nullptr;
    g_variant_get(e, "(&s@(taya{sv}))", &name, &target);
    g_autoptr(GVariant) csum_v = g_variant_get_child_value(target, 1);
    if (g_variant_get_size(csum_v) != OSTREE_SHA256_DIGEST_LEN) continue;
    char hex[OSTREE_SHA256_STRING_LEN + 1];
    ostree_checksum_inplace_from_bytes(
        static_cast<const guchar*>(g_variant_get_data(csum_v)), hex);
    listed[name] = hex;
  }
  for (const auto& [ref, commit] : refs) {
    auto it = listed.find(ref);
    if (it == listed.end())
      return Refused("ref '" + ref + "' is not in the signed summary of '" + repo_path + "'");
    if (it->second != commit)
      return Refused("ref '" + ref + "' points to " + commit + " but the signed summary says " +
                     it->second + " (ref changed after signing)");
  }
  return Status::Ok();
}

Expected<std::map<std::string, std::string>> ListRefs(OstreeRepo* repo,
                                                      const std::vector<std::string>& wanted,
                                                      const std::string& repo_path) {
  g_autoptr(GHashTable) refs = nullptr;
  g_autoptr(GError) err = nullptr;
  if (!ostree_repo_list_refs(repo, nullptr, &refs, nullptr, &err))
    return FromGError(err, "listing refs of '" + repo_path + "'");
  std::map<std::string, std::string> all;
  GHashTableIter it;
  gpointer k, v;
  g_hash_table_iter_init(&it, refs);
  while (g_hash_table_iter_next(&it, &k, &v))
    all[static_cast<const char*>(k)] = static_cast<const char*>(v);
  if (all.empty()) return Refused("repository '" + repo_path + "' has no refs");
  if (wanted.empty()) return all;
  std::map<std::string, std::string> out;
  for (const auto& r : wanted) {
    if (!all.count(r)) return NotFound("ref '" + r + "' is not in '" + repo_path + "'");
    out[r] = all[r];
  }
  return out;
}

Expected<std::vector<VerifiedRef>> VerifyRepo(const std::string& repo_path,
                                              const std::vector<std::string>& wanted,
                                              const Trusted& trust,
                                              std::map<std::string, std::string>* refs_out) {
  OP_ASSIGN_OR_RETURN(OstreeRepo * raw, OpenRepo(repo_path));
  g_autoptr(OstreeRepo) repo = raw;
  OP_ASSIGN_OR_RETURN(auto all_refs, ListRefs(repo, {}, repo_path));
  OP_RETURN_IF_ERROR(VerifySummary(repo, repo_path, all_refs, trust));
  OP_ASSIGN_OR_RETURN(auto refs, ListRefs(repo, wanted, repo_path));
  std::vector<VerifiedRef> out;
  for (const auto& [ref, commit] : refs) {
    OP_ASSIGN_OR_RETURN(VerifiedRef vr, VerifyCommit(repo, ref, commit, trust));
    out.push_back(std::move(vr));
  }
  if (refs_out) *refs_out = refs;
  return out;
}

// Applies one delta file into a scratch repo (holding its `from` commit, pulled from the bundle's
// repo) and verifies the commit it produces.
Status VerifyDeltaFile(const std::string& bundle, const BundleDelta& d, const Trusted& trust) {
  std::string what = "delta file '" + d.file + "'";
  fs::path file = fs::path(bundle) / d.file;
  auto dig = Sha256File(file.string());
  if (!dig.ok()) return Refused(what + ": " + dig.status().message());
  if (dig->sha256 != d.sha256 || dig->bytes != d.bytes)
    return Refused(what + " is corrupt: sha256 " + dig->sha256 + " (" +
                   std::to_string(dig->bytes) + " bytes), the bundle index says " + d.sha256 +
                   " (" + std::to_string(d.bytes) + " bytes)");
  OP_ASSIGN_OR_RETURN(TempDir scratch, TempDir::Make("outpost-verify"));
  std::string scratch_repo = scratch.path() + "/repo";
  // A bare repo, as on a device: libostree 2022.7 applies a delta that reads its base objects
  // (bsdiff, splices) only into bare modes and aborts the process on an archive repo.
  // bare-user (non-root) keeps ownership in user xattrs, which the temporary directory needs.
  OP_ASSIGN_OR_RETURN(OstreeRepo * raw,
                      OpenOrCreateRepo(scratch_repo, geteuid() == 0 ? OSTREE_REPO_MODE_BARE
                                                                    : OSTREE_REPO_MODE_BARE_USER));
  g_autoptr(OstreeRepo) repo = raw;
  g_autoptr(GError) err = nullptr;
  if (!d.from.empty()) {
    std::string url = "file://" + fs::absolute(fs::path(bundle) / kBundleRepoDir).string();
    const char* refs[] = {d.from.c_str(), nullptr};
    g_auto(GVariantBuilder) b;
    g_variant_builder_init(&b, G_VARIANT_TYPE("a{sv}"));
    g_variant_builder_add(&b, "{s@v}", "refs", g_variant_new_variant(g_variant_new_strv(refs, -1)));
    g_variant_builder_add(&b, "{s@v}", "gpg-verify", g_variant_new_variant(g_variant_new_boolean(FALSE)));
    g_variant_builder_add(&b, "{s@v}", "gpg-verify-summary",
                          g_variant_new_variant(g_variant_new_boolean(FALSE)));
    g_autoptr(GVariant) opts = g_variant_ref_sink(g_variant_builder_end(&b));
    if (!ostree_repo_pull_with_options(repo, url.c_str(), opts, nullptr, nullptr, &err))
      return Refused(what + ": its base commit " + d.from + " is not in the bundle's repo: " +
                     err->message);
  }
  g_autoptr(GFile) f = g_file_new_for_path(file.c_str());
  if (!ostree_repo_static_delta_execute_offline(repo, f, FALSE, nullptr, &err))
    return Refused(what + ": does not apply: " + err->message);
  OP_ASSIGN_OR_RETURN(VerifiedRef vr, VerifyCommit(repo, d.ref, d.to, trust));
  (void)vr;
  return Status::Ok();
}

Expected<VerifyReport> VerifyImpl(const VerifyOptions& opts) {
  if (opts.path.empty()) return InvalidArgument("nothing to verify: no path given");
  std::error_code ec;
  if (!fs::exists(opts.path, ec)) return NotFound("not found: '" + opts.path + "'");
  OP_ASSIGN_OR_RETURN(TempDir keys, TempDir::Make("outpost-keys"));
  g_autoptr(GFile) keyring = g_file_new_for_path(keys.path().c_str());
  Trusted trust{keyring, {}};
  OP_RETURN_IF_ERROR(MakeKeyringDir(opts.trusted_keys, keys.path(), &trust.fingerprints));

  VerifyReport report;
  fs::path index = fs::path(opts.path) / kBundleIndex;
  report.bundle = fs::exists(index, ec);
  if (!report.bundle) {
    OP_ASSIGN_OR_RETURN(report.refs, VerifyRepo(opts.path, opts.refs, trust, nullptr));
    return report;
  }
  OP_ASSIGN_OR_RETURN(BundleIndex bi, ReadBundleIndex(index.string()));
  std::string repo_path = (fs::path(opts.path) / kBundleRepoDir).string();
  std::map<std::string, std::string> refs;
  OP_ASSIGN_OR_RETURN(report.refs, VerifyRepo(repo_path, opts.refs, trust, &refs));
  for (const auto& [ref, commit] : refs) {
    auto it = bi.refs.find(ref);
    if (it == bi.refs.end() || it->second != commit)
      return Refused(std::string(kBundleIndex) + ": ref '" + ref + "' is " +
                     (it == bi.refs.end() ? "missing" : it->second) + ", the bundle's repo has " +
                     commit);
  }
  for (const auto& d : bi.deltas) {
    if (!opts.refs.empty() && !refs.count(d.ref)) continue;
    if (bi.refs[d.ref] != d.to)
      return Refused("delta file '" + d.file + "' leads to " + d.to + ", not to the head of '" +
                     d.ref + "'");
    OP_RETURN_IF_ERROR(VerifyDeltaFile(opts.path, d, trust));
    report.deltas.push_back({d.ref, d.from, d.to, d.bytes});
  }
  return report;
}

}  // namespace

Expected<VerifyReport> Verify(const VerifyOptions& opts) {
  auto r = VerifyImpl(opts);
  CountOutcome("verify", r.status());
  if (!r.ok()) OP_LOG_WARN("image verify refused '{}': {}", opts.path, r.status().ToString());
  return r;
}

}  // namespace outpost::image

namespace outpost::image {

Expected<std::vector<std::string>> KeyFingerprints(const std::vector<std::string>& key_files) {
  std::set<std::string> fps;
  g_autofree char* tmp = g_dir_make_tmp("outpost-keys-XXXXXX", nullptr);
  if (!tmp) return IoError("cannot make a temporary directory for the keys");
  Status s = MakeKeyringDir(key_files, tmp, &fps);
  std::error_code ec;
  fs::remove_all(tmp, ec);
  if (!s.ok()) return s;
  return std::vector<std::string>(fps.begin(), fps.end());
}

}  // namespace outpost::image
