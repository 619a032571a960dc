// Window element counts of average pooling, shared by AveragePool and QLinearAveragePool.
#pragma once

#include "cpu/gemm.h"
#include "cpu/scratch.h"

namespace outpost::kernels::cpu {

// counts[o] (g.out_size of them) = the number of window positions of output o inside the input
// (with include_pad: inside the padded input), the product over the spatial dims.
inline void AveragePoolCounts(const ConvGeom& g, bool include_pad, int64_t* counts) {
  ScratchVec<int64_t> cnt0(g.out[0]), cnt1(g.out[1]), cnt2(g.out[2]);
  ScratchVec<int64_t>* cnt[ConvGeom::kDims] = {&cnt0, &cnt1, &cnt2};
  for (int d = 0; d < ConvGeom::kDims; ++d) {
    const int64_t lo = include_pad ? -g.pb[d] : 0, hi = g.in[d] + (include_pad ? g.pe[d] : 0);
    for (int64_t o = 0; o < g.out[d]; ++o) {
      int64_t c = 0;
      for (int64_t k = 0; k < g.k[d]; ++k) {
        const int64_t pos = o * g.s[d] - g.pb[d] + k * g.d[d];
        c += pos >= lo && pos < hi;
      }
      (*cnt[d])[o] = c;
    }
  }
  int64_t o = 0;
  for (int64_t a = 0; a < g.out[0]; ++a)
    for (int64_t b = 0; b < g.out[1]; ++b)
      for (int64_t c = 0; c < g.out[2]; ++c, ++o) counts[o] = cnt0[a] * cnt1[b] * cnt2[c];
}

}  // namespace outpost::kernels::cpu
