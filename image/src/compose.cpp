#include "compose.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "outpost/config/device_config.h"
#include "outpost/config/golden.h"

namespace outpost::image::internal {

namespace fs = std::filesystem;

namespace {

Expected<std::string> ReadText(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return IoError("cannot read '" + path + "'");
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

Status WriteText(const fs::path& path, const std::string& text) {
  std::error_code ec;
  fs::create_directories(path.parent_path(), ec);
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  out.close();
  if (!out) return IoError("cannot write '" + path.string() + "'");
  return Status::Ok();
}

Status CopyFile(const fs::path& from, const fs::path& to, bool executable) {
  std::error_code ec;
  fs::create_directories(to.parent_path(), ec);
  if (ec) return IoError("cannot create '" + to.parent_path().string() + "': " + ec.message());
  fs::copy_file(from, to, fs::copy_options::overwrite_existing, ec);
  if (ec) return IoError("cannot copy '" + from.string() + "': " + ec.message());
  fs::permissions(to, executable ? fs::perms(0755) : fs::perms(0644), ec);
  return Status::Ok();
}

Status RequireFile(const std::string& what, const std::string& path) {
  if (path.empty()) return InvalidArgument(what + " not given");
  std::error_code ec;
  if (!fs::exists(path, ec)) return NotFound(what + " not found: '" + path + "'");
  if (!fs::is_regular_file(path, ec)) return InvalidArgument(what + " is not a file: '" + path + "'");
  return Status::Ok();
}

std::string Extension(const std::string& path) {
  std::string ext = fs::path(path).extension().string();
  return ext.empty() ? ".bin" : ext;
}

// A golden path into the bundle as `<as>.<ext>` (one file) or `<as>/<tensor>.<ext>` (a directory
// of one file per tensor, config/golden.h). Returns the bundle-relative path the manifest names;
// adds every file copied to *files.
Expected<std::string> CopyGolden(const std::string& from, const fs::path& bundle,
                                  const std::string& as, std::vector<std::string>* files) {
  OP_ASSIGN_OR_RETURN(std::vector<config::GoldenFile> golden, config::ListGoldenFiles(from));
  if (golden.size() == 1 && golden[0].tensor.empty()) {
    const std::string rel = as + Extension(from);
    OP_RETURN_IF_ERROR(CopyFile(from, bundle / rel, false));
    files->push_back(rel);
    return rel;
  }
  for (const auto& g : golden) {
    const std::string rel = as + "/" + fs::path(g.path).filename().string();
    OP_RETURN_IF_ERROR(CopyFile(g.path, bundle / rel, false));
    files->push_back(rel);
  }
  return as;
}

// systemd presets: `enable UNIT` lines of our *.preset files, applied at build time the way
// `systemctl preset` would (symlinks in /etc/systemd/system/<target>.wants/).
Status ApplyPresets(const std::vector<fs::path>& presets, const std::map<std::string, fs::path>& units,
                    const fs::path& overlay) {
  for (const auto& p : presets) {
    OP_ASSIGN_OR_RETURN(std::string text, ReadText(p.string()));
    std::istringstream in(text);
    std::string line;
    int lineno = 0;
    while (std::getline(in, line)) {
      ++lineno;
      std::istringstream ls(line);
      std::string verb, unit;
      ls >> verb >> unit;
      if (verb.empty() || verb[0] == '#' || verb[0] == ';') continue;
      if (verb != "enable" && verb != "disable")
        return InvalidArgument(p.string() + ":" + std::to_string(lineno) +
                               ": expected 'enable UNIT' or 'disable UNIT', got '" + line + "'");
      if (verb == "disable") continue;
      auto it = units.find(unit);
      if (it == units.end()) continue;  // not ours: systemd applies it on first boot
      OP_ASSIGN_OR_RETURN(std::string unit_text, ReadText(it->second.string()));
      std::istringstream us(unit_text);
      std::string section, l;
      while (std::getline(us, l)) {
        if (!l.empty() && l[0] == '[') section = l;
        if (section != "[Install]") continue;
        for (const char* key : {"WantedBy=", "RequiredBy="}) {
          if (l.rfind(key, 0) != 0) continue;
          std::istringstream targets(l.substr(std::string(key).size()));
          std::string target;
          while (targets >> target) {
            fs::path dir = overlay / "usr/etc/systemd/system" /
                           (target + (key[0] == 'W' ? ".wants" : ".requires"));
            std::error_code ec;
            fs::create_directories(dir, ec);
            fs::remove(dir / unit, ec);
            fs::create_symlink("/usr/lib/systemd/system/" + unit, dir / unit, ec);
            if (ec) return IoError("cannot enable " + unit + ": " + ec.message());
          }
        }
      }
    }
  }
  return Status::Ok();
}

// Installs the files of runtime/outpostd/systemd where systemd looks for vendor files.
Status StageSystemd(const std::string& dir, const fs::path& overlay) {
  std::error_code ec;
  if (dir.empty()) return InvalidArgument("systemd directory not given");
  if (!fs::is_directory(dir, ec)) return NotFound("systemd directory not found: '" + dir + "'");
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(dir, ec))
    if (e.is_regular_file()) files.push_back(e.path());
  std::sort(files.begin(), files.end());
  std::map<std::string, fs::path> units;
  std::vector<fs::path> presets;
  for (const auto& f : files) {
    std::string name = f.filename().string();
    auto ends = [&](const std::string& s) {
      return name.size() > s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0;
    };
    auto stem = [&](const std::string& s) { return name.substr(0, name.size() - s.size()); };
    fs::path to;
    if (ends(".service") || ends(".socket") || ends(".timer") || ends(".target") ||
        ends(".path")) {
      to = overlay / "usr/lib/systemd/system" / name;
      units[name] = f;
    } else if (ends(".preset")) {
      to = overlay / "usr/lib/systemd/system-preset" / ("80-" + name);
      presets.push_back(f);
    } else if (ends(".sysusers.conf")) {
      to = overlay / "usr/lib/sysusers.d" / (stem(".sysusers.conf") + ".conf");
    } else if (ends(".tmpfiles.conf")) {
      to = overlay / "usr/lib/tmpfiles.d" / (stem(".tmpfiles.conf") + ".conf");
    } else {
      return InvalidArgument("systemd directory '" + dir + "': unknown file '" + name +
                             "' (expected *.service, *.socket, *.timer, *.target, *.path, "
                             "*.preset, *.sysusers.conf, *.tmpfiles.conf)");
    }
    OP_RETURN_IF_ERROR(CopyFile(f, to, false));
  }
  if (!units.count("outpostd.service"))
    return NotFound("systemd directory '" + dir + "' has no outpostd.service");
  return ApplyPresets(presets, units, overlay);
}

Status HasKernel(const std::string& base) {
  std::error_code ec;
  fs::path modules = fs::path(base) / "usr/lib/modules";
  if (fs::is_directory(modules, ec))
    for (const auto& e : fs::directory_iterator(modules, ec))
      if (fs::is_regular_file(e.path() / "vmlinuz", ec)) return Status::Ok();
  return InvalidArgument("base rootfs '" + base +
                         "' has no kernel: expected usr/lib/modules/<version>/vmlinuz "
                         "(OSTree deploys the kernel from there)");
}

Expected<StagedModel> StageModel(const std::string& manifest_path, const BuildOptions& opts,
                                 const fs::path& overlay) {
  config::DeviceConfig cfg = config::DefaultDeviceConfig();
  cfg.models.model_dir = opts.model_dir;
  OP_ASSIGN_OR_RETURN(config::ModelManifest mf, config::LoadManifest(manifest_path, cfg));
  if (mf.golden_input.empty())
    return InvalidArgument(manifest_path + ": model '" + mf.name +
                           "' has no outpost.io/golden-input and golden-output: a model bundle "
                           "needs them (the update health gate runs them)");
  fs::path dir = overlay / kOsModelsDir / mf.name;
  OP_RETURN_IF_ERROR(CopyFile(mf.model_path, dir / "model.onnx", false));
  std::vector<std::string> files = {"manifest.yaml", "model.onnx"};
  OP_ASSIGN_OR_RETURN(std::string gin, CopyGolden(mf.golden_input, dir, "golden/input", &files));
  OP_ASSIGN_OR_RETURN(std::string gout,
                      CopyGolden(mf.golden_output, dir, "golden/output", &files));
  OP_ASSIGN_OR_RETURN(std::string text, ReadText(manifest_path));
  // The bundle's own manifest: paths relative to the bundle directory (used by a model-only
  // update, which loads the bundle where it is checked out).
  OP_ASSIGN_OR_RETURN(std::string bundle_manifest,
                      config::RewriteManifestPaths(text, manifest_path, "model.onnx", gin, gout));
  OP_RETURN_IF_ERROR(WriteText(dir / "manifest.yaml", bundle_manifest));
  config::DeviceConfig check_cfg = config::DefaultDeviceConfig();
  check_cfg.models.model_dir = dir.string();
  auto check = config::LoadManifest((dir / "manifest.yaml").string(), check_cfg);
  if (!check.ok())
    return Internal("rewritten manifest of '" + mf.name + "' does not load: " +
                    check.status().ToString());
  if (check->model_path != (dir / "model.onnx").string() ||
      check->golden_input != (dir / gin).string() || check->golden_output != (dir / gout).string())
    return Internal("rewritten manifest of '" + mf.name + "' resolves to other files");
  // The OS's copy, read by outpostd from /etc/outpost/models.d: absolute paths into /usr.
  std::string abs = "/" + std::string(kOsModelsDir) + "/" + mf.name + "/";
  OP_ASSIGN_OR_RETURN(std::string os_manifest,
                      config::RewriteManifestPaths(text, manifest_path, abs + "model.onnx", abs + gin, abs + gout));
  OP_RETURN_IF_ERROR(WriteText(overlay / kOsManifestsDir / (mf.name + ".yaml"), os_manifest));

  StagedModel m;
  m.name = mf.name;
  m.version = mf.version;
  m.dir = dir.string();
  for (const std::string& f : files) {
    OP_ASSIGN_OR_RETURN(Digest d, Sha256File((dir / f).string()));
    m.files.push_back({f, d});
    if (f == "model.onnx") m.model = d;
  }
  std::sort(m.files.begin(), m.files.end(),
            [](const BundleFile& a, const BundleFile& b) { return a.path < b.path; });
  return m;
}

}  // namespace


Expected<StagedOs> Stage(const BuildOptions& opts, const std::string& stage_dir) {
  std::error_code ec;
  if (opts.base_rootfs.empty()) return InvalidArgument("base rootfs not given");
  if (!fs::exists(opts.base_rootfs, ec))
    return NotFound("base rootfs not found: '" + opts.base_rootfs + "'");
  if (!fs::is_directory(opts.base_rootfs, ec))
    return InvalidArgument("base rootfs is not a directory: '" + opts.base_rootfs + "'");
  OP_RETURN_IF_ERROR(HasKernel(opts.base_rootfs));
  OP_RETURN_IF_ERROR(RequireFile("outpostd binary", opts.outpostd));
  OP_RETURN_IF_ERROR(RequireFile("device config", opts.device_config));
  OP_ASSIGN_OR_RETURN(config::DeviceConfig cfg, config::LoadDeviceConfig(opts.device_config));
  if (!opts.manifests.empty() && cfg.models.manifest_dir != kDeviceManifestDir)
    return InvalidArgument(opts.device_config + ": models.manifest_dir is '" +
                           cfg.models.manifest_dir + "', but the image installs its model "
                           "manifests in " + kDeviceManifestDir + ": outpostd would not see them");

  StagedOs os;
  fs::path overlay = fs::path(stage_dir) / "os";
  os.overlay = overlay.string();
  OP_RETURN_IF_ERROR(CopyFile(opts.outpostd, overlay / "usr/bin/outpostd", true));
  OP_RETURN_IF_ERROR(CopyFile(opts.device_config, overlay / kOsDeviceConfig, false));
  OP_ASSIGN_OR_RETURN(os.outpostd, Sha256File(opts.outpostd));
  OP_ASSIGN_OR_RETURN(os.device_config, Sha256File(opts.device_config));
  OP_RETURN_IF_ERROR(StageSystemd(opts.systemd_dir, overlay));
  std::set<std::string> names;
  for (const auto& m : opts.manifests) {
    OP_ASSIGN_OR_RETURN(StagedModel sm, StageModel(m, opts, overlay));
    if (!names.insert(sm.name).second)
      return InvalidArgument(m + ": model name '" + sm.name + "' is given twice");
    os.models.push_back(std::move(sm));
  }
  std::sort(os.models.begin(), os.models.end(),
            [](const StagedModel& a, const StagedModel& b) { return a.name < b.name; });
  return os;
}

}  // namespace outpost::image::internal
