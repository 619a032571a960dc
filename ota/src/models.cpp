// Model-only updates (ota/models.h; ota/README.md, "Model-only updates").
#include "outpost/ota/models.h"

#include <glib.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "bundle.h"
#include "fetch.h"
#include "http_client.h"
#include "outpost/config/manifest.h"
#include "outpost/core/log.h"
#include "outpost/core/metrics.h"
#include "outpost/ota/gate_probe.h"
#include "outpost/ota/state.h"

namespace outpost::ota {

namespace fs = std::filesystem;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

constexpr const char* kFormat = "outpost-ota-models/1";
constexpr uint32_t kRuntimeAbi = 1;  // image::kRuntimeAbi: the bundle layout this agent reads

double MsSince(Clock::time_point t) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
}

void CountOutcome(const char* metric, const char* help, const std::string& model, ModelOutcome o) {
  MetricsRegistry::Global()
      .GetCounter(metric, help, {{"model", model}, {"outcome", std::string(ModelOutcomeName(o))}})
      .Inc();
}

// KServe's model name format: also keeps the name safe in paths and refs.
bool ValidName(const std::string& n) {
  if (n.empty() || n.size() > 63 || !(n[0] >= 'a' && n[0] <= 'z') || n.back() == '-') return false;
  for (char c : n)
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) return false;
  return true;
}

