#include "outpost/telemetry/input_stats.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <functional>
#include <limits>
#include <map>
#include <mutex>
#include <shared_mutex>
#include <thread>

#include "outpost/core/metrics.h"

namespace outpost::telemetry {
namespace {

// One shard's sums for one input. Sums are kept around a shift (the first value seen per
// feature) so that the variance stays accurate for data far from zero.
struct Shard {
  std::mutex mu;
  uint64_t requests = 0;
  uint64_t rows = 0;
  std::string version;                               // of the last request this shard saw
  std::vector<uint64_t> n, nan, below, above, hist;  // hist: features x bins
  std::vector<double> shift, s1, s2, mn, mx;
  std::vector<uint8_t> has_shift;

  void Init(size_t features, size_t bins) {
    n.assign(features, 0);
    nan.assign(features, 0);
    below.assign(features, 0);
    above.assign(features, 0);
    hist.assign(features * bins, 0);
    shift.assign(features, 0);
    s1.assign(features, 0);
    s2.assign(features, 0);
    mn.assign(features, std::numeric_limits<double>::infinity());
    mx.assign(features, -std::numeric_limits<double>::infinity());
    has_shift.assign(features, 0);
    requests = rows = 0;
  }
};

struct Accum {
  std::string model, input;
  size_t features = 0;  // fixed at the first request: min(last dim, max_features)
  std::vector<std::unique_ptr<Shard>> shards;
};

// The types Observe() reads (Float16/BFloat16, bool and strings are skipped).
bool IsNumeric(DataType t) {
  return IsInteger(t) || t == DataType::kFloat || t == DataType::kDouble;
}

size_t ShardIndex(size_t shards) {
  static thread_local const size_t h = std::hash<std::thread::id>{}(std::this_thread::get_id());
  return h % shards;
}

}  // namespace

struct InputStats::Impl {
  InputStatsOptions o;
  double bin_width = 0;
  mutable std::shared_mutex mu;  // guards `accums` (the map, not the sums)
  std::map<std::string, std::unique_ptr<Accum>, std::less<>> accums;
  std::mutex sample_mu;
  std::map<std::string, uint64_t, std::less<>> sample_count;
  Counter* ignored = nullptr;

  Accum* Get(std::string_view model, const std::string& input, const Tensor& t) {
    std::string key;
    key.reserve(model.size() + 1 + input.size());
    key.append(model).push_back('\0');
    key.append(input);
    {
      std::shared_lock<std::shared_mutex> lk(mu);
      auto it = accums.find(key);
      if (it != accums.end()) return it->second.get();
    }
    std::unique_lock<std::shared_mutex> lk(mu);
    auto it = accums.find(key);
    if (it != accums.end()) return it->second.get();
    if (static_cast<int>(accums.size()) >= o.max_inputs) {
      ignored->Inc();
      return nullptr;
    }
    auto a = std::make_unique<Accum>();
    a->model = std::string(model);
    a->input = input;
    const int64_t last = t.rank() == 0 ? 1 : t.dim(t.rank() - 1);
    a->features = static_cast<size_t>(std::clamp<int64_t>(last, 1, o.max_features));
    for (int i = 0; i < std::max(1, o.shards); ++i) {
      a->shards.push_back(std::make_unique<Shard>());
      a->shards.back()->Init(a->features, static_cast<size_t>(o.histogram_bins));
    }
    Accum* raw = a.get();
    accums.emplace(std::move(key), std::move(a));
    return raw;
  }

