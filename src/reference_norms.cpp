// The reference of LayerNorm, RMSNorm and GroupNorm: plain loops, every intermediate in double, one rounding per
// output, as reference.cpp is for batch norm (and validated by the same status.cpp, so that both reject the same calls
// with the same messages). The three ops differ only in which values are normalised together -- a row, or an
// (image, group) -- and whether the mean is taken out (not by RMSNorm), so each formula is written once, over a
// "set" of values, and a layout says what the sets are.
#include <simdnorm/reference.h>

#include <cmath>
#include <cstddef>

#include "status.hpp"

namespace simdnorm {
namespace {

double gamma_of(const float* gamma, std::size_t p) { return gamma != nullptr ? gamma[p] : 1.0; }
double beta_of(const float* beta, std::size_t p) { return beta != nullptr ? beta[p] : 0.0; }

// + beta[p] only when there is a beta (never for RMSNorm), so that a -0 product stays -0 as it does in PyTorch.
double shifted(double value, const float* beta, std::size_t p) { return beta != nullptr ? value + beta[p] : value; }

// The fused ReLU maps every value that is not > 0 to +0 and lets NaN through, as reference.cpp's does.
double activated(double value, bool relu) { return relu && value <= 0.0 ? 0.0 : value; }

// The values normalised together, each visited as body(offset in the tensor, index p of its gamma and beta).
struct RowSet {  // row r of a rows x cols matrix
  std::size_t r, cols;
  std::size_t count() const { return cols; }
  template <class Body>
  void each(const Body& body) const {
    for (std::size_t j = 0; j < cols; ++j) body(r * cols + j, j);
  }
};
struct GroupSet {  // channels [c0, c0 + width) of image n, every spatial position
  const Geometry& g;
  std::size_t n, c0, width;
  std::size_t count() const { return width * g.spatial; }
  template <class Body>
  void each(const Body& body) const {
    for (std::size_t c = c0; c < c0 + width; ++c) {
      for (std::size_t s = 0; s < g.spatial; ++s) body(element_offset(g, n, c, s), c);
    }
  }
};

// What the sets of an op are. Set k owns mean[k] and rstd[k]; for_param(p, body) visits every value that gamma[p]
// scales, as body(offset, k of its set), for dgamma and dbeta.
struct RowLayout {
  std::size_t rows, cols;
  std::size_t sets() const { return rows; }
  std::size_t params() const { return cols; }
  RowSet set(std::size_t k) const { return RowSet{k, cols}; }
  template <class Body>
  void for_param(std::size_t p, const Body& body) const {
    for (std::size_t r = 0; r < rows; ++r) body(r * cols + p, r);
  }
};
struct GroupLayout {  // sets k = n*groups + group, as mean and rstd are laid out
  const Geometry& g;
  std::size_t groups;
  std::size_t width() const { return g.c / groups; }
  std::size_t sets() const { return g.n * groups; }
  std::size_t params() const { return g.c; }
  GroupSet set(std::size_t k) const { return GroupSet{g, k / groups, (k % groups) * width(), width()}; }
  template <class Body>
  void for_param(std::size_t c, const Body& body) const {
    for (std::size_t n = 0; n < g.n; ++n) {
      for (std::size_t s = 0; s < g.spatial; ++s) body(element_offset(g, n, c, s), n * groups + c / width());
    }
  }
};

// The forward pass of any of the three: per set, two passes in double (the mean when `centered`, else 0 as RMSNorm
// takes it; then the mean squared deviation from it), rstd = 1/sqrt(var + eps), the statistics rounded once, and
// y = (x - mean)*rstd*gamma + beta from the double statistics, rounded once. y may be x: a set's statistics are
// complete before its y is written, and each y[i] is written after x[i] is read.
template <class Layout>
void forward(const Layout& layout, bool centered, const float* x, float* y, const float* gamma, const float* beta,
             float eps, float* mean, float* rstd, bool relu) {
  for (std::size_t k = 0; k < layout.sets(); ++k) {
    const auto set = layout.set(k);
    const double count = static_cast<double>(set.count());
    double sum = 0.0;
    if (centered) set.each([&](std::size_t i, std::size_t) { sum += x[i]; });
    const double mu = sum / count;
    double m2 = 0.0;
    set.each([&](std::size_t i, std::size_t) {
      const double d = x[i] - mu;
      m2 += d * d;
    });
    const double r = 1.0 / std::sqrt(m2 / count + static_cast<double>(eps));
    if (mean != nullptr) mean[k] = static_cast<float>(mu);
    if (rstd != nullptr) rstd[k] = static_cast<float>(r);
    set.each([&](std::size_t i, std::size_t p) {
      y[i] = static_cast<float>(activated(shifted((x[i] - mu) * r * gamma_of(gamma, p), beta, p), relu));
    });
  }
}

// One set's saved statistics, in double as given (mean 0 for RMSNorm), and dy' = dy, or 0 where the forward output
// recomputed from them was <= 0 with the fused ReLU. The output is recomputed as reference.cpp recomputes batch
// norm's, gamma*xhat + beta in double: the reference's own forward arithmetic, not the fast path's folded
// a*x + b in float, whose last bit depends on the ISA's FMA.
struct Saved {
  double mean, rstd;
  const float* gamma;
  const float* beta;
  bool relu;