bool IsCommit(const std::string& s) {
  return s.size() == 64 && std::all_of(s.begin(), s.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

json VersionJson(const ModelVersion& v, bool with_text) {
  json j = {{"commit", v.commit},
            {"version", v.version},
            {"checkout", v.checkout},
            {"since_unix", v.since_unix}};
  if (with_text) j["manifest_text"] = v.manifest_text;
  return j;
}

json RecordJson(const ModelRecord& r, bool with_text) {
  json prev = json::array(), refused = json::array();
  for (const auto& p : r.previous) prev.push_back(VersionJson(p, with_text));
  for (const auto& f : r.refused) refused.push_back({{"commit", f.commit}, {"reason", f.reason}});
  return {{"name", r.name},
          {"current", VersionJson(r.current, with_text)},
          {"previous", prev},
          {"refused", refused},
          {"rolled_back", r.rolled_back}};
}

ModelVersion VersionFrom(const json& j) {
  ModelVersion v;
  v.commit = j.at("commit").get<std::string>();
  v.version = j.at("version").get<std::string>();
  v.checkout = j.at("checkout").get<std::string>();
  v.manifest_text = j.at("manifest_text").get<std::string>();
  v.since_unix = j.at("since_unix").get<int64_t>();
  return v;
}

std::string StatePath(const std::string& dir) { return dir + "/models.json"; }

Expected<std::map<std::string, ModelRecord>> LoadState(const std::string& dir) {
  std::map<std::string, ModelRecord> out;
  const std::string path = StatePath(dir);
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    std::error_code ec;
    if (fs::exists(path, ec)) return IoError("cannot read '" + path + "'");
    return out;
  }
  std::stringstream ss;
  ss << in.rdbuf();
  try {
    json j = json::parse(ss.str());
    if (j.at("format").get<std::string>() != kFormat)
      return InvalidArgument("'" + path + "' is not an " + kFormat + " file");
    for (const auto& m : j.at("models")) {
      ModelRecord r;
      r.name = m.at("name").get<std::string>();
      r.current = VersionFrom(m.at("current"));
      for (const auto& p : m.at("previous")) r.previous.push_back(VersionFrom(p));
      for (const auto& f : m.at("refused"))
        r.refused.push_back({f.at("commit").get<std::string>(), f.at("reason").get<std::string>()});
      r.rolled_back = m.at("rolled_back").get<std::string>();
      out[r.name] = std::move(r);
    }
  } catch (const json::exception& e) {
    MetricsRegistry::Global()
        .GetCounter("outpost_ota_state_corrupt_total", "OTA state files refused as corrupt")
        .Inc();
    return InvalidArgument("model state file '" + path + "' refused: " + e.what());
  }
  return out;
}

Status SaveState(const std::string& dir, const std::map<std::string, ModelRecord>& all) {
  json models = json::array();
  for (const auto& [name, r] : all) models.push_back(RecordJson(r, true));
  json j = {{"format", kFormat}, {"models", models}};
  Status s = WriteFileAtomically(StatePath(dir), j.dump(1) + "\n");
  MetricsRegistry::Global()
      .GetCounter("outpost_ota_state_writes_total", "OTA state file writes by outcome",
                  {{"outcome", s.ok() ? "ok" : "error"}})
      .Inc();
  return s;
}

Expected<std::string> ReadText(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFound("cannot read '" + path + "'");
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The checkout holds exactly the files the commit's metadata lists, with their sha256 and size.
Status VerifyCheckout(const std::string& dir, const std::vector<BundleFileMeta>& files) {
  if (files.empty())
    return InvalidArgument("the commit lists no bundle files (outpost.model.files)");
  std::map<std::string, const BundleFileMeta*> want;
  for (const auto& f : files) want[f.path] = &f;
  std::error_code ec;
  size_t seen = 0;
  for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::end(it);
       it.increment(ec)) {
    const auto st = it->symlink_status(ec);
    if (fs::is_directory(st)) continue;
    const std::string rel = fs::relative(it->path(), dir, ec).string();
    if (!fs::is_regular_file(st))
      return InvalidArgument("'" + rel + "' in the checkout is not a regular file");
    auto w = want.find(rel);
    if (w == want.end())
      return InvalidArgument("'" + rel + "' is in the commit but not in outpost.model.files");
    ++seen;
    const uint64_t bytes = fs::file_size(it->path(), ec);
    if (bytes != w->second->bytes)
      return InvalidArgument("'" + rel + "' has " + std::to_string(bytes) +
                             " bytes, the commit says " + std::to_string(w->second->bytes));
    OP_ASSIGN_OR_RETURN(std::string sha, internal::Sha256File(it->path().string()));
    if (sha != w->second->sha256)
      return InvalidArgument("'" + rel + "' has sha256 " + sha + ", the commit says " +
                             w->second->sha256);
  }
  if (ec) return IoError("cannot list '" + dir + "': " + ec.message());
  if (seen != want.size())
    return InvalidArgument("the checkout lacks files listed in outpost.model.files");
  return Status::Ok();
}

// The commit is a model bundle of `name`, built for `ref`, in a layout this agent reads.
Status CheckMetadata(const ModelCommitInfo& info, const std::string& name, const std::string& ref) {
  if (info.kind != "model")
    return InvalidArgument("outpost.kind is '" + info.kind + "', not 'model'");
  if (info.model_name != name)
    return InvalidArgument("outpost.model.name is '" + info.model_name + "', not '" + name + "'");
  if (std::find(info.ref_bindings.begin(), info.ref_bindings.end(), ref) == info.ref_bindings.end())
    return InvalidArgument("the commit is not bound to ref " + ref + " (ostree.ref-binding)");
  if (info.runtime_abi != kRuntimeAbi)
    return InvalidArgument("outpost.runtime.abi is " + std::to_string(info.runtime_abi) +
                           ", this agent reads " + std::to_string(kRuntimeAbi));
  return Status::Ok();
}

class Step {
 public:
  Step(const ModelUpdateConfig& cfg, const std::string& name) : cfg_(cfg), name_(name) {}

  ModelStepResult Update();
  ModelStepResult RollBack();
  ModelStepResult Check();

 private:
  // The start of Update and Check: name and repository checked, the records loaded, the remote
  // (re)configured when remote_url is set; *src with the model's ref.
  Status Begin(SysrootConfig* src);
  ModelStepResult Finish(ModelOutcome o, std::string message) {
    res_.outcome = o;
    res_.message = std::move(message);
    res_.record = all_.count(name_) ? all_[name_] : ModelRecord{name_, {}, {}, {}, {}};
    if (o == ModelOutcome::kUpdated || o == ModelOutcome::kRolledBack)
      OP_LOG_INFO("ota models: {}: {}", name_, res_.message);
    else if (o == ModelOutcome::kUpToDate)
      OP_LOG_INFO("ota models: {}: {}", name_, res_.message);
    else
      OP_LOG_WARN("ota models: {}: {}: {}", name_, ModelOutcomeName(o), res_.message);
    return res_;
  }
  std::string ManifestPath() const { return cfg_.manifest_dir + "/" + name_ + ".yaml"; }
  // Writes the manifest (empty text: removes it) and asks outpostd to load it; the load's answer.
  Status Install(const std::string& text);
  // The version outpostd serves for the model, per its repository index.
  Expected<std::string> ServingVersion();
  // The golden input answered with the golden output over V2 (and outpostd ready).
  Status GoldenOverV2(const std::string& checkout);
  Status Save() { return SaveState(cfg_.state_dir, all_); }
  void Prune();
  Expected<std::string> Fetch(const SysrootConfig& src, const std::string& from);
  void Refuse(const std::string& commit, const std::string& reason) {
    auto& r = all_[name_];
    r.name = name_;
    r.refused.push_back({commit, reason});
  }

  const ModelUpdateConfig& cfg_;
  const std::string name_;
  std::map<std::string, ModelRecord> all_;
  ModelStepResult res_;
};

Status Step::Install(const std::string& text) {
  if (text.empty()) {
    std::error_code ec;
    fs::remove(ManifestPath(), ec);
    if (ec) return IoError("cannot remove '" + ManifestPath() + "': " + ec.message());
  } else {
    OP_RETURN_IF_ERROR(WriteFileAtomically(ManifestPath(), text));
  }
  OP_LOG_INFO("ota models: {}: wrote {}, asking outpostd {}:{} to load it", name_, ManifestPath(),
              cfg_.outpostd_host, cfg_.outpostd_port);
  if (text.empty()) return Status::Ok();
  auto r = internal::Http(cfg_.outpostd_host, cfg_.outpostd_port, "POST",
                          "/v2/repository/models/" + name_ + "/load", "{}",
                          static_cast<int>(cfg_.load_timeout_ms));
  if (!r.ok()) return Unavailable("outpostd load of '" + name_ + "': " + r.status().message());
  if (r->status != 200) {
    std::string why = r->body;
    try {
      why = json::parse(r->body).at("error").get<std::string>();
    } catch (const json::exception&) {
    }
    return InvalidArgument("outpostd refused to load it (HTTP " + std::to_string(r->status) +
                           "): " + why);
  }
  return Status::Ok();
}

Expected<std::string> Step::ServingVersion() {
  auto r = internal::Http(cfg_.outpostd_host, cfg_.outpostd_port, "POST", "/v2/repository/index",
                          "{}", 10000);
  if (!r.ok()) return r.status();
  if (r->status != 200)
    return Unavailable("repository index: HTTP " + std::to_string(r->status) + ": " + r->body);
  try {
    for (const auto& e : json::parse(r->body))
      if (e.at("name").get<std::string>() == name_ && e.value("state", "") == "READY")
        return e.value("version", "");
  } catch (const json::exception& e) {
    return Unavailable(std::string("repository index: ") + e.what());
  }
  return NotFound("outpostd serves no version of '" + name_ + "'");
}

Status Step::GoldenOverV2(const std::string& checkout) {
  OP_ASSIGN_OR_RETURN(config::ModelManifest m, internal::LoadBundleManifest(checkout));
  ProbeConfig pc;
  pc.host = cfg_.outpostd_host;
  pc.port = cfg_.outpostd_port;
  pc.models = {internal::GoldenOf(m, cfg_.tolerance)};
  pc.runs = std::max(1, cfg_.gate_runs);
  pc.deadline_ms = 30000;
  GateVerdict v = Judge(Probe(pc));
  if (v.pass) return Status::Ok();
  std::string why;
  for (const auto& f : v.failures) why += (why.empty() ? "" : "; ") + f;
  return InvalidArgument("V2 golden check failed: " + why);
}

// Removes checkouts under models_root that no record of any model references any more.
void Step::Prune() {
  std::vector<std::string> keep;
  for (const auto& [n, r] : all_) {
    keep.push_back(r.current.commit);
    for (const auto& p : r.previous) keep.push_back(p.commit);
  }
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(cfg_.models_root, ec)) {
    const std::string n = e.path().filename().string();
    if (!IsCommit(n) || std::find(keep.begin(), keep.end(), n) != keep.end()) continue;
    fs::remove_all(e.path(), ec);
    OP_LOG_INFO("ota models: removed checkout {}{}", e.path().string(),
                ec ? " (failed: " + ec.message() + ")" : "");
  }
}

