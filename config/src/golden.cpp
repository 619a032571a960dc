// Golden tensor files: one file, or a directory of `<tensor name>.npy|.pb`.
#include "outpost/config/golden.h"

#include <algorithm>
#include <filesystem>

namespace outpost::config {
namespace {

namespace fs = std::filesystem;

std::string Names(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& n : v) s += (s.empty() ? "'" : ", '") + n + "'";
  return s;
}

}  // namespace

Expected<std::vector<GoldenFile>> ListGoldenFiles(const std::string& path) {
  std::error_code ec;
  const auto st = fs::status(path, ec);
  if (ec || !fs::exists(st)) return NotFound("golden path not found: " + path);
  if (fs::is_regular_file(st)) return std::vector<GoldenFile>{{"", path}};
  if (!fs::is_directory(st))
    return InvalidArgument("golden path " + path + " is neither a file nor a directory");
  std::vector<GoldenFile> out;
  for (const auto& e : fs::directory_iterator(path, ec)) {
    const fs::path p = e.path();
    const std::string ext = p.extension().string();
    if (!e.is_regular_file(ec) || (ext != ".npy" && ext != ".pb") || p.stem().empty())
      return InvalidArgument("golden directory " + path + " holds '" + p.filename().string() +
                             "': only <tensor name>.npy or <tensor name>.pb files belong there");
    out.push_back({p.stem().string(), p.string()});
  }
  if (ec) return IoError("reading golden directory " + path + ": " + ec.message());
  if (out.empty())
    return InvalidArgument("golden directory " + path +
                           " is empty: expected <tensor name>.npy or .pb files");
  std::sort(out.begin(), out.end(),
            [](const GoldenFile& a, const GoldenFile& b) { return a.tensor < b.tensor; });
  for (size_t i = 1; i < out.size(); ++i)
    if (out[i].tensor == out[i - 1].tensor)
      return InvalidArgument("golden directory " + path + " holds tensor '" + out[i].tensor +
                             "' twice (.npy and .pb)");
  return out;
}

Expected<std::vector<GoldenFile>> MatchGoldenInputs(const std::string& path,
                                                    const std::vector<std::string>& inputs) {
  OP_ASSIGN_OR_RETURN(std::vector<GoldenFile> files, ListGoldenFiles(path));
  if (files.size() == 1 && files[0].tensor.empty()) {
    if (inputs.size() != 1)
      return InvalidArgument("golden input " + path +
                             " is one file, but the model has " + std::to_string(inputs.size()) +
                             " inputs (" + Names(inputs) +
                             "): name a directory with one <input name>.npy|.pb each");
    files[0].tensor = inputs[0];
    return files;
  }
  std::vector<GoldenFile> out;
  for (const auto& in : inputs) {
    auto it = std::find_if(files.begin(), files.end(),
                           [&](const GoldenFile& f) { return f.tensor == in; });
    if (it == files.end())
      return InvalidArgument("golden input directory " + path +
                             " has no file for input '" + in + "' (" + in + ".npy or " + in +
                             ".pb)");
    out.push_back(*it);
  }
  for (const auto& f : files)
    if (std::find(inputs.begin(), inputs.end(), f.tensor) == inputs.end())
      return InvalidArgument("golden input " + f.path +
                             " names no input of the model (its inputs: " + Names(inputs) + ")");
  return out;
}

Expected<std::vector<GoldenFile>> MatchGoldenOutputs(const std::string& path,
                                                     const std::vector<std::string>& outputs) {
  OP_ASSIGN_OR_RETURN(std::vector<GoldenFile> files, ListGoldenFiles(path));
  if (outputs.empty()) return InvalidArgument("the model has no outputs");
  if (files.size() == 1 && files[0].tensor.empty()) {
    files[0].tensor = outputs[0];
    return files;
  }
  for (const auto& f : files)
    if (std::find(outputs.begin(), outputs.end(), f.tensor) == outputs.end())
      return InvalidArgument("golden output " + f.path +
                             " names no output of the model (its outputs: " + Names(outputs) +
                             ")");
  return files;
}

}  // namespace outpost::config
