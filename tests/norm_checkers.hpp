// Test machinery of LayerNorm, RMSNorm and GroupNorm, on top of checkers.hpp (fixture, Rng, GuardedBuffer, ulp
// helpers): one geometry for the three ops, deterministic data, the tolerance formulas, and builder-style checkers
// that run one case through the fast function and its simdnorm_reference_* twin.
//
// One geometry. A LayerNorm or RMSNorm of rows x cols is the GroupNorm of shape (n = rows, c = cols, spatial = 1,
// NHWC) with one group: a statistic covers the c/groups channels of one group of one image at every spatial position
// (a row), and gamma, beta, dgamma and dbeta are per channel (per column). Every helper below walks that one form.
//
// Tolerances, derived as checkers.hpp derives batch norm's (a few float roundings times the magnitudes rounded):
//   - mean: kReductionUlps ulps of |mean| + std of its group, rstd: kReductionUlps ulps of itself (relative);
//   - y: kElementUlps ulps of the terms either evaluation order of the affine adds (|a*x|, |a*mean| and |beta| for
//     a*x + b with a = gamma*rstd and b = beta - mean*a; |a*(x - mean)| for (x - mean)*rstd*gamma + beta), plus the
//     first-order effect of the statistics' admissible errors (|a| * mean_tol + |a*(x - mean)| * rstd_rel);
//   - dbeta, dgamma: kReductionUlps ulps of the sum of |terms| over the images and positions they add up;
//   - dx: kElementUlps ulps of each term of rstd*(g - mean(g) - xhat*mean(g*xhat)), plus the propagated bounds of
//     the two group means (kReductionUlps ulps of their sums of |terms|) and of xhat (kElementUlps ulps of
//     (|x| + |mean|)*rstd).
#ifndef SIMDNORM_TESTS_NORM_CHECKERS_HPP_
#define SIMDNORM_TESTS_NORM_CHECKERS_HPP_

#include <string>
#include <vector>

#include "checkers.hpp"
#include "grids.hpp"

// Sanitised builds run the same tests on smaller versions of their largest shapes (ASan+UBSan are 10 to 20 times
// slower on the kernels' loops).
#if defined(__SANITIZE_ADDRESS__)
#define SIMDNORM_TESTS_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SIMDNORM_TESTS_SANITIZED 1
#endif
#endif
#ifndef SIMDNORM_TESTS_SANITIZED
#define SIMDNORM_TESTS_SANITIZED 0
#endif

namespace simdnorm_test {

enum class NormKind { kLayer, kRms, kGroup };
const char* NormName(NormKind kind);

struct NormGeometry {
  NormKind kind = NormKind::kLayer;
  std::size_t n = 1, c = 1, spatial = 1, groups = 1;
  simdnorm_layout layout = SIMDNORM_NHWC;

  static NormGeometry Layer(std::size_t rows, std::size_t cols) { return {NormKind::kLayer, rows, cols, 1, 1}; }
  static NormGeometry Rms(std::size_t rows, std::size_t cols) { return {NormKind::kRms, rows, cols, 1, 1}; }
  // LayerNorm or RMSNorm, as `kind` says.
  static NormGeometry Row(NormKind kind, std::size_t rows, std::size_t cols) { return {kind, rows, cols, 1, 1}; }
  static NormGeometry Group(std::size_t n, std::size_t c, std::size_t spatial, simdnorm_layout layout,
                            std::size_t groups) {
    return {NormKind::kGroup, n, c, spatial, groups, layout};
  }

