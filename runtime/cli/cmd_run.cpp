// outpost run / outpost inspect.
#include <cstdio>
#include <filesystem>
#include <map>

#include "common.h"

namespace outpost::cli {
namespace fs = std::filesystem;

namespace {
const char* kRunUsage =
    "usage: outpost run MODEL --input NAME=FILE [--input NAME=FILE ...] [--backend cpu|opencl]\n"
    "                   [--threads N] [--output-dir DIR] [--opencl-platform I] [--opencl-device I]\n"
    "                   [--opencl-platform-name S] [--opencl-device-name S]\n"
    "\n"
    "Runs MODEL once. Inputs are ONNX TensorProto (.pb) or NumPy (.npy) files. Each output is\n"
    "summarized on stdout and, with --output-dir, written to DIR/<output name>.npy (characters\n"
    "outside [A-Za-z0-9._-] replaced by _).\n";

const char* kInspectUsage =
    "usage: outpost inspect MODEL [--backend cpu|opencl] [--threads N]\n"
    "\n"
    "Shows the model's inputs and outputs, opsets, op counts, inferred shapes, the backend each\n"
    "node is placed on (and why not the preferred one), what each node computes in (integer,\n"
    "float, convert; for QDQ models, which float ops were fused into integer kernels), and the\n"
    "planned memory.\n";

}  // namespace

int CmdRun(int argc, char** argv) {
  Args a;
  auto specs = BackendFlags();
  specs.push_back({"--input", true, true});
  specs.push_back({"--output-dir"});
  if (!a.Parse(argc, argv, 2, specs, 1, 1)) return Usage(kRunUsage, a.error());
  if (a.help()) return std::fputs(kRunUsage, stdout), 0;
  engine::SessionOptions o;
  std::string err;
  if (!BackendOptionsFromArgs(a, &o, &err)) return Usage(kRunUsage, err);
  auto inputs = ReadInputs(a.All("--input"));
  if (!inputs.ok()) return Fail(inputs.status());
  auto s = engine::Session::Load(a.positional()[0], o);
  if (!s.ok()) return Fail(s.status());
  auto outs = (*s)->Run(*inputs);
  if (!outs.ok()) return Fail(outs.status());
  std::string dir = a.Get("--output-dir");
  if (!dir.empty()) {
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) return Fail(IoError("cannot create '" + dir + "': " + ec.message()));
  }
  for (size_t i = 0; i < outs->size(); ++i) {
    const std::string& name = (*s)->outputs()[i].name;
    std::printf("%s\n", Summarize(name, (*outs)[i]).c_str());
    if (!dir.empty()) {
      Status st = engine::WriteNpy((fs::path(dir) / (SanitizeFileName(name) + ".npy")).string(), (*outs)[i]);
      if (!st.ok()) return Fail(st);
    }
  }
  return 0;
}

int CmdInspect(int argc, char** argv) {
  Args a;
  if (!a.Parse(argc, argv, 2, BackendFlags(), 1, 1)) return Usage(kInspectUsage, a.error());
  if (a.help()) return std::fputs(kInspectUsage, stdout), 0;
  engine::SessionOptions o;
  std::string err;
  if (!BackendOptionsFromArgs(a, &o, &err)) return Usage(kInspectUsage, err);
  auto s = engine::Session::Load(a.positional()[0], o);
  if (!s.ok()) return Fail(s.status());
  const auto& r = (*s)->report();
  std::printf("model: %s\nproducer: %s\nopsets:", a.positional()[0].c_str(), r.producer.c_str());
  for (auto& [d, v] : r.opsets) std::printf(" %s=%d", d.empty() ? "ai.onnx" : d.c_str(), v);
  std::printf("\n\ninputs:\n");
  for (auto& i : (*s)->inputs()) std::printf("  %s: %s\n", i.name.c_str(), i.ToString().c_str());
  std::printf("outputs:\n");
  for (auto& i : (*s)->outputs()) std::printf("  %s: %s\n", i.name.c_str(), i.ToString().c_str());
  std::map<std::string, int> ops;
  std::map<std::string, int> per_backend;
  std::map<std::string, int> per_precision;
  int qdq_fused = 0;
  for (auto& p : r.placement) {
    ops[p.op_type]++;
    per_backend[p.backend]++;
    if (p.backend != "folded") per_precision[p.precision]++;
    qdq_fused += !p.qdq_from.empty();
  }
  std::printf("\nops (%d nodes):", r.node_count);
  for (auto& [op, n] : ops) std::printf(" %s=%d", op.c_str(), n);
  std::printf("\n\nshapes%s:\n", r.shapes_static ? "" : " (symbolic dimensions bound to 1)");
  for (auto& [name, desc] : (*s)->ValueShapes()) std::printf("  %s: %s\n", name.c_str(), desc.c_str());
  std::printf("\nplacement (preferred backend: %s):", o.backend.c_str());
  for (auto& [b, n] : per_backend) std::printf(" %s=%d", b.c_str(), n);
  std::printf("\n");
  for (auto& p : r.placement)
    std::printf("  %-40s %-22s %s%s%s\n", p.node.c_str(), p.op_type.c_str(), p.backend.c_str(),
                p.why.empty() ? "" : "  # ", p.why.c_str());
  std::printf("\nprecision (nodes that run):");
  for (auto& [k, n] : per_precision) std::printf(" %s=%d", k.c_str(), n);
  std::printf(", %d fused from QDQ\n", qdq_fused);
  for (auto& p : r.placement) {
    if (p.backend == "folded") continue;
    std::string note = p.qdq_from.empty() ? "" : "  # fused from QDQ " + p.qdq_from;
    std::printf("  %-40s %-22s %s%s\n", p.node.c_str(), p.op_type.c_str(), p.precision.c_str(), note.c_str());
  }
  std::printf("\nmemory: planned peak %.3f MB (arenas), constants %.3f MB, %d boundary copies\n",
              static_cast<double>(r.planned_peak_bytes) / 1e6, static_cast<double>(r.constant_bytes) / 1e6,
              r.copies_inserted);
  std::printf("load: %.1f ms\n", r.load_ms);
  return 0;
}

}  // namespace outpost::cli
