// Per-model input statistics for drift monitoring: for every input of every model, per feature
// (element of the last dimension) the count, mean, variance, min, max and a fixed-bin histogram
// over a window. Observe() is called on the request path: it only adds into per-thread-ish
// shards (one uncontended lock each), memory is bounded (max_features per input, max_inputs
// inputs in all). Flush() returns the window's records and starts the next window.
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "outpost/core/tensor.h"

namespace outpost::telemetry {

struct InputStatsOptions {
  int histogram_bins = 10;
  double histogram_min = 0.0;  // bins split [min, max) evenly; outside: `below` / `above`
  double histogram_max = 1.0;
  int max_features = 256;  // features tracked per input (the first ones)
  int sample_every = 1;    // one request in N per model
  int max_inputs = 64;     // (model, input) pairs tracked; more are ignored and counted
  int shards = 4;          // accumulators per input; a thread always uses the same one
};

class InputStats {
 public:
  explicit InputStats(InputStatsOptions options);
  ~InputStats();
  InputStats(const InputStats&) = delete;
  InputStats& operator=(const InputStats&) = delete;

  // Adds the numeric host tensors of one request (other types are skipped). Thread-safe.
  void Observe(std::string_view model, std::string_view version,
               const std::vector<std::pair<std::string, Tensor>>& inputs);

  // One record per (model, input) that saw data in the window, then resets the window:
  // {"model","version","input","window_start","window_end","requests","rows",
  //  "histogram":{"bins","min","max"},
  //  "features":[{"index","count","mean","variance","min","max","nan","below","above",
  //               "histogram":[counts]}]}
  // `variance` is the population variance (divided by count); features with no finite value
  // have count 0 and no mean/variance/min/max.
  std::vector<nlohmann::json> Flush(int64_t window_start_ms, int64_t window_end_ms);

  const InputStatsOptions& options() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace outpost::telemetry
