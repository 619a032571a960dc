#include "args.h"

#include <cstdio>
#include <cstdlib>

namespace outpost::cli {

bool Args::Parse(int argc, char** argv, int first, const std::vector<FlagSpec>& specs, int min_pos, int max_pos) {
  for (int i = first; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      help_ = true;
      return true;
    }
    if (a.size() > 2 && a.rfind("--", 0) == 0) {
      std::string name = a, value;
      bool inline_value = false;
      if (auto eq = a.find('='); eq != std::string::npos) {
        name = a.substr(0, eq);
        value = a.substr(eq + 1);
        inline_value = true;
      }
      const FlagSpec* spec = nullptr;
      for (auto& s : specs)
        if (s.name == name) spec = &s;
      if (!spec) {
        error_ = "unknown option '" + name + "'";
        return false;
      }
      if (spec->takes_value && !inline_value) {
        if (i + 1 >= argc) {
          error_ = "option '" + name + "' needs a value";
          return false;
        }
        value = argv[++i];
      } else if (!spec->takes_value && inline_value) {
        error_ = "option '" + name + "' takes no value";
        return false;
      }
      auto& vec = values_[name];
      if (!vec.empty() && !spec->repeated) {
        error_ = "option '" + name + "' given more than once";
        return false;
      }
      vec.push_back(value);
      continue;
    }
    pos_.push_back(a);
  }
  if (static_cast<int>(pos_.size()) < min_pos) {
    error_ = "missing argument";
    return false;
  }
  if (static_cast<int>(pos_.size()) > max_pos) {
    error_ = "unexpected argument '" + pos_[max_pos] + "'";
    return false;
  }
  return true;
}

std::string Args::Get(const std::string& f, const std::string& def) const {
  auto it = values_.find(f);
  return it == values_.end() || it->second.empty() ? def : it->second.back();
}

const std::vector<std::string>& Args::All(const std::string& f) const {
  static const std::vector<std::string> kEmpty;
  auto it = values_.find(f);
  return it == values_.end() ? kEmpty : it->second;
}

bool Args::GetInt(const std::string& f, long long def, long long lo, long long hi, long long* out) {
  if (!Has(f)) {
    *out = def;
    return true;
  }
  std::string v = Get(f);
  char* end = nullptr;
  long long x = std::strtoll(v.c_str(), &end, 10);
  if (v.empty() || *end != '\0' || x < lo || x > hi) {
    error_ = "option '" + f + "' wants an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "], got '" + v + "'";
    return false;
  }
  *out = x;
  return true;
}

int Fail(const Status& s, std::string_view command) {
  std::fprintf(stderr, "outpost%s%.*s: %s\n", command.empty() ? "" : " ",
               static_cast<int>(command.size()), command.data(), s.ToString().c_str());
  return 1;
}

int Usage(const char* usage, const std::string& error) {
  if (!error.empty()) std::fprintf(stderr, "outpost: %s\n\n", error.c_str());
  std::fputs(usage, stderr);
  return kUsageError;
}

}  // namespace outpost::cli
