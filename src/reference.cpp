// The reference implementation: plain loops, every intermediate in double, one rounding per output. Read it as the
// specification of what the fast kernels compute. Two passes (mean, then squared deviations from it) keep the
// variance exact up to double rounding whatever the mean. The split-phase functions are the one-call ones cut at
// their reductions, through the same per-channel helpers, so the two cannot drift apart.
#include <simdnorm/reference.h>

#include <cmath>
#include <cstddef>

#include "status.hpp"

namespace simdnorm {
namespace {

double gamma_of(const float* gamma, std::size_t c) { return gamma != nullptr ? gamma[c] : 1.0; }
double beta_of(const float* beta, std::size_t c) { return beta != nullptr ? beta[c] : 0.0; }

// The fused ReLU maps every value that is not > 0 to +0, and lets NaN through (it compares false).
double apply_activation(double value, unsigned flags) {
  return (flags & SIMDNORM_FUSE_RELU) != 0u && value <= 0.0 ? 0.0 : value;
}

// Calls body(i) with the offset i of every value of channel c, batch by batch.
template <class Body>
void for_channel(const Geometry& g, std::size_t c, const Body& body) {
  for (std::size_t n = 0; n < g.n; ++n) {
    for (std::size_t s = 0; s < g.spatial; ++s) body(element_offset(g, n, c, s));
  }
}

// A channel's mean and M2 (sum of squared deviations from the mean), in two passes.
struct ChannelMoments {
  double mean, m2;
};
ChannelMoments channel_moments(const Geometry& g, const float* x, std::size_t c) {
  double sum = 0.0;
  for_channel(g, c, [&](std::size_t i) { sum += x[i]; });
  const double mean = sum / static_cast<double>(g.per_channel);
  double m2 = 0.0;
  for_channel(g, c, [&](std::size_t i) {
    const double d = x[i] - mean;
    m2 += d * d;
  });
  return ChannelMoments{mean, m2};
}

// What training derives from a channel's mean and M2 over m values: invstd = 1/sqrt(m2/m + eps), which it returns,
// batch_mean and batch_invstd (each may be NULL), and, if the mean and variance are finite (*finite), the running
// statistics with the unbiased variance m2/(m - 1).
double finish_channel(std::size_t c, double mean, double m2, double m, float eps, float* batch_mean,
                      float* batch_invstd, float* running_mean, float* running_var, float momentum, bool* finite) {
  const double var = m2 / m;
  const double invstd = 1.0 / std::sqrt(var + static_cast<double>(eps));
  if (batch_mean != nullptr) batch_mean[c] = static_cast<float>(mean);
  if (batch_invstd != nullptr) batch_invstd[c] = static_cast<float>(invstd);
  *finite = std::isfinite(mean) && std::isfinite(var);
  if (running_mean != nullptr && *finite) {
    const double mom = momentum;
    running_mean[c] = static_cast<float>((1.0 - mom) * running_mean[c] + mom * mean);
    running_var[c] = static_cast<float>((1.0 - mom) * running_var[c] + mom * (m2 / (m - 1.0)));
  }
  return invstd;
}

simdnorm_status non_finite(const char* fn, std::size_t c, const char* cause) {
  return fail(SIMDNORM_NON_FINITE, "%s: the statistics of channel %zu are not finite (%s)", fn, c, cause);
}

// y = gamma * (x - mean) * invstd + beta over channel c, in double, rounded once; y may be x.
void normalize_channel(const Geometry& g, const float* x, float* y, std::size_t c, double gamma, double beta,
                       double mean, double invstd, unsigned flags) {
  for_channel(g, c, [&](std::size_t i) {
    y[i] = static_cast<float>(apply_activation(gamma * (x[i] - mean) * invstd + beta, flags));
  });
}

// One channel of backward: its saved statistics and parameters, xhat, and dy' = dy where the forward output,
// recomputed in double, was positive with the fused ReLU (dy everywhere without it).
struct BackwardChannel {
  double mean, invstd, gamma, beta;
  bool relu;

