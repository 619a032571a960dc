// QDQ -> integer kernels (see fuse.h). One pass over the nodes: each float op whose float inputs
// come from DequantizeLinear and whose output goes (through at most one Relu/Clip) into a
// QuantizeLinear is matched, every condition checked, and the group replaced by its integer
// node. Anything that does not match stays as it is, and still runs correctly in float.
#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <set>

#include "fuse.h"
#include "outpost/kernels/fusion.h"

namespace outpost {
namespace {

using kernels::Attribute;

// QLinearConv / QLinearMatMul / QGemm apply the fused clamp attributes of
// outpost/kernels/fusion.h themselves (as quantized bounds, on the CPU and OpenCL backends), so
// a Relu/Clip after them is folded in. (Other integer ops get an integer Clip node after them,
// which gives the same values.)
constexpr bool kQuantKernelsClamp = true;

bool Is8Bit(DataType t) { return t == DataType::kInt8 || t == DataType::kUInt8; }

std::pair<double, double> Range(DataType t) {
  return t == DataType::kInt8 ? std::pair{-128.0, 127.0} : std::pair{0.0, 255.0};
}

// A quantization parameter set read from a DequantizeLinear or QuantizeLinear node.
struct QParam {
  int node = -1;
  int data = -1;  // DQ: the integer input; Q: the float input
  int scale = -1, zp = -1;
  const Tensor* s = nullptr;
  const Tensor* z = nullptr;
  DataType type = DataType::kUndefined;  // the integer type
  int axis = 1;
  bool per_tensor() const { return s->numel() == 1; }
  double Scale(int64_t i = 0) const { return ReadDouble(*s, per_tensor() ? 0 : i); }
  double Zero(int64_t i = 0) const {
    return z ? static_cast<double>(ReadInt(*z, z->numel() == 1 ? 0 : i)) : 0.0;
  }
  // Q(v) as QuantizeLinear computes it (float division, half to even, saturation).
  double Quantize(float v) const {
    auto [lo, hi] = Range(type);
    const double q = std::nearbyint(static_cast<double>(v / static_cast<float>(Scale()))) + Zero();
    return std::clamp(q, lo, hi);
  }
  bool SameAs(const QParam& o) const {
    return type == o.type && per_tensor() && o.per_tensor() && Scale() == o.Scale() &&
           static_cast<float>(Scale()) == static_cast<float>(o.Scale()) && Zero() == o.Zero();
  }
};

class QdqFuser {
 public:
  explicit QdqFuser(Graph* g)
      : g_(*g), is_output_(g->values.size(), false), done_(g->nodes.size(), false) {
    for (int v : g_.outputs) is_output_[v] = true;
    auto it = g_.opsets.find("");
    onnx_opset_ = it == g_.opsets.end() ? 13 : it->second;
  }

  int Run() {
    const size_t n = g_.nodes.size();
    for (size_t i = 0; i < n; ++i) {
      if (done_[i]) continue;
      const Node& node = g_.nodes[i];
      if (!node.info.domain.empty() || node.info.attrs.Has(kernels::kFusedName)) continue;
      const std::string& op = node.info.op_type;
      if (op == "Conv" || op == "ConvTranspose")
        TryConv(static_cast<int>(i));
      else if (op == "MatMul")
        TryMatMul(static_cast<int>(i));
      else if (op == "Gemm")
        TryGemm(static_cast<int>(i));
      else if (op == "Add" || op == "Mul")
        TryBinary(static_cast<int>(i));
      else if (op == "AveragePool" || op == "GlobalAveragePool")
        TryPool(static_cast<int>(i));
      else if (op == "Concat")
        TryConcat(static_cast<int>(i));
      else if (kPassThrough.count(op))
        TryPassThrough(static_cast<int>(i));
    }
    if (!fused_) return 0;
    std::vector<Node> kept;
    for (size_t i = 0; i < n; ++i) {
      if (replace_.count(static_cast<int>(i))) {
        for (Node& r : replace_[static_cast<int>(i)]) kept.push_back(std::move(r));
      } else if (!done_[i]) {
        kept.push_back(std::move(g_.nodes[i]));
      }
    }
    g_.nodes = std::move(kept);
    SortAndRebuildUses(&g_);
    return fused_;
  }

