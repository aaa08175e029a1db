// Shared machinery of the simdnorm test suite: the per-ISA fixture, deterministic data, ulp helpers, guarded
// buffers, and builder-style checkers (after XNNPACK's microkernel testers) that run one case through simdnorm_* and
// simdnorm_reference_* and report the first bad element with its coordinates, both values and the tolerance.
//
// Tolerances. Every bound is a small number of float roundings times the magnitude of what was rounded, never a
// blanket absolute epsilon:
//   - an element computed with a handful of float operations (y = a*x + b, a running-statistics update, dx) gets
//     kElementUlps * FLT_EPSILON * (sum of the magnitudes of the terms it adds);
//   - a per-channel reduction over m values (batch mean, batch invstd, dgamma, dbeta) gets
//     kReductionUlps * FLT_EPSILON * (its magnitude scale: |mean| + std, invstd itself, or the sum of |terms|);
//   - an element that is computed from statistics the kernel estimated itself (y in training, dx in backward) also
//     gets the first-order effect of the statistics' own admissible error, so that the element bound is consistent
//     with the statistic bound (a mean off by its allowed few ulps of |mean| + std moves y by |a| times that).
#ifndef SIMDNORM_TESTS_CHECKERS_HPP_
#define SIMDNORM_TESTS_CHECKERS_HPP_

#include <gtest/gtest.h>
#include <simdnorm/reference.h>
#include <simdnorm/simdnorm.h>

#include <cfloat>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <initializer_list>
#include <new>
#include <random>
#include <string>
#include <vector>

namespace simdnorm_test {

inline constexpr double kElementUlps = 4.0;
inline constexpr double kReductionUlps = 8.0;

// ---------------------------------------------------------------------------------------------------------------
// Per-ISA fixture (Highway's TestWithParamTarget): caps the kernel path at the parameter and skips when this machine
// cannot run it, so every kernel test runs once per available path and is named after it.

inline constexpr const char* kIsas[] = {"avx512", "avx2", "sse2"};

class IsaTest : public ::testing::TestWithParam<const char*> {
 protected:
  void SetUp() override;
  void TearDown() override;
  const char* isa() const { return GetParam(); }

 private:
  std::string previous_isa_;
};

std::string IsaTestName(const ::testing::TestParamInfo<const char*>& info);

#define SIMDNORM_INSTANTIATE_PER_ISA(suite) \
  INSTANTIATE_TEST_SUITE_P(Isa, suite, ::testing::ValuesIn(::simdnorm_test::kIsas), ::simdnorm_test::IsaTestName)

// ---------------------------------------------------------------------------------------------------------------
// Deterministic data. The engine is std::mt19937 (specified bit for bit by the standard); the conversions to uniform
// and normal values are written here because the standard distributions are implementation-defined.

class Rng {
 public:
  explicit Rng(std::uint64_t seed) : engine_(static_cast<std::uint32_t>(seed ^ (seed >> 32))) {}

  // Uniform in [0, 1) with 53 random bits.
  double uniform() {
    const std::uint64_t hi = engine_() >> 5;  // 27 bits
    const std::uint64_t lo = engine_() >> 6;  // 26 bits
    return static_cast<double>((hi << 26) | lo) * 0x1p-53;
  }
  double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }
  // Uniform integer in [0, n), n > 0.
  std::uint32_t below(std::uint32_t n) { return static_cast<std::uint32_t>(uniform() * n); }
  bool coin() { return (engine_() & 1u) != 0; }
  // Standard normal (Box-Muller).
  double normal();
  // Magnitude uniform in [lo, hi], random sign.
  double signed_uniform(double lo, double hi) { return coin() ? uniform(lo, hi) : -uniform(lo, hi); }

 private:
  std::mt19937 engine_;
  bool has_spare_ = false;
  double spare_ = 0.0;
};

// Mixes several values into one seed (splitmix64 steps), so each case of a grid gets its own stream.
std::uint64_t MixSeed(std::initializer_list<std::uint64_t> values);

// ---------------------------------------------------------------------------------------------------------------
// Shapes and coordinates.

