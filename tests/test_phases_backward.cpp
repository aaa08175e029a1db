// The split-phase backward API (simdnorm_backward_reduce, simdnorm_backward_apply), once per ISA: with one part it is
// simdnorm_backward bit for bit (dx, and dgamma, dbeta as the sums rounded to float), over the kernel grid and shapes
// that take every partition of the drivers; with the batch cut into shards along n, the sums added in part order and
// dx applied per part agree with the one calls within the checkers' tolerances, fast and reference alike.
#include <sstream>

#include "checkers.hpp"
#include "grids.hpp"
#include "phases_common.hpp"

namespace simdnorm_test {
namespace {

class PhasesBackwardTest : public IsaTest {
 protected:
  void TearDown() override {
    simdnorm_set_num_threads(0);
    IsaTest::TearDown();
  }
};
SIMDNORM_INSTANTIATE_PER_ISA(PhasesBackwardTest);

constexpr float kEps = 1e-5f;

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

// One backward problem: x, dy, gamma and beta (passed only with gamma_beta), and the saved statistics of the
// reference forward. With `separate`, x (and beta) are moved until every |bn(x)| >= 1e-3, so that a ReLU mask is
// the same for every implementation (only needed where the reference is compared). Without `normal`, uniform data.
struct Problem {
  simdnorm_shape shape;
  std::size_t count, C;
  bool gamma_beta;
  std::vector<float> x, dy, gamma, beta, bm, bi;