// The model's head through its static delta (fetch.h), or libostree's pull when none is usable.
// Refusals (signature, checksum, downgrade) are kInvalidArgument as Pull's; the rest kUnavailable.
Expected<std::string> Step::Fetch(const SysrootConfig& src, const std::string& from) {
  if (cfg_.download.deltas) {
    internal::DeltaResult d = internal::FetchAndApplyDelta(
        src, from, cfg_.state_dir + "/download-models/" + name_, cfg_.download);
    switch (d.outcome) {
      case internal::DeltaOutcome::kApplied: return d.commit;
      case internal::DeltaOutcome::kRefused: return InvalidArgument(d.message);
      case internal::DeltaOutcome::kInterrupted:
      case internal::DeltaOutcome::kFailed: return Unavailable(d.message);
      case internal::DeltaOutcome::kNoDelta: break;
    }
    MetricsRegistry::Global()
        .GetCounter("outpost_ota_delta_fallbacks_total",
                    "OTA updates pulled by libostree because no usable static delta was "
                    "found (no rate limit, no byte-range resume)")
        .Inc();
    OP_LOG_WARN("ota models: {}: {}; libostree's pull instead (no rate limit, no byte resume)",
                name_, d.message);
  }
  return Pull(src);
}

Status Step::Begin(SysrootConfig* src) {
  if (!ValidName(name_)) return InvalidArgument("not a model name: '" + name_ + "'");
  if (cfg_.source.repo.empty())
    return InvalidArgument("no repository configured for model updates");
  auto loaded = LoadState(cfg_.state_dir);
  if (!loaded.ok()) return loaded.status();
  all_ = std::move(*loaded);
  all_[name_].name = name_;
  *src = cfg_.source;
  src->ref = cfg_.ref_prefix + "/" + name_;
  if (cfg_.remote_url.empty()) return Status::Ok();
  return AddRemote(*src, cfg_.remote_url, cfg_.key_files);
}

