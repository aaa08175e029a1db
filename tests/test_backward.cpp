// simdnorm_backward against the reference and against central finite differences, once per ISA.
#include <algorithm>

#include "checkers.hpp"
#include "grids.hpp"

namespace simdnorm_test {
namespace {

class BackwardTest : public IsaTest {};
SIMDNORM_INSTANTIATE_PER_ISA(BackwardTest);

// Which of dx, dgamma, dbeta a case requests: all of them most of the time, a subset now and then.
struct Outputs {
  bool dx, dgamma, dbeta;
};
Outputs OutputsFor(std::uint64_t index) {
  const std::uint64_t h = MixSeed({index, 0x07u});
  if ((h & 3u) != 0) return {true, true, true};
  return {((h >> 2) & 1u) != 0, ((h >> 3) & 1u) != 0, ((h >> 4) & 1u) != 0};
}

void BackwardGrid(simdnorm_layout layout) {
  FailureBudget budget;
  std::uint64_t index = layout == SIMDNORM_NCHW ? 0 : 1000;
  for (std::size_t n : kGridN) {
    for (std::size_t c : kGridC) {
      for (std::size_t s : kGridSpatial) {
        if (n * s < 2) continue;
        const CaseOptions o = RotateOptions(index);
        const Outputs out = OutputsFor(index++);
        const bool passed = BackwardCheck()
                                .n(n)
                                .c(c)
                                .spatial(s)
                                .layout(layout)
                                .inplace(o.inplace)
                                .relu(o.relu)
                                .gamma_beta(o.gamma_beta)
                                .outputs(out.dx, out.dgamma, out.dbeta)
                                .misalign(o.misalign)
                                .seed(index)
                                .Test();
        if (!budget.Record(passed)) return;
      }
    }
  }
}

TEST_P(BackwardTest, GridNCHW) { BackwardGrid(SIMDNORM_NCHW); }
TEST_P(BackwardTest, GridNHWC) { BackwardGrid(SIMDNORM_NHWC); }

TEST_P(BackwardTest, Remainders) {
  FailureBudget budget;
  std::uint64_t index = 0;
  for (simdnorm_layout layout : kLayouts) {
    for (std::size_t c : kRemainderSizes) {
      for (std::size_t s : kRemainderSizes) {
        const CaseOptions o = RotateOptions(index++);
        for (bool flip : {false, true}) {
          const bool passed = BackwardCheck()
                                  .n(s == 1 ? 2 : 1)
                                  .c(c)
                                  .spatial(s)
                                  .layout(layout)
                                  .inplace(o.inplace != flip)
                                  .relu(o.relu != flip)
                                  .gamma_beta(o.gamma_beta != flip)
                                  .seed(index)
                                  .Test();
          if (!budget.Record(passed)) return;
        }
      }
    }
  }
}

// Every combination of in place, ReLU, gamma/beta and each subset of the requested outputs (none included).
TEST_P(BackwardTest, EveryOptionCombination) {
  FailureBudget budget;
  for (simdnorm_layout layout : kLayouts) {
    for (unsigned bits = 0; bits < 64; ++bits) {
      const bool passed = BackwardCheck()
                              .n(3)
                              .c(17)
                              .spatial(49)
                              .layout(layout)
                              .inplace(bits & 1u)
                              .relu(bits & 2u)
                              .gamma_beta(bits & 4u)
                              .outputs(bits & 8u, bits & 16u, bits & 32u)
                              .seed(bits)
                              .Test();
      if (!budget.Record(passed)) return;
    }
  }
}

TEST_P(BackwardTest, LargeShapes) {
  FailureBudget budget;
  for (const LargeShape& shape : kLargeShapes) {
    for (simdnorm_layout layout : kLayouts) {
      EXPECT_TRUE(budget.Record(BackwardCheck()
                                    .n(shape.n)
                                    .c(shape.c)
                                    .spatial(shape.spatial)
                                    .layout(layout)
                                    .relu()
                                    .gamma_beta()
                                    .misalign(1)
                                    .seed(5)
                                    .Test()));
      EXPECT_TRUE(budget.Record(
          BackwardCheck().n(shape.n).c(shape.c).spatial(shape.spatial).layout(layout).inplace().seed(6).Test()));
      // Out of place on aligned buffers: the streaming stores of tensors beyond the cache.
      EXPECT_TRUE(budget.Record(
          BackwardCheck().n(shape.n).c(shape.c).spatial(shape.spatial).layout(layout).relu().Test()));
    }
  }
}

// NHWC rows wide enough for a team of two to split the channels instead of the rows, in shares of at least 1024
// (out of place or without dx, and in cache only: see splits_channels in src/parallel/partition.hpp), the second share of 2100
// channels ending in a partial vector; in place, which splits the rows, for comparison.
TEST_P(BackwardTest, WideRowsSharedByChannels) {
  simdnorm_set_num_threads(2);
  for (const WideRows& s : kWideRows) {
    EXPECT_TRUE(BackwardCheck()
                    .n(s.n)
                    .c(s.c)
                    .spatial(s.spatial)
                    .layout(SIMDNORM_NHWC)
                    .relu()
                    .gamma_beta()
                    .misalign(1)
                    .seed(12)
                    .Test());
    EXPECT_TRUE(BackwardCheck().n(s.n).c(s.c).spatial(s.spatial).layout(SIMDNORM_NHWC).gamma_beta().Test());
    EXPECT_TRUE(
        BackwardCheck().n(s.n).c(s.c).spatial(s.spatial).layout(SIMDNORM_NHWC).outputs(false, true, true).Test());
    EXPECT_TRUE(BackwardCheck().n(s.n).c(s.c).spatial(s.spatial).layout(SIMDNORM_NHWC).relu().inplace().Test());
  }
  simdnorm_set_num_threads(0);
}

TEST_P(BackwardTest, TwoValuesPerChannel) {
  for (simdnorm_layout layout : kLayouts) {
    EXPECT_TRUE(BackwardCheck().n(2).c(19).spatial(1).layout(layout).gamma_beta().Test());
    EXPECT_TRUE(BackwardCheck().n(1).c(19).spatial(2).layout(layout).gamma_beta().relu().Test());
    EXPECT_TRUE(BackwardCheck().n(37).c(70).spatial(1).layout(layout).gamma_beta().relu().inplace().Test());
  }
}

// The ReLU mask is recomputed from x and the saved statistics "with the very arithmetic forward training used", so it
// matches the forward output bit for bit. Values equal to the channel mean put bn(x) within a rounding error of zero
// (exactly where a and b rounded to float make the sign a coin toss), the hardest place for that promise. dy = 1 makes
// every mask disagreement move dbeta by a whole 1.
TEST_P(BackwardTest, ReluMaskMatchesForwardBitForBit) {
  for (simdnorm_layout layout : kLayouts) {
    const std::size_t N = 2, C = 37, S = 53;
    const simdnorm_shape shape = MakeShape(N, C, S, layout);
    const std::size_t count = Elements(shape);
    Rng rng(MixSeed({1234, static_cast<std::uint64_t>(layout)}));
    std::vector<float> x(count), y(count), dy(count, 1.0f), gamma(C), bm(C), bi(C), dx(count), dg(C), db(C);
    for (std::size_t c = 0; c < C; ++c) {
      const double mu = (static_cast<double>(rng.below(400)) - 200.0) / 16.0;  // dyadic mean
      gamma[c] = static_cast<float>(rng.signed_uniform(0.5, 2.0));
      // A third of the values sit exactly on the mean; the rest come in pairs mu +- k/8.
      std::vector<double> values;
      const std::size_t m = N * S;
      while (values.size() + 2 <= m) {
        if (rng.below(3) == 0) {
          values.push_back(mu);
          values.push_back(mu);
        } else {
          const double d = (1.0 + rng.below(24)) / 8.0;
          values.push_back(mu + d);
          values.push_back(mu - d);
        }
      }
      if (values.size() < m) values.push_back(mu);
      for (std::size_t k = m; k > 1; --k) std::swap(values[k - 1], values[rng.below(static_cast<std::uint32_t>(k))]);
      std::size_t k = 0;
      for (std::size_t n = 0; n < N; ++n) {
        for (std::size_t s = 0; s < S; ++s) x[Offset(shape, n, c, s)] = static_cast<float>(values[k++]);
      }
    }
    ASSERT_EQ(simdnorm_forward_training(&shape, x.data(), y.data(), gamma.data(), nullptr, 1e-5f, bm.data(), bi.data(),
                                        nullptr, nullptr, 0.1f, SIMDNORM_FUSE_RELU),
              SIMDNORM_SUCCESS)
        << simdnorm_last_error();
    ASSERT_EQ(simdnorm_backward(&shape, x.data(), dy.data(), gamma.data(), nullptr, bm.data(), bi.data(), dx.data(),
                                dg.data(), db.data(), SIMDNORM_FUSE_RELU),
              SIMDNORM_SUCCESS)
        << simdnorm_last_error();
    std::vector<double> want(C, 0.0);
    for (std::size_t i = 0; i < count; ++i) {
      if (y[i] > 0.0f) want[ChannelOf(shape, i)] += 1.0;
    }
    for (std::size_t c = 0; c < C; ++c) {
      // dbeta counts the unmasked elements: an integer below 2^24, exact in any summation order.
      EXPECT_EQ(static_cast<double>(db[c]), want[c])
          << LayoutName(layout) << " isa=" << isa() << " channel " << c
          << ": dbeta (the number of elements the backward mask lets through) differs from the number of positive "
             "forward outputs";
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Central finite differences of L = sum(w * y) in double, y the training forward (optionally with ReLU).

struct DoubleForward {
  simdnorm_shape shape;
  double eps;
  bool relu;

  double Loss(const std::vector<double>& x, const std::vector<double>& gamma, const std::vector<double>& beta,
              const std::vector<double>& w) const {
    const std::size_t count = Elements(shape);
    const double m = static_cast<double>(shape.n * shape.spatial);
    std::vector<double> mean(shape.c, 0.0), var(shape.c, 0.0);
    for (std::size_t i = 0; i < count; ++i) mean[ChannelOf(shape, i)] += x[i];
    for (double& v : mean) v /= m;
    for (std::size_t i = 0; i < count; ++i) {
      const double d = x[i] - mean[ChannelOf(shape, i)];
      var[ChannelOf(shape, i)] += d * d;
    }
    for (double& v : var) v /= m;
    double loss = 0.0;
    for (std::size_t i = 0; i < count; ++i) {
      const std::size_t c = ChannelOf(shape, i);
      double y = gamma[c] * (x[i] - mean[c]) / std::sqrt(var[c] + eps) + beta[c];
      if (relu) y = std::max(y, 0.0);
      loss += w[i] * y;
    }
    return loss;
  }
};

void ExpectNearFd(const std::string& context, const char* what, const std::vector<float>& got,
                  const std::vector<double>& fd) {
  double scale = 0.0;
  for (double v : fd) scale += std::fabs(v);
  scale /= static_cast<double>(fd.size());
  for (std::size_t i = 0; i < fd.size(); ++i) {
    const double tol = 1e-3 * (std::fabs(fd[i]) + scale);
    if (!(std::fabs(got[i] - fd[i]) <= tol)) {
      ADD_FAILURE() << context << "\n  " << what << "[" << i << "]: kernel " << FloatString(got[i])
                    << ", finite difference " << FloatString(fd[i]) << ", tolerance " << FloatString(tol);
      return;
    }
  }
}

TEST_P(BackwardTest, FiniteDifferences) {
  for (simdnorm_layout layout : kLayouts) {
    for (bool relu : {false, true}) {
      const simdnorm_shape shape = MakeShape(2, 3, 5, layout);
      const std::size_t count = Elements(shape);
      const std::size_t C = shape.c;
      const float eps = 1e-5f;
      const std::string context = ShapeString(shape) + (relu ? " relu" : "") + " isa=" + isa();
      Rng rng(MixSeed({77, static_cast<std::uint64_t>(layout), relu}));
      std::vector<float> x(count), w(count), gamma(C), beta(C);
      FillInput(rng, shape, InputDistribution{}, x.data());
      for (std::size_t c = 0; c < C; ++c) {
        gamma[c] = static_cast<float>(rng.signed_uniform(0.5, 2.0));
        beta[c] = static_cast<float>(rng.uniform(-1.0, 1.0));
      }
      for (float& v : w) v = static_cast<float>(rng.normal());
      // Keep every ReLU input well clear of the kink, farther than any finite-difference step moves it.
      if (relu) {
        ASSERT_TRUE(SeparateFromReluKink(rng, shape, x.data(), gamma.data(), beta.data(), eps, 0.05));
      }

      // The kernel: forward for the saved statistics, then backward with dy = w.
      std::vector<float> y(count), bm(C), bi(C), dx(count), dg(C), db(C);
      const unsigned flags = relu ? SIMDNORM_FUSE_RELU : 0u;
      ASSERT_EQ(simdnorm_forward_training(&shape, x.data(), y.data(), gamma.data(), beta.data(), eps, bm.data(),
                                          bi.data(), nullptr, nullptr, 0.1f, flags),
                SIMDNORM_SUCCESS);
      ASSERT_EQ(simdnorm_backward(&shape, x.data(), w.data(), gamma.data(), beta.data(), bm.data(), bi.data(),
                                  dx.data(), dg.data(), db.data(), flags),
                SIMDNORM_SUCCESS);

      const DoubleForward f{shape, static_cast<double>(eps), relu};
      std::vector<double> xd(x.begin(), x.end()), gd(gamma.begin(), gamma.end()), bd(beta.begin(), beta.end()),
          wd(w.begin(), w.end());
      auto central = [&](std::vector<double>& v, std::size_t i) {
        const double saved = v[i];
        const double h = 1e-3 * std::max(1.0, std::fabs(saved));
        v[i] = saved + h;
        const double up = f.Loss(xd, gd, bd, wd);
        v[i] = saved - h;
        const double down = f.Loss(xd, gd, bd, wd);
        v[i] = saved;
        return (up - down) / (2.0 * h);
      };
      std::vector<double> fd_dx(count), fd_dg(C), fd_db(C);
      for (std::size_t i = 0; i < count; ++i) fd_dx[i] = central(xd, i);
      for (std::size_t c = 0; c < C; ++c) {
        fd_dg[c] = central(gd, c);
        fd_db[c] = central(bd, c);
      }
      ExpectNearFd(context, "dx", dx, fd_dx);
      ExpectNearFd(context, "dgamma", dg, fd_dg);
      ExpectNearFd(context, "dbeta", db, fd_db);
    }
  }
}

}  // namespace
}  // namespace simdnorm_test
