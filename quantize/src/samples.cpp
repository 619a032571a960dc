#include "samples.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <system_error>

namespace outpost::quantize {
namespace fs = std::filesystem;

namespace {

bool IsTensorFile(const fs::path& p) {
  const std::string ext = p.extension().string();
  return ext == ".npy" || ext == ".pb";
}

Status CheckTensor(const std::string& file, const engine::ValueInfo& in, const Tensor& t) {
  const std::string want = in.ToString();
  if (t.dtype() != in.dtype || t.rank() != static_cast<int>(in.dims.size()))
    return InvalidArgument(file + ": " + t.Describe() + " does not match model input '" + in.name +
                           "' " + want);
  for (int i = 0; i < t.rank(); ++i)
    if (in.dims[i] >= 0 && in.dims[i] != t.dim(i))
      return InvalidArgument(file + ": " + t.Describe() + " does not match model input '" +
                             in.name + "' " + want + " (dimension " + std::to_string(i) + ")");
  return Status::Ok();
}

Expected<std::vector<fs::path>> SortedEntries(const std::string& dir, bool dirs) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return NotFound("sample folder '" + dir + "' does not exist");
  std::vector<fs::path> out;
  for (auto it = fs::directory_iterator(dir, ec); !ec && it != fs::directory_iterator();
       it.increment(ec)) {
    if (dirs ? it->is_directory() : (it->is_regular_file() && IsTensorFile(it->path())))
      out.push_back(it->path());
  }
  if (ec) return IoError("cannot list '" + dir + "': " + ec.message());
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

Expected<std::vector<Sample>> LoadSamples(const std::string& dir,
                                          const std::vector<engine::ValueInfo>& inputs,
                                          const std::string& what) {
  if (inputs.empty()) return Unsupported("the model has no inputs to calibrate");
  std::vector<Sample> samples;
  if (inputs.size() == 1) {
    OP_ASSIGN_OR_RETURN(std::vector<fs::path> files, SortedEntries(dir, false));
    for (const fs::path& f : files) {
      OP_ASSIGN_OR_RETURN(Tensor t, engine::ReadTensorFile(f.string()));
      OP_RETURN_IF_ERROR(CheckTensor(f.string(), inputs[0], t));
      samples.push_back({{inputs[0].name, std::move(t)}});
    }
    if (samples.empty())
      return InvalidArgument(what + " set '" + dir + "' is empty: no .npy or .pb files");
    return samples;
  }
  OP_ASSIGN_OR_RETURN(std::vector<fs::path> subdirs, SortedEntries(dir, true));
  for (const fs::path& sub : subdirs) {
    Sample s;
    for (const engine::ValueInfo& in : inputs) {
      const fs::path f = sub / (in.name + ".npy");
      std::error_code ec;
      if (!fs::is_regular_file(f, ec))
        return InvalidArgument(what + " sample '" + sub.string() + "' lacks '" +
                               f.filename().string() + "' for model input '" + in.name + "'");
      OP_ASSIGN_OR_RETURN(Tensor t, engine::ReadTensorFile(f.string()));
      OP_RETURN_IF_ERROR(CheckTensor(f.string(), in, t));
      s.emplace_back(in.name, std::move(t));
    }
    samples.push_back(std::move(s));
  }
  if (samples.empty())
    return InvalidArgument(what + " set '" + dir + "' is empty: the model has " +
                           std::to_string(inputs.size()) +
                           " inputs, so each sample is a subfolder holding <input name>.npy");
  return samples;
}

Expected<std::vector<int64_t>> LoadLabels(const std::string& path, size_t count) {
  std::ifstream f(path);
  if (!f) return NotFound("cannot read labels file '" + path + "'");
  std::vector<int64_t> labels;
  std::string line;
  int lineno = 0;
  while (std::getline(f, line)) {
    ++lineno;
    const auto b = line.find_first_not_of(" \t\r");
    if (b == std::string::npos) continue;
    const auto e = line.find_last_not_of(" \t\r");
    const std::string v = line.substr(b, e - b + 1);
    size_t used = 0;
    long long x = 0;
    try {
      x = std::stoll(v, &used);
    } catch (...) {
      used = 0;
    }
    if (used != v.size() || x < 0)
      return InvalidArgument(path + ":" + std::to_string(lineno) + ": '" + v +
                             "' is not a class index (a non-negative integer)");
    labels.push_back(x);
  }
  if (labels.size() != count)
    return InvalidArgument(path + " has " + std::to_string(labels.size()) + " labels for " +
                           std::to_string(count) + " eval samples");
  return labels;
}

}  // namespace outpost::quantize