inline simdnorm_shape MakeShape(std::size_t n, std::size_t c, std::size_t spatial, simdnorm_layout layout) {
  simdnorm_shape shape;
  shape.n = n;
  shape.c = c;
  shape.spatial = spatial;
  shape.layout = layout;
  return shape;
}

inline std::size_t Elements(const simdnorm_shape& s) { return s.n * s.c * s.spatial; }

inline std::size_t Offset(const simdnorm_shape& s, std::size_t n, std::size_t c, std::size_t sp) {
  return s.layout == SIMDNORM_NCHW ? (n * s.c + c) * s.spatial + sp : (n * s.spatial + sp) * s.c + c;
}

inline std::size_t ChannelOf(const simdnorm_shape& s, std::size_t flat) {
  return s.layout == SIMDNORM_NCHW ? (flat / s.spatial) % s.c : flat % s.c;
}

const char* LayoutName(simdnorm_layout layout);
std::string ShapeString(const simdnorm_shape& s);
// "(n=1, c=5, s=12)" for a flat index of the tensor.
std::string CoordString(const simdnorm_shape& s, std::size_t flat);

// ---------------------------------------------------------------------------------------------------------------
// Float helpers.

inline std::uint32_t FloatBits(float f) {
  std::uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}
inline float BitsToFloat(std::uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}
// Distance in units in the last place between two floats (adjacent floats are 1 apart, +0 and -0 are 0 apart).
// NaN on either side gives UINT64_MAX.
std::uint64_t UlpDistance(float a, float b);
std::string FloatString(double v);

// ---------------------------------------------------------------------------------------------------------------
// A float buffer with guard zones on both sides, to catch writes past the ends in non-sanitised builds, and an
// optional misalignment of the data pointer by a few floats (the API takes any float*).

// Storage aligned to a cache line, as the buffers of a framework are: the kernels' streaming stores and the
// whole-vector row paths they take on aligned data are then exercised, and misalign() still tests the rest.
template <class T>
struct CacheLineAllocator {
  using value_type = T;
  CacheLineAllocator() = default;
  template <class U>
  CacheLineAllocator(const CacheLineAllocator<U>& /*other*/) {}
  T* allocate(std::size_t n) { return static_cast<T*>(::operator new(n * sizeof(T), std::align_val_t{64})); }
  void deallocate(T* p, std::size_t /*n*/) { ::operator delete(p, std::align_val_t{64}); }
  template <class U>
  bool operator==(const CacheLineAllocator<U>& /*other*/) const {
    return true;
  }
  template <class U>
  bool operator!=(const CacheLineAllocator<U>& /*other*/) const {
    return false;
  }
};

class GuardedBuffer {
 public:
  static constexpr std::size_t kGuard = 32;  // floats on each side; 128 bytes keeps 64-byte-aligned storage aligned

  explicit GuardedBuffer(std::size_t count, std::size_t misalign = 0);
  float* data() { return storage_.data() + kGuard + misalign_; }
  const float* data() const { return storage_.data() + kGuard + misalign_; }
  std::size_t size() const { return count_; }
  float& operator[](std::size_t i) { return data()[i]; }
  float operator[](std::size_t i) const { return data()[i]; }
  void fill(float v);
  void assign(const std::vector<float>& values);
  void assign(const float* values);
  // True when no byte outside [data(), data() + size()) changed since construction.
  bool GuardsIntact() const;

 private:
  std::vector<float, CacheLineAllocator<float>> storage_;
  std::size_t count_;
  std::size_t misalign_;
};

// A value that no kernel computes by accident: marks outputs that were never written.
inline float SentinelFloat() { return BitsToFloat(0x7F7FDEADu); }  // a large finite float, ~3.4e38

// The buffers of one backward call under test (batch norm's and the other norms'): x and dy as given, misaligned as
// asked; dx in its own buffer or over dy (in place); dgamma and dbeta per channel; the outputs filled with sentinels.
struct BackwardBuffers {
  BackwardBuffers(const std::vector<float>& x_given, const std::vector<float>& dy_given, std::size_t channels,
                  std::size_t misalign, bool inplace);
  // dx as passed to the call: NULL when not `wanted`.
  float* dx(bool wanted) { return !wanted ? nullptr : inplace ? dy.data() : dx_own.data(); }
  // After the call: x, and dy unless dx was written over it, unchanged; no write outside any buffer.
  bool ExpectIntact(const std::string& context, const std::vector<float>& x_given, const std::vector<float>& dy_given,
                    bool dx_written) const;

