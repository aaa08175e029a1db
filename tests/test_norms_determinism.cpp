// "Results are bitwise identical for every thread count" (simdnorm.h) for LayerNorm, RMSNorm and GroupNorm, once per
// ISA: every output of every forward and backward under 2, 3, 4, 7 and 16 threads is compared byte for byte with the
// 1-thread run, on shapes that each split differently -- many short rows, a few rows long enough to be split inside a
// row (cols >= 100k), a single big GroupNorm slab (n = 1, groups = 1), many groups, and backward's dgamma and dbeta
// summed over 16384 rows (per-thread partials, merged in a fixed order). Sanitised builds take smaller versions of the
// biggest shapes (norm_checkers.hpp).
#include "norm_checkers.hpp"
#include "thread_determinism.hpp"

namespace simdnorm_test {
namespace {

class NormDeterminismTest : public ThreadCountTest {};
SIMDNORM_INSTANTIATE_PER_ISA(NormDeterminismTest);

constexpr bool kSanitized = SIMDNORM_TESTS_SANITIZED != 0;

// Data for one geometry, uniform (cheaper than normal values at these sizes), the statistics the reference saves.
struct Problem {
  NormGeometry g;
  std::vector<float> x, dy, gamma, beta, mean, rstd;

  explicit Problem(const NormGeometry& geometry) : g(geometry) {
    Rng rng(MixSeed({g.n, g.c, g.spatial, g.groups, static_cast<std::uint64_t>(g.kind)}));
    const std::size_t count = g.elements();
    x.resize(count);
    dy.resize(count);
    const double offset = rng.uniform(-2.0, 2.0);
    for (std::size_t i = 0; i < count; ++i) {
      x[i] = static_cast<float>(offset + rng.uniform(-3.0, 3.0));
      dy[i] = static_cast<float>(rng.uniform(-1.0, 1.0));
    }
    MakeAffineParams(rng, g.c, gamma, beta);
    mean.assign(g.stats(), 0.0f);
    rstd.resize(g.stats());
    EXPECT_EQ(NormForward(true, g, x.data(), std::vector<float>(count).data(), gamma.data(), beta.data(), 1e-5f,
                          g.centred() ? mean.data() : nullptr, rstd.data(), 0),
              SIMDNORM_SUCCESS);
  }
};

void Forward(const NormGeometry& g) {
  const Problem p(g);
  const std::string context = "forward " + g.Describe() + " isa=" + CurrentIsa();
  const unsigned flags = g.kind == NormKind::kGroup ? SIMDNORM_FUSE_RELU : 0u;
  std::vector<std::vector<float>> out = {std::vector<float>(g.elements()), std::vector<float>(g.stats()),
                                         std::vector<float>(g.stats())};
  ExpectSameBitsForAllThreadCounts(context, out, {"y", "mean", "rstd"}, [&](std::vector<std::vector<float>>& o) {
    if (!g.centred()) o[1].assign(g.stats(), 0.0f);  // RMSNorm writes no mean
    return NormForward(false, g, p.x.data(), o[0].data(), p.gamma.data(), p.beta.data(), 1e-5f,
                       g.centred() ? o[1].data() : nullptr, o[2].data(), flags);
  });
}

void Backward(const NormGeometry& g) {
  const Problem p(g);
  const std::string context = "backward " + g.Describe() + " isa=" + CurrentIsa();
  const unsigned flags = g.kind == NormKind::kGroup ? SIMDNORM_FUSE_RELU : 0u;
  const bool has_dbeta = g.kind != NormKind::kRms;
  std::vector<std::vector<float>> out = {std::vector<float>(g.elements()), std::vector<float>(g.c),
                                         std::vector<float>(g.c)};
  ExpectSameBitsForAllThreadCounts(context, out, {"dx", "dgamma", "dbeta"}, [&](std::vector<std::vector<float>>& o) {
    if (!has_dbeta) o[2].assign(g.c, 0.0f);
    return NormBackward(false, g, p.x.data(), p.dy.data(), p.gamma.data(), p.beta.data(),
                        g.centred() ? p.mean.data() : nullptr, p.rstd.data(), o[0].data(), o[1].data(),
                        has_dbeta ? o[2].data() : nullptr, flags);
  });
  // dgamma and dbeta alone (no dx): the column sums may take another schedule.
  std::vector<std::vector<float>> sums = {std::vector<float>(g.c), std::vector<float>(g.c)};
  ExpectSameBitsForAllThreadCounts(
      context + " (no dx)", sums, {"dgamma", "dbeta"}, [&](std::vector<std::vector<float>>& o) {
        if (!has_dbeta) o[1].assign(g.c, 0.0f);
        return NormBackward(false, g, p.x.data(), p.dy.data(), p.gamma.data(), p.beta.data(),
                            g.centred() ? p.mean.data() : nullptr, p.rstd.data(), nullptr, o[0].data(),
                            has_dbeta ? o[1].data() : nullptr, flags);
      });
}

std::vector<NormGeometry> RowShapes(NormKind kind, bool backward) {
  std::vector<RowDims> rows = {
      {2048, 33}, {64, 4099}, {3, kSanitized ? 100003u : 262147u}, {1, kSanitized ? 100003u : 1048579u}, {7, 100003}};
  if (backward) rows.push_back({kSanitized ? 2048u : 16384u, 768});
  return NormShapes(kind, rows, {});
}

std::vector<NormGeometry> GroupShapes() {
  const std::size_t slab = kSanitized ? 128 * 128 : 256 * 256;
  return NormShapes(NormKind::kGroup, {},
                    {{1, 64, slab, 1}, {1, 64, slab, 32}, {8, 32, 196, 8}, {2, 96, 3136, 32}, {3, 6, 20011, 3}});
}

TEST_P(NormDeterminismTest, LayerNormForward) {
  for (const NormGeometry& g : RowShapes(NormKind::kLayer, false)) Forward(g);
}
TEST_P(NormDeterminismTest, LayerNormBackward) {
  for (const NormGeometry& g : RowShapes(NormKind::kLayer, true)) Backward(g);
}
TEST_P(NormDeterminismTest, RmsNormForward) {
  for (const NormGeometry& g : RowShapes(NormKind::kRms, false)) Forward(g);
}
TEST_P(NormDeterminismTest, RmsNormBackward) {
  for (const NormGeometry& g : RowShapes(NormKind::kRms, true)) Backward(g);
}
TEST_P(NormDeterminismTest, GroupNormForward) {
  for (const NormGeometry& g : GroupShapes()) Forward(g);
}
TEST_P(NormDeterminismTest, GroupNormBackward) {
  for (const NormGeometry& g : GroupShapes()) Backward(g);
}

}  // namespace
}  // namespace simdnorm_test
