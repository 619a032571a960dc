#include "common.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <sstream>

namespace outpost::cli {

std::vector<FlagSpec> BackendFlags() {
  return {{"--backend"},
          {"--threads"},
          {"--opencl-platform"},
          {"--opencl-device"},
          {"--opencl-platform-name"},
          {"--opencl-device-name"}};
}

bool BackendOptionsFromArgs(Args& a, engine::SessionOptions* o, std::string* error) {
  o->backend = a.Get("--backend", "cpu");
  if (o->backend != "cpu" && o->backend != "opencl") {
    *error = "--backend must be cpu or opencl, got '" + o->backend + "'";
    return false;
  }
  long long threads, plat, dev;
  if (!a.GetInt("--threads", 0, 0, 1024, &threads) ||
      !a.GetInt("--opencl-platform", -1, -1, 64, &plat) ||
      !a.GetInt("--opencl-device", -1, -1, 64, &dev)) {
    *error = a.error();
    return false;
  }
  o->backend_options.threads = static_cast<int>(threads);
  o->backend_options.opencl_platform = static_cast<int>(plat);
  o->backend_options.opencl_device = static_cast<int>(dev);
  o->backend_options.opencl_platform_name = a.Get("--opencl-platform-name", "");
  o->backend_options.opencl_device_name = a.Get("--opencl-device-name", "");
  return true;
}

Expected<std::vector<std::pair<std::string, Tensor>>> ReadInputs(
    const std::vector<std::string>& specs) {
  std::vector<std::pair<std::string, Tensor>> out;
  for (auto& s : specs) {
    auto eq = s.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == s.size())
      return InvalidArgument("--input wants NAME=FILE, got '" + s + "'");
    OP_ASSIGN_OR_RETURN(Tensor t, engine::ReadTensorFile(s.substr(eq + 1)));
    out.emplace_back(s.substr(0, eq), std::move(t));
  }
  return out;
}

Expected<std::vector<std::pair<std::string, Tensor>>> RandomInputs(const engine::Session& s,
                                                                   int64_t dim_default) {
  std::vector<std::pair<std::string, Tensor>> out;
  std::mt19937 rng(42);
  for (auto& in : s.inputs()) {
    std::vector<int64_t> dims;
    for (int64_t d : in.dims) dims.push_back(d < 0 ? dim_default : d);
    OP_ASSIGN_OR_RETURN(Shape shape, Shape::From(dims));
    OP_ASSIGN_OR_RETURN(Tensor t, Tensor::Allocate(in.dtype, shape));
    std::uniform_real_distribution<float> u(-1.f, 1.f);
    for (int64_t i = 0; i < t.numel(); ++i) {
      switch (in.dtype) {
        case DataType::kFloat:
          t.data<float>()[i] = u(rng);
          break;
        case DataType::kDouble:
          t.data<double>()[i] = u(rng);
          break;
        case DataType::kFloat16:
          t.data<Float16>()[i] = Float16(u(rng));
          break;
        case DataType::kInt64:
          t.data<int64_t>()[i] = static_cast<int64_t>(rng() % 10);
          break;
        case DataType::kInt32:
          t.data<int32_t>()[i] = static_cast<int32_t>(rng() % 10);
          break;
        case DataType::kUInt8:
          t.data<uint8_t>()[i] = static_cast<uint8_t>(rng());
          break;
        case DataType::kInt8:
          t.data<int8_t>()[i] = static_cast<int8_t>(rng());
          break;
        case DataType::kBool:
          t.data<bool>()[i] = rng() & 1;
          break;
        default:
          break;  // zeros
      }
    }
    out.emplace_back(in.name, std::move(t));
  }
  return out;
}

std::string Summarize(const std::string& name, const Tensor& t) {
  std::ostringstream os;
  os << name << ": " << t.Describe();
  if (t.dtype() == DataType::kString || !t.has_data()) return os.str();
  int64_t n = t.numel();
  if (n > 0) {
    double mn = INFINITY, mx = -INFINITY, sum = 0;
    for (int64_t i = 0; i < n; ++i) {
      double v = ReadDouble(t, i);
      mn = std::min(mn, v);
      mx = std::max(mx, v);
      sum += v;
    }
    os << " min=" << mn << " max=" << mx << " mean=" << sum / static_cast<double>(n);
  }
  os << " values=[";
  for (int64_t i = 0; i < std::min<int64_t>(n, 8); ++i) os << (i ? ", " : "") << ReadDouble(t, i);
  os << (n > 8 ? ", ...]" : "]");
  return os.str();
}

std::string SanitizeFileName(const std::string& name) {
  std::string s = name;
  for (char& c : s)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-')) c = '_';
  if (s.empty() || s == "." || s == "..") s = "_" + s;
  return s;
}

}  // namespace outpost::cli
