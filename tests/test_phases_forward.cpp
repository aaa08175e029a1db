// The split-phase forward API (simdnorm_moments, simdnorm_merge_moments, simdnorm_finish_moments,
// simdnorm_normalize), once per ISA: with one part it is simdnorm_forward_training bit for bit (the header's "one
// arithmetic"), over the kernel grid and shapes that take every partition of the drivers; with the batch cut into
// shards along n, the fast and the reference split phases agree with the one calls within the checkers' tolerances.
// The merge itself and each reference split function: test_phases_reference.cpp.
#include <limits>
#include <sstream>

#include "checkers.hpp"
#include "grids.hpp"
#include "phases_common.hpp"

namespace simdnorm_test {
namespace {

class PhasesForwardTest : public IsaTest {
 protected:
  void TearDown() override {
    simdnorm_set_num_threads(0);
    IsaTest::TearDown();
  }
};
SIMDNORM_INSTANTIATE_PER_ISA(PhasesForwardTest);

constexpr float kEps = 1e-5f;
constexpr float kMomentum = 0.1f;

// Bit-for-bit comparisons need no particular distribution: uniform values about per-channel means cost a fraction of
// FillInput's normal ones, which the comparisons within tolerances need.
void FillUniform(Rng& rng, const simdnorm_shape& s, float* x) {
  std::vector<double> mean(s.c), half_width(s.c);
  for (std::size_t c = 0; c < s.c; ++c) {
    mean[c] = rng.uniform(-3.0, 3.0);
    half_width[c] = rng.uniform(0.8, 3.5);
  }
  for (std::size_t i = 0; i < Elements(s); ++i) {
    const std::size_t c = ChannelOf(s, i);
    x[i] = static_cast<float>(mean[c] + half_width[c] * rng.uniform(-1.0, 1.0));
  }
}

// One forward problem: x, gamma and beta (passed only with gamma_beta), running statistics to start from.
struct Problem {
  simdnorm_shape shape;
  std::size_t count, C;
  bool gamma_beta;
  std::vector<float> x, gamma, beta, rm0, rv0;

