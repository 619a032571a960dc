#include "qdq.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>
#include <sstream>

namespace outpost::quantize {
namespace {

using onnx::TensorProto;

int OpsetOf(const onnx::ModelProto& m) {
  for (const auto& o : m.opset_import())
    if (o.domain().empty() || o.domain() == "ai.onnx") return static_cast<int>(o.version());
  return 0;
}

std::map<std::string, int> InitializerIndex(const onnx::GraphProto& g) {
  std::map<std::string, int> idx;
  for (int i = 0; i < g.initializer_size(); ++i) idx[g.initializer(i).name()] = i;
  return idx;
}

Expected<std::vector<float>> ReadFloats(const TensorProto& t) {
  if (t.data_type() != TensorProto::FLOAT)
    return Unsupported("initializer '" + t.name() + "' is not float32");
  if (t.data_location() == TensorProto::EXTERNAL)
    return Unsupported("initializer '" + t.name() + "' uses external data, not supported here");
  int64_t n = 1;
  for (auto d : t.dims()) n *= d;
  std::vector<float> v(static_cast<size_t>(n));
  if (t.has_raw_data()) {
    if (t.raw_data().size() != v.size() * sizeof(float))
      return InvalidModel("initializer '" + t.name() + "' raw data size does not match its dims");
    std::memcpy(v.data(), t.raw_data().data(), t.raw_data().size());
  } else {
    if (t.float_data_size() != n)
      return InvalidModel("initializer '" + t.name() + "' float data size does not match its dims");
    std::copy(t.float_data().begin(), t.float_data().end(), v.begin());
  }
  return v;
}

template <typename T>
TensorProto MakeTensor(const std::string& name, int dtype, const std::vector<int64_t>& dims,
                       const std::vector<T>& values) {
  TensorProto t;
  t.set_name(name);
  t.set_data_type(dtype);
  for (int64_t d : dims) t.add_dims(d);
  t.set_raw_data(
      std::string(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(T)));
  return t;
}

float AttrFloat(const onnx::NodeProto& n, const std::string& name, float def) {
  for (const auto& a : n.attribute())
    if (a.name() == name) return a.f();
  return def;
}

int64_t AttrInt(const onnx::NodeProto& n, const std::string& name, int64_t def) {
  for (const auto& a : n.attribute())
    if (a.name() == name) return a.i();
  return def;
}

void SetAttrInt(onnx::NodeProto* n, const std::string& name, int64_t v) {
  auto* a = n->add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::INT);
  a->set_i(v);
}

// Uses of each value as a node input, and the graph outputs.
std::map<std::string, int> UseCounts(const onnx::GraphProto& g) {
  std::map<std::string, int> uses;
  for (const auto& n : g.node())
    for (const auto& in : n.input()) ++uses[in];
  return uses;
}

std::set<std::string> GraphOutputs(const onnx::GraphProto& g) {
  std::set<std::string> s;
  for (const auto& o : g.output()) s.insert(o.name());
  return s;
}

// Drops initializers (and their graph-input entries) that no node or graph output reads.
void PruneInitializers(onnx::GraphProto* g) {
  std::map<std::string, int> uses = UseCounts(*g);
  for (const auto& o : g->output()) ++uses[o.name()];
  std::set<std::string> dropped;
  auto* inits = g->mutable_initializer();
  for (int i = inits->size() - 1; i >= 0; --i)
    if (!uses.count(inits->Get(i).name())) {
      dropped.insert(inits->Get(i).name());
      inits->DeleteSubrange(i, 1);
    }
  auto* ins = g->mutable_input();
  for (int i = ins->size() - 1; i >= 0; --i)
    if (dropped.count(ins->Get(i).name())) ins->DeleteSubrange(i, 1);
}

class Names {
 public:
  explicit Names(const onnx::GraphProto& g) {
    for (const auto& i : g.input()) used_.insert(i.name());
    for (const auto& i : g.initializer()) used_.insert(i.name());
    for (const auto& n : g.node()) {
      used_.insert(n.name());
      for (const auto& o : n.output()) used_.insert(o);
    }
  }
  std::string Fresh(const std::string& base) {
    std::string n = base;
    for (int i = 1; used_.count(n); ++i) n = base + "_" + std::to_string(i);
    used_.insert(n);
    return n;
  }

 private:
  std::set<std::string> used_;
};

}  // namespace