  Problem(const simdnorm_shape& s, std::uint64_t seed, bool with_gamma_beta, bool separate, bool normal = true)
      : shape(s), count(Elements(s)), C(s.c), gamma_beta(with_gamma_beta), x(count), dy(count), bm(C), bi(C) {
    Rng rng(MixSeed({seed, s.n, s.c, s.spatial, static_cast<std::uint64_t>(s.layout), 0xbac}));
    if (normal) {
      FillInput(rng, shape, InputDistribution{}, x.data());
    } else {
      FillUniform(rng, shape, x.data());
    }
    for (std::size_t c = 0; c < C; ++c) {
      gamma.push_back(static_cast<float>(rng.signed_uniform(0.5, 2.0)));
      beta.push_back(static_cast<float>(rng.uniform(-1.0, 1.0)));
    }
    if (separate) {
      EXPECT_TRUE(SeparateFromReluKink(rng, shape, x.data(), g(), gamma_beta ? beta.data() : nullptr, kEps, 1e-3));
    }
    for (float& v : dy) v = static_cast<float>(normal ? rng.normal() : rng.uniform(-2.0, 2.0));
    std::vector<float> y(count);
    EXPECT_EQ(SIMDNORM_SUCCESS, simdnorm_reference_forward_training(&shape, x.data(), y.data(), g(), b(), kEps,
                                                                    bm.data(), bi.data(), nullptr, nullptr, 0.0f, 0));
  }
  const float* g() const { return gamma_beta ? gamma.data() : nullptr; }
  const float* b() const { return gamma_beta ? beta.data() : nullptr; }
};

using Options = PhaseOptions;

std::string Describe(const Problem& p, const Options& o, std::size_t parts) {
  std::ostringstream os;
  os << ShapeString(p.shape) << (o.inplace ? " dx=dy" : " out-of-place") << (o.relu ? " relu" : "")
     << (p.gamma_beta ? " gamma_beta" : "") << " misalign=" << o.misalign << " parts=" << parts
     << " isa=" << CurrentIsa();
  return os.str();
}

// dx (empty when not requested), dgamma and dbeta; or the split phases' dx and summed reductions, and the latter
// rounded to float as dgamma and dbeta.
struct Grads {
  std::vector<float> dx, dg, db;
  std::vector<double> sum_dy, sum_dy_xhat;
};

// Tensors live in GuardedBuffers for the misalignment; accesses past their ends are test_guard_pages.cpp's to catch.
Grads RunOneCall(const Problem& p, const Options& o, bool want_dx = true) {
  GuardedBuffer dy(p.count, o.misalign), dx(o.inplace ? 0 : p.count, o.misalign);
  dy.assign(p.dy);
  dx.fill(SentinelFloat());
  Grads out{{}, std::vector<float>(p.C), std::vector<float>(p.C), {}, {}};
  float* dxp = !want_dx ? nullptr : o.inplace ? dy.data() : dx.data();
  EXPECT_EQ(SIMDNORM_SUCCESS, simdnorm_backward(&p.shape, p.x.data(), dy.data(), p.g(), p.b(), p.bm.data(), p.bi.data(),
                                                dxp, out.dg.data(), out.db.data(), o.flags()))
      << simdnorm_last_error();
  if (want_dx) out.dx.assign(dxp, dxp + p.count);
  return out;
}

struct SplitApi {
  decltype(&simdnorm_backward_reduce) reduce;
  decltype(&simdnorm_backward_apply) apply;
};
constexpr SplitApi kFast{simdnorm_backward_reduce, simdnorm_backward_apply};
constexpr SplitApi kReference{simdnorm_reference_backward_reduce, simdnorm_reference_backward_apply};

// Reductions of each part (slices of part_n[k] images along n), added in part order, then dx of each part.
Grads RunSplit(const Problem& p, const Options& o, const std::vector<std::size_t>& part_n,
               const SplitApi& api = kFast) {
  const std::size_t C = p.C, per_image = C * p.shape.spatial;
  GuardedBuffer dy(p.count, o.misalign), dx(o.inplace ? 0 : p.count, o.misalign);
  dy.assign(p.dy);
  dx.fill(SentinelFloat());
  Grads out{{}, std::vector<float>(C), std::vector<float>(C), std::vector<double>(C, 0.0), std::vector<double>(C, 0.0)};
  std::vector<double> part_dy(C), part_dy_xhat(C);
  std::size_t n0 = 0;
  for (std::size_t n : part_n) {
    const simdnorm_shape part = MakeShape(n, C, p.shape.spatial, p.shape.layout);
    const std::size_t at = n0 * per_image;
    EXPECT_EQ(SIMDNORM_SUCCESS, api.reduce(&part, p.x.data() + at, dy.data() + at, p.g(), p.b(), p.bm.data(),
                                           p.bi.data(), part_dy.data(), part_dy_xhat.data(), o.flags()))
        << simdnorm_last_error();
    for (std::size_t c = 0; c < C; ++c) {
      out.sum_dy[c] += part_dy[c];
      out.sum_dy_xhat[c] += part_dy_xhat[c];
    }
    n0 += n;
  }
  const double total = static_cast<double>(p.shape.n * p.shape.spatial);
  float* const dxp = o.inplace ? dy.data() : dx.data();
  n0 = 0;
  for (std::size_t n : part_n) {
    const simdnorm_shape part = MakeShape(n, C, p.shape.spatial, p.shape.layout);
    const std::size_t at = n0 * per_image;
    EXPECT_EQ(SIMDNORM_SUCCESS,
              api.apply(&part, p.x.data() + at, dy.data() + at, p.g(), p.b(), p.bm.data(), p.bi.data(),
                        out.sum_dy.data(), out.sum_dy_xhat.data(), total, dxp + at, o.flags()))
        << simdnorm_last_error();
    n0 += n;
  }
  out.dx.assign(dxp, dxp + p.count);
  for (std::size_t c = 0; c < C; ++c) {
    out.dg[c] = static_cast<float>(out.sum_dy_xhat[c]);
    out.db[c] = static_cast<float>(out.sum_dy[c]);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// One part: bit for bit the one call.

bool OnePartIsBitwise(const Problem& p, const Options& o) {
  const std::string context = "split phases vs simdnorm_backward, " + Describe(p, o, 1);
  const Grads one = RunOneCall(p, o), split = RunSplit(p, o, {p.shape.n});
  bool ok = ExpectSameBits(context, "dx", split.dx.data(), one.dx.data(), p.count, &p.shape);
  ok &= ExpectSameBits(context, "dgamma = (float)sum_dy_xhat", split.dg.data(), one.dg.data(), p.C, nullptr);
  ok &= ExpectSameBits(context, "dbeta = (float)sum_dy", split.db.data(), one.db.data(), p.C, nullptr);
  if (!o.inplace) {
    // Without dx the one call takes the partitions of a two-tensor pass, as the reduction does.
    const Grads sums = RunOneCall(p, o, false);
    ok &= ExpectSameBits(context + " (one call without dx)", "dgamma = (float)sum_dy_xhat", split.dg.data(),
                         sums.dg.data(), p.C, nullptr);
    ok &= ExpectSameBits(context + " (one call without dx)", "dbeta = (float)sum_dy", split.db.data(), sums.db.data(),
                         p.C, nullptr);
  }
  return ok;
}

bool OnePartEveryOption(const simdnorm_shape& shape, std::uint64_t seed) {
  Problem p(shape, seed, false, false, false);
  return EveryOption(shape, seed, [&](const Options& o, bool gamma_beta) {
    p.gamma_beta = gamma_beta;  // the saved statistics do not depend on gamma and beta
    return OnePartIsBitwise(p, o);
  });
}

void OnePartGrid(simdnorm_layout layout) { ForEachGridShape(layout, OnePartEveryOption); }

TEST_P(PhasesBackwardTest, OnePartIsBackwardBitwiseGridNCHW) { OnePartGrid(SIMDNORM_NCHW); }
TEST_P(PhasesBackwardTest, OnePartIsBackwardBitwiseGridNHWC) { OnePartGrid(SIMDNORM_NHWC); }

// As in test_phases_forward.cpp, for backward's partitions (1 MiB of L2): NCHW short channels in groups; long
// channels one at a time (2x3x40000); channels the team shares (1x3x400000); NHWC in one chunk; many chunks added in
// two halves (4x256x28x28); shares of whole channels for each thread out of place, rows in place (1x2048x7x7,
// 2x2100x37); N x C matrices (row walks in either layout); a single channel (run walks in either layout).
struct PartitionShape {
  std::size_t n, c, spatial;
  simdnorm_layout layout;
};
constexpr PartitionShape kPartitionShapes[] = {
    {1, 64, 49, SIMDNORM_NCHW},   {2, 3, 40000, SIMDNORM_NCHW},  {1, 3, 400000, SIMDNORM_NCHW},
    {2, 17, 9, SIMDNORM_NHWC},    {4, 256, 784, SIMDNORM_NHWC},  {1, 2048, 49, SIMDNORM_NHWC},
    {2, 2100, 37, SIMDNORM_NHWC}, {256, 1024, 1, SIMDNORM_NCHW}, {37, 70, 1, SIMDNORM_NHWC},
    {3, 1, 1000, SIMDNORM_NCHW},  {3, 1, 1000, SIMDNORM_NHWC}};

TEST_P(PhasesBackwardTest, OnePartIsBackwardBitwisePartitions) {
  simdnorm_set_num_threads(2);  // a team even on one core, so the shared partitions run as they do in production
  FailureBudget budget;
  std::uint64_t seed = 200;
  for (const PartitionShape& s : kPartitionShapes) {
    if (!budget.Record(OnePartEveryOption(MakeShape(s.n, s.c, s.spatial, s.layout), ++seed))) return;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Shards.

struct ShardShape {
  std::size_t n, c, spatial;
};
// N = 11 cut 7+4, 1+6+4, 3+1+2+4+1; N = 5 cut 1+4, 2+1+2, 1+1+1+1+1 (one value per channel and part at spatial 1).
// The last shape's channels are shared by the team as a whole (two tensors of over 1 MiB a channel), not as parts.
constexpr ShardShape kShardShapes[] = {{11, 17, 49}, {11, 1, 7},   {11, 70, 1},   {11, 3, 5000},
                                       {5, 17, 1},   {5, 130, 61}, {11, 48, 196}, {5, 3, 30000}};
std::vector<std::vector<std::size_t>> ShardSplits(std::size_t n) {
  if (n == 11) return {{7, 4}, {1, 6, 4}, {3, 1, 2, 4, 1}};
  return {{1, 4}, {2, 1, 2}, {1, 1, 1, 1, 1}};
}

// BackwardBounds against the reference (its one call for dx, its reduction over the whole batch for the sums);
// against the fast one call, itself within them of the reference, twice as much.
bool ShardsAgree(const Problem& p, const Options& o) {
  const std::size_t C = p.C;
  Grads ref{std::vector<float>(p.count), std::vector<float>(C), std::vector<float>(C), std::vector<double>(C),
            std::vector<double>(C)};
  EXPECT_EQ(SIMDNORM_SUCCESS,
            simdnorm_reference_backward(&p.shape, p.x.data(), p.dy.data(), p.g(), p.b(), p.bm.data(), p.bi.data(),
                                        ref.dx.data(), ref.dg.data(), ref.db.data(), o.flags()));
  EXPECT_EQ(SIMDNORM_SUCCESS,
            simdnorm_reference_backward_reduce(&p.shape, p.x.data(), p.dy.data(), p.g(), p.b(), p.bm.data(),
                                               p.bi.data(), ref.sum_dy.data(), ref.sum_dy_xhat.data(), o.flags()));
  const Grads one = RunOneCall(p, o);
  // The mask is the reference forward's: the data keep every |bn(x)| >= 1e-3, far beyond any rounding.
  std::vector<float> y(p.count), dy_masked(p.dy);
  EXPECT_EQ(SIMDNORM_SUCCESS,
            simdnorm_reference_normalize(&p.shape, p.x.data(), y.data(), p.g(), p.b(), p.bm.data(), p.bi.data(), 0));
  for (std::size_t i = 0; i < p.count; ++i) {
    if (o.relu && !(y[i] > 0.0f)) dy_masked[i] = 0.0f;
  }
  const BackwardBounds bounds(p.shape, p.x.data(), dy_masked.data(), p.g(), p.bm.data(), p.bi.data());
  std::vector<double> dx_tol(p.count);
  for (std::size_t i = 0; i < p.count; ++i) {
    const std::size_t c = ChannelOf(p.shape, i);
    dx_tol[i] = bounds.dx(i, ref.db[c], ref.dg[c]);
  }
  bool ok = true;
  for (const std::vector<std::size_t>& parts : ShardSplits(p.shape.n)) {
    const std::string context = "shards vs simdnorm_backward, " + Describe(p, o, parts.size());
    const Grads split = RunSplit(p, o, parts), ref_split = RunSplit(p, o, parts, kReference);
    for (int round = 0; round < 3; ++round) {
      const double factor = round == 1 ? 2.0 : 1.0;
      const Grads& got = round == 2 ? ref_split : split;
      const Grads& want = round == 1 ? one : ref;
      const char* what[] = {" (against the reference)", " (against the one call)", " (reference split vs one call)"};
      const std::string ctx = context + what[round];
      ok &= ExpectNear(ctx, "dx", got.dx.data(), want.dx.data(), p.count, &p.shape,
                       [&](std::size_t i) { return factor * dx_tol[i]; });
      ok &= ExpectNear(ctx, "dgamma", got.dg.data(), want.dg.data(), C, nullptr,
                       [&](std::size_t c) { return factor * bounds.dgamma(c); });
      ok &= ExpectNear(ctx, "dbeta", got.db.data(), want.db.data(), C, nullptr,
                       [&](std::size_t c) { return factor * bounds.dbeta(c); });
      if (round == 1) continue;
      ok &= ExpectNearDoubles(ctx, "sum_dy", got.sum_dy.data(), ref.sum_dy.data(), C,
                              [&](std::size_t c) { return bounds.dbeta(c); });
      ok &= ExpectNearDoubles(ctx, "sum_dy_xhat", got.sum_dy_xhat.data(), ref.sum_dy_xhat.data(), C,
                              [&](std::size_t c) { return bounds.dgamma(c); });
    }
    if (!ok) break;
  }
  return ok;
}

TEST_P(PhasesBackwardTest, ShardsAgreeWithBackward) {
  FailureBudget budget;
  std::uint64_t index = 0;
  for (const ShardShape& s : kShardShapes) {
    for (simdnorm_layout layout : kLayouts) {
      const CaseOptions r = RotateOptions(++index);
      Options o;
      o.inplace = r.inplace;
      o.relu = r.relu;
      o.misalign = r.misalign;
      const Problem p(MakeShape(s.n, s.c, s.spatial, layout), index, r.gamma_beta, r.relu);
      if (!budget.Record(ShardsAgree(p, o))) return;
    }
  }
}

}  // namespace
}  // namespace simdnorm_test
