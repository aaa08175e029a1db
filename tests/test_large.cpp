// 64-bit indexing: training forward and backward on tensors of more than 2^31 elements (8.6 GB each), checking a
// sample of the outputs against statistics computed in double straight from the formula that generated the data.
// Labelled "large": it needs ~18 GB of memory and about a minute, so the default test run leaves it out
// (scripts/test.sh --large runs it).
#include <simdnorm/simdnorm.h>

#include <gtest/gtest.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>
#include <vector>

namespace {

constexpr std::size_t kElements = (std::size_t{1} << 31) + 4096 + 6;

// Data as a function of the flat index, so that it can be regenerated instead of kept.
float x_at(std::size_t i) {
  return static_cast<float>((i * 2654435761u) % 1021) * (1.0f / 64.0f) - 3.0f + static_cast<float>(i % 3);
}
float dy_at(std::size_t i) { return static_cast<float>((i * 40503u) % 509) * (1.0f / 256.0f) - 1.0f; }

struct Case {
  simdnorm_shape shape;
  std::size_t channel_of(std::size_t i) const {
    return shape.layout == SIMDNORM_NCHW ? (i / shape.spatial) % shape.c : i % shape.c;
  }
};

void RunLarge(const Case& k) {
  const std::size_t total = k.shape.n * k.shape.c * k.shape.spatial;
  ASSERT_GT(total, std::size_t{1} << 31);
  const std::size_t C = k.shape.c;
  std::unique_ptr<float[]> x(new (std::nothrow) float[total]);
  std::unique_ptr<float[]> dy(new (std::nothrow) float[total]);
  if (!x || !dy) GTEST_SKIP() << "not enough memory for two tensors of " << total << " floats";

  // Statistics in double from the generating formula.
  std::vector<double> sum(C, 0.0), m2(C, 0.0), sum_dy(C, 0.0), sum_dy_xc(C, 0.0);
  for (std::size_t i = 0; i < total; ++i) sum[k.channel_of(i)] += x_at(i);
  const double m = static_cast<double>(total / C);
  std::vector<double> mean(C);
  for (std::size_t c = 0; c < C; ++c) mean[c] = sum[c] / m;
  for (std::size_t i = 0; i < total; ++i) {
    const double d = x_at(i) - mean[k.channel_of(i)];
    m2[k.channel_of(i)] += d * d;
  }

  for (std::size_t i = 0; i < total; ++i) x[i] = x_at(i);
  std::vector<float> bmean(C), binvstd(C);
  ASSERT_EQ(SIMDNORM_SUCCESS, simdnorm_forward_training(&k.shape, x.get(), x.get(), nullptr, nullptr, 1e-5f,
                                                        bmean.data(), binvstd.data(), nullptr, nullptr, 0.1f, 0u));
  std::vector<double> invstd(C);
  for (std::size_t c = 0; c < C; ++c) {
    invstd[c] = 1.0 / std::sqrt(m2[c] / m + 1e-5);
    EXPECT_NEAR(bmean[c], mean[c], 1e-5 * (std::fabs(mean[c]) + 1.0)) << "channel " << c;
    EXPECT_NEAR(binvstd[c], invstd[c], 1e-5 * invstd[c]) << "channel " << c;
  }
  // A sample of y, always including the last elements (beyond 2^31).
  auto sample = [&](auto check) {
    for (std::size_t i = 0; i < total; i += 7919 * 131) check(i);
    for (std::size_t i = total - 64; i < total; ++i) check(i);
  };
  sample([&](std::size_t i) {
    const std::size_t c = k.channel_of(i);
    const double want = (x_at(i) - mean[c]) * invstd[c];
    ASSERT_NEAR(x[i], want, 1e-5 * (std::fabs(x_at(i) * invstd[c]) + std::fabs(mean[c] * invstd[c]) + 1.0))
        << "y at " << i;
  });

  // Backward, dx in place of dy, against the saved statistics.
  for (std::size_t i = 0; i < total; ++i) {
    x[i] = x_at(i);
    dy[i] = dy_at(i);
  }
  for (std::size_t i = 0; i < total; ++i) {
    const std::size_t c = k.channel_of(i);
    sum_dy[c] += dy_at(i);
    sum_dy_xc[c] += dy_at(i) * (static_cast<double>(x_at(i)) - bmean[c]);
  }
  std::vector<float> dgamma(C), dbeta(C);
  ASSERT_EQ(SIMDNORM_SUCCESS, simdnorm_backward(&k.shape, x.get(), dy.get(), nullptr, nullptr, bmean.data(),
                                                binvstd.data(), dy.get(), dgamma.data(), dbeta.data(), 0u));
  for (std::size_t c = 0; c < C; ++c) {
    EXPECT_NEAR(dbeta[c], sum_dy[c], 1e-6 * m) << "channel " << c;
    EXPECT_NEAR(dgamma[c], sum_dy_xc[c] * binvstd[c], 1e-6 * m) << "channel " << c;
  }
  sample([&](std::size_t i) {
    const std::size_t c = k.channel_of(i);
    const double is = binvstd[c];
    const double xhat = (static_cast<double>(x_at(i)) - bmean[c]) * is;
    const double want = is * (dy_at(i) - sum_dy[c] / m - xhat * sum_dy_xc[c] * is / m);
    ASSERT_NEAR(dy[i], want, 1e-5 * is * (std::fabs(dy_at(i)) + 1.0 + std::fabs(xhat))) << "dx at " << i;
  });
}

TEST(Large, MoreThan2To31ElementsNchw) {
  RunLarge(Case{{1, 2, kElements / 2, SIMDNORM_NCHW}});
}

TEST(Large, MoreThan2To31ElementsNhwc) {
  RunLarge(Case{{2, 3, kElements / 6, SIMDNORM_NHWC}});
}

}  // namespace
