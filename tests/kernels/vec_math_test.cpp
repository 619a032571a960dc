// The vectorized exp against libm's expf.
#include "cpu/vec_math.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

namespace outpost::kernels::cpu {
namespace {

float Lane0(__m256 v) { return _mm256_cvtss_f32(v); }

TEST(VecMath, ExpMatchesLibmAcrossTheRange) {
  double worst = 0;
  for (float x = -87.f; x <= 88.5f; x += 0.001373f) {
    const float got = Lane0(Exp8(_mm256_set1_ps(x))), want = std::exp(x);
    worst = std::max(worst, std::fabs(static_cast<double>(got) - want) / want);
  }
  EXPECT_LT(worst, 1e-6);
}

TEST(VecMath, ExpSaturatesAndPropagatesNan) {
  EXPECT_EQ(Lane0(Exp8(_mm256_set1_ps(100.f))), std::numeric_limits<float>::infinity());
  EXPECT_EQ(Lane0(Exp8(_mm256_set1_ps(-100.f))), 0.f);
  EXPECT_EQ(Lane0(Exp8(_mm256_set1_ps(-std::numeric_limits<float>::infinity()))), 0.f);
  EXPECT_TRUE(std::isnan(Lane0(Exp8(_mm256_set1_ps(std::nanf(""))))));
  EXPECT_EQ(Lane0(Exp8(_mm256_set1_ps(0.f))), 1.f);
}

}  // namespace
}  // namespace outpost::kernels::cpu