  template <typename T>
  void Add(Shard& s, const T* p, int64_t count, int64_t last, size_t features) {
    const size_t bins = static_cast<size_t>(o.histogram_bins);
    for (int64_t i = 0; i < count; ++i) {
      const size_t f = static_cast<size_t>(last > 0 ? i % last : 0);
      if (f >= features) continue;
      const double v = static_cast<double>(p[i]);
      if (std::isnan(v)) {
        ++s.nan[f];
        continue;
      }
      if (!s.has_shift[f]) {
        s.has_shift[f] = 1;
        s.shift[f] = std::isfinite(v) ? v : 0.0;
      }
      if (std::isfinite(v)) {
        const double d = v - s.shift[f];
        ++s.n[f];
        s.s1[f] += d;
        s.s2[f] += d * d;
        s.mn[f] = std::min(s.mn[f], v);
        s.mx[f] = std::max(s.mx[f], v);
      }
      if (v < o.histogram_min) {
        ++s.below[f];
      } else if (v >= o.histogram_max) {
        ++s.above[f];
      } else {
        size_t b = static_cast<size_t>((v - o.histogram_min) / bin_width);
        if (b >= bins) b = bins - 1;  // rounding at the top edge
        ++s.hist[f * bins + b];
      }
    }
  }
};

InputStats::InputStats(InputStatsOptions options) : impl_(std::make_unique<Impl>()) {
  impl_->o = options;
  impl_->o.histogram_bins = std::max(1, impl_->o.histogram_bins);
  impl_->o.max_features = std::max(1, impl_->o.max_features);
  impl_->o.sample_every = std::max(1, impl_->o.sample_every);
  impl_->o.shards = std::max(1, impl_->o.shards);
  if (!(impl_->o.histogram_max > impl_->o.histogram_min))
    impl_->o.histogram_max = impl_->o.histogram_min + 1;
  impl_->bin_width = (impl_->o.histogram_max - impl_->o.histogram_min) / impl_->o.histogram_bins;
  impl_->ignored = &MetricsRegistry::Global().GetCounter(
      "outpost_telemetry_input_stats_ignored_total",
      "Model inputs not tracked for drift statistics (over max_inputs)");
}

InputStats::~InputStats() = default;

const InputStatsOptions& InputStats::options() const { return impl_->o; }

void InputStats::Observe(std::string_view model, std::string_view version,
                         const std::vector<std::pair<std::string, Tensor>>& inputs) {
  if (impl_->o.sample_every > 1) {
    std::lock_guard<std::mutex> lk(impl_->sample_mu);
    auto it = impl_->sample_count.find(model);
    if (it == impl_->sample_count.end())
      it = impl_->sample_count.emplace(std::string(model), 0).first;
    if (it->second++ % static_cast<uint64_t>(impl_->o.sample_every) != 0) return;
  }
  for (const auto& [name, t] : inputs) {
    if (!t.on_host() || !t.has_data() || !IsNumeric(t.dtype()) || t.numel() == 0) continue;
    Accum* a = impl_->Get(model, name, t);
    if (a == nullptr) continue;
    Shard& s = *a->shards[ShardIndex(a->shards.size())];
    const int64_t last = t.rank() == 0 ? 1 : t.dim(t.rank() - 1);
    std::lock_guard<std::mutex> lk(s.mu);
    ++s.requests;
    s.rows += static_cast<uint64_t>(t.numel() / std::max<int64_t>(1, last));
    if (s.version != version) s.version = std::string(version);
    const int64_t n = t.numel();
    switch (t.dtype()) {
      case DataType::kFloat:
        impl_->Add(s, t.data<float>(), n, last, a->features);
        break;
      case DataType::kDouble:
        impl_->Add(s, t.data<double>(), n, last, a->features);
        break;
      case DataType::kUInt8:
        impl_->Add(s, t.data<uint8_t>(), n, last, a->features);
        break;
      case DataType::kInt8:
        impl_->Add(s, t.data<int8_t>(), n, last, a->features);
        break;
      case DataType::kUInt16:
        impl_->Add(s, t.data<uint16_t>(), n, last, a->features);
        break;
      case DataType::kInt16:
        impl_->Add(s, t.data<int16_t>(), n, last, a->features);
        break;
      case DataType::kInt32:
        impl_->Add(s, t.data<int32_t>(), n, last, a->features);
        break;
      case DataType::kInt64:
        impl_->Add(s, t.data<int64_t>(), n, last, a->features);
        break;
      case DataType::kUInt32:
        impl_->Add(s, t.data<uint32_t>(), n, last, a->features);
        break;
      case DataType::kUInt64:
        impl_->Add(s, t.data<uint64_t>(), n, last, a->features);
        break;
      default:
        break;
    }
  }
}

std::vector<nlohmann::json> InputStats::Flush(int64_t window_start_ms, int64_t window_end_ms) {
  std::vector<nlohmann::json> out;
  std::shared_lock<std::shared_mutex> lk(impl_->mu);
  const size_t bins = static_cast<size_t>(impl_->o.histogram_bins);
  for (auto& [key, a] : impl_->accums) {
    const size_t F = a->features;
    // Merged per feature: count, mean, M2 (Chan et al.), min, max, counts.
    std::vector<uint64_t> n(F, 0), nan(F, 0), below(F, 0), above(F, 0), hist(F * bins, 0);
    std::vector<double> mean(F, 0), m2(F, 0);
    std::vector<double> mn(F, std::numeric_limits<double>::infinity());
    std::vector<double> mx(F, -std::numeric_limits<double>::infinity());
    uint64_t requests = 0, rows = 0;
    std::string version;
    for (auto& sp : a->shards) {
      Shard& s = *sp;
      std::lock_guard<std::mutex> sl(s.mu);
      requests += s.requests;
      rows += s.rows;
      if (s.requests) version = s.version;
      for (size_t f = 0; f < F; ++f) {
        nan[f] += s.nan[f];
        below[f] += s.below[f];
        above[f] += s.above[f];
        for (size_t b = 0; b < bins; ++b) hist[f * bins + b] += s.hist[f * bins + b];
        if (s.n[f] == 0) continue;
        const double nb = static_cast<double>(s.n[f]);
        const double mb = s.shift[f] + s.s1[f] / nb;
        const double m2b = std::max(0.0, s.s2[f] - s.s1[f] * s.s1[f] / nb);
        const double na = static_cast<double>(n[f]);
        const double delta = mb - mean[f];
        const double nt = na + nb;
        mean[f] += delta * nb / nt;
        m2[f] += m2b + delta * delta * na * nb / nt;
        n[f] += s.n[f];
        mn[f] = std::min(mn[f], s.mn[f]);
        mx[f] = std::max(mx[f], s.mx[f]);
      }
      s.Init(F, bins);
    }
    if (requests == 0) continue;
    nlohmann::json features = nlohmann::json::array();
    for (size_t f = 0; f < F; ++f) {
      nlohmann::json j = {
          {"index", f}, {"count", n[f]}, {"nan", nan[f]}, {"below", below[f]}, {"above", above[f]}};
      if (n[f] > 0) {
        j["mean"] = mean[f];
        j["variance"] = m2[f] / static_cast<double>(n[f]);
        j["min"] = mn[f];
        j["max"] = mx[f];
      }
      j["histogram"] = std::vector<uint64_t>(hist.begin() + static_cast<long>(f * bins),
                                             hist.begin() + static_cast<long>((f + 1) * bins));
      features.push_back(std::move(j));
    }
    out.push_back(
        {{"model", a->model},
         {"version", version},
         {"input", a->input},
         {"window_start", window_start_ms},
         {"window_end", window_end_ms},
         {"requests", requests},
         {"rows", rows},
         {"histogram",
          {{"bins", bins}, {"min", impl_->o.histogram_min}, {"max", impl_->o.histogram_max}}},
         {"features", std::move(features)}});
  }
  return out;
}

}  // namespace outpost::telemetry