  double xhat(double x) const { return (x - mean) * invstd; }
  double masked_dy(double x, float dy) const { return relu && gamma * xhat(x) + beta <= 0.0 ? 0.0 : dy; }
};
BackwardChannel backward_channel(const float* gamma, const float* beta, const float* batch_mean,
                                 const float* batch_invstd, std::size_t c, unsigned flags) {
  return BackwardChannel{batch_mean[c], batch_invstd[c], gamma_of(gamma, c), beta_of(beta, c),
                         (flags & SIMDNORM_FUSE_RELU) != 0u};
}

// sum(dy') and sum(dy' * xhat) over channel c.
void backward_sums(const Geometry& g, const float* x, const float* dy, std::size_t c, const BackwardChannel& k,
                   double* sum_dy, double* sum_dy_xhat) {
  double s = 0.0, sx = 0.0;
  for_channel(g, c, [&](std::size_t i) {
    const double masked = k.masked_dy(x[i], dy[i]);
    s += masked;
    sx += masked * (x[i] - k.mean) * k.invstd;
  });
  *sum_dy = s;
  *sum_dy_xhat = sx;
}

// dx = gamma * invstd * (dy' - sum_dy/m - xhat * sum_dy_xhat/m) over channel c; dx may be dy (element i of dy is not
// read after dx[i] is written).
void backward_dx(const Geometry& g, const float* x, const float* dy, float* dx, std::size_t c,
                 const BackwardChannel& k, double sum_dy, double sum_dy_xhat, double m) {
  for_channel(g, c, [&](std::size_t i) {
    const double value = k.gamma * k.invstd * (k.masked_dy(x[i], dy[i]) - sum_dy / m - k.xhat(x[i]) * sum_dy_xhat / m);
    dx[i] = static_cast<float>(value);
  });
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

  std::size_t first_bad = g.c;
  for (std::size_t c = 0; c < g.c; ++c) {
    const simdnorm::ChannelMoments mo = simdnorm::channel_moments(g, x, c);
    bool finite = true;
    const double invstd =
        simdnorm::finish_channel(c, mo.mean, mo.m2, static_cast<double>(g.per_channel), eps, batch_mean,
                                 batch_invstd, running_mean, running_var, momentum, &finite);
    if (!finite && first_bad == g.c) first_bad = c;
    simdnorm::normalize_channel(g, x, y, c, simdnorm::gamma_of(gamma, c), simdnorm::beta_of(beta, c), mo.mean,
                                invstd, flags);
  }
  return first_bad != g.c ? simdnorm::non_finite(fn, first_bad, "NaN or Inf in x") : SIMDNORM_SUCCESS;
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
    simdnorm::normalize_channel(g, x, y, c, simdnorm::gamma_of(gamma, c), simdnorm::beta_of(beta, c), mean[c], invstd,
                                flags);
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
  for (std::size_t c = 0; c < g.c; ++c) {
    const simdnorm::BackwardChannel k = simdnorm::backward_channel(gamma, beta, batch_mean, batch_invstd, c, flags);
    double sum_dy = 0.0, sum_dy_xhat = 0.0;
    simdnorm::backward_sums(g, x, dy, c, k, &sum_dy, &sum_dy_xhat);
    if (dx != nullptr) simdnorm::backward_dx(g, x, dy, dx, c, k, sum_dy, sum_dy_xhat, m);
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

// ---- Split phases ----

extern "C" simdnorm_status simdnorm_reference_moments(const simdnorm_shape* shape, const float* x, double* mean,
                                                      double* m2) {
  Geometry g;
  const simdnorm_status status =
      simdnorm::validate("simdnorm_reference_moments", simdnorm::MomentsArgs{shape, x, mean, m2}, &g);
  if (status != SIMDNORM_SUCCESS) return status;
  for (std::size_t c = 0; c < g.c; ++c) {
    const simdnorm::ChannelMoments mo = simdnorm::channel_moments(g, x, c);
    mean[c] = mo.mean;
    m2[c] = mo.m2;
  }
  return SIMDNORM_SUCCESS;
}

extern "C" simdnorm_status simdnorm_reference_merge_moments(size_t parts, size_t c, const double* counts,
                                                            const double* means, const double* m2s, double* mean,
                                                            double* m2, double* total) {
  const simdnorm_status status = simdnorm::validate(
      "simdnorm_reference_merge_moments", simdnorm::MergeArgs{parts, c, counts, means, m2s, mean, m2, total});
  if (status != SIMDNORM_SUCCESS) return status;
  for (std::size_t j = 0; j < c; ++j) {
    double na = 0.0, mean_a = 0.0, m2_a = 0.0;
    for (std::size_t p = 0; p < parts; ++p) {
      const double nb = counts[p], mean_b = means[p * c + j], m2_b = m2s[p * c + j];
      if (nb == 0.0) continue;
      if (na == 0.0) {  // the first part with values is taken as it is
        mean_a = mean_b;
        m2_a = m2_b;
      } else {  // Chan's formula on means, grouped as src/moments.hpp groups it
        const double n = na + nb;
        const double delta = mean_b - mean_a;
        mean_a = mean_a + delta * (nb / n);
        m2_a = m2_a + m2_b + delta * delta * (na * nb / n);
      }
      na += nb;
    }
    mean[j] = mean_a;  // after the last read of channel j: mean and m2 may be row 0 of means and m2s
    m2[j] = m2_a;
  }
  double sum = 0.0;
  for (std::size_t p = 0; p < parts; ++p) sum += counts[p];
  *total = sum;
  return SIMDNORM_SUCCESS;
}

extern "C" simdnorm_status simdnorm_reference_finish_moments(size_t c, double count, const double* mean,
                                                             const double* m2, float eps, float* batch_mean,
                                                             float* batch_invstd, float* running_mean,
                                                             float* running_var, float momentum) {
  const char* fn = "simdnorm_reference_finish_moments";
  const simdnorm_status status = simdnorm::validate(
      fn, simdnorm::FinishArgs{c, count, mean, m2, eps, batch_mean, batch_invstd, running_mean, running_var, momentum});
  if (status != SIMDNORM_SUCCESS) return status;
  std::size_t first_bad = c;
  for (std::size_t i = 0; i < c; ++i) {
    bool finite = true;
    simdnorm::finish_channel(i, mean[i], m2[i], count, eps, batch_mean, batch_invstd, running_mean, running_var,
                             momentum, &finite);
    if (!finite && first_bad == c) first_bad = i;
  }
  return first_bad != c ? simdnorm::non_finite(fn, first_bad, "NaN or Inf in its moments") : SIMDNORM_SUCCESS;
}

extern "C" simdnorm_status simdnorm_reference_normalize(const simdnorm_shape* shape, const float* x, float* y,
                                                        const float* gamma, const float* beta, const float* batch_mean,
                                                        const float* batch_invstd, unsigned flags) {
  Geometry g;
  const simdnorm_status status = simdnorm::validate(
      "simdnorm_reference_normalize",
      simdnorm::NormalizeArgs{shape, x, y, gamma, beta, batch_mean, batch_invstd, flags}, &g);
  if (status != SIMDNORM_SUCCESS) return status;
  for (std::size_t c = 0; c < g.c; ++c) {
    simdnorm::normalize_channel(g, x, y, c, simdnorm::gamma_of(gamma, c), simdnorm::beta_of(beta, c), batch_mean[c],
                                batch_invstd[c], flags);
  }
  return SIMDNORM_SUCCESS;
}

extern "C" simdnorm_status simdnorm_reference_backward_reduce(const simdnorm_shape* shape, const float* x,
                                                              const float* dy, const float* gamma, const float* beta,
                                                              const float* batch_mean, const float* batch_invstd,
                                                              double* sum_dy, double* sum_dy_xhat, unsigned flags) {
  Geometry g;
  const simdnorm_status status = simdnorm::validate(
      "simdnorm_reference_backward_reduce",
      simdnorm::ReduceArgs{{shape, x, dy, gamma, beta, batch_mean, batch_invstd, nullptr, nullptr, nullptr, flags},
                           sum_dy,
                           sum_dy_xhat},
      &g);
  if (status != SIMDNORM_SUCCESS) return status;
  for (std::size_t c = 0; c < g.c; ++c) {
    const simdnorm::BackwardChannel k = simdnorm::backward_channel(gamma, beta, batch_mean, batch_invstd, c, flags);
    simdnorm::backward_sums(g, x, dy, c, k, sum_dy + c, sum_dy_xhat + c);
  }
  return SIMDNORM_SUCCESS;
}

extern "C" simdnorm_status simdnorm_reference_backward_apply(const simdnorm_shape* shape, const float* x,
                                                             const float* dy, const float* gamma, const float* beta,
                                                             const float* batch_mean, const float* batch_invstd,
                                                             const double* sum_dy, const double* sum_dy_xhat,
                                                             double count, float* dx, unsigned flags) {
  Geometry g;
  const simdnorm_status status = simdnorm::validate(
      "simdnorm_reference_backward_apply",
      simdnorm::ApplyArgs{{shape, x, dy, gamma, beta, batch_mean, batch_invstd, dx, nullptr, nullptr, flags},
                          sum_dy,
                          sum_dy_xhat,
                          count},
      &g);
  if (status != SIMDNORM_SUCCESS) return status;
  for (std::size_t c = 0; c < g.c; ++c) {
    const simdnorm::BackwardChannel k = simdnorm::backward_channel(gamma, beta, batch_mean, batch_invstd, c, flags);
    simdnorm::backward_dx(g, x, dy, dx, c, k, sum_dy[c], sum_dy_xhat[c], count);
  }
  return SIMDNORM_SUCCESS;
}
