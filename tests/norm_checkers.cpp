#include "norm_checkers.hpp"

#include <algorithm>
#include <sstream>

namespace simdnorm_test {

const char* NormName(NormKind kind) {
  switch (kind) {
    case NormKind::kLayer:
      return "LayerNorm";
    case NormKind::kRms:
      return "RMSNorm";
    case NormKind::kGroup:
      return "GroupNorm";
  }
  return "norm?";
}

std::string NormGeometry::Describe() const {
  std::ostringstream os;
  if (kind == NormKind::kGroup) {
    os << "GroupNorm " << ShapeString(shape()) << " groups=" << groups;
  } else {
    os << NormName(kind) << " rows=" << n << " cols=" << c;
  }
  return os.str();
}

std::string NormGeometry::Coord(std::size_t i) const {
  if (kind == NormKind::kGroup) return CoordString(shape(), i) + " group " + std::to_string(stat(i) % groups);
  return "(row " + std::to_string(i / c) + ", col " + std::to_string(i % c) + ")";
}

simdnorm_status NormForward(bool reference, const NormGeometry& g, const float* x, float* y, const float* gamma,
                            const float* beta, float eps, float* mean, float* rstd, unsigned flags) {
  switch (g.kind) {
    case NormKind::kLayer:
      return (reference ? simdnorm_reference_layer_norm_forward : simdnorm_layer_norm_forward)(
          g.n, g.c, x, y, gamma, beta, eps, mean, rstd, flags);
    case NormKind::kRms:
      return (reference ? simdnorm_reference_rms_norm_forward : simdnorm_rms_norm_forward)(g.n, g.c, x, y, gamma, eps,
                                                                                           rstd, flags);
    case NormKind::kGroup: {
      const simdnorm_shape shape = g.shape();
      return (reference ? simdnorm_reference_group_norm_forward : simdnorm_group_norm_forward)(
          &shape, g.groups, x, y, gamma, beta, eps, mean, rstd, flags);
    }
  }
  return SIMDNORM_UNSUPPORTED;
}

simdnorm_status NormBackward(bool reference, const NormGeometry& g, const float* x, const float* dy, const float* gamma,
                             const float* beta, const float* mean, const float* rstd, float* dx, float* dgamma,
                             float* dbeta, unsigned flags) {
  switch (g.kind) {
    case NormKind::kLayer:
      return (reference ? simdnorm_reference_layer_norm_backward : simdnorm_layer_norm_backward)(
          g.n, g.c, x, dy, gamma, mean, rstd, dx, dgamma, dbeta, flags);
    case NormKind::kRms:
      return (reference ? simdnorm_reference_rms_norm_backward : simdnorm_rms_norm_backward)(g.n, g.c, x, dy, gamma,
                                                                                             rstd, dx, dgamma, flags);
    case NormKind::kGroup: {
      const simdnorm_shape shape = g.shape();
      return (reference ? simdnorm_reference_group_norm_backward : simdnorm_group_norm_backward)(
          &shape, g.groups, x, dy, gamma, beta, mean, rstd, dx, dgamma, dbeta, flags);
    }
  }
  return SIMDNORM_UNSUPPORTED;
}

// ---------------------------------------------------------------------------------------------------------------
// Data.

void FillNormInput(Rng& rng, const NormGeometry& g, const InputDistribution& dist, float* x) {
  std::vector<float> values(g.per_stat());
  for (std::size_t s = 0; s < g.stats(); ++s) {
    DrawSample(rng, dist, values);
    std::size_t k = 0;
    ForEachInStat(g, s, [&](std::size_t i) { x[i] = values[k++]; });
  }
}

void NormStats(const NormGeometry& g, const float* x, std::vector<double>& mean, std::vector<double>& var) {
  const double m = static_cast<double>(g.per_stat());
  mean.assign(g.stats(), 0.0);
  var.assign(g.stats(), 0.0);
  for (std::size_t s = 0; s < g.stats(); ++s) {
    double sum = 0.0, ss = 0.0;
    if (g.centred()) {
      ForEachInStat(g, s, [&](std::size_t i) { sum += x[i]; });
      mean[s] = sum / m;
    }
    ForEachInStat(g, s, [&](std::size_t i) { ss += (x[i] - mean[s]) * (x[i] - mean[s]); });
    var[s] = ss / m;
  }
}

bool SeparateNormFromReluKink(Rng& rng, const NormGeometry& g, float* x, const float* gamma, float* beta, float eps,
                              double margin) {
  // One value a group and no beta: the output is 0 exactly, and its sign in float arithmetic is a rounding's (the
  // residual of an FMA a*x - mean*a). Nothing moves it.
  if (g.per_stat() == 1 && beta == nullptr) return false;
  std::vector<float> mean_f(g.stats()), rstd_f(g.stats());
  ReluKinkSearch search;
  search.count = g.elements();
  search.channels = g.c;
  search.per_stat = g.per_stat();
  search.forward = [&](float* y) {
    return NormForward(true, g, x, y, gamma, beta, eps, mean_f.data(), rstd_f.data(), 0) == SIMDNORM_SUCCESS;
  };
  search.stats = [&](std::vector<double>& mean, std::vector<double>& var) { NormStats(g, x, mean, var); };
  search.channel = [&](std::size_t i) { return g.channel(i); };
  search.stat = [&](std::size_t i) { return g.stat(i); };
  return SeparateFromReluKink(rng, search, x, gamma, beta, eps, margin);
}

// ---------------------------------------------------------------------------------------------------------------
// Tolerances.

double NormOutputTolerance(double x, double gamma, double beta, double mean, double rstd, double mean_tol,
                           double rstd_rel) {
  const double a = gamma * rstd;
  const double rounding = kElementUlps * FLT_EPSILON *
                          (std::fabs(a * x) + std::fabs(a * mean) + std::fabs(a * (x - mean)) + std::fabs(beta));
  return rounding + std::fabs(a) * mean_tol + std::fabs(a * (x - mean)) * rstd_rel;
}

NormBackwardBounds::NormBackwardBounds(const NormGeometry& g, const float* x, const float* dy_masked,
                                       const float* gamma, const float* mean, const float* rstd)
    : g_(g),
      x_(x),
      dy_(dy_masked),
      gamma_(gamma),
      mean_(g.centred() ? mean : nullptr),
      rstd_(rstd),
      abs_dy_(g.c, 0.0),
      abs_dy_xhat_(g.c, 0.0),
      sum_g_(g.stats(), 0.0),
      sum_gxhat_(g.stats(), 0.0),
      abs_g_(g.stats(), 0.0),
      abs_gxhat_(g.stats(), 0.0) {
  for (std::size_t s = 0; s < g.stats(); ++s) {
    const double mu = mean_ ? mean_[s] : 0.0, r = rstd[s];
    ForEachInStat(g, s, [&](std::size_t i) {
      const std::size_t c = g.channel(i);
      const double dy = dy_masked[i], gv = dy * (gamma ? gamma[c] : 1.0);
      const double xhat = (x[i] - mu) * r, spread = (std::fabs(x[i]) + std::fabs(mu)) * r;
      abs_dy_[c] += std::fabs(dy);
      abs_dy_xhat_[c] += std::fabs(dy) * spread;
      sum_g_[s] += gv;
      sum_gxhat_[s] += gv * xhat;
      abs_g_[s] += std::fabs(gv);
      abs_gxhat_[s] += std::fabs(gv) * spread;
    });
  }
}

double NormBackwardBounds::dx(std::size_t i) const {
  constexpr double u = FLT_EPSILON;
  const std::size_t s = g_.stat(i), c = g_.channel(i);
  const double m = static_cast<double>(g_.per_stat());
  const double mu = mean_ ? mean_[s] : 0.0, r = rstd_[s];
  const double gv = dy_[i] * (gamma_ ? gamma_[c] : 1.0);
  const double xhat = (x_[i] - mu) * r;
  const double xhat_tol = kElementUlps * u * (std::fabs(x_[i]) + std::fabs(mu)) * r;
  const double mean_g = g_.centred() ? std::fabs(sum_g_[s]) / m : 0.0;
  const double mean_g_tol = g_.centred() ? kReductionUlps * u * abs_g_[s] / m : 0.0;
  const double mean_gxhat = std::fabs(sum_gxhat_[s]) / m;
  const double own = kElementUlps * u * (std::fabs(gv) + mean_g + std::fabs(xhat) * mean_gxhat);
  const double propagated =
      mean_g_tol + std::fabs(xhat) * kReductionUlps * u * abs_gxhat_[s] / m + xhat_tol * mean_gxhat;
  return r * (own + propagated);
}

// ---------------------------------------------------------------------------------------------------------------
// Checkers.

namespace {

// An output passed as NULL, or one the kind has not: still all sentinels, guards intact.
bool ExpectNotWritten(const std::string& context, const char* what, const GuardedBuffer& b) {
  const std::vector<float> sentinels(b.size(), SentinelFloat());
  return ExpectUnchanged(context, what, b.data(), sentinels.data(), b.size()) && ExpectGuardsIntact(context, what, b);
}

}  // namespace

std::string NormForwardCheck::Describe() const {
  std::ostringstream os;
  os << "NormForwardCheck " << g_.Describe() << (inplace_ ? " inplace" : " out-of-place") << (gamma_ ? " gamma" : "")
     << (beta_                ? " beta"
         : NeedsBetaForRelu() ? " beta(for the ReLU)"
                              : "")
     << (relu_ ? " relu" : "") << (want_mean_ ? "" : " mean=NULL") << (want_rstd_ ? "" : " rstd=NULL")
     << " misalign=" << misalign_ << " eps=" << eps_ << " seed=" << seed_ << " isa=" << CurrentIsa();
  return os.str();
}

bool NormForwardCheck::Test() const {
  const NormGeometry& g = g_;
  const std::size_t count = g.elements(), S = g.stats();
  const std::string context = Describe();
  Rng rng(MixSeed({seed_, g.n, g.c, g.spatial, g.groups, static_cast<std::uint64_t>(g.kind), 0xf0}));
  std::vector<float> x(count), gamma, beta;
  FillNormInput(rng, g, dist_, x.data());
  MakeAffineParams(rng, g.c, gamma, beta);
  const float* gp = gamma_ ? gamma.data() : nullptr;
  float* bp = (beta_ || NeedsBetaForRelu()) && g.centred() ? beta.data() : nullptr;
  const unsigned flags = relu_ ? SIMDNORM_FUSE_RELU : 0u;
  if (relu_ && !SeparateNormFromReluKink(rng, g, x.data(), gp, bp, eps_, 1e-3)) {
    ADD_FAILURE() << context << "\n  could not generate data with every |pre-activation| >= 1e-3";
    return false;
  }

  std::vector<float> y_ref(count), mean_ref(S, 0.0f), rstd_ref(S);
  if (!ExpectSuccess(context, "the reference forward",
                     NormForward(true, g, x.data(), y_ref.data(), gp, bp, eps_, g.centred() ? mean_ref.data() : nullptr,
                                 rstd_ref.data(), flags))) {
    return false;
  }
  GuardedBuffer xin(count, misalign_), yout(inplace_ ? 0 : count, misalign_), mean_out(S), rstd_out(S);
  xin.assign(x);
  yout.fill(SentinelFloat());
  mean_out.fill(SentinelFloat());
  rstd_out.fill(SentinelFloat());
  float* y = inplace_ ? xin.data() : yout.data();
  const bool mean_written = want_mean_ && g.centred();
  if (!ExpectSuccess(context, "the fast forward",
                     NormForward(false, g, xin.data(), y, gp, bp, eps_, mean_written ? mean_out.data() : nullptr,
                                 want_rstd_ ? rstd_out.data() : nullptr, flags))) {
    return false;
  }

  std::vector<double> mean, var;
  NormStats(g, x.data(), mean, var);
  std::vector<double> mean_tol(S, 0.0);
  if (g.centred()) {
    for (std::size_t s = 0; s < S; ++s) mean_tol[s] = MeanTolerance(mean[s], var[s], mean_ulps_);
  }
  auto coord = [&](std::size_t i) { return g.Coord(i); };
  auto stat_name = [&](std::size_t s) {
    return g.kind == NormKind::kGroup
               ? "(image " + std::to_string(s / g.groups) + ", group " + std::to_string(s % g.groups) + ")"
               : "(row " + std::to_string(s) + ")";
  };
  bool ok = ExpectNearAt(
      context, "y", y, y_ref.data(), count,
      [&](std::size_t i) {
        const std::size_t c = g.channel(i), s = g.stat(i);
        return NormOutputTolerance(x[i], gp ? gp[c] : 1.0, bp ? bp[c] : 0.0, mean_ref[s], rstd_ref[s], mean_tol[s],
                                   rstd_rel_);
      },
      coord);
  if (mean_written) {
    ok &= ExpectNearAt(
        context, "mean", mean_out.data(), mean_ref.data(), S, [&](std::size_t s) { return mean_tol[s]; }, stat_name);
  } else {
    ok &= ExpectNotWritten(context, g.centred() ? "mean (passed as NULL)" : "mean (RMSNorm has none)", mean_out);
  }
  if (want_rstd_) {
    ok &= ExpectNearAt(
        context, "rstd", rstd_out.data(), rstd_ref.data(), S,
        [&](std::size_t s) { return rstd_rel_ * std::fabs(double(rstd_ref[s])); }, stat_name);
  } else {
    ok &= ExpectNotWritten(context, "rstd (passed as NULL)", rstd_out);
  }
  if (!inplace_) ok &= ExpectUnchanged(context, "x (an input)", xin.data(), x.data(), count);
  ok &= ExpectGuardsIntact(context, "x/y", xin) && ExpectGuardsIntact(context, "y", yout);
  ok &= ExpectGuardsIntact(context, "mean", mean_out) && ExpectGuardsIntact(context, "rstd", rstd_out);
  return ok;
}

std::string NormBackwardCheck::Describe() const {
  std::ostringstream os;
  os << "NormBackwardCheck " << g_.Describe() << (inplace_ ? " dx=dy" : " out-of-place") << (gamma_ ? " gamma" : "")
     << (beta_                ? " beta"
         : NeedsBetaForRelu() ? " beta(for the ReLU)"
                              : "")
     << (relu_ ? " relu" : "") << " outputs=" << (want_dx_ ? "dx," : "") << (want_dgamma_ ? "dgamma," : "")
     << (want_dbeta_ ? "dbeta" : "") << " misalign=" << misalign_ << " eps=" << eps_ << " seed=" << seed_
     << " isa=" << CurrentIsa();
  return os.str();
}

bool NormBackwardCheck::Test() const {
  const NormGeometry& g = g_;
  const std::size_t count = g.elements(), S = g.stats(), C = g.c;
  const std::string context = Describe();
  Rng rng(MixSeed({seed_, g.n, g.c, g.spatial, g.groups, static_cast<std::uint64_t>(g.kind), 0xbac}));
  std::vector<float> x(count), dy(count), gamma, beta;
  FillNormInput(rng, g, dist_, x.data());
  MakeAffineParams(rng, C, gamma, beta);
  for (float& v : dy) v = static_cast<float>(rng.normal());
  const float* gp = gamma_ ? gamma.data() : nullptr;
  // Only GroupNorm's backward takes beta (it recomputes the ReLU's input).
  float* bp = (beta_ || NeedsBetaForRelu()) && g.kind == NormKind::kGroup ? beta.data() : nullptr;
  const unsigned flags = relu_ ? SIMDNORM_FUSE_RELU : 0u;
  if (relu_ && !SeparateNormFromReluKink(rng, g, x.data(), gp, bp, eps_, 1e-3)) {
    ADD_FAILURE() << context << "\n  could not generate data with every |pre-activation| >= 1e-3";
    return false;
  }

  // Both differentiate the same forward pass: the statistics the reference forward saved.
  std::vector<float> y_fwd(count), mean_ref(S, 0.0f), rstd_ref(S);
  const float* mp = g.centred() ? mean_ref.data() : nullptr;
  if (!ExpectSuccess(context, "the reference forward",
                     NormForward(true, g, x.data(), y_fwd.data(), gp, bp, eps_, g.centred() ? mean_ref.data() : nullptr,
                                 rstd_ref.data(), flags))) {
    return false;
  }
  const bool has_dbeta = g.kind != NormKind::kRms;
  std::vector<float> dx_ref(count), dg_ref(C), db_ref(C);
  if (!ExpectSuccess(context, "the reference backward",
                     NormBackward(true, g, x.data(), dy.data(), gp, bp, mp, rstd_ref.data(), dx_ref.data(),
                                  dg_ref.data(), has_dbeta ? db_ref.data() : nullptr, flags))) {
    return false;
  }

  BackwardBuffers buffers(x, dy, C, misalign_, inplace_);
  GuardedBuffer &dg = buffers.dgamma, &db = buffers.dbeta;
  float* dx = buffers.dx(want_dx_);
  const bool dbeta_written = want_dbeta_ && has_dbeta;
  if (!ExpectSuccess(context, "the fast backward",
                     NormBackward(false, g, buffers.x.data(), buffers.dy.data(), gp, bp, mp, rstd_ref.data(), dx,
                                  want_dgamma_ ? dg.data() : nullptr, dbeta_written ? db.data() : nullptr, flags))) {
    return false;
  }

  // The mask is the reference forward's: every |pre-activation| >= 1e-3, far beyond any rounding.
  std::vector<float> dy_masked(dy);
  for (std::size_t i = 0; i < count; ++i) {
    if (relu_ && !(y_fwd[i] > 0.0f)) dy_masked[i] = 0.0f;
  }
  const NormBackwardBounds bounds(g, x.data(), dy_masked.data(), gp, mp, rstd_ref.data());
  auto column = [&](std::size_t c) { return "(channel " + std::to_string(c) + ")"; };
  bool ok = true;
  if (want_dx_) {
    ok &= ExpectNearAt(
        context, "dx", dx, dx_ref.data(), count, [&](std::size_t i) { return bounds.dx(i); },
        [&](std::size_t i) { return g.Coord(i); });
  }
  if (want_dgamma_) {
    ok &= ExpectNearAt(
        context, "dgamma", dg.data(), dg_ref.data(), C, [&](std::size_t c) { return bounds.dgamma(c); }, column);
  } else {
    ok &= ExpectNotWritten(context, "dgamma (passed as NULL)", dg);
  }
  if (dbeta_written) {
    ok &= ExpectNearAt(
        context, "dbeta", db.data(), db_ref.data(), C, [&](std::size_t c) { return bounds.dbeta(c); }, column);
  } else {
    ok &= ExpectNotWritten(context, has_dbeta ? "dbeta (passed as NULL)" : "dbeta (RMSNorm has none)", db);
  }
  if (!want_dx_) ok &= ExpectNotWritten(context, "dx (passed as NULL)", buffers.dx_own);
  ok &= buffers.ExpectIntact(context, x, dy, want_dx_);
  return ok;
}

// ---------------------------------------------------------------------------------------------------------------
// Grids.

NormCaseOptions NormCaseOptions::Flipped() const {
  NormCaseOptions o = *this;
  o.inplace = !inplace;
  o.gamma = !gamma;
  o.beta = !beta;
  o.relu = !relu;
  return o;
}

NormCaseOptions RotateNormOptions(std::uint64_t case_index) {
  const std::uint64_t h = MixSeed({case_index, 0x40a3ull});
  NormCaseOptions o;
  o.inplace = (h & 1u) != 0;
  o.gamma = (h & 2u) != 0;
  o.beta = (h & 4u) != 0;
  o.relu = (h & 8u) != 0;
  o.mean = ((h >> 4) & 7u) != 0;  // NULL in one case of eight
  o.rstd = ((h >> 7) & 7u) != 0;
  const bool all_outputs = ((h >> 10) & 3u) != 0;  // a subset of dx, dgamma, dbeta in one case of four
  o.dx = all_outputs || ((h >> 12) & 1u) != 0;
  o.dgamma = all_outputs || ((h >> 13) & 1u) != 0;
  o.dbeta = all_outputs || ((h >> 14) & 1u) != 0;
  o.misalign = ((h >> 15) & 3u) == 0 ? 1 : 0;
  return o;
}

std::vector<NormGeometry> NormShapes(NormKind kind, const std::vector<RowDims>& rows,
                                     const std::vector<GroupDims>& groups) {
  std::vector<NormGeometry> shapes;
  if (kind != NormKind::kGroup) {
    for (const RowDims& r : rows) shapes.push_back(NormGeometry::Row(kind, r.rows, r.cols));
    return shapes;
  }
  for (simdnorm_layout layout : kLayouts) {
    for (const GroupDims& d : groups) shapes.push_back(NormGeometry::Group(d.n, d.c, d.spatial, layout, d.groups));
  }
  return shapes;
}

std::vector<std::size_t> GroupCounts(std::size_t c) {
  std::vector<std::size_t> counts;
  for (std::size_t g = 1; g <= c; ++g) {
    if (c % g != 0) continue;
    if (c <= 32 || g == 1 || g == 2 || g == 3 || g == 8 || g == 32 || g == c / 16 || g == c) counts.push_back(g);
  }
  return counts;
}

}  // namespace simdnorm_test
