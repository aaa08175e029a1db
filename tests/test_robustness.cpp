// Data and resources at the edges: values whose squares overflow float, and scratch allocations that fail.
#include <simdnorm/reference.h>
#include <simdnorm/simdnorm.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "checkers.hpp"

namespace simdnorm_test {
namespace {

class HugeDataTest : public IsaTest {};

// Values near the top of the float range whose squared deviations (up to ~2.6e38) fit in a float one at a time but
// overflow as soon as a few are summed, while the variance itself (~1e38) is representable: the float lanes overflow
// and the statistics must still come out finite and right. Also values around 1e30 (squares far past FLT_MAX) that
// differ by a few ulps.
TEST_P(HugeDataTest, StatisticsStayFiniteWhenSquaresOverflowFloat) {
  for (simdnorm_layout layout : {SIMDNORM_NCHW, SIMDNORM_NHWC}) {
    for (int kind = 0; kind < 2; ++kind) {
      const std::size_t n = 3, c = 19, s = 45;
      Rng rng(77 + kind);
      std::vector<float> x(n * c * s), y(x.size()), yr(x.size());
      for (float& v : x) {
        v = kind == 0 ? static_cast<float>(rng.uniform(-1.6e19, 1.6e19))
                      : static_cast<float>(1e30) * (1.0f + static_cast<float>(rng.below(5)) * FLT_EPSILON);
      }
      std::vector<float> mean(c), invstd(c), rm(c, 0.0f), rv(c, 1.0f);
      std::vector<float> mean_r(c), invstd_r(c), rm_r(c, 0.0f), rv_r(c, 1.0f);
      const simdnorm_shape shape{n, c, s, layout};
      ASSERT_EQ(SIMDNORM_SUCCESS, simdnorm_forward_training(&shape, x.data(), y.data(), nullptr, nullptr, 1e-5f,
                                                            mean.data(), invstd.data(), rm.data(), rv.data(), 0.5f, 0u))
          << simdnorm_last_error();
      ASSERT_EQ(SIMDNORM_SUCCESS,
                simdnorm_reference_forward_training(&shape, x.data(), yr.data(), nullptr, nullptr, 1e-5f,
                                                    mean_r.data(), invstd_r.data(), rm_r.data(), rv_r.data(), 0.5f, 0u));
      for (std::size_t ch = 0; ch < c; ++ch) {
        SCOPED_TRACE(testing::Message() << "layout " << layout << " kind " << kind << " channel " << ch);
        ASSERT_TRUE(std::isfinite(invstd[ch]) && invstd[ch] > 0.0f);
        EXPECT_NEAR(mean[ch], mean_r[ch], 8 * FLT_EPSILON * (std::fabs(mean_r[ch]) + 1.0 / invstd_r[ch]));
        EXPECT_NEAR(invstd[ch], invstd_r[ch], 8 * FLT_EPSILON * invstd_r[ch]);
        if (kind == 0) {
          EXPECT_NEAR(rv[ch], rv_r[ch], 8 * FLT_EPSILON * rv_r[ch]);
        }
      }
    }
  }
}

// The same overflow on NCHW channels of over 1 MiB, which the whole thread team shares, normalised in place: the
// statistics are recomputed from x by every thread, and no thread may overwrite its part of x before all have read
// it.
TEST_P(HugeDataTest, SharedChannelsOverflowingInPlace) {
  const std::size_t n = 2, c = 2, s = 150001;
  Rng rng(79);
  std::vector<float> x(n * c * s), yr(x.size());
  for (float& v : x) v = static_cast<float>(rng.uniform(-1.6e19, 1.6e19));
  std::vector<float> mean(c), invstd(c), mean_r(c), invstd_r(c);
  const simdnorm_shape shape{n, c, s, SIMDNORM_NCHW};
  ASSERT_EQ(SIMDNORM_SUCCESS, simdnorm_reference_forward_training(&shape, x.data(), yr.data(), nullptr, nullptr, 1e-5f,
                                                                  mean_r.data(), invstd_r.data(), nullptr, nullptr,
                                                                  0.5f, 0u));
  for (int threads : {1, 2, 3}) {
    SCOPED_TRACE(testing::Message() << threads << " threads");
    std::vector<float> y(x);
    simdnorm_set_num_threads(threads);
    ASSERT_EQ(SIMDNORM_SUCCESS, simdnorm_forward_training(&shape, y.data(), y.data(), nullptr, nullptr, 1e-5f,
                                                          mean.data(), invstd.data(), nullptr, nullptr, 0.5f, 0u))
        << simdnorm_last_error();
    simdnorm_set_num_threads(0);
    for (std::size_t ch = 0; ch < c; ++ch) {
      EXPECT_NEAR(mean[ch], mean_r[ch], 8 * FLT_EPSILON * (std::fabs(mean_r[ch]) + 1.0 / invstd_r[ch])) << ch;
      EXPECT_NEAR(invstd[ch], invstd_r[ch], 8 * FLT_EPSILON * invstd_r[ch]) << ch;
    }
    std::size_t wrong = 0;
    for (std::size_t i = 0; i < y.size(); ++i) {
      // |y| is at most a few units: a few ulps of it, plus the rounding of mean and invstd carried through.
      if (!(std::fabs(double(y[i]) - yr[i]) <= 32 * FLT_EPSILON * (std::fabs(double(yr[i])) + 1.0))) ++wrong;
    }
    EXPECT_EQ(0u, wrong) << "outputs off the reference";
  }
}

SIMDNORM_INSTANTIATE_PER_ISA(HugeDataTest);

// A scratch allocation that cannot succeed (per-channel scratch for 2^40 channels) fails cleanly with
// SIMDNORM_OUT_OF_MEMORY before anything is read or written: the tensors passed here are far too small for the
// shape, and would fault if touched.
TEST(OutOfMemory, ScratchFailureWritesNothing) {
  const std::size_t huge_c = std::size_t{1} << 40;
  // In place, so that no output can overlap an input of the (declared) size.
  float x[16], before[16];
  for (int i = 0; i < 16; ++i) x[i] = before[i] = static_cast<float>(i) - 3.5f;
  for (simdnorm_layout layout : {SIMDNORM_NCHW, SIMDNORM_NHWC}) {
    const simdnorm_shape shape{2, huge_c, 1, layout};
    EXPECT_EQ(SIMDNORM_OUT_OF_MEMORY, simdnorm_forward_training(&shape, x, x, nullptr, nullptr, 1e-5f, nullptr,
                                                                nullptr, nullptr, nullptr, 0.1f, 0u));
    EXPECT_NE(std::string(simdnorm_last_error()).find("allocate"), std::string::npos) << simdnorm_last_error();
    EXPECT_EQ(SIMDNORM_OUT_OF_MEMORY, simdnorm_forward_inference(&shape, x, x, nullptr, nullptr, x, x, 1e-5f, 0u));
    EXPECT_EQ(SIMDNORM_OUT_OF_MEMORY,
              simdnorm_backward(&shape, x, x, nullptr, nullptr, x, x, nullptr, nullptr, nullptr, 0u));
    EXPECT_EQ(SIMDNORM_OUT_OF_MEMORY, simdnorm_affine(&shape, x, x, x, x, 0u));
    EXPECT_EQ(0, std::memcmp(before, x, sizeof x));
  }
}

}  // namespace
}  // namespace simdnorm_test
