#include "outpost/quantize/quantize.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "calibrate.h"
#include "outpost/core/log.h"
#include "outpost/core/metrics.h"
#include "outpost/engine/session.h"
#include "qdq.h"
#include "samples.h"

namespace outpost::quantize {
namespace fs = std::filesystem;

Expected<Method> ParseMethod(const std::string& s) {
  if (s == "minmax") return Method::kMinMax;
  if (s == "percentile") return Method::kPercentile;
  if (s == "entropy") return Method::kEntropy;
  return InvalidArgument("unknown calibration method '" + s + "' (minmax|percentile|entropy)");
}

const char* MethodName(Method m) {
  switch (m) {
    case Method::kMinMax:
      return "minmax";
    case Method::kPercentile:
      return "percentile";
    case Method::kEntropy:
      return "entropy";
  }
  return "?";
}

namespace {

void CountRun(const char* result) {
  MetricsRegistry::Global()
      .GetCounter("outpost_quantize_runs_total", "outpost quantize runs by result",
                  {{"result", result}})
      .Inc();
}

using Clock = std::chrono::steady_clock;

// A session over a serialized model, with a map from value names to output indices.
struct Probe {
  std::unique_ptr<engine::Session> session;
  std::map<std::string, int> index;
};

Expected<Probe> MakeProbe(const onnx::ModelProto& m, const std::vector<std::string>& values,
                          const std::string& base_dir, const std::string& backend = "cpu") {
  Probe p;
  const std::string bytes = WithOutputs(m, values, &p.index);
  engine::SessionOptions so;
  so.backend = backend;
  so.fuse_activations = false;  // intermediate values are outputs: keep every node's own result
  OP_ASSIGN_OR_RETURN(p.session, engine::Session::LoadFromBytes(bytes, base_dir, so));
  return p;
}

Expected<std::vector<Tensor>> RunSample(engine::Session& s, const Sample& sample,
                                        const std::string& what, size_t i) {
  auto r = s.Run(sample);
  if (!r.ok()) return r.status().WithContext(what + " sample " + std::to_string(i));
  return std::move(r).value();
}

// Element k of a host floating tensor, as double.
double At(const Tensor& t, int64_t k) {
  return t.dtype() == DataType::kFloat ? t.data<float>()[k] : ReadDouble(t, k);
}

Status CheckFloating(const Tensor& t, const std::string& name) {
  if (!IsFloating(t.dtype()) || !t.on_host())
    return Unsupported("value '" + name + "' is " + t.Describe() + ", not floating");
  return Status::Ok();
}

Status CheckFloat(const Tensor& t, const std::string& name) {
  if (t.dtype() != DataType::kFloat || !t.on_host())
    return Unsupported("value '" + name + "' is " + t.Describe() +
                       "; only float32 activations can be quantized");
  return Status::Ok();
}

Expected<std::map<std::string, Range>> Calibrate(const onnx::ModelProto& m,
                                                 const std::set<std::string>& values,
                                                 const std::vector<Sample>& samples,
                                                 const Options& o, const std::string& base_dir) {
  const std::vector<std::string> names(values.begin(), values.end());
  OP_ASSIGN_OR_RETURN(Probe p, MakeProbe(m, names, base_dir));
  std::map<std::string, Range> ranges;
  for (const auto& n : names)
    ranges[n] = {std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity()};
  for (size_t i = 0; i < samples.size(); ++i) {
    OP_ASSIGN_OR_RETURN(std::vector<Tensor> outs,
                        RunSample(*p.session, samples[i], "calibration", i));
    for (const auto& n : names) {
      const Tensor& t = outs[p.index.at(n)];
      OP_RETURN_IF_ERROR(CheckFloat(t, n));
      Range& r = ranges[n];
      for (float v : t.span<const float>()) {
        if (!std::isfinite(v))
          return InvalidArgument("calibration sample " + std::to_string(i) +
                                 " gives a non-finite "
                                 "value in '" +
                                 n + "'");
        r.min = std::min(r.min, v), r.max = std::max(r.max, v);
      }
    }
  }
  if (o.method == Method::kMinMax) return ranges;
  // Second pass: histograms of |x| over [0, max |x|], then a threshold per value.
  std::map<std::string, std::vector<double>> hist;
  std::map<std::string, double> width;
  for (const auto& n : names) {
    hist[n].assign(kHistogramBins, 0.0);
    const double amax = std::max(std::fabs(ranges[n].min), std::fabs(ranges[n].max));
    width[n] = amax > 0 ? amax / kHistogramBins : 1.0;
  }
  for (size_t i = 0; i < samples.size(); ++i) {
    OP_ASSIGN_OR_RETURN(std::vector<Tensor> outs,
                        RunSample(*p.session, samples[i], "calibration", i));
    for (const auto& n : names) {
      std::vector<double>& h = hist[n];
      const double w = width[n];
      for (float v : outs[p.index.at(n)].span<const float>()) {
        // Exact zeros (ReLU's sparsity) would dominate bin 0 and drag thresholds down.
        if (v == 0.f) continue;
        const int b = std::min(kHistogramBins - 1, static_cast<int>(std::fabs(v) / w));
        h[b] += 1;
      }
    }
  }
  for (const auto& n : names) {
    Range& r = ranges[n];
    const int levels = (r.min >= 0 || o.activations == DataType::kUInt8) ? 256 : 128;
    const float t = o.method == Method::kPercentile
                        ? PercentileThreshold(hist[n], width[n], o.percentile)
                        : EntropyThreshold(hist[n], width[n], levels);
    r.min = std::max(r.min, -t), r.max = std::min(r.max, t);
  }
  return ranges;
}

struct EvalResult {
  int float_correct = 0;
  int quant_correct = 0;
  std::map<std::string, std::pair<double, double>> signal_noise;  // per layer output
  std::pair<double, double> output_signal_noise;                  // the first graph output
};

int64_t Top1(const Tensor& t) {
  if (t.numel() == 0) return -1;
  // First row: the sample's batch is expected to be one.
  const int64_t row = t.rank() >= 2 ? t.numel() / t.dim(0) : t.numel();
  int64_t best = 0;
  for (int64_t j = 1; j < row; ++j)
    if (ReadDouble(t, j) > ReadDouble(t, best)) best = j;
  return best;
}

Expected<EvalResult> Evaluate(const onnx::ModelProto& fm, const onnx::ModelProto& qm,
                              const std::vector<std::string>& layer_outputs,
                              const std::vector<Sample>& samples,
                              const std::vector<int64_t>* labels, const std::string& base_dir) {
  OP_ASSIGN_OR_RETURN(Probe fp, MakeProbe(fm, layer_outputs, base_dir));
  OP_ASSIGN_OR_RETURN(Probe qp, MakeProbe(qm, layer_outputs, base_dir));
  EvalResult r;
  for (size_t i = 0; i < samples.size(); ++i) {
    OP_ASSIGN_OR_RETURN(std::vector<Tensor> fo, RunSample(*fp.session, samples[i], "eval", i));
    OP_ASSIGN_OR_RETURN(std::vector<Tensor> qo, RunSample(*qp.session, samples[i], "eval", i));
    OP_RETURN_IF_ERROR(CheckFloating(fo[0], "output 0"));
    OP_RETURN_IF_ERROR(CheckFloating(qo[0], "output 0"));
    for (int64_t k = 0; k < fo[0].numel() && k < qo[0].numel(); ++k) {
      const double a = At(fo[0], k), b = At(qo[0], k);
      r.output_signal_noise.first += a * a;
      r.output_signal_noise.second += (a - b) * (a - b);
    }
    if (labels) {
      r.float_correct += Top1(fo[0]) == (*labels)[i];
      r.quant_correct += Top1(qo[0]) == (*labels)[i];
    }
    for (const auto& n : layer_outputs) {
      const Tensor& f = fo[fp.index.at(n)];
      const Tensor& q = qo[qp.index.at(n)];
      OP_RETURN_IF_ERROR(CheckFloating(f, n));
      OP_RETURN_IF_ERROR(CheckFloating(q, n));
      if (f.numel() != q.numel()) return Internal("layer '" + n + "' changed size when quantized");
      auto& sn = r.signal_noise[n];
      for (int64_t k = 0; k < f.numel(); ++k) {
        const double a = At(f, k), d = a - At(q, k);
        sn.first += a * a;
        sn.second += d * d;
      }
    }
  }
  return r;
}

double SnrDb(std::pair<double, double> sn) {
  if (sn.second <= 0) return std::numeric_limits<double>::infinity();
  if (sn.first <= 0) return -std::numeric_limits<double>::infinity();
  return 10.0 * std::log10(sn.first / sn.second);
}

// `device` (may be null): the description of the backend that ran (the last one the session
// holds: the accelerator when there is one).
Expected<double> MeanLatencyMs(const std::string& bytes, const std::string& base_dir,
                               const std::string& backend, const std::vector<Sample>& samples,
                               std::string* device = nullptr) {
  engine::SessionOptions so;
  so.backend = backend;
  OP_ASSIGN_OR_RETURN(std::unique_ptr<engine::Session> s,
                      engine::Session::LoadFromBytes(bytes, base_dir, so));
  if (device && !s->report().backends.empty()) *device = s->report().backends.back();
  OP_ASSIGN_OR_RETURN(std::vector<Tensor> warm, RunSample(*s, samples[0], "latency", 0));
  const size_t n = std::min<size_t>(samples.size(), 200);
  const auto t0 = Clock::now();
  for (size_t i = 0; i < n; ++i) {
    OP_ASSIGN_OR_RETURN(std::vector<Tensor> out, RunSample(*s, samples[i], "latency", i));
  }
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count() / n;
}

void MarkWeightOnly(std::vector<Target>* targets, const Options& o) {
  for (Target& t : *targets) t.weight_only = o.weight_bits == 4 && t.op_type != "Conv";
}

QdqOptions ToQdqOptions(const Options& o, bool int4_as_int8) {
  QdqOptions qo;
  qo.activations = o.activations;
  qo.per_channel = o.per_channel;
  qo.block_size = o.block_size;
  qo.int4_as_int8 = int4_as_int8;
  return qo;
}

// One quantization attempt with a given exclusion set.
struct Attempt {
  std::vector<Target> targets;
  std::map<std::string, Range> ranges;
  onnx::ModelProto model;
  EvalResult eval;
};

Expected<Attempt> QuantizeOnce(const onnx::ModelProto& folded, const std::set<std::string>& exclude,
                               const std::vector<Sample>& calib, const std::vector<Sample>& eval,
                               const std::vector<int64_t>* labels, const Options& o,
                               const std::string& base_dir, const std::vector<Target>& layers) {
  Attempt a;
  onnx::ModelProto fm = folded;
  a.targets = FindTargets(&fm, exclude);
  MarkWeightOnly(&a.targets, o);
  OP_ASSIGN_OR_RETURN(a.ranges, Calibrate(fm, ActivationValues(a.targets), calib, o, base_dir));
  OP_ASSIGN_OR_RETURN(a.model, WriteQdq(fm, a.targets, a.ranges, ToQdqOptions(o, true)));
  std::vector<std::string> outs;
  for (const Target& t : layers) outs.push_back(t.output);
  OP_ASSIGN_OR_RETURN(a.eval, Evaluate(fm, a.model, outs, eval, labels, base_dir));
  return a;
}

}  // namespace

Expected<Report> QuantizeModel(const std::string& in_path, const std::string& out_path,
                               const Options& o) {
  auto run = [&]() -> Expected<Report> {
    if (o.activations != DataType::kInt8 && o.activations != DataType::kUInt8)
      return InvalidArgument("activations must be int8 or uint8");
    if (o.calibration_dir.empty()) return InvalidArgument("a calibration folder is required");
    if (o.max_accuracy_drop >= 0 && (o.eval_dir.empty() || o.labels_file.empty()))
      return InvalidArgument("the accuracy gate needs --eval DIR and --labels FILE");
    if (o.eval_dir.empty() != o.labels_file.empty())
      return InvalidArgument("--eval and --labels go together");
    if (o.weight_bits != 8 && o.weight_bits != 4)
      return InvalidArgument("weights must be 8 or 4 bits");
    if (o.weight_bits == 4 && o.block_size < 1) return InvalidArgument("block size must be >= 1");
    if (o.fp16 && (o.weight_bits != 8 || o.auto_exclude || o.per_channel || !o.exclude.empty()))
      return InvalidArgument(
          "--fp16 replaces integer quantization: it does not combine with "
          "int4 weights, --per-channel, --exclude or --auto-exclude");
    if (o.auto_exclude && o.max_accuracy_drop < 0)
      return InvalidArgument("--auto-exclude needs --max-accuracy-drop");
    Report rep;
    std::error_code ec;
    rep.float_bytes = fs::file_size(in_path, ec);
    if (ec) return NotFound("cannot read model '" + in_path + "': " + ec.message());
    const std::string base_dir = fs::path(in_path).parent_path().string();
    OP_ASSIGN_OR_RETURN(onnx::ModelProto model, ReadModel(in_path));
    // The engine validates the float model and tells us its inputs.
    engine::SessionOptions so;
    auto fs_session = engine::Session::Load(in_path, so);
    if (!fs_session.ok()) return fs_session.status().WithContext("loading " + in_path);
    const std::vector<engine::ValueInfo> inputs = (*fs_session)->inputs();
    OP_ASSIGN_OR_RETURN(std::vector<Sample> calib,
                        LoadSamples(o.calibration_dir, inputs, "calibration"));
    rep.calibration_samples = static_cast<int>(calib.size());
    std::vector<Sample> eval;
    std::vector<int64_t> labels;
    if (!o.eval_dir.empty()) {
      OP_ASSIGN_OR_RETURN(eval, LoadSamples(o.eval_dir, inputs, "eval"));
      OP_ASSIGN_OR_RETURN(labels, LoadLabels(o.labels_file, eval.size()));
      rep.evaluated = true;
      rep.eval_samples = static_cast<int>(eval.size());
    }
    OP_ASSIGN_OR_RETURN(rep.folded_batchnorms, FoldBatchNorms(&model));

    std::set<std::string> exclude(o.exclude.begin(), o.exclude.end());
    std::vector<Target> all = FindTargets(&model, {});
    MarkWeightOnly(&all, o);
    if (all.empty())
      return Unsupported("'" + in_path +
                         "' has no Conv, MatMul or Gemm with constant float "
                         "weights: nothing to quantize");
    const std::vector<Sample>& measure = rep.evaluated ? eval : calib;
    const std::vector<int64_t>* lp = rep.evaluated ? &labels : nullptr;
    Attempt a;
    if (o.fp16) {
      rep.fp16 = true;
      a.targets = all;
      a.model = model;
      OP_RETURN_IF_ERROR(ConvertToFloat16(&a.model));
      std::vector<std::string> outs;
      for (const Target& t : all) outs.push_back(t.output);
      auto e = Evaluate(model, a.model, outs, measure, lp, base_dir);
      if (!e.ok()) return e.status().WithContext("--fp16: the engine cannot run the float16 model");
      a.eval = std::move(e).value();
    } else {
      OP_ASSIGN_OR_RETURN(a, QuantizeOnce(model, exclude, calib, measure, lp, o, base_dir, all));
    }
    auto drop = [&](const Attempt& x) {
      return 100.0 * (x.eval.float_correct - x.eval.quant_correct) / measure.size();
    };
    if (o.max_accuracy_drop >= 0 && drop(a) > o.max_accuracy_drop && o.auto_exclude) {
      // Sensitivity of each layer on its own: the SNR of the model's output when only that
      // layer is quantized (a layer's output SNR in the full model also carries all the error
      // from upstream, which would blame the last layers). Lowest first.
      std::vector<std::pair<double, std::string>> order;
      for (const Target& t : a.targets) {
        std::set<std::string> others = exclude;
        for (const Target& u : a.targets)
          if (u.node != t.node) others.insert(u.node);
        OP_ASSIGN_OR_RETURN(Attempt alone,
                            QuantizeOnce(model, others, calib, measure, lp, o, base_dir, {}));
        order.emplace_back(SnrDb(alone.eval.output_signal_noise), t.node);
      }
      std::sort(order.begin(), order.end());
      for (const auto& [snr, node] : order) {
        if (drop(a) <= o.max_accuracy_drop) break;
        exclude.insert(node);
        rep.auto_excluded.push_back(node);
        OP_LOG_INFO("quantize: keeping '{}' in float (SNR {:.1f} dB)", node, snr);
        OP_ASSIGN_OR_RETURN(a, QuantizeOnce(model, exclude, calib, measure, lp, o, base_dir, all));
      }
    }
    std::set<std::string> quantized;
    for (const Target& t : a.targets) quantized.insert(t.node);
    rep.quantized_nodes = static_cast<int>(a.targets.size());
    for (const Target& t : all) {
      LayerReport l;
      l.node = t.node, l.op_type = t.op_type, l.output = t.output;
      l.quantized = quantized.count(t.node) != 0;
      l.snr_db = SnrDb(a.eval.signal_noise[t.output]);
      rep.layers.push_back(l);
    }
    if (rep.evaluated) {
      rep.float_accuracy = 100.0 * a.eval.float_correct / eval.size();
      rep.quant_accuracy = 100.0 * a.eval.quant_correct / eval.size();
    }
    // What runs here (latency): the evaluated model, int4 weights held as int8.
    std::string run_bytes;
    a.model.SerializeToString(&run_bytes);
    onnx::ModelProto written = std::move(a.model);
    if (o.weight_bits == 4 && !o.int4_as_int8) {
      onnx::ModelProto fm = model;
      OP_ASSIGN_OR_RETURN(written, WriteQdq(fm, a.targets, a.ranges, ToQdqOptions(o, false)));
    }
    if (!o.keep_names) CompactValueNames(&written);
    std::string bytes;
    written.SerializeToString(&bytes);
    rep.quant_bytes = bytes.size();
    for (const std::string& b : o.latency_backends) {
      LatencyReport l;
      l.backend = b;
      std::string fbytes;
      model.SerializeToString(&fbytes);
      auto f = MeanLatencyMs(fbytes, base_dir, b, measure);
      auto q = f.ok() ? MeanLatencyMs(run_bytes, base_dir, b, measure, &l.device) : f;
      if (f.ok() && q.ok()) {
        l.available = true, l.float_ms = *f, l.quant_ms = *q;
      } else {
        l.why = (f.ok() ? q : f).status().ToString();
      }
      rep.latency.push_back(l);
    }
    rep.gate_passed = o.max_accuracy_drop < 0 || drop(a) <= o.max_accuracy_drop;
    if (!rep.gate_passed) return rep;
    // Write next to the target, then rename: a failed write leaves no partial model behind.
    const std::string tmp = out_path + ".tmp";
    {
      std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
      if (!f || !f.write(bytes.data(), static_cast<std::streamsize>(bytes.size())) || !f.flush()) {
        fs::remove(tmp, ec);
        return IoError("cannot write '" + tmp + "'");
      }
    }
    fs::rename(tmp, out_path, ec);
    if (ec) {
      fs::remove(tmp, ec);
      return IoError("cannot rename to '" + out_path + "'");
    }
    rep.written = true;
    return rep;
  };
  Expected<Report> r = run();
  if (!r.ok()) {
    CountRun("error");
    OP_LOG_WARN("quantize {}: {}", in_path, r.status().ToString());
  } else {
    CountRun(r->written ? "ok" : "gate_failed");
  }
  return r;
}

std::string Report::ToText() const {
  std::string s;
  char buf[512];
  auto add = [&](const char* fmt, auto... args) {
    std::snprintf(buf, sizeof buf, fmt, args...);
    s += buf;
  };
  add("model size: float %llu bytes, quantized %llu bytes (%.1f%%)\n",
      static_cast<unsigned long long>(float_bytes), static_cast<unsigned long long>(quant_bytes),
      float_bytes ? 100.0 * quant_bytes / float_bytes : 0.0);
  if (fp16)
    add("float16 weights and compute (no integer quantization); batchnorms folded: %d\n",
        folded_batchnorms);
  else
    add("batchnorms folded: %d; calibration samples: %d; quantized nodes: %d of %zu\n",
        folded_batchnorms, calibration_samples, quantized_nodes, layers.size());
  if (evaluated)
    add("accuracy (top-1, %d eval samples): float %.2f%%, quantized %.2f%% (drop %.2f points)\n",
        eval_samples, float_accuracy, quant_accuracy, float_accuracy - quant_accuracy);
  if (!auto_excluded.empty()) {
    s += "kept in float by --auto-exclude (most sensitive first):";
    for (const auto& n : auto_excluded) s += " " + n;
    s += "\n";
  }
  add("per-layer output SNR vs float (%s set):\n", evaluated ? "eval" : "calibration");
  for (const LayerReport& l : layers)
    add("  %-40s %-7s %8.2f dB%s\n", l.node.c_str(), l.op_type.c_str(), l.snr_db,
        l.quantized ? "" : "  (float)");
  for (const LatencyReport& l : latency) {
    if (l.available) {
      add("latency %-7s float %.3f ms, quantized %.3f ms per sample\n", l.backend.c_str(),
          l.float_ms, l.quant_ms);
      // Quantization that does not pay says so, and what the backend does with 8-bit values.
      if (l.quant_ms > l.float_ms)
        add("  quantized is %.2fx slower than float on %s (%s)\n", l.quant_ms / l.float_ms,
            l.backend.c_str(), l.device.empty() ? "no backend description" : l.device.c_str());
    } else
      add("latency %-7s unavailable: %s\n", l.backend.c_str(), l.why.c_str());
  }
  if (!gate_passed) s += "accuracy gate FAILED: nothing written\n";
  return s;
}

}  // namespace outpost::quantize
