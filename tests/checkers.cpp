#include "checkers.hpp"

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <sstream>

namespace simdnorm_test {

// ---------------------------------------------------------------------------------------------------------------
// Fixture.

void IsaTest::SetUp() {
  previous_isa_ = simdnorm_isa();
  const simdnorm_status status = simdnorm_set_max_isa(isa());
  if (status == SIMDNORM_UNSUPPORTED) {
    GTEST_SKIP() << "simdnorm_set_max_isa(\"" << isa() << "\") is unsupported here: " << simdnorm_last_error();
  }
  ASSERT_EQ(status, SIMDNORM_SUCCESS) << "simdnorm_set_max_isa(\"" << isa() << "\"): " << simdnorm_last_error();
  if (std::string(simdnorm_isa()) != isa()) {
    GTEST_SKIP() << "the " << isa() << " path is not available on this machine (capped at it, " << simdnorm_isa()
                 << " runs)";
  }
}

void IsaTest::TearDown() {
  // Restore what ran before, which is "avx512" as a cap unless SIMDNORM_MAX_ISA capped the process lower.
  EXPECT_EQ(simdnorm_set_max_isa(previous_isa_.c_str()), SIMDNORM_SUCCESS) << simdnorm_last_error();
}

std::string IsaTestName(const ::testing::TestParamInfo<const char*>& info) { return info.param; }

std::string CurrentIsa() { return simdnorm_isa(); }

// ---------------------------------------------------------------------------------------------------------------
// Random numbers.

double Rng::normal() {
  if (has_spare_) {
    has_spare_ = false;
    return spare_;
  }
  const double u1 = 1.0 - uniform();  // (0, 1]
  const double u2 = uniform();
  const double r = std::sqrt(-2.0 * std::log(u1));
  const double t = 6.283185307179586476925 * u2;
  spare_ = r * std::sin(t);
  has_spare_ = true;
  return r * std::cos(t);
}

std::uint64_t MixSeed(std::initializer_list<std::uint64_t> values) {
  std::uint64_t h = 0x9E3779B97F4A7C15ull;
  for (std::uint64_t v : values) {
    h ^= v + 0x9E3779B97F4A7C15ull + (h << 6) + (h >> 2);
    h += 0x9E3779B97F4A7C15ull;
    h = (h ^ (h >> 30)) * 0xBF58476D1CE4E5B9ull;
    h = (h ^ (h >> 27)) * 0x94D049BB133111EBull;
    h ^= h >> 31;
  }
  return h;
}

// ---------------------------------------------------------------------------------------------------------------
// Shapes and floats.

const char* LayoutName(simdnorm_layout layout) {
  switch (layout) {
    case SIMDNORM_NCHW:
      return "NCHW";
    case SIMDNORM_NHWC:
      return "NHWC";
  }
  return "layout?";
}

std::string ShapeString(const simdnorm_shape& s) {
  std::ostringstream os;
  os << "n=" << s.n << " c=" << s.c << " spatial=" << s.spatial << " " << LayoutName(s.layout);
  return os.str();
}

std::string CoordString(const simdnorm_shape& s, std::size_t flat) {
  std::size_t n, c, sp;
  if (s.layout == SIMDNORM_NCHW) {
    sp = flat % s.spatial;
    c = (flat / s.spatial) % s.c;
    n = flat / (s.spatial * s.c);
  } else {
    c = flat % s.c;
    sp = (flat / s.c) % s.spatial;
    n = flat / (s.c * s.spatial);
  }
  std::ostringstream os;
  os << "(n=" << n << ", c=" << c << ", s=" << sp << ")";
  return os.str();
}

std::uint64_t UlpDistance(float a, float b) {
  if (std::isnan(a) || std::isnan(b)) return UINT64_MAX;
  // Map the sign-magnitude bit patterns onto a monotonic integer line.
  auto ordered = [](float f) -> std::int64_t {
    const std::uint32_t u = FloatBits(f);
    return (u & 0x80000000u) ? -static_cast<std::int64_t>(u & 0x7FFFFFFFu) : static_cast<std::int64_t>(u);
  };
  const std::int64_t d = ordered(a) - ordered(b);
  return static_cast<std::uint64_t>(d < 0 ? -d : d);
}

std::string FloatString(double v) {
  char buf[64];
  if (v == static_cast<double>(static_cast<float>(v)) || std::isnan(v)) {
    std::snprintf(buf, sizeof buf, "%.9g [0x%08" PRIx32 "]", v, FloatBits(static_cast<float>(v)));
  } else {
    std::snprintf(buf, sizeof buf, "%.9g", v);
  }
  return buf;
}

std::string DoubleString(double v) {
  std::uint64_t u;
  std::memcpy(&u, &v, sizeof u);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.17g [0x%016" PRIx64 "]", v, u);
  return buf;
}

bool ExpectSameBits(const std::string& context, const char* what, const float* got, const float* want,
                    std::size_t count, const simdnorm_shape* tensor) {
  if (count == 0 || std::memcmp(got, want, count * sizeof(float)) == 0) return true;  // memcmp wants non-NULL
  std::size_t bad = 0, first = 0;
  for (std::size_t i = 0; i < count; ++i) {
    if (FloatBits(got[i]) != FloatBits(want[i]) && bad++ == 0) first = i;
  }
  const std::string where = tensor != nullptr ? CoordString(*tensor, first) : "(channel " + std::to_string(first) + ")";
  ADD_FAILURE() << context << "\n  " << what << ": " << bad << " of " << count << " values differ in their bits; "
                << "first at index " << first << " " << where << ": got " << FloatString(got[first]) << ", want "
                << FloatString(want[first]);
  return false;
}

bool ExpectSameBits(const std::string& context, const char* what, const double* got, const double* want,
                    std::size_t count) {
  if (count == 0 || std::memcmp(got, want, count * sizeof(double)) == 0) return true;
  std::size_t bad = 0, first = 0;
  for (std::size_t i = 0; i < count; ++i) {
    if (std::memcmp(got + i, want + i, sizeof(double)) != 0 && bad++ == 0) first = i;
  }
  ADD_FAILURE() << context << "\n  " << what << ": " << bad << " of " << count << " values differ in their bits; "
                << "first at index " << first << ": got " << DoubleString(got[first]) << ", want "
                << DoubleString(want[first]);
  return false;
}

// ---------------------------------------------------------------------------------------------------------------
// Guarded buffers.

namespace {
constexpr std::uint32_t kGuardBits = 0xCDCDCDCDu;
}

GuardedBuffer::GuardedBuffer(std::size_t count, std::size_t misalign)
    : storage_(count + 2 * kGuard + misalign, BitsToFloat(kGuardBits)), count_(count), misalign_(misalign) {}

void GuardedBuffer::fill(float v) { std::fill(data(), data() + count_, v); }

void GuardedBuffer::assign(const std::vector<float>& values) {
  std::memcpy(data(), values.data(), std::min(values.size(), count_) * sizeof(float));
}

void GuardedBuffer::assign(const float* values) { std::memcpy(data(), values, count_ * sizeof(float)); }

bool GuardedBuffer::GuardsIntact() const {
  const std::size_t begin = kGuard + misalign_;
  for (std::size_t i = 0; i < storage_.size(); ++i) {
    if (i >= begin && i < begin + count_) continue;
    if (FloatBits(storage_[i]) != kGuardBits) return false;
  }
  return true;
}

bool ExpectGuardsIntact(const std::string& context, const char* what, const GuardedBuffer& buffer) {
  if (buffer.GuardsIntact()) return true;
  ADD_FAILURE() << context << "\n  " << what << ": a write landed outside the " << buffer.size() << "-element buffer";
  return false;
}

// ---------------------------------------------------------------------------------------------------------------
// Data.

void FillInput(Rng& rng, const simdnorm_shape& shape, const InputDistribution& dist, float* x) {
  const std::size_t m = shape.n * shape.spatial;
  std::vector<float> values(m);
  for (std::size_t c = 0; c < shape.c; ++c) {
    const double mean = rng.uniform(dist.mean_lo, dist.mean_hi);
    const double stddev = rng.uniform(dist.stddev_lo, dist.stddev_hi);
    // Redraw a channel whose sample deviation came out below half the intended one (only likely for a handful of
    // values): its |mean|/std would be far beyond the distribution's, an ill-conditioned case that only the
    // large-mean tests should pose, with their own documented bounds.
    for (int attempt = 0; attempt < 1000; ++attempt) {
      double sum = 0.0;
      for (float& v : values) {
        v = static_cast<float>(mean + stddev * rng.normal());
        sum += v;
      }
      if (m < 2) break;
      double m2 = 0.0;
      for (float v : values) m2 += (v - sum / m) * (v - sum / m);
      if (std::sqrt(m2 / m) >= 0.5 * stddev) break;
    }
    std::size_t k = 0;
    for (std::size_t n = 0; n < shape.n; ++n) {
      for (std::size_t s = 0; s < shape.spatial; ++s) x[Offset(shape, n, c, s)] = values[k++];
    }
  }
}

void ChannelStats(const simdnorm_shape& shape, const float* x, std::vector<double>& mean, std::vector<double>& var) {
  const std::size_t m = shape.n * shape.spatial;
  mean.assign(shape.c, 0.0);
  var.assign(shape.c, 0.0);
  const std::size_t count = Elements(shape);
  for (std::size_t i = 0; i < count; ++i) mean[ChannelOf(shape, i)] += x[i];
  for (double& v : mean) v /= static_cast<double>(m);
  for (std::size_t i = 0; i < count; ++i) {
    const std::size_t c = ChannelOf(shape, i);
    const double d = x[i] - mean[c];
    var[c] += d * d;
  }
  for (double& v : var) v /= static_cast<double>(m);
}

bool SeparateFromReluKink(Rng& rng, const simdnorm_shape& shape, float* x, const float* gamma, float* beta, float eps,
                          double margin) {
  const std::size_t count = Elements(shape);
  std::vector<float> y(count);
  std::vector<double> mean, var;
  std::vector<char> channel_bad(shape.c);
  for (int iteration = 0; iteration < 100; ++iteration) {
    if (simdnorm_reference_forward_training(&shape, x, y.data(), gamma, beta, eps, nullptr, nullptr, nullptr, nullptr,
                                            0.0f, 0) != SIMDNORM_SUCCESS) {
      return false;
    }
    ChannelStats(shape, x, mean, var);
    std::fill(channel_bad.begin(), channel_bad.end(), 0);
    bool any = false;
    for (std::size_t i = 0; i < count; ++i) {
      if (std::fabs(y[i]) >= margin) continue;
      const std::size_t c = ChannelOf(shape, i);
      channel_bad[c] = 1;
      any = true;
      if (iteration < 20) {
        // Move the value so that its output lands at +-4 margins, on the side it was on. One value moves the
        // statistics by O(1/m) of that step, so a large channel settles at once (redrawing the value at random
        // instead would shift the statistics by O(std/m) per value and pull as many new values into the band).
        const double a = (gamma ? gamma[c] : 1.0) / std::sqrt(var[c] + double(eps));
        const double b = (beta ? beta[c] : 0.0) - mean[c] * a;
        const double target = (y[i] < 0.0f ? -4.0 : 4.0) * margin;
        x[i] = static_cast<float>((target - b) / a);
      } else {
        x[i] = static_cast<float>(mean[c] + std::sqrt(var[c]) * rng.normal());
      }
    }
    if (!any) return true;
    // With two values per channel xhat is always about +-1 (and with three nearly as rigid), so only beta can move
    // bn(x) off zero there.
    if (beta != nullptr && iteration >= 1 && shape.n * shape.spatial <= 3) {
      for (std::size_t c = 0; c < shape.c; ++c) {
        if (channel_bad[c]) beta[c] = static_cast<float>(rng.uniform(-1.0, 1.0));
      }
    }
  }
  return false;
}

BackwardBounds::BackwardBounds(const simdnorm_shape& shape, const float* x, const float* dy_masked, const float* gamma,
                               const float* batch_mean, const float* batch_invstd)
    : shape_(shape),
      x_(x),
      dy_(dy_masked),
      gamma_(gamma),
      mean_(batch_mean),
      invstd_(batch_invstd),
      m_(static_cast<double>(shape.n * shape.spatial)),
      sum_dy_(shape.c, 0.0),
      sum_dy_xhat_(shape.c, 0.0) {
  const std::size_t count = Elements(shape);
  for (std::size_t i = 0; i < count; ++i) {
    const std::size_t c = ChannelOf(shape, i);
    sum_dy_[c] += std::fabs(dy_masked[i]);
    sum_dy_xhat_[c] += std::fabs(dy_masked[i]) * (std::fabs(x[i]) + std::fabs(batch_mean[c])) * batch_invstd[c];
  }
}

double BackwardBounds::dx(std::size_t i, double ref_dbeta, double ref_dgamma) const {
  const std::size_t c = ChannelOf(shape_, i);
  const double invstd = invstd_[c];
  const double c1 = std::fabs((gamma_ ? gamma_[c] : 1.0) * invstd);
  const double xhat = (double(x_[i]) - mean_[c]) * invstd;
  const double xhat_tol = kElementUlps * FLT_EPSILON * (std::fabs(x_[i]) + std::fabs(mean_[c])) * invstd;
  const double own =
      kElementUlps * FLT_EPSILON * (std::fabs(dy_[i]) + std::fabs(ref_dbeta) / m_ + std::fabs(xhat * ref_dgamma) / m_);
  const double propagated = dbeta(c) / m_ + std::fabs(xhat) * dgamma(c) / m_ + xhat_tol * std::fabs(ref_dgamma) / m_;
  return c1 * (own + propagated);
}

namespace {

std::string StatusString(simdnorm_status status) {
  switch (status) {
    case SIMDNORM_SUCCESS:
      return "SIMDNORM_SUCCESS";
    case SIMDNORM_INVALID_ARGUMENT:
      return "SIMDNORM_INVALID_ARGUMENT";
    case SIMDNORM_UNSUPPORTED:
      return "SIMDNORM_UNSUPPORTED";
    case SIMDNORM_OUT_OF_MEMORY:
      return "SIMDNORM_OUT_OF_MEMORY";
    case SIMDNORM_NON_FINITE:
      return "SIMDNORM_NON_FINITE";
  }
  return "status " + std::to_string(static_cast<int>(status));
}

bool ExpectStatus(const std::string& context, const char* call, simdnorm_status got) {
  if (got == SIMDNORM_SUCCESS) return true;
  ADD_FAILURE() << context << "\n  " << call << " returned " << StatusString(got) << ": " << simdnorm_last_error();
  return false;
}

bool ExpectUnchanged(const std::string& context, const char* what, const float* got, const float* original,
                     std::size_t count) {
  if (std::memcmp(got, original, count * sizeof(float)) == 0) return true;
  std::size_t i = 0;
  while (FloatBits(got[i]) == FloatBits(original[i])) ++i;
  ADD_FAILURE() << context << "\n  " << what << " is an input but was modified, first at index " << i << ": "
                << FloatString(original[i]) << " became " << FloatString(got[i]);
  return false;
}

std::string Flags(bool inplace, bool relu) {
  std::string s;
  s += inplace ? " inplace" : " out-of-place";
  if (relu) s += " relu";
  return s;
}

void MakeAffineParams(Rng& rng, std::size_t c, std::vector<float>& gamma, std::vector<float>& beta) {
  gamma.resize(c);
  beta.resize(c);
  for (std::size_t i = 0; i < c; ++i) {
    gamma[i] = static_cast<float>(rng.signed_uniform(0.5, 2.0));
    beta[i] = static_cast<float>(rng.uniform(-1.0, 1.0));
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------------------------------
// Training forward.

std::string TrainingCheck::Describe() const {
  std::ostringstream os;
  os << "TrainingCheck " << ShapeString(MakeShape(n_, c_, spatial_, layout_)) << Flags(inplace_, relu_)
     << (gamma_beta_ ? " gamma_beta" : "") << (running_ ? " running" : "") << (batch_stats_ ? "" : " no-batch-stats")
     << " misalign=" << misalign_ << " eps=" << eps_ << " momentum=" << momentum_ << " seed=" << seed_
     << " isa=" << CurrentIsa();
  return os.str();
}

bool TrainingCheck::Test() const {
  const simdnorm_shape shape = MakeShape(n_, c_, spatial_, layout_);
  const std::size_t count = Elements(shape);
  const std::size_t C = c_;
  const double m = static_cast<double>(n_ * spatial_);
  const std::string context = Describe();
  Rng rng(MixSeed({seed_, n_, c_, spatial_}));

  std::vector<float> x(count);
  FillInput(rng, shape, dist_, x.data());
  std::vector<float> gamma, beta, rm0(C), rv0(C);
  MakeAffineParams(rng, C, gamma, beta);
  for (std::size_t c = 0; c < C; ++c) {
    rm0[c] = static_cast<float>(rng.uniform(-1.0, 1.0));
    rv0[c] = static_cast<float>(rng.uniform(0.5, 2.0));
  }
  const float* g = gamma_beta_ ? gamma.data() : nullptr;
  const float* b = gamma_beta_ ? beta.data() : nullptr;
  const unsigned flags = relu_ ? SIMDNORM_FUSE_RELU : 0u;

  std::vector<float> y_ref(count), bm_ref(C), bi_ref(C), rm_ref(rm0), rv_ref(rv0);
  if (!ExpectStatus(context, "simdnorm_reference_forward_training",
                    simdnorm_reference_forward_training(&shape, x.data(), y_ref.data(), g, b, eps_, bm_ref.data(),
                                                        bi_ref.data(), running_ ? rm_ref.data() : nullptr,
                                                        running_ ? rv_ref.data() : nullptr, momentum_, flags))) {
    return false;
  }

  GuardedBuffer xin(count, misalign_);
  xin.assign(x);
  GuardedBuffer yout(inplace_ ? 0 : count, misalign_);
  yout.fill(SentinelFloat());
  GuardedBuffer bm(C), bi(C), rm(C), rv(C);
  bm.fill(SentinelFloat());
  bi.fill(SentinelFloat());
  rm.assign(rm0);
  rv.assign(rv0);
  float* y = inplace_ ? xin.data() : yout.data();
  if (!ExpectStatus(context, "simdnorm_forward_training",
                    simdnorm_forward_training(&shape, xin.data(), y, g, b, eps_, batch_stats_ ? bm.data() : nullptr,
                                              batch_stats_ ? bi.data() : nullptr, running_ ? rm.data() : nullptr,
                                              running_ ? rv.data() : nullptr, momentum_, flags))) {
    return false;
  }

  std::vector<double> mean, var;
  ChannelStats(shape, x.data(), mean, var);
  std::vector<double> tol_mean(C);
  for (std::size_t c = 0; c < C; ++c) {
    tol_mean[c] = MeanTolerance(mean[c], var[c], mean_ulps_);
  }
  bool ok = true;
  ok &= ExpectNear(context, "y", y, y_ref.data(), count, &shape, [&](std::size_t i) {
    const std::size_t c = ChannelOf(shape, i);
    return TrainingOutputTolerance(x[i], g ? g[c] : 1.0, b ? b[c] : 0.0, bm_ref[c], bi_ref[c], tol_mean[c],
                                   invstd_rel_);
  });
  if (batch_stats_) {
    ok &= ExpectNear(context, "batch_mean", bm.data(), bm_ref.data(), C, nullptr,
                     [&](std::size_t c) { return tol_mean[c]; });
    ok &= ExpectNear(context, "batch_invstd", bi.data(), bi_ref.data(), C, nullptr,
                     [&](std::size_t c) { return invstd_rel_ * std::fabs(double(bi_ref[c])); });
  }
  if (running_) {
    ok &= ExpectNear(context, "running_mean", rm.data(), rm_ref.data(), C, nullptr,
                     [&](std::size_t c) { return RunningMeanTolerance(rm0[c], mean[c], momentum_, tol_mean[c]); });
    ok &= ExpectNear(context, "running_var", rv.data(), rv_ref.data(), C, nullptr, [&](std::size_t c) {
      return RunningVarTolerance(rv0[c], var[c], m, eps_, momentum_, invstd_rel_);
    });
  }
  if (!inplace_) ok &= ExpectUnchanged(context, "x", xin.data(), x.data(), count);
  ok &= ExpectGuardsIntact(context, "x/y", xin) && ExpectGuardsIntact(context, "y", yout);
  ok &= ExpectGuardsIntact(context, "batch_mean", bm) && ExpectGuardsIntact(context, "batch_invstd", bi);
  ok &= ExpectGuardsIntact(context, "running_mean", rm) && ExpectGuardsIntact(context, "running_var", rv);
  return ok;
}

// ---------------------------------------------------------------------------------------------------------------
// Inference forward.

std::string InferenceCheck::Describe() const {
  std::ostringstream os;
  os << "InferenceCheck " << ShapeString(MakeShape(n_, c_, spatial_, layout_)) << Flags(inplace_, relu_)
     << (gamma_beta_ ? " gamma_beta" : "") << " misalign=" << misalign_ << " eps=" << eps_ << " seed=" << seed_
     << " isa=" << CurrentIsa();
  return os.str();
}

bool InferenceCheck::Test() const {
  const simdnorm_shape shape = MakeShape(n_, c_, spatial_, layout_);
  const std::size_t count = Elements(shape);
  const std::size_t C = c_;
  const std::string context = Describe();
  Rng rng(MixSeed({seed_, n_, c_, spatial_, 0x1f}));

  std::vector<float> x(count);
  FillInput(rng, shape, InputDistribution{}, x.data());
  std::vector<float> gamma, beta, mean(C), var(C);
  MakeAffineParams(rng, C, gamma, beta);
  for (std::size_t c = 0; c < C; ++c) {
    mean[c] = static_cast<float>(rng.uniform(-3.0, 3.0));
    // Every seventh channel has zero variance: valid, eps alone keeps invstd finite.
    var[c] = c % 7 == 6 ? 0.0f : static_cast<float>(rng.uniform(0.25, 4.0));
  }
  const float* g = gamma_beta_ ? gamma.data() : nullptr;
  const float* b = gamma_beta_ ? beta.data() : nullptr;
  const unsigned flags = relu_ ? SIMDNORM_FUSE_RELU : 0u;

  std::vector<float> y_ref(count);
  if (!ExpectStatus(context, "simdnorm_reference_forward_inference",
                    simdnorm_reference_forward_inference(&shape, x.data(), y_ref.data(), g, b, mean.data(), var.data(),
                                                         eps_, flags))) {
    return false;
  }
  GuardedBuffer xin(count, misalign_);
  xin.assign(x);
  GuardedBuffer yout(inplace_ ? 0 : count, misalign_);
  yout.fill(SentinelFloat());
  float* y = inplace_ ? xin.data() : yout.data();
  if (!ExpectStatus(context, "simdnorm_forward_inference",
                    simdnorm_forward_inference(&shape, xin.data(), y, g, b, mean.data(), var.data(), eps_, flags))) {
    return false;
  }
  bool ok = ExpectNear(context, "y", y, y_ref.data(), count, &shape, [&](std::size_t i) {
    const std::size_t c = ChannelOf(shape, i);
    const double scale = (g ? g[c] : 1.0) / std::sqrt(double(var[c]) + double(eps_));
    const double shift = (b ? b[c] : 0.0) - double(mean[c]) * scale;
    return InferenceOutputTolerance(x[i], mean[c], scale, shift);
  });
  if (!inplace_) ok &= ExpectUnchanged(context, "x", xin.data(), x.data(), count);
  ok &= ExpectGuardsIntact(context, "x/y", xin) && ExpectGuardsIntact(context, "y", yout);
  return ok;
}

// ---------------------------------------------------------------------------------------------------------------
// Backward.

std::string BackwardCheck::Describe() const {
  std::ostringstream os;
  os << "BackwardCheck " << ShapeString(MakeShape(n_, c_, spatial_, layout_)) << (inplace_ ? " dx=dy" : " out-of-place")
     << (relu_ ? " relu" : "") << (gamma_beta_ ? " gamma_beta" : "") << " outputs=" << (want_dx_ ? "dx," : "")
     << (want_dgamma_ ? "dgamma," : "") << (want_dbeta_ ? "dbeta" : "") << " misalign=" << misalign_ << " eps=" << eps_
     << " seed=" << seed_ << " isa=" << CurrentIsa();
  return os.str();
}

bool BackwardCheck::Test() const {
  const simdnorm_shape shape = MakeShape(n_, c_, spatial_, layout_);
  const std::size_t count = Elements(shape);
  const std::size_t C = c_;
  const std::string context = Describe();
  Rng rng(MixSeed({seed_, n_, c_, spatial_, 0xbac}));

  std::vector<float> x(count), dy(count);
  const InputDistribution dist;
  FillInput(rng, shape, dist, x.data());
  std::vector<float> gamma, beta;
  MakeAffineParams(rng, C, gamma, beta);
  const float* g = gamma_beta_ ? gamma.data() : nullptr;
  const float* b = gamma_beta_ ? beta.data() : nullptr;
  if (relu_ && !SeparateFromReluKink(rng, shape, x.data(), g, gamma_beta_ ? beta.data() : nullptr, eps_, 1e-3)) {
    ADD_FAILURE() << context << "\n  could not generate data with every |bn(x)| >= 1e-3";
    return false;
  }
  for (float& v : dy) v = static_cast<float>(rng.normal());
  const unsigned flags = relu_ ? SIMDNORM_FUSE_RELU : 0u;

  // Both implementations differentiate the same forward pass: the statistics the reference forward saved.
  std::vector<float> bm(C), bi(C), y_fwd(count);
  if (!ExpectStatus(context, "simdnorm_reference_forward_training",
                    simdnorm_reference_forward_training(&shape, x.data(), y_fwd.data(), g, b, eps_, bm.data(),
                                                        bi.data(), nullptr, nullptr, 0.0f, 0))) {
    return false;
  }
  std::vector<float> dx_ref(count), dg_ref(C), db_ref(C);
  if (!ExpectStatus(context, "simdnorm_reference_backward",
                    simdnorm_reference_backward(&shape, x.data(), dy.data(), g, b, bm.data(), bi.data(), dx_ref.data(),
                                                dg_ref.data(), db_ref.data(), flags))) {
    return false;
  }

  GuardedBuffer xin(count, misalign_), dyin(count, misalign_);
  xin.assign(x);
  dyin.assign(dy);
  GuardedBuffer dxout(inplace_ ? 0 : count, misalign_), dg(C), db(C);
  dxout.fill(SentinelFloat());
  dg.fill(SentinelFloat());
  db.fill(SentinelFloat());
  float* dx = !want_dx_ ? nullptr : inplace_ ? dyin.data() : dxout.data();
  if (!ExpectStatus(context, "simdnorm_backward",
                    simdnorm_backward(&shape, xin.data(), dyin.data(), g, b, bm.data(), bi.data(), dx,
                                      want_dgamma_ ? dg.data() : nullptr, want_dbeta_ ? db.data() : nullptr, flags))) {
    return false;
  }

  // The mask is the reference forward's: the data keep every |bn(x)| >= 1e-3, far beyond any rounding, so the
  // kernel's recomputed mask agrees with it.
  std::vector<float> dy_masked(dy);
  for (std::size_t i = 0; i < count; ++i) {
    if (relu_ && !(y_fwd[i] > 0.0f)) dy_masked[i] = 0.0f;
  }
  const BackwardBounds bounds(shape, x.data(), dy_masked.data(), g, bm.data(), bi.data());
  bool ok = true;
  if (want_dbeta_) {
    ok &= ExpectNear(context, "dbeta", db.data(), db_ref.data(), C, nullptr,
                     [&](std::size_t c) { return bounds.dbeta(c); });
  }
  if (want_dgamma_) {
    ok &= ExpectNear(context, "dgamma", dg.data(), dg_ref.data(), C, nullptr,
                     [&](std::size_t c) { return bounds.dgamma(c); });
  }
  if (want_dx_) {
    ok &= ExpectNear(context, "dx", dx, dx_ref.data(), count, &shape, [&](std::size_t i) {
      const std::size_t c = ChannelOf(shape, i);
      return bounds.dx(i, db_ref[c], dg_ref[c]);
    });
  }
  if (!want_dgamma_) ok &= ExpectGuardsIntact(context, "dgamma (not requested)", dg);
  if (!want_dbeta_) ok &= ExpectGuardsIntact(context, "dbeta (not requested)", db);
  ok &= ExpectUnchanged(context, "x", xin.data(), x.data(), count);
  if (!(inplace_ && want_dx_)) ok &= ExpectUnchanged(context, "dy", dyin.data(), dy.data(), count);
  ok &= ExpectGuardsIntact(context, "x", xin) && ExpectGuardsIntact(context, "dy/dx", dyin);
  ok &= ExpectGuardsIntact(context, "dx", dxout) && ExpectGuardsIntact(context, "dgamma", dg) &&
        ExpectGuardsIntact(context, "dbeta", db);
  return ok;
}

// ---------------------------------------------------------------------------------------------------------------
// Affine.

std::string AffineCheck::Describe() const {
  std::ostringstream os;
  os << "AffineCheck " << ShapeString(MakeShape(n_, c_, spatial_, layout_)) << Flags(inplace_, relu_)
     << " misalign=" << misalign_ << " seed=" << seed_ << " isa=" << CurrentIsa();
  return os.str();
}

bool AffineCheck::Test() const {
  const simdnorm_shape shape = MakeShape(n_, c_, spatial_, layout_);
  const std::size_t count = Elements(shape);
  const std::size_t C = c_;
  const std::string context = Describe();
  Rng rng(MixSeed({seed_, n_, c_, spatial_, 0xaff}));

  std::vector<float> x(count), scale(C), shift(C);
  FillInput(rng, shape, InputDistribution{}, x.data());
  for (std::size_t c = 0; c < C; ++c) {
    scale[c] = static_cast<float>(rng.signed_uniform(0.25, 2.0));
    shift[c] = static_cast<float>(rng.uniform(-2.0, 2.0));
  }
  const unsigned flags = relu_ ? SIMDNORM_FUSE_RELU : 0u;
  std::vector<float> y_ref(count);
  if (!ExpectStatus(context, "simdnorm_reference_affine",
                    simdnorm_reference_affine(&shape, x.data(), y_ref.data(), scale.data(), shift.data(), flags))) {
    return false;
  }
  GuardedBuffer xin(count, misalign_);
  xin.assign(x);
  GuardedBuffer yout(inplace_ ? 0 : count, misalign_);
  yout.fill(SentinelFloat());
  float* y = inplace_ ? xin.data() : yout.data();
  if (!ExpectStatus(context, "simdnorm_affine",
                    simdnorm_affine(&shape, xin.data(), y, scale.data(), shift.data(), flags))) {
    return false;
  }
  bool ok = ExpectNear(context, "y", y, y_ref.data(), count, &shape, [&](std::size_t i) {
    const std::size_t c = ChannelOf(shape, i);
    return AffineOutputTolerance(x[i], scale[c], shift[c]);
  });
  if (!inplace_) ok &= ExpectUnchanged(context, "x", xin.data(), x.data(), count);
  ok &= ExpectGuardsIntact(context, "x/y", xin) && ExpectGuardsIntact(context, "y", yout);
  return ok;
}

// ---------------------------------------------------------------------------------------------------------------
// Fold.

std::string FoldCheck::Describe() const {
  std::ostringstream os;
  os << "FoldCheck c=" << c_ << (gamma_beta_ ? " gamma_beta" : "") << " eps=" << eps_ << " seed=" << seed_
     << " isa=" << CurrentIsa();
  return os.str();
}

bool FoldCheck::Test() const {
  const std::size_t C = c_;
  const std::string context = Describe();
  Rng rng(MixSeed({seed_, c_, 0xf01d}));
  std::vector<float> gamma, beta, mean(C), var(C);
  MakeAffineParams(rng, C, gamma, beta);
  for (std::size_t c = 0; c < C; ++c) {
    mean[c] = static_cast<float>(rng.uniform(-3.0, 3.0));
    var[c] = c % 5 == 4 ? 0.0f : static_cast<float>(rng.uniform(0.0, 4.0));
  }
  const float* g = gamma_beta_ ? gamma.data() : nullptr;
  const float* b = gamma_beta_ ? beta.data() : nullptr;
  std::vector<float> scale_ref(C), shift_ref(C);
  if (!ExpectStatus(
          context, "simdnorm_reference_fold",
          simdnorm_reference_fold(C, g, b, mean.data(), var.data(), eps_, scale_ref.data(), shift_ref.data()))) {
    return false;
  }
  GuardedBuffer scale(C), shift(C);
  scale.fill(SentinelFloat());
  shift.fill(SentinelFloat());
  if (!ExpectStatus(context, "simdnorm_fold",
                    simdnorm_fold(C, g, b, mean.data(), var.data(), eps_, scale.data(), shift.data()))) {
    return false;
  }
  // Both compute in double and round once, so they agree to the last bit, or one ulp where the two double
  // evaluations straddle a rounding boundary.
  bool ok = true;
  for (std::size_t c = 0; c < C; ++c) {
    const std::uint64_t d_scale = UlpDistance(scale[c], scale_ref[c]);
    const std::uint64_t d_shift = UlpDistance(shift[c], shift_ref[c]);
    if (d_scale > 1 || d_shift > 1) {
      // Name the two readings of "shift = beta - mean*scale" so a failure says which one each side implements.
      const double exact_scale = (g ? g[c] : 1.0) / std::sqrt(double(var[c]) + double(eps_));
      const double beta_c = b ? b[c] : 0.0;
      ADD_FAILURE() << context << "\n  channel " << c << " (gamma " << FloatString(g ? g[c] : 1.0f) << ", beta "
                    << FloatString(static_cast<float>(beta_c)) << ", mean " << FloatString(mean[c]) << ", var "
                    << FloatString(var[c]) << "): scale " << FloatString(scale[c]) << " vs reference "
                    << FloatString(scale_ref[c]) << " (" << d_scale << " ulp), shift " << FloatString(shift[c])
                    << " vs reference " << FloatString(shift_ref[c]) << " (" << d_shift
                    << " ulp); tolerance 1 ulp each. beta - mean*scale rounded once is "
                    << FloatString(static_cast<float>(beta_c - double(mean[c]) * exact_scale))
                    << " with the double scale, "
                    << FloatString(static_cast<float>(beta_c - double(mean[c]) * double(float(exact_scale))))
                    << " with the float scale";
      ok = false;
      break;
    }
  }
  ok &= ExpectGuardsIntact(context, "scale", scale) && ExpectGuardsIntact(context, "shift", shift);
  return ok;
}

}  // namespace simdnorm_test