  bool inplace;
  GuardedBuffer x, dy, dx_own, dgamma, dbeta;
};

// ---------------------------------------------------------------------------------------------------------------
// Element-wise comparison with per-element tolerance. On failure adds one gtest failure naming the first bad index
// and its coordinates (`where(i)`, a string), both values, the difference, the tolerance, and how many elements were
// bad. Returns true when all were within tolerance.

template <class Tol, class Where>
bool ExpectNearAt(const std::string& context, const char* what, const float* got, const float* want, std::size_t count,
                  Tol tol, Where where) {
  std::size_t bad = 0, first = 0;
  double first_tol = 0.0;
  for (std::size_t i = 0; i < count; ++i) {
    const double t = tol(i);
    if (!(std::fabs(double(got[i]) - double(want[i])) <= t) && bad++ == 0) {  // NaN on either side fails
      first = i;
      first_tol = t;
    }
  }
  if (bad == 0) return true;
  ADD_FAILURE() << context << "\n  " << what << ": " << bad << " of " << count << " values out of tolerance; first at "
                << "index " << first << " " << where(first) << ": got " << FloatString(got[first]) << ", reference "
                << FloatString(want[first]) << ", |diff| " << FloatString(std::fabs(double(got[first]) - want[first]))
                << ", tolerance " << FloatString(first_tol);
  return false;
}

// ExpectNearAt with the tensor coordinates of `tensor` when it is not null, else the channel.
template <class Tol>
bool ExpectNear(const std::string& context, const char* what, const float* got, const float* want, std::size_t count,
                const simdnorm_shape* tensor, Tol tol) {
  return ExpectNearAt(context, what, got, want, count, tol, [tensor](std::size_t i) {
    return tensor != nullptr ? CoordString(*tensor, i) : "(channel " + std::to_string(i) + ")";
  });
}

// Bit-for-bit comparison (NaN-safe: bit patterns, not values), for results promised identical (the split-phase API
// against the one-call functions). On failure adds one gtest failure naming the first differing index (and its tensor
// coordinates when `tensor` is not null, else the channel), both values with their bits, and how many differed.
bool ExpectSameBits(const std::string& context, const char* what, const float* got, const float* want,
                    std::size_t count, const simdnorm_shape* tensor);
bool ExpectSameBits(const std::string& context, const char* what, const double* got, const double* want,
                    std::size_t count);
std::string DoubleString(double v);  // "%.17g [0x...]"

// ExpectNear for per-channel doubles (the split phases' moments and sums).
template <class Tol>
bool ExpectNearDoubles(const std::string& context, const char* what, const double* got, const double* want,
                       std::size_t count, Tol tol) {
  for (std::size_t c = 0; c < count; ++c) {
    if (std::fabs(got[c] - want[c]) <= tol(c)) continue;  // also catches NaN on either side
    ADD_FAILURE() << context << "\n  " << what << " at channel " << c << ": got " << DoubleString(got[c])
                  << ", reference " << DoubleString(want[c]) << ", tolerance " << tol(c);
    return false;
  }
  return true;
}

// Guard check with a readable failure.
bool ExpectGuardsIntact(const std::string& context, const char* what, const GuardedBuffer& buffer);

// "SIMDNORM_INVALID_ARGUMENT", ...
std::string StatusString(simdnorm_status status);
// A call that must succeed: on failure one gtest failure with the status and simdnorm_last_error().
bool ExpectSuccess(const std::string& context, const char* call, simdnorm_status got);
// `got` byte for byte as `original` (an input, or an output that must not be written).
bool ExpectUnchanged(const std::string& context, const char* what, const float* got, const float* original,
                     std::size_t count);

// ---------------------------------------------------------------------------------------------------------------
// Data generation shared by the checkers.

struct InputDistribution {
  double mean_lo = -3.0, mean_hi = 3.0;     // per-channel mean, uniform
  double stddev_lo = 0.5, stddev_hi = 2.0;  // per-channel standard deviation, uniform
};