 private:
  inline static const std::set<std::string> kPassThrough = {"MaxPool",   "Resize",  "Transpose",
                                                            "Reshape",   "Flatten", "Squeeze",
                                                            "Unsqueeze", "Relu",    "Clip"};

  // The constant behind value v: an initializer or a Constant node's `value`.
  const Tensor* Const(int v) const {
    if (v < 0) return nullptr;
    const Value& val = g_.values[v];
    if (val.constant) return val.constant.get();
    if (val.producer >= 0) {
      const Node& p = g_.nodes[val.producer];
      if (p.info.op_type == "Constant" && p.info.domain.empty())
        return p.info.attrs.TensorAttr("value");
    }
    return nullptr;
  }
  bool SoleUse(int v) const {
    return v >= 0 && !is_output_[v] && g_.values[v].consumers.size() == 1;
  }
  bool Free(int node) const { return node >= 0 && !done_[node]; }
  int Producer(int v) const { return v < 0 ? -1 : g_.values[v].producer; }
  int SoleConsumer(int v) const { return SoleUse(v) ? g_.values[v].consumers[0] : -1; }

  // Reads the scale and zero point of a DQ or Q node: both constant, scale float32, zero point
  // 8-bit, no blocks. For a DQ, the integer type comes from the zero point, a constant input, or
  // a QuantizeLinear producer; for a Q from the zero point or output_dtype (default uint8).
  bool Read(int ni, bool dq, QParam* p) const {
    if (!Free(ni)) return false;
    const Node& n = g_.nodes[ni];
    if (!n.info.domain.empty() || n.info.op_type != (dq ? "DequantizeLinear" : "QuantizeLinear"))
      return false;
    if (n.inputs.size() < 2 || n.outputs.size() != 1 || n.outputs[0] < 0) return false;
    if (n.info.attrs.Int("block_size", 0) != 0) return false;
    if (!dq && n.info.attrs.Int("precision", 0) != 0) return false;
    if (dq && n.info.attrs.Int("output_dtype", 0) != 0 &&
        n.info.attrs.Int("output_dtype", 0) != static_cast<int64_t>(DataType::kFloat))
      return false;
    p->node = ni;
    p->data = n.inputs[0];
    p->scale = n.inputs[1];
    p->zp = n.inputs.size() > 2 ? n.inputs[2] : -1;
    p->s = Const(p->scale);
    p->z = p->zp >= 0 ? Const(p->zp) : nullptr;
    if (!p->s || !p->s->has_data() || p->s->dtype() != DataType::kFloat || p->s->numel() == 0)
      return false;
    if (p->zp >= 0 && (!p->z || !p->z->has_data() || p->z->numel() != p->s->numel())) return false;
    p->axis = static_cast<int>(n.info.attrs.Int("axis", 1));
    if (p->z) {
      p->type = p->z->dtype();
    } else if (dq) {
      if (const Tensor* c = Const(p->data)) {
        p->type = c->dtype();
      } else if (g_.values[p->data].dtype != DataType::kUndefined) {
        p->type = g_.values[p->data].dtype;
      } else if (int q = Producer(p->data);
                 q >= 0 && g_.nodes[q].info.op_type == "QuantizeLinear" &&
                 g_.nodes[q].info.domain.empty() && g_.nodes[q].inputs.size() < 3) {
        const int64_t odt = g_.nodes[q].info.attrs.Int("output_dtype", 0);
        p->type = odt ? static_cast<DataType>(odt) : DataType::kUInt8;
      }
    } else {
      const int64_t odt = n.info.attrs.Int("output_dtype", 0);
      p->type = odt ? static_cast<DataType>(odt) : DataType::kUInt8;
    }
    return Is8Bit(p->type);
  }