Expected<onnx::ModelProto> ReadModel(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return NotFound("cannot read model '" + path + "'");
  std::stringstream ss;
  ss << f.rdbuf();
  onnx::ModelProto m;
  if (!m.ParseFromString(ss.str()))
    return InvalidModel("'" + path + "' is not an ONNX model (protobuf parse failed)");
  if (!m.has_graph() || m.graph().node_size() == 0)
    return InvalidModel("'" + path + "' has an empty graph");
  const int opset = OpsetOf(m);
  if (opset < 10)
    return Unsupported("'" + path + "' imports ai.onnx opset " + std::to_string(opset) +
                       "; QuantizeLinear/DequantizeLinear need opset 10 or later");
  for (const auto& t : m.graph().initializer())
    if (t.data_location() == TensorProto::EXTERNAL)
      return Unsupported("'" + path + "' keeps initializer '" + t.name() +
                         "' in external data; quantize supports self-contained models only");
  auto* g = m.mutable_graph();
  for (int i = 0; i < g->node_size(); ++i)
    if (g->node(i).name().empty())
      g->mutable_node(i)->set_name(g->node(i).op_type() + "_" + std::to_string(i));
  return m;
}

Expected<int> FoldBatchNorms(onnx::ModelProto* m) {
  auto* g = m->mutable_graph();
  const std::set<std::string> outs = GraphOutputs(*g);
  int folded = 0;
  Names names(*g);
  for (bool again = true; again;) {
    again = false;
    const std::map<std::string, int> uses = UseCounts(*g);
    const std::map<std::string, int> inits = InitializerIndex(*g);
    std::map<std::string, int> producer;
    for (int i = 0; i < g->node_size(); ++i)
      for (const auto& o : g->node(i).output()) producer[o] = i;
    for (int bi = 0; bi < g->node_size(); ++bi) {
      const onnx::NodeProto& bn = g->node(bi);
      if (bn.op_type() != "BatchNormalization" || bn.input_size() != 5) continue;
      if (AttrInt(bn, "training_mode", 0) != 0) continue;
      bool extra_outputs = false;
      for (int k = 1; k < bn.output_size(); ++k) extra_outputs |= !bn.output(k).empty();
      if (extra_outputs) continue;
      auto p = producer.find(bn.input(0));
      if (p == producer.end() || g->node(p->second).op_type() != "Conv") continue;
      const onnx::NodeProto& conv = g->node(p->second);
      if (uses.at(bn.input(0)) != 1 || outs.count(bn.input(0)) || conv.input_size() < 2) continue;
      bool constant = inits.count(conv.input(1)) != 0;
      for (int k = 1; k < 5; ++k) constant &= inits.count(bn.input(k)) != 0;
      const bool has_bias = conv.input_size() > 2 && !conv.input(2).empty();
      if (has_bias) constant &= inits.count(conv.input(2)) != 0;
      if (!constant) continue;
      const TensorProto& wt = g->initializer(inits.at(conv.input(1)));
      OP_ASSIGN_OR_RETURN(std::vector<float> w, ReadFloats(wt));
      std::vector<std::vector<float>> p4(4);
      for (int k = 0; k < 4; ++k) {
        OP_ASSIGN_OR_RETURN(p4[k], ReadFloats(g->initializer(inits.at(bn.input(k + 1)))));
      }
      const size_t c = wt.dims_size() > 0 ? static_cast<size_t>(wt.dims(0)) : 0;
      bool sizes_ok = c > 0 && w.size() % c == 0;
      for (auto& v : p4) sizes_ok &= v.size() == c;
      std::vector<float> b(c, 0.f);
      if (has_bias) {
        OP_ASSIGN_OR_RETURN(b, ReadFloats(g->initializer(inits.at(conv.input(2)))));
        sizes_ok &= b.size() == c;
      }
      if (!sizes_ok) continue;
      const float eps = AttrFloat(bn, "epsilon", 1e-5f);
      const size_t per = w.size() / c;
      for (size_t o = 0; o < c; ++o) {
        const double k = p4[0][o] / std::sqrt(static_cast<double>(p4[3][o]) + eps);
        for (size_t j = 0; j < per; ++j) w[o * per + j] = static_cast<float>(w[o * per + j] * k);
        b[o] = static_cast<float>((b[o] - p4[2][o]) * k + p4[1][o]);
      }
      std::vector<int64_t> wdims(wt.dims().begin(), wt.dims().end());
      const std::string wname = names.Fresh(conv.input(1) + "_bnfold");
      const std::string bname = names.Fresh(conv.name() + ".bias_bnfold");
      *g->add_initializer() = MakeTensor(wname, TensorProto::FLOAT, wdims, w);
      *g->add_initializer() = MakeTensor(bname, TensorProto::FLOAT, {static_cast<int64_t>(c)}, b);
      onnx::NodeProto* cv = g->mutable_node(p->second);
      cv->set_input(1, wname);
      if (has_bias)
        cv->set_input(2, bname);
      else
        cv->add_input(bname);
      cv->set_output(0, bn.output(0));
      g->mutable_node()->DeleteSubrange(bi, 1);
      ++folded;
      again = true;
      break;
    }
  }
  PruneInitializers(g);
  return folded;
}

