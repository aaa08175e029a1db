// The per-channel arithmetic in scalar, for baseline code: the same formulas, with the same roundings, as the vector
// kernels' per-channel steps (kernels/channel.hpp: stats_rows, fold_wide, grad_finish_rows), so that a channel
// finished either way gives the same bits (tests/kernels/test_channel_kernels.cpp holds them to it). Only baseline units include this file.
#ifndef SIMDNORM_SRC_CORE_CHANNEL_MATH_HPP_
#define SIMDNORM_SRC_CORE_CHANNEL_MATH_HPP_

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>

namespace simdnorm {

// mean and invstd of a channel rounded to float, from its mean and M2 over m values in double: var = m2/m,
// invstd = 1/sqrt(var + eps).
struct RoundedStats {
  float mean, invstd;
};
inline RoundedStats round_stats(double mean, double m2, double m, float eps) {
  return RoundedStats{static_cast<float>(mean),
                      static_cast<float>(1.0 / std::sqrt(m2 / m + static_cast<double>(eps)))};
}

// Mean and M2 of m values in double, two passes; for_each(f) calls f(value) for every value. What a piece whose float
// lanes overflowed on finite data (|x − shift| near 1e19 and beyond: squares past FLT_MAX) is recomputed with, so
// that every variance a double can hold comes out right.
struct ExactMoments {
  double mean, m2;
};
template <class ForEach>
ExactMoments two_pass_moments(const ForEach& for_each, double m) {
  double sum = 0.0;
  for_each([&](float value) { sum += value; });
  const double mean = sum / m;
  double m2 = 0.0;
  for_each([&](float value) { m2 += (value - mean) * (value - mean); });
  return ExactMoments{mean, m2};
}

// y = a*x + b with a = gamma*invstd and b = beta - mean*a, each rounded once to float, b from the rounded a: then
// a*x + b = a*(x − mean) + beta up to the rounding of b, so the rounding of a costs |a*(x − mean)| ulps rather than
// |a*x|. Training, the ReLU mask of backward (which must reproduce the forward output exactly) and inference folding
// all round this way.
struct Coefficients {
  float a, b;
};
inline Coefficients fold_coefficients(const float* gamma, const float* beta, std::size_t c, double mean,
                                      double invstd) {
  const double g = gamma != nullptr ? gamma[c] : 1.0;
  const double b = beta != nullptr ? beta[c] : 0.0;
  const float a = static_cast<float>(g * invstd);
  return Coefficients{a, static_cast<float>(b - mean * static_cast<double>(a))};
}

// The backward coefficients of dx from the sums over m values: sum_dy = Σdy' and sum_dy_xhat = Σdy'*xhat (the
// latter formed as Σdy'(x − mean) * invstd, in double): k_dy = gamma*invstd, mean_dy = sum_dy/m,
// mean_dy_xhat = sum_dy_xhat/m, each rounded once (as grad_finish_rows rounds them).
struct GradScalars {
  float k_dy, mean_dy, mean_dy_xhat;
};
inline GradScalars grad_scalars(double gamma, double invstd, double sum_dy, double sum_dy_xhat, double m) {
  const double inv_m = 1.0 / m;
  return GradScalars{static_cast<float>(gamma * invstd), static_cast<float>(sum_dy * inv_m),
                     static_cast<float>(sum_dy_xhat * inv_m)};
}

// Whether a[i] and b[i] are finite for every i < n. It runs over every channel of every call, and the channels that
// fail it are rare, so it is written for GCC to vectorise with any instruction set: on the bits, an exponent of all
// ones (infinity or NaN) carries into the sign bit when its lowest bit is added, and nothing else does. (The form
// with fabs(x) <= DBL_MAX compiled to a scalar loop, 15% of a one-thread 1x2048x7x7 training.)
inline bool all_finite(const double* a, const double* b, std::size_t n) {
  constexpr std::uint64_t kExponent = 0x7ff0000000000000u;
  constexpr std::uint64_t kExponentLsb = std::uint64_t{1} << 52;
  std::uint64_t carries = 0;
  for (std::size_t i = 0; i < n; ++i) {
    std::uint64_t x, y;
    std::memcpy(&x, a + i, sizeof x);
    std::memcpy(&y, b + i, sizeof y);
    carries |= ((x & kExponent) + kExponentLsb) | ((y & kExponent) + kExponentLsb);
  }
  return carries >> 63 == 0;
}

}  // namespace simdnorm

#endif  // SIMDNORM_SRC_CORE_CHANNEL_MATH_HPP_
