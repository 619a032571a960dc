// Conv -> Relu / Clip fusion (see fuse.h and outpost/kernels/fusion.h).
#include "fuse.h"

#include <cassert>
#include <cfloat>
#include <functional>
#include <queue>
#include <limits>

#include "outpost/kernels/fusion.h"

namespace outpost {
namespace {

using kernels::Attribute;

// The bound of Clip input `i` (opset >= 11), when it is absent or a float32 scalar constant:
// an initializer, or the output of a Constant node (exporters emit both).
bool ClipBound(const Graph& g, const Node& clip, size_t i, float* out) {
  if (i >= clip.inputs.size() || clip.inputs[i] < 0) return true;
  const Value& v = g.values[clip.inputs[i]];
  const Tensor* t = v.constant.get();
  if (!t && v.producer >= 0) {
    const Node& p = g.nodes[v.producer];
    if (p.info.op_type == "Constant" && p.info.domain.empty()) t = p.info.attrs.TensorAttr("value");
  }
  if (!t || !t->has_data() || t->dtype() != DataType::kFloat || t->numel() != 1) return false;
  *out = t->data<float>()[0];
  return true;
}

}  // namespace

bool ActivationClamp(const Graph& g, const Node& n, float* lo, float* hi, std::string* name) {
  if (!n.info.domain.empty() || n.outputs.size() != 1) return false;
  *lo = -std::numeric_limits<float>::infinity();
  *hi = std::numeric_limits<float>::infinity();
  *name = n.info.op_type;
  if (n.info.op_type == "Relu") {
    *lo = 0.f;
    return true;
  }
  if (n.info.op_type != "Clip") return false;
  if (n.info.opset < 11) {
    *lo = n.info.attrs.Float("min", -FLT_MAX);
    *hi = n.info.attrs.Float("max", FLT_MAX);
    return true;
  }
  return ClipBound(g, n, 1, lo) && ClipBound(g, n, 2, hi);
}

Attribute FloatAttr(float f) {
  Attribute a;
  a.kind = Attribute::Kind::kFloat;
  a.f = f;
  return a;
}

void SortAndRebuildUses(Graph* g) {
  for (auto& v : g->values) {
    v.producer = -1;
    v.consumers.clear();
  }
  const int n = static_cast<int>(g->nodes.size());
  for (int i = 0; i < n; ++i)
    for (int o : g->nodes[i].outputs)
      if (o >= 0) g->values[o].producer = i;
  // Kahn's algorithm, lowest index first: an order that was already topological is kept.
  std::vector<int> pending(n, 0);
  std::vector<std::vector<int>> users(n);
  for (int i = 0; i < n; ++i)
    for (int v : g->nodes[i].inputs)
      if (v >= 0 && g->values[v].producer >= 0) {
        ++pending[i];
        users[g->values[v].producer].push_back(i);
      }
  std::priority_queue<int, std::vector<int>, std::greater<int>> ready;
  for (int i = 0; i < n; ++i)
    if (!pending[i]) ready.push(i);
  std::vector<Node> order;
  order.reserve(n);
  while (!ready.empty()) {
    const int i = ready.top();
    ready.pop();
    order.push_back(std::move(g->nodes[i]));
    for (int u : users[i])
      if (--pending[u] == 0) ready.push(u);
  }
  assert(static_cast<int>(order.size()) == n && "a rewrite made a cycle");
  g->nodes = std::move(order);
  for (auto& v : g->values) {
    v.producer = -1;
    v.consumers.clear();
  }
  for (int i = 0; i < n; ++i) {
    for (int o : g->nodes[i].outputs)
      if (o >= 0) g->values[o].producer = i;
    for (int v : g->nodes[i].inputs)
      if (v >= 0) g->values[v].consumers.push_back(i);
  }
}

int FuseActivations(Graph* g) {
  std::vector<bool> is_output(g->values.size(), false);
  for (int v : g->outputs) is_output[v] = true;
  std::vector<bool> removed(g->nodes.size(), false);
  int fused = 0;
  for (size_t i = 0; i < g->nodes.size(); ++i) {
    Node& conv = g->nodes[i];
    if (conv.info.op_type != "Conv" || !conv.info.domain.empty() || conv.outputs.size() != 1 ||
        conv.outputs[0] < 0 || conv.info.attrs.Has(kernels::kFusedName))
      continue;
    const int mid = conv.outputs[0];
    const Value& mv = g->values[mid];
    if (is_output[mid] || mv.consumers.size() != 1) continue;
    const int ai = mv.consumers[0];
    Node& act = g->nodes[ai];
    float lo, hi;
    std::string name;
    if (removed[ai] || act.inputs.empty() || act.inputs[0] != mid || act.outputs[0] < 0 ||
        !ActivationClamp(*g, act, &lo, &hi, &name))
      continue;
    conv.info.attrs.Set(kernels::kFusedMin, FloatAttr(lo));
    conv.info.attrs.Set(kernels::kFusedMax, FloatAttr(hi));
    Attribute n;
    n.kind = Attribute::Kind::kString;
    n.s = name;
    conv.info.attrs.Set(kernels::kFusedName, n);
    conv.outputs[0] = act.outputs[0];
    removed[ai] = true;
    ++fused;
  }
  if (!fused) return 0;
  std::vector<Node> kept;
  for (size_t i = 0; i < g->nodes.size(); ++i)
    if (!removed[i]) kept.push_back(std::move(g->nodes[i]));
  g->nodes = std::move(kept);
  SortAndRebuildUses(g);
  return fused;
}

}  // namespace outpost
