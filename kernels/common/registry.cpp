#include <map>
#include <mutex>
#include <utility>

#include "outpost/kernels/kernel.h"

namespace outpost::kernels {
namespace {
using Key = std::pair<std::string, std::string>;  // (domain, op_type)
std::multimap<Key, OpDef>& Table() {
  static auto* t = new std::multimap<Key, OpDef>();
  return *t;
}
std::string NormDomain(const std::string& d) { return d == "ai.onnx" ? "" : d; }
}  // namespace

OpRegistrar::OpRegistrar(const OpDef& def) {
  Table().emplace(Key{NormDomain(def.domain), def.op_type}, def);
}

const OpDef* FindOp(const std::string& domain, const std::string& op_type, int opset) {
  auto [b, e] = Table().equal_range(Key{NormDomain(domain), op_type});
  for (auto it = b; it != e; ++it)
    if (opset >= it->second.min_opset && opset <= it->second.max_opset) return &it->second;
  return nullptr;
}

bool KnownOp(const std::string& domain, const std::string& op_type) {
  return Table().count(Key{NormDomain(domain), op_type}) != 0;
}

std::vector<const OpDef*> AllOps() {
  std::vector<const OpDef*> v;
  for (auto& [k, d] : Table()) v.push_back(&d);
  return v;
}

Status KernelContext::Fail(const std::string& what) const {
  return InvalidModel(node_.op_type + " node '" + node_.name + "': " + what);
}
Status KernelContext::BadInput(const std::string& what) const {
  return InvalidArgument(node_.op_type + " node '" + node_.name + "': " + what);
}
Status KernelContext::NotSupported(const std::string& what) const {
  return Unsupported(node_.op_type + " node '" + node_.name + "' (opset " +
                     std::to_string(node_.opset) + "): " + what);
}

}  // namespace outpost::kernels