  // The DQ producing v, used only there, per tensor when asked.
  bool DqOf(int v, bool per_tensor, QParam* p) const {
    if (!SoleUse(v) || !Read(Producer(v), true, p)) return false;
    return !per_tensor || p->per_tensor();
  }

  // What follows a compute node's float output: an optional Relu/Clip, then a per-tensor Q.
  struct Tail {
    QParam q;
    int act = -1;
    float lo = -std::numeric_limits<float>::infinity(), hi = std::numeric_limits<float>::infinity();
    std::string act_name;
  };
  bool TailOf(int v, Tail* t) const {
    int c = SoleConsumer(v);
    if (!Free(c)) return false;
    const Node& cn = g_.nodes[c];
    if (cn.info.domain.empty() && (cn.info.op_type == "Relu" || cn.info.op_type == "Clip")) {
      if (cn.inputs.empty() || cn.inputs[0] != v ||
          !ActivationClamp(g_, cn, &t->lo, &t->hi, &t->act_name))
        return false;
      t->act = c;
      c = SoleConsumer(cn.outputs[0]);
    }
    return Read(c, false, &t->q) && t->q.per_tensor();
  }

  int AddConst(Tensor t, const std::string& name) {
    Value v;
    v.name = name;
    v.dtype = t.dtype();
    v.dims.assign(t.shape().begin(), t.shape().end());
    v.has_declared_shape = true;
    v.constant = std::make_shared<const Tensor>(std::move(t));
    g_.values.push_back(std::move(v));
    is_output_.push_back(false);
    return static_cast<int>(g_.values.size()) - 1;
  }
  int ScalarConst(DataType t, double value, const std::string& name) {
    Tensor c = Tensor::Allocate(t, Shape{}).value();
    if (t == DataType::kInt8)
      c.data<int8_t>()[0] = static_cast<int8_t>(value);
    else
      c.data<uint8_t>()[0] = static_cast<uint8_t>(value);
    return AddConst(std::move(c), name);
  }
  // The zero point value of p, created (0 of p's type) when p has none.
  int ZeroPoint(const QParam& p, const std::string& name) {
    return p.zp >= 0 ? p.zp : ScalarConst(p.type, 0, name + "/_outpost_zero_point");
  }

  Node MakeNode(const Node& like, const std::string& op, const std::string& domain, int opset,
                const std::string& from) {
    Node n;
    n.info.name = like.info.name;
    n.info.op_type = op;
    n.info.domain = domain;
    n.info.opset = opset;
    n.info.attrs = like.info.attrs;
    Attribute a;
    a.kind = Attribute::Kind::kString;
    a.s = from;
    n.info.attrs.Set(kQdqFrom, a);
    return n;
  }

  // Commits a fusion: the nodes in `gone` disappear, `out` takes the place of node `at`.
  void Commit(int at, std::vector<int> gone, std::vector<Node> out) {
    for (int i : gone)
      if (i >= 0) done_[i] = true;
    done_[at] = true;
    replace_[at] = std::move(out);
    ++fused_;
  }

  // An integer Clip of `in` into `out` applying the float clamp [lo, hi] before quantization q:
  // exact, since quantization is monotone: Q(clip(v, lo, hi)) = clip(Q(v), Q(lo), Q(hi)).
  Node MakeClamp(const QParam& q, float lo, float hi, const Node& act, const std::string& from,
                 int in, int out) {
    auto [qmin, qmax] = Range(q.type);
    Node clip = MakeNode(act, "Clip", "", std::max(onnx_opset_, 13), from);
    clip.info.attrs = kernels::Attributes();
    Attribute a;
    a.kind = Attribute::Kind::kString;
    a.s = from;
    clip.info.attrs.Set(kQdqFrom, a);
    const std::string name = g_.values[out].name;  // a copy: ScalarConst grows g_.values
    clip.inputs = {
        in, ScalarConst(q.type, std::isinf(lo) ? qmin : q.Quantize(lo), name + "/_outpost_qmin"),
        ScalarConst(q.type, std::isinf(hi) ? qmax : q.Quantize(hi), name + "/_outpost_qmax")};
    clip.outputs = {out};
    return clip;
  }