std::vector<Target> FindTargets(onnx::ModelProto* m, const std::set<std::string>& exclude) {
  const onnx::GraphProto& g = m->graph();
  const std::map<std::string, int> inits = InitializerIndex(g);
  const std::set<std::string> outs = GraphOutputs(g);
  std::map<std::string, std::vector<int>> consumers;
  for (int i = 0; i < g.node_size(); ++i)
    for (const auto& in : g.node(i).input()) consumers[in].push_back(i);
  auto float_init = [&](const std::string& name, int min_rank, int max_rank) {
    auto it = inits.find(name);
    if (it == inits.end()) return false;
    const TensorProto& t = g.initializer(it->second);
    return t.data_type() == TensorProto::FLOAT && t.dims_size() >= min_rank &&
           t.dims_size() <= max_rank;
  };
  std::vector<Target> targets;
  for (int i = 0; i < g.node_size(); ++i) {
    const onnx::NodeProto& n = g.node(i);
    const std::string& op = n.op_type();
    if (op != "Conv" && op != "MatMul" && op != "Gemm") continue;
    if (exclude.count(n.name()) || exclude.count(op) || n.output_size() != 1) continue;
    if (n.input_size() < 2 || inits.count(n.input(0))) continue;
    Target t;
    t.node = n.name();
    t.op_type = op;
    t.activation = n.input(0);
    t.weight = n.input(1);
    t.output = n.output(0);
    if (op == "Conv") {
      if (!float_init(t.weight, 3, 5)) continue;
      t.weight_axis = 0;
    } else {
      if (!float_init(t.weight, 2, 2)) continue;
      if (op == "Gemm" && AttrInt(n, "transA", 0) != 0) continue;
      t.weight_axis = (op == "Gemm" && AttrInt(n, "transB", 0) != 0) ? 0 : 1;
    }
    if (op != "MatMul" && n.input_size() > 2 && float_init(n.input(2), 1, 1)) {
      const TensorProto& w = g.initializer(inits.at(t.weight));
      if (g.initializer(inits.at(n.input(2))).dims(0) == w.dims(t.weight_axis)) t.bias = n.input(2);
    }
    if (!outs.count(t.output)) {
      t.requant = t.output;
      auto c = consumers.find(t.output);
      if (c != consumers.end() && c->second.size() == 1) {
        const onnx::NodeProto& next = g.node(c->second[0]);
        // The activation is fused into the integer op (Relu, and Clip such as ReLU6): one
        // requantization after it, none between.
        if ((next.op_type() == "Relu" || next.op_type() == "Clip") && !outs.count(next.output(0)))
          t.requant = next.output(0);
      }
    }
    targets.push_back(t);
  }
  return targets;
}

std::set<std::string> ActivationValues(const std::vector<Target>& targets) {
  std::set<std::string> v;
  for (const Target& t : targets) {
    if (t.weight_only) continue;
    v.insert(t.activation);
    if (!t.requant.empty()) v.insert(t.requant);
  }
  return v;
}

std::string WithOutputs(const onnx::ModelProto& m, const std::vector<std::string>& extra,
                        std::map<std::string, int>* index) {
  onnx::ModelProto c = m;
  auto* g = c.mutable_graph();
  std::map<std::string, int> have;
  for (int i = 0; i < g->output_size(); ++i) have[g->output(i).name()] = i;
  for (const std::string& name : extra) {
    auto it = have.find(name);
    if (it == have.end()) {
      it = have.emplace(name, g->output_size()).first;
      g->add_output()->set_name(name);
    }
    (*index)[name] = it->second;
  }
  std::string bytes;
  c.SerializeToString(&bytes);
  return bytes;
}