  double xhat(float x) const { return (x - mean) * rstd; }
  double masked_dy(float x, float dy, std::size_t p) const {
    return relu && gamma_of(gamma, p) * xhat(x) + beta_of(beta, p) <= 0.0 ? 0.0 : dy;
  }
};

// The inputs and outputs of a backward pass. beta is read only for the ReLU mask.
struct BackwardIo {
  const float* x;
  const float* dy;
  const float* gamma;
  const float* beta;
  const float* mean;  // NULL for RMSNorm
  const float* rstd;
  float* dx;
  float* dgamma;
  float* dbeta;
  bool relu;

  Saved saved(std::size_t k) const { return Saved{mean != nullptr ? mean[k] : 0.0, rstd[k], gamma, beta, relu}; }
};

// dx of one set: with g = dy'*gamma[p] and xhat from the saved statistics,
// dx = rstd*(g - mean(g) - xhat*mean(g*xhat)), mean(g) left out when not `centered` (RMSNorm). dx may be dy: the sums
// are complete before dx is written, and each dx[i] is written after dy[i] is read.
template <class Set>
void set_dx(const Set& set, bool centered, const BackwardIo& io, const Saved& k) {
  double sum_g = 0.0, sum_g_xhat = 0.0;
  set.each([&](std::size_t i, std::size_t p) {
    const double g = k.masked_dy(io.x[i], io.dy[i], p) * gamma_of(io.gamma, p);
    sum_g += g;
    sum_g_xhat += g * k.xhat(io.x[i]);
  });
  const double count = static_cast<double>(set.count());
  const double mean_g = centered ? sum_g / count : 0.0, mean_g_xhat = sum_g_xhat / count;
  set.each([&](std::size_t i, std::size_t p) {
    const double g = k.masked_dy(io.x[i], io.dy[i], p) * gamma_of(io.gamma, p);
    io.dx[i] = static_cast<float>(k.rstd * (g - mean_g - k.xhat(io.x[i]) * mean_g_xhat));
  });
}

// The backward pass of any of the three: dgamma[p] = sum dy'*xhat and dbeta[p] = sum dy' over the values gamma[p]
// scales, then dx set by set. The parameter gradients come first because dx may overwrite dy.
template <class Layout>
void backward(const Layout& layout, bool centered, const BackwardIo& io) {
  if (io.dgamma != nullptr || io.dbeta != nullptr) {
    for (std::size_t p = 0; p < layout.params(); ++p) {
      double sum_dy = 0.0, sum_dy_xhat = 0.0;
      layout.for_param(p, [&](std::size_t i, std::size_t k) {
        const Saved s = io.saved(k);
        const double d = s.masked_dy(io.x[i], io.dy[i], p);
        sum_dy += d;
        sum_dy_xhat += d * s.xhat(io.x[i]);
      });
      if (io.dgamma != nullptr) io.dgamma[p] = static_cast<float>(sum_dy_xhat);
      if (io.dbeta != nullptr) io.dbeta[p] = static_cast<float>(sum_dy);
    }
  }
  if (io.dx == nullptr) return;
  for (std::size_t k = 0; k < layout.sets(); ++k) set_dx(layout.set(k), centered, io, io.saved(k));
}

}  // namespace
}  // namespace simdnorm

using simdnorm::Geometry;
using simdnorm::RowNorm;

extern "C" simdnorm_status simdnorm_reference_layer_norm_forward(size_t rows, size_t cols, const float* x, float* y,
                                                                 const float* gamma, const float* beta, float eps,
                                                                 float* mean, float* rstd, unsigned flags) {
  const simdnorm_status status =
      simdnorm::validate("simdnorm_reference_layer_norm_forward", RowNorm::kLayer,
                         simdnorm::RowNormArgs{rows, cols, x, y, gamma, beta, eps, mean, rstd, flags});
  if (status != SIMDNORM_SUCCESS) return status;
  simdnorm::forward(simdnorm::RowLayout{rows, cols}, true, x, y, gamma, beta, eps, mean, rstd, false);
  return SIMDNORM_SUCCESS;
}

