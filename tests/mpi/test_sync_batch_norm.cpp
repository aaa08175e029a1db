// simdnorm::mpi under `mpirun -np k` (ctest mpi_sync_batch_norm_np{1,2,3,4}). Every rank builds the whole batch from
// a common seed, runs its slice through simdnorm_mpi_forward_training and simdnorm_mpi_backward, and checks:
//   - its outputs against simdnorm_forward_training / simdnorm_backward over the whole batch (twice the checkers'
//     tolerances, as the shard tests of the split phases) and against the reference (once);
//   - bit for bit the one call when a single rank holds values (with one rank, always);
//   - statistics, running statistics, dgamma and dbeta bitwise the same on every rank, and two runs bitwise the same;
//   - bad input on one rank, or arguments that differ between ranks: every rank returns the same failure, names the
//     rank and the argument, and writes nothing; nothing hangs (ctest's TIMEOUT would end the test).
// GoogleTest runs on every rank; the tests keep every rank in step (EXPECT only, never an early return between
// collectives). Rank 0 prints the usual report, the others their failures; the exit code is agreed by all ranks.
#include <simdnorm/simdnorm_mpi.h>

#include <cstdio>
#include <cstdlib>
#include <sstream>

#include "../checkers.hpp"

namespace simdnorm_test {
namespace {

constexpr float kEps = 1e-5f;
constexpr float kMomentum = 0.1f;

int Rank() {
  int r = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &r);
  return r;
}
int Ranks() {
  int s = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &s);
  return s;
}

// Images per rank, including ranks with none and with one. Every split has at least two images in all.
std::vector<std::vector<std::size_t>> Splits(int ranks) {
  switch (ranks) {
    case 1:
      return {{4}, {1}};
    case 2:
      return {{3, 0}, {1, 4}, {0, 2}, {1, 1}};
    case 3:
      return {{2, 0, 1}, {0, 3, 0}, {1, 1, 1}, {0, 1, 4}};
    case 4:
      return {{1, 0, 3, 2}, {0, 0, 0, 2}, {1, 1, 0, 1}, {2, 1, 1, 1}};
    default: {
      std::vector<std::size_t> split;
      for (int r = 0; r < ranks; ++r) split.push_back(static_cast<std::size_t>(r % 3));
      return {split};
    }
  }
}

// Every rank's copy of v equals rank 0's, bit for bit.
bool SameOnEveryRank(const std::string& context, const char* what, const float* v, std::size_t count) {
  std::vector<float> all(count * static_cast<std::size_t>(Ranks()));
  MPI_Allgather(v, static_cast<int>(count), MPI_FLOAT, all.data(), static_cast<int>(count), MPI_FLOAT, MPI_COMM_WORLD);
  bool ok = true;
  for (int r = 1; r < Ranks(); ++r) {
    ok &= ExpectSameBits(context + " (rank " + std::to_string(r) + " against rank 0)", what,
                         all.data() + static_cast<std::size_t>(r) * count, all.data(), count, nullptr);
  }
  return ok;
}