namespace {

struct ActParams {
  float scale = 1;
  int32_t zp = 0;
};

Expected<ActParams> ActivationParams(const std::string& name, Range r, DataType dt) {
  if (!std::isfinite(r.min) || !std::isfinite(r.max))
    return InvalidArgument("calibration saw non-finite values in '" + name + "'");
  const double qmin = dt == DataType::kUInt8 ? 0 : -128, qmax = dt == DataType::kUInt8 ? 255 : 127;
  const double lo = std::min<double>(r.min, 0), hi = std::max<double>(r.max, 0);
  ActParams p;
  const double s = (hi - lo) / (qmax - qmin);
  p.scale = s > 0 ? static_cast<float>(s) : 1.f;
  p.zp = static_cast<int32_t>(std::clamp(std::round(qmin - lo / p.scale), qmin, qmax));
  return p;
}

constexpr int kTensorInt4 = 22;  // TensorProto::INT4 (onnx 1.16); libonnx 1.12 predates it

// Weight-only int4: blocks along the reduction axis (the one that is not the output channel).
Status BlockedInt4(const onnx::ModelProto& m, const Target& t, const QdqOptions& o,
                   const std::map<std::string, int>& inits, Names* names, onnx::GraphProto* g,
                   std::map<std::string, std::vector<onnx::NodeProto>>* before,
                   std::map<std::string, std::map<int, std::string>>* rewire) {
  const TensorProto& wt = m.graph().initializer(inits.at(t.weight));
  OP_ASSIGN_OR_RETURN(std::vector<float> w, ReadFloats(wt));
  if (wt.dims_size() != 2)
    return Unsupported("int4 weights need a 2-D weight ('" + t.weight + "')");
  if (o.block_size < 1) return InvalidArgument("block size must be positive");
  const int axis = 1 - t.weight_axis;
  const int64_t rows = wt.dims(0), cols = wt.dims(1);
  const int64_t len = wt.dims(axis), bs = o.block_size, nb = (len + bs - 1) / bs;
  std::vector<int64_t> sdims = {rows, cols};
  sdims[axis] = nb;
  // Element (r, c) -> its block's scale index.
  auto block_of = [&](int64_t r, int64_t c) {
    return axis == 0 ? (r / bs) * cols + c : r * nb + c / bs;
  };
  std::vector<float> amax(static_cast<size_t>(sdims[0] * sdims[1]), 0.f);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c)
      amax[block_of(r, c)] = std::max(amax[block_of(r, c)], std::fabs(w[r * cols + c]));
  std::vector<float> scale(amax.size());
  for (size_t i = 0; i < amax.size(); ++i) scale[i] = amax[i] > 0 ? amax[i] / 7.f : 1.f;
  std::vector<int8_t> q(w.size());
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c)
      q[r * cols + c] = static_cast<int8_t>(
          std::clamp(std::round(w[r * cols + c] / scale[block_of(r, c)]), -8.f, 7.f));
  const std::string k = std::to_string(before->size());
  const std::string wqn = names->Fresh("w" + k), wsn = names->Fresh("w" + k + "_s");
  const std::string wdq = names->Fresh("w" + k + "_dq");
  if (o.int4_as_int8) {
    *g->add_initializer() = MakeTensor(wqn, TensorProto::INT8, {rows, cols}, q);
  } else {
    std::vector<uint8_t> packed((q.size() + 1) / 2, 0);  // low nibble first
    for (size_t i = 0; i < q.size(); ++i)
      packed[i / 2] |= static_cast<uint8_t>((q[i] & 0xF) << (4 * (i % 2)));
    TensorProto t4 = MakeTensor(wqn, TensorProto::INT8, {rows, cols}, packed);
    t4.set_data_type(kTensorInt4);
    *g->add_initializer() = t4;
  }
  *g->add_initializer() = MakeTensor(wsn, TensorProto::FLOAT, sdims, scale);
  onnx::NodeProto dn;
  dn.set_op_type("DequantizeLinear");
  dn.set_name(names->Fresh("DQ_w" + k));
  dn.add_input(wqn), dn.add_input(wsn), dn.add_output(wdq);
  SetAttrInt(&dn, "axis", axis);
  SetAttrInt(&dn, "block_size", bs);
  (*before)[t.node].push_back(dn);
  (*rewire)[t.node][1] = wdq;
  return Status::Ok();
}

}  // namespace

