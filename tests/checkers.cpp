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

BackwardBuffers::BackwardBuffers(const std::vector<float>& x_given, const std::vector<float>& dy_given,
                                 std::size_t channels, std::size_t misalign, bool inplace_dx)
    : inplace(inplace_dx),
      x(x_given.size(), misalign),
      dy(dy_given.size(), misalign),
      dx_own(inplace_dx ? 0 : dy_given.size(), misalign),
      dgamma(channels),
      dbeta(channels) {
  x.assign(x_given);
  dy.assign(dy_given);
  dx_own.fill(SentinelFloat());
  dgamma.fill(SentinelFloat());
  dbeta.fill(SentinelFloat());
}

bool BackwardBuffers::ExpectIntact(const std::string& context, const std::vector<float>& x_given,
                                   const std::vector<float>& dy_given, bool dx_written) const {
  bool ok = ExpectUnchanged(context, "x (an input)", x.data(), x_given.data(), x_given.size());
  if (!(inplace && dx_written)) ok &= ExpectUnchanged(context, "dy (an input)", dy.data(), dy_given.data(), dy.size());
  ok &= ExpectGuardsIntact(context, "x", x) && ExpectGuardsIntact(context, "dy/dx", dy);
  ok &= ExpectGuardsIntact(context, "dx", dx_own) && ExpectGuardsIntact(context, "dgamma", dgamma) &&
        ExpectGuardsIntact(context, "dbeta", dbeta);
  return ok;
}

// ---------------------------------------------------------------------------------------------------------------
// Data.

void DrawSample(Rng& rng, const InputDistribution& dist, std::vector<float>& values) {
  const std::size_t m = values.size();
  const double mean = rng.uniform(dist.mean_lo, dist.mean_hi);
  const double stddev = rng.uniform(dist.stddev_lo, dist.stddev_hi);
  // Redraw a sample whose deviation came out below half the intended one (only likely for a handful of values): its
  // |mean|/std would be far beyond the distribution's, an ill-conditioned case that only the large-mean tests should
  // pose, with their own documented bounds.
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
}

void FillInput(Rng& rng, const simdnorm_shape& shape, const InputDistribution& dist, float* x) {
  std::vector<float> values(shape.n * shape.spatial);
  for (std::size_t c = 0; c < shape.c; ++c) {
    DrawSample(rng, dist, values);
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
  ReluKinkSearch search;
  search.count = Elements(shape);
  search.channels = shape.c;
  search.per_stat = shape.n * shape.spatial;
  search.forward = [&](float* y) {
    return simdnorm_reference_forward_training(&shape, x, y, gamma, beta, eps, nullptr, nullptr, nullptr, nullptr, 0.0f,
                                               0) == SIMDNORM_SUCCESS;
  };
  search.stats = [&](std::vector<double>& mean, std::vector<double>& var) { ChannelStats(shape, x, mean, var); };
  search.channel = search.stat = [&](std::size_t i) { return ChannelOf(shape, i); };
  return SeparateFromReluKink(rng, search, x, gamma, beta, eps, margin);
}

bool SeparateFromReluKink(Rng& rng, const ReluKinkSearch& search, float* x, const float* gamma, float* beta, float eps,
                          double margin) {
  std::vector<float> y(search.count);
  std::vector<double> mean, var;
  std::vector<char> channel_bad(search.channels);
  for (int iteration = 0; iteration < 100; ++iteration) {
    if (!search.forward(y.data())) return false;
    search.stats(mean, var);
    std::fill(channel_bad.begin(), channel_bad.end(), 0);
    bool any = false;
    for (std::size_t i = 0; i < search.count; ++i) {
      if (std::fabs(y[i]) >= margin) continue;
      const std::size_t c = search.channel(i), s = search.stat(i);
      channel_bad[c] = 1;
      any = true;
      if (iteration < 20) {
        // Move the value so that its output lands at +-4 margins, on the side it was on. One value moves the
        // statistics by O(1/m) of that step, so a large statistic settles at once (redrawing the value at random
        // instead would shift the statistics by O(std/m) per value and pull as many new values into the band).
        const double a = (gamma ? gamma[c] : 1.0) / std::sqrt(var[s] + double(eps));
        const double b = (beta ? beta[c] : 0.0) - mean[s] * a;
        const double target = (y[i] < 0.0f ? -4.0 : 4.0) * margin;
        x[i] = static_cast<float>((target - b) / a);
      } else {
        x[i] = static_cast<float>(mean[s] + std::sqrt(var[s]) * rng.normal());
      }
    }
    if (!any) return true;
    // With two values a statistic xhat is always about +-1 (and with three nearly as rigid), so only beta can move
    // the output off zero there.
    if (beta != nullptr && iteration >= 1 && search.per_stat <= 3) {
      for (std::size_t c = 0; c < search.channels; ++c) {
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

// ---------------------------------------------------------------------------------------------------------------
// Calls, inputs and parameters.

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

bool ExpectSuccess(const std::string& context, const char* call, simdnorm_status got) {
  if (got == SIMDNORM_SUCCESS) return true;
  ADD_FAILURE() << context << "\n  " << call << " returned " << StatusString(got) << ": " << simdnorm_last_error();
  return false;
}

bool ExpectUnchanged(const std::string& context, const char* what, const float* got, const float* original,
                     std::size_t count) {
  if (count == 0 || std::memcmp(got, original, count * sizeof(float)) == 0) return true;  // memcmp wants non-NULL
  std::size_t i = 0;
  while (FloatBits(got[i]) == FloatBits(original[i])) ++i;
  ADD_FAILURE() << context << "\n  " << what << " was modified, first at index " << i << ": "
                << FloatString(original[i]) << " became " << FloatString(got[i]);
  return false;
}

void MakeAffineParams(Rng& rng, std::size_t c, std::vector<float>& gamma, std::vector<float>& beta) {
  gamma.resize(c);
  beta.resize(c);
  for (std::size_t i = 0; i < c; ++i) {
    gamma[i] = static_cast<float>(rng.signed_uniform(0.5, 2.0));
    beta[i] = static_cast<float>(rng.uniform(-1.0, 1.0));
  }
}

}  // namespace simdnorm_test
