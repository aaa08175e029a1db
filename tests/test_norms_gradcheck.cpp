// Every backward of LayerNorm, RMSNorm and GroupNorm against central finite differences of L = sum(dy * y), y the
// forward pass written out here in double from the documented formulas (statistics recomputed from the perturbed x):
// dx = dL/dx, dgamma = dL/dgamma, dbeta = dL/dbeta. This validates the reference's formulas (and, through the same
// comparison, the fast path's). Small shapes, once per ISA.
//
// Bound: the reference and the fast path each get NormBackwardBounds (norm_checkers.hpp) against the exact gradient
// -- the reference's only errors are the float roundings of the saved statistics, of its inputs' products and of its
// outputs, which those bounds cover -- and the fast path twice that (its distance to the reference plus the
// reference's to the exact value); both plus the finite difference's own error, estimated from the difference
// between the steps h and 2h (truncation) and from the double rounding of the loss, divided by the step.
#include <algorithm>

#include "norm_checkers.hpp"

namespace simdnorm_test {
namespace {

class NormGradCheck : public IsaTest {};
SIMDNORM_INSTANTIATE_PER_ISA(NormGradCheck);

// L = sum(w * y) in double, and sum(|w * y|), the scale of its rounding.
struct Loss {
  double value, magnitude;
};
Loss DoubleLoss(const NormGeometry& g, const std::vector<double>& x, const std::vector<double>& gamma,
                const std::vector<double>& beta, const std::vector<double>& w, double eps, bool relu) {
  const double m = static_cast<double>(g.per_stat());
  Loss loss{0.0, 0.0};
  for (std::size_t s = 0; s < g.stats(); ++s) {
    double mean = 0.0, var = 0.0;
    if (g.centred()) {
      ForEachInStat(g, s, [&](std::size_t i) { mean += x[i]; });
      mean /= m;
    }
    ForEachInStat(g, s, [&](std::size_t i) { var += (x[i] - mean) * (x[i] - mean); });
    const double rstd = 1.0 / std::sqrt(var / m + eps);
    ForEachInStat(g, s, [&](std::size_t i) {
      const std::size_t c = g.channel(i);
      double y = (x[i] - mean) * rstd * gamma[c] + (g.centred() ? beta[c] : 0.0);
      if (relu) y = std::max(y, 0.0);
      loss.value += w[i] * y;
      loss.magnitude += std::fabs(w[i] * y);
    });
  }
  return loss;
}

struct Derivative {
  double value, error;
};

// (L(v + h) - L(v - h)) / 2h at v[i], with its error: the truncation error of step h is about a third of the
// difference from step 2h (taken whole, as a margin), and each loss carries about sqrt(count) double roundings of
// its magnitude (64 of them allowed).
template <class LossFn>
Derivative Central(std::vector<double>& v, std::size_t i, double h, std::size_t count, LossFn loss) {
  const double saved = v[i];
  double magnitude = 0.0;
  auto at = [&](double step) {
    v[i] = saved + step;
    const Loss up = loss();
    v[i] = saved - step;
    const Loss down = loss();
    v[i] = saved;
    magnitude = std::max({magnitude, up.magnitude, down.magnitude});
    return (up.value - down.value) / (2.0 * step);
  };
  const double d1 = at(h), d2 = at(2.0 * h);
  const double rounding = 64.0 * std::sqrt(static_cast<double>(count)) * DBL_EPSILON * magnitude / h;
  return {d1, std::fabs(d1 - d2) + rounding};
}

struct GradCase {
  NormGeometry g;
  bool gamma, beta, relu;
};

std::string CaseString(const GradCase& k) {
  return k.g.Describe() + (k.gamma ? " gamma" : " gamma=NULL") + (k.beta ? " beta" : " beta=NULL") +
         (k.relu ? " relu" : "") + " isa=" + CurrentIsa();
}

// got[k] within bound(k) + fd[k].error of fd[k].value.
template <class Bound, class Where>
void ExpectNearFd(const std::string& context, const char* what, const float* got, const std::vector<Derivative>& fd,
                  Bound bound, Where where) {
  for (std::size_t k = 0; k < fd.size(); ++k) {
    const double tol = bound(k) + fd[k].error;
    if (std::fabs(double(got[k]) - fd[k].value) <= tol) continue;
    ADD_FAILURE() << context << "\n  " << what << " at " << where(k) << ": got " << FloatString(got[k])
                  << ", finite difference " << DoubleString(fd[k].value) << " (+-" << fd[k].error << "), tolerance "
                  << tol;
    return;
  }
}

void CheckGradients(const GradCase& k, std::uint64_t seed) {
  const NormGeometry& g = k.g;
  const std::size_t count = g.elements(), S = g.stats(), C = g.c;
  const std::string context = CaseString(k);
  const float eps = 1e-5f;
  const unsigned flags = k.relu ? SIMDNORM_FUSE_RELU : 0u;
  Rng rng(MixSeed({seed, 0x9d}));
  std::vector<float> x(count), w(count), gamma, beta;
  FillNormInput(rng, g, InputDistribution{}, x.data());
  MakeAffineParams(rng, C, gamma, beta);
  for (float& v : w) v = static_cast<float>(rng.normal());
  const float* gp = k.gamma ? gamma.data() : nullptr;
  float* bp = k.beta && g.centred() ? beta.data() : nullptr;
  // Every ReLU input far from the kink: a step of 2h moves it by at most about 2e-4 * |gamma| * rstd.
  if (k.relu) {
    ASSERT_TRUE(SeparateNormFromReluKink(rng, g, x.data(), gp, bp, eps, 0.05)) << context;
  }

  std::vector<float> y(count), mean(S, 0.0f), rstd(S);
  ASSERT_EQ(
      NormForward(true, g, x.data(), y.data(), gp, bp, eps, g.centred() ? mean.data() : nullptr, rstd.data(), flags),
      SIMDNORM_SUCCESS)
      << context << ": " << simdnorm_last_error();
  const float* mp = g.centred() ? mean.data() : nullptr;
  const bool has_dbeta = g.kind != NormKind::kRms;
  std::vector<float> dx_ref(count), dg_ref(C), db_ref(C), dx(count), dg(C), db(C);
  ASSERT_EQ(NormBackward(true, g, x.data(), w.data(), gp, bp, mp, rstd.data(), dx_ref.data(), dg_ref.data(),
                         has_dbeta ? db_ref.data() : nullptr, flags),
            SIMDNORM_SUCCESS)
      << context << ": reference: " << simdnorm_last_error();
  const simdnorm_status fast = NormBackward(false, g, x.data(), w.data(), gp, bp, mp, rstd.data(), dx.data(), dg.data(),
                                            has_dbeta ? db.data() : nullptr, flags);
  EXPECT_EQ(fast, SIMDNORM_SUCCESS) << context << ": fast path: " << simdnorm_last_error();

  std::vector<double> xd(x.begin(), x.end()), wd(w.begin(), w.end()), gd(C, 1.0), bd(C, 0.0);
  if (gp != nullptr) gd.assign(gamma.begin(), gamma.end());
  if (bp != nullptr) bd.assign(beta.begin(), beta.end());
  auto loss = [&] { return DoubleLoss(g, xd, gd, bd, wd, double(eps), k.relu); };
  // x moves the statistics (curvature ~ rstd^3, rstd up to 4 here): a small step. L is linear in gamma and beta.
  std::vector<Derivative> fd_dx(count), fd_dg(C), fd_db(C);
  for (std::size_t i = 0; i < count; ++i) fd_dx[i] = Central(xd, i, 1e-4, count, loss);
  for (std::size_t c = 0; c < C; ++c) {
    fd_dg[c] = Central(gd, c, 1e-3, count, loss);
    fd_db[c] = Central(bd, c, 1e-3, count, loss);
  }

  std::vector<float> w_masked(w);
  for (std::size_t i = 0; i < count; ++i) {
    if (k.relu && !(y[i] > 0.0f)) w_masked[i] = 0.0f;
  }
  const NormBackwardBounds bounds(g, x.data(), w_masked.data(), gp, mp, rstd.data());
  auto coord = [&](std::size_t i) { return g.Coord(i); };
  auto channel = [](std::size_t c) { return "channel " + std::to_string(c); };
  for (const bool reference : {true, false}) {
    if (!reference && fast != SIMDNORM_SUCCESS) break;
    const double times = reference ? 1.0 : 2.0;
    const std::string who = context + (reference ? " (reference)" : " (fast path)");
    ExpectNearFd(
        who, "dx", (reference ? dx_ref : dx).data(), fd_dx, [&](std::size_t i) { return times * bounds.dx(i); }, coord);
    ExpectNearFd(
        who, "dgamma", (reference ? dg_ref : dg).data(), fd_dg, [&](std::size_t c) { return times * bounds.dgamma(c); },
        channel);
    if (has_dbeta) {
      ExpectNearFd(
          who, "dbeta", (reference ? db_ref : db).data(), fd_db, [&](std::size_t c) { return times * bounds.dbeta(c); },
          channel);
    }
  }
}

constexpr std::pair<std::size_t, std::size_t> kRowShapes[] = {{1, 1}, {2, 2}, {3, 7}, {2, 17}, {1, 33}, {4, 16}};

TEST_P(NormGradCheck, LayerNorm) {
  std::uint64_t seed = 0;
  for (const auto& rc : kRowShapes) {
    for (unsigned bits = 0; bits < 4; ++bits) {
      CheckGradients({NormGeometry::Layer(rc.first, rc.second), (bits & 1u) != 0, (bits & 2u) != 0, false}, ++seed);
    }
  }
}

TEST_P(NormGradCheck, RmsNorm) {
  std::uint64_t seed = 100;
  for (const auto& rc : kRowShapes) {
    for (bool gamma : {false, true})
      CheckGradients({NormGeometry::Rms(rc.first, rc.second), gamma, false, false}, ++seed);
  }
}

TEST_P(NormGradCheck, GroupNorm) {
  std::uint64_t seed = 200;
  struct Shape {
    std::size_t n, c, spatial, groups;
  };
  // Groups of 5 to 30 values, InstanceNorm, single values (n=1, spatial 1: xhat = 0), and groups of 14.
  const Shape shapes[] = {{2, 6, 5, 1}, {2, 6, 5, 2}, {2, 6, 5, 3}, {2, 6, 5, 6},
                          {1, 4, 1, 4}, {1, 4, 1, 1}, {3, 4, 7, 2}};
  for (simdnorm_layout layout : kLayouts) {
    for (const Shape& s : shapes) {
      for (unsigned bits = 0; bits < 8; ++bits) {
        const NormGeometry g = NormGeometry::Group(s.n, s.c, s.spatial, layout, s.groups);
        // A single value with neither beta: its output is exactly 0, on the ReLU's kink, where L has no derivative
        // in beta (the finite difference takes half the slope).
        if ((bits & 4u) != 0 && (bits & 2u) == 0 && g.per_stat() == 1) continue;
        CheckGradients({g, (bits & 1u) != 0, (bits & 2u) != 0, (bits & 4u) != 0}, ++seed);
        if (HasFatalFailure()) return;
      }
    }
  }
}

}  // namespace
}  // namespace simdnorm_test