Expected<onnx::ModelProto> WriteQdq(const onnx::ModelProto& m, const std::vector<Target>& targets,
                                    const std::map<std::string, Range>& ranges,
                                    const QdqOptions& o) {
  if (o.per_channel && OpsetOf(m) < 13)
    return Unsupported("per-channel DequantizeLinear needs opset 13; the model imports opset " +
                       std::to_string(OpsetOf(m)));
  onnx::ModelProto q = m;
  onnx::GraphProto* g = q.mutable_graph();
  const std::map<std::string, int> inits = InitializerIndex(m.graph());
  Names names(*g);
  const int act_type = o.activations == DataType::kUInt8 ? TensorProto::UINT8 : TensorProto::INT8;

  // Activations: Q -> DQ pairs, keyed by the float value they replace.
  std::map<std::string, ActParams> act;
  std::map<std::string, std::string> act_dq;                  // value -> its dequantized twin
  std::map<std::string, std::vector<onnx::NodeProto>> after;  // value -> Q/DQ nodes after it
  for (const std::string& v : ActivationValues(targets)) {
    auto r = ranges.find(v);
    if (r == ranges.end()) return Internal("no calibration range for '" + v + "'");
    OP_ASSIGN_OR_RETURN(ActParams p, ActivationParams(v, r->second, o.activations));
    act[v] = p;
    // Short generated names: on a small model, long ones would cost more than the weights save.
    const std::string k = "a" + std::to_string(act.size());
    const std::string s = names.Fresh(k + "_s"), z = names.Fresh(k + "_z");
    const std::string qv = names.Fresh(k + "_q"), dq = names.Fresh(k + "_dq");
    *g->add_initializer() = MakeTensor<float>(s, TensorProto::FLOAT, {}, {p.scale});
    if (act_type == TensorProto::UINT8)
      *g->add_initializer() = MakeTensor<uint8_t>(z, act_type, {}, {static_cast<uint8_t>(p.zp)});
    else
      *g->add_initializer() = MakeTensor<int8_t>(z, act_type, {}, {static_cast<int8_t>(p.zp)});
    onnx::NodeProto qn, dn;
    qn.set_op_type("QuantizeLinear");
    qn.set_name(names.Fresh("Q_" + k));
    qn.add_input(v), qn.add_input(s), qn.add_input(z), qn.add_output(qv);
    dn.set_op_type("DequantizeLinear");
    dn.set_name(names.Fresh("DQ_" + k));
    dn.add_input(qv), dn.add_input(s), dn.add_input(z), dn.add_output(dq);
    after[v] = {qn, dn};
    act_dq[v] = dq;
  }

  // Weights and biases: constant int8 / int32 initializers behind a DequantizeLinear.
  std::map<std::string, std::vector<onnx::NodeProto>> before;  // node name -> DQ nodes
  std::map<std::string, std::map<int, std::string>> rewire;    // node name -> input -> value
  bool blocked = false;
  for (const Target& t : targets) {
    if (t.weight_only) {
      OP_RETURN_IF_ERROR(BlockedInt4(m, t, o, inits, &names, g, &before, &rewire));
      blocked = true;
      continue;
    }
    const TensorProto& wt = m.graph().initializer(inits.at(t.weight));
    OP_ASSIGN_OR_RETURN(std::vector<float> w, ReadFloats(wt));
    std::vector<int64_t> dims(wt.dims().begin(), wt.dims().end());
    const int64_t channels = o.per_channel ? dims[t.weight_axis] : 1;
    int64_t inner = 1;
    for (size_t d = t.weight_axis + 1; d < dims.size(); ++d) inner *= dims[d];
    auto channel_of = [&](size_t i) {
      return o.per_channel ? static_cast<int64_t>(i / inner) % channels : 0;
    };
    std::vector<float> amax(channels, 0.f);
    for (size_t i = 0; i < w.size(); ++i)
      amax[channel_of(i)] = std::max(amax[channel_of(i)], std::fabs(w[i]));
    std::vector<float> ws(channels);
    for (int64_t c = 0; c < channels; ++c) ws[c] = amax[c] > 0 ? amax[c] / 127.f : 1.f;
    std::vector<int8_t> wq(w.size());
    for (size_t i = 0; i < w.size(); ++i)
      wq[i] = static_cast<int8_t>(std::clamp(std::round(w[i] / ws[channel_of(i)]), -127.f, 127.f));
    std::vector<int64_t> sdims;
    if (o.per_channel) sdims = {channels};
    // Symmetric: no zero point input (it defaults to 0 of the quantized type).
    const std::string k = std::to_string(before.size());
    const std::string wqn = names.Fresh("w" + k), wsn = names.Fresh("w" + k + "_s");
    const std::string wdq = names.Fresh("w" + k + "_dq");
    *g->add_initializer() = MakeTensor(wqn, TensorProto::INT8, dims, wq);
    *g->add_initializer() = MakeTensor(wsn, TensorProto::FLOAT, sdims, ws);
    onnx::NodeProto dn;
    dn.set_op_type("DequantizeLinear");
    dn.set_name(names.Fresh("DQ_w" + k));
    dn.add_input(wqn), dn.add_input(wsn), dn.add_output(wdq);
    if (o.per_channel) SetAttrInt(&dn, "axis", t.weight_axis);
    before[t.node].push_back(dn);
    rewire[t.node][1] = wdq;

    if (!t.bias.empty()) {
      OP_ASSIGN_OR_RETURN(std::vector<float> b,
                          ReadFloats(m.graph().initializer(inits.at(t.bias))));
      const float xs = act.at(t.activation).scale;
      std::vector<float> bs(channels);
      for (int64_t c = 0; c < channels; ++c) bs[c] = xs * ws[c];
      std::vector<int32_t> bq(b.size());
      for (size_t i = 0; i < b.size(); ++i) {
        const double v = std::round(static_cast<double>(b[i]) / bs[o.per_channel ? i : 0]);
        bq[i] = static_cast<int32_t>(std::clamp<double>(v, std::numeric_limits<int32_t>::min(),
                                                        std::numeric_limits<int32_t>::max()));
      }
      const std::string bqn = names.Fresh("b" + k), bsn = names.Fresh("b" + k + "_s");
      const std::string bdq = names.Fresh("b" + k + "_dq");
      *g->add_initializer() =
          MakeTensor(bqn, TensorProto::INT32, {static_cast<int64_t>(b.size())}, bq);
      *g->add_initializer() = MakeTensor(bsn, TensorProto::FLOAT, sdims, bs);
      onnx::NodeProto bd;
      bd.set_op_type("DequantizeLinear");
      bd.set_name(names.Fresh("DQ_b" + k));
      bd.add_input(bqn), bd.add_input(bsn), bd.add_output(bdq);
      if (o.per_channel) SetAttrInt(&bd, "axis", 0);
      before[t.node].push_back(bd);
      rewire[t.node][2] = bdq;
    }
  }

  // Rebuild the node list in topological order: Q/DQ right after the value they quantize.
  google::protobuf::RepeatedPtrField<onnx::NodeProto> nodes;
  auto emit_after = [&](const std::string& v) {
    auto it = after.find(v);
    if (it != after.end())
      for (const auto& n : it->second) *nodes.Add() = n;
  };
  for (const auto& in : g->input()) emit_after(in.name());
  for (const onnx::NodeProto& orig : m.graph().node()) {
    onnx::NodeProto n = orig;
    if (auto b = before.find(n.name()); b != before.end())
      for (const auto& d : b->second) *nodes.Add() = d;
    for (int i = 0; i < n.input_size(); ++i) {
      if (auto r = rewire.find(n.name()); r != rewire.end() && r->second.count(i))
        n.set_input(i, r->second.at(i));
      else if (auto a = act_dq.find(n.input(i)); a != act_dq.end())
        n.set_input(i, a->second);
    }
    *nodes.Add() = n;
    for (const auto& out : n.output()) emit_after(out);
  }
  g->mutable_node()->Swap(&nodes);
  PruneInitializers(g);
  if (blocked) {  // blocked DequantizeLinear and int4 need opset 21, IR version 10
    for (auto& op : *q.mutable_opset_import())
      if (op.domain().empty() || op.domain() == "ai.onnx")
        op.set_version(std::max<int64_t>(op.version(), 21));
    q.set_ir_version(std::max<int64_t>(q.ir_version(), 10));
  }
  return q;
}