ModelStepResult Step::Update() {
  SysrootConfig src;
  if (Status s = Begin(&src); !s.ok()) return Finish(ModelOutcome::kError, s.message());
  ModelRecord& rec = all_[name_];
  OP_LOG_INFO("ota models: {}: pulling {}:{}", name_, src.remote, src.ref);
  const auto t_pull = Clock::now();
  auto pulled = Fetch(src, rec.current.commit);  // signature checked against the trusted keys
  if (!pulled.ok())
    return Finish(pulled.status().code() == Code::kInvalidArgument ? ModelOutcome::kRefused
                                                                   : ModelOutcome::kError,
                  pulled.status().message());
  const auto t_dl = Clock::now();
  res_.download_ms = MsSince(t_pull);
  const std::string commit = *pulled;
  res_.commit = commit;
  OP_LOG_INFO("ota models: {}: pulled and verified {} in {:.0f} ms", name_, commit,
              res_.download_ms);
  if (commit == rec.current.commit)
    return Finish(ModelOutcome::kUpToDate, "up to date at " + commit);
  if (commit == rec.rolled_back)
    return Finish(ModelOutcome::kUpToDate,
                  "the remote head " + commit + " was rolled back; not taken again");
  for (const auto& f : rec.refused)
    if (f.commit == commit)
      return Finish(ModelOutcome::kUpToDate, "the remote head " + commit +
                                                 " failed its check before (" + f.reason +
                                                 "); not tried again");

  auto refuse = [&](ModelOutcome o, const std::string& why, const std::string& checkout) {
    Refuse(commit, why);
    std::error_code ec;
    if (!checkout.empty()) fs::remove_all(checkout, ec);
    Status s = Save();
    return Finish(o, "commit " + commit + " refused: " + why +
                         (s.ok() ? "" : " (and the state was not saved: " + s.message() + ")"));
  };

  auto info = ReadModelCommit(src, commit);
  if (!info.ok()) return Finish(ModelOutcome::kError, info.status().message());
  Status meta = CheckMetadata(*info, name_, src.ref);
  if (!meta.ok()) return refuse(ModelOutcome::kRefused, meta.message(), "");

  // The checkout: <models_root>/<commit>, made beside and renamed into place.
  const std::string checkout = cfg_.models_root + "/" + commit;
  std::error_code ec;
  if (fs::exists(checkout, ec) && !VerifyCheckout(checkout, info->files).ok()) {
    OP_LOG_WARN(
        "ota models: {}: existing checkout {} does not match its commit; checking out again", name_,
        checkout);
    fs::remove_all(checkout, ec);
  }
  if (!fs::exists(checkout, ec)) {
    fs::create_directories(cfg_.models_root, ec);
    const std::string tmp = checkout + ".tmp-" + std::to_string(getpid());
    fs::remove_all(tmp, ec);
    Status s = CheckoutCommit(src, commit, tmp);
    if (s.ok() && rename(tmp.c_str(), checkout.c_str()) != 0)
      s = IoError("cannot rename '" + tmp + "' to '" + checkout + "'");
    if (!s.ok()) {
      fs::remove_all(tmp, ec);
      return Finish(ModelOutcome::kError, s.message());
    }
  }
  Status files = VerifyCheckout(checkout, info->files);
  if (!files.ok()) return refuse(ModelOutcome::kRefused, files.message(), checkout);
  auto bundle = internal::LoadBundleManifest(checkout);
  if (!bundle.ok()) return refuse(ModelOutcome::kRefused, bundle.status().message(), checkout);
  if (bundle->name != name_)
    return refuse(ModelOutcome::kRefused, "its manifest declares model '" + bundle->name + "'",
                  checkout);
  auto text = ReadText(checkout + "/manifest.yaml");
  if (!text.ok()) return Finish(ModelOutcome::kError, text.status().message());
  auto manifest =
      config::RewriteManifestPaths(*text, checkout + "/manifest.yaml", bundle->model_path,
                                   bundle->golden_input, bundle->golden_output);
  if (!manifest.ok()) return refuse(ModelOutcome::kRefused, manifest.status().message(), checkout);
  OP_LOG_INFO("ota models: {}: checked out {} (version {}), files match the commit", name_,
              checkout, info->version);

  // What serves now: the recorded version, or the manifest found installed before the first
  // model-only update (kept as the first rollback target).
  ModelVersion before = rec.current;
  if (before.manifest_text.empty()) {
    auto found = ReadText(ManifestPath());
    if (found.ok()) {
      before.manifest_text = *found;
      auto v = ServingVersion();
      before.version = v.ok() ? *v : "";
      before.since_unix = static_cast<int64_t>(std::time(nullptr));
    }
  }

  Status installed = Install(*manifest);
  if (!installed.ok()) {
    // Back to what served (outpostd kept serving it in any case).
    Status back = Install(before.manifest_text);
    if (!back.ok())
      OP_LOG_ERROR("ota models: {}: could not put the previous manifest back: {}", name_,
                   back.message());
    if (installed.code() != Code::kInvalidArgument)
      return Finish(ModelOutcome::kError, installed.message());
    return refuse(ModelOutcome::kFailedCheck, installed.message(), checkout);
  }
  auto serving = ServingVersion();
  res_.swap_ms = MsSince(t_dl);
  Status confirmed = !serving.ok() ? serving.status()
                     : *serving != info->version
                         ? InvalidArgument("outpostd serves version '" + *serving + "', not '" +
                                           info->version + "'")
                         : Status::Ok();
  if (confirmed.ok()) {
    const auto t_check = Clock::now();
    confirmed = GoldenOverV2(checkout);
    res_.verify_ms = MsSince(t_check);
  }
  if (!confirmed.ok()) {
    Status back = Install(before.manifest_text);
    return refuse(ModelOutcome::kFailedCheck,
                  confirmed.message() + (back.ok() ? "; the previous version serves again"
                                                   : "; putting the previous version back "
                                                     "failed: " +
                                                         back.message()),
                  checkout);
  }
  MetricsRegistry::Global()
      .GetGauge("outpost_ota_model_swap_seconds",
                "Model-only update: download complete to the new version serving",
                {{"model", name_}})
      .Set(res_.swap_ms / 1000.0);

  if (!before.manifest_text.empty()) rec.previous.insert(rec.previous.begin(), before);
  if (rec.previous.size() > static_cast<size_t>(std::max(0, cfg_.keep)))
    rec.previous.resize(static_cast<size_t>(std::max(0, cfg_.keep)));
  rec.current = {commit, info->version, checkout, *manifest,
                 static_cast<int64_t>(std::time(nullptr))};
  rec.rolled_back.clear();
  Status saved = Save();
  if (!saved.ok())
    return Finish(
        ModelOutcome::kError,
        "version " + info->version + " serves, but the state was not saved: " + saved.message());
  Prune();
  char ms[64];
  std::snprintf(ms, sizeof ms, "%.0f ms", res_.swap_ms);
  return Finish(ModelOutcome::kUpdated, "version " + info->version + " (" + commit +
                                            ") serves; swapped in " + ms + " after the download");
}

