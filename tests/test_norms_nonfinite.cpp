// NaN and infinity in LayerNorm, RMSNorm and GroupNorm, once per ISA: "non-finite data propagates and the call
// succeeds" (simdnorm.h). A poisoned statistic's outputs are not finite where the formulas make them so, and every
// other statistic, output element and channel is what the reference gives, within the usual bounds. The reference is
// held to the same expectations.
#include <algorithm>
#include <limits>

#include "norm_checkers.hpp"

namespace simdnorm_test {
namespace {

class NormNonFiniteTest : public IsaTest {};
SIMDNORM_INSTANTIATE_PER_ISA(NormNonFiniteTest);

constexpr float kPoisons[] = {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
                              -std::numeric_limits<float>::infinity()};

std::vector<NormGeometry> Shapes(NormKind kind) {
  return NormShapes(kind, {{3, 17}, {4, 1}, {2, 4099}, {5, 768}},
                    {{2, 6, 7, 3}, {1, 32, 49, 1}, {3, 4, 1, 4}, {2, 48, 17, 16}});
}

// The statistics to poison: the second and the last (one of them when there are fewer).
std::vector<std::size_t> BadStats(const NormGeometry& g) {
  const std::size_t S = g.stats();
  if (S == 1) return {0};
  if (S == 2) return {1};
  return {1, S - 1};
}

std::string Context(const NormGeometry& g, const char* what, float poison) {
  return g.Describe() + " " + what + " poisoned with " + FloatString(poison) + " isa=" + CurrentIsa();
}

void ForwardPoisoned(const NormGeometry& g, float poison, std::uint64_t seed) {
  const std::size_t count = g.elements(), S = g.stats(), C = g.c;
  const std::string context = Context(g, "x", poison);
  Rng rng(MixSeed({seed, 0x4a4}));
  std::vector<float> x(count), gamma, beta;
  FillNormInput(rng, g, InputDistribution{}, x.data());
  MakeAffineParams(rng, C, gamma, beta);
  const float* bp = g.centred() ? beta.data() : nullptr;
  std::vector<char> bad(S, 0);
  std::vector<std::size_t> poisoned;
  for (std::size_t s : BadStats(g)) {
    bad[s] = 1;
    std::size_t k = 0, pick = (s * 7) % g.per_stat();
    ForEachInStat(g, s, [&](std::size_t i) {
      if (k++ == pick) poisoned.push_back(i);
    });
  }
  for (std::size_t i : poisoned) x[i] = poison;
  std::vector<double> mean, var;
  NormStats(g, x.data(), mean, var);

  for (const bool reference : {true, false}) {
    const std::string who = context + (reference ? " (reference)" : " (fast path)");
    std::vector<float> y(count, SentinelFloat()), m(S, SentinelFloat()), r(S, SentinelFloat());
    std::vector<float> y_ref(count), m_ref(S, 0.0f), r_ref(S);
    ASSERT_EQ(NormForward(reference, g, x.data(), y.data(), gamma.data(), bp, 1e-5f, g.centred() ? m.data() : nullptr,
                          r.data(), 0),
              SIMDNORM_SUCCESS)
        << who << ": " << simdnorm_last_error();
    ASSERT_EQ(NormForward(true, g, x.data(), y_ref.data(), gamma.data(), bp, 1e-5f,
                          g.centred() ? m_ref.data() : nullptr, r_ref.data(), 0),
              SIMDNORM_SUCCESS);
    for (std::size_t s = 0; s < S; ++s) {
      if (!bad[s]) continue;
      if (g.centred()) {
        EXPECT_FALSE(std::isfinite(m[s])) << who << ": mean of poisoned statistic " << s << " is " << FloatString(m[s]);
        EXPECT_TRUE(std::isnan(r[s])) << who << ": rstd of poisoned statistic " << s << " is " << FloatString(r[s]);
      } else if (std::isnan(poison)) {
        EXPECT_TRUE(std::isnan(r[s])) << who << ": rstd of the NaN row " << s << " is " << FloatString(r[s]);
      } else {
        // sum(x^2) = Inf: rstd = 1/sqrt(Inf) = 0 in exact arithmetic, NaN where the squares were scaled by Inf.
        EXPECT_TRUE(r[s] == 0.0f || std::isnan(r[s]))
            << who << ": rstd of the infinite row " << s << " is " << FloatString(r[s]);
      }
      // Every output of the statistic is NaN (its mean or rstd is), except RMSNorm's with an infinite value,
      // where only that value's output is (Inf * 0).
      const bool whole = g.centred() || std::isnan(poison);
      ForEachInStat(g, s, [&](std::size_t i) {
        const bool here = std::find(poisoned.begin(), poisoned.end(), i) != poisoned.end();
        if ((whole || here) && std::isfinite(y[i])) {
          ADD_FAILURE() << who << ": y at " << g.Coord(i) << " is " << FloatString(y[i]) << " in a poisoned statistic";
        }
      });
    }
    if (reference) continue;
    auto tol_mean = [&](std::size_t s) { return g.centred() ? MeanTolerance(mean[s], var[s]) : 0.0; };
    const double rel = kReductionUlps * FLT_EPSILON;
    bool ok = true;
    for (std::size_t s = 0; s < S && ok; ++s) {
      if (bad[s]) continue;
      if (g.centred()) {
        ok &= ExpectNearAt(
            who, "mean", &m[s], &m_ref[s], 1, [&](std::size_t) { return tol_mean(s); },
            [&](std::size_t) { return "(statistic " + std::to_string(s) + ")"; });
      }
      ok &= ExpectNearAt(
          who, "rstd", &r[s], &r_ref[s], 1, [&](std::size_t) { return rel * r_ref[s]; },
          [&](std::size_t) { return "(statistic " + std::to_string(s) + ")"; });
      ForEachInStat(g, s, [&](std::size_t i) {
        const std::size_t c = g.channel(i);
        const double tol = NormOutputTolerance(x[i], gamma[c], bp ? bp[c] : 0.0, m_ref[s], r_ref[s], tol_mean(s), rel);
        if (ok && !(std::fabs(double(y[i]) - y_ref[i]) <= tol)) {
          ADD_FAILURE() << who << ": y at " << g.Coord(i) << " (a clean statistic): got " << FloatString(y[i])
                        << ", reference " << FloatString(y_ref[i]) << ", tolerance " << tol;
          ok = false;
        }
      });
    }
  }
}

// Backward with dy poisoned in one element (its statistic's dx and its channel's dgamma and dbeta are not finite),
// or with the saved rstd of one statistic NaN, as a forward pass over NaN data saves it (that statistic's dx and the
// dgamma of its channels are not finite; dbeta does not read the statistics).
void BackwardPoisoned(const NormGeometry& g, float poison, bool poison_stats, std::uint64_t seed) {
  const std::size_t count = g.elements(), S = g.stats(), C = g.c;
  const std::string context = Context(g, poison_stats ? "saved rstd" : "dy", poison);
  Rng rng(MixSeed({seed, 0xb4c}));
  std::vector<float> x(count), dy(count), gamma, beta;
  FillNormInput(rng, g, InputDistribution{}, x.data());
  MakeAffineParams(rng, C, gamma, beta);
  for (float& v : dy) v = static_cast<float>(rng.normal());
  std::vector<float> y(count), mean(S, 0.0f), rstd(S);
  ASSERT_EQ(NormForward(true, g, x.data(), y.data(), gamma.data(), beta.data(), 1e-5f,
                        g.centred() ? mean.data() : nullptr, rstd.data(), 0),
            SIMDNORM_SUCCESS);
  const std::size_t sb = BadStats(g).front();
  std::size_t ib = 0, k = 0;
  ForEachInStat(g, sb, [&](std::size_t i) {
    if (k++ == (sb * 5) % g.per_stat()) ib = i;
  });
  const std::size_t cb = g.channel(ib);
  std::vector<char> bad_channel(C, 0);
  if (poison_stats) {
    rstd[sb] = std::isnan(poison) ? poison : std::numeric_limits<float>::quiet_NaN();
    ForEachInStat(g, sb, [&](std::size_t i) { bad_channel[g.channel(i)] = 1; });
  } else {
    dy[ib] = poison;
    bad_channel[cb] = 1;
  }
  const float* mp = g.centred() ? mean.data() : nullptr;
  const bool has_dbeta = g.kind != NormKind::kRms;
  std::vector<float> dx_ref(count), dg_ref(C), db_ref(C);
  ASSERT_EQ(NormBackward(true, g, x.data(), dy.data(), gamma.data(), beta.data(), mp, rstd.data(), dx_ref.data(),
                         dg_ref.data(), has_dbeta ? db_ref.data() : nullptr, 0),
            SIMDNORM_SUCCESS);
  const NormBackwardBounds bounds(g, x.data(), dy.data(), gamma.data(), mp, rstd.data());

  for (const bool reference : {true, false}) {
    const std::string who = context + (reference ? " (reference)" : " (fast path)");
    std::vector<float> dx(count, SentinelFloat()), dg(C, SentinelFloat()), db(C, SentinelFloat());
    ASSERT_EQ(NormBackward(reference, g, x.data(), dy.data(), gamma.data(), beta.data(), mp, rstd.data(), dx.data(),
                           dg.data(), has_dbeta ? db.data() : nullptr, 0),
              SIMDNORM_SUCCESS)
        << who << ": " << simdnorm_last_error();
    std::size_t reported = 0;
    for (std::size_t i = 0; i < count; ++i) {
      const bool poisoned = g.stat(i) == sb;
      const bool fine =
          poisoned ? !std::isfinite(dx[i]) : reference || std::fabs(double(dx[i]) - dx_ref[i]) <= bounds.dx(i);
      if (!fine && reported++ == 0) {
        ADD_FAILURE() << who << ": dx at " << g.Coord(i) << " is " << FloatString(dx[i])
                      << (poisoned ? " in the poisoned statistic" : ", reference " + FloatString(dx_ref[i]));
      }
    }
    for (std::size_t c = 0; c < C; ++c) {
      const bool dg_fine = bad_channel[c] ? !std::isfinite(dg[c])
                                          : reference || std::fabs(double(dg[c]) - dg_ref[c]) <= bounds.dgamma(c);
      EXPECT_TRUE(dg_fine) << who << ": dgamma[" << c << "] is " << FloatString(dg[c]) << ", reference "
                           << FloatString(dg_ref[c]) << (bad_channel[c] ? " (a poisoned channel)" : "");
      if (!has_dbeta) continue;
      const bool db_bad = !poison_stats && c == cb;
      const bool db_fine =
          db_bad ? !std::isfinite(db[c]) : reference || std::fabs(double(db[c]) - db_ref[c]) <= bounds.dbeta(c);
      EXPECT_TRUE(db_fine) << who << ": dbeta[" << c << "] is " << FloatString(db[c]) << ", reference "
                           << FloatString(db_ref[c]) << (db_bad ? " (the poisoned channel)" : "");
      if (::testing::Test::HasFailure()) return;
    }
  }
}

void AllPoisons(NormKind kind) {
  std::uint64_t seed = 0;
  for (const NormGeometry& g : Shapes(kind)) {
    for (float poison : kPoisons) {
      ForwardPoisoned(g, poison, ++seed);
      BackwardPoisoned(g, poison, false, seed);
      if (std::isnan(poison)) BackwardPoisoned(g, poison, true, seed);
      if (::testing::Test::HasFailure()) return;
    }
  }
}

TEST_P(NormNonFiniteTest, LayerNorm) { AllPoisons(NormKind::kLayer); }
TEST_P(NormNonFiniteTest, RmsNorm) { AllPoisons(NormKind::kRms); }
TEST_P(NormNonFiniteTest, GroupNorm) { AllPoisons(NormKind::kGroup); }

}  // namespace
}  // namespace simdnorm_test
