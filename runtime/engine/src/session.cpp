// Session: load -> infer/fold -> place -> plan memory -> run.
#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <set>

#include "fuse.h"
#include "onnx_loader.h"
#include "outpost/core/log.h"
#include "outpost/core/metrics.h"
#include "outpost/engine/session.h"
#include "outpost/kernels/fusion.h"
#include "plan.h"

namespace outpost::engine {
namespace {

namespace fs = std::filesystem;
using kernels::Backend;
using kernels::OutputSink;

double NowMs() {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

bool Deterministic(const std::string& op) {
  static const std::set<std::string> kRandom = {"RandomNormal", "RandomUniform", "RandomNormalLike",
                                                "RandomUniformLike", "Multinomial", "Bernoulli"};
  return !kRandom.count(op);
}

// Hands out meta tensors (inference) or owned host tensors (constant folding).
class CollectSink final : public OutputSink {
 public:
  CollectSink(size_t n, bool meta) : out(n), meta_(meta) {}
  Expected<Tensor*> Allocate(int i, DataType dt, const Shape& s) override {
    if (meta_) {
      out[i] = Tensor::Meta(dt, s);
    } else {
      OP_ASSIGN_OR_RETURN(out[i], Tensor::Allocate(dt, s));
    }
    return &out[i];
  }
  std::vector<Tensor> out;

 private:
  bool meta_;
};

struct ExecState {
  std::vector<std::shared_ptr<kernels::Buffer>> arenas;
  std::vector<Tensor> tensors;                       // per planned value
  std::vector<std::shared_ptr<kernels::Buffer>> dynamic_buffers;
  std::vector<const Tensor*> ins;  // the current node's inputs (scratch reused across nodes)
};

// What a node computes in, for `outpost inspect`: from its op and its inputs' and outputs' types.
std::string Precision(const Node& n, const std::vector<Tensor>& ins, const std::vector<Tensor>& outs) {
  static const std::set<std::string> kConvert = {"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "Cast"};
  const std::string& op = n.info.op_type;
  if (kConvert.count(op)) return "convert";
  if (op.rfind("QLinear", 0) == 0 || op == "QGemm" || op == "MatMulInteger" || op == "ConvInteger")
    return "integer";
  auto small_int = [](DataType t) {
    return t == DataType::kInt8 || t == DataType::kUInt8 || t == DataType::kInt4 || t == DataType::kUInt4;
  };
  if (!ins.empty() && ins[0].defined() && small_int(ins[0].dtype())) return "integer";
  for (const auto* list : {&ins, &outs})
    for (const Tensor& t : *list)
      if (t.defined() && IsFloating(t.dtype())) return "float";
  return "other";
}

Counter& DynamicAllocs() {
  static Counter& c = MetricsRegistry::Global().GetCounter(
      "outpost_engine_dynamic_allocations_total",
      "Tensors allocated at run time because their shape was not known when planning");
  return c;
}

class SessionImpl final : public Session {
 public:
  SessionImpl(Graph g, SessionOptions o) : graph_(std::move(g)), opts_(std::move(o)) {}

  Status Init() {
    double t0 = NowMs();
    cpu_ = opts_.cpu ? opts_.cpu : std::shared_ptr<Backend>(kernels::CreateCpuBackend(opts_.backend_options));
    if (opts_.backend == "opencl") {
      if (opts_.accelerator) {
        accel_ = opts_.accelerator;
      } else {
        auto b = kernels::CreateOpenClBackend(opts_.backend_options);
        if (!b.ok()) return b.status();
        accel_ = std::shared_ptr<Backend>(std::move(b).value());
      }
    } else if (opts_.backend != "cpu") {
      return InvalidArgument("unknown backend '" + opts_.backend + "' (expected cpu or opencl)");
    }
    for (int id : graph_.inputs) inputs_.push_back(Info(id));
    for (int id : graph_.outputs) outputs_.push_back(Info(id));
    for (const Backend* b : {cpu_.get(), accel_.get()})
      if (b) report_.backends.push_back(b->name() + ": " + b->description());
    report_.opsets = graph_.opsets;
    report_.producer = graph_.producer;
    report_.node_count = static_cast<int>(graph_.nodes.size());
    for (auto& v : graph_.values)
      if (v.constant) report_.constant_bytes += v.constant->nbytes();
    // Plan once at load: with the declared shapes, symbolic dimensions bound to 1. This infers
    // every type, checks every node is supported, and warms the plan for static models.
    std::vector<Shape> shapes;
    for (int id : graph_.inputs) {
      const Value& v = graph_.values[id];
      if (v.dtype == DataType::kUndefined || !v.has_declared_shape) {
        report_.shapes_static = false;
        if (v.dtype == DataType::kUndefined)
          return InvalidModel("graph input '" + v.name + "' has no declared type");
      }
      std::vector<int64_t> d;
      for (int64_t x : v.dims) {
        if (x < 0) report_.shapes_static = false;
        d.push_back(x < 0 ? 1 : x);
      }
      OP_ASSIGN_OR_RETURN(Shape s, Shape::From(d));
      shapes.push_back(s);
    }
    OP_ASSIGN_OR_RETURN(auto plan, BuildPlan(shapes, /*fill_report=*/true));
    if (report_.shapes_static) {
      std::lock_guard<std::mutex> lk(mu_);
      plans_.push_back(std::move(plan));
    }
    report_.load_ms = NowMs() - t0;
    return Status::Ok();
  }

  const std::vector<ValueInfo>& inputs() const override { return inputs_; }
  const std::vector<ValueInfo>& outputs() const override { return outputs_; }
  const LoadReport& report() const override { return report_; }
  std::vector<std::pair<std::string, std::string>> ValueShapes() const override { return value_shapes_; }
  std::vector<std::string> BackendsUsed() const override {
    std::lock_guard<std::mutex> lk(mu_);
    return last_backends_;
  }
  std::vector<OpProfile> Profile() const override {
    std::lock_guard<std::mutex> lk(mu_);
    std::vector<OpProfile> out;
    for (auto& [key, p] : profile_) out.push_back(p);
    std::sort(out.begin(), out.end(), [](auto& a, auto& b) { return a.total_ms > b.total_ms; });
    return out;
  }

  Expected<std::vector<Tensor>> Run(const std::vector<std::pair<std::string, Tensor>>& given) override;

 private:
  ValueInfo Info(int id) const {
    const Value& v = graph_.values[id];
    return ValueInfo{v.name, v.dtype, v.dims, v.dim_names};
  }
  Expected<std::shared_ptr<Plan>> BuildPlan(const std::vector<Shape>& input_shapes, bool fill_report);
  Status InferAndFold(Plan* p, std::vector<bool>* dynamic_node, std::vector<bool>* folded);
  Status PlaceAndPrepare(Plan* p, const std::vector<bool>& dynamic_node, const std::vector<bool>& folded,
                         bool fill_report);
  void PlanMemory(Plan* p);
  Expected<std::shared_ptr<Plan>> PlanFor(const std::vector<Shape>& shapes);
  Expected<std::unique_ptr<ExecState>> AcquireState(const std::shared_ptr<Plan>& p);
  void ReleaseState(const std::shared_ptr<Plan>& p, std::unique_ptr<ExecState> st);
  Status Execute(Plan& p, ExecState& st);
  void Record(const Node& n, const std::string& backend, double ms);

  Graph graph_;
  SessionOptions opts_;
  std::shared_ptr<Backend> cpu_;
  std::shared_ptr<Backend> accel_;
  std::vector<ValueInfo> inputs_, outputs_;
  LoadReport report_;
  std::vector<std::pair<std::string, std::string>> value_shapes_;

  mutable std::mutex mu_;
  std::vector<std::shared_ptr<Plan>> plans_;  // most recent last; a few kept
  std::map<const Plan*, std::vector<std::unique_ptr<ExecState>>> free_states_;
  std::vector<std::string> last_backends_;
  std::map<std::pair<std::string, std::string>, OpProfile> profile_;  // guarded by mu_
  std::mutex accel_mu_;  // runs that touch the accelerator are serialised (one queue)
};

Status SessionImpl::InferAndFold(Plan* p, std::vector<bool>* dynamic_node, std::vector<bool>* folded) {
  std::vector<std::string> unsupported;
  Status first_error;
  for (size_t ni = 0; ni < graph_.nodes.size(); ++ni) {
    const Node& n = graph_.nodes[ni];
    std::vector<const Tensor*> ins(n.inputs.size(), nullptr);
    std::vector<Tensor> metas(n.inputs.size());
    bool all_const = true, dyn = false;
    for (size_t k = 0; k < n.inputs.size(); ++k) {
      int v = n.inputs[k];
      if (v < 0) continue;
      PlannedValue& pv = p->values[v];
      if (!pv.known) {
        dyn = true;
        continue;
      }
      if (pv.constant) {
        ins[k] = pv.constant.get();
      } else {
        all_const = false;
        metas[k] = Tensor::Meta(pv.dtype, pv.shape);
        ins[k] = &metas[k];
      }
    }
    if (dyn) {
      (*dynamic_node)[ni] = true;
      continue;
    }
    std::unique_ptr<bool[]> wanted(new bool[n.outputs.size() + 1]);
    for (size_t k = 0; k < n.outputs.size(); ++k) wanted[k] = n.outputs[k] >= 0;
    const kernels::OpDef* def = kernels::FindOp(n.info.domain, n.info.op_type, n.info.opset);
    // Shape and Size read only the input's shape, known here: fold them too, so that shape
    // arithmetic downstream (Gather, Concat, Reshape) folds or becomes static.
    const bool shape_only = n.info.domain.empty() && (n.info.op_type == "Shape" || n.info.op_type == "Size");
    bool fold = opts_.fold_constants && (all_const || shape_only) && Deterministic(n.info.op_type);
    CollectSink sink(n.outputs.size(), !fold);
    kernels::KernelContext ctx(n.info, ins, static_cast<int>(n.outputs.size()),
                               {wanted.get(), n.outputs.size()}, &sink, cpu_->pool(), !fold);
    Status st = def->fn(ctx);
    if (!st.ok()) {
      (*dynamic_node)[ni] = true;
      if (st.code() == Code::kUnavailable) continue;  // data-dependent shape: planned at run time
      std::string where = "node '" + n.info.name + "' (" + n.info.op_type + ", opset " + std::to_string(n.info.opset) + ")";
      if (st.code() == Code::kUnsupported) {
        unsupported.push_back(st.message());
      } else if (first_error.ok()) {
        first_error = Status(st.code(), st.message().find(n.info.name) == std::string::npos ? where + ": " + st.message() : st.message());
      }
      continue;
    }
    (*folded)[ni] = fold;
    for (size_t k = 0; k < n.outputs.size(); ++k) {
      int v = n.outputs[k];
      if (v < 0) continue;
      PlannedValue& pv = p->values[v];
      if (!sink.out[k].defined()) {
        if (first_error.ok())
          first_error = Internal("node '" + n.info.name + "' (" + n.info.op_type + ") did not produce output " + std::to_string(k));
        continue;
      }
      pv.dtype = sink.out[k].dtype();
      pv.shape = sink.out[k].shape();
      pv.known = true;
      if (fold) pv.constant = std::make_shared<const Tensor>(std::move(sink.out[k]));
    }
  }
  if (!unsupported.empty()) {
    std::string msg = std::to_string(unsupported.size()) + " node(s) cannot run:";
    for (size_t i = 0; i < unsupported.size() && i < 50; ++i) msg += "\n  " + unsupported[i];
    return Unsupported(msg);
  }
  return first_error;
}

Status SessionImpl::PlaceAndPrepare(Plan* p, const std::vector<bool>& dynamic_node,
                                    const std::vector<bool>& folded, bool fill_report) {
  // Which planned value holds graph value v on backend b (creating a mirror + copy if needed).
  // Only mirrors are recorded here; a value's home is p->values[v].backend.
  std::map<std::pair<int, Backend*>, int> where;
  auto on_backend = [&](int v, Backend* b) -> int {
    PlannedValue& home = p->values[v];
    if (home.constant || home.backend == b) return v;
    auto it = where.find({v, b});
    if (it != where.end()) return it->second;
    PlannedValue mirror = home;
    mirror.backend = b;
    mirror.graph_input = false;
    int id = static_cast<int>(p->values.size());
    p->values.push_back(mirror);
    Step copy;
    copy.kind = Step::kCopy;
    copy.backend = b;
    copy.inputs = {v};
    copy.outputs = {id};
    p->steps.push_back(std::move(copy));
    where[{v, b}] = id;
    if (fill_report) report_.copies_inserted++;
    return id;
  };
  std::set<std::string> used;
  for (size_t ni = 0; ni < graph_.nodes.size(); ++ni) {
    const Node& n = graph_.nodes[ni];
    const std::string fused = n.info.attrs.String(kernels::kFusedName, "");
    NodePlacement np{n.info.name, fused.empty() ? n.info.op_type : n.info.op_type + "+" + fused, "cpu", "", "",
                     n.info.attrs.String(kQdqFrom, "")};
    if (folded[ni]) {
      np.backend = "folded";
      if (fill_report) report_.placement.push_back(np);
      continue;
    }
    std::vector<const Tensor*> ins(n.inputs.size(), nullptr), outs(n.outputs.size(), nullptr);
    std::vector<Tensor> in_meta(n.inputs.size()), out_meta(n.outputs.size());
    for (size_t k = 0; k < n.inputs.size(); ++k) {
      int v = n.inputs[k];
      if (v < 0 || !p->values[v].known) continue;
      const PlannedValue& pv = p->values[v];
      in_meta[k] = pv.constant ? *pv.constant : Tensor::Meta(pv.dtype, pv.shape);
      ins[k] = &in_meta[k];
    }
    for (size_t k = 0; k < n.outputs.size(); ++k) {
      int v = n.outputs[k];
      if (v < 0) continue;  // unused output: null tells the backend not to produce it
      // Outputs of data-dependent nodes have an undefined type until run time.
      if (p->values[v].known) out_meta[k] = Tensor::Meta(p->values[v].dtype, p->values[v].shape);
      outs[k] = &out_meta[k];
    }
    np.precision = Precision(n, in_meta, out_meta);
    Backend* chosen = cpu_.get();
    std::unique_ptr<kernels::PreparedNode> prepared;
    if (accel_) {
      std::string why;
      if (dynamic_node[ni]) {
        np.why = "shape known only at run time";
      } else if (accel_->SupportsOp(n.info, ins, outs, &why)) {
        auto pr = accel_->Prepare(n.info, ins, outs);
        if (pr.ok()) {
          chosen = accel_.get();
          prepared = std::move(pr).value();
        } else {
          np.why = "prepare failed: " + pr.status().message();
          OP_LOG_WARN("{} node '{}' falls back to cpu: {}", accel_->name(), n.info.name, pr.status().ToString());
          MetricsRegistry::Global()
              .GetCounter("outpost_engine_backend_fallback_total", "Nodes moved to the CPU because the preferred backend failed to prepare them",
                          {{"backend", accel_->name()}})
              .Inc();
        }
      } else {
        np.why = why;
      }
    }
    if (!prepared) {
      OP_ASSIGN_OR_RETURN(prepared, cpu_->Prepare(n.info, ins, outs));
    }
    np.backend = chosen->name();
    used.insert(chosen->name());
    if (fill_report) report_.placement.push_back(np);
    Step step;
    step.kind = Step::kNode;
    step.node = static_cast<int>(ni);
    step.backend = chosen;
    step.prepared = std::move(prepared);
    for (int v : n.inputs) step.inputs.push_back(v < 0 ? -1 : on_backend(v, chosen));
    for (int v : n.outputs) {
      step.outputs.push_back(v);
      if (v < 0) continue;
      p->values[v].backend = chosen;
    }
    p->steps.push_back(std::move(step));
  }
  for (int v : graph_.outputs) p->output_values.push_back(on_backend(v, cpu_.get()));
  p->backends_used.assign(used.begin(), used.end());
  p->uses_accelerator = accel_ && used.count(accel_->name());
  return Status::Ok();
}

void SessionImpl::PlanMemory(Plan* p) {
  int nsteps = static_cast<int>(p->steps.size());
  for (int s = 0; s < nsteps; ++s) {
    for (int v : p->steps[s].outputs)
      if (v >= 0) p->values[v].def_step = s;
    for (int v : p->steps[s].inputs)
      if (v >= 0) p->values[v].last_step = std::max(p->values[v].last_step, s);
  }
  for (int v : p->output_values) p->values[v].last_step = nsteps;
  std::map<Backend*, std::vector<int>> by_backend;
  for (size_t v = 0; v < p->values.size(); ++v) {
    PlannedValue& pv = p->values[v];
    if (!pv.known || pv.constant || pv.graph_input || pv.def_step < 0 || pv.dtype == DataType::kString) continue;
    pv.bytes = (pv.shape.numel() * DataTypeSize(pv.dtype) + 63) / 64 * 64;
    if (pv.last_step < pv.def_step) pv.last_step = pv.def_step;  // produced but unused
    pv.planned = true;
    by_backend[pv.backend].push_back(static_cast<int>(v));
  }
  for (auto& [b, ids] : by_backend) {
    // Greedy by size (largest first), lowest offset that does not overlap a live value.
    std::sort(ids.begin(), ids.end(), [&](int a, int c) { return p->values[a].bytes > p->values[c].bytes; });
    std::vector<int> placed;
    size_t peak = 0;
    for (int v : ids) {
      PlannedValue& pv = p->values[v];
      std::vector<std::pair<size_t, size_t>> busy;
      for (int q : placed) {
        const PlannedValue& o = p->values[q];
        if (o.def_step <= pv.last_step && pv.def_step <= o.last_step) busy.push_back({o.offset, o.offset + o.bytes});
      }
      std::sort(busy.begin(), busy.end());
      size_t off = 0;
      for (auto& [b0, b1] : busy) {
        if (off + pv.bytes <= b0) break;
        off = std::max(off, b1);
      }
      pv.offset = off;
      peak = std::max(peak, off + pv.bytes);
      placed.push_back(v);
    }
    p->arena_backends.push_back(b);
    p->arena_bytes.push_back(peak);
  }
}

Expected<std::shared_ptr<Plan>> SessionImpl::BuildPlan(const std::vector<Shape>& input_shapes, bool fill_report) {
  auto p = std::make_shared<Plan>();
  p->input_shapes = input_shapes;
  p->values.resize(graph_.values.size());
  for (size_t v = 0; v < graph_.values.size(); ++v) {
    const Value& gv = graph_.values[v];
    PlannedValue& pv = p->values[v];
    pv.graph_value = static_cast<int>(v);
    pv.backend = cpu_.get();
    if (gv.constant) {
      pv.constant = gv.constant;
      pv.dtype = gv.constant->dtype();
      pv.shape = gv.constant->shape();
      pv.known = true;
    }
  }
  for (size_t i = 0; i < graph_.inputs.size(); ++i) {
    PlannedValue& pv = p->values[graph_.inputs[i]];
    pv.dtype = graph_.values[graph_.inputs[i]].dtype;
    pv.shape = input_shapes[i];
    pv.known = true;
    pv.graph_input = true;
    p->input_values.push_back(graph_.inputs[i]);
  }
  std::vector<bool> dynamic_node(graph_.nodes.size(), false), folded(graph_.nodes.size(), false);
  OP_RETURN_IF_ERROR(InferAndFold(p.get(), &dynamic_node, &folded));
  OP_RETURN_IF_ERROR(PlaceAndPrepare(p.get(), dynamic_node, folded, fill_report));
  PlanMemory(p.get());
  if (fill_report) {
    report_.folded_nodes = static_cast<int>(std::count(folded.begin(), folded.end(), true));
    report_.planned_peak_bytes = 0;
    for (size_t b : p->arena_bytes) report_.planned_peak_bytes += b;
    for (size_t v = 0; v < graph_.values.size(); ++v) {
      const PlannedValue& pv = p->values[v];
      std::string desc = pv.known ? Tensor::Meta(pv.dtype, pv.shape).Describe() : "dynamic";
      if (pv.constant) desc += " (constant)";
      value_shapes_.push_back({graph_.values[v].name, desc});
    }
  }
  return p;
}

Expected<std::shared_ptr<Plan>> SessionImpl::PlanFor(const std::vector<Shape>& shapes) {
  {
    std::lock_guard<std::mutex> lk(mu_);
    for (auto& p : plans_)
      if (p->input_shapes == shapes) return p;
  }
  OP_ASSIGN_OR_RETURN(auto plan, BuildPlan(shapes, false));
  MetricsRegistry::Global().GetCounter("outpost_engine_replans_total", "Plans built at run time for new input shapes").Inc();
  std::lock_guard<std::mutex> lk(mu_);
  plans_.push_back(plan);
  if (plans_.size() > 4) {
    free_states_.erase(plans_.front().get());
    plans_.erase(plans_.begin());
  }
  return plan;
}

Expected<std::unique_ptr<ExecState>> SessionImpl::AcquireState(const std::shared_ptr<Plan>& p) {
  {
    std::lock_guard<std::mutex> lk(mu_);
    auto& v = free_states_[p.get()];
    if (!v.empty()) {
      auto st = std::move(v.back());
      v.pop_back();
      return st;
    }
  }
  auto st = std::make_unique<ExecState>();
  st->tensors.resize(p->values.size());
  std::map<Backend*, std::shared_ptr<kernels::Buffer>> arena;
  for (size_t i = 0; i < p->arena_backends.size(); ++i) {
    OP_ASSIGN_OR_RETURN(auto buf, p->arena_backends[i]->Allocate(std::max<size_t>(p->arena_bytes[i], 64)));
    arena[p->arena_backends[i]] = buf;
    st->arenas.push_back(buf);
  }
  for (size_t v = 0; v < p->values.size(); ++v) {
    const PlannedValue& pv = p->values[v];
    if (pv.planned) st->tensors[v] = arena[pv.backend]->View(pv.dtype, pv.shape, pv.offset);
  }
  return st;
}

void SessionImpl::ReleaseState(const std::shared_ptr<Plan>& p, std::unique_ptr<ExecState> st) {
  st->dynamic_buffers.clear();
  std::lock_guard<std::mutex> lk(mu_);
  auto it = std::find(plans_.begin(), plans_.end(), p);
  if (it == plans_.end()) return;  // plan evicted meanwhile
  auto& v = free_states_[p.get()];
  if (v.size() < 8) v.push_back(std::move(st));
}

// Output storage during a run: the planned slot when the shape matches, else a fresh allocation.
class RunSink final : public OutputSink {
 public:
  RunSink(Plan& p, ExecState& st, const Step& step) : p_(p), st_(st), step_(step) {}
  Expected<Tensor*> Allocate(int i, DataType dt, const Shape& s) override {
    if (i >= static_cast<int>(step_.outputs.size()) || step_.outputs[i] < 0)
      return Internal("kernel allocated output " + std::to_string(i) + " that the graph does not use");
    int v = step_.outputs[i];
    const PlannedValue& pv = p_.values[v];
    Tensor& t = st_.tensors[v];
    if (pv.planned && pv.dtype == dt && pv.shape == s) {
      if (!t.defined() || t.shape() != s) t = t.Reshaped(s);
      return &t;
    }
    DynamicAllocs().Inc();
    if (step_.backend->device() == DeviceKind::kCpu) {
      OP_ASSIGN_OR_RETURN(t, Tensor::Allocate(dt, s));
    } else {
      if (!IsStorable(dt) || dt == DataType::kString)
        return Unsupported("cannot hold " + std::string(DataTypeName(dt)) + " on " + step_.backend->name());
      OP_ASSIGN_OR_RETURN(auto buf, step_.backend->Allocate(std::max<size_t>(64, s.numel() * DataTypeSize(dt))));
      t = buf->View(dt, s, 0);
      st_.dynamic_buffers.push_back(std::move(buf));
    }
    return &t;
  }

 private:
  Plan& p_;
  ExecState& st_;
  const Step& step_;
};

Status SessionImpl::Execute(Plan& p, ExecState& st) {
  std::vector<const Tensor*>& ins = st.ins;  // reused: no allocation per node or run
  for (const Step& step : p.steps) {
    if (step.kind == Step::kCopy) {
      int src = step.inputs[0], dst = step.outputs[0];
      const Tensor& from = st.tensors[src];
      const PlannedValue& dv = p.values[dst];
      Tensor& to = st.tensors[dst];
      if (!dv.planned || to.shape() != from.shape() || to.dtype() != from.dtype()) {
        RunSink sink(p, st, step);
        OP_ASSIGN_OR_RETURN(Tensor * t, sink.Allocate(0, from.dtype(), from.shape()));
        (void)t;
      }
      if (from.device() == DeviceKind::kCpu) {
        OP_RETURN_IF_ERROR(dv.backend->CopyFromHost(from, to));
      } else {
        OP_RETURN_IF_ERROR(p.values[src].backend->CopyToHost(from, to));
      }
      continue;
    }
    const Node& n = graph_.nodes[step.node];
    ins.assign(step.inputs.size(), nullptr);
    for (size_t k = 0; k < step.inputs.size(); ++k) {
      int v = step.inputs[k];
      if (v < 0) continue;
      ins[k] = p.values[v].constant ? p.values[v].constant.get() : &st.tensors[v];
    }
    RunSink sink(p, st, step);
    const double t0 = opts_.profile ? NowMs() : 0;
    Status s = step.prepared->Execute(ins, &sink);
    if (s.ok() && opts_.profile) {
      s = step.backend->Synchronize();
      Record(n, step.backend->name(), NowMs() - t0);
    }
    if (!s.ok()) {
      if (s.message().find(n.info.name) != std::string::npos) return s;
      return s.WithContext("node '" + n.info.name + "' (" + n.info.op_type + ") on " + step.backend->name());
    }
  }
  return Status::Ok();
}

void SessionImpl::Record(const Node& n, const std::string& backend, double ms) {
  std::string op = n.info.op_type;
  const std::string fused = n.info.attrs.String(kernels::kFusedName, "");
  if (!fused.empty()) op += "+" + fused;
  std::lock_guard<std::mutex> lk(mu_);
  OpProfile& p = profile_[{op, backend}];
  p.op_type = op;
  p.backend = backend;
  p.calls++;
  p.total_ms += ms;
}

Expected<std::vector<Tensor>> SessionImpl::Run(const std::vector<std::pair<std::string, Tensor>>& given) {
  // Bind and validate the inputs.
  std::vector<const Tensor*> bound(graph_.inputs.size(), nullptr);
  for (auto& [name, t] : given) {
    size_t i = 0;
    while (i < inputs_.size() && inputs_[i].name != name) ++i;
    if (i == inputs_.size()) return InvalidArgument("the model has no input named '" + name + "'");
    if (bound[i]) return InvalidArgument("input '" + name + "' given twice");
    bound[i] = &t;
  }
  std::map<std::string, int64_t> symbols;
  std::vector<Shape> shapes;
  shapes.reserve(inputs_.size());  // one allocation whatever the number of inputs
  for (size_t i = 0; i < inputs_.size(); ++i) {
    const ValueInfo& vi = inputs_[i];
    if (!bound[i]) return InvalidArgument("missing input '" + vi.name + "' " + vi.ToString());
    const Tensor& t = *bound[i];
    if (!t.on_host() || !t.has_data()) return InvalidArgument("input '" + vi.name + "' has no host data");
    if (t.dtype() != vi.dtype)
      return InvalidArgument("input '" + vi.name + "': expected " + std::string(DataTypeName(vi.dtype)) + ", got " +
                             std::string(DataTypeName(t.dtype())));
    if (!vi.dims.empty() || graph_.values[graph_.inputs[i]].has_declared_shape) {
      if (t.rank() != static_cast<int>(vi.dims.size()))
        return InvalidArgument("input '" + vi.name + "': expected shape " + vi.ToString() + ", got " + t.shape().ToString());
      for (int d = 0; d < t.rank(); ++d) {
        if (vi.dims[d] >= 0 && vi.dims[d] != t.dim(d))
          return InvalidArgument("input '" + vi.name + "' dimension " + std::to_string(d) + ": expected " +
                                 std::to_string(vi.dims[d]) + ", got " + std::to_string(t.dim(d)) + " (shape " +
                                 t.shape().ToString() + ", model wants " + vi.ToString() + ")");
        const std::string& sym = vi.dim_names[d];
        if (!sym.empty()) {
          auto [it, fresh] = symbols.emplace(sym, t.dim(d));
          if (!fresh && it->second != t.dim(d))
            return InvalidArgument("dimension '" + sym + "' is " + std::to_string(it->second) + " in one input but " +
                                   std::to_string(t.dim(d)) + " in input '" + vi.name + "'");
        }
      }
    }
    shapes.push_back(t.shape());
  }
  OP_ASSIGN_OR_RETURN(auto plan, PlanFor(shapes));
  OP_ASSIGN_OR_RETURN(auto st, AcquireState(plan));
  for (size_t i = 0; i < plan->input_values.size(); ++i) st->tensors[plan->input_values[i]] = *bound[i];
  Status s;
  {
    std::unique_lock<std::mutex> lk(accel_mu_, std::defer_lock);
    if (plan->uses_accelerator) lk.lock();
    s = Execute(*plan, *st);
    if (plan->uses_accelerator) {
      Status sync = accel_->Synchronize();
      if (s.ok()) s = sync;
    }
  }
  std::vector<Tensor> outs;
  if (s.ok()) {
    for (size_t i = 0; i < plan->output_values.size(); ++i) {
      int v = plan->output_values[i];
      const PlannedValue& pv = plan->values[v];
      const Tensor& src = pv.constant ? *pv.constant : st->tensors[v];
      auto c = src.Clone();
      if (!c.ok()) {
        s = c.status();
        break;
      }
      outs.push_back(std::move(c).value());
    }
  }
  for (size_t i = 0; i < plan->input_values.size(); ++i) st->tensors[plan->input_values[i]] = Tensor();
  ReleaseState(plan, std::move(st));
  {
    std::lock_guard<std::mutex> lk(mu_);
    last_backends_ = plan->backends_used;
  }
  MetricsRegistry::Global()
      .GetCounter("outpost_engine_runs_total", "Model runs by outcome", {{"outcome", s.ok() ? "ok" : "error"}})
      .Inc();
  if (!s.ok()) return s;
  return outs;
}

}  // namespace

std::string ValueInfo::ToString() const {
  std::string s = std::string(DataTypeName(dtype)) + "[";
  for (size_t i = 0; i < dims.size(); ++i) {
    if (i) s += ",";
    s += dims[i] >= 0 ? std::to_string(dims[i]) : (dim_names[i].empty() ? "?" : dim_names[i]);
  }
  return s + "]";
}

Expected<std::unique_ptr<Session>> Session::LoadFromBytes(const std::string& bytes, const std::string& base_dir,
                                                          const SessionOptions& options) {
  OP_ASSIGN_OR_RETURN(Graph g, LoadOnnxGraph(bytes, base_dir));
  // QDQ first: it takes a Relu/Clip between the float op and its QuantizeLinear itself.
  if (options.fuse_qdq) FuseQdq(&g);
  if (options.fuse_activations) FuseActivations(&g);
  auto s = std::make_unique<SessionImpl>(std::move(g), options);
  OP_RETURN_IF_ERROR(s->Init());
  return std::unique_ptr<Session>(std::move(s));
}

Expected<std::unique_ptr<Session>> Session::Load(const std::string& path, const SessionOptions& options) {
  std::error_code ec;
  if (!fs::exists(path, ec)) return NotFound("model file '" + path + "' does not exist");
  if (!fs::is_regular_file(path, ec)) return InvalidArgument("'" + path + "' is not a regular file");
  auto size = fs::file_size(path, ec);
  if (ec) return IoError("cannot stat '" + path + "': " + ec.message());
  if (size > options.max_model_bytes)
    return ResourceExhausted("model file '" + path + "' is " + std::to_string(size) + " bytes, above the limit of " +
                             std::to_string(options.max_model_bytes));
  std::ifstream f(path, std::ios::binary);
  if (!f) return IoError("cannot open '" + path + "'");
  std::string bytes(size, '\0');
  f.read(bytes.data(), static_cast<std::streamsize>(size));
  if (static_cast<uint64_t>(f.gcount()) != size) return IoError("short read on '" + path + "'");
  auto dir = fs::path(path).parent_path().string();
  auto s = LoadFromBytes(bytes, dir.empty() ? "." : dir, options);
  if (!s.ok()) return s.status().WithContext(path);
  return s;
}

}  // namespace outpost::engine
