// Steady-state runs of static-shape models allocate only what Run hands back
// (and a fixed handful for binding): nothing per node.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <new>

#include <execinfo.h>

#include "outpost/core/metrics.h"
#include "outpost/engine/session.h"

namespace {
std::atomic<bool> g_counting{false};
std::atomic<int64_t> g_allocs{0};
std::atomic<bool> g_trace{false};  // print a backtrace of each counted allocation (diagnosis)
thread_local bool t_in_trace = false;
}  // namespace

// Counts every operator new in this test binary while g_counting is set. (GCC's
// -Wmismatched-new-delete cannot see that these replacements pair malloc with free.)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
void* operator new(std::size_t n) {
  if (g_counting.load(std::memory_order_relaxed)) {
    g_allocs.fetch_add(1);
    if (g_trace.load(std::memory_order_relaxed) && !t_in_trace) {
      t_in_trace = true;
      void* frames[24];
      const int depth = backtrace(frames, 24);
      std::fprintf(stderr, "---- allocation of %zu bytes\n", n);
      backtrace_symbols_fd(frames, depth, 2);
      t_in_trace = false;
    }
  }
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }

namespace outpost::engine {
namespace {

struct RunCount {
  int64_t allocs = -1;
  int64_t outputs = 0;
};

RunCount AllocsPerRun(const std::string& model, const std::string& backend) {
  SessionOptions o;
  o.backend = backend;
  o.backend_options.threads = 2;
  auto s = Session::Load(model, o);
  EXPECT_TRUE(s.ok()) << s.status().ToString();
  if (!s.ok()) return {};
  std::vector<std::pair<std::string, Tensor>> inputs;
  for (const auto& in : (*s)->inputs()) {
    std::vector<int64_t> dims;
    for (int64_t d : in.dims) dims.push_back(d < 0 ? 1 : d);
    Tensor t = Tensor::Allocate(in.dtype, Shape::From(dims).value()).value();
    inputs.push_back({in.name, std::move(t)});
  }
  for (int i = 0; i < 3; ++i) EXPECT_TRUE((*s)->Run(inputs).ok());  // warm: plans, caches
  constexpr int kRuns = 5;
  g_allocs = 0;
  g_counting = true;
  for (int i = 0; i < kRuns; ++i) (void)(*s)->Run(inputs);
  g_counting = false;
  return {g_allocs.load() / kRuns, static_cast<int64_t>((*s)->outputs().size())};
}

// Per run: the input binding and plan key vectors and the returned vector (6), and per output
// its storage and shared state (3). Independent of the number of nodes: digits_cnn runs 8 nodes,
// MobileNetV2 66 (after folding and fusion), the transformer block's movement, reduction,
// Softmax and batched MatMul nodes plan from fixed-capacity lists.
TEST(Allocations, SteadyStateRunsAllocateNothingPerNode) {
  const std::string dir = OUTPOST_TEST_MODELS_DIR;
  for (const char* m : {"digits_cnn", "mobilenet_v2", "squeezenet1_1", "resnet18",
                        "transformer_block", "iris_mlp"}) {
    const RunCount n = AllocsPerRun(dir + "/" + m + ".onnx", "cpu");
    EXPECT_GT(n.outputs, 0) << m;
    EXPECT_LE(n.allocs, 6 + 3 * n.outputs) << m << ": " << n.allocs << " heap allocations per run";
  }
}

// The same on the OpenCL backend (PoCL here): OpenCL nodes reuse their scratch under their lock.
TEST(Allocations, SteadyStateOpenClRunsAllocateNothingPerNode) {
  const std::string dir = OUTPOST_TEST_MODELS_DIR;
  for (const char* m : {"digits_cnn", "transformer_block", "iris_mlp"}) {
    const RunCount n = AllocsPerRun(dir + "/" + m + ".onnx", "opencl");
    EXPECT_GT(n.outputs, 0) << m;
    EXPECT_LE(n.allocs, 6 + 3 * n.outputs) << m << ": " << n.allocs << " heap allocations per run";
  }
}

}  // namespace
}  // namespace outpost::engine