ModelStepResult Step::RollBack() {
  if (!ValidName(name_)) return Finish(ModelOutcome::kError, "not a model name: '" + name_ + "'");
  auto loaded = LoadState(cfg_.state_dir);
  if (!loaded.ok()) return Finish(ModelOutcome::kError, loaded.status().message());
  all_ = std::move(*loaded);
  auto it = all_.find(name_);
  if (it == all_.end() || it->second.previous.empty())
    return Finish(ModelOutcome::kError, "no previous version of '" + name_ + "' is recorded");
  ModelRecord& rec = it->second;
  const auto t0 = Clock::now();
  ModelVersion target = rec.previous.front();
  res_.commit = target.commit;
  if (!target.checkout.empty()) {  // its checkout must still be what its commit holds
    SysrootConfig src = cfg_.source;
    auto info = ReadModelCommit(src, target.commit);
    if (!info.ok()) return Finish(ModelOutcome::kError, info.status().message());
    Status files = VerifyCheckout(target.checkout, info->files);
    if (!files.ok())
      return Finish(ModelOutcome::kError, "the checkout " + target.checkout +
                                              " of the previous version: " + files.message());
  }
  OP_LOG_INFO("ota models: {}: rolling back from {} to {} ({})", name_, rec.current.version,
              target.version,
              target.commit.empty() ? "the manifest found installed" : target.commit);
  Status installed = Install(target.manifest_text);
  if (!installed.ok()) {
    Status back = Install(rec.current.manifest_text);
    return Finish(installed.code() == Code::kInvalidArgument ? ModelOutcome::kFailedCheck
                                                             : ModelOutcome::kError,
                  installed.message() +
                      (back.ok() ? "" : "; restoring the manifest failed: " + back.message()));
  }
  res_.swap_ms = MsSince(t0);
  auto serving = ServingVersion();
  if (!serving.ok() || *serving != target.version)
    OP_LOG_WARN("ota models: {}: after the rollback outpostd serves '{}', expected '{}'", name_,
                serving.ok() ? *serving : serving.status().message(), target.version);
  if (!target.checkout.empty()) {
    const auto t_check = Clock::now();
    Status ok = GoldenOverV2(target.checkout);
    res_.verify_ms = MsSince(t_check);
    if (!ok.ok()) return Finish(ModelOutcome::kFailedCheck, ok.message());
  }
  rec.rolled_back = rec.current.commit;
  rec.current = target;
  rec.current.since_unix = static_cast<int64_t>(std::time(nullptr));
  rec.previous.erase(rec.previous.begin());
  Status saved = Save();
  if (!saved.ok())
    return Finish(ModelOutcome::kError,
                  "rolled back, but the state was not saved: " + saved.message());
  Prune();
  return Finish(
      ModelOutcome::kRolledBack,
      "version " + target.version + " serves again (rolled back from " + rec.rolled_back + ")");
}

}  // namespace