  std::size_t rows() const { return n; }  // LayerNorm, RMSNorm
  std::size_t cols() const { return c; }
  simdnorm_shape shape() const { return MakeShape(n, c, spatial, layout); }
  std::size_t elements() const { return n * c * spatial; }
  std::size_t stats() const { return n * groups; }               // length of mean and rstd
  std::size_t per_stat() const { return c / groups * spatial; }  // values a statistic covers
  std::size_t channel(std::size_t i) const { return ChannelOf(shape(), i); }
  std::size_t image(std::size_t i) const { return i / (c * spatial); }
  std::size_t stat(std::size_t i) const { return image(i) * groups + channel(i) / (c / groups); }
  bool centred() const { return kind != NormKind::kRms; }  // subtracts a mean (RMSNorm has neither mean nor beta)
  std::string Describe() const;
  // "(row 2, col 5)" or "(n=1, c=5, s=12)" for a flat index.
  std::string Coord(std::size_t i) const;
};

// Calls f(flat index) for every value statistic `s` covers, channel by channel, each at every spatial position.
template <class F>
void ForEachInStat(const NormGeometry& g, std::size_t s, F f) {
  const simdnorm_shape shape = g.shape();
  const std::size_t image = s / g.groups, cpg = g.c / g.groups, first = s % g.groups * cpg;
  for (std::size_t ch = first; ch < first + cpg; ++ch) {
    for (std::size_t sp = 0; sp < g.spatial; ++sp) f(Offset(shape, image, ch, sp));
  }
}

// The call of g's kind, fast (`reference` false) or simdnorm_reference_*. What the kind has no parameter for is not
// passed (RMSNorm's beta, mean and dbeta; LayerNorm backward's beta).
simdnorm_status NormForward(bool reference, const NormGeometry& g, const float* x, float* y, const float* gamma,
                            const float* beta, float eps, float* mean, float* rstd, unsigned flags);
simdnorm_status NormBackward(bool reference, const NormGeometry& g, const float* x, const float* dy, const float* gamma,
                             const float* beta, const float* mean, const float* rstd, float* dx, float* dgamma,
                             float* dbeta, unsigned flags);

// ---------------------------------------------------------------------------------------------------------------
// Data.

// Each statistic's values drawn as FillInput draws a channel: mean and standard deviation uniform in the ranges of
// `dist`, normal values, redrawn until the sample deviation is at least half the intended one.
void FillNormInput(Rng& rng, const NormGeometry& g, const InputDistribution& dist, float* x);
// Exact statistics of x in double, two passes: per statistic the mean and the biased variance (RMSNorm: mean 0 and
// the mean of squares in `var`).
void NormStats(const NormGeometry& g, const float* x, std::vector<double>& mean, std::vector<double>& var);
// GroupNorm with SIMDNORM_FUSE_RELU: moves values of x (and, in groups of at most three values, redraws beta where
// it is not null) until every pre-activation output of the reference is at least `margin` from 0, so that the ReLU
// mask cannot depend on rounding. Returns false if that did not converge, and for groups of one value without beta,
// whose output is exactly 0 (x - mean), on the kink: the checkers give such cases a beta, and test_group_norm.cpp
// tests the kink itself.
bool SeparateNormFromReluKink(Rng& rng, const NormGeometry& g, float* x, const float* gamma, float* beta, float eps,
                              double margin);

// ---------------------------------------------------------------------------------------------------------------
// Tolerances (see the top of this file).

double NormOutputTolerance(double x, double gamma, double beta, double mean, double rstd, double mean_tol,
                           double rstd_rel);

class NormBackwardBounds {
 public:
  // dy_masked: dy with the ReLU mask applied; gamma may be null; mean is ignored (and may be null) for RMSNorm.
  NormBackwardBounds(const NormGeometry& g, const float* x, const float* dy_masked, const float* gamma,
                     const float* mean, const float* rstd);
  double dbeta(std::size_t c) const { return kReductionUlps * FLT_EPSILON * abs_dy_[c]; }
  double dgamma(std::size_t c) const { return kReductionUlps * FLT_EPSILON * abs_dy_xhat_[c]; }
  double dx(std::size_t i) const;