// values.size() values mean + stddev * N(0, 1), mean and stddev uniform in the ranges of `dist`, redrawn until the
// sample deviation is at least half of stddev: one channel of FillInput, one statistic of FillNormInput.
void DrawSample(Rng& rng, const InputDistribution& dist, std::vector<float>& values);
// x(n, c, s) = mean_c + stddev_c * N(0, 1), drawn channel by channel in logical (n, s) order so both layouts of a
// seed hold the same tensor; each channel's sample deviation is at least half of stddev_c.
void FillInput(Rng& rng, const simdnorm_shape& shape, const InputDistribution& dist, float* x);
// Per-channel exact double statistics of x (two-pass): mean and biased variance.
void ChannelStats(const simdnorm_shape& shape, const float* x, std::vector<double>& mean, std::vector<double>& var);

// Moves elements of x (and, for channels of at most three values, redraws beta when it is not null) until every
// |bn(x)| of the reference training forward is at least `margin`, so that a ReLU mask is unambiguous. Returns false
// if that did not converge.
bool SeparateFromReluKink(Rng& rng, const simdnorm_shape& shape, float* x, const float* gamma, float* beta, float eps,
                          double margin);
// The search behind SeparateFromReluKink and SeparateNormFromReluKink, for any grouping of x into statistics:
// `forward(y)` runs the reference forward without the ReLU, `stats(mean, var)` gives the exact statistics, element i
// takes gamma and beta of `channel(i)` and the statistic `stat(i)`, which covers `per_stat` values.
struct ReluKinkSearch {
  std::size_t count, channels, per_stat;
  std::function<bool(float* y)> forward;
  std::function<void(std::vector<double>& mean, std::vector<double>& var)> stats;
  std::function<std::size_t(std::size_t)> channel, stat;
};
bool SeparateFromReluKink(Rng& rng, const ReluKinkSearch& search, float* x, const float* gamma, float* beta, float eps,
                          double margin);

// gamma with |gamma| in [0.5, 2] and random sign, beta in [-1, 1].
void MakeAffineParams(Rng& rng, std::size_t c, std::vector<float>& gamma, std::vector<float>& beta);

// ---------------------------------------------------------------------------------------------------------------
// Tolerance formulas (see the top of this file), shared by the checkers and the hand-written numerics tests.

// batch_mean of a channel whose exact mean and biased variance are `mean` and `var`.
inline double MeanTolerance(double mean, double var, double ulps = kReductionUlps) {
  return ulps * FLT_EPSILON * (std::fabs(mean) + std::sqrt(var));
}

// y = a*x + b with float scale and shift, each within an ulp of the exact ones (simdnorm_affine).
inline double AffineOutputTolerance(double x, double scale, double shift) {
  return kElementUlps * FLT_EPSILON * (std::fabs(scale * x) + std::fabs(shift));
}

// y of the inference pass, a*x + b folded from mean and var. The fast path derives b = beta - mean*a from the float
// a (simdnorm.h: "b = beta - mean*a rounded to float"), which moves the rounding error of a from a*x to a*(x - mean):
// both terms are allowed, so the bound holds whichever a the shift was computed from.
inline double InferenceOutputTolerance(double x, double mean, double scale, double shift) {
  return kElementUlps * FLT_EPSILON * (std::fabs(scale * x) + std::fabs(scale * (x - mean)) + std::fabs(shift));
}

// y of the training forward, from the reference's saved statistics: the rounding of a*x + b, plus |a| times the
// admissible error of the mean, plus |a*(x - mean)| times the admissible relative error of invstd.
inline double TrainingOutputTolerance(double x, double gamma, double beta, double ref_mean, double ref_invstd,
                                      double mean_tol, double invstd_rel_tol) {
  const double a = gamma * ref_invstd;
  const double b = beta - ref_mean * a;
  return AffineOutputTolerance(x, a, b) + std::fabs(a) * mean_tol + std::fabs(a * (x - ref_mean)) * invstd_rel_tol;
}

