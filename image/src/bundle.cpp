// outpost image bundle: a directory to carry updates on a USB stick (format in README.md).
#include <filesystem>
#include <fstream>
#include <regex>

#include <nlohmann/json.hpp>

#include "bundle_format.h"
#include "ostree_util.h"
#include "outpost/core/log.h"

namespace outpost::image {

using namespace internal;  // NOLINT(google-build-using-namespace): this file's own internals
namespace fs = std::filesystem;

namespace internal {

Expected<BundleIndex> ReadBundleIndex(const std::string& path) {
  std::ifstream in(path);
  if (!in) return IoError("cannot read '" + path + "'");
  nlohmann::json j = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  auto bad = [&](const std::string& m) { return InvalidArgument(path + ": " + m); };
  if (j.is_discarded() || !j.is_object()) return bad("not a JSON object");
  if (j.value("format", "") != kBundleFormat)
    return bad("format is not \"" + std::string(kBundleFormat) + "\"");
  if (!j.contains("refs") || !j["refs"].is_object()) return bad("no \"refs\" object");
  if (!j.contains("deltas") || !j["deltas"].is_array()) return bad("no \"deltas\" array");
  static const std::regex kCsum("[0-9a-f]{64}");
  static const std::regex kFile("deltas/[A-Za-z0-9._-]+\\.delta");
  BundleIndex bi;
  for (const auto& [ref, c] : j["refs"].items()) {
    if (!c.is_string() || !std::regex_match(c.get<std::string>(), kCsum))
      return bad("refs[\"" + ref + "\"] is not a commit checksum");
    bi.refs[ref] = c.get<std::string>();
  }
  for (const auto& e : j["deltas"]) {
    if (!e.is_object()) return bad("a delta entry is not an object");
    BundleDelta d;
    try {
      d.file = e.at("file").get<std::string>();
      d.ref = e.at("ref").get<std::string>();
      d.from = e.at("from").get<std::string>();
      d.to = e.at("to").get<std::string>();
      d.bytes = e.at("bytes").get<uint64_t>();
      d.sha256 = e.at("sha256").get<std::string>();
    } catch (const nlohmann::json::exception& ex) {
      return bad(std::string("delta entry: ") + ex.what());
    }
    if (!std::regex_match(d.file, kFile)) return bad("delta file name '" + d.file + "' is not deltas/<name>.delta");
    if (!bi.refs.count(d.ref)) return bad("delta '" + d.file + "' names unknown ref '" + d.ref + "'");
    if ((!d.from.empty() && !std::regex_match(d.from, kCsum)) || !std::regex_match(d.to, kCsum) ||
        !std::regex_match(d.sha256, kCsum))
      return bad("delta '" + d.file + "': from, to and sha256 must be 64 hex digits");
    bi.deltas.push_back(d);
  }
  return bi;
}

Status WriteBundleIndex(const std::string& path, const BundleIndex& bi) {
  nlohmann::json j;
  j["format"] = kBundleFormat;
  j["refs"] = nlohmann::json::object();
  for (const auto& [r, c] : bi.refs) j["refs"][r] = c;
  j["deltas"] = nlohmann::json::array();
  for (const auto& d : bi.deltas)
    j["deltas"].push_back({{"file", d.file}, {"ref", d.ref}, {"from", d.from}, {"to", d.to},
                           {"bytes", d.bytes}, {"sha256", d.sha256}});
  std::ofstream out(path, std::ios::trunc);
  out << j.dump(2) << "\n";
  out.close();
  if (!out) return IoError("cannot write '" + path + "'");
  return Status::Ok();
}

}  // namespace internal

namespace {

std::string Slug(const std::string& ref) {
  std::string s = ref;
  for (char& c : s)
    if (c == '/' || c == ':') c = '_';
  return s;
}

Expected<std::vector<DeltaInfo>> MakeBundleImpl(const BundleOptions& opts) {
  if (opts.repo.empty() || opts.out.empty()) return InvalidArgument("repository and output directory needed");
  if (opts.key.gpg_homedir.empty() || opts.key.key_id.empty())
    return InvalidArgument("a bundle's summary is signed: give a GnuPG home directory and key id");
  if (opts.delta_depth < 0 || opts.delta_depth > 100)
    return InvalidArgument("delta depth must be within 0..100");
  std::error_code ec;
  if (fs::exists(opts.out, ec) && !fs::is_empty(opts.out, ec))
    return InvalidArgument("bundle directory '" + opts.out + "' exists and is not empty");
  OP_ASSIGN_OR_RETURN(OstreeRepo * src_raw, OpenRepo(opts.repo));
  g_autoptr(OstreeRepo) src = src_raw;

  BundleIndex bi;
  std::vector<std::string> refs = opts.refs;
  if (refs.empty()) {
    g_autoptr(GHashTable) all = nullptr;
    g_autoptr(GError) err = nullptr;
    if (!ostree_repo_list_refs(src, nullptr, &all, nullptr, &err))
      return FromGError(err, "listing refs of '" + opts.repo + "'");
    GHashTableIter it;
    gpointer k;
    g_hash_table_iter_init(&it, all);
    while (g_hash_table_iter_next(&it, &k, nullptr)) refs.emplace_back(static_cast<const char*>(k));
    std::sort(refs.begin(), refs.end());
  }
  if (refs.empty()) return InvalidArgument("repository '" + opts.repo + "' has no refs");
  for (const auto& r : refs) {
    OP_ASSIGN_OR_RETURN(std::string c, ResolveRef(src, r));
    if (c.empty()) return NotFound("ref '" + r + "' is not in '" + opts.repo + "'");
    bi.refs[r] = c;
  }

  // repo/: the refs with their recent history and signatures, as a pull would copy them.
  std::string repo_path = (fs::path(opts.out) / kBundleRepoDir).string();
  OP_ASSIGN_OR_RETURN(OstreeRepo * dst_raw, OpenOrCreateRepo(repo_path));
  g_autoptr(OstreeRepo) dst = dst_raw;
  {
    std::vector<const char*> crefs;
    for (const auto& r : refs) crefs.push_back(r.c_str());
    crefs.push_back(nullptr);
    std::string url = "file://" + fs::absolute(opts.repo).string();
    g_auto(GVariantBuilder) b;
    g_variant_builder_init(&b, G_VARIANT_TYPE("a{sv}"));
    g_variant_builder_add(&b, "{s@v}", "refs", g_variant_new_variant(g_variant_new_strv(crefs.data(), -1)));
    g_variant_builder_add(&b, "{s@v}", "flags", g_variant_new_variant(g_variant_new_int32(OSTREE_REPO_PULL_FLAGS_MIRROR)));
    g_variant_builder_add(&b, "{s@v}", "depth", g_variant_new_variant(g_variant_new_int32(opts.delta_depth)));
    g_variant_builder_add(&b, "{s@v}", "gpg-verify", g_variant_new_variant(g_variant_new_boolean(FALSE)));
    g_variant_builder_add(&b, "{s@v}", "gpg-verify-summary", g_variant_new_variant(g_variant_new_boolean(FALSE)));
    g_autoptr(GVariant) o = g_variant_ref_sink(g_variant_builder_end(&b));
    g_autoptr(GError) err = nullptr;
    if (!ostree_repo_pull_with_options(dst, url.c_str(), o, nullptr, nullptr, &err))
      return FromGError(err, "copying the refs into '" + repo_path + "'");
  }
  OP_RETURN_IF_ERROR(UpdateSignedSummary(dst, opts.key));

  // deltas/: one self-contained file per (from, to).
  fs::path delta_dir = fs::path(opts.out) / kBundleDeltaDir;
  fs::create_directories(delta_dir, ec);
  if (ec) return IoError("cannot create '" + delta_dir.string() + "': " + ec.message());
  std::vector<DeltaInfo> out;
  for (const auto& [ref, to] : bi.refs) {
    OP_ASSIGN_OR_RETURN(auto chain, Ancestors(src, to, opts.delta_depth));
    std::vector<std::string> froms(chain.begin() + 1, chain.end());
    froms.push_back("");
    for (const auto& from : froms) {
      std::string name = Slug(ref) + "_" + (from.empty() ? "empty" : from.substr(0, 12)) + "_" +
                         to.substr(0, 12) + ".delta";
      fs::path file = delta_dir / name;
      OP_RETURN_IF_ERROR(GenerateDelta(src, from, to, file.string()));
      OP_ASSIGN_OR_RETURN(Digest d, Sha256File(file.string()));
      bi.deltas.push_back({std::string(kBundleDeltaDir) + "/" + name, ref, from, to, d.bytes, d.sha256});
      out.push_back({ref, from, to, d.bytes});
    }
  }
  OP_RETURN_IF_ERROR(WriteBundleIndex((fs::path(opts.out) / kBundleIndex).string(), bi));
  return out;
}

}  // namespace

Expected<std::vector<DeltaInfo>> MakeBundle(const BundleOptions& opts) {
  auto r = MakeBundleImpl(opts);
  CountOutcome("bundle", r.status());
  if (!r.ok()) OP_LOG_ERROR("image bundle failed: {}", r.status().ToString());
  return r;
}

}  // namespace outpost::image