std::string_view ModelOutcomeName(ModelOutcome o) {
  switch (o) {
    case ModelOutcome::kUpToDate:
      return "up-to-date";
    case ModelOutcome::kUpdated:
      return "updated";
    case ModelOutcome::kRolledBack:
      return "rolled-back";
    case ModelOutcome::kRefused:
      return "refused";
    case ModelOutcome::kFailedCheck:
      return "failed-check";
    case ModelOutcome::kError:
      return "error";
  }
  return "error";
}

ModelStepResult Step::Check() {
  SysrootConfig src;
  if (Status s = Begin(&src); !s.ok()) return Finish(ModelOutcome::kError, s.message());
  const ModelRecord rec = all_[name_];
  auto head = RemoteHead(src);  // the signed summary only; nothing else fetched
  if (!head.ok())
    return Finish(head.status().code() == Code::kInvalidArgument ? ModelOutcome::kRefused
                                                                 : ModelOutcome::kError,
                  "checking " + src.ref + ": " + head.status().message());
  res_.commit = *head;
  if (*head == rec.current.commit)
    return Finish(ModelOutcome::kUpToDate, "up to date at " + *head + "; nothing pulled");
  if (*head == rec.rolled_back)
    return Finish(ModelOutcome::kUpToDate,
                  "the remote head " + *head + " was rolled back; not pulled again");
  for (const auto& f : rec.refused)
    if (f.commit == *head)
      return Finish(ModelOutcome::kUpToDate, "the remote head " + *head + " was refused before (" +
                                                 f.reason + "); not pulled again");
  OP_LOG_INFO("ota models: {}: new head {} on {}", name_, *head, src.ref);
  res_.commit.clear();  // Update() sets it once the pull succeeded
  ModelStepResult r = Update();
  if (r.outcome == ModelOutcome::kRefused && r.commit.empty()) {
    // Refused at the pull (signature, untrusted key, checksum, downgrade): remembered against the
    // head, so that it is not pulled again while it stays the head.
    auto again = LoadState(cfg_.state_dir);
    if (again.ok()) {
      all_ = std::move(*again);
      Refuse(*head, r.message);
      Status s = Save();
      if (!s.ok()) OP_LOG_ERROR("ota models: {}: refusal not saved: {}", name_, s.message());
      r.record = all_[name_];
    }
    r.commit = *head;
  }
  return r;
}

