// Numerical properties of LayerNorm, RMSNorm and GroupNorm, once per ISA: accuracy with large means, statistics that
// must come out exact on exactly representable data, and RMSNorm on values near 1e20 whose squares overflow float.
#include <sstream>

#include "norm_checkers.hpp"
#include "numerics_cases.hpp"

namespace simdnorm_test {
namespace {

class NormLargeMeanTest : public IsaTest {};
class NormExactDataTest : public IsaTest {};
class RmsNormHugeValuesTest : public IsaTest {};
SIMDNORM_INSTANTIATE_PER_ISA(NormLargeMeanTest);
SIMDNORM_INSTANTIATE_PER_ISA(NormExactDataTest);
SIMDNORM_INSTANTIATE_PER_ISA(RmsNormHugeValuesTest);

std::vector<NormGeometry> NumericsShapes(NormKind kind) {
  return NormShapes(kind, {{3, 4099}, {17, 768}, {64, 33}, {2, SIMDNORM_TESTS_SANITIZED ? 20011u : 100003u}},
                    {{2, 32, 196, 8}, {1, 6, 4099, 3}, {4, 96, 49, 32}, {3, 17, 61, 17}});
}

// ---------------------------------------------------------------------------------------------------------------
// Large means: batch norm's cases (numerics_cases.hpp). As for batch norm, rstd is held to 1e-4 relative and the mean
// to 4 ulps of |mean| + std. RMSNorm has no mean to lose the deviations to: its rstd keeps the default kReductionUlps
// bound. Backward is held to its usual bounds, which scale with |x| + |mean|.

void LargeMeans(NormKind kind) {
  FailureBudget budget;
  std::uint64_t seed = 0;
  for (const LargeMeanCase& lm : kLargeMeanCases) {
    const InputDistribution dist = lm.input();
    for (const NormGeometry& g : NumericsShapes(kind)) {
      NormForwardCheck forward(g);
      forward.gamma().beta().eps(lm.eps).input(dist).seed(++seed);
      if (g.centred()) forward.rstd_rel_tol(1e-4).mean_ulps(4.0);
      const bool f = forward.Test();
      const bool b = NormBackwardCheck(g).gamma().beta().eps(lm.eps).input(dist).seed(seed).Test();
      if (!budget.Record(f && b)) return;
    }
  }
}

TEST_P(NormLargeMeanTest, LayerNorm) { LargeMeans(NormKind::kLayer); }
TEST_P(NormLargeMeanTest, RmsNorm) { LargeMeans(NormKind::kRms); }
TEST_P(NormLargeMeanTest, GroupNorm) { LargeMeans(NormKind::kGroup); }

// ---------------------------------------------------------------------------------------------------------------
// Exactly representable data. Every statistic covers a power-of-two count of values mu + d*k: mu a dyadic mean with
// few bits, d = 2^j, and k from a fixed pattern whose sum is 0 -- (+-1 x7, +-5) in blocks of 16 (mean of k^2 = 4),
// else +-1 in pairs -- so that every partial sum is exact in float, mean = mu and var = d^2 * (4 or 1) exactly.
// RMSNorm takes the same k with random signs and mu = 0 (blocks of 8: 1 x7 and 5). With eps = 2^-60, below half an
// ulp of any such var in double, rstd is a power of two: both the reference and the fast path must give the mean and
// rstd bit for bit, and then y too, with gamma and beta dyadic (y is exact in either evaluation order while |mean*a|
// stays within float's 24 bits of beta's last bit, so not for single values, whose rstd is 2^30). dbeta (sums of
// small integers) and dgamma (sums of dyadic products under 2^21 in units of their last bit) are exact in any
// summation order. With eps = 1e-5, rstd rounds twice in the reference (double, then float): the mean stays exact,
// rstd within one ulp.

void FillExact(Rng& rng, const NormGeometry& g, std::vector<float>& x, std::vector<double>& mu) {
  const std::size_t m = g.per_stat();
  x.assign(g.elements(), 0.0f);
  mu.assign(g.stats(), 0.0);
  std::vector<double> k(m);
  for (std::size_t s = 0; s < g.stats(); ++s) {
    if (g.centred()) mu[s] = kDyadicMeans[rng.below(8)];
    const double d = std::ldexp(1.0, static_cast<int>(rng.below(7)) - 3);
    for (std::size_t i = 0; i < m; ++i) {
      if (!g.centred()) {
        k[i] = (m >= 8 && i % 8 == 7 ? 5.0 : 1.0) * (rng.coin() ? 1.0 : -1.0);
      } else if (m >= 16) {
        k[i] = (i % 8 == 7 ? 5.0 : 1.0) * (i % 16 < 8 ? 1.0 : -1.0);
      } else {
        k[i] = m == 1 ? 0.0 : i % 2 == 0 ? 1.0 : -1.0;
      }
    }
    for (std::size_t i = m; i > 1; --i) std::swap(k[i - 1], k[rng.below(static_cast<std::uint32_t>(i))]);
    std::size_t next = 0;
    ForEachInStat(g, s, [&](std::size_t i) { x[i] = static_cast<float>(mu[s] + d * k[next++]); });
  }
}

std::vector<NormGeometry> ExactShapes(NormKind kind) {
  // GroupNorm: 64, 256, 4, 1 and 128 values a group.
  return NormShapes(kind, {{5, 1}, {5, 2}, {5, 8}, {5, 16}, {5, 64}, {5, 1024}, {5, 4096}},
                    {{2, 8, 16, 2}, {1, 32, 64, 8}, {3, 4, 1, 1}, {2, 16, 1, 16}, {2, 64, 64, 32}});
}

void ExactStatistics(NormKind kind) {
  std::uint64_t seed = 0;
  for (const NormGeometry& g : ExactShapes(kind)) {
    for (const float eps : {0x1p-60f, 1e-5f}) {
      const bool exact_math = eps == 0x1p-60f;
      const std::size_t count = g.elements(), S = g.stats(), C = g.c;
      std::ostringstream os;
      os << g.Describe() << " eps=" << eps << " isa=" << CurrentIsa();
      const std::string context = os.str();
      Rng rng(MixSeed({++seed, 0xe4ac7}));
      std::vector<float> x, gamma(C), beta(C), dy(count);
      std::vector<double> mu;
      FillExact(rng, g, x, mu);
      for (std::size_t c = 0; c < C; ++c) {
        gamma[c] = static_cast<float>(std::ldexp(rng.coin() ? 1.0 : -1.0, static_cast<int>(rng.below(3)) - 1));
        beta[c] = static_cast<float>((static_cast<double>(rng.below(33)) - 16.0) / 8.0);
      }
      for (float& v : dy) v = static_cast<float>(static_cast<int>(rng.below(9)) - 4);
      const float* bp = g.centred() ? beta.data() : nullptr;
      float* mean_ptr_ref = nullptr;
      std::vector<float> y(count), mean(S), rstd(S), y_ref(count), mean_ref(S), rstd_ref(S);
      if (g.centred()) mean_ptr_ref = mean_ref.data();
      ASSERT_EQ(NormForward(true, g, x.data(), y_ref.data(), gamma.data(), bp, eps, mean_ptr_ref, rstd_ref.data(), 0),
                SIMDNORM_SUCCESS)
          << context << ": " << simdnorm_last_error();
      ASSERT_EQ(NormForward(false, g, x.data(), y.data(), gamma.data(), bp, eps, g.centred() ? mean.data() : nullptr,
                            rstd.data(), 0),
                SIMDNORM_SUCCESS)
          << context << ": " << simdnorm_last_error();
      for (std::size_t s = 0; s < S; ++s) {
        if (g.centred()) {
          EXPECT_EQ(double(mean_ref[s]), mu[s]) << context << " statistic " << s << ": reference mean";
          EXPECT_EQ(double(mean[s]), mu[s]) << context << " statistic " << s << ": mean " << FloatString(mean[s])
                                            << " is not exactly the mean " << mu[s] << " of exactly representable data";
        }
        const std::uint64_t apart = UlpDistance(rstd[s], rstd_ref[s]);
        EXPECT_LE(apart, exact_math ? 0u : 1u)
            << context << " statistic " << s << ": rstd " << FloatString(rstd[s]) << " vs reference "
            << FloatString(rstd_ref[s]) << " (" << apart << " ulp apart)";
        if (::testing::Test::HasFailure()) return;
      }
      if (!exact_math) continue;
      if (g.per_stat() > 1) {
        ExpectSameBits(context, "y (exact: dyadic data, statistics and parameters)", y.data(), y_ref.data(), count,
                       nullptr);
      } else {
        // One value a statistic: var = 0, rstd = 2^30, and a*x + b (b = beta - mean*a, as simdnorm.h computes batch
        // norm's) cannot carry beta under |mean*a| ~ 2^37 in float: the usual bound, which scales with |mean*a|.
        ExpectNearAt(
            context, "y", y.data(), y_ref.data(), count,
            [&](std::size_t i) {
              const std::size_t c = g.channel(i), s = g.stat(i);
              return NormOutputTolerance(x[i], gamma[c], bp ? bp[c] : 0.0, mu[s], rstd_ref[s], 0.0, 0.0);
            },
            [&](std::size_t i) { return g.Coord(i); });
      }

      // Backward from the (exact) saved statistics: dbeta and dgamma are exact sums.
      const bool has_dbeta = g.kind != NormKind::kRms;
      const float* mp = g.centred() ? mean_ref.data() : nullptr;
      std::vector<float> dx(count), dg(C), db(C), dx_ref(count), dg_ref(C), db_ref(C);
      ASSERT_EQ(NormBackward(true, g, x.data(), dy.data(), gamma.data(), bp, mp, rstd_ref.data(), dx_ref.data(),
                             dg_ref.data(), has_dbeta ? db_ref.data() : nullptr, 0),
                SIMDNORM_SUCCESS)
          << context << ": " << simdnorm_last_error();
      ASSERT_EQ(NormBackward(false, g, x.data(), dy.data(), gamma.data(), bp, mp, rstd_ref.data(), dx.data(), dg.data(),
                             has_dbeta ? db.data() : nullptr, 0),
                SIMDNORM_SUCCESS)
          << context << ": " << simdnorm_last_error();
      ExpectSameBits(context, "dgamma (an exact sum)", dg.data(), dg_ref.data(), C, nullptr);
      if (has_dbeta) ExpectSameBits(context, "dbeta (a sum of small integers)", db.data(), db_ref.data(), C, nullptr);
      const NormBackwardBounds bounds(g, x.data(), dy.data(), gamma.data(), mp, rstd_ref.data());
      ExpectNearAt(
          context, "dx", dx.data(), dx_ref.data(), count, [&](std::size_t i) { return bounds.dx(i); },
          [&](std::size_t i) { return g.Coord(i); });
    }
  }
}

TEST_P(NormExactDataTest, LayerNorm) { ExactStatistics(NormKind::kLayer); }
TEST_P(NormExactDataTest, RmsNorm) { ExactStatistics(NormKind::kRms); }
TEST_P(NormExactDataTest, GroupNorm) { ExactStatistics(NormKind::kGroup); }

// ---------------------------------------------------------------------------------------------------------------
// RMSNorm on |x| near 1e20: the squares (1e40) overflow float, yet rstd (about 1e-20) and y (about 1) are ordinary
// floats, so the sum of squares must be kept from overflowing (scaled, or accumulated in double). Held to the usual
// bounds: rstd within kReductionUlps ulps, y and dx within their element bounds. Also the opposite end, |x| near
// 1e-20, whose squares underflow and whose rstd eps decides, and a mix of both in one row.

void HugeRms(bool backward) {
  FailureBudget budget;
  std::uint64_t seed = 0;
  struct Range {
    double mean_lo, mean_hi, std_lo, std_hi;
    float eps;
  };
  const Range ranges[] = {{-1.5e20, 1.5e20, 0.5e20, 1e20, 1e-5f},
                          {1e20, 2e20, 1e18, 1e19, 1e-5f},
                          {-3e35, 3e35, 1e35, 3e35, 1e-5f},
                          {-1e-20, 1e-20, 1e-20, 2e-20, 1e-30f},
                          {-1e-20, 1e-20, 1e-20, 2e-20, 1e-5f}};
  for (const Range& r : ranges) {
    InputDistribution dist;
    dist.mean_lo = r.mean_lo;
    dist.mean_hi = r.mean_hi;
    dist.stddev_lo = r.std_lo;
    dist.stddev_hi = r.std_hi;
    for (const auto& rc : {std::pair<std::size_t, std::size_t>{1, 1}, {3, 7}, {17, 33}, {2, 4099}, {2, 20011}}) {
      const NormGeometry g = NormGeometry::Rms(rc.first, rc.second);
      const bool passed = backward ? NormBackwardCheck(g).gamma().eps(r.eps).input(dist).seed(++seed).Test()
                                   : NormForwardCheck(g).gamma().eps(r.eps).input(dist).seed(++seed).Test();
      if (!budget.Record(passed)) return;
    }
  }
}

TEST_P(RmsNormHugeValuesTest, Forward) { HugeRms(false); }
TEST_P(RmsNormHugeValuesTest, Backward) { HugeRms(true); }

// Huge x and huge gradients at once: |x| ~ 1e20 and |dy| ~ 1e19 give dy*gamma*x ~ 1e39, past FLT_MAX, while
// xhat = x*rstd ~ 1, g*xhat ~ 1e19 and dx ~ 0.1 are ordinary floats. Held to the usual bounds: the sum of g*xhat
// (or of g*x scaled before it can overflow) must not be formed where it overflows.
TEST_P(RmsNormHugeValuesTest, BackwardWithHugeGradients) {
  FailureBudget budget;
  for (std::size_t cols : {2u, 7u, 64u, 4099u}) {
    const NormGeometry g = NormGeometry::Rms(3, cols);
    const std::size_t count = g.elements();
    Rng rng(MixSeed({cols, 0x1e19}));
    std::vector<float> x(count), dy(count), gamma(cols), y(count), rstd(3), dx(count), dg(cols), dx_ref(count),
        dg_ref(cols);
    for (std::size_t i = 0; i < count; ++i) {
      x[i] = static_cast<float>(rng.signed_uniform(0.5e20, 2e20));
      dy[i] = static_cast<float>(rng.signed_uniform(0.5e19, 2e19));
    }
    for (float& v : gamma) v = static_cast<float>(rng.signed_uniform(0.5, 2.0));
    ASSERT_EQ(simdnorm_reference_rms_norm_forward(3, cols, x.data(), y.data(), gamma.data(), 1e-5f, rstd.data(), 0),
              SIMDNORM_SUCCESS);
    ASSERT_EQ(simdnorm_reference_rms_norm_backward(3, cols, x.data(), dy.data(), gamma.data(), rstd.data(),
                                                   dx_ref.data(), dg_ref.data(), 0),
              SIMDNORM_SUCCESS);
    ASSERT_EQ(
        simdnorm_rms_norm_backward(3, cols, x.data(), dy.data(), gamma.data(), rstd.data(), dx.data(), dg.data(), 0),
        SIMDNORM_SUCCESS)
        << simdnorm_last_error();
    const std::string context = g.Describe() + " |x| ~ 1e20, |dy| ~ 1e19, isa=" + isa();
    const NormBackwardBounds bounds(g, x.data(), dy.data(), gamma.data(), nullptr, rstd.data());
    const bool ok =
        ExpectNearAt(
            context, "dx", dx.data(), dx_ref.data(), count, [&](std::size_t i) { return bounds.dx(i); },
            [&](std::size_t i) { return g.Coord(i); }) &&
        ExpectNearAt(
            context, "dgamma", dg.data(), dg_ref.data(), cols, [&](std::size_t c) { return bounds.dgamma(c); },
            [](std::size_t c) { return "(channel " + std::to_string(c) + ")"; });
    if (!budget.Record(ok)) return;
  }
}

// Huge and tiny values in one row: the sum of squares is the huge ones', the tiny ones' outputs round to ~1e-40 and
// below (denormals, then zero), still within their element bound (which scales with |y|).
TEST_P(RmsNormHugeValuesTest, MixedMagnitudesInOneRow) {
  const std::size_t rows = 4, cols = 1031;
  const NormGeometry g = NormGeometry::Rms(rows, cols);
  Rng rng(77);
  std::vector<float> x(rows * cols), y(x.size()), y_ref(x.size()), rstd(rows), rstd_ref(rows);
  for (std::size_t i = 0; i < x.size(); ++i) {
    const double magnitude = i % 3 == 0 ? 1e20 : i % 3 == 1 ? 1.0 : 1e-20;
    x[i] = static_cast<float>(magnitude * rng.signed_uniform(0.5, 2.0));
  }
  ASSERT_EQ(simdnorm_reference_rms_norm_forward(rows, cols, x.data(), y_ref.data(), nullptr, 1e-5f, rstd_ref.data(), 0),
            SIMDNORM_SUCCESS);
  ASSERT_EQ(simdnorm_rms_norm_forward(rows, cols, x.data(), y.data(), nullptr, 1e-5f, rstd.data(), 0), SIMDNORM_SUCCESS)
      << simdnorm_last_error();
  const std::string context = g.Describe() + " 1e20, 1 and 1e-20 interleaved, isa=" + isa();
  const double rel = kReductionUlps * FLT_EPSILON;
  ExpectNearAt(
      context, "rstd", rstd.data(), rstd_ref.data(), rows, [&](std::size_t r) { return rel * rstd_ref[r]; },
      [](std::size_t r) { return "(row " + std::to_string(r) + ")"; });
  ExpectNearAt(
      context, "y", y.data(), y_ref.data(), x.size(),
      [&](std::size_t i) {
        // Below the normal range y loses up to half a denormal step absolutely, on top of its relative bound.
        return NormOutputTolerance(x[i], 1.0, 0.0, 0.0, rstd_ref[i / cols], 0.0, rel) + FLT_TRUE_MIN;
      },
      [&](std::size_t i) { return g.Coord(i); });
}

}  // namespace
}  // namespace simdnorm_test
