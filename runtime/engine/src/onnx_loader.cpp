// ONNX loading: ModelProto -> Graph, with validation of everything a hostile file could abuse.
#include "onnx_loader.h"
#include "outpost/kernels/fusion.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <queue>
#include <set>

#include <onnx/onnx_pb.h>

#include "tensor_proto.h"

namespace outpost {
namespace fs = std::filesystem;
using kernels::Attribute;

int Graph::ValueId(const std::string& name) const {
  for (size_t i = 0; i < values.size(); ++i)
    if (values[i].name == name) return static_cast<int>(i);
  return -1;
}

namespace {

constexpr int kMaxSubgraphDepth = 16;

std::string NormDomain(const std::string& d) { return d == "ai.onnx" ? "" : d; }
std::string DomainName(const std::string& d) { return d.empty() ? "ai.onnx" : d; }

Expected<std::shared_ptr<const Graph>> ConvertGraph(const onnx::GraphProto& g,
                                                    const std::map<std::string, int>& opsets,
                                                    const std::string& base_dir, int depth);

Expected<Attribute> ConvertAttribute(const onnx::AttributeProto& a, const std::string& node,
                                     const std::map<std::string, int>& opsets,
                                     const std::string& base_dir, int depth) {
  Attribute r;
  auto ctx = [&](const std::string& m) { return "node '" + node + "' attribute '" + a.name() + "': " + m; };
  switch (a.type()) {
    case onnx::AttributeProto::FLOAT: r.kind = Attribute::Kind::kFloat; r.f = a.f(); break;
    case onnx::AttributeProto::INT: r.kind = Attribute::Kind::kInt; r.i = a.i(); break;
    case onnx::AttributeProto::STRING: r.kind = Attribute::Kind::kString; r.s = a.s(); break;
    case onnx::AttributeProto::FLOATS:
      r.kind = Attribute::Kind::kFloats;
      r.floats.assign(a.floats().begin(), a.floats().end());
      break;
    case onnx::AttributeProto::INTS:
      r.kind = Attribute::Kind::kInts;
      r.ints.assign(a.ints().begin(), a.ints().end());
      break;
    case onnx::AttributeProto::STRINGS:
      r.kind = Attribute::Kind::kStrings;
      r.strings.assign(a.strings().begin(), a.strings().end());
      break;
    case onnx::AttributeProto::TENSOR: {
      r.kind = Attribute::Kind::kTensor;
      auto t = TensorFromProto(a.t(), base_dir);
      if (!t.ok()) return t.status().WithContext(ctx("tensor"));
      r.t = std::make_shared<const Tensor>(std::move(t).value());
      break;
    }
    case onnx::AttributeProto::TENSORS:
      r.kind = Attribute::Kind::kTensors;
      for (auto& tp : a.tensors()) {
        auto t = TensorFromProto(tp, base_dir);
        if (!t.ok()) return t.status().WithContext(ctx("tensors"));
        r.tensors.push_back(std::make_shared<const Tensor>(std::move(t).value()));
      }
      break;
    case onnx::AttributeProto::GRAPH: {
      r.kind = Attribute::Kind::kGraph;
      OP_ASSIGN_OR_RETURN(r.g, ConvertGraph(a.g(), opsets, base_dir, depth + 1));
      break;
    }
    case onnx::AttributeProto::GRAPHS:
      r.kind = Attribute::Kind::kGraphs;
      return Unsupported(ctx("graph-list attributes are not supported"));
    case onnx::AttributeProto::SPARSE_TENSOR:
    case onnx::AttributeProto::SPARSE_TENSORS:
      return Unsupported(ctx("sparse tensor attributes are not supported"));
    case onnx::AttributeProto::TYPE_PROTO:
    case onnx::AttributeProto::TYPE_PROTOS:
      return Unsupported(ctx("type-proto attributes are not supported"));
    default:
      // Old models (IR v1/v2) may omit `type`: infer it from the populated field.
      if (a.has_f()) { r.kind = Attribute::Kind::kFloat; r.f = a.f(); }
      else if (a.has_i()) { r.kind = Attribute::Kind::kInt; r.i = a.i(); }
      else if (a.has_s()) { r.kind = Attribute::Kind::kString; r.s = a.s(); }
      else if (a.ints_size()) { r.kind = Attribute::Kind::kInts; r.ints.assign(a.ints().begin(), a.ints().end()); }
      else if (a.floats_size()) { r.kind = Attribute::Kind::kFloats; r.floats.assign(a.floats().begin(), a.floats().end()); }
      else return InvalidModel(ctx("attribute without a type"));
  }
  return r;
}

Status DeclareValueInfo(const onnx::ValueInfoProto& vi, Value* v, bool is_graph_input) {
  if (!vi.has_type()) return Status::Ok();
  const auto& tp = vi.type();
  if (!tp.has_tensor_type()) {
    const char* kind = tp.has_sequence_type() ? "sequence" : tp.has_map_type() ? "map"
                       : tp.has_optional_type() ? "optional" : tp.has_sparse_tensor_type() ? "sparse tensor" : "non-tensor";
    if (is_graph_input || true)
      return Unsupported("value '" + vi.name() + "' has " + kind + " type; only tensors are supported");
  }
  const auto& tt = tp.tensor_type();
  v->dtype = static_cast<DataType>(tt.elem_type());
  if (tt.has_shape()) {
    v->has_declared_shape = true;
    if (tt.shape().dim_size() > Shape::kMaxRank)
      return Unsupported("value '" + vi.name() + "' has rank " + std::to_string(tt.shape().dim_size()) +
                         " above the supported maximum " + std::to_string(Shape::kMaxRank));
    for (auto& d : tt.shape().dim()) {
      if (d.has_dim_value()) {
        if (d.dim_value() < 0)
          return InvalidModel("value '" + vi.name() + "' has negative dimension " + std::to_string(d.dim_value()));
        v->dims.push_back(d.dim_value());
        v->dim_names.push_back("");
      } else {
        v->dims.push_back(-1);
        v->dim_names.push_back(d.has_dim_param() ? d.dim_param() : "");
      }
    }
  }
  return Status::Ok();
}

Expected<std::shared_ptr<const Graph>> ConvertGraph(const onnx::GraphProto& gp,
                                                    const std::map<std::string, int>& opsets,
                                                    const std::string& base_dir, int depth) {
  if (depth > kMaxSubgraphDepth)
    return InvalidModel("subgraphs nested deeper than " + std::to_string(kMaxSubgraphDepth));
  auto g = std::make_shared<Graph>();
  g->opsets = opsets;
  std::map<std::string, int> ids;
  auto value_id = [&](const std::string& name) {
    auto it = ids.find(name);
    if (it != ids.end()) return it->second;
    int id = static_cast<int>(g->values.size());
    g->values.push_back(Value{});
    g->values.back().name = name;
    ids[name] = id;
    return id;
  };
  if (gp.sparse_initializer_size())
    return Unsupported("graph '" + gp.name() + "' has sparse initializers, which are not supported");
  for (auto& init : gp.initializer()) {
    if (init.name().empty()) return InvalidModel("an initializer has no name");
    auto t = TensorFromProto(init, base_dir);
    if (!t.ok()) return t.status().WithContext("initializer '" + init.name() + "'");
    Value& v = g->values[value_id(init.name())];
    v.dtype = t->dtype();
    v.dims = t->shape().vec();
    v.dim_names.assign(v.dims.size(), "");
    v.has_declared_shape = true;
    v.constant = std::make_shared<const Tensor>(std::move(t).value());
  }
  for (auto& in : gp.input()) {
    bool is_new = !ids.count(in.name());
    int id = value_id(in.name());
    Value& v = g->values[id];
    if (v.constant) continue;  // an initializer also listed as input (IR < 4): a constant here
    if (!is_new) return InvalidModel("graph input '" + in.name() + "' is declared twice");
    OP_RETURN_IF_ERROR(DeclareValueInfo(in, &v, true).WithContext("graph input"));
    g->inputs.push_back(id);
  }
  for (auto& vi : gp.value_info()) {
    int id = value_id(vi.name());
    Value tmp;
    if (DeclareValueInfo(vi, &tmp, false).ok() && !g->values[id].constant) {
      g->values[id].dtype = tmp.dtype;
    }
  }
  std::set<std::string> produced;
  for (int i = 0; i < gp.node_size(); ++i) {
    const auto& np = gp.node(i);
    Node n;
    n.info.name = np.name().empty() ? np.op_type() + "_" + std::to_string(i) : np.name();
    n.info.op_type = np.op_type();
    n.info.domain = NormDomain(np.domain());
    auto os = opsets.find(n.info.domain);
    if (os == opsets.end())
      return InvalidModel("node '" + n.info.name + "' (" + n.info.op_type + ") uses domain '" +
                          DomainName(n.info.domain) + "' that the model does not import");
    n.info.opset = os->second;
    for (auto& a : np.attribute()) {
      if (a.name().empty()) return InvalidModel("node '" + n.info.name + "' has an attribute without a name");
      if (a.name().rfind(kernels::kReservedAttrPrefix, 0) == 0)
        return InvalidModel("node '" + n.info.name + "' attribute '" + a.name() + "': names starting with '" +
                            kernels::kReservedAttrPrefix + "' are reserved for the runtime");
      if (!a.ref_attr_name().empty())
        return Unsupported("node '" + n.info.name + "' attribute '" + a.name() + "' references a function attribute");
      OP_ASSIGN_OR_RETURN(Attribute attr, ConvertAttribute(a, n.info.name, opsets, base_dir, depth));
      n.info.attrs.Set(a.name(), std::move(attr));
    }
    for (auto& in : np.input()) n.inputs.push_back(in.empty() ? -1 : value_id(in));
    for (auto& out : np.output()) {
      if (out.empty()) {
        n.outputs.push_back(-1);
        continue;
      }
      if (!produced.insert(out).second)
        return InvalidModel("value '" + out + "' is produced by more than one node (second: '" + n.info.name + "')");
      int id = value_id(out);
      if (g->values[id].constant)
        return InvalidModel("node '" + n.info.name + "' output '" + out + "' redefines an initializer");
      n.outputs.push_back(id);
    }
    g->nodes.push_back(std::move(n));
  }
  for (auto& out : gp.output()) {
    auto it = ids.find(out.name());
    if (it == ids.end())
      return InvalidModel("graph output '" + out.name() + "' is not produced by any node, initializer or input");
    Value& v = g->values[it->second];
    if (v.dtype == DataType::kUndefined || !v.has_declared_shape) {
      Value tmp;
      Status st = DeclareValueInfo(out, &tmp, false);
      if (!st.ok()) return st.WithContext("graph output");
      if (v.dtype == DataType::kUndefined) v.dtype = tmp.dtype;
    }
    g->outputs.push_back(it->second);
  }
  return std::shared_ptr<const Graph>(std::move(g));
}

// Kahn's algorithm; producers and consumers filled in. Names the nodes of a cycle.
// Values with neither producer, initializer nor graph-input role are dangling.
Status SortAndLink(Graph* g, bool is_subgraph) {
  std::vector<bool> is_input(g->values.size(), false);
  for (int id : g->inputs) is_input[id] = true;
  for (size_t i = 0; i < g->nodes.size(); ++i)
    for (int o : g->nodes[i].outputs)
      if (o >= 0) g->values[o].producer = static_cast<int>(i);
  if (!is_subgraph) {
    for (auto& n : g->nodes)
      for (size_t k = 0; k < n.inputs.size(); ++k) {
        int v = n.inputs[k];
        if (v < 0) continue;
        const Value& val = g->values[v];
        if (val.producer < 0 && !val.constant && !is_input[v])
          return InvalidModel("node '" + n.info.name + "' (" + n.info.op_type + ") input " +
                              std::to_string(k) + " '" + val.name +
                              "' is not produced by any node, initializer or graph input");
      }
  }
  size_t n = g->nodes.size();
  std::vector<int> indeg(n, 0);
  std::vector<std::vector<int>> succ(n);
  for (size_t i = 0; i < n; ++i)
    for (int v : g->nodes[i].inputs)
      if (v >= 0 && g->values[v].producer >= 0) {
        indeg[i]++;
        succ[g->values[v].producer].push_back(static_cast<int>(i));
      }
  std::queue<int> q;  // FIFO keeps the file's order for already-sorted graphs
  for (size_t i = 0; i < n; ++i)
    if (indeg[i] == 0) q.push(static_cast<int>(i));
  std::vector<int> order;
  while (!q.empty()) {
    int i = q.front();
    q.pop();
    order.push_back(i);
    for (int s : succ[i])
      if (--indeg[s] == 0) q.push(s);
  }
  if (order.size() != n) {
    std::string names;
    int shown = 0;
    for (size_t i = 0; i < n && shown < 8; ++i)
      if (indeg[i] > 0) {
        names += (shown++ ? ", '" : "'") + g->nodes[i].info.name + "'";
      }
    return InvalidModel("the graph has a cycle through nodes " + names);
  }
  std::vector<Node> sorted;
  sorted.reserve(n);
  for (int i : order) sorted.push_back(std::move(g->nodes[i]));
  g->nodes = std::move(sorted);
  for (auto& v : g->values) {
    v.producer = -1;
    v.consumers.clear();
  }
  for (size_t i = 0; i < n; ++i) {
    for (int o : g->nodes[i].outputs)
      if (o >= 0) g->values[o].producer = static_cast<int>(i);
    for (int v : g->nodes[i].inputs)
      if (v >= 0) g->values[v].consumers.push_back(static_cast<int>(i));
  }
  return Status::Ok();
}

// Every node whose op we cannot run, listed at once.
Status CheckOpsSupported(const Graph& g) {
  std::string list;
  int count = 0;
  for (auto& n : g.nodes) {
    std::string why;
    if (!kernels::KnownOp(n.info.domain, n.info.op_type)) {
      why = "unknown op";
    } else if (!kernels::FindOp(n.info.domain, n.info.op_type, n.info.opset)) {
      int lo = 1 << 30, hi = 0;
      for (auto* d : kernels::AllOps())
        if (d->op_type == n.info.op_type && NormDomain(d->domain) == n.info.domain) {
          lo = std::min(lo, d->min_opset);
          hi = std::max(hi, d->max_opset);
        }
      why = "not supported at opset " + std::to_string(n.info.opset) + " (supported: " +
            std::to_string(lo) + "-" + std::to_string(hi) + ")";
    } else {
      continue;
    }
    ++count;
    if (count <= 50)
      list += "\n  node '" + n.info.name + "' (" + n.info.op_type + ", domain " +
              DomainName(n.info.domain) + ", opset " + std::to_string(n.info.opset) + "): " + why;
  }
  if (!count) return Status::Ok();
  if (count > 50) list += "\n  ... and " + std::to_string(count - 50) + " more";
  return Unsupported(std::to_string(count) + " node(s) cannot run:" + list);
}

}  // namespace

Expected<Graph> LoadOnnxGraph(const std::string& bytes, const std::string& base_dir) {
  onnx::ModelProto model;
  if (bytes.empty()) return InvalidModel("the file is empty");
  if (!model.ParseFromString(bytes))
    return InvalidModel("not a valid ONNX model: the protobuf could not be parsed (truncated or not ONNX)");
  if (model.ir_version() <= 0 || !model.has_graph())
    return InvalidModel("not a valid ONNX model: no ir_version or no graph");
  std::map<std::string, int> opsets;
  for (auto& os : model.opset_import()) {
    std::string d = NormDomain(os.domain());
    if (os.version() <= 0)
      return InvalidModel("opset import for domain '" + DomainName(d) + "' has version " + std::to_string(os.version()));
    opsets[d] = static_cast<int>(os.version());
  }
  if (opsets.empty() && model.ir_version() < 3) opsets[""] = 1;
  if (opsets.count("") && opsets[""] > kernels::kMaxOnnxOpset)
    return Unsupported("the model imports ai.onnx opset " + std::to_string(opsets[""]) +
                       "; this runtime supports opsets 1 to " + std::to_string(kernels::kMaxOnnxOpset));
  if (model.functions_size()) {
    std::set<std::string> fnames;
    for (auto& f : model.functions()) fnames.insert(f.name());
    for (auto& n : model.graph().node())
      if (fnames.count(n.op_type()))
        return Unsupported("node '" + n.name() + "' calls model-local function '" + n.op_type() +
                           "'; model-local functions are not supported");
  }
  OP_ASSIGN_OR_RETURN(auto gp, ConvertGraph(model.graph(), opsets, base_dir, 0));
  Graph g = *gp;
  g.producer = model.producer_name() + (model.producer_version().empty() ? "" : " " + model.producer_version());
  OP_RETURN_IF_ERROR(SortAndLink(&g, false));
  OP_RETURN_IF_ERROR(CheckOpsSupported(g));
  return g;
}

}  // namespace outpost