  // A tail's activation after the integer node that ends `out` (none when the output type's
  // saturation already implies it).
  void AppendClamp(const Tail& t, int y, std::vector<Node>* out, const std::string& from) {
    if (t.act < 0) return;
    Node& last = out->back();
    if (kQuantKernelsClamp &&
        (last.info.op_type == "QLinearConv" || last.info.op_type == "QLinearMatMul" ||
         last.info.op_type == "QGemm")) {
      last.info.attrs.Set(kernels::kFusedMin, FloatAttr(t.lo));
      last.info.attrs.Set(kernels::kFusedMax, FloatAttr(t.hi));
      Attribute a;
      a.kind = Attribute::Kind::kString;
      a.s = t.act_name;
      last.info.attrs.Set(kernels::kFusedName, a);
      return;
    }
    auto [qmin, qmax] = Range(t.q.type);
    if ((std::isinf(t.lo) || t.q.Quantize(t.lo) <= qmin) &&
        (std::isinf(t.hi) || t.q.Quantize(t.hi) >= qmax))
      return;
    const int mid = AddIntermediate(g_.values[y].name + "/_outpost_unclamped");
    out->back().outputs[0] = mid;
    out->push_back(MakeClamp(t.q, t.lo, t.hi, g_.nodes[t.act], t.act_name + " of " + from, mid, y));
  }
  int AddIntermediate(const std::string& name) {
    Value v;
    v.name = name;
    g_.values.push_back(std::move(v));
    is_output_.push_back(false);
    return static_cast<int>(g_.values.size()) - 1;
  }

  // Conv / Gemm bias as int32 with scale x_scale * w_scale[c]: an int32 DQ whose scale is that
  // product (taken as it is), or a float constant / other DQ (quantized, half to even). -1 for no
  // bias; false when the bias cannot be made integer.
  bool IntBias(int b, const QParam& x, const QParam& w, int64_t m, const std::string& name,
               int* out, int* dq_node) {
    *out = -1;
    *dq_node = -1;
    if (b < 0) return true;
    const Tensor* bf = Const(b);
    std::vector<double> vals;
    QParam bq;
    auto bias_scale = [&](int64_t c) {
      return static_cast<double>(static_cast<float>(x.Scale()) * static_cast<float>(w.Scale(c)));
    };
    if (!bf && SoleUse(b) && Free(Producer(b)) &&
        g_.nodes[Producer(b)].info.op_type == "DequantizeLinear") {
      const Node& d = g_.nodes[Producer(b)];
      const Tensor* bi = Const(d.inputs[0]);
      const Tensor* bs = d.inputs.size() > 1 ? Const(d.inputs[1]) : nullptr;
      const Tensor* bz = d.inputs.size() > 2 ? Const(d.inputs[2]) : nullptr;
      if (!bi || !bi->has_data() || bi->dtype() != DataType::kInt32 || bi->numel() != m || !bs ||
          bs->dtype() != DataType::kFloat || d.info.attrs.Int("block_size", 0) != 0)
        return false;
      if (d.inputs.size() > 2 && d.inputs[2] >= 0 && !bz) return false;
      if ((bs->numel() != 1 && bs->numel() != m) || !bs->has_data()) return false;
      if (bz && (bz->dtype() != DataType::kInt32 || !bz->has_data() ||
                 (bz->numel() != 1 && bz->numel() != m)))
        return false;
      bool exact = !bz || std::all_of(bz->data<int32_t>(), bz->data<int32_t>() + bz->numel(),
                                      [](int32_t z) { return z == 0; });
      for (int64_t c = 0; exact && c < m; ++c)
        exact = ReadDouble(*bs, bs->numel() == 1 ? 0 : c) == bias_scale(c);
      *dq_node = Producer(b);
      if (exact) {
        *out = d.inputs[0];
        return true;
      }
      for (int64_t c = 0; c < m; ++c)
        vals.push_back(
            (static_cast<double>(bi->data<int32_t>()[c]) -
             (bz ? static_cast<double>(bz->data<int32_t>()[bz->numel() == 1 ? 0 : c]) : 0.0)) *
            ReadDouble(*bs, bs->numel() == 1 ? 0 : c));
    } else if (bf && bf->has_data() && bf->dtype() == DataType::kFloat && bf->numel() == m) {
      for (int64_t c = 0; c < m; ++c) vals.push_back(bf->data<float>()[c]);
    } else {
      return false;
    }
    Tensor t = Tensor::Allocate(DataType::kInt32, Shape{m}).value();
    for (int64_t c = 0; c < m; ++c) {
      const double q = std::nearbyint(vals[c] / bias_scale(c));
      if (!(std::fabs(q) < 2147483647.0)) return false;
      t.data<int32_t>()[c] = static_cast<int32_t>(q);
    }
    *out = AddConst(std::move(t), name + "/_outpost_bias_int32");
    return true;
  }

