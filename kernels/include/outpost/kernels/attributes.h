// Node attributes, in our own representation (no protobuf past the loader).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
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

class Attributes {
 public:
  void Set(const std::string& name, Attribute a) { map_[name] = std::move(a); }
  bool Has(const std::string& name) const { return map_.count(name) != 0; }
  const Attribute* Find(const std::string& name) const {
    auto it = map_.find(name);
    return it == map_.end() ? nullptr : &it->second;
  }
  int64_t Int(const std::string& name, int64_t def) const;
  float Float(const std::string& name, float def) const;
  std::string String(const std::string& name, const std::string& def) const;
  std::vector<int64_t> Ints(const std::string& name, std::vector<int64_t> def = {}) const;
  std::vector<float> Floats(const std::string& name, std::vector<float> def = {}) const;
  std::vector<std::string> Strings(const std::string& name) const;
  const Tensor* TensorAttr(const std::string& name) const;
  const std::map<std::string, Attribute>& all() const { return map_; }

 private:
  std::map<std::string, Attribute> map_;
};

}  // namespace kernels
}  // namespace outpost
