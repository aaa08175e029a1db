// The merge of the split-phase API and the reference's split functions. simdnorm_merge_moments is deterministic in a
// given order, skips empty parts and gives zeros for none, and agrees bit for bit with
// simdnorm_reference_merge_moments (reference.h promises it); every other simdnorm_reference_* split function agrees
// with its fast counterpart within the checkers' tolerances, once per ISA; and with one part the reference's split
// phases chain into its one-call functions (the chains over shards: test_phases_forward.cpp, test_phases_backward.cpp).
#include <iterator>
#include <limits>

#include "checkers.hpp"
#include "grids.hpp"

namespace simdnorm_test {
namespace {

class PhasesReferenceTest : public IsaTest {};
SIMDNORM_INSTANTIATE_PER_ISA(PhasesReferenceTest);

constexpr float kEps = 1e-5f;
constexpr float kMomentum = 0.1f;

// x, dy, gamma and beta (used or not), running statistics to start from.
struct Data {
  simdnorm_shape shape;
  std::size_t count, C;
  double m;
  std::vector<float> x, dy, gamma, beta, rm0, rv0;

  Data(const simdnorm_shape& s, std::uint64_t seed)
      : shape(s), count(Elements(s)), C(s.c), m(static_cast<double>(s.n * s.spatial)), x(count), dy(count) {
    Rng rng(MixSeed({seed, s.n, s.c, s.spatial, static_cast<std::uint64_t>(s.layout), 0x4ef}));
    FillInput(rng, shape, InputDistribution{}, x.data());
    for (float& v : dy) v = static_cast<float>(rng.normal());
    for (std::size_t c = 0; c < C; ++c) {
      gamma.push_back(static_cast<float>(rng.signed_uniform(0.5, 2.0)));
      beta.push_back(static_cast<float>(rng.uniform(-1.0, 1.0)));
      rm0.push_back(static_cast<float>(rng.uniform(-1.0, 1.0)));
      rv0.push_back(static_cast<float>(rng.uniform(0.5, 2.0)));
    }
  }
};

// ---------------------------------------------------------------------------------------------------------------
// The merge.

struct Merged {
  std::vector<double> mean, m2;
  double total = -1.0;
};
Merged Merge(const std::vector<double>& counts, const std::vector<double>& means, const std::vector<double>& m2s,
             std::size_t C, bool reference = false) {
  Merged r{std::vector<double>(C, -1.0), std::vector<double>(C, -1.0)};
  auto merge = reference ? simdnorm_reference_merge_moments : simdnorm_merge_moments;
  EXPECT_EQ(SIMDNORM_SUCCESS,
            merge(counts.size(), C, counts.data(), means.data(), m2s.data(), r.mean.data(), r.m2.data(), &r.total))
      << simdnorm_last_error();
  return r;
}

void ExpectSameMerge(const std::string& context, const Merged& got, const Merged& want) {
  ExpectSameBits(context, "mean", got.mean.data(), want.mean.data(), got.mean.size());
  ExpectSameBits(context, "m2", got.m2.data(), want.m2.data(), got.m2.size());
  EXPECT_EQ(0, std::memcmp(&got.total, &want.total, sizeof(double)))
      << context << ": total " << got.total << " vs " << want.total;
}

TEST_P(PhasesReferenceTest, MergeIsDeterministicAndSkipsEmptyParts) {
  for (simdnorm_layout layout : kLayouts) {
    const Data d(MakeShape(11, 37, 13, layout), 3);
    const std::size_t C = d.C, per_image = C * d.shape.spatial;
    std::vector<double> counts, means, m2s;
    std::size_t n0 = 0;
    for (std::size_t n : {3, 1, 2, 4, 1}) {
      const simdnorm_shape part = MakeShape(n, C, d.shape.spatial, layout);
      std::vector<double> mean(C), m2(C);
      ASSERT_EQ(SIMDNORM_SUCCESS, simdnorm_moments(&part, d.x.data() + n0 * per_image, mean.data(), m2.data()));
      counts.push_back(static_cast<double>(n * d.shape.spatial));
      means.insert(means.end(), mean.begin(), mean.end());
      m2s.insert(m2s.end(), m2.begin(), m2.end());
      n0 += n;
    }
    const std::string context = std::string("merge of five parts, ") + LayoutName(layout) + " isa=" + isa();
    const Merged first = Merge(counts, means, m2s, C);
    ExpectSameMerge(context + ", merged twice", Merge(counts, means, m2s, C), first);
    // reference.h: the reference groups Chan's formula as the fast merge does, "so that the two agree bitwise".
    ExpectSameMerge(context + ", simdnorm_reference_merge_moments", Merge(counts, means, m2s, C, true), first);

    // Empty parts first, between and last, holding values a merge that read them could not hide (NaN, huge).
    std::vector<double> zc, zmeans, zm2s;
    auto add = [&](double count, const double* mean, const double* m2) {
      zc.push_back(count);
      zmeans.insert(zmeans.end(), mean, mean + C);
      zm2s.insert(zm2s.end(), m2, m2 + C);
    };
    const std::vector<double> nan(C, std::numeric_limits<double>::quiet_NaN()), huge(C, 1e300);
    add(0.0, nan.data(), huge.data());
    for (std::size_t k = 0; k < counts.size(); ++k) {
      add(counts[k], &means[k * C], &m2s[k * C]);
      if (k == 1 || k == 2) add(-0.0, huge.data(), nan.data());
    }
    add(0.0, nan.data(), nan.data());
    ExpectSameMerge(context + ", with empty parts", Merge(zc, zmeans, zm2s, C), first);
    ExpectSameMerge(context + ", with empty parts, reference", Merge(zc, zmeans, zm2s, C, true), first);

    // mean and m2 may be row 0 of means and m2s.
    for (bool reference : {false, true}) {
      std::vector<double> in_means = means, in_m2s = m2s;
      double total = -1.0;
      auto merge = reference ? simdnorm_reference_merge_moments : simdnorm_merge_moments;
      ASSERT_EQ(SIMDNORM_SUCCESS, merge(counts.size(), C, counts.data(), in_means.data(), in_m2s.data(),
                                        in_means.data(), in_m2s.data(), &total))
          << simdnorm_last_error();
      ExpectSameMerge(context + (reference ? ", reference" : "") + ", written over row 0",
                      Merged{std::vector<double>(in_means.begin(), in_means.begin() + C),
                             std::vector<double>(in_m2s.begin(), in_m2s.begin() + C), total},
                      first);
    }
  }
}

// No part with values: mean = m2 = total = 0, which finish_moments refuses, writing nothing.
TEST(PhasesReference, MergeOfEmptyPartsIsZero) {
  const std::size_t C = 5;
  const std::vector<double> counts(3, 0.0), nan(3 * C, std::numeric_limits<double>::quiet_NaN());
  for (bool reference : {false, true}) {
    const Merged r = Merge(counts, nan, nan, C, reference);
    for (std::size_t c = 0; c < C; ++c) {
      EXPECT_EQ(r.mean[c], 0.0) << "channel " << c << (reference ? " (reference)" : "");
      EXPECT_EQ(r.m2[c], 0.0) << "channel " << c << (reference ? " (reference)" : "");
    }
    EXPECT_EQ(r.total, 0.0);
    auto finish = reference ? simdnorm_reference_finish_moments : simdnorm_finish_moments;
    std::vector<float> bm(C, SentinelFloat());
    EXPECT_EQ(SIMDNORM_INVALID_ARGUMENT,
              finish(C, r.total, r.mean.data(), r.m2.data(), kEps, bm.data(), nullptr, nullptr, nullptr, kMomentum));
    EXPECT_EQ(0, std::memcmp(bm.data(), std::vector<float>(C, SentinelFloat()).data(), C * sizeof(float)));
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Each reference split function against the fast one.

struct Shape {
  std::size_t n, c, spatial;
  simdnorm_layout layout;
};
// The partitions of test_phases_forward.cpp and test_phases_backward.cpp, fewer and smaller.
constexpr Shape kShapes[] = {{1, 64, 49, SIMDNORM_NCHW}, {2, 3, 40000, SIMDNORM_NCHW}, {1, 3, 300000, SIMDNORM_NCHW},
                             {2, 17, 9, SIMDNORM_NHWC},  {4, 64, 784, SIMDNORM_NHWC},  {1, 2048, 49, SIMDNORM_NHWC},
                             {37, 70, 1, SIMDNORM_NHWC}, {3, 1, 1000, SIMDNORM_NHWC}};

// Moments against the checkers' bounds of the statistics; finish and normalise from the same (reference) moments
// and statistics, so only their own roundings apart.
TEST_P(PhasesReferenceTest, ForwardFunctionsAgreeWithFast) {
  FailureBudget budget;
  for (std::size_t k = 0; k < std::size(kShapes); ++k) {
    const Shape& s = kShapes[k];
    const Data d(MakeShape(s.n, s.c, s.spatial, s.layout), k);
    const std::size_t C = d.C;
    const float* g = k % 2 == 0 ? d.gamma.data() : nullptr;
    const float* b = k % 2 == 0 ? d.beta.data() : nullptr;
    const unsigned flags = k % 3 == 1 ? SIMDNORM_FUSE_RELU : 0u;
    const std::string context = "reference split functions vs fast, " + ShapeString(d.shape) + " isa=" + isa();
    std::vector<double> mean(C), m2(C), ref_mean(C), ref_m2(C), stats, var;
    ASSERT_EQ(SIMDNORM_SUCCESS, simdnorm_moments(&d.shape, d.x.data(), mean.data(), m2.data()));
    ASSERT_EQ(SIMDNORM_SUCCESS, simdnorm_reference_moments(&d.shape, d.x.data(), ref_mean.data(), ref_m2.data()));
    ChannelStats(d.shape, d.x.data(), stats, var);
    bool ok = ExpectNearDoubles(context, "moments: mean", mean.data(), ref_mean.data(), C,
                                [&](std::size_t c) { return MeanTolerance(stats[c], var[c]); });
    // invstd = (m2/m + eps)^-1/2 within kReductionUlps relative means m2 + m*eps within twice that.
    ok &= ExpectNearDoubles(context, "moments: m2", m2.data(), ref_m2.data(), C, [&](std::size_t c) {
      return 2.0 * kReductionUlps * FLT_EPSILON * (ref_m2[c] + d.m * kEps);
    });

    std::vector<float> bm(C), bi(C), rm(d.rm0), rv(d.rv0), ref_bm(C), ref_bi(C), ref_rm(d.rm0), ref_rv(d.rv0);
    ASSERT_EQ(SIMDNORM_SUCCESS, simdnorm_finish_moments(C, d.m, ref_mean.data(), ref_m2.data(), kEps, bm.data(),
                                                        bi.data(), rm.data(), rv.data(), kMomentum));
    ASSERT_EQ(SIMDNORM_SUCCESS,
              simdnorm_reference_finish_moments(C, d.m, ref_mean.data(), ref_m2.data(), kEps, ref_bm.data(),
                                                ref_bi.data(), ref_rm.data(), ref_rv.data(), kMomentum));
    auto rounding = [](double v) { return kElementUlps * FLT_EPSILON * std::fabs(v); };
    ok &= ExpectNear(context, "finish: batch_mean", bm.data(), ref_bm.data(), C, nullptr,
                     [&](std::size_t c) { return rounding(ref_mean[c]); });
    ok &= ExpectNear(context, "finish: batch_invstd", bi.data(), ref_bi.data(), C, nullptr,
                     [&](std::size_t c) { return rounding(ref_bi[c]); });
    ok &= ExpectNear(context, "finish: running_mean", rm.data(), ref_rm.data(), C, nullptr,
                     [&](std::size_t c) { return RunningMeanTolerance(d.rm0[c], ref_mean[c], kMomentum, 0.0); });
    ok &= ExpectNear(context, "finish: running_var", rv.data(), ref_rv.data(), C, nullptr, [&](std::size_t c) {
      return RunningVarTolerance(d.rv0[c], ref_m2[c] / d.m, d.m, kEps, kMomentum, 0.0);
    });

    std::vector<float> y(d.count), ref_y(d.count);
    ASSERT_EQ(SIMDNORM_SUCCESS,
              simdnorm_normalize(&d.shape, d.x.data(), y.data(), g, b, ref_bm.data(), ref_bi.data(), flags));
    ASSERT_EQ(SIMDNORM_SUCCESS, simdnorm_reference_normalize(&d.shape, d.x.data(), ref_y.data(), g, b, ref_bm.data(),
                                                             ref_bi.data(), flags));
    // a = gamma*invstd and b = beta - mean*a rounded to float: the inference bound (simdnorm.h, reference.h).
    ok &= ExpectNear(context, "normalize: y", y.data(), ref_y.data(), d.count, &d.shape, [&](std::size_t i) {
      const std::size_t c = ChannelOf(d.shape, i);
      const double scale = (g ? g[c] : 1.0) * ref_bi[c];
      return InferenceOutputTolerance(d.x[i], ref_bm[c], scale, (b ? b[c] : 0.0) - ref_bm[c] * scale);
    });
    if (!budget.Record(ok)) return;
  }
}

// The reductions against BackwardBounds; dx from the same (reference) sums against its dx bound.
TEST_P(PhasesReferenceTest, BackwardFunctionsAgreeWithFast) {
  FailureBudget budget;
  for (std::size_t k = 0; k < std::size(kShapes); ++k) {
    const Shape& s = kShapes[k];
    Data d(MakeShape(s.n, s.c, s.spatial, s.layout), k + 50);
    const std::size_t C = d.C;
    const bool relu = k % 2 == 1;
    const float* g = k % 3 != 0 ? d.gamma.data() : nullptr;
    const float* b = k % 3 != 0 ? d.beta.data() : nullptr;
    const unsigned flags = relu ? SIMDNORM_FUSE_RELU : 0u;
    // With the ReLU, every |bn(x)| at least 1e-3, so that both masks agree.
    Rng rng(k);
    if (relu) {
      ASSERT_TRUE(SeparateFromReluKink(rng, d.shape, d.x.data(), g, d.beta.data(), kEps, 1e-3));
    }
    const std::string context =
        "reference backward functions vs fast, " + ShapeString(d.shape) + (relu ? " relu" : "") + " isa=" + isa();
    std::vector<float> y(d.count), bm(C), bi(C);
    ASSERT_EQ(SIMDNORM_SUCCESS, simdnorm_reference_forward_training(&d.shape, d.x.data(), y.data(), g, b, kEps,
                                                                    bm.data(), bi.data(), nullptr, nullptr, 0.0f, 0));
    std::vector<double> sum_dy(C), sum_dy_xhat(C), ref_sum_dy(C), ref_sum_dy_xhat(C);
    ASSERT_EQ(SIMDNORM_SUCCESS, simdnorm_backward_reduce(&d.shape, d.x.data(), d.dy.data(), g, b, bm.data(), bi.data(),
                                                         sum_dy.data(), sum_dy_xhat.data(), flags));
    ASSERT_EQ(SIMDNORM_SUCCESS,
              simdnorm_reference_backward_reduce(&d.shape, d.x.data(), d.dy.data(), g, b, bm.data(), bi.data(),
                                                 ref_sum_dy.data(), ref_sum_dy_xhat.data(), flags));
    std::vector<float> dy_masked(d.dy), ref_db(C), ref_dg(C);
    for (std::size_t i = 0; i < d.count; ++i) {
      if (relu && !(y[i] > 0.0f)) dy_masked[i] = 0.0f;
    }
    for (std::size_t c = 0; c < C; ++c) {
      ref_db[c] = static_cast<float>(ref_sum_dy[c]);
      ref_dg[c] = static_cast<float>(ref_sum_dy_xhat[c]);
    }
    const BackwardBounds bounds(d.shape, d.x.data(), dy_masked.data(), g, bm.data(), bi.data());
    bool ok = ExpectNearDoubles(context, "reduce: sum_dy", sum_dy.data(), ref_sum_dy.data(), C,
                                [&](std::size_t c) { return bounds.dbeta(c); });
    ok &= ExpectNearDoubles(context, "reduce: sum_dy_xhat", sum_dy_xhat.data(), ref_sum_dy_xhat.data(), C,
                            [&](std::size_t c) { return bounds.dgamma(c); });
    std::vector<float> dx(d.count), ref_dx(d.count);
    ASSERT_EQ(SIMDNORM_SUCCESS,
              simdnorm_backward_apply(&d.shape, d.x.data(), d.dy.data(), g, b, bm.data(), bi.data(), ref_sum_dy.data(),
                                      ref_sum_dy_xhat.data(), d.m, dx.data(), flags));
    ASSERT_EQ(SIMDNORM_SUCCESS,
              simdnorm_reference_backward_apply(&d.shape, d.x.data(), d.dy.data(), g, b, bm.data(), bi.data(),
                                                ref_sum_dy.data(), ref_sum_dy_xhat.data(), d.m, ref_dx.data(), flags));
    ok &= ExpectNear(context, "apply: dx", dx.data(), ref_dx.data(), d.count, &d.shape, [&](std::size_t i) {
      const std::size_t c = ChannelOf(d.shape, i);
      return bounds.dx(i, ref_db[c], ref_dg[c]);
    });
    if (!budget.Record(ok)) return;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// With one part the reference's phases are its one calls cut at the reductions, through the same helpers: batch and
// running statistics, dx, dgamma and dbeta bit for bit; y one rounding of the statistics apart (the one call
// normalises with the double mean and invstd, normalize with the float ones it returns).

TEST(PhasesReference, OnePartChainsAreTheReferenceOneCalls) {
  FailureBudget budget;
  std::uint64_t index = 0;
  for (simdnorm_layout layout : kLayouts) {
    for (std::size_t c : {1, 16, 33}) {
      for (std::size_t s : kGridSpatial) {
        ++index;
        const Data d(MakeShape(3, c, s, layout), index);
        const float* g = index % 2 == 0 ? d.gamma.data() : nullptr;
        const float* b = index % 2 == 0 ? d.beta.data() : nullptr;
        const unsigned flags = index % 3 == 0 ? SIMDNORM_FUSE_RELU : 0u;
        const std::string context = "reference chain vs reference one call, " + ShapeString(d.shape);
        std::vector<float> y(d.count), bm(c), bi(c), rm(d.rm0), rv(d.rv0);
        std::vector<float> chain_y(d.count), chain_bm(c), chain_bi(c), chain_rm(d.rm0), chain_rv(d.rv0);
        ASSERT_EQ(SIMDNORM_SUCCESS,
                  simdnorm_reference_forward_training(&d.shape, d.x.data(), y.data(), g, b, kEps, bm.data(), bi.data(),
                                                      rm.data(), rv.data(), kMomentum, flags));
        std::vector<double> mean(c), m2(c), merged_mean(c), merged_m2(c);
        double total = 0.0;
        ASSERT_EQ(SIMDNORM_SUCCESS, simdnorm_reference_moments(&d.shape, d.x.data(), mean.data(), m2.data()));
        ASSERT_EQ(SIMDNORM_SUCCESS, simdnorm_reference_merge_moments(1, c, &d.m, mean.data(), m2.data(),
                                                                     merged_mean.data(), merged_m2.data(), &total));
        ASSERT_EQ(SIMDNORM_SUCCESS, simdnorm_reference_finish_moments(c, total, merged_mean.data(), merged_m2.data(),
                                                                      kEps, chain_bm.data(), chain_bi.data(),
                                                                      chain_rm.data(), chain_rv.data(), kMomentum));
        ASSERT_EQ(SIMDNORM_SUCCESS, simdnorm_reference_normalize(&d.shape, d.x.data(), chain_y.data(), g, b,
                                                                 chain_bm.data(), chain_bi.data(), flags));
        bool ok = ExpectSameBits(context, "batch_mean", chain_bm.data(), bm.data(), c, nullptr);
        ok &= ExpectSameBits(context, "batch_invstd", chain_bi.data(), bi.data(), c, nullptr);
        ok &= ExpectSameBits(context, "running_mean", chain_rm.data(), rm.data(), c, nullptr);
        ok &= ExpectSameBits(context, "running_var", chain_rv.data(), rv.data(), c, nullptr);
        ok &= ExpectNear(context, "y", chain_y.data(), y.data(), d.count, &d.shape, [&](std::size_t i) {
          const std::size_t ch = ChannelOf(d.shape, i);
          return TrainingOutputTolerance(d.x[i], g ? g[ch] : 1.0, b ? b[ch] : 0.0, mean[ch], bi[ch],
                                         FLT_EPSILON * std::fabs(mean[ch]), FLT_EPSILON);
        });

        std::vector<float> dx(d.count), dg(c), db(c), chain_dx(d.count);
        std::vector<double> sum_dy(c), sum_dy_xhat(c);
        ASSERT_EQ(SIMDNORM_SUCCESS, simdnorm_reference_backward(&d.shape, d.x.data(), d.dy.data(), g, b, bm.data(),
                                                                bi.data(), dx.data(), dg.data(), db.data(), flags));
        ASSERT_EQ(SIMDNORM_SUCCESS,
                  simdnorm_reference_backward_reduce(&d.shape, d.x.data(), d.dy.data(), g, b, bm.data(), bi.data(),
                                                     sum_dy.data(), sum_dy_xhat.data(), flags));
        ASSERT_EQ(SIMDNORM_SUCCESS,
                  simdnorm_reference_backward_apply(&d.shape, d.x.data(), d.dy.data(), g, b, bm.data(), bi.data(),
                                                    sum_dy.data(), sum_dy_xhat.data(), d.m, chain_dx.data(), flags));
        std::vector<float> chain_dg(c), chain_db(c);
        for (std::size_t ch = 0; ch < c; ++ch) {
          chain_dg[ch] = static_cast<float>(sum_dy_xhat[ch]);
          chain_db[ch] = static_cast<float>(sum_dy[ch]);
        }
        ok &= ExpectSameBits(context, "dx", chain_dx.data(), dx.data(), d.count, &d.shape);
        ok &= ExpectSameBits(context, "dgamma", chain_dg.data(), dg.data(), c, nullptr);
        ok &= ExpectSameBits(context, "dbeta", chain_db.data(), db.data(), c, nullptr);
        if (!budget.Record(ok)) return;
      }
    }
  }
}

}  // namespace
}  // namespace simdnorm_test