// Every case of the ONNX node test suite that loads and runs on the CPU, in steady state, with
// its own inputs: the static ones (no shape planned at run time, no strings) stay within the
// same bound as the models above. Prints each case over it. OUTPOST_ALLOC_TRACE=<case folder>
// prints a backtrace of each of that case's allocations (run the binary by hand).
TEST(Allocations, EveryStaticSuiteCaseAllocatesNothingPerNode) {
  using namespace outpost;
  using namespace outpost::engine;
  const char* env = std::getenv("OUTPOST_SUITE_DIR");
  const std::string suite = env && *env ? env : OUTPOST_SUITE_DIR_DEFAULT;
  namespace fs = std::filesystem;
  ASSERT_TRUE(fs::is_directory(suite)) << "no ONNX node test suite at " << suite;
  std::vector<fs::path> cases;
  for (const auto& e : fs::directory_iterator(suite))
    if (fs::exists(e.path() / "model.onnx")) cases.push_back(e.path());
  std::sort(cases.begin(), cases.end());
  int ran = 0, over = 0, exempt = 0;
  // OUTPOST_ALLOC_TRACE=<case name>: backtraces of that case's steady-state allocations.
  const char* trace = std::getenv("OUTPOST_ALLOC_TRACE");
  if (trace) {
    void* warm[4];
    backtrace(warm, 4);  // loads the unwinder before counting starts
  }
  for (const auto& c : cases) {
    SessionOptions o;
    o.backend = "cpu";
    o.backend_options.threads = 2;
    auto s = Session::Load((c / "model.onnx").string(), o);
    if (!s.ok()) continue;
    std::vector<std::pair<std::string, Tensor>> inputs;
    bool ok = true;
    for (size_t i = 0; i < (*s)->inputs().size(); ++i) {
      auto t = ReadTensorFile((c / "test_data_set_0" / ("input_" + std::to_string(i) + ".pb")).string());
      if (!t.ok()) { ok = false; break; }
      inputs.push_back({(*s)->inputs()[i].name, std::move(t).value()});
    }
    if (!ok) continue;
    bool runs = true;
    for (int i = 0; i < 3 && runs; ++i) runs = (*s)->Run(inputs).ok();
    if (!runs) continue;
    ++ran;
    // Not static: an intermediate shape that depends on the data (NonZero, Unique, ...), planned
    // at run time; or strings, whose elements are heap objects.
    auto& dyn = MetricsRegistry::Global().GetCounter("outpost_engine_dynamic_allocations_total", "");
    const uint64_t dyn0 = dyn.value();
    g_allocs = 0;
    g_trace = trace && c.filename() == trace;
    g_counting = true;
    for (int i = 0; i < 3; ++i) (void)(*s)->Run(inputs);
    g_counting = false;
    g_trace = false;
    bool strings = false;
    for (const auto& v : (*s)->inputs()) strings = strings || v.dtype == DataType::kString;
    for (const auto& v : (*s)->outputs()) strings = strings || v.dtype == DataType::kString;
    if (dyn.value() != dyn0 || strings) {
      ++exempt;
      continue;
    }
    const int64_t per = g_allocs.load() / 3;
    const int64_t bound = 6 + 3 * static_cast<int64_t>((*s)->outputs().size());
    if (per > bound) {
      ++over;
      std::printf("ALLOC %s %lld (bound %lld)\n", c.filename().c_str(), static_cast<long long>(per),
                  static_cast<long long>(bound));
    }
  }
  std::printf("%d cases ran, %d not static, %d over the bound\n", ran, exempt, over);
  EXPECT_GE(ran, 1200);              // the suite was really there and ran
  EXPECT_GE(ran - exempt, 1000);     // most of it is static
  EXPECT_EQ(over, 0);
}