ModelStepResult CheckModel(const ModelUpdateConfig& cfg, const std::string& name) {
  ModelStepResult r = Step(cfg, name).Check();
  CountOutcome("outpost_ota_model_updates_total", "Model-only updates by outcome", name, r.outcome);
  return r;
}

ModelStepResult UpdateModel(const ModelUpdateConfig& cfg, const std::string& name) {
  ModelStepResult r = Step(cfg, name).Update();
  CountOutcome("outpost_ota_model_updates_total", "Model-only updates by outcome", name, r.outcome);
  return r;
}

ModelStepResult RollBackModel(const ModelUpdateConfig& cfg, const std::string& name) {
  ModelStepResult r = Step(cfg, name).RollBack();
  CountOutcome("outpost_ota_model_rollbacks_total", "Model rollbacks by outcome", name, r.outcome);
  return r;
}

Expected<std::vector<ModelRecord>> ListModels(const std::string& state_dir) {
  OP_ASSIGN_OR_RETURN(auto all, LoadState(state_dir));
  std::vector<ModelRecord> out;
  for (auto& [n, r] : all) out.push_back(std::move(r));
  return out;
}

std::string ModelRecordJson(const ModelRecord& r) { return RecordJson(r, false).dump(); }

}  // namespace outpost::ota
