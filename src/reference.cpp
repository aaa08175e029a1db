// The reference implementation: plain loops, every intermediate in double, one rounding per output. Read it as the
// specification of what the fast kernels compute. Two passes (mean, then squared deviations from it) keep the
// variance exact up to double rounding whatever the mean.
#include <simdnorm/reference.h>

#include <cmath>
#include <cstddef>
#include <vector>

#include "status.hpp"

namespace simdnorm {
namespace {

double gamma_of(const float* gamma, std::size_t c) { return gamma != nullptr ? gamma[c] : 1.0; }
double beta_of(const float* beta, std::size_t c) { return beta != nullptr ? beta[c] : 0.0; }

// The fused ReLU maps every value that is not > 0 to +0, and lets NaN through (it compares false).
double apply_activation(double value, unsigned flags) {
  return (flags & SIMDNORM_FUSE_RELU) != 0u && value <= 0.0 ? 0.0 : value;
}

}  // namespace
}  // namespace simdnorm

using simdnorm::Geometry;
using simdnorm::element_offset;

extern "C" simdnorm_status simdnorm_reference_forward_training(const simdnorm_shape* shape, const float* x, float* y,
                                                               const float* gamma, const float* beta, float eps,
                                                               float* batch_mean, float* batch_invstd,
                                                               float* running_mean, float* running_var,
                                                               float momentum, unsigned flags) {
  const char* fn = "simdnorm_reference_forward_training";
  Geometry g;
  const simdnorm_status status = simdnorm::validate(
      fn,
      simdnorm::TrainingArgs{shape, x, y, gamma, beta, eps, batch_mean, batch_invstd, running_mean, running_var,
                             momentum, flags},
      &g);
  if (status != SIMDNORM_SUCCESS) return status;

  const double m = static_cast<double>(g.per_channel);
  std::size_t first_bad = g.c;
  for (std::size_t c = 0; c < g.c; ++c) {
    double sum = 0.0;
    for (std::size_t n = 0; n < g.n; ++n) {
      for (std::size_t s = 0; s < g.spatial; ++s) sum += x[element_offset(g, n, c, s)];
    }
    const double mean = sum / m;
    double m2 = 0.0;
    for (std::size_t n = 0; n < g.n; ++n) {
      for (std::size_t s = 0; s < g.spatial; ++s) {
        const double d = x[element_offset(g, n, c, s)] - mean;
        m2 += d * d;
      }
    }
    const double var = m2 / m;
    const double invstd = 1.0 / std::sqrt(var + static_cast<double>(eps));
    const double gc = simdnorm::gamma_of(gamma, c);
    const double bc = simdnorm::beta_of(beta, c);
    for (std::size_t n = 0; n < g.n; ++n) {
      for (std::size_t s = 0; s < g.spatial; ++s) {
        const std::size_t i = element_offset(g, n, c, s);
        const double value = gc * (x[i] - mean) * invstd + bc;
        y[i] = static_cast<float>(simdnorm::apply_activation(value, flags));
      }
    }
    if (batch_mean != nullptr) batch_mean[c] = static_cast<float>(mean);
    if (batch_invstd != nullptr) batch_invstd[c] = static_cast<float>(invstd);
    const bool finite = std::isfinite(mean) && std::isfinite(var);
    if (!finite && first_bad == g.c) first_bad = c;
    if (running_mean != nullptr && finite) {
      const double mom = momentum;
      running_mean[c] = static_cast<float>((1.0 - mom) * running_mean[c] + mom * mean);
      running_var[c] = static_cast<float>((1.0 - mom) * running_var[c] + mom * (m2 / (m - 1.0)));
    }
  }
  if (first_bad != g.c) {
    return simdnorm::fail(SIMDNORM_NON_FINITE, "%s: the statistics of channel %zu are not finite (NaN or Inf in x)",
                          fn, first_bad);
  }
  return SIMDNORM_SUCCESS;
}

extern "C" simdnorm_status simdnorm_reference_forward_inference(const simdnorm_shape* shape, const float* x, float* y,
                                                                const float* gamma, const float* beta,
                                                                const float* mean, const float* var, float eps,
                                                                unsigned flags) {
  Geometry g;
  const simdnorm_status status = simdnorm::validate(
      "simdnorm_reference_forward_inference", simdnorm::InferenceArgs{shape, x, y, gamma, beta, mean, var, eps, flags},
      &g);
  if (status != SIMDNORM_SUCCESS) return status;
  for (std::size_t c = 0; c < g.c; ++c) {
    const double invstd = 1.0 / std::sqrt(static_cast<double>(var[c]) + static_cast<double>(eps));
    const double gc = simdnorm::gamma_of(gamma, c);
    const double bc = simdnorm::beta_of(beta, c);
    for (std::size_t n = 0; n < g.n; ++n) {
      for (std::size_t s = 0; s < g.spatial; ++s) {
        const std::size_t i = element_offset(g, n, c, s);
        y[i] = static_cast<float>(simdnorm::apply_activation(gc * (x[i] - static_cast<double>(mean[c])) * invstd + bc,
                                                             flags));
      }
    }
  }
  return SIMDNORM_SUCCESS;
}

