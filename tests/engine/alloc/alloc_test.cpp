// Steady-state runs of static-shape models allocate only what Run hands back
// (and a fixed handful for binding): nothing per node.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <new>

#include "outpost/engine/session.h"

namespace {
std::atomic<bool> g_counting{false};
std::atomic<int64_t> g_allocs{0};
}  // namespace

// Counts every operator new in this test binary while g_counting is set. (GCC's
// -Wmismatched-new-delete cannot see that these replacements pair malloc with free.)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
void* operator new(std::size_t n) {
  if (g_counting.load(std::memory_order_relaxed)) g_allocs.fetch_add(1);
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