  // Weight DQ: constant 8-bit data, per tensor or per axis `axis` with `m` scales.
  bool WeightDq(int v, int axis, int64_t m, QParam* w) const {
    if (!DqOf(v, false, w)) return false;
    const Tensor* c = Const(w->data);
    if (!c || !c->has_data() || !Is8Bit(c->dtype())) return false;
    if (w->per_tensor()) return true;
    const int a = w->axis < 0 ? w->axis + c->rank() : w->axis;
    return a == axis && w->s->rank() == 1 && w->s->numel() == m;
  }

  // The constant integer tensor behind a DQ that produces v (before its parameters are checked).
  const Tensor* WeightConst(int v) const {
    QParam probe;
    if (!SoleUse(v) || !Read(Producer(v), true, &probe)) return nullptr;
    return Const(probe.data);
  }

  // Commits integer node q for compute node i: it writes the tail's Q output, followed by the
  // tail's activation as a clamp when needed; `gone` are the other nodes it replaces.
  void Emit(int i, Node q, const Tail& t, const std::string& from, std::vector<int> gone) {
    q.outputs = {g_.nodes[t.q.node].outputs[0]};
    std::vector<Node> out;
    out.push_back(std::move(q));
    AppendClamp(t, out.back().outputs[0], &out, from);
    Commit(i, std::move(gone), std::move(out));
  }

  std::string From(const std::string& op, const Tail& t) const {
    return op + (t.act >= 0 ? "+" + t.act_name : "");
  }

  // Conv -> QLinearConv (weights [M, C/group, k...], per-channel on axis 0); ConvTranspose ->
  // ai.outpost QLinearConvTranspose (weights [C, M/group, k...], per-channel on axis 1 with
  // group 1 only, one zero point).
  void TryConv(int i) {
    const Node& n = g_.nodes[i];
    const bool transposed = n.info.op_type == "ConvTranspose";
    if (n.inputs.size() < 2 || n.outputs.size() != 1) return;
    if (transposed && !kernels::FindOp("ai.outpost", "QLinearConvTranspose", 1)) return;
    QParam x, w;
    Tail t;
    if (!DqOf(n.inputs[0], true, &x)) return;
    const Tensor* wc = WeightConst(n.inputs[1]);
    if (!wc || wc->rank() < 3) return;
    const int64_t group = n.info.attrs.Int("group", 1);
    const int64_t m = transposed ? wc->dim(1) * group : wc->dim(0);
    if (!WeightDq(n.inputs[1], transposed ? 1 : 0, transposed ? wc->dim(1) : m, &w)) return;
    if (transposed && !w.per_tensor() &&
        (group != 1 || (w.z && std::any_of(w.z->data<int8_t>(), w.z->data<int8_t>() + w.z->numel(),
                                           [&](int8_t z) { return z != w.z->data<int8_t>()[0]; }))))
      return;
    if (!TailOf(n.outputs[0], &t)) return;
    int bias = -1, bias_dq = -1;
    if (!IntBias(n.inputs.size() > 2 ? n.inputs[2] : -1, x, w, m, n.info.name, &bias, &bias_dq))
      return;
    const std::string from = From(n.info.op_type, t);
    Node q = transposed ? MakeNode(n, "QLinearConvTranspose", "ai.outpost", 1, from)
                        : MakeNode(n, "QLinearConv", "", std::max(onnx_opset_, 10), from);
    q.inputs = {
        x.data, x.scale, x.zp, w.data, w.scale, w.zp, t.q.scale, ZeroPoint(t.q, n.info.name), bias};
    Emit(i, std::move(q), t, from, {x.node, w.node, bias_dq, t.act, t.q.node});
  }