// running_mean = (1 - momentum) * old + momentum * mean: rounding of both terms plus the mean's own bound.
inline double RunningMeanTolerance(double old, double mean, double momentum, double mean_tol) {
  return kElementUlps * FLT_EPSILON * (std::fabs((1.0 - momentum) * old) + std::fabs(momentum * mean)) +
         momentum * mean_tol;
}

// running_var = (1 - momentum) * old + momentum * var * m / (m - 1); var + eps may be off by twice invstd's relative
// bound (invstd = (var + eps)^-1/2).
inline double RunningVarTolerance(double old, double var, double m, double eps, double momentum,
                                  double invstd_rel_tol) {
  const double unbiased = var * m / (m - 1.0);
  const double var_tol = 2.0 * invstd_rel_tol * (var + eps) * m / (m - 1.0);
  return kElementUlps * FLT_EPSILON * ((1.0 - momentum) * std::fabs(old) + momentum * unbiased) + momentum * var_tol;
}

// Bounds of the backward outputs, from the magnitudes the kernel sums and multiplies: dbeta and dgamma get
// kReductionUlps of the sum of |terms| (|dy'| and |dy'| * (|x| + |mean|) * invstd, the latter covering how xhat itself
// is rounded); dx gets kElementUlps of its own terms plus the propagated bounds of dbeta, dgamma and xhat.
class BackwardBounds {
 public:
  // dy_masked is dy with the ReLU mask applied (zeros where the forward output was <= 0); gamma may be null.
  BackwardBounds(const simdnorm_shape& shape, const float* x, const float* dy_masked, const float* gamma,
                 const float* batch_mean, const float* batch_invstd);
  double dbeta(std::size_t c) const { return kReductionUlps * FLT_EPSILON * sum_dy_[c]; }
  double dgamma(std::size_t c) const { return kReductionUlps * FLT_EPSILON * sum_dy_xhat_[c]; }
  // Bound of dx at flat index i, given the reference's dbeta and dgamma of its channel.
  double dx(std::size_t i, double ref_dbeta, double ref_dgamma) const;

 private:
  simdnorm_shape shape_;
  const float *x_, *dy_, *gamma_, *mean_, *invstd_;
  double m_;
  std::vector<double> sum_dy_, sum_dy_xhat_;
};

// ---------------------------------------------------------------------------------------------------------------
// Builder-style checkers. Each Test() runs one case and returns true when every output matched the reference.

// The settings every tensor checker shares, as chained setters returning the checker itself (CRTP). Not every
// checker reads every setting (AffineCheck has no gamma/beta or eps). `inplace` writes the output over the input:
// y over x, or dx over dy in backward.
template <class Derived>
class TensorCheck {
 public:
  Derived& n(std::size_t v) { return set(n_, v); }
  Derived& c(std::size_t v) { return set(c_, v); }
  Derived& spatial(std::size_t v) { return set(spatial_, v); }
  Derived& layout(simdnorm_layout v) { return set(layout_, v); }
  Derived& nchw() { return layout(SIMDNORM_NCHW); }
  Derived& nhwc() { return layout(SIMDNORM_NHWC); }
  Derived& inplace(bool v = true) { return set(inplace_, v); }
  Derived& relu(bool v = true) { return set(relu_, v); }
  Derived& gamma_beta(bool v = true) { return set(gamma_beta_, v); }
  Derived& misalign(std::size_t floats) { return set(misalign_, floats); }
  Derived& eps(float v) { return set(eps_, v); }
  Derived& seed(std::uint64_t v) { return set(seed_, v); }

 protected:
  template <class T, class V>
  Derived& set(T& field, V value) {
    field = value;
    return static_cast<Derived&>(*this);
  }

  std::size_t n_ = 1, c_ = 1, spatial_ = 1;
  simdnorm_layout layout_ = SIMDNORM_NCHW;
  bool inplace_ = false, relu_ = false, gamma_beta_ = false;
  std::size_t misalign_ = 0;
  float eps_ = 1e-5f;
  std::uint64_t seed_ = 1;
};

