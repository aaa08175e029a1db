// Every operation, both layouts, every ISA path, every remainder of C and spatial modulo 16, with each buffer placed
// so that it ends exactly at a page boundary followed by an inaccessible page (and, in a second run, starts right
// after one): any read or write past either end of any buffer kills the test with SIGSEGV. The split-phase functions
// too, with their per-channel double arrays, on the whole batch and on parts of it (the first images, flush against
// the guard before the tensor, and the last image, flush against the guard after it).
#include <simdnorm/simdnorm.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "checkers.hpp"
#include "page_guarded.hpp"

namespace simdnorm_test {
namespace {

using PageGuardedFloats = PageGuarded<float>;
using PageGuardedDoubles = PageGuarded<double>;

class GuardPages : public IsaTest {};

void RunAllOperations(std::size_t n, std::size_t c, std::size_t s, simdnorm_layout layout, GuardEdge edge,
                      std::uint64_t seed) {
  Rng rng(seed);
  const std::size_t total = n * c * s;
  PageGuardedFloats x(total, edge), y(total, edge), dy(total, edge), dx(total, edge);
  PageGuardedFloats gamma(c, edge), beta(c, edge), mean(c, edge), invstd(c, edge), rmean(c, edge), rvar(c, edge);
  PageGuardedFloats dgamma(c, edge), dbeta(c, edge), scale(c, edge), shift(c, edge);
  x.fill(rng, -3.0, 5.0);
  dy.fill(rng, -1.0, 1.0);
  gamma.fill(rng, 0.5, 1.5);
  beta.fill(rng, -0.5, 0.5);
  rmean.fill(rng, -1.0, 1.0);
  rvar.fill(rng, 0.5, 2.0);
  const simdnorm_shape shape{n, c, s, layout};
  for (unsigned flags : {0u, static_cast<unsigned>(SIMDNORM_FUSE_RELU)}) {
    ASSERT_EQ(SIMDNORM_SUCCESS, simdnorm_forward_training(&shape, x.data(), y.data(), gamma.data(), beta.data(), 1e-5f,
                                                          mean.data(), invstd.data(), rmean.data(), rvar.data(), 0.1f,
                                                          flags));
    ASSERT_EQ(SIMDNORM_SUCCESS, simdnorm_backward(&shape, x.data(), dy.data(), gamma.data(), beta.data(), mean.data(),
                                                  invstd.data(), dx.data(), dgamma.data(), dbeta.data(), flags));
    ASSERT_EQ(SIMDNORM_SUCCESS, simdnorm_backward(&shape, x.data(), dy.data(), gamma.data(), beta.data(), mean.data(),
                                                  invstd.data(), nullptr, dgamma.data(), nullptr, flags));
    ASSERT_EQ(SIMDNORM_SUCCESS, simdnorm_forward_inference(&shape, x.data(), y.data(), gamma.data(), beta.data(),
                                                           rmean.data(), rvar.data(), 1e-5f, flags));
    ASSERT_EQ(SIMDNORM_SUCCESS, simdnorm_fold(c, gamma.data(), beta.data(), rmean.data(), rvar.data(), 1e-5f,
                                              scale.data(), shift.data()));
    ASSERT_EQ(SIMDNORM_SUCCESS, simdnorm_affine(&shape, x.data(), y.data(), scale.data(), shift.data(), flags));
    // In place.
    ASSERT_EQ(SIMDNORM_SUCCESS, simdnorm_affine(&shape, y.data(), y.data(), scale.data(), shift.data(), flags));
    ASSERT_EQ(SIMDNORM_SUCCESS, simdnorm_forward_training(&shape, y.data(), y.data(), nullptr, nullptr, 1e-5f, nullptr,
                                                          nullptr, nullptr, nullptr, 0.1f, flags));
    ASSERT_EQ(SIMDNORM_SUCCESS, simdnorm_backward(&shape, x.data(), dy.data(), nullptr, nullptr, mean.data(),
                                                  invstd.data(), dy.data(), nullptr, nullptr, flags));
  }
}

// The split phases over the batch cut into two parts along n: the first n - 1 images and the last one. Per-channel
// arrays of the exchange (counts, the parts x c moments, the merged moments, the sums) each against a guard too.
void RunSplitPhases(std::size_t n, std::size_t c, std::size_t s, simdnorm_layout layout, GuardEdge edge,
                    std::uint64_t seed, std::initializer_list<unsigned> every_flags) {
  Rng rng(seed);
  const std::size_t total = n * c * s, last = (n - 1) * c * s;
  PageGuardedFloats x(total, edge), y(total, edge), dy(total, edge), dx(total, edge);
  PageGuardedFloats gamma(c, edge), beta(c, edge), bm(c, edge), bi(c, edge), rm(c, edge), rv(c, edge);
  PageGuardedDoubles mean(c, edge), m2(c, edge), counts(2, edge), means(2 * c, edge), m2s(2 * c, edge);
  PageGuardedDoubles merged_mean(c, edge), merged_m2(c, edge), count(1, edge), sum_dy(c, edge), sum_dy_xhat(c, edge);
  x.fill(rng, -3.0, 5.0);
  dy.fill(rng, -1.0, 1.0);
  gamma.fill(rng, 0.5, 1.5);
  beta.fill(rng, -0.5, 0.5);
  rm.fill(rng, -1.0, 1.0);
  rv.fill(rng, 0.5, 2.0);
  const simdnorm_shape shape{n, c, s, layout}, first{n - 1, c, s, layout}, second{1, c, s, layout};
  counts.data()[0] = static_cast<double>((n - 1) * s);
  counts.data()[1] = static_cast<double>(s);
  for (unsigned flags : every_flags) {
    ASSERT_EQ(SIMDNORM_SUCCESS, simdnorm_moments(&shape, x.data(), mean.data(), m2.data()));
    ASSERT_EQ(SIMDNORM_SUCCESS, simdnorm_moments(&first, x.data(), means.data(), m2s.data()));
    ASSERT_EQ(SIMDNORM_SUCCESS, simdnorm_moments(&second, x.data() + last, means.data() + c, m2s.data() + c));
    ASSERT_EQ(SIMDNORM_SUCCESS, simdnorm_merge_moments(2, c, counts.data(), means.data(), m2s.data(),
                                                       merged_mean.data(), merged_m2.data(), count.data()));
    ASSERT_EQ(SIMDNORM_SUCCESS, simdnorm_finish_moments(c, count.data()[0], merged_mean.data(), merged_m2.data(),
                                                        1e-5f, bm.data(), bi.data(), rm.data(), rv.data(), 0.1f));
    // The merge written over row 0, and a finish without outputs but the running statistics.
    ASSERT_EQ(SIMDNORM_SUCCESS, simdnorm_merge_moments(2, c, counts.data(), means.data(), m2s.data(), means.data(),
                                                       m2s.data(), count.data()));
    ASSERT_EQ(SIMDNORM_SUCCESS, simdnorm_finish_moments(c, count.data()[0], means.data(), m2s.data(), 1e-5f, nullptr,
                                                        nullptr, rm.data(), rv.data(), 0.1f));
    ASSERT_EQ(SIMDNORM_SUCCESS, simdnorm_normalize(&shape, x.data(), y.data(), gamma.data(), beta.data(), bm.data(),
                                                   bi.data(), flags));
    ASSERT_EQ(SIMDNORM_SUCCESS, simdnorm_normalize(&first, x.data(), y.data(), nullptr, nullptr, bm.data(), bi.data(),
                                                   flags));
    ASSERT_EQ(SIMDNORM_SUCCESS, simdnorm_normalize(&second, x.data() + last, y.data() + last, gamma.data(),
                                                   beta.data(), bm.data(), bi.data(), flags));
    ASSERT_EQ(SIMDNORM_SUCCESS, simdnorm_backward_reduce(&shape, x.data(), dy.data(), gamma.data(), beta.data(),
                                                         bm.data(), bi.data(), sum_dy.data(), sum_dy_xhat.data(),
                                                         flags));
    ASSERT_EQ(SIMDNORM_SUCCESS, simdnorm_backward_reduce(&first, x.data(), dy.data(), nullptr, nullptr, bm.data(),
                                                         bi.data(), mean.data(), m2.data(), flags));
    ASSERT_EQ(SIMDNORM_SUCCESS, simdnorm_backward_reduce(&second, x.data() + last, dy.data() + last, gamma.data(),
                                                         beta.data(), bm.data(), bi.data(), mean.data(), m2.data(),
                                                         flags));
    ASSERT_EQ(SIMDNORM_SUCCESS, simdnorm_backward_apply(&shape, x.data(), dy.data(), gamma.data(), beta.data(),
                                                        bm.data(), bi.data(), sum_dy.data(), sum_dy_xhat.data(),
                                                        count.data()[0], dx.data(), flags));
    ASSERT_EQ(SIMDNORM_SUCCESS, simdnorm_backward_apply(&first, x.data(), dy.data(), nullptr, nullptr, bm.data(),
                                                        bi.data(), sum_dy.data(), sum_dy_xhat.data(), count.data()[0],
                                                        dx.data(), flags));
    ASSERT_EQ(SIMDNORM_SUCCESS, simdnorm_backward_apply(&second, x.data() + last, dy.data() + last, gamma.data(),
                                                        beta.data(), bm.data(), bi.data(), sum_dy.data(),
                                                        sum_dy_xhat.data(), count.data()[0], dx.data() + last, flags));
    // In place.
    ASSERT_EQ(SIMDNORM_SUCCESS, simdnorm_normalize(&shape, y.data(), y.data(), gamma.data(), beta.data(), bm.data(),
                                                   bi.data(), flags));
    ASSERT_EQ(SIMDNORM_SUCCESS, simdnorm_backward_apply(&shape, x.data(), dy.data(), gamma.data(), beta.data(),
                                                        bm.data(), bi.data(), sum_dy.data(), sum_dy_xhat.data(),
                                                        count.data()[0], dy.data(), flags));
  }
}

TEST_P(GuardPages, EveryRemainderOfCAndSpatialModulo16) {
  for (GuardEdge edge : {GuardEdge::kEnd, GuardEdge::kStart}) {
    for (simdnorm_layout layout : {SIMDNORM_NCHW, SIMDNORM_NHWC}) {
      // C and spatial from 1 to 33 cover every remainder modulo 16 both below and above one whole vector (and
      // modulo 4 and 8 for the narrower paths).
      for (std::size_t c = 1; c <= 33; c += (c < 17 ? 1 : 8)) {
        for (std::size_t s = 1; s <= 33; s += (s < 17 ? 1 : 8)) {
          SCOPED_TRACE(testing::Message() << "c=" << c << " spatial=" << s << " layout=" << layout
                                          << (edge == GuardEdge::kEnd ? " end" : " start"));
          RunAllOperations(2, c, s, layout, edge, c * 1000 + s);
          if (HasFatalFailure()) return;
          RunSplitPhases(2, c, s, layout, edge, c * 1000 + s, {0u, SIMDNORM_FUSE_RELU});
          if (HasFatalFailure()) return;
        }
      }
    }
  }
}

TEST_P(GuardPages, LongRunsAndChunkBoundaries) {
  // Channels long enough to be cut into several chunks, with ragged ends inside runs.
  for (simdnorm_layout layout : {SIMDNORM_NCHW, SIMDNORM_NHWC}) {
    RunAllOperations(3, 1, (std::size_t{1} << 20) / 3 + 5, layout, GuardEdge::kEnd, 7);
    RunAllOperations(1, 2, (std::size_t{1} << 20) + 37, layout, GuardEdge::kEnd, 8);
    RunAllOperations(7, 2, 299999, layout, GuardEdge::kEnd, 9);
    RunAllOperations(301, 19, 3, layout, GuardEdge::kEnd, 10);
    // The split phases with the ReLU only (time): channels of over 2^20 values, cut into chunks and shared by the
    // team, as a whole batch and as parts.
    RunSplitPhases(3, 1, (std::size_t{1} << 20) / 3 + 5, layout, GuardEdge::kEnd, 7, {SIMDNORM_FUSE_RELU});
    RunSplitPhases(7, 2, 299999, layout, GuardEdge::kStart, 9, {SIMDNORM_FUSE_RELU});
  }
}

SIMDNORM_INSTANTIATE_PER_ISA(GuardPages);

}  // namespace
}  // namespace simdnorm_test