void CompactValueNames(onnx::ModelProto* m) {
  onnx::GraphProto* g = m->mutable_graph();
  const std::set<std::string> outs = GraphOutputs(*g);
  Names names(*g);
  std::map<std::string, std::string> rename;
  for (int i = 0; i < g->node_size(); ++i) {
    onnx::NodeProto* n = g->mutable_node(i);
    for (int k = 0; k < n->input_size(); ++k)
      if (auto it = rename.find(n->input(k)); it != rename.end()) n->set_input(k, it->second);
    for (int k = 0; k < n->output_size(); ++k) {
      const std::string& o = n->output(k);
      if (o.empty() || outs.count(o)) continue;
      const std::string fresh = names.Fresh("t" + std::to_string(rename.size()));
      rename[o] = fresh;
      n->set_output(k, fresh);
    }
  }
  // Shape annotations of intermediate values follow their new names.
  for (auto& vi : *g->mutable_value_info())
    if (auto it = rename.find(vi.name()); it != rename.end()) vi.set_name(it->second);
}

namespace {

Status ToFloat16(TensorProto* t) {
  if (t->data_type() != TensorProto::FLOAT) return Status::Ok();
  OP_ASSIGN_OR_RETURN(std::vector<float> v, ReadFloats(*t));
  std::vector<uint16_t> h(v.size());
  for (size_t i = 0; i < v.size(); ++i) h[i] = Float16::FromFloat(v[i]);
  t->clear_float_data();
  t->set_data_type(TensorProto::FLOAT16);
  t->set_raw_data(std::string(reinterpret_cast<const char*>(h.data()), h.size() * 2));
  return Status::Ok();
}

}  // namespace

