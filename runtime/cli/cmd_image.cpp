// outpost image build | bundle | verify.
#include <cstdio>
#include <cstdlib>
#include <string>

#include "args.h"
#include "outpost/image/image.h"

namespace outpost::cli {

namespace {

const char* kImageUsage =
    "usage: outpost image <build|bundle|verify> [options]\n"
    "\n"
    "  build    compose the OS tree and model bundles, commit, sign, generate static deltas\n"
    "  bundle   write a USB bundle (repo + delta files + index) from a repository\n"
    "  verify   check a repository or a USB bundle offline against trusted keys\n"
    "\n"
    "'outpost image <subcommand> --help' describes each.\n";

const char* kBuildUsage =
    "usage: outpost image build --repo DIR --ref REF --base DIR --outpostd FILE --systemd-dir DIR\n"
    "                           --config FILE --version V [--model MANIFEST ...] [--model-dir DIR]\n"
    "                           [--timestamp SECONDS] (or SOURCE_DATE_EPOCH)\n"
    "                           (--gpg-homedir DIR --gpg-key KEYID | --unsigned)\n"
    "                           [--delta-depth N] [--model-ref-prefix P] [--build-info KEY=VALUE ...]\n"
    "\n"
    "Composes the base rootfs (its /etc moved to /usr/etc, /var and other runtime directories left\n"
    "empty), outpostd, its systemd files (presets applied), the device config and the model\n"
    "bundles; commits it to REF (the repo is created when missing) and each model bundle alone to\n"
    "<model-ref-prefix>/<name> (default: <dirname of REF>/models/<name>); signs the new commits and\n"
    "the summary; generates static deltas from the last N (default 2) commits and from empty.\n"
    "Same inputs and same parent commit give the same commit checksum. Each manifest needs\n"
    "outpost.io/golden-input and golden-output. Prints one line per commit and per delta.\n";

const char* kBundleUsage =
    "usage: outpost image bundle --repo DIR --out DIR --gpg-homedir DIR --gpg-key KEYID\n"
    "                            [--ref REF ...] [--delta-depth N]\n"
    "\n"
    "Writes a USB bundle: DIR/repo (the refs with their last N commits and signatures, a signed\n"
    "summary), DIR/deltas/*.delta (self-contained static delta files from each of the last N\n"
    "commits and from empty) and DIR/outpost-bundle.json (the index). Default: every ref, N = 2.\n";

const char* kVerifyUsage =
    "usage: outpost image verify PATH --trusted-key FILE|DIR [--trusted-key ...] [--ref REF ...]\n"
    "\n"
    "Checks a repository or a USB bundle offline: every commit signed by a trusted key, the\n"
    "summary signed and matching the refs, every object intact, the commit metadata complete and\n"
    "each model's sha256 equal to it; for a bundle also each delta file applied into a scratch\n"
    "repository and its result checked the same way. Exit 0 when all is good, 1 with the first\n"
    "problem named otherwise.\n";

void PrintDelta(const image::DeltaInfo& d) {
  std::printf("delta %s %s -> %s bytes=%llu\n", d.ref.c_str(),
              d.from.empty() ? "empty" : d.from.c_str(), d.to.c_str(),
              static_cast<unsigned long long>(d.bytes));
}

bool ParseKeyValues(const std::vector<std::string>& kvs, std::map<std::string, std::string>* out,
                    std::string* error) {
  for (const auto& kv : kvs) {
    auto eq = kv.find('=');
    if (eq == std::string::npos || eq == 0) {
      *error = "--build-info expects KEY=VALUE, got '" + kv + "'";
      return false;
    }
    (*out)[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  return true;
}

int Build(int argc, char** argv) {
  Args a;
  std::vector<FlagSpec> specs = {
      {"--repo"},        {"--ref"},          {"--base"},       {"--outpostd"},
      {"--systemd-dir"}, {"--config"},       {"--version"},    {"--model", true, true},
      {"--model-dir"},   {"--timestamp"},    {"--gpg-homedir"}, {"--gpg-key"},
      {"--unsigned", false}, {"--delta-depth"}, {"--model-ref-prefix"},
      {"--build-info", true, true}};
  if (!a.Parse(argc, argv, 3, specs, 0, 0)) return Usage(kBuildUsage, a.error());
  if (a.help()) return std::fputs(kBuildUsage, stdout), 0;
  for (const char* req : {"--repo", "--ref", "--base", "--outpostd", "--systemd-dir", "--config",
                          "--version"})
    if (!a.Has(req)) return Usage(kBuildUsage, std::string("missing ") + req);
  image::BuildOptions o;
  o.repo = a.Get("--repo");
  o.ref = a.Get("--ref");
  o.base_rootfs = a.Get("--base");
  o.outpostd = a.Get("--outpostd");
  o.systemd_dir = a.Get("--systemd-dir");
  o.device_config = a.Get("--config");
  o.version = a.Get("--version");
  o.manifests = a.All("--model");
  o.model_dir = a.Get("--model-dir");
  o.model_ref_prefix = a.Get("--model-ref-prefix");
  long long ts = -1, depth = 2;
  if (a.Has("--timestamp")) {
    if (!a.GetInt("--timestamp", -1, 0, 1LL << 40, &ts)) return Usage(kBuildUsage, a.error());
  } else if (const char* sde = std::getenv("SOURCE_DATE_EPOCH"); sde && *sde) {
    char* end = nullptr;
    ts = std::strtoll(sde, &end, 10);
    if (*end != '\0' || ts < 0)
      return Usage(kBuildUsage, std::string("SOURCE_DATE_EPOCH is not a number of seconds: '") +
                                    sde + "'");
  } else {
    return Usage(kBuildUsage, "no timestamp: pass --timestamp SECONDS or set SOURCE_DATE_EPOCH");
  }
  o.timestamp = ts;
  if (!a.GetInt("--delta-depth", 2, 0, 100, &depth)) return Usage(kBuildUsage, a.error());
  o.delta_depth = static_cast<int>(depth);
  std::string err;
  if (!ParseKeyValues(a.All("--build-info"), &o.build_info, &err)) return Usage(kBuildUsage, err);
  o.sign = !a.Has("--unsigned");
  if (o.sign && (!a.Has("--gpg-homedir") || !a.Has("--gpg-key")))
    return Usage(kBuildUsage, "give --gpg-homedir and --gpg-key (or --unsigned)");
  if (!o.sign && (a.Has("--gpg-homedir") || a.Has("--gpg-key")))
    return Usage(kBuildUsage, "--unsigned with a signing key");
  o.key = {a.Get("--gpg-homedir"), a.Get("--gpg-key")};
  auto r = image::Build(o);
  if (!r.ok()) return Fail(r.status(), "image");
  for (const auto& m : r->models)
    std::printf("model %s %s %s sha256=%s bytes=%llu%s\n", m.ref.c_str(), m.commit.c_str(),
                m.version.c_str(), m.sha256.c_str(), static_cast<unsigned long long>(m.bytes),
                m.new_commit ? "" : " (unchanged)");
  std::printf("os %s %s\n", o.ref.c_str(), r->commit.c_str());
  for (const auto& d : r->deltas) PrintDelta(d);
  return 0;
}

int Bundle(int argc, char** argv) {
  Args a;
  std::vector<FlagSpec> specs = {{"--repo"},        {"--out"},        {"--gpg-homedir"},
                                 {"--gpg-key"},     {"--ref", true, true}, {"--delta-depth"}};
  if (!a.Parse(argc, argv, 3, specs, 0, 0)) return Usage(kBundleUsage, a.error());
  if (a.help()) return std::fputs(kBundleUsage, stdout), 0;
  for (const char* req : {"--repo", "--out", "--gpg-homedir", "--gpg-key"})
    if (!a.Has(req)) return Usage(kBundleUsage, std::string("missing ") + req);
  image::BundleOptions o;
  o.repo = a.Get("--repo");
  o.out = a.Get("--out");
  o.refs = a.All("--ref");
  o.key = {a.Get("--gpg-homedir"), a.Get("--gpg-key")};
  long long depth = 2;
  if (!a.GetInt("--delta-depth", 2, 0, 100, &depth)) return Usage(kBundleUsage, a.error());
  o.delta_depth = static_cast<int>(depth);
  auto r = image::MakeBundle(o);
  if (!r.ok()) return Fail(r.status(), "image");
  for (const auto& d : *r) PrintDelta(d);
  return 0;
}

int Verify(int argc, char** argv) {
  Args a;
  std::vector<FlagSpec> specs = {{"--trusted-key", true, true}, {"--ref", true, true}};
  if (!a.Parse(argc, argv, 3, specs, 1, 1)) return Usage(kVerifyUsage, a.error());
  if (a.help()) return std::fputs(kVerifyUsage, stdout), 0;
  if (!a.Has("--trusted-key")) return Usage(kVerifyUsage, "missing --trusted-key");
  image::VerifyOptions o;
  o.path = a.positional()[0];
  o.trusted_keys = a.All("--trusted-key");
  o.refs = a.All("--ref");
  auto r = image::Verify(o);
  if (!r.ok()) return Fail(r.status(), "image");
  for (const auto& v : r->refs) {
    std::printf("ok %s %s %s version=%s signed-by=%s\n", v.kind.c_str(), v.ref.c_str(),
                v.commit.c_str(), v.version.c_str(),
                v.signed_by.empty() ? "?" : v.signed_by[0].c_str());
    for (const auto& m : v.models)
      std::printf("   model %s %s sha256=%s\n", m.name.c_str(), m.version.c_str(), m.sha256.c_str());
  }
  for (const auto& d : r->deltas)
    std::printf("ok delta %s %s -> %s applied offline and verified\n", d.ref.c_str(),
                d.from.empty() ? "empty" : d.from.c_str(), d.to.c_str());
  return 0;
}

}  // namespace

int CmdImage(int argc, char** argv) {
  if (argc < 3) return Usage(kImageUsage, "no image subcommand given");
  std::string sub = argv[2];
  if (sub == "--help" || sub == "-h" || sub == "help") return std::fputs(kImageUsage, stdout), 0;
  if (sub == "build") return Build(argc, argv);
  if (sub == "bundle") return Bundle(argc, argv);
  if (sub == "verify") return Verify(argc, argv);
  return Usage(kImageUsage, "unknown image subcommand '" + sub + "'");
}

}  // namespace outpost::cli
