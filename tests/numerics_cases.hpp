// Data the numerics tests of batch norm (test_numerics.cpp) and of LayerNorm, RMSNorm and GroupNorm
// (test_norms_numerics.cpp) both pose.
#ifndef SIMDNORM_TESTS_NUMERICS_CASES_HPP_
#define SIMDNORM_TESTS_NUMERICS_CASES_HPP_

#include <cmath>

#include "checkers.hpp"

namespace simdnorm_test {

// Large means: mean/std of 1e4 and 3e5. The float data themselves carry only about log2(1/(ratio * FLT_EPSILON))
// bits of the deviations, so the inverse standard deviation is held to 1e-4 relative (of the double reference on the
// same float data) and the mean to a few ulps of itself.
struct LargeMeanCase {
  double scale;  // s: x = ratio * s * (1 + U[0, 0.1]) + s * N(0, 1)
  double ratio;  // mean / std
  float eps;     // small enough not to hide the variance

  InputDistribution input() const {
    InputDistribution dist;
    dist.mean_lo = ratio * scale;
    dist.mean_hi = 1.1 * ratio * scale;
    dist.stddev_lo = dist.stddev_hi = std::fabs(scale);
    return dist;
  }
};
inline constexpr LargeMeanCase kLargeMeanCases[] = {
    {1.0, 1e4, 1e-5f}, {1.0, 3e5, 1e-5f}, {1e-3, 3e5, 1e-12f}, {-1.0, 1e4, 1e-5f}};

// Means with few bits (dyadic), around which exactly representable data are built: every partial sum is exact in
// float (benchdnn's trick).
inline constexpr double kDyadicMeans[] = {3.5, -12.25, 0.0, 0.75, -0.5, 100.125, 1024.0, -7.0};

}  // namespace simdnorm_test

#endif  // SIMDNORM_TESTS_NUMERICS_CASES_HPP_