extern "C" simdnorm_status simdnorm_reference_backward(const simdnorm_shape* shape, const float* x, const float* dy,
                                                       const float* gamma, const float* beta, const float* batch_mean,
                                                       const float* batch_invstd, float* dx, float* dgamma,
                                                       float* dbeta, unsigned flags) {
  Geometry g;
  const simdnorm_status status = simdnorm::validate(
      "simdnorm_reference_backward",
      simdnorm::BackwardArgs{shape, x, dy, gamma, beta, batch_mean, batch_invstd, dx, dgamma, dbeta, flags}, &g);
  if (status != SIMDNORM_SUCCESS) return status;

  const double m = static_cast<double>(g.per_channel);
  const bool relu = (flags & SIMDNORM_FUSE_RELU) != 0u;
  for (std::size_t c = 0; c < g.c; ++c) {
    const double mean = batch_mean[c];
    const double invstd = batch_invstd[c];
    const double gc = simdnorm::gamma_of(gamma, c);
    const double bc = simdnorm::beta_of(beta, c);
    // dy' is dy where the forward output was positive (with the fused ReLU), dy elsewhere.
    auto masked_dy = [&](std::size_t i) {
      const double xhat = (x[i] - mean) * invstd;
      return relu && gc * xhat + bc <= 0.0 ? 0.0 : static_cast<double>(dy[i]);
    };
    double sum_dy = 0.0, sum_dy_xhat = 0.0;
    for (std::size_t n = 0; n < g.n; ++n) {
      for (std::size_t s = 0; s < g.spatial; ++s) {
        const std::size_t i = element_offset(g, n, c, s);
        sum_dy += masked_dy(i);
        sum_dy_xhat += masked_dy(i) * (x[i] - mean) * invstd;
      }
    }
    if (dx != nullptr) {
      for (std::size_t n = 0; n < g.n; ++n) {
        for (std::size_t s = 0; s < g.spatial; ++s) {
          const std::size_t i = element_offset(g, n, c, s);
          const double xhat = (x[i] - mean) * invstd;
          const double value = gc * invstd * (masked_dy(i) - sum_dy / m - xhat * sum_dy_xhat / m);
          dx[i] = static_cast<float>(value);  // dx may be dy: element i of dy is not read after this
        }
      }
    }
    if (dgamma != nullptr) dgamma[c] = static_cast<float>(sum_dy_xhat);
    if (dbeta != nullptr) dbeta[c] = static_cast<float>(sum_dy);
  }
  return SIMDNORM_SUCCESS;
}

extern "C" simdnorm_status simdnorm_reference_fold(size_t c, const float* gamma, const float* beta, const float* mean,
                                                   const float* var, float eps, float* scale, float* shift) {
  const simdnorm_status status = simdnorm::validate(
      "simdnorm_reference_fold", simdnorm::FoldArgs{c, gamma, beta, mean, var, eps, scale, shift});
  if (status != SIMDNORM_SUCCESS) return status;
  for (std::size_t i = 0; i < c; ++i) {
    // shift is taken against the scale as returned, so that scale*x + shift is the normalisation up to one rounding.
    scale[i] = static_cast<float>(simdnorm::gamma_of(gamma, i) /
                                  std::sqrt(static_cast<double>(var[i]) + static_cast<double>(eps)));
    shift[i] = static_cast<float>(simdnorm::beta_of(beta, i) - static_cast<double>(mean[i]) * scale[i]);
  }
  return SIMDNORM_SUCCESS;
}

extern "C" simdnorm_status simdnorm_reference_affine(const simdnorm_shape* shape, const float* x, float* y,
                                                     const float* scale, const float* shift, unsigned flags) {
  Geometry g;
  const simdnorm_status status =
      simdnorm::validate("simdnorm_reference_affine", simdnorm::AffineArgs{shape, x, y, scale, shift, flags}, &g);
  if (status != SIMDNORM_SUCCESS) return status;
  for (std::size_t n = 0; n < g.n; ++n) {
    for (std::size_t c = 0; c < g.c; ++c) {
      for (std::size_t s = 0; s < g.spatial; ++s) {
        const std::size_t i = element_offset(g, n, c, s);
        const double value = static_cast<double>(x[i]) * scale[c] + static_cast<double>(shift[c]);
        y[i] = static_cast<float>(simdnorm::apply_activation(value, flags));
      }
    }
  }
  return SIMDNORM_SUCCESS;
}
