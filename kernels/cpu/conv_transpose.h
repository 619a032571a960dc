// ConvTranspose's geometry and GEMM + col2im body, shared by ConvTranspose and the com.microsoft
// QLinearConvTranspose.
#pragma once

#include "cpu/common.h"
#include "cpu/gemm.h"

namespace outpost::kernels::cpu {

struct ConvTransposePlan {
  ConvGeom g;  // of the equivalent convolution: image = the output, positions = the input
  Shape yshape;
  int64_t c = 0, m = 0, group = 1;
};

// Validates X/W shapes and the attributes (strides, dilations, pads / auto_pad, output_padding,
// output_shape, group) and computes the output shape.
Expected<ConvTransposePlan> PlanConvTranspose(KernelContext& ctx, const Shape& x, const Shape& w);

// y [N, M, out...] = transposed convolution of x [N, C, in...] with w [C, M/group, k...], + bias.
template <typename C>
inline void RunConvTranspose(ThreadPool* pool, const ConvGeom& g, int64_t n, int64_t c, int64_t m,
                             int64_t group, const C* x, const C* w, const C* bias, C* y) {
  // g.in: the output image; g.out: the input positions (the GEMM's columns).
  const int64_t cg = c / group, mg = m / group, rows = mg * g.k_size;
  C* col = Scratch<C>(static_cast<size_t>(rows * g.out_size), 1);
  for (int64_t b = 0; b < n; ++b) {
    for (int64_t gi = 0; gi < group; ++gi) {
      Gemm<C>(pool, true, false, rows, g.out_size, cg, C(1), w + gi * cg * rows, rows,
              x + (b * c + gi * cg) * g.out_size, g.out_size, C(0), col, g.out_size);
      C* yg = y + (b * m + gi * mg) * g.in_size;
      for (int64_t o = 0; o < mg; ++o)
        std::fill(yg + o * g.in_size, yg + (o + 1) * g.in_size, bias ? bias[gi * mg + o] : C(0));
      Col2Im(g, mg, col, yg);
    }
  }
}

}  // namespace outpost::kernels::cpu
