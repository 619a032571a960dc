#include "calibrate.h"

#include <cmath>
#include <limits>

namespace outpost::quantize {

float PercentileThreshold(const std::vector<double>& hist, double bin_width, double percentile) {
  double total = 0;
  for (double h : hist) total += h;
  if (total <= 0) return 0;
  const double want = total * percentile / 100.0;
  double acc = 0;
  for (size_t i = 0; i < hist.size(); ++i) {
    acc += hist[i];
    if (acc >= want) return static_cast<float>((i + 1) * bin_width);
  }
  return static_cast<float>(hist.size() * bin_width);
}

namespace {

double KlDivergence(const std::vector<double>& p, const std::vector<double>& q) {
  double sp = 0, sq = 0;
  for (size_t i = 0; i < p.size(); ++i) sp += p[i], sq += q[i];
  if (sp <= 0 || sq <= 0) return std::numeric_limits<double>::infinity();
  double kl = 0;
  for (size_t i = 0; i < p.size(); ++i) {
    if (p[i] <= 0) continue;
    if (q[i] <= 0) return std::numeric_limits<double>::infinity();
    kl += (p[i] / sp) * std::log((p[i] / sp) / (q[i] / sq));
  }
  return kl;
}

}  // namespace

float EntropyThreshold(const std::vector<double>& hist, double bin_width, int levels) {
  const int n = static_cast<int>(hist.size());
  if (n <= levels) return static_cast<float>(n * bin_width);
  double best = std::numeric_limits<double>::infinity();
  int best_i = n;
  std::vector<double> p, q;
  for (int i = levels; i <= n; ++i) {
    // Reference: the first i bins, with everything beyond clipped into the last one.
    p.assign(hist.begin(), hist.begin() + i);
    for (int j = i; j < n; ++j) p[i - 1] += hist[j];
    // Candidate: the first i bins merged into `levels` groups, each group's mass spread evenly
    // over its non-empty bins.
    q.assign(i, 0.0);
    for (int l = 0; l < levels; ++l) {
      const int b = static_cast<int>(static_cast<int64_t>(l) * i / levels);
      const int e = static_cast<int>(static_cast<int64_t>(l + 1) * i / levels);
      double mass = 0;
      int nonzero = 0;
      for (int j = b; j < e; ++j) {
        mass += hist[j];
        nonzero += hist[j] > 0;
      }
      if (nonzero == 0) continue;
      for (int j = b; j < e; ++j)
        if (hist[j] > 0) q[j] = mass / nonzero;
    }
    const double kl = KlDivergence(p, q);
    if (kl < best) best = kl, best_i = i;
  }
  return static_cast<float>(best_i * bin_width);
}

}  // namespace outpost::quantize