 private:
  NormGeometry g_;
  const float *x_, *dy_, *gamma_, *mean_, *rstd_;
  std::vector<double> abs_dy_, abs_dy_xhat_;                   // per channel
  std::vector<double> sum_g_, sum_gxhat_, abs_g_, abs_gxhat_;  // per statistic, g = dy*gamma
};

// ---------------------------------------------------------------------------------------------------------------
// Checkers.

// The settings both checkers share, as chained setters returning the checker itself (CRTP, as checkers.hpp's
// TensorCheck). `inplace` writes y over x, or dx over dy.
template <class Derived>
class NormCheck {
 public:
  explicit NormCheck(const NormGeometry& g) : g_(g) {}
  Derived& inplace(bool v = true) { return set(inplace_, v); }
  Derived& gamma(bool v = true) { return set(gamma_, v); }
  Derived& beta(bool v = true) { return set(beta_, v); }
  Derived& relu(bool v = true) { return set(relu_, v); }
  Derived& misalign(std::size_t floats) { return set(misalign_, floats); }
  Derived& eps(float v) { return set(eps_, v); }
  Derived& seed(std::uint64_t v) { return set(seed_, v); }
  Derived& input(const InputDistribution& v) { return set(dist_, v); }

 protected:
  // A group of one value outputs beta exactly: with the ReLU, and no beta, it would sit on the kink.
  bool NeedsBetaForRelu() const { return relu_ && g_.kind == NormKind::kGroup && g_.per_stat() == 1; }
  template <class T, class V>
  Derived& set(T& field, V value) {
    field = value;
    return static_cast<Derived&>(*this);
  }
  NormGeometry g_;
  bool inplace_ = false, gamma_ = false, beta_ = false, relu_ = false;
  std::size_t misalign_ = 0;
  float eps_ = 1e-5f;
  std::uint64_t seed_ = 1;
  InputDistribution dist_;
};

class NormForwardCheck : public NormCheck<NormForwardCheck> {
 public:
  using NormCheck::NormCheck;
  NormForwardCheck& stats(bool mean, bool rstd) { return set(want_mean_, mean).set(want_rstd_, rstd); }
  // Only the large-mean tests, ill-conditioned on purpose, loosen these (documented there).
  NormForwardCheck& rstd_rel_tol(double v) { return set(rstd_rel_, v); }
  NormForwardCheck& mean_ulps(double v) { return set(mean_ulps_, v); }
  bool Test() const;
  std::string Describe() const;

 private:
  bool want_mean_ = true, want_rstd_ = true;
  double rstd_rel_ = kReductionUlps * FLT_EPSILON, mean_ulps_ = kReductionUlps;
};

class NormBackwardCheck : public NormCheck<NormBackwardCheck> {
 public:
  using NormCheck::NormCheck;
  NormBackwardCheck& outputs(bool dx, bool dgamma, bool dbeta) {
    return set(want_dx_, dx).set(want_dgamma_, dgamma).set(want_dbeta_, dbeta);
  }
  bool Test() const;
  std::string Describe() const;

 private:
  bool want_dx_ = true, want_dgamma_ = true, want_dbeta_ = true;
};

// Options rotated over the cases of a grid (after RotateOptions): pseudo-random bits from a hash of the case index.
struct NormCaseOptions {
  bool inplace, gamma, beta, relu, mean, rstd;
  bool dx, dgamma, dbeta;
  std::size_t misalign;
  // The complementary set: every boolean flipped, so a case run with both sees each option on and off.
  NormCaseOptions Flipped() const;
};
NormCaseOptions RotateNormOptions(std::uint64_t case_index);

// The shapes a test sweeps for one kind: `rows` for LayerNorm and RMSNorm, each of `groups` in both layouts (NCHW
// first) for GroupNorm.
struct RowDims {
  std::size_t rows, cols;
};
struct GroupDims {
  std::size_t n, c, spatial, groups;
};
std::vector<NormGeometry> NormShapes(NormKind kind, const std::vector<RowDims>& rows,
                                     const std::vector<GroupDims>& groups);

// The group counts a grid tries for c channels: every divisor of c up to 32 channels; beyond, the divisors among 1, 2,
// 3, 8, 32, c/16 and c (for 64: 64, 32, 16, 8, 2 and 1 channels a group; for 96: 96, 48, 32, 16, 12, 3 and 1).
std::vector<std::size_t> GroupCounts(std::size_t c);

}  // namespace simdnorm_test

#endif  // SIMDNORM_TESTS_NORM_CHECKERS_HPP_