Status ConvertToFloat16(onnx::ModelProto* m) {
  onnx::GraphProto* g = m->mutable_graph();
  for (auto& t : *g->mutable_initializer()) OP_RETURN_IF_ERROR(ToFloat16(&t));
  for (auto& n : *g->mutable_node()) {
    for (auto& a : *n.mutable_attribute()) {
      if (a.has_t()) OP_RETURN_IF_ERROR(ToFloat16(a.mutable_t()));
      if (n.op_type() == "Cast" && a.name() == "to" && a.i() == TensorProto::FLOAT)
        a.set_i(TensorProto::FLOAT16);
      if (a.g().node_size() > 0)
        return Unsupported("--fp16: node '" + n.name() + "' has a subgraph, not converted");
    }
  }
  for (auto& vi : *g->mutable_value_info()) {
    auto* tt = vi.mutable_type()->mutable_tensor_type();
    if (tt->elem_type() == TensorProto::FLOAT) tt->set_elem_type(TensorProto::FLOAT16);
  }
  Names names(*g);
  google::protobuf::RepeatedPtrField<onnx::NodeProto> nodes;
  std::map<std::string, std::string> in_rename;
  for (const auto& in : g->input()) {
    if (in.type().tensor_type().elem_type() != TensorProto::FLOAT) continue;
    const std::string h = names.Fresh(in.name() + "_fp16");
    onnx::NodeProto* c = nodes.Add();
    c->set_op_type("Cast"), c->set_name(names.Fresh("Cast_" + h));
    c->add_input(in.name()), c->add_output(h);
    SetAttrInt(c, "to", TensorProto::FLOAT16);
    in_rename[in.name()] = h;
  }
  std::map<std::string, std::string> out_rename;  // float output -> its float16 producer value
  for (const auto& out : g->output())
    if (out.type().tensor_type().elem_type() == TensorProto::FLOAT)
      out_rename[out.name()] = names.Fresh(out.name() + "_fp16");
  for (onnx::NodeProto n : g->node()) {
    for (int i = 0; i < n.input_size(); ++i) {
      if (auto it = in_rename.find(n.input(i)); it != in_rename.end())
        n.set_input(i, it->second);
      else if (auto o = out_rename.find(n.input(i)); o != out_rename.end())
        n.set_input(i, o->second);
    }
    for (int i = 0; i < n.output_size(); ++i)
      if (auto o = out_rename.find(n.output(i)); o != out_rename.end()) n.set_output(i, o->second);
    *nodes.Add() = n;
  }
  for (const auto& [f32, f16] : out_rename) {
    onnx::NodeProto* c = nodes.Add();
    c->set_op_type("Cast"), c->set_name(names.Fresh("Cast_" + f32));
    c->add_input(f16), c->add_output(f32);
    SetAttrInt(c, "to", TensorProto::FLOAT);
  }
  g->mutable_node()->Swap(&nodes);
  return Status::Ok();
}

}  // namespace outpost::quantize