  void TryMatMul(int i) {
    const Node& n = g_.nodes[i];
    if (n.inputs.size() != 2 || n.outputs.size() != 1) return;
    QParam a, b;
    Tail t;
    if (!DqOf(n.inputs[0], true, &a) || n.inputs[0] == n.inputs[1]) return;
    // B: a constant weight (per tensor or per column), or an activation (per tensor).
    if (const Tensor* bc = WeightConst(n.inputs[1]); bc && bc->has_data()) {
      if (bc->rank() < 2 || !WeightDq(n.inputs[1], bc->rank() - 1, bc->dim(bc->rank() - 1), &b))
        return;
    } else if (!DqOf(n.inputs[1], true, &b)) {
      return;
    }
    if (!TailOf(n.outputs[0], &t)) return;
    const std::string from = From("MatMul", t);
    Node q = MakeNode(n, "QLinearMatMul", "", std::max(onnx_opset_, 10), from);
    q.inputs = {a.data,  a.scale, a.zp,      b.data,
                b.scale, b.zp,    t.q.scale, ZeroPoint(t.q, n.info.name)};
    Emit(i, std::move(q), t, from, {a.node, b.node, t.act, t.q.node});
  }

  // Gemm -> com.microsoft QGemm, only when a QGemm kernel is registered (its definition in ONNX
  // Runtime: A, a_scale, a_zp, B, b_scale, b_zp, C int32, y_scale, y_zp; alpha, transA, transB).
  void TryGemm(int i) {
    if (!kernels::FindOp("com.microsoft", "QGemm", 1)) return;
    const Node& n = g_.nodes[i];
    if (n.inputs.size() < 2 || n.outputs.size() != 1) return;
    if (n.inputs.size() > 2 && n.inputs[2] >= 0 && n.info.attrs.Float("beta", 1.f) != 1.f) return;
    const bool tb = n.info.attrs.Int("transB", 0) != 0;
    QParam a, b;
    Tail t;
    if (!DqOf(n.inputs[0], true, &a)) return;
    const Tensor* bc = WeightConst(n.inputs[1]);
    if (!bc || bc->rank() != 2) return;
    const int64_t nn = tb ? bc->dim(0) : bc->dim(1);
    if (!WeightDq(n.inputs[1], tb ? 0 : 1, nn, &b)) return;
    if (!TailOf(n.outputs[0], &t)) return;
    int bias = -1, bias_dq = -1;
    if (!IntBias(n.inputs.size() > 2 ? n.inputs[2] : -1, a, b, nn, n.info.name, &bias, &bias_dq))
      return;
    const std::string from = From("Gemm", t);
    Node q = MakeNode(n, "QGemm", "com.microsoft", 1, from);
    q.inputs = {
        a.data, a.scale, a.zp, b.data, b.scale, b.zp, bias, t.q.scale, ZeroPoint(t.q, n.info.name)};
    Emit(i, std::move(q), t, from, {a.node, b.node, bias_dq, t.act, t.q.node});
  }

