// QLinearConv (igemm fast path) against float Conv on the convolution layers of ResNet-18 and
// MobileNetV2 (batch 1, 224x224), run through the registered CPU kernels the way a prepared
// session runs them: constant weights, packed once (PreparedCache), a thread pool of --threads.
// Each layer: the best of --rounds rounds of the median of --runs timed runs (after warm-up);
// the network line sums layer times times how often the shape occurs in the network.
//
// Build: cmake --build build --target quant_bench
// Run:   build/bench/quant_bench [--threads 2] [--runs 15] [--rounds 3] [--net
// resnet18|mobilenetv2]
//        OUTPOST_IGEMM=avx2 ... forces an igemm path (kernels/cpu/igemm.h).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "cpu/igemm.h"
#include "outpost/kernels/fusion.h"
#include "outpost/kernels/kernel.h"

namespace {

using namespace outpost;
using kernels::Attribute;
using kernels::Attributes;

struct Layer {
  int c, m, hw, k, s, group;
  int count;  // occurrences in the network
};
using Key = std::tuple<int, int, int, int, int, int>;

void Add(std::map<Key, int>* layers, int c, int m, int hw, int k, int s, int group) {
  ++(*layers)[{c, m, hw, k, s, group}];
}

std::vector<Layer> ToList(const std::map<Key, int>& layers) {
  std::vector<Layer> v;
  for (auto& [k, n] : layers)
    v.push_back({std::get<0>(k), std::get<1>(k), std::get<2>(k), std::get<3>(k), std::get<4>(k),
                 std::get<5>(k), n});
  return v;
}

std::vector<Layer> ResNet18() {
  std::map<Key, int> l;
  Add(&l, 3, 64, 224, 7, 2, 1);
  int c = 64, hw = 56;
  for (int stage = 0; stage < 4; ++stage) {
    const int m = 64 << stage, s = stage == 0 ? 1 : 2;
    Add(&l, c, m, hw, 3, s, 1);
    if (s == 2) Add(&l, c, m, hw, 1, 2, 1);
    hw /= s;
    for (int i = 0; i < 3; ++i) Add(&l, m, m, hw, 3, 1, 1);
    c = m;
  }
  return ToList(l);
}

std::vector<Layer> MobileNetV2() {
  std::map<Key, int> l;
  Add(&l, 3, 32, 224, 3, 2, 1);
  int c = 32, hw = 112;
  const int cfg[7][4] = {{1, 16, 1, 1}, {6, 24, 2, 2},  {6, 32, 3, 2}, {6, 64, 4, 2},
                         {6, 96, 3, 1}, {6, 160, 3, 2}, {6, 320, 1, 1}};
  for (auto& b : cfg)
    for (int i = 0; i < b[2]; ++i) {
      const int s = i == 0 ? b[3] : 1, e = c * b[0];
      if (b[0] != 1) Add(&l, c, e, hw, 1, 1, 1);
      Add(&l, e, e, hw, 3, s, e);
      hw /= s;
      Add(&l, e, b[1], hw, 1, 1, 1);
      c = b[1];
    }
  Add(&l, c, 1280, hw, 1, 1, 1);
  return ToList(l);
}

Attribute Ints(std::vector<int64_t> v) {
  Attribute a;
  a.kind = Attribute::Kind::kInts;
  a.ints = std::move(v);
  return a;
}
Attribute Num(int64_t i, float f, bool is_float) {
  Attribute a;
  a.kind = is_float ? Attribute::Kind::kFloat : Attribute::Kind::kInt;
  a.i = i;
  a.f = f;
  return a;
}

class Sink : public kernels::OutputSink {
 public:
  Expected<Tensor*> Allocate(int, DataType dt, const Shape& s) override {
    if (!out.defined() || out.dtype() != dt || out.shape() != s) {
      auto t = Tensor::Allocate(dt, s);
      if (!t.ok()) return t.status();
      out = std::move(t).value();
    }
    return &out;
  }
  Tensor out;
};

// One op, prepared like a session node: its constant inputs flagged, one cache.
class Node {
 public:
  Node(const std::string& op, Attributes at, std::vector<Tensor> inputs, std::vector<bool> constant)
      : info_{"bench", op, "", 21, std::move(at)},
        in_(std::move(inputs)),
        const_(new bool[constant.size()]) {
    for (size_t i = 0; i < constant.size(); ++i) const_[i] = constant[i];
    for (auto& t : in_) ptrs_.push_back(t.defined() ? &t : nullptr);
    def_ = kernels::FindOp("", op, 21);
  }
  bool Run(ThreadPool* pool) {
    bool wanted[1] = {true};
    kernels::KernelContext ctx(info_, ptrs_, 1, wanted, &sink_, pool, false);
    ctx.set_prepared(&cache_, {const_.get(), in_.size()});
    Status st = def_->fn(ctx);
    if (!st.ok()) std::fprintf(stderr, "%s: %s\n", info_.op_type.c_str(), st.ToString().c_str());
    return st.ok();
  }