class TrainingCheck : public TensorCheck<TrainingCheck> {
 public:
  TrainingCheck() { spatial_ = 2; }  // training needs n*spatial >= 2
  TrainingCheck& running(bool v = true) { return set(running_, v); }
  // false: pass NULL for batch_mean and batch_invstd (then y and the running statistics are still checked).
  TrainingCheck& batch_stats(bool v = true) { return set(batch_stats_, v); }
  TrainingCheck& momentum(float v) { return set(momentum_, v); }
  TrainingCheck& input(const InputDistribution& v) { return set(dist_, v); }
  // Relative tolerance of batch_invstd; the default is kReductionUlps * FLT_EPSILON. Only the large-mean tests,
  // whose data are ill-conditioned on purpose, set a documented looser bound.
  TrainingCheck& invstd_rel_tol(double v) { return set(invstd_rel_, v); }
  // Tolerance of batch_mean in units of FLT_EPSILON * (|mean| + std); default kReductionUlps.
  TrainingCheck& mean_ulps(double v) { return set(mean_ulps_, v); }

  bool Test() const;
  std::string Describe() const;

 private:
  bool running_ = false, batch_stats_ = true;
  float momentum_ = 0.1f;
  InputDistribution dist_;
  double invstd_rel_ = kReductionUlps * FLT_EPSILON;
  double mean_ulps_ = kReductionUlps;
};

class InferenceCheck : public TensorCheck<InferenceCheck> {
 public:
  bool Test() const;
  std::string Describe() const;
};

class BackwardCheck : public TensorCheck<BackwardCheck> {
 public:
  BackwardCheck() { spatial_ = 2; }  // backward needs n*spatial >= 2
  // Which outputs are requested (the others are passed as NULL).
  BackwardCheck& outputs(bool dx, bool dgamma, bool dbeta) {
    return set(want_dx_, dx).set(want_dgamma_, dgamma).set(want_dbeta_, dbeta);
  }

  bool Test() const;
  std::string Describe() const;

 private:
  bool want_dx_ = true, want_dgamma_ = true, want_dbeta_ = true;
};

class AffineCheck : public TensorCheck<AffineCheck> {
 public:
  bool Test() const;
  std::string Describe() const;
};

class FoldCheck {
 public:
  FoldCheck& c(std::size_t v) { return set(c_, v); }
  FoldCheck& gamma_beta(bool v = true) { return set(gamma_beta_, v); }
  FoldCheck& eps(float v) { return set(eps_, v); }
  FoldCheck& seed(std::uint64_t v) { return set(seed_, v); }

  bool Test() const;
  std::string Describe() const;

 private:
  template <class T, class V>
  FoldCheck& set(T& field, V value) {
    field = value;
    return *this;
  }
  std::size_t c_ = 1;
  bool gamma_beta_ = false;
  float eps_ = 1e-5f;
  std::uint64_t seed_ = 1;
};

// Cheap rotation of the boolean options over the cases of a shape grid, instead of their full cartesian product:
// each case gets pseudo-random bits from a hash of its index, so every combination shows up many times per grid.
struct CaseOptions {
  bool inplace, relu, gamma_beta, running, batch_stats;
  std::size_t misalign;  // floats by which the tensor pointers are offset from 16-byte alignment
};
inline CaseOptions RotateOptions(std::uint64_t case_index) {
  const std::uint64_t h = MixSeed({case_index, 0x0971035ull});
  CaseOptions o;
  o.inplace = (h & 1u) != 0;
  o.relu = (h & 2u) != 0;
  o.gamma_beta = (h & 4u) != 0;
  o.running = (h & 8u) != 0;
  o.batch_stats = ((h >> 4) & 7u) != 0;  // NULL batch_mean/batch_invstd in one case of eight
  o.misalign = ((h >> 7) & 3u) == 0 ? 1 : 0;
  return o;
}

// Stops a grid loop after a few failing cases, so one bug does not bury the log under hundreds of copies.
class FailureBudget {
 public:
  explicit FailureBudget(int cases = 3) : left_(cases) {}
  // Records one case's outcome; returns false when the loop should stop.
  bool Record(bool passed) { return passed || --left_ > 0; }

 private:
  int left_;
};

// The ISA name currently running, for messages.
std::string CurrentIsa();

}  // namespace simdnorm_test

#endif  // SIMDNORM_TESTS_CHECKERS_HPP_