  void TryBinary(int i) {
    const Node& n = g_.nodes[i];
    if (n.inputs.size() != 2 || n.outputs.size() != 1 || n.inputs[0] == n.inputs[1]) return;
    QParam a, b;
    Tail t;
    if (!DqOf(n.inputs[0], true, &a) || !DqOf(n.inputs[1], true, &b) || !TailOf(n.outputs[0], &t))
      return;
    if (a.type != b.type || a.type != t.q.type) return;
    const std::string& op = n.info.op_type;
    const std::string from = From(op, t);
    Node q = MakeNode(n, "QLinear" + op, "com.microsoft", 1, from);
    q.inputs = {a.data, a.scale, a.zp, b.data, b.scale, b.zp, t.q.scale, t.q.zp};
    Emit(i, std::move(q), t, from, {a.node, b.node, t.act, t.q.node});
  }

  void TryPool(int i) {
    const Node& n = g_.nodes[i];
    if (n.inputs.size() != 1 || n.outputs.size() != 1) return;
    QParam x;
    Tail t;
    if (!DqOf(n.inputs[0], true, &x) || !TailOf(n.outputs[0], &t) || t.act >= 0 ||
        x.type != t.q.type)
      return;
    const std::string& op = n.info.op_type;
    Node q = MakeNode(n, "QLinear" + op, "com.microsoft", 1, op);
    q.inputs = {x.data, x.scale, x.zp, t.q.scale, t.q.zp};
    Emit(i, std::move(q), t, op, {x.node, t.q.node});
  }

  void TryConcat(int i) {
    const Node& n = g_.nodes[i];
    if (n.inputs.empty() || n.outputs.size() != 1 || !n.info.attrs.Has("axis")) return;
    std::set<int> seen;
    std::vector<QParam> xs(n.inputs.size());
    Tail t;
    for (size_t k = 0; k < n.inputs.size(); ++k)
      if (!seen.insert(n.inputs[k]).second || !DqOf(n.inputs[k], true, &xs[k])) return;
    if (!TailOf(n.outputs[0], &t) || t.act >= 0) return;
    for (const QParam& x : xs)
      if (x.type != t.q.type) return;
    Node q = MakeNode(n, "QLinearConcat", "com.microsoft", 1, "Concat");
    q.inputs = {t.q.scale, ZeroPoint(t.q, n.info.name)};
    std::vector<int> gone = {t.q.node};
    for (size_t k = 0; k < xs.size(); ++k) {
      q.inputs.push_back(xs[k].data);
      q.inputs.push_back(xs[k].scale);
      q.inputs.push_back(ZeroPoint(xs[k], n.info.name + "/" + std::to_string(k)));
      gone.push_back(xs[k].node);
    }
    Emit(i, std::move(q), t, "Concat", gone);
  }

  // Ops that move or select values run on the integer tensor when DQ and Q agree; Relu and Clip
  // become an integer Clip with quantized bounds.
  void TryPassThrough(int i) {
    const Node& n = g_.nodes[i];
    const std::string& op = n.info.op_type;
    if (n.inputs.empty() || n.outputs.empty() || n.outputs[0] < 0) return;
    for (size_t k = 1; k < n.outputs.size(); ++k)
      if (n.outputs[k] >= 0) return;  // MaxPool's Indices
    if (op == "Resize" && n.info.attrs.String("mode", "nearest") != "nearest") return;
    QParam x, y;
    if (!DqOf(n.inputs[0], true, &x)) return;
    const int c = SoleConsumer(n.outputs[0]);
    if (!Read(c, false, &y) || !x.SameAs(y)) return;
    const int out_v = g_.nodes[c].outputs[0];
    std::vector<Node> out;
    if (op == "Relu" || op == "Clip") {
      float lo, hi;
      std::string name;
      if (!ActivationClamp(g_, n, &lo, &hi, &name)) return;
      out.push_back(MakeClamp(y, lo, hi, n, op, x.data, out_v));
    } else {
      Node p = MakeNode(n, op, "", n.info.opset, op);
      p.inputs = n.inputs;
      p.inputs[0] = x.data;
      p.outputs = n.outputs;
      p.outputs[0] = out_v;
      out.push_back(std::move(p));
    }
    Commit(i, {x.node, c}, std::move(out));
  }