 private:
  kernels::NodeInfo info_;
  std::vector<Tensor> in_;
  std::unique_ptr<bool[]> const_;
  std::vector<const Tensor*> ptrs_;
  const kernels::OpDef* def_;
  kernels::PreparedCache cache_;
  Sink sink_;
};

double TimeMs(Node& node, ThreadPool* pool, int runs, int rounds) {
  for (int i = 0; i < 3; ++i) node.Run(pool);
  double best = 1e30;
  for (int r = 0; r < rounds; ++r) {
    std::vector<double> t;
    for (int i = 0; i < runs; ++i) {
      const auto t0 = std::chrono::steady_clock::now();
      node.Run(pool);
      t.push_back(
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    }
    std::sort(t.begin(), t.end());
    best = std::min(best, t[t.size() / 2]);
  }
  return best;
}

template <typename T>
Tensor Random(DataType dt, Shape s, std::mt19937& rng, int lo, int hi) {
  Tensor t = Tensor::Allocate(dt, s).value();
  std::uniform_int_distribution<int> d(lo, hi);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<T>()[i] = static_cast<T>(d(rng));
  return t;
}
Tensor Scalar(DataType dt, double v, Shape s = {}) {
  Tensor t = Tensor::Allocate(dt, s).value();
  for (int64_t i = 0; i < t.numel(); ++i) {
    if (dt == DataType::kFloat) t.data<float>()[i] = static_cast<float>(v);
    if (dt == DataType::kUInt8) t.data<uint8_t>()[i] = static_cast<uint8_t>(v);
    if (dt == DataType::kInt8) t.data<int8_t>()[i] = static_cast<int8_t>(v);
  }
  return t;
}

}  // namespace

int main(int argc, char** argv) {
  int threads = 2, runs = 15, rounds = 3;
  std::string only, layer;    // --layer C,M,HW,k,s: that shape only
  bool reduce_range = false;  // --weights 7bit: weights in [-64, 63] (ORT's reduce_range)
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--threads")) threads = std::atoi(argv[i + 1]);
    if (!std::strcmp(argv[i], "--runs")) runs = std::atoi(argv[i + 1]);
    if (!std::strcmp(argv[i], "--rounds")) rounds = std::atoi(argv[i + 1]);
    if (!std::strcmp(argv[i], "--net")) only = argv[i + 1];
    if (!std::strcmp(argv[i], "--layer")) layer = argv[i + 1];
    if (!std::strcmp(argv[i], "--weights")) reduce_range = !std::strcmp(argv[i + 1], "7bit");
  }
  ThreadPool pool(threads);
  std::printf(
      "igemm path: %s, %d threads; QLinearConv u8 x s8 (per-channel) -> u8 + Relu vs "
      "float Conv + Relu\n",
      kernels::cpu::IgemmIsaName(kernels::cpu::IgemmActiveIsa()), threads);
  std::mt19937 rng(1);
  for (auto [name, layers] : {std::pair{"resnet18", ResNet18()}, {"mobilenetv2", MobileNetV2()}}) {
    if (!only.empty() && only != name) continue;
    std::printf("\n%s\n%5s %5s %4s %2s %2s %5s %3s %10s %10s %6s\n", name, "C", "M", "HW", "k", "s",
                "group", "n", "fp32 ms", "int8 ms", "ratio");
    double tf = 0, tq = 0;
    for (const Layer& l : layers) {
      const std::string key = std::to_string(l.c) + "," + std::to_string(l.m) + "," +
                              std::to_string(l.hw) + "," + std::to_string(l.k) + "," +
                              std::to_string(l.s);
      if (!layer.empty() && key != layer) continue;
      const int p = l.k / 2;
      Attributes at;
      at.Set("kernel_shape", Ints({l.k, l.k}));
      at.Set("strides", Ints({l.s, l.s}));
      at.Set("pads", Ints({p, p, p, p}));
      at.Set("group", Num(l.group, 0, false));
      at.Set(kernels::kFusedMin, Num(0, 0.f, true));
      const Shape xs{1, l.c, l.hw, l.hw}, ws{l.m, l.c / l.group, l.k, l.k};
      std::uniform_real_distribution<float> u(-1.f, 1.f);
      Tensor xf = Tensor::Allocate(DataType::kFloat, xs).value();
      for (int64_t i = 0; i < xf.numel(); ++i) xf.data<float>()[i] = u(rng);
      Tensor wf = Tensor::Allocate(DataType::kFloat, ws).value();
      for (int64_t i = 0; i < wf.numel(); ++i) wf.data<float>()[i] = u(rng) * 0.1f;
      Tensor bf = Tensor::Allocate(DataType::kFloat, {l.m}).value();
      for (int64_t i = 0; i < l.m; ++i) bf.data<float>()[i] = u(rng);
      Node conv("Conv", at, {xf, wf, bf}, {false, true, true});
      Tensor xq = Random<uint8_t>(DataType::kUInt8, xs, rng, 0, 255);
      Tensor wq = Random<int8_t>(DataType::kInt8, ws, rng, reduce_range ? -64 : -127,
                                 reduce_range ? 63 : 127);
      Tensor bq = Random<int32_t>(DataType::kInt32, {l.m}, rng, -5000, 5000);
      Tensor wsc = Scalar(DataType::kFloat, 0.002, {l.m});
      Node qconv("QLinearConv", at,
                 {xq, Scalar(DataType::kFloat, 0.02), Scalar(DataType::kUInt8, 128), wq, wsc,
                  Scalar(DataType::kInt8, 0, {l.m}), Scalar(DataType::kFloat, 0.05),
                  Scalar(DataType::kUInt8, 100), bq},
                 {false, true, true, true, true, true, true, true, true});
      const double mf = TimeMs(conv, &pool, runs, rounds);
      const double mq = TimeMs(qconv, &pool, runs, rounds);
      tf += mf * l.count;
      tq += mq * l.count;
      std::printf("%5d %5d %4d %2d %2d %5d %3d %10.3f %10.3f %6.2f\n", l.c, l.m, l.hw, l.k, l.s,
                  l.group, l.count, mf, mq, mq / mf);
    }
    std::printf("%s convolutions total: fp32 %.2f ms, int8 %.2f ms, ratio %.2f\n", name, tf, tq,
                tq / tf);
  }
  return 0;
}
