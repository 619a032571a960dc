#include "outpost/kernels/attributes.h"

namespace outpost::kernels {

const char* AttributeKindName(Attribute::Kind k) {
  switch (k) {
    case Attribute::Kind::kUndefined: return "undefined";
    case Attribute::Kind::kFloat: return "float";
    case Attribute::Kind::kInt: return "int";
    case Attribute::Kind::kString: return "string";
    case Attribute::Kind::kTensor: return "tensor";
    case Attribute::Kind::kGraph: return "graph";
    case Attribute::Kind::kFloats: return "floats";
    case Attribute::Kind::kInts: return "ints";
    case Attribute::Kind::kStrings: return "strings";
    case Attribute::Kind::kTensors: return "tensors";
    case Attribute::Kind::kGraphs: return "graphs";
  }
  return "unknown";
}

int64_t Attributes::Int(std::string_view name, int64_t def) const {
  auto* a = Find(name);
  return a && a->kind == Attribute::Kind::kInt ? a->i : def;
}

float Attributes::Float(std::string_view name, float def) const {
  auto* a = Find(name);
  if (!a) return def;
  if (a->kind == Attribute::Kind::kFloat) return a->f;
  if (a->kind == Attribute::Kind::kInt) return static_cast<float>(a->i);
  return def;
}

std::string Attributes::String(std::string_view name, const std::string& def) const {
  auto* a = Find(name);
  return a && a->kind == Attribute::Kind::kString ? a->s : def;
}

std::vector<int64_t> Attributes::Ints(std::string_view name, std::vector<int64_t> def) const {
  auto* a = Find(name);
  if (!a) return def;
  if (a->kind == Attribute::Kind::kInts) return a->ints;
  if (a->kind == Attribute::Kind::kInt) return {a->i};
  return def;
}

std::span<const int64_t> Attributes::IntsView(std::string_view name) const {
  auto* a = Find(name);
  if (!a) return {};
  if (a->kind == Attribute::Kind::kInts) return a->ints;
  if (a->kind == Attribute::Kind::kInt) return {&a->i, 1};
  return {};
}

std::vector<float> Attributes::Floats(std::string_view name, std::vector<float> def) const {
  auto* a = Find(name);
  if (!a) return def;
  if (a->kind == Attribute::Kind::kFloats) return a->floats;
  if (a->kind == Attribute::Kind::kFloat) return {a->f};
  return def;
}

std::vector<std::string> Attributes::Strings(std::string_view name) const {
  auto* a = Find(name);
  if (!a) return {};
  if (a->kind == Attribute::Kind::kStrings) return a->strings;
  if (a->kind == Attribute::Kind::kString) return {a->s};
  return {};
}

const Tensor* Attributes::TensorAttr(std::string_view name) const {
  auto* a = Find(name);
  return a && a->kind == Attribute::Kind::kTensor ? a->t.get() : nullptr;
}

}  // namespace outpost::kernels
