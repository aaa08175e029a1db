// GroupNorm, forward and backward, against the double-precision reference, once per ISA: n {1, 2, 3} x c {1, 4, 6,
// 32, 64, 96} with every divisor as the group count (a sample for c > 32, GroupCounts) x spatial {1, 7, 49, 64, 197},
// both layouts; every case twice with complementary options (in place or not, gamma and beta each present or NULL,
// FUSE_RELU or not), the statistics (and backward's outputs) NULL now and then; every option combination on one
// shape; InstanceNorm (groups == c) and one group on larger images.
#include "norm_checkers.hpp"

namespace simdnorm_test {
namespace {

class GroupNormTest : public IsaTest {};
SIMDNORM_INSTANTIATE_PER_ISA(GroupNormTest);

constexpr std::size_t kGroupGridN[] = {1, 2, 3};
constexpr std::size_t kGroupGridSpatial[] = {1, 7, 49, 64, 197};

// One pass over the grid for the channel counts `cs`, forward or backward.
void Grid(bool backward, simdnorm_layout layout, std::initializer_list<std::size_t> cs) {
  FailureBudget budget;
  std::uint64_t index = (backward ? 100000 : 0) + (layout == SIMDNORM_NCHW ? 0 : 50000) + *cs.begin() * 1000;
  for (std::size_t c : cs) {
    for (std::size_t groups : GroupCounts(c)) {
      for (std::size_t n : kGroupGridN) {
        for (std::size_t s : kGroupGridSpatial) {
          const NormGeometry g = NormGeometry::Group(n, c, s, layout, groups);
          const NormCaseOptions first = RotateNormOptions(index++);
          for (const NormCaseOptions& o : {first, first.Flipped()}) {
            bool passed;
            if (backward) {
              passed = NormBackwardCheck(g)
                           .inplace(o.inplace)
                           .gamma(o.gamma)
                           .beta(o.beta)
                           .relu(o.relu)
                           .outputs(o.dx, o.dgamma, o.dbeta)
                           .misalign(o.misalign)
                           .seed(index)
                           .Test();
            } else {
              passed = NormForwardCheck(g)
                           .inplace(o.inplace)
                           .gamma(o.gamma)
                           .beta(o.beta)
                           .relu(o.relu)
                           .stats(o.mean, o.rstd)
                           .misalign(o.misalign)
                           .seed(index)
                           .Test();
            }
            if (!budget.Record(passed)) return;
          }
        }
      }
    }
  }
}

// Split by channel counts so that ctest -j spreads the grid (the 96-channel cases are about half of it).
TEST_P(GroupNormTest, ForwardGridNCHWFewChannels) { Grid(false, SIMDNORM_NCHW, {1, 4, 6, 32}); }
TEST_P(GroupNormTest, ForwardGridNCHW64) { Grid(false, SIMDNORM_NCHW, {64}); }
TEST_P(GroupNormTest, ForwardGridNCHW96) { Grid(false, SIMDNORM_NCHW, {96}); }
TEST_P(GroupNormTest, ForwardGridNHWCFewChannels) { Grid(false, SIMDNORM_NHWC, {1, 4, 6, 32}); }
TEST_P(GroupNormTest, ForwardGridNHWC64) { Grid(false, SIMDNORM_NHWC, {64}); }
TEST_P(GroupNormTest, ForwardGridNHWC96) { Grid(false, SIMDNORM_NHWC, {96}); }
TEST_P(GroupNormTest, BackwardGridNCHWFewChannels) { Grid(true, SIMDNORM_NCHW, {1, 4, 6, 32}); }
TEST_P(GroupNormTest, BackwardGridNCHW64) { Grid(true, SIMDNORM_NCHW, {64}); }
TEST_P(GroupNormTest, BackwardGridNCHW96) { Grid(true, SIMDNORM_NCHW, {96}); }
TEST_P(GroupNormTest, BackwardGridNHWCFewChannels) { Grid(true, SIMDNORM_NHWC, {1, 4, 6, 32}); }
TEST_P(GroupNormTest, BackwardGridNHWC64) { Grid(true, SIMDNORM_NHWC, {64}); }
TEST_P(GroupNormTest, BackwardGridNHWC96) { Grid(true, SIMDNORM_NHWC, {96}); }

// Every combination of in place, gamma, beta, ReLU and each statistic requested or NULL (forward), and of in place,
// gamma, beta, ReLU and each subset of dx, dgamma, dbeta (backward), on groups of 3 channels x 49 positions.
TEST_P(GroupNormTest, EveryOptionCombination) {
  FailureBudget budget;
  for (simdnorm_layout layout : kLayouts) {
    const NormGeometry g = NormGeometry::Group(2, 6, 49, layout, 2);
    for (unsigned bits = 0; bits < 64; ++bits) {
      const bool passed = NormForwardCheck(g)
                              .inplace(bits & 1u)
                              .gamma(bits & 2u)
                              .beta(bits & 4u)
                              .relu(bits & 8u)
                              .stats(!(bits & 16u), !(bits & 32u))
                              .misalign(bits % 3)
                              .seed(bits)
                              .Test();
      if (!budget.Record(passed)) return;
    }
    for (unsigned bits = 0; bits < 128; ++bits) {
      const bool passed = NormBackwardCheck(g)
                              .inplace(bits & 1u)
                              .gamma(bits & 2u)
                              .beta(bits & 4u)
                              .relu(bits & 8u)
                              .outputs(bits & 16u, bits & 32u, bits & 64u)
                              .misalign(bits % 3)
                              .seed(bits)
                              .Test();
      if (!budget.Record(passed)) return;
    }
  }
}

// Channel counts around the vector widths (groups of 1, 3 and 5 channels, NHWC rows of 15 to 33 channels), and
// shapes of real networks: a diffusion UNet's 32 groups on 64x64 and 16x16 images, InstanceNorm (groups == c), and one
// group (LayerNorm over (c, spatial)).
struct GroupShape {
  std::size_t n, c, spatial, groups;
};
constexpr GroupShape kRemainderShapes[] = {{2, 15, 9, 5},  {2, 15, 9, 15},  {1, 17, 16, 17}, {3, 33, 5, 11},
                                           {2, 33, 17, 3}, {1, 16, 33, 16}, {2, 48, 3, 16},  {1, 20, 13, 4}};
#if SIMDNORM_TESTS_SANITIZED
constexpr GroupShape kNetworkShapes[] = {{1, 128, 1024, 32}, {2, 256, 256, 32}, {2, 64, 784, 64}, {1, 96, 3136, 1}};
#else
constexpr GroupShape kNetworkShapes[] = {{1, 128, 4096, 32}, {2, 256, 256, 32}, {2, 64, 3136, 64}, {1, 96, 12544, 1}};
#endif

TEST_P(GroupNormTest, RemaindersAndNetworkShapes) {
  FailureBudget budget;
  std::uint64_t index = 0;
  for (simdnorm_layout layout : kLayouts) {
    for (const GroupShape& s : kRemainderShapes) {
      const NormGeometry g = NormGeometry::Group(s.n, s.c, s.spatial, layout, s.groups);
      const NormCaseOptions o = RotateNormOptions(index++);
      for (bool flip : {false, true}) {
        const NormCaseOptions p = flip ? o.Flipped() : o;
        const bool f =
            NormForwardCheck(g).inplace(p.inplace).gamma(p.gamma).beta(p.beta).relu(p.relu).seed(index).Test();
        const bool b =
            NormBackwardCheck(g).inplace(p.inplace).gamma(p.gamma).beta(p.beta).relu(p.relu).seed(index).Test();
        if (!budget.Record(f && b)) return;
      }
    }
    for (const GroupShape& s : kNetworkShapes) {
      const NormGeometry g = NormGeometry::Group(s.n, s.c, s.spatial, layout, s.groups);
      // Everything on and misaligned, then bare and in place.
      const bool f1 = NormForwardCheck(g).gamma().beta().relu().misalign(1).seed(7).Test();
      const bool f2 = NormForwardCheck(g).inplace().seed(8).Test();
      const bool b1 = NormBackwardCheck(g).gamma().beta().relu().misalign(1).seed(9).Test();
      const bool b2 = NormBackwardCheck(g).inplace().seed(10).Test();
      if (!budget.Record(f1 && f2 && b1 && b2)) return;
    }
  }
}

// Groups of one value without beta: the output is (x - mean)*rstd*gamma = 0 exactly, on the ReLU's kink, and the
// fused a*x + b leaves the rounding residual of a*x there (an FMA's, on AVX2 and AVX-512), positive or not. The
// reference masks every dy there; the fast path must mask exactly where its own forward output was not positive
// ("recomputed bit-exactly", simdnorm.h): dbeta, a sum of small integers, is then exact, and dgamma and dx are 0
// within their bounds (xhat = 0).
TEST_P(GroupNormTest, ReluMaskOnTheKinkFollowsTheForward) {
  for (simdnorm_layout layout : kLayouts) {
    const NormGeometry g = NormGeometry::Group(64, 8, 1, layout, 8);
    const std::size_t count = g.elements(), C = g.c, S = g.stats();
    const simdnorm_shape shape = g.shape();
    const std::string context = g.Describe() + " relu, no beta, isa=" + isa();
    Rng rng(MixSeed({static_cast<std::uint64_t>(layout), 0x4e1}));
    std::vector<float> x(count), dy(count), gamma, beta, y(count), mean(S), rstd(S), dx(count), dg(C), db(C);
    FillNormInput(rng, g, InputDistribution{}, x.data());
    MakeAffineParams(rng, C, gamma, beta);
    for (float& v : dy) v = static_cast<float>(static_cast<int>(rng.below(9)) - 4);
    ASSERT_EQ(simdnorm_group_norm_forward(&shape, 8, x.data(), y.data(), gamma.data(), nullptr, 1e-5f, mean.data(),
                                          rstd.data(), SIMDNORM_FUSE_RELU),
              SIMDNORM_SUCCESS)
        << simdnorm_last_error();
    ASSERT_EQ(simdnorm_group_norm_backward(&shape, 8, x.data(), dy.data(), gamma.data(), nullptr, mean.data(),
                                           rstd.data(), dx.data(), dg.data(), db.data(), SIMDNORM_FUSE_RELU),
              SIMDNORM_SUCCESS)
        << simdnorm_last_error();
    std::vector<float> dy_masked(dy);
    std::vector<double> want_db(C, 0.0);
    for (std::size_t i = 0; i < count; ++i) {
      if (!(y[i] > 0.0f)) dy_masked[i] = 0.0f;
      want_db[g.channel(i)] += dy_masked[i];
    }
    for (std::size_t c = 0; c < C; ++c) {
      EXPECT_EQ(double(db[c]), want_db[c]) << context << ": dbeta[" << c << "] is not the sum of dy where the forward "
                                           << "output was positive";
    }
    const NormBackwardBounds bounds(g, x.data(), dy_masked.data(), gamma.data(), mean.data(), rstd.data());
    const std::vector<float> zeros(count, 0.0f);
    ExpectNearAt(
        context, "dgamma", dg.data(), zeros.data(), C, [&](std::size_t c) { return bounds.dgamma(c); },
        [](std::size_t c) { return "(channel " + std::to_string(c) + ")"; });
    ExpectNearAt(
        context, "dx", dx.data(), zeros.data(), count, [&](std::size_t i) { return bounds.dx(i); },
        [&](std::size_t i) { return g.Coord(i); });
  }
}

}  // namespace
}  // namespace simdnorm_test