  Problem(const simdnorm_shape& s, std::uint64_t seed, bool with_gamma_beta, bool normal = true)
      : shape(s), count(Elements(s)), C(s.c), gamma_beta(with_gamma_beta), x(count) {
    Rng rng(MixSeed({seed, s.n, s.c, s.spatial, static_cast<std::uint64_t>(s.layout)}));
    if (normal) {
      FillInput(rng, shape, InputDistribution{}, x.data());
    } else {
      FillUniform(rng, shape, x.data());
    }
    for (std::size_t c = 0; c < C; ++c) {
      gamma.push_back(static_cast<float>(rng.signed_uniform(0.5, 2.0)));
      beta.push_back(static_cast<float>(rng.uniform(-1.0, 1.0)));
      rm0.push_back(static_cast<float>(rng.uniform(-1.0, 1.0)));
      rv0.push_back(static_cast<float>(rng.uniform(0.5, 2.0)));
    }
  }
  const float* g() const { return gamma_beta ? gamma.data() : nullptr; }
  const float* b() const { return gamma_beta ? beta.data() : nullptr; }
};

// y, then batch and running statistics (the latter starting from the problem's).
struct Outputs {
  explicit Outputs(const Problem& p) : y(p.count), bm(p.C), bi(p.C), rm(p.rm0), rv(p.rv0) {}
  std::vector<float> y, bm, bi, rm, rv;
  simdnorm_status status = SIMDNORM_SUCCESS;
  std::string message;
};

using Options = PhaseOptions;

std::string Describe(const Problem& p, const Options& o, std::size_t parts) {
  std::ostringstream os;
  os << ShapeString(p.shape) << (o.inplace ? " inplace" : " out-of-place") << (o.relu ? " relu" : "")
     << (p.gamma_beta ? " gamma_beta" : "") << " misalign=" << o.misalign << " parts=" << parts
     << " isa=" << CurrentIsa();
  return os.str();
}

// Tensors live in GuardedBuffers for the misalignment; accesses past their ends are test_guard_pages.cpp's to catch.
Outputs RunOneCall(const Problem& p, const Options& o) {
  GuardedBuffer x(p.count, o.misalign), y(o.inplace ? 0 : p.count, o.misalign);
  x.assign(p.x);
  y.fill(SentinelFloat());
  Outputs out(p);
  float* yp = o.inplace ? x.data() : y.data();
  out.status = simdnorm_forward_training(&p.shape, x.data(), yp, p.g(), p.b(), kEps, out.bm.data(), out.bi.data(),
                                         out.rm.data(), out.rv.data(), kMomentum, o.flags());
  out.message = simdnorm_last_error();
  out.y.assign(yp, yp + p.count);
  return out;
}

// The four forward phases, fast or reference (same signatures).
struct SplitApi {
  decltype(&simdnorm_moments) moments;
  decltype(&simdnorm_merge_moments) merge;
  decltype(&simdnorm_finish_moments) finish;
  decltype(&simdnorm_normalize) normalize;
};
constexpr SplitApi kFast{simdnorm_moments, simdnorm_merge_moments, simdnorm_finish_moments, simdnorm_normalize};
constexpr SplitApi kReference{simdnorm_reference_moments, simdnorm_reference_merge_moments,
                              simdnorm_reference_finish_moments, simdnorm_reference_normalize};

// The split phases over parts of part_n[k] images each (slices along n, contiguous in both layouts): moments of each
// part, merged in order, finished, each part normalised. `merged` receives the merged mean and m2 when not null.
Outputs RunSplit(const Problem& p, const Options& o, const std::vector<std::size_t>& part_n,
                 std::vector<double>* merged = nullptr, const SplitApi& api = kFast) {
  const std::size_t K = part_n.size(), C = p.C, per_image = C * p.shape.spatial;
  GuardedBuffer x(p.count, o.misalign), y(o.inplace ? 0 : p.count, o.misalign);
  x.assign(p.x);
  y.fill(SentinelFloat());
  std::vector<double> counts(K), means(K * C), m2s(K * C), mean(C), m2(C);
  Outputs out(p);
  std::size_t n0 = 0;
  for (std::size_t k = 0; k < K; ++k) {
    const simdnorm_shape part = MakeShape(part_n[k], C, p.shape.spatial, p.shape.layout);
    counts[k] = static_cast<double>(part_n[k] * p.shape.spatial);
    EXPECT_EQ(SIMDNORM_SUCCESS, api.moments(&part, x.data() + n0 * per_image, &means[k * C], &m2s[k * C]))
        << simdnorm_last_error();
    n0 += part_n[k];
  }
  double total = -1.0;
  EXPECT_EQ(SIMDNORM_SUCCESS, api.merge(K, C, counts.data(), means.data(), m2s.data(), mean.data(), m2.data(), &total))
      << simdnorm_last_error();
  EXPECT_EQ(total, static_cast<double>(p.shape.n * p.shape.spatial));
  out.status = api.finish(C, total, mean.data(), m2.data(), kEps, out.bm.data(), out.bi.data(), out.rm.data(),
                          out.rv.data(), kMomentum);
  out.message = simdnorm_last_error();
  float* yp = o.inplace ? x.data() : y.data();
  n0 = 0;
  for (std::size_t k = 0; k < K; ++k) {
    const simdnorm_shape part = MakeShape(part_n[k], C, p.shape.spatial, p.shape.layout);
    const std::size_t at = n0 * per_image;
    EXPECT_EQ(SIMDNORM_SUCCESS,
              api.normalize(&part, x.data() + at, yp + at, p.g(), p.b(), out.bm.data(), out.bi.data(), o.flags()))
        << simdnorm_last_error();
    n0 += part_n[k];
  }
  out.y.assign(yp, yp + p.count);
  if (merged != nullptr) {
    *merged = mean;
    merged->insert(merged->end(), m2.begin(), m2.end());
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// One part: bit for bit the one call.

bool OnePartIsBitwise(const Problem& p, const Options& o) {
  const std::string context = "split phases vs simdnorm_forward_training, " + Describe(p, o, 1);
  const Outputs one = RunOneCall(p, o);
  const Outputs split = RunSplit(p, o, {p.shape.n});
  bool ok = one.status == split.status;
  if (!ok) ADD_FAILURE() << context << "\n  status " << one.status << " vs " << split.status;
  ok &= ExpectSameBits(context, "y", split.y.data(), one.y.data(), p.count, &p.shape);
  ok &= ExpectSameBits(context, "batch_mean", split.bm.data(), one.bm.data(), p.C, nullptr);
  ok &= ExpectSameBits(context, "batch_invstd", split.bi.data(), one.bi.data(), p.C, nullptr);
  ok &= ExpectSameBits(context, "running_mean", split.rm.data(), one.rm.data(), p.C, nullptr);
  ok &= ExpectSameBits(context, "running_var", split.rv.data(), one.rv.data(), p.C, nullptr);
  return ok;
}

bool OnePartEveryOption(const simdnorm_shape& shape, std::uint64_t seed) {
  Problem p(shape, seed, false, false);
  return EveryOption(shape, seed, [&](const Options& o, bool gamma_beta) {
    p.gamma_beta = gamma_beta;
    return OnePartIsBitwise(p, o);
  });
}

void OnePartGrid(simdnorm_layout layout) { ForEachGridShape(layout, OnePartEveryOption); }

TEST_P(PhasesForwardTest, OnePartIsForwardTrainingBitwiseGridNCHW) { OnePartGrid(SIMDNORM_NCHW); }
TEST_P(PhasesForwardTest, OnePartIsForwardTrainingBitwiseGridNHWC) { OnePartGrid(SIMDNORM_NHWC); }

// Shapes that take each partition of the drivers (for a 1 MiB L2; others move the thresholds, not the paths' variety):
// NCHW short channels grouped 16 at a time; long channels one at a time; channels over the L2 that the whole team
// shares (C < 16); NHWC in one chunk; in many chunks merged in two halves; ResNet-50's last layer (backward splits
// its channels among the team out of place); N x C matrices; a single channel.
struct PartitionShape {
  std::size_t n, c, spatial;
  simdnorm_layout layout;
};
constexpr PartitionShape kPartitionShapes[] = {
    {1, 64, 49, SIMDNORM_NCHW},    {2, 3, 40000, SIMDNORM_NCHW}, {1, 3, 400000, SIMDNORM_NCHW},
    {2, 17, 9, SIMDNORM_NHWC},     {4, 256, 784, SIMDNORM_NHWC}, {1, 2048, 49, SIMDNORM_NHWC},
    {256, 1024, 1, SIMDNORM_NCHW}, {37, 70, 1, SIMDNORM_NHWC},   {3, 1, 1000, SIMDNORM_NCHW},
    {3, 1, 1000, SIMDNORM_NHWC},   {4, 256, 784, SIMDNORM_NCHW}};

TEST_P(PhasesForwardTest, OnePartIsForwardTrainingBitwisePartitions) {
  simdnorm_set_num_threads(2);  // a team even on one core, so the shared partitions run as they do in production
  FailureBudget budget;
  std::uint64_t seed = 100;
  for (const PartitionShape& s : kPartitionShapes) {
    if (!budget.Record(OnePartEveryOption(MakeShape(s.n, s.c, s.spatial, s.layout), ++seed))) return;
  }
}

// A channel with NaN and one with Inf: NON_FINITE from both, naming the same channel, and the same bits everywhere
// (y NaN there, those channels' running statistics unchanged).
TEST_P(PhasesForwardTest, NonFiniteChannelsBitwise) {
  for (simdnorm_layout layout : kLayouts) {
    Problem p(MakeShape(3, 5, 33, layout), 7, true);
    p.x[Offset(p.shape, 1, 1, 4)] = std::numeric_limits<float>::quiet_NaN();
    p.x[Offset(p.shape, 2, 3, 0)] = std::numeric_limits<float>::infinity();
    for (bool relu : {false, true}) {
      Options o;
      o.relu = relu;
      const std::string context = "non-finite channels, " + Describe(p, o, 1);
      const Outputs one = RunOneCall(p, o), split = RunSplit(p, o, {3});
      EXPECT_EQ(one.status, SIMDNORM_NON_FINITE) << context;
      EXPECT_EQ(split.status, SIMDNORM_NON_FINITE) << context;
      EXPECT_NE(split.message.find("channel 1"), std::string::npos) << context << ": " << split.message;
      EXPECT_EQ(0, std::memcmp(split.rm.data() + 1, p.rm0.data() + 1, sizeof(float))) << context;
      EXPECT_EQ(0, std::memcmp(split.rv.data() + 3, p.rv0.data() + 3, sizeof(float))) << context;
      ExpectSameBits(context, "y", split.y.data(), one.y.data(), p.count, &p.shape);
      ExpectSameBits(context, "batch_mean", split.bm.data(), one.bm.data(), p.C, nullptr);
      ExpectSameBits(context, "batch_invstd", split.bi.data(), one.bi.data(), p.C, nullptr);
      ExpectSameBits(context, "running_mean", split.rm.data(), one.rm.data(), p.C, nullptr);
      ExpectSameBits(context, "running_var", split.rv.data(), one.rv.data(), p.C, nullptr);
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Shards: the batch cut along n into uneven parts.

struct ShardShape {
  std::size_t n, c, spatial;
};
// N = 11 cut 7+4, 1+6+4, 3+1+2+4+1; N = 5 cut 1+4, 2+1+2, 1+1+1+1+1 (one value per channel and part at spatial 1).
// The last shape's channels are shared by the team as a whole (over 1 MiB), not as parts.
constexpr ShardShape kShardShapes[] = {{11, 17, 49}, {11, 1, 7},   {11, 70, 1},   {11, 3, 5000},
                                       {5, 17, 1},   {5, 130, 61}, {11, 48, 196}, {5, 3, 56000}};
std::vector<std::vector<std::size_t>> ShardSplits(std::size_t n) {
  if (n == 11) return {{7, 4}, {1, 6, 4}, {3, 1, 2, 4, 1}};
  return {{1, 4}, {2, 1, 2}, {1, 1, 1, 1, 1}};
}

// The checkers' tolerances against the reference forward; against the one call (itself within them of the
// reference) twice as much.
bool ShardsAgree(const Problem& p, const Options& o) {
  const std::size_t C = p.C;
  const double m = static_cast<double>(p.shape.n * p.shape.spatial);
  Outputs ref(p);
  EXPECT_EQ(SIMDNORM_SUCCESS,
            simdnorm_reference_forward_training(&p.shape, p.x.data(), ref.y.data(), p.g(), p.b(), kEps, ref.bm.data(),
                                                ref.bi.data(), ref.rm.data(), ref.rv.data(), kMomentum, o.flags()));
  const Outputs one = RunOneCall(p, o);
  std::vector<double> mean, var, ref_mean(C), ref_m2(C);
  ChannelStats(p.shape, p.x.data(), mean, var);
  EXPECT_EQ(SIMDNORM_SUCCESS, simdnorm_reference_moments(&p.shape, p.x.data(), ref_mean.data(), ref_m2.data()));
  const double invstd_rel = kReductionUlps * FLT_EPSILON;
  auto mean_tol = [&](std::size_t c) { return MeanTolerance(mean[c], var[c]); };
  // m2 = m*var; invstd = (var + eps)^-1/2 within invstd_rel means var + eps within 2*invstd_rel of itself.
  auto m2_tol = [&](std::size_t c) { return 2.0 * invstd_rel * (ref_m2[c] + m * kEps); };
  std::vector<double> y_tol(p.count);
  for (std::size_t i = 0; i < p.count; ++i) {
    const std::size_t c = ChannelOf(p.shape, i);
    y_tol[i] = TrainingOutputTolerance(p.x[i], p.g() ? p.g()[c] : 1.0, p.b() ? p.b()[c] : 0.0, ref.bm[c], ref.bi[c],
                                       mean_tol(c), invstd_rel);
  }
  bool ok = true;
  for (const std::vector<std::size_t>& parts : ShardSplits(p.shape.n)) {
    const std::string context = "shards vs simdnorm_forward_training, " + Describe(p, o, parts.size());
    std::vector<double> merged;
    const Outputs split = RunSplit(p, o, parts, &merged), ref_split = RunSplit(p, o, parts, nullptr, kReference);
    ok &= split.status == SIMDNORM_SUCCESS && ref_split.status == SIMDNORM_SUCCESS;
    ok &= ExpectNearDoubles(context, "merged mean vs simdnorm_reference_moments", merged.data(), ref_mean.data(), C,
                            mean_tol);
    ok &= ExpectNearDoubles(context, "merged m2 vs simdnorm_reference_moments", merged.data() + C, ref_m2.data(), C,
                            m2_tol);
    // The fast split phases against the reference and against the one call; the reference's against its one call.
    for (int round = 0; round < 3; ++round) {
      const double factor = round == 1 ? 2.0 : 1.0;
      const Outputs& got = round == 2 ? ref_split : split;
      const Outputs& want = round == 1 ? one : ref;
      const char* what[] = {" (against the reference)", " (against the one call)", " (reference split vs one call)"};
      const std::string ctx = context + what[round];
      ok &= ExpectNear(ctx, "y", got.y.data(), want.y.data(), p.count, &p.shape,
                       [&](std::size_t i) { return factor * y_tol[i]; });
      ok &= ExpectNear(ctx, "batch_mean", got.bm.data(), want.bm.data(), C, nullptr,
                       [&](std::size_t c) { return factor * mean_tol(c); });
      ok &= ExpectNear(ctx, "batch_invstd", got.bi.data(), want.bi.data(), C, nullptr,
                       [&](std::size_t c) { return factor * invstd_rel * std::fabs(double(ref.bi[c])); });
      ok &= ExpectNear(ctx, "running_mean", got.rm.data(), want.rm.data(), C, nullptr, [&](std::size_t c) {
        return factor * RunningMeanTolerance(p.rm0[c], mean[c], kMomentum, mean_tol(c));
      });
      ok &= ExpectNear(ctx, "running_var", got.rv.data(), want.rv.data(), C, nullptr, [&](std::size_t c) {
        return factor * RunningVarTolerance(p.rv0[c], var[c], m, kEps, kMomentum, invstd_rel);
      });
    }
    if (!ok) break;
  }
  return ok;
}

TEST_P(PhasesForwardTest, ShardsAgreeWithForwardTraining) {
  FailureBudget budget;
  std::uint64_t index = 0;
  for (const ShardShape& s : kShardShapes) {
    for (simdnorm_layout layout : kLayouts) {
      const CaseOptions r = RotateOptions(++index);
      Options o;
      o.inplace = r.inplace;
      o.relu = r.relu;
      o.misalign = r.misalign;
      if (!budget.Record(ShardsAgree(Problem(MakeShape(s.n, s.c, s.spatial, layout), index, r.gamma_beta), o))) {
        return;
      }
    }
  }
}

}  // namespace
}  // namespace simdnorm_test
