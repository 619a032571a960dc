// Node attributes, in our own representation (no protobuf past the loader).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "outpost/core/tensor.h"

namespace outpost {
struct Graph;  // defined by the engine; kernels see subgraphs only as opaque handles

namespace kernels {

struct Attribute {
  enum class Kind { kUndefined, kFloat, kInt, kString, kTensor, kGraph, kFloats, kInts, kStrings, kTensors, kGraphs };
  Kind kind = Kind::kUndefined;
  float f = 0;
  int64_t i = 0;
  std::string s;
  std::shared_ptr<const Tensor> t;
  std::shared_ptr<const Graph> g;
  std::vector<float> floats;
  std::vector<int64_t> ints;
  std::vector<std::string> strings;
  std::vector<std::shared_ptr<const Tensor>> tensors;
};

const char* AttributeKindName(Attribute::Kind k);

// Lookups take string_view and do not allocate (kernels read attributes on every run).
class Attributes {
 public:
  void Set(const std::string& name, Attribute a) { map_[name] = std::move(a); }
  bool Has(std::string_view name) const { return map_.find(name) != map_.end(); }
  const Attribute* Find(std::string_view name) const {
    auto it = map_.find(name);
    return it == map_.end() ? nullptr : &it->second;
  }
  int64_t Int(std::string_view name, int64_t def) const;
  float Float(std::string_view name, float def) const;
  std::string String(std::string_view name, const std::string& def) const;
  std::vector<int64_t> Ints(std::string_view name, std::vector<int64_t> def = {}) const;
  // The ints (or the single int) stored under `name`, without copying; empty when absent.
  std::span<const int64_t> IntsView(std::string_view name) const;
  std::vector<float> Floats(std::string_view name, std::vector<float> def = {}) const;
  std::vector<std::string> Strings(std::string_view name) const;
  const Tensor* TensorAttr(std::string_view name) const;
  const std::map<std::string, Attribute, std::less<>>& all() const { return map_; }

 private:
  std::map<std::string, Attribute, std::less<>> map_;
};

}  // namespace kernels
}  // namespace outpost
