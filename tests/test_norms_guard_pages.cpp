// LayerNorm, RMSNorm and GroupNorm with every buffer -- x, y, dy, dx, gamma, beta, mean, rstd, dgamma, dbeta -- flush
// against an inaccessible page at its end (and, in a second run, at its start): any read or write one float past any
// buffer kills the test with SIGSEGV. Every ISA, both layouts, cols and c at every remainder modulo 16 below and above
// a whole vector, spatial likewise, groups of 1, a few and all channels; in place, with optional outputs NULL, with
// and without the ReLU; and shapes long enough for the row and slab paths that split one row or one group.
#include "norm_checkers.hpp"
#include "page_guarded.hpp"

namespace simdnorm_test {
namespace {

using Floats = PageGuarded<float>;

class NormGuardPages : public IsaTest {};
SIMDNORM_INSTANTIATE_PER_ISA(NormGuardPages);

constexpr float kEps = 1e-5f;

void RunRowNorms(std::size_t rows, std::size_t cols, GuardEdge edge, std::uint64_t seed) {
  Rng rng(seed);
  const std::size_t total = rows * cols;
  Floats x(total, edge), y(total, edge), dy(total, edge), dx(total, edge);
  Floats gamma(cols, edge), beta(cols, edge), dgamma(cols, edge), dbeta(cols, edge), mean(rows, edge), rstd(rows, edge);
  x.fill(rng, -3.0, 5.0);
  dy.fill(rng, -1.0, 1.0);
  gamma.fill(rng, 0.5, 1.5);
  beta.fill(rng, -0.5, 0.5);
  const std::size_t r = rows, c = cols;
  // LayerNorm: everything, then the column sums alone, dx alone, and in place without the optional arguments.
  ASSERT_EQ(SIMDNORM_SUCCESS, simdnorm_layer_norm_forward(r, c, x.data(), y.data(), gamma.data(), beta.data(), kEps,
                                                          mean.data(), rstd.data(), 0));
  ASSERT_EQ(SIMDNORM_SUCCESS, simdnorm_layer_norm_backward(r, c, x.data(), dy.data(), gamma.data(), mean.data(),
                                                           rstd.data(), dx.data(), dgamma.data(), dbeta.data(), 0));
  ASSERT_EQ(SIMDNORM_SUCCESS, simdnorm_layer_norm_backward(r, c, x.data(), dy.data(), gamma.data(), mean.data(),
                                                           rstd.data(), nullptr, dgamma.data(), nullptr, 0));
  ASSERT_EQ(SIMDNORM_SUCCESS, simdnorm_layer_norm_backward(r, c, x.data(), dy.data(), nullptr, mean.data(), rstd.data(),
                                                           dx.data(), nullptr, dbeta.data(), 0));
  ASSERT_EQ(SIMDNORM_SUCCESS,
            simdnorm_layer_norm_forward(r, c, y.data(), y.data(), nullptr, nullptr, kEps, nullptr, rstd.data(), 0));
  ASSERT_EQ(SIMDNORM_SUCCESS, simdnorm_layer_norm_backward(r, c, x.data(), dy.data(), gamma.data(), mean.data(),
                                                           rstd.data(), dy.data(), nullptr, nullptr, 0));
  // RMSNorm likewise.
  dy.fill(rng, -1.0, 1.0);
  ASSERT_EQ(SIMDNORM_SUCCESS, simdnorm_rms_norm_forward(r, c, x.data(), y.data(), gamma.data(), kEps, rstd.data(), 0));
  ASSERT_EQ(SIMDNORM_SUCCESS, simdnorm_rms_norm_backward(r, c, x.data(), dy.data(), gamma.data(), rstd.data(),
                                                         dx.data(), dgamma.data(), 0));
  ASSERT_EQ(SIMDNORM_SUCCESS, simdnorm_rms_norm_backward(r, c, x.data(), dy.data(), gamma.data(), rstd.data(), nullptr,
                                                         dgamma.data(), 0));
  ASSERT_EQ(SIMDNORM_SUCCESS,
            simdnorm_rms_norm_backward(r, c, x.data(), dy.data(), nullptr, rstd.data(), dx.data(), nullptr, 0));
  ASSERT_EQ(SIMDNORM_SUCCESS, simdnorm_rms_norm_forward(r, c, y.data(), y.data(), nullptr, kEps, nullptr, 0));
  ASSERT_EQ(SIMDNORM_SUCCESS,
            simdnorm_rms_norm_backward(r, c, x.data(), dy.data(), gamma.data(), rstd.data(), dy.data(), nullptr, 0));
}

void RunGroupNorm(std::size_t n, std::size_t c, std::size_t s, std::size_t groups, simdnorm_layout layout,
                  GuardEdge edge, std::uint64_t seed) {
  Rng rng(seed);
  const std::size_t total = n * c * s, stats = n * groups;
  Floats x(total, edge), y(total, edge), dy(total, edge), dx(total, edge);
  Floats gamma(c, edge), beta(c, edge), dgamma(c, edge), dbeta(c, edge), mean(stats, edge), rstd(stats, edge);
  x.fill(rng, -3.0, 5.0);
  gamma.fill(rng, 0.5, 1.5);
  beta.fill(rng, -0.5, 0.5);
  const simdnorm_shape shape{n, c, s, layout};
  for (unsigned flags : {0u, static_cast<unsigned>(SIMDNORM_FUSE_RELU)}) {
    dy.fill(rng, -1.0, 1.0);
    ASSERT_EQ(SIMDNORM_SUCCESS, simdnorm_group_norm_forward(&shape, groups, x.data(), y.data(), gamma.data(),
                                                            beta.data(), kEps, mean.data(), rstd.data(), flags));
    ASSERT_EQ(SIMDNORM_SUCCESS,
              simdnorm_group_norm_backward(&shape, groups, x.data(), dy.data(), gamma.data(), beta.data(), mean.data(),
                                           rstd.data(), dx.data(), dgamma.data(), dbeta.data(), flags));
    ASSERT_EQ(SIMDNORM_SUCCESS,
              simdnorm_group_norm_backward(&shape, groups, x.data(), dy.data(), gamma.data(), beta.data(), mean.data(),
                                           rstd.data(), nullptr, dgamma.data(), nullptr, flags));
    ASSERT_EQ(SIMDNORM_SUCCESS,
              simdnorm_group_norm_backward(&shape, groups, x.data(), dy.data(), nullptr, beta.data(), mean.data(),
                                           rstd.data(), dx.data(), nullptr, dbeta.data(), flags));
    // In place, without gamma and beta (and so, with the ReLU, an output exactly 0 for single values).
    ASSERT_EQ(SIMDNORM_SUCCESS, simdnorm_group_norm_forward(&shape, groups, y.data(), y.data(), nullptr, nullptr, kEps,
                                                            nullptr, rstd.data(), flags));
    ASSERT_EQ(SIMDNORM_SUCCESS,
              simdnorm_group_norm_backward(&shape, groups, x.data(), dy.data(), nullptr, nullptr, mean.data(),
                                           rstd.data(), dy.data(), nullptr, nullptr, flags));
  }
}

// The group counts of c this test tries: 1, the smallest divisor above 1, and c.
std::vector<std::size_t> FewGroupCounts(std::size_t c) {
  std::size_t smallest = c;
  for (std::size_t d = 2; d < c; ++d) {
    if (c % d == 0) {
      smallest = d;
      break;
    }
  }
  std::vector<std::size_t> counts = {1};
  if (smallest != 1) counts.push_back(smallest);
  if (c != smallest && c != 1) counts.push_back(c);
  return counts;
}

TEST_P(NormGuardPages, RowNormsEveryRemainder) {
  std::uint64_t seed = 0;
  for (GuardEdge edge : {GuardEdge::kEnd, GuardEdge::kStart}) {
    for (std::size_t rows : {1u, 3u}) {
      for (std::size_t cols : {1u,  2u,  3u,  4u,  5u,  6u,  7u,  8u,  9u,  10u,  11u,  12u,   13u,
                               14u, 15u, 16u, 17u, 24u, 31u, 33u, 63u, 65u, 100u, 768u, 1000u, 4099u}) {
        SCOPED_TRACE(testing::Message() << "rows=" << rows << " cols=" << cols
                                        << (edge == GuardEdge::kEnd ? " end" : " start"));
        RunRowNorms(rows, cols, edge, ++seed);
        if (HasFatalFailure()) return;
      }
    }
  }
}

TEST_P(NormGuardPages, GroupNormEveryRemainder) {
  std::uint64_t seed = 0;
  for (GuardEdge edge : {GuardEdge::kEnd, GuardEdge::kStart}) {
    for (simdnorm_layout layout : kLayouts) {
      for (std::size_t c = 1; c <= 33; c += c < 17 ? 1 : 8) {
        for (std::size_t groups : FewGroupCounts(c)) {
          for (std::size_t s : {1u, 3u, 7u, 16u, 17u, 33u}) {
            SCOPED_TRACE(testing::Message() << "c=" << c << " groups=" << groups << " spatial=" << s << " "
                                            << LayoutName(layout) << (edge == GuardEdge::kEnd ? " end" : " start"));
            RunGroupNorm(2, c, s, groups, layout, edge, ++seed);
            if (HasFatalFailure()) return;
          }
        }
      }
    }
  }
}

// Rows long enough to be split inside a row, slabs long enough to be split inside a group, wide NHWC rows.
TEST_P(NormGuardPages, LongRowsAndBigGroups) {
  const std::size_t long_cols = SIMDNORM_TESTS_SANITIZED ? 100003 : 262147;
  for (GuardEdge edge : {GuardEdge::kEnd, GuardEdge::kStart}) {
    RunRowNorms(1, long_cols, edge, 1);
    RunRowNorms(3, 100003, edge, 2);
    RunRowNorms(5, 4099, edge, 3);
    for (simdnorm_layout layout : kLayouts) {
      SCOPED_TRACE(LayoutName(layout));
      RunGroupNorm(1, 3, long_cols, 1, layout, edge, 4);
      RunGroupNorm(2, 6, 100003, 3, layout, edge, 5);
      RunGroupNorm(1, 100, 1031, 5, layout, edge, 6);
      RunGroupNorm(3, 2100, 7, 21, layout, edge, 7);
      if (HasFatalFailure()) return;
    }
  }
}

}  // namespace
}  // namespace simdnorm_test
