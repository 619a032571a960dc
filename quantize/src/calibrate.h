// Activation range selection from histograms of |x| (percentile, KL-divergence entropy).
#pragma once

#include <cstdint>
#include <vector>

namespace outpost::quantize {

constexpr int kHistogramBins = 2048;

// Smallest threshold T (a bin edge) such that `percentile` % of the counted |values| are <= T.
float PercentileThreshold(const std::vector<double>& hist, double bin_width, double percentile);

// TensorRT-style entropy calibration: the threshold whose clipped-then-quantized (`levels` bins)
// distribution is closest to the original one in KL divergence.
float EntropyThreshold(const std::vector<double>& hist, double bin_width, int levels);

}  // namespace outpost::quantize