// True on every rank when `ok` is true on every rank.
bool EveryRank(bool ok) {
  int mine = ok ? 1 : 0, all = 0;
  MPI_Allreduce(&mine, &all, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
  return all == 1;
}

// ExpectSameBits for a rank's slice, which is empty (and its data() may be NULL) on a rank with n = 0.
bool SameSliceBits(const std::string& context, const char* what, const float* got, const float* want, std::size_t count,
                   const simdnorm_shape* tensor) {
  return count == 0 || ExpectSameBits(context, what, got, want, count, tensor);
}

bool AllSentinel(const std::vector<float>& v) {
  for (float f : v) {
    if (FloatBits(f) != FloatBits(SentinelFloat())) return false;
  }
  return true;
}

// ---------------------------------------------------------------------------------------------------------------
// One problem: the whole batch (the ranks' slices concatenated along n), the same on every rank.

struct Problem {
  simdnorm_shape whole;
  std::vector<std::size_t> split;
  std::size_t n0 = 0;  // this rank's first image
  CaseOptions o;
  std::vector<float> x, dy, gamma, beta, rm0, rv0;

  Problem(std::size_t c, std::size_t spatial, simdnorm_layout layout, const std::vector<std::size_t>& parts,
          std::uint64_t index)
      : split(parts), o(RotateOptions(index)) {
    std::size_t n = 0;
    for (int r = 0; r < static_cast<int>(parts.size()); ++r) {
      if (r == Rank()) n0 = n;
      n += parts[static_cast<std::size_t>(r)];
    }
    whole = MakeShape(n, c, spatial, layout);
    Rng rng(MixSeed({index, n, c, spatial, static_cast<std::uint64_t>(layout), 0x5b7c}));
    x.resize(Elements(whole));
    FillInput(rng, whole, InputDistribution{}, x.data());
    for (std::size_t j = 0; j < c; ++j) {
      gamma.push_back(static_cast<float>(rng.signed_uniform(0.5, 2.0)));
      beta.push_back(static_cast<float>(rng.uniform(-1.0, 1.0)));
      rm0.push_back(static_cast<float>(rng.uniform(-1.0, 1.0)));
      rv0.push_back(static_cast<float>(rng.uniform(0.5, 2.0)));
    }
    // A ReLU mask must be the same for the reference and the kernels: every |bn(x)| at least 1e-3.
    if (o.relu) {
      EXPECT_TRUE(SeparateFromReluKink(rng, whole, x.data(), g(), o.gamma_beta ? beta.data() : nullptr, kEps, 1e-3));
    }
    dy.resize(x.size());
    for (float& v : dy) v = static_cast<float>(rng.normal());
  }
  std::size_t C() const { return whole.c; }
  std::size_t n() const { return split[static_cast<std::size_t>(Rank())]; }
  simdnorm_shape mine() const { return MakeShape(n(), whole.c, whole.spatial, whole.layout); }
  std::size_t offset() const { return n0 * whole.c * whole.spatial; }
  std::size_t count() const { return n() * whole.c * whole.spatial; }
  unsigned flags() const { return o.relu ? SIMDNORM_FUSE_RELU : 0u; }
  const float* g() const { return o.gamma_beta ? gamma.data() : nullptr; }
  const float* b() const { return o.gamma_beta ? beta.data() : nullptr; }
  // Bitwise the one call when one part holds every value.
  bool one_part() const {
    int parts = 0;
    for (std::size_t images : split) parts += images > 0 ? 1 : 0;
    return parts == 1;
  }
  std::string Describe() const {
    std::ostringstream os;
    os << ShapeString(whole) << " split";
    for (std::size_t images : split) os << " " << images;
    os << (o.inplace ? " inplace" : "") << (o.relu ? " relu" : "") << (o.gamma_beta ? " gamma_beta" : "")
       << (o.running ? " running" : "") << " on rank " << Rank() << " of " << Ranks() << ", isa " << CurrentIsa();
    return os.str();
  }
};

// Forward outputs: y (this rank's slice, or the whole batch), batch and running statistics.
struct Forward {
  std::vector<float> y, bm, bi, rm, rv;
  simdnorm_status status = SIMDNORM_SUCCESS;
};

// This rank's slice through simdnorm_mpi_forward_training; with n = 0 the tensors are NULL. `stats` false passes
// NULL for batch_mean and batch_invstd.
Forward RunForward(const Problem& p, bool stats) {
  Forward f{std::vector<float>(p.x.begin() + p.offset(), p.x.begin() + p.offset() + p.count()),
            std::vector<float>(p.C(), SentinelFloat()), std::vector<float>(p.C(), SentinelFloat()), p.rm0, p.rv0};
  std::vector<float> x = f.y;
  const simdnorm_shape shape = p.mine();
  const float* xp = p.n() == 0 ? nullptr : p.o.inplace ? f.y.data() : x.data();
  float* yp = p.n() == 0 ? nullptr : f.y.data();
  f.status = simdnorm_mpi_forward_training(
      MPI_COMM_WORLD, &shape, xp, yp, p.g(), p.b(), kEps, stats ? f.bm.data() : nullptr, stats ? f.bi.data() : nullptr,
      p.o.running ? f.rm.data() : nullptr, p.o.running ? f.rv.data() : nullptr, kMomentum, p.flags());
  EXPECT_EQ(f.status, SIMDNORM_SUCCESS) << p.Describe() << ": " << simdnorm_mpi_last_error();
  return f;
}

Forward WholeForward(const Problem& p, decltype(&simdnorm_forward_training) fn) {
  Forward f{std::vector<float>(p.x.size()), std::vector<float>(p.C()), std::vector<float>(p.C()), p.rm0, p.rv0};
  EXPECT_EQ(SIMDNORM_SUCCESS,
            fn(&p.whole, p.x.data(), f.y.data(), p.g(), p.b(), kEps, f.bm.data(), f.bi.data(),
               p.o.running ? f.rm.data() : nullptr, p.o.running ? f.rv.data() : nullptr, kMomentum, p.flags()));
  return f;
}

bool ForwardAgrees(const Problem& p, const Forward& got) {
  const std::size_t C = p.C();
  const double m = static_cast<double>(p.whole.n * p.whole.spatial);
  const Forward ref = WholeForward(p, simdnorm_reference_forward_training);
  const Forward one = WholeForward(p, simdnorm_forward_training);
  std::vector<double> mean, var;
  ChannelStats(p.whole, p.x.data(), mean, var);
  const double invstd_rel = kReductionUlps * FLT_EPSILON;
  auto mean_tol = [&](std::size_t c) { return MeanTolerance(mean[c], var[c]); };
  const simdnorm_shape shape = p.mine();
  bool ok = true;
  for (int round = 0; round < 2; ++round) {  // against the reference, then against the one call with twice the bounds
    const double factor = round == 0 ? 1.0 : 2.0;
    const Forward& want = round == 0 ? ref : one;
    const std::string ctx = p.Describe() + (round == 0 ? " (against the reference)" : " (against the one call)");
    ok &= ExpectNear(ctx, "y", got.y.data(), want.y.data() + p.offset(), p.count(), &shape, [&](std::size_t i) {
      const std::size_t c = ChannelOf(shape, i);
      return factor * TrainingOutputTolerance(p.x[p.offset() + i], p.g() ? p.gamma[c] : 1.0, p.b() ? p.beta[c] : 0.0,
                                              ref.bm[c], ref.bi[c], mean_tol(c), invstd_rel);
    });
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
  if (p.one_part()) {
    const std::string ctx = p.Describe() + " (one part: bit for bit the one call)";
    ok &= SameSliceBits(ctx, "y", got.y.data(), one.y.data() + p.offset(), p.count(), &shape);
    ok &= ExpectSameBits(ctx, "batch_mean", got.bm.data(), one.bm.data(), C, nullptr);
    ok &= ExpectSameBits(ctx, "batch_invstd", got.bi.data(), one.bi.data(), C, nullptr);
    ok &= ExpectSameBits(ctx, "running_mean", got.rm.data(), one.rm.data(), C, nullptr);
    ok &= ExpectSameBits(ctx, "running_var", got.rv.data(), one.rv.data(), C, nullptr);
  }
  return ok;
}

// Backward outputs: dx (this rank's slice, or the whole batch), dgamma, dbeta.
struct Backward {
  std::vector<float> dx, dg, db;
};

Backward RunBackward(const Problem& p, const Forward& fwd) {
  Backward b{std::vector<float>(p.dy.begin() + p.offset(), p.dy.begin() + p.offset() + p.count()),
             std::vector<float>(p.C(), SentinelFloat()), std::vector<float>(p.C(), SentinelFloat())};
  const std::vector<float> dy = b.dx;
  const simdnorm_shape shape = p.mine();
  const bool none = p.n() == 0;
  const float* dyp = none ? nullptr : p.o.inplace ? b.dx.data() : dy.data();
  const simdnorm_status status = simdnorm_mpi_backward(
      MPI_COMM_WORLD, &shape, none ? nullptr : p.x.data() + p.offset(), dyp, p.g(), p.b(), fwd.bm.data(), fwd.bi.data(),
      none ? nullptr : b.dx.data(), b.dg.data(), b.db.data(), p.flags());
  EXPECT_EQ(status, SIMDNORM_SUCCESS) << p.Describe() << ": " << simdnorm_mpi_last_error();
  return b;
}

Backward WholeBackward(const Problem& p, const Forward& fwd, decltype(&simdnorm_backward) fn) {
  Backward b{std::vector<float>(p.x.size()), std::vector<float>(p.C()), std::vector<float>(p.C())};
  EXPECT_EQ(SIMDNORM_SUCCESS, fn(&p.whole, p.x.data(), p.dy.data(), p.g(), p.b(), fwd.bm.data(), fwd.bi.data(),
                                 b.dx.data(), b.dg.data(), b.db.data(), p.flags()));
  return b;
}

// Both differentiate the forward pass the ranks ran: the statistics simdnorm_mpi_forward_training wrote.
bool BackwardAgrees(const Problem& p, const Forward& fwd, const Backward& got) {
  const std::size_t C = p.C();
  const Backward ref = WholeBackward(p, fwd, simdnorm_reference_backward);
  const Backward one = WholeBackward(p, fwd, simdnorm_backward);
  std::vector<float> y(p.x.size()), dy_masked(p.dy);
  EXPECT_EQ(SIMDNORM_SUCCESS, simdnorm_reference_normalize(&p.whole, p.x.data(), y.data(), p.g(), p.b(), fwd.bm.data(),
                                                           fwd.bi.data(), 0));
  for (std::size_t i = 0; i < y.size(); ++i) {
    if (p.o.relu && !(y[i] > 0.0f)) dy_masked[i] = 0.0f;
  }
  const BackwardBounds bounds(p.whole, p.x.data(), dy_masked.data(), p.g(), fwd.bm.data(), fwd.bi.data());
  const simdnorm_shape shape = p.mine();
  bool ok = true;
  for (int round = 0; round < 2; ++round) {
    const double factor = round == 0 ? 1.0 : 2.0;
    const Backward& want = round == 0 ? ref : one;
    const std::string ctx = p.Describe() + (round == 0 ? " (against the reference)" : " (against the one call)");
    ok &= ExpectNear(ctx, "dx", got.dx.data(), want.dx.data() + p.offset(), p.count(), &shape, [&](std::size_t i) {
      const std::size_t c = ChannelOf(shape, i);
      return factor * bounds.dx(p.offset() + i, ref.db[c], ref.dg[c]);
    });
    ok &= ExpectNear(ctx, "dgamma", got.dg.data(), want.dg.data(), C, nullptr,
                     [&](std::size_t c) { return factor * bounds.dgamma(c); });
    ok &= ExpectNear(ctx, "dbeta", got.db.data(), want.db.data(), C, nullptr,
                     [&](std::size_t c) { return factor * bounds.dbeta(c); });
  }
  if (p.one_part()) {
    const std::string ctx = p.Describe() + " (one part: bit for bit the one call)";
    ok &= SameSliceBits(ctx, "dx", got.dx.data(), one.dx.data() + p.offset(), p.count(), &shape);
    ok &= ExpectSameBits(ctx, "dgamma", got.dg.data(), one.dg.data(), C, nullptr);
    ok &= ExpectSameBits(ctx, "dbeta", got.db.data(), one.db.data(), C, nullptr);
  }
  return ok;
}

// Forward (twice: with the case's choice of batch statistics, then with them), backward (twice), every check.
bool CaseAgrees(const Problem& p) {
  const std::string ctx = p.Describe();
  const Forward first = RunForward(p, p.o.batch_stats), fwd = RunForward(p, true);
  bool ok = ForwardAgrees(p, fwd);
  ok &= SameSliceBits(ctx + " (two runs)", "y", first.y.data(), fwd.y.data(), p.count(), nullptr);
  ok &= ExpectSameBits(ctx + " (two runs)", "running_mean", first.rm.data(), fwd.rm.data(), p.C(), nullptr);
  ok &= ExpectSameBits(ctx + " (two runs)", "running_var", first.rv.data(), fwd.rv.data(), p.C(), nullptr);
  if (p.o.batch_stats) {
    ok &= ExpectSameBits(ctx + " (two runs)", "batch_mean", first.bm.data(), fwd.bm.data(), p.C(), nullptr);
    ok &= ExpectSameBits(ctx + " (two runs)", "batch_invstd", first.bi.data(), fwd.bi.data(), p.C(), nullptr);
  } else {
    EXPECT_TRUE(AllSentinel(first.bm) && AllSentinel(first.bi)) << ctx;
  }
  for (const std::vector<float>* v : {&fwd.bm, &fwd.bi, &fwd.rm, &fwd.rv}) {
    ok &= SameOnEveryRank(ctx, "statistics", v->data(), p.C());
  }
  const Backward bwd = RunBackward(p, fwd), again = RunBackward(p, fwd);
  ok &= BackwardAgrees(p, fwd, bwd);
  ok &= SameSliceBits(ctx + " (two runs)", "dx", again.dx.data(), bwd.dx.data(), p.count(), nullptr);
  ok &= ExpectSameBits(ctx + " (two runs)", "dgamma", again.dg.data(), bwd.dg.data(), p.C(), nullptr);
  ok &= ExpectSameBits(ctx + " (two runs)", "dbeta", again.db.data(), bwd.db.data(), p.C(), nullptr);
  ok &= SameOnEveryRank(ctx, "dgamma", bwd.dg.data(), p.C());
  ok &= SameOnEveryRank(ctx, "dbeta", bwd.db.data(), p.C());
  return ok;
}

struct ShapeCase {
  std::size_t c, spatial;
};
// Odd channel counts and short planes, an N x C matrix (spatial 1), long channels, a wide row.
constexpr ShapeCase kShapes[] = {{17, 49}, {64, 1}, {3, 3000}, {130, 7}};

TEST(SyncBatchNorm, AgreesWithOneProcessOverTheWholeBatch) {
  std::uint64_t index = 0;
  int failures = 0;
  for (const ShapeCase& s : kShapes) {
    for (simdnorm_layout layout : {SIMDNORM_NCHW, SIMDNORM_NHWC}) {
      for (const std::vector<std::size_t>& split : Splits(Ranks())) {
        std::size_t images = 0;
        for (std::size_t k : split) images += k;
        if (images * s.spatial < 2) continue;  // training needs two values a channel (tested below)
        // Ranks decide together whether to go on, so that their collectives stay in step.
        if (!EveryRank(CaseAgrees(Problem(s.c, s.spatial, layout, split, ++index))) && ++failures >= 3) return;
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Refusals. Every rank passes its own arguments; all must return `want` with a message containing each of `parts`,
// and write nothing.

constexpr std::size_t kC = 8, kSpatial = 5, kN = 2;

// One call's arguments on this rank, valid until spoiled; outputs start as sentinels. Backward reads x and dy and
// writes dx over y.
struct Call {
  simdnorm_shape shape = MakeShape(kN, kC, kSpatial, SIMDNORM_NCHW);
  std::vector<float> x, dy, y, gamma, beta, bm, bi, rm, rv, dg, db;
  const float *xp = nullptr, *dyp = nullptr, *gp = nullptr, *bp = nullptr;
  float *yp = nullptr, *rmp = nullptr, *rvp = nullptr;
  float eps = kEps;
  unsigned flags = 0;
  bool backward = false;

  explicit Call(bool backward_call = false, std::size_t c = kC, std::size_t spatial = kSpatial)
      : backward(backward_call) {
    shape.c = c;
    shape.spatial = spatial;
    x.assign(Elements(shape), 1.5f);
    for (std::size_t i = 0; i < x.size(); i += 2) x[i] = -0.5f;
    dy.assign(x.size(), 0.25f);
    y.assign(x.size(), SentinelFloat());
    gamma.assign(c, 1.0f);
    beta.assign(c, 0.0f);
    bm.assign(c, 0.5f);
    bi.assign(c, 1.0f);
    for (std::vector<float>* v : {&rm, &rv, &dg, &db}) v->assign(c, SentinelFloat());
    xp = x.data();
    dyp = dy.data();
    yp = y.data();
    gp = gamma.data();
    bp = beta.data();
    rmp = rm.data();
    rvp = rv.data();
  }
  simdnorm_status Run() {
    if (backward) {
      return simdnorm_mpi_backward(MPI_COMM_WORLD, &shape, xp, dyp, gp, bp, bm.data(), bi.data(), yp, dg.data(),
                                   db.data(), flags);
    }
    return simdnorm_mpi_forward_training(MPI_COMM_WORLD, &shape, xp, yp, gp, bp, eps, nullptr, nullptr, rmp, rvp,
                                         kMomentum, flags);
  }
  // Running statistics start as sentinels too: a forward call that succeeded would have updated them.
  bool NothingWritten() const {
    return AllSentinel(y) && AllSentinel(rm) && AllSentinel(rv) && AllSentinel(dg) && AllSentinel(db);
  }
};

void ExpectRefused(Call& call, simdnorm_status want, std::initializer_list<std::string> parts,
                   const std::string& what) {
  const simdnorm_status got = call.Run();
  const std::string message = simdnorm_mpi_last_error();
  EXPECT_EQ(got, want) << what << " on rank " << Rank() << ": " << message;
  for (const std::string& part : parts) {
    EXPECT_NE(message.find(part), std::string::npos)
        << what << " on rank " << Rank() << ": \"" << message << "\" does not say \"" << part << "\"";
  }
  EXPECT_TRUE(call.NothingWritten()) << what << " on rank " << Rank() << ": an output was written";
}

std::string RankOf(int r) { return "rank " + std::to_string(r) + " of " + std::to_string(Ranks()); }

// A change of one rank's arguments, the functions it applies to, and what the message must say.
struct Spoil {
  const char* what;
  bool forward, backward;
  void (*apply)(Call&);
  const char* says;
};

TEST(SyncBatchNorm, InvalidArgumentOnOneRankFailsEveryRank) {
  const Spoil spoils[] = {
      {"x NULL", true, true, [](Call& c) { c.xp = nullptr; }, "x is NULL"},
      {"y NULL", true, false, [](Call& c) { c.yp = nullptr; }, "y is NULL"},
      {"dy NULL", false, true, [](Call& c) { c.dyp = nullptr; }, "dy is NULL"},
      {"dx overlapping x", false, true, [](Call& c) { c.yp = c.x.data() + 1; }, "dx overlaps x"},
      {"y overlapping x", true, false, [](Call& c) { c.yp = c.x.data() + 1; }, "y overlaps x"},
      {"eps 0", true, false, [](Call& c) { c.eps = 0.0f; }, "eps (0) must be finite and > 0"},
      {"unknown flag", true, true, [](Call& c) { c.flags = 0x10u; }, "flags 0x10 has unknown bits"},
      {"running_var NULL alone", true, false, [](Call& c) { c.rvp = nullptr; }, "running_mean and running_var"},
      {"running_var over running_mean", true, false, [](Call& c) { c.rvp = c.rm.data() + 1; }, "overlaps"},
      {"shape->c 0", true, true, [](Call& c) { c.shape.c = 0; }, "shape->c is 0"},
  };
  // The first rank fails, then the last: the message names the lowest failing rank.
  for (int bad : {Ranks() - 1, 0}) {
    for (const Spoil& spoil : spoils) {
      for (bool backward : {false, true}) {
        if (!(backward ? spoil.backward : spoil.forward)) continue;
        Call call(backward);
        if (Rank() >= bad) spoil.apply(call);
        ExpectRefused(call, SIMDNORM_INVALID_ARGUMENT, {RankOf(bad), spoil.says},
                      std::string(spoil.what) + (backward ? " (backward)" : " (forward)"));
      }
    }
  }
}

TEST(SyncBatchNorm, ArgumentsThatDifferBetweenRanksFailEveryRank) {
  if (Ranks() < 2) GTEST_SKIP() << "needs two ranks";
  const int odd = Ranks() - 1;
  const std::string on_odd = "on rank " + std::to_string(odd);
  for (bool backward : {false, true}) {
    Call call(backward, Rank() == odd ? kC + 1 : kC);
    ExpectRefused(call, SIMDNORM_INVALID_ARGUMENT, {"c differs between ranks: 8 on rank 0, 9 " + on_odd}, "c");
    Call wider(backward, kC, Rank() == odd ? kSpatial + 1 : kSpatial);
    ExpectRefused(wider, SIMDNORM_INVALID_ARGUMENT, {"spatial differs between ranks: 5 on rank 0, 6 " + on_odd},
                  "spatial");
  }
  const Spoil changes[] = {
      {"layout", true, true, [](Call& c) { c.shape.layout = SIMDNORM_NHWC; }, "layout differs"},
      {"flags", true, true, [](Call& c) { c.flags = SIMDNORM_FUSE_RELU; }, "flags differs"},
      {"eps", true, false, [](Call& c) { c.eps = 2e-5f; }, "eps differs"},
      {"gamma NULL", true, true, [](Call& c) { c.gp = nullptr; }, "the choice of NULL differs"},
      {"running statistics NULL", true, false, [](Call& c) { c.rmp = c.rvp = nullptr; }, "the choice of NULL"},
      {"the other function", true, true, [](Call& c) { c.backward = !c.backward; }, "the function differs"},
  };
  for (const Spoil& change : changes) {
    for (bool backward : {false, true}) {
      if (!(backward ? change.backward : change.forward)) continue;
      Call call(backward);
      if (Rank() == odd) change.apply(call);
      ExpectRefused(call, SIMDNORM_INVALID_ARGUMENT, {change.says, on_odd},
                    std::string(change.what) + (backward ? " (backward)" : " (forward)"));
    }
  }
}

TEST(SyncBatchNorm, FewerThanTwoValuesInAllFailsEveryRank) {
  for (bool backward : {false, true}) {
    for (std::size_t first : {0, 1}) {
      Call call(backward, kC, 1);
      call.shape.n = Rank() == 0 ? first : 0;
      ExpectRefused(call, SIMDNORM_INVALID_ARGUMENT, {"summed over the ranks = " + std::to_string(first)},
                    "fewer than two values");
    }
  }
}

// A NaN in one rank's slice makes that channel's statistics non-finite on every rank: every rank returns
// SIMDNORM_NON_FINITE naming the channel, writes y and the batch statistics, and keeps that channel's running
// statistics while updating the others -- the same on every rank.
TEST(SyncBatchNorm, NonFiniteOnOneRankIsReportedByEveryRank) {
  const simdnorm_shape shape = MakeShape(kN, kC, kSpatial, SIMDNORM_NHWC);
  std::vector<float> x(Elements(shape)), y(x.size(), SentinelFloat()), bm(kC, SentinelFloat()), bi(bm);
  std::vector<float> rm(kC, 0.25f), rv(kC, 2.0f);
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>((i * 7 + static_cast<std::size_t>(Rank())) % 5);
  if (Rank() == Ranks() - 1) x[Offset(shape, 1, 3, 2)] = std::nanf("");
  EXPECT_EQ(SIMDNORM_NON_FINITE,
            simdnorm_mpi_forward_training(MPI_COMM_WORLD, &shape, x.data(), y.data(), nullptr, nullptr, kEps, bm.data(),
                                          bi.data(), rm.data(), rv.data(), kMomentum, 0));
  EXPECT_NE(std::string(simdnorm_mpi_last_error()).find("channel 3"), std::string::npos) << simdnorm_mpi_last_error();
  EXPECT_FALSE(AllSentinel(y));
  EXPECT_TRUE(std::isnan(bm[3]));
  for (std::size_t c = 0; c < kC; ++c) {
    EXPECT_EQ(c == 3, rm[c] == 0.25f && rv[c] == 2.0f) << "channel " << c;
  }
  for (const std::vector<float>* v : {&bm, &rm, &rv}) SameOnEveryRank("non-finite", "statistics", v->data(), kC);
}

// A scratch allocation that fails on one rank (a huge c, with n = 0) fails every rank with OUT_OF_MEMORY, before any
// data moves. Skipped where the allocation would succeed.
TEST(SyncBatchNorm, ScratchAllocationFailureOnOneRankFailsEveryRank) {
  const std::size_t huge = (std::size_t{1} << 30) - 2;  // the most channels one MPI message carries
  const std::size_t doubles = 4 * static_cast<std::size_t>(Ranks()) * huge;  // less than the scratch
  void* probe = Rank() == 0 ? std::malloc(doubles * sizeof(double)) : nullptr;
  int fails = Rank() == 0 && probe == nullptr ? 1 : 0;
  std::free(probe);
  MPI_Bcast(&fails, 1, MPI_INT, 0, MPI_COMM_WORLD);
  if (!fails) GTEST_SKIP() << "this machine lends " << doubles * sizeof(double) << " bytes";
  for (bool backward : {false, true}) {
    Call call(backward);
    call.gp = call.bp = nullptr;
    call.rmp = call.rvp = nullptr;
    if (Rank() == 0) {  // no values, no tensors and no per-channel arrays: nothing else needs c floats
      call.shape.c = huge;
      call.shape.n = 0;
      call.xp = call.dyp = nullptr;
      call.yp = nullptr;
    }
    ExpectRefused(call, SIMDNORM_OUT_OF_MEMORY, {RankOf(0), "scratch"}, "huge c");
  }
}

TEST(SyncBatchNorm, NullCommunicatorIsRefusedLocally) {
  const simdnorm_shape shape = MakeShape(kN, kC, kSpatial, SIMDNORM_NCHW);
  std::vector<float> x(kN * kC * kSpatial, 1.0f);
  EXPECT_EQ(SIMDNORM_INVALID_ARGUMENT,
            simdnorm_mpi_forward_training(MPI_COMM_NULL, &shape, x.data(), x.data(), nullptr, nullptr, kEps, nullptr,
                                          nullptr, nullptr, nullptr, kMomentum, 0));
  EXPECT_NE(std::string(simdnorm_mpi_last_error()).find("MPI_COMM_NULL"), std::string::npos);
}

// Two communicators at once (even and odd ranks), each freed afterwards with its private duplicate; the statistics
// are those of each group's batch and the same on the group's ranks.
TEST(SyncBatchNorm, SubCommunicators) {
  MPI_Comm group;
  MPI_Comm_split(MPI_COMM_WORLD, Rank() % 2, Rank(), &group);
  int size = 0;
  MPI_Comm_size(group, &size);
  for (int round = 0; round < 2; ++round) {
    const simdnorm_shape shape = MakeShape(2, kC, kSpatial, SIMDNORM_NHWC);
    std::vector<float> x(Elements(shape)), bm(kC), bi(kC), all_bm(kC * static_cast<std::size_t>(size));
    for (std::size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(i % 7) + static_cast<float>(Rank() % 2);
    EXPECT_EQ(SIMDNORM_SUCCESS, simdnorm_mpi_forward_training(group, &shape, x.data(), x.data(), nullptr, nullptr, kEps,
                                                              bm.data(), bi.data(), nullptr, nullptr, kMomentum, 0))
        << simdnorm_mpi_last_error();
    MPI_Allgather(bm.data(), static_cast<int>(kC), MPI_FLOAT, all_bm.data(), static_cast<int>(kC), MPI_FLOAT, group);
    for (int r = 1; r < size; ++r) {
      ExpectSameBits("sub-communicator", "batch_mean", all_bm.data() + static_cast<std::size_t>(r) * kC, all_bm.data(),
                     kC, nullptr);
    }
  }
  MPI_Comm_free(&group);
}

// Non-root ranks print only their failures, tagged with the rank.
class RankFailurePrinter : public ::testing::EmptyTestEventListener {
  void OnTestPartResult(const ::testing::TestPartResult& result) override {
    if (!result.failed()) return;
    std::printf("[rank %d] %s:%d: Failure\n%s\n", Rank(), result.file_name() ? result.file_name() : "?",
                result.line_number(), result.message());
    std::fflush(stdout);
  }
};

}  // namespace
}  // namespace simdnorm_test

// Under SIMDNORM_SANITIZE the allocation test asks for an impossible size and must get NULL back, not an abort.
extern "C" const char* __asan_default_options() { return "allocator_may_return_null=1"; }

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  ::testing::InitGoogleTest(&argc, argv);
  const int rank = simdnorm_test::Rank(), ranks = simdnorm_test::Ranks();
  if (rank != 0) {
    ::testing::TestEventListeners& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
    listeners.Append(new simdnorm_test::RankFailurePrinter);
  }
  const int mine = RUN_ALL_TESTS() != 0 ? 1 : 0;
  int failed = 0;
  MPI_Allreduce(&mine, &failed, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
  if (rank == 0) {
    std::printf("simdnorm_mpi_tests: %d rank%s, isa %s: %s\n", ranks, ranks == 1 ? "" : "s", simdnorm_isa(),
                failed == 0 ? "all passed" : "FAILED");
    if (failed != 0) std::printf("simdnorm_mpi_tests: failures on %d of %d ranks\n", failed, ranks);
  }
  MPI_Finalize();
  return failed == 0 ? 0 : 1;
}