  Graph& g_;
  std::vector<bool> is_output_;
  std::vector<bool> done_;
  std::map<int, std::vector<Node>> replace_;
  int onnx_opset_ = 13;
  int fused_ = 0;
};

}  // namespace

namespace {

bool IsDq(const Node& n) { return n.info.domain.empty() && n.info.op_type == "DequantizeLinear"; }

// ONNX Runtime's quantizer writes one DequantizeLinear per tensor, shared by all its consumers
// (a residual input feeds a Conv and an Add). Each fusion needs a DQ of its own, so a shared DQ
// is first copied once per consumer (as ONNX Runtime does before its own QDQ fusions). Returns,
// per original DQ output, the values of its copies.
std::map<int, std::vector<int>> GiveEachConsumerItsDq(Graph* g) {
  std::map<int, std::vector<int>> copies;
  std::vector<bool> is_output(g->values.size(), false);
  for (int v : g->outputs) is_output[v] = true;
  const size_t n = g->nodes.size();
  for (size_t i = 0; i < n; ++i) {
    if (!IsDq(g->nodes[i]) || g->nodes[i].outputs.size() != 1 || g->nodes[i].outputs[0] < 0)
      continue;
    const int v = g->nodes[i].outputs[0];
    std::vector<int> users = g->values[v].consumers;
    std::sort(users.begin(), users.end());
    users.erase(std::unique(users.begin(), users.end()), users.end());
    // The original keeps the first consumer, or the graph output.
    for (size_t k = is_output[v] ? 0 : 1; k < users.size(); ++k) {
      Value copy;
      copy.name = g->values[v].name + "/_outpost_dq" + std::to_string(k);
      g->values.push_back(std::move(copy));
      const int nv = static_cast<int>(g->values.size()) - 1;
      Node dq = g->nodes[i];
      dq.outputs = {nv};
      g->nodes.push_back(std::move(dq));
      for (int& in : g->nodes[users[k]].inputs)
        if (in == v) in = nv;
      copies[v].push_back(nv);
    }
  }
  if (!copies.empty()) SortAndRebuildUses(g);
  return copies;
}

// Undoes the copies that no fusion took: the DQs of one original that are left are merged back
// into one (the first), so an unfused consumer costs no extra dequantization.
void MergeUnusedDqCopies(Graph* g, const std::map<int, std::vector<int>>& copies) {
  std::vector<bool> drop(g->nodes.size(), false);
  bool any = false;
  for (const auto& [v, list] : copies) {
    std::vector<int> alive = {v};
    alive.insert(alive.end(), list.begin(), list.end());
    int keep = -1;
    for (int x : alive) {
      const int p = g->values[x].producer;
      if (p < 0 || !IsDq(g->nodes[p])) continue;
      if (keep < 0) {
        keep = x;
        continue;
      }
      for (int c : g->values[x].consumers)
        for (int& in : g->nodes[c].inputs)
          if (in == x) in = keep;
      drop[p] = true;
      any = true;
    }
  }
  if (!any) return;
  std::vector<Node> kept;
  for (size_t i = 0; i < g->nodes.size(); ++i)
    if (!drop[i]) kept.push_back(std::move(g->nodes[i]));
  g->nodes = std::move(kept);
  SortAndRebuildUses(g);
}

}  // namespace

int FuseQdq(Graph* g) {
  const auto copies = GiveEachConsumerItsDq(g);
  const int fused = QdqFuser(g).Run();
  MergeUnusedDqCopies(g, copies);
  return fused;
}

}  // namespace outpost
