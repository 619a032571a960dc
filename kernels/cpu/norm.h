// Shared body of the normalization kernels (LayerNorm, RMSNorm, InstanceNorm, GroupNorm).
#pragma once

#include <cmath>
#include <cstdint>
#include <vector>

#include "cpu/common.h"
#include "cpu/scratch.h"

namespace outpost::kernels::cpu {

// Normalizes `rows` contiguous rows of `len` elements: y = (x - mean) * inv_std * scale + bias,
// where inv_std = 1 / sqrt(var + eps); with rms, mean is 0 and var is mean(x^2). sb(r, j, &s, &b)
// supplies scale and bias for element j of row r. mean_out/inv_out (nullable) receive per-row
// statistics. Statistics accumulate in double.
template <typename T, typename SB>
void NormRows(ThreadPool& pool, const T* x, T* y, int64_t rows, int64_t len, double eps, bool rms,
              SB&& sb, float* mean_out = nullptr, float* inv_out = nullptr) {
  using A = Acc<T>;
  pool.ParallelFor(rows, std::max<int64_t>(1, 8192 / std::max<int64_t>(len, 1)),
                   [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const T* xr = x + r * len;
      T* yr = y + r * len;
      double mean = 0, var = 0;
      if (!rms) {
        for (int64_t j = 0; j < len; ++j) mean += static_cast<double>(xr[j]);
        mean /= static_cast<double>(len);
      }
      for (int64_t j = 0; j < len; ++j) {
        const double d = static_cast<double>(xr[j]) - mean;
        var += d * d;
      }
      var /= static_cast<double>(len);
      const double inv = 1.0 / std::sqrt(var + eps);
      if (mean_out) mean_out[r] = static_cast<float>(mean);
      if (inv_out) inv_out[r] = static_cast<float>(inv);
      const A m = static_cast<A>(mean), iv = static_cast<A>(inv);
      for (int64_t j = 0; j < len; ++j) {
        A s, b;
        sb(r, j, &s, &b);
        yr[j] = FromAcc<T>((static_cast<A>(xr[j]) - m) * iv * s + b);
      }
    }
  });
}

// A small (per-channel) tensor's values as double, on the scratch arena; empty for a null tensor.
class ScratchDoubles : public ScratchVec<double> {
 public:
  explicit ScratchDoubles(const Tensor* t) : ScratchVec<double>(t ? t->numel() : 0) {
    for (size_t i = 0; i < size(); ++i) (*this)[i] = ReadDouble(*t, static_cast<int64_t>(i));
  }
};

}  // namespace outpost::kernels::cpu