extern "C" simdnorm_status simdnorm_reference_layer_norm_backward(size_t rows, size_t cols, const float* x,
                                                                  const float* dy, const float* gamma,
                                                                  const float* mean, const float* rstd, float* dx,
                                                                  float* dgamma, float* dbeta, unsigned flags) {
  const simdnorm_status status =
      simdnorm::validate("simdnorm_reference_layer_norm_backward", RowNorm::kLayer,
                         simdnorm::RowNormBackwardArgs{rows, cols, x, dy, gamma, mean, rstd, dx, dgamma, dbeta, flags});
  if (status != SIMDNORM_SUCCESS) return status;
  simdnorm::backward(simdnorm::RowLayout{rows, cols}, true,
                     simdnorm::BackwardIo{x, dy, gamma, nullptr, mean, rstd, dx, dgamma, dbeta, false});
  return SIMDNORM_SUCCESS;
}

extern "C" simdnorm_status simdnorm_reference_rms_norm_forward(size_t rows, size_t cols, const float* x, float* y,
                                                               const float* gamma, float eps, float* rstd,
                                                               unsigned flags) {
  const simdnorm_status status =
      simdnorm::validate("simdnorm_reference_rms_norm_forward", RowNorm::kRms,
                         simdnorm::RowNormArgs{rows, cols, x, y, gamma, nullptr, eps, nullptr, rstd, flags});
  if (status != SIMDNORM_SUCCESS) return status;
  simdnorm::forward(simdnorm::RowLayout{rows, cols}, false, x, y, gamma, nullptr, eps, nullptr, rstd, false);
  return SIMDNORM_SUCCESS;
}

extern "C" simdnorm_status simdnorm_reference_rms_norm_backward(size_t rows, size_t cols, const float* x,
                                                                const float* dy, const float* gamma,
                                                                const float* rstd, float* dx, float* dgamma,
                                                                unsigned flags) {
  const simdnorm_status status = simdnorm::validate(
      "simdnorm_reference_rms_norm_backward", RowNorm::kRms,
      simdnorm::RowNormBackwardArgs{rows, cols, x, dy, gamma, nullptr, rstd, dx, dgamma, nullptr, flags});
  if (status != SIMDNORM_SUCCESS) return status;
  simdnorm::backward(simdnorm::RowLayout{rows, cols}, false,
                     simdnorm::BackwardIo{x, dy, gamma, nullptr, nullptr, rstd, dx, dgamma, nullptr, false});
  return SIMDNORM_SUCCESS;
}

extern "C" simdnorm_status simdnorm_reference_group_norm_forward(const simdnorm_shape* shape, size_t groups,
                                                                 const float* x, float* y, const float* gamma,
                                                                 const float* beta, float eps, float* mean,
                                                                 float* rstd, unsigned flags) {
  Geometry g;
  const simdnorm_status status =
      simdnorm::validate("simdnorm_reference_group_norm_forward",
                         simdnorm::GroupNormArgs{shape, groups, x, y, gamma, beta, eps, mean, rstd, flags}, &g);
  if (status != SIMDNORM_SUCCESS) return status;
  simdnorm::forward(simdnorm::GroupLayout{g, groups}, true, x, y, gamma, beta, eps, mean, rstd,
                    (flags & SIMDNORM_FUSE_RELU) != 0u);
  return SIMDNORM_SUCCESS;
}

extern "C" simdnorm_status simdnorm_reference_group_norm_backward(const simdnorm_shape* shape, size_t groups,
                                                                  const float* x, const float* dy,
                                                                  const float* gamma, const float* beta,
                                                                  const float* mean, const float* rstd, float* dx,
                                                                  float* dgamma, float* dbeta, unsigned flags) {
  Geometry g;
  const simdnorm_status status = simdnorm::validate(
      "simdnorm_reference_group_norm_backward",
      simdnorm::GroupNormBackwardArgs{shape, groups, x, dy, gamma, beta, mean, rstd, dx, dgamma, dbeta, flags}, &g);
  if (status != SIMDNORM_SUCCESS) return status;
  simdnorm::backward(simdnorm::GroupLayout{g, groups}, true,
                     simdnorm::BackwardIo{x, dy, gamma, beta, mean, rstd, dx, dgamma, dbeta,
                                          (flags & SIMDNORM_FUSE_RELU) != 0u});
  return SIMDNORM_SUCCESS;
}
