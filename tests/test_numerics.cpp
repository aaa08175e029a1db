// Numerical properties, once per ISA: statistics that must come out exact on exactly representable data, accuracy
// with large means, and the behaviour on NaN and infinity.
#include <algorithm>
#include <cctype>

#include "checkers.hpp"
#include "grids.hpp"
#include "numerics_cases.hpp"

namespace simdnorm_test {
namespace {

class ExactDataTest : public IsaTest {};
class LargeMeanTest : public IsaTest {};
class NonFiniteTest : public IsaTest {};
SIMDNORM_INSTANTIATE_PER_ISA(ExactDataTest);
SIMDNORM_INSTANTIATE_PER_ISA(LargeMeanTest);
SIMDNORM_INSTANTIATE_PER_ISA(NonFiniteTest);

// ---------------------------------------------------------------------------------------------------------------
// Exactly representable data (benchdnn's trick): each channel holds pairs mu +- k/8 around a dyadic mean mu (plus mu
// itself when the count is odd), so every partial sum is exact in float, the mean is exactly mu and the variance is
// a short dyadic sum divided by m.

struct ExactShape {
  std::size_t n, c, spatial;
};
constexpr ExactShape kExactShapes[] = {{1, 17, 15}, {2, 5, 9}, {3, 16, 7}, {1, 33, 17}, {2, 3, 49},
                                       {5, 8, 3},   {1, 4, 2}, {2, 9, 1},  {4, 15, 61}, {1, 130, 16}};
void FillExact(Rng& rng, const simdnorm_shape& shape, std::vector<float>& x, std::vector<double>& mu) {
  const std::size_t m = shape.n * shape.spatial;
  x.assign(Elements(shape), 0.0f);
  mu.resize(shape.c);
  std::vector<double> values;
  for (std::size_t c = 0; c < shape.c; ++c) {
    mu[c] = kDyadicMeans[(c + rng.below(8)) % 8];
    values.clear();
    while (values.size() + 2 <= m) {
      const double d = (1.0 + rng.below(16)) / 8.0;
      values.push_back(mu[c] + d);
      values.push_back(mu[c] - d);
    }
    if (values.size() < m) values.push_back(mu[c]);
    for (std::size_t k = m; k > 1; --k) std::swap(values[k - 1], values[rng.below(static_cast<std::uint32_t>(k))]);
    std::size_t k = 0;
    for (std::size_t n = 0; n < shape.n; ++n) {
      for (std::size_t s = 0; s < shape.spatial; ++s) x[Offset(shape, n, c, s)] = static_cast<float>(values[k++]);
    }
  }
}

TEST_P(ExactDataTest, MeanIsExactAndInvstdWithinOneUlp) {
  std::uint64_t seed = 0;
  for (simdnorm_layout layout : kLayouts) {
    for (const ExactShape& es : kExactShapes) {
      const simdnorm_shape shape = MakeShape(es.n, es.c, es.spatial, layout);
      const std::size_t count = Elements(shape);
      const std::size_t C = es.c;
      const std::string context = ShapeString(shape) + " isa=" + isa();
      Rng rng(MixSeed({++seed, 0xe4ac7}));
      std::vector<float> x;
      std::vector<double> mu;
      FillExact(rng, shape, x, mu);
      std::vector<float> y(count), bm(C), bi(C), y_ref(count), bm_ref(C), bi_ref(C);
      ASSERT_EQ(simdnorm_reference_forward_training(&shape, x.data(), y_ref.data(), nullptr, nullptr, 1e-5f,
                                                    bm_ref.data(), bi_ref.data(), nullptr, nullptr, 0.1f, 0),
                SIMDNORM_SUCCESS)
          << context << ": " << simdnorm_last_error();
      ASSERT_EQ(simdnorm_forward_training(&shape, x.data(), y.data(), nullptr, nullptr, 1e-5f, bm.data(), bi.data(),
                                          nullptr, nullptr, 0.1f, 0),
                SIMDNORM_SUCCESS)
          << context << ": " << simdnorm_last_error();
      for (std::size_t c = 0; c < C; ++c) {
        EXPECT_EQ(static_cast<double>(bm_ref[c]), mu[c]) << context << " channel " << c << ": reference mean";
        EXPECT_EQ(static_cast<double>(bm[c]), mu[c])
            << context << " channel " << c << ": batch_mean " << FloatString(bm[c]) << " is not exactly the mean "
            << mu[c] << " of exactly representable data";
        EXPECT_LE(UlpDistance(bi[c], bi_ref[c]), 1u)
            << context << " channel " << c << ": batch_invstd " << FloatString(bi[c]) << " vs reference "
            << FloatString(bi_ref[c]) << " (" << UlpDistance(bi[c], bi_ref[c]) << " ulp apart; 1 allowed)";
      }
      // With an exact mean and invstd within one ulp, y is a*x + b with a and b rounded once each.
      ExpectNear(context, "y", y.data(), y_ref.data(), count, &shape, [&](std::size_t i) {
        const std::size_t c = ChannelOf(shape, i);
        return TrainingOutputTolerance(x[i], 1.0, 0.0, bm_ref[c], bi_ref[c], 0.0, FLT_EPSILON);
      });
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Large means (numerics_cases.hpp): invstd held to 1e-4 relative, the mean to 4 ulps of |mean| + std.

constexpr ExactShape kLargeMeanShapes[] = {{2, 17, 196}, {4, 33, 61}, {1, 3, 4099}, {4, 16, 3136}, {64, 40, 1}};

TEST_P(LargeMeanTest, InvstdWithin1e4RelativeAndMeanWithinFewUlps) {
  FailureBudget budget;
  std::uint64_t seed = 0;
  for (const LargeMeanCase& lm : kLargeMeanCases) {
    const InputDistribution dist = lm.input();
    for (const ExactShape& s : kLargeMeanShapes) {
      for (simdnorm_layout layout : kLayouts) {
        const bool passed = TrainingCheck()
                                .n(s.n)
                                .c(s.c)
                                .spatial(s.spatial)
                                .layout(layout)
                                .gamma_beta()
                                .running()
                                .eps(lm.eps)
                                .input(dist)
                                .invstd_rel_tol(1e-4)
                                .mean_ulps(4.0)
                                .seed(++seed)
                                .Test();
        if (!budget.Record(passed)) return;
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// NaN and infinity.

// True when the message contains `number` as a whole decimal number.
bool MentionsNumber(const std::string& message, std::size_t number) {
  const std::string digits = std::to_string(number);
  for (std::size_t pos = message.find(digits); pos != std::string::npos; pos = message.find(digits, pos + 1)) {
    const bool left_ok = pos == 0 || !std::isdigit(static_cast<unsigned char>(message[pos - 1]));
    const std::size_t end = pos + digits.size();
    const bool right_ok = end == message.size() || !std::isdigit(static_cast<unsigned char>(message[end]));
    if (left_ok && right_ok) return true;
  }
  return false;
}

struct Poison {
  std::size_t n, c, s;
  float value;
};

// Training with non-finite values in some channels: SIMDNORM_NON_FINITE naming the first such channel, y written for
// every channel (finite channels as the reference, the others not finite), batch statistics written, running
// statistics of the bad channels unchanged and of the others updated.
void CheckTrainingNonFinite(const char* isa, simdnorm_layout layout, const std::vector<Poison>& poisons,
                            std::size_t first_bad) {
  const std::size_t N = 2, C = 17, S = 7;
  const simdnorm_shape shape = MakeShape(N, C, S, layout);
  const std::size_t count = Elements(shape);
  std::string context = ShapeString(shape) + " isa=" + isa + " poisoned:";
  for (const Poison& p : poisons) context += " c" + std::to_string(p.c) + "=" + FloatString(p.value);
  Rng rng(MixSeed({31, static_cast<std::uint64_t>(layout)}));
  std::vector<float> x(count), gamma(C), beta(C), rm0(C), rv0(C);
  FillInput(rng, shape, InputDistribution{}, x.data());
  for (std::size_t c = 0; c < C; ++c) {
    gamma[c] = static_cast<float>(rng.signed_uniform(0.5, 2.0));
    beta[c] = static_cast<float>(rng.uniform(-1, 1));
    rm0[c] = static_cast<float>(rng.uniform(-1, 1));
    rv0[c] = static_cast<float>(rng.uniform(0.5, 2));
  }
  std::vector<bool> bad(C, false);
  for (const Poison& p : poisons) {
    x[Offset(shape, p.n, p.c, p.s)] = p.value;
    bad[p.c] = true;
  }
  const float momentum = 0.1f, eps = 1e-5f;

  std::vector<float> y_ref(count), bm_ref(C), bi_ref(C), rm_ref(rm0), rv_ref(rv0);
  EXPECT_EQ(
      simdnorm_reference_forward_training(&shape, x.data(), y_ref.data(), gamma.data(), beta.data(), eps, bm_ref.data(),
                                          bi_ref.data(), rm_ref.data(), rv_ref.data(), momentum, 0),
      SIMDNORM_NON_FINITE)
      << context << ": reference";

  std::vector<float> y(count, SentinelFloat()), bm(C, SentinelFloat()), bi(C, SentinelFloat()), rm(rm0), rv(rv0);
  ASSERT_EQ(simdnorm_forward_training(&shape, x.data(), y.data(), gamma.data(), beta.data(), eps, bm.data(), bi.data(),
                                      rm.data(), rv.data(), momentum, 0),
            SIMDNORM_NON_FINITE)
      << context;
  const std::string message = simdnorm_last_error();
  EXPECT_TRUE(MentionsNumber(message, first_bad))
      << context << ": the message should name channel " << first_bad << ": \"" << message << "\"";

  std::vector<double> mean, var;
  ChannelStats(shape, x.data(), mean, var);
  const double m = static_cast<double>(N * S);
  const double invstd_rel = kReductionUlps * FLT_EPSILON;
  for (std::size_t c = 0; c < C; ++c) {
    const std::string where = context + " channel " + std::to_string(c);
    if (bad[c]) {
      EXPECT_FALSE(std::isfinite(bm[c])) << where << ": batch_mean " << FloatString(bm[c]);
      EXPECT_NE(FloatBits(bi[c]), FloatBits(SentinelFloat())) << where << ": batch_invstd was not written";
      EXPECT_EQ(FloatBits(rm[c]), FloatBits(rm0[c])) << where << ": running_mean of a non-finite channel changed";
      EXPECT_EQ(FloatBits(rv[c]), FloatBits(rv0[c])) << where << ": running_var of a non-finite channel changed";
      for (std::size_t n = 0; n < N; ++n) {
        for (std::size_t s = 0; s < S; ++s) {
          const std::size_t i = Offset(shape, n, c, s);
          if (std::isfinite(y[i])) {
            ADD_FAILURE() << where << ": y at " << CoordString(shape, i) << " is " << FloatString(y[i])
                          << ", expected NaN to propagate through the channel's statistics";
            n = N;
            break;
          }
        }
      }
      continue;
    }
    const double mean_tol = MeanTolerance(mean[c], var[c]);
    EXPECT_NEAR(bm[c], bm_ref[c], mean_tol) << where << ": batch_mean";
    EXPECT_NEAR(bi[c], bi_ref[c], invstd_rel * bi_ref[c]) << where << ": batch_invstd";
    EXPECT_NEAR(rm[c], rm_ref[c], RunningMeanTolerance(rm0[c], mean[c], momentum, mean_tol)) << where;
    EXPECT_NEAR(rv[c], rv_ref[c], RunningVarTolerance(rv0[c], var[c], m, eps, momentum, invstd_rel)) << where;
    EXPECT_NE(FloatBits(rm[c]), FloatBits(rm0[c])) << where << ": running_mean of a finite channel was not updated";
    for (std::size_t n = 0; n < N; ++n) {
      for (std::size_t s = 0; s < S; ++s) {
        const std::size_t i = Offset(shape, n, c, s);
        const double tol = TrainingOutputTolerance(x[i], gamma[c], beta[c], bm_ref[c], bi_ref[c], mean_tol, invstd_rel);
        if (!(std::fabs(double(y[i]) - y_ref[i]) <= tol)) {
          ADD_FAILURE() << where << ": y at " << CoordString(shape, i) << " is " << FloatString(y[i]) << ", reference "
                        << FloatString(y_ref[i]) << ", tolerance " << FloatString(tol);
          n = N;
          break;
        }
      }
    }
  }
}

TEST_P(NonFiniteTest, TrainingNaNChannel) {
  for (simdnorm_layout layout : kLayouts) CheckTrainingNonFinite(isa(), layout, {{1, 11, 3, NAN}}, 11);
}

TEST_P(NonFiniteTest, TrainingInfChannel) {
  for (simdnorm_layout layout : kLayouts) CheckTrainingNonFinite(isa(), layout, {{0, 11, 6, INFINITY}}, 11);
}

TEST_P(NonFiniteTest, TrainingSeveralBadChannelsNamesTheFirst) {
  for (simdnorm_layout layout : kLayouts) {
    CheckTrainingNonFinite(isa(), layout, {{1, 13, 0, NAN}, {0, 11, 2, INFINITY}, {1, 16, 6, -INFINITY}}, 11);
  }
}

TEST_P(NonFiniteTest, InferencePropagatesNaN) {
  for (simdnorm_layout layout : kLayouts) {
    const std::size_t N = 2, C = 17, S = 7;
    const simdnorm_shape shape = MakeShape(N, C, S, layout);
    const std::size_t count = Elements(shape);
    const std::string context = ShapeString(shape) + " isa=" + isa();
    Rng rng(MixSeed({32, static_cast<std::uint64_t>(layout)}));
    std::vector<float> x(count), gamma(C), beta(C), mean(C), var(C);
    FillInput(rng, shape, InputDistribution{}, x.data());
    for (std::size_t c = 0; c < C; ++c) {
      gamma[c] = static_cast<float>(rng.signed_uniform(0.5, 2.0));
      beta[c] = static_cast<float>(rng.uniform(-1, 1));
      mean[c] = static_cast<float>(rng.uniform(-3, 3));
      var[c] = static_cast<float>(rng.uniform(0.25, 4));
    }
    const std::size_t poisoned = Offset(shape, 1, 11, 3);
    x[poisoned] = NAN;
    std::vector<float> y(count, SentinelFloat()), y_ref(count);
    ASSERT_EQ(simdnorm_reference_forward_inference(&shape, x.data(), y_ref.data(), gamma.data(), beta.data(),
                                                   mean.data(), var.data(), 1e-5f, 0),
              SIMDNORM_SUCCESS);
    ASSERT_EQ(simdnorm_forward_inference(&shape, x.data(), y.data(), gamma.data(), beta.data(), mean.data(), var.data(),
                                         1e-5f, 0),
              SIMDNORM_SUCCESS)
        << context << ": " << simdnorm_last_error();
    EXPECT_TRUE(std::isnan(y[poisoned])) << context << ": y of the NaN input is " << FloatString(y[poisoned]);
    y[poisoned] = y_ref[poisoned] = 0.0f;
    ExpectNear(context, "y (other elements)", y.data(), y_ref.data(), count, &shape, [&](std::size_t i) {
      if (i == poisoned) return 0.0;
      const std::size_t c = ChannelOf(shape, i);
      const double scale = gamma[c] / std::sqrt(double(var[c]) + 1e-5);
      return InferenceOutputTolerance(x[i], mean[c], scale, beta[c] - mean[c] * scale);
    });
  }
}

// Backward with a NaN in x (statistics from the clean forward): SUCCESS, dgamma and every dx of that channel NaN,
// dbeta (which does not read x without ReLU) and every other channel as the reference.
TEST_P(NonFiniteTest, BackwardPropagatesNaN) {
  for (simdnorm_layout layout : kLayouts) {
    const std::size_t N = 2, C = 17, S = 7, bad = 11;
    const simdnorm_shape shape = MakeShape(N, C, S, layout);
    const std::size_t count = Elements(shape);
    const std::string context = ShapeString(shape) + " isa=" + isa();
    Rng rng(MixSeed({33, static_cast<std::uint64_t>(layout)}));
    std::vector<float> x(count), dy(count), gamma(C), beta(C), bm(C), bi(C), y(count);
    FillInput(rng, shape, InputDistribution{}, x.data());
    for (float& v : dy) v = static_cast<float>(rng.normal());
    for (std::size_t c = 0; c < C; ++c) {
      gamma[c] = static_cast<float>(rng.signed_uniform(0.5, 2.0));
      beta[c] = static_cast<float>(rng.uniform(-1, 1));
    }
    ASSERT_EQ(simdnorm_reference_forward_training(&shape, x.data(), y.data(), gamma.data(), beta.data(), 1e-5f,
                                                  bm.data(), bi.data(), nullptr, nullptr, 0.1f, 0),
              SIMDNORM_SUCCESS);
    x[Offset(shape, 0, bad, 4)] = NAN;
    std::vector<float> dx(count, SentinelFloat()), dg(C, SentinelFloat()), db(C, SentinelFloat());
    std::vector<float> dx_ref(count), dg_ref(C), db_ref(C);
    ASSERT_EQ(simdnorm_reference_backward(&shape, x.data(), dy.data(), gamma.data(), beta.data(), bm.data(), bi.data(),
                                          dx_ref.data(), dg_ref.data(), db_ref.data(), 0),
              SIMDNORM_SUCCESS);
    ASSERT_EQ(simdnorm_backward(&shape, x.data(), dy.data(), gamma.data(), beta.data(), bm.data(), bi.data(), dx.data(),
                                dg.data(), db.data(), 0),
              SIMDNORM_SUCCESS)
        << context << ": " << simdnorm_last_error();
    EXPECT_TRUE(std::isnan(dg[bad])) << context << ": dgamma of the NaN channel is " << FloatString(dg[bad]);
    EXPECT_TRUE(std::isfinite(db[bad])) << context << ": dbeta does not read x, yet is " << FloatString(db[bad]);
    for (std::size_t n = 0; n < N; ++n) {
      for (std::size_t s = 0; s < S; ++s) {
        const std::size_t i = Offset(shape, n, bad, s);
        EXPECT_TRUE(std::isnan(dx[i])) << context << ": dx at " << CoordString(shape, i) << " is "
                                       << FloatString(dx[i]);
      }
    }
    // Everything else against the reference; the bad channel's values are blanked on both sides.
    const BackwardBounds bounds(shape, x.data(), dy.data(), gamma.data(), bm.data(), bi.data());
    dg[bad] = dg_ref[bad] = 0.0f;
    for (std::size_t n = 0; n < N; ++n) {
      for (std::size_t s = 0; s < S; ++s) dx[Offset(shape, n, bad, s)] = dx_ref[Offset(shape, n, bad, s)] = 0.0f;
    }
    ExpectNear(context, "dbeta", db.data(), db_ref.data(), C, nullptr, [&](std::size_t c) { return bounds.dbeta(c); });
    ExpectNear(context, "dgamma", dg.data(), dg_ref.data(), C, nullptr,
               [&](std::size_t c) { return c == bad ? 0.0 : bounds.dgamma(c); });
    ExpectNear(context, "dx", dx.data(), dx_ref.data(), count, &shape, [&](std::size_t i) {
      const std::size_t c = ChannelOf(shape, i);
      return c == bad ? 0.0 : bounds.dx(i, db_ref[c], dg_ref[c]);
    });
  }
}

}  // namespace
}  // namespace simdnorm_test
