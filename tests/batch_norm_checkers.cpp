// The builder-style checkers of batch norm (checkers.hpp): TrainingCheck, InferenceCheck, BackwardCheck, AffineCheck
// and FoldCheck. Each runs one case through simdnorm_* and simdnorm_reference_* and compares every output.
#include <algorithm>
#include <sstream>

#include "checkers.hpp"

namespace simdnorm_test {

namespace {

std::string Flags(bool inplace, bool relu) {
  std::string s;
  s += inplace ? " inplace" : " out-of-place";
  if (relu) s += " relu";
  return s;
}

}  // namespace

// ---------------------------------------------------------------------------------------------------------------
// Training forward.

std::string TrainingCheck::Describe() const {
  std::ostringstream os;
  os << "TrainingCheck " << ShapeString(MakeShape(n_, c_, spatial_, layout_)) << Flags(inplace_, relu_)
     << (gamma_beta_ ? " gamma_beta" : "") << (running_ ? " running" : "") << (batch_stats_ ? "" : " no-batch-stats")
     << " misalign=" << misalign_ << " eps=" << eps_ << " momentum=" << momentum_ << " seed=" << seed_
     << " isa=" << CurrentIsa();
  return os.str();
}

bool TrainingCheck::Test() const {
  const simdnorm_shape shape = MakeShape(n_, c_, spatial_, layout_);
  const std::size_t count = Elements(shape);
  const std::size_t C = c_;
  const double m = static_cast<double>(n_ * spatial_);
  const std::string context = Describe();
  Rng rng(MixSeed({seed_, n_, c_, spatial_}));

  std::vector<float> x(count);
  FillInput(rng, shape, dist_, x.data());
  std::vector<float> gamma, beta, rm0(C), rv0(C);
  MakeAffineParams(rng, C, gamma, beta);
  for (std::size_t c = 0; c < C; ++c) {
    rm0[c] = static_cast<float>(rng.uniform(-1.0, 1.0));
    rv0[c] = static_cast<float>(rng.uniform(0.5, 2.0));
  }
  const float* g = gamma_beta_ ? gamma.data() : nullptr;
  const float* b = gamma_beta_ ? beta.data() : nullptr;
  const unsigned flags = relu_ ? SIMDNORM_FUSE_RELU : 0u;

  std::vector<float> y_ref(count), bm_ref(C), bi_ref(C), rm_ref(rm0), rv_ref(rv0);
  if (!ExpectSuccess(context, "simdnorm_reference_forward_training",
                     simdnorm_reference_forward_training(&shape, x.data(), y_ref.data(), g, b, eps_, bm_ref.data(),
                                                         bi_ref.data(), running_ ? rm_ref.data() : nullptr,
                                                         running_ ? rv_ref.data() : nullptr, momentum_, flags))) {
    return false;
  }

  GuardedBuffer xin(count, misalign_);
  xin.assign(x);
  GuardedBuffer yout(inplace_ ? 0 : count, misalign_);
  yout.fill(SentinelFloat());
  GuardedBuffer bm(C), bi(C), rm(C), rv(C);
  bm.fill(SentinelFloat());
  bi.fill(SentinelFloat());
  rm.assign(rm0);
  rv.assign(rv0);
  float* y = inplace_ ? xin.data() : yout.data();
  if (!ExpectSuccess(context, "simdnorm_forward_training",
                     simdnorm_forward_training(&shape, xin.data(), y, g, b, eps_, batch_stats_ ? bm.data() : nullptr,
                                               batch_stats_ ? bi.data() : nullptr, running_ ? rm.data() : nullptr,
                                               running_ ? rv.data() : nullptr, momentum_, flags))) {
    return false;
  }

  std::vector<double> mean, var;
  ChannelStats(shape, x.data(), mean, var);
  std::vector<double> tol_mean(C);
  for (std::size_t c = 0; c < C; ++c) {
    tol_mean[c] = MeanTolerance(mean[c], var[c], mean_ulps_);
  }
  bool ok = true;
  ok &= ExpectNear(context, "y", y, y_ref.data(), count, &shape, [&](std::size_t i) {
    const std::size_t c = ChannelOf(shape, i);
    return TrainingOutputTolerance(x[i], g ? g[c] : 1.0, b ? b[c] : 0.0, bm_ref[c], bi_ref[c], tol_mean[c],
                                   invstd_rel_);
  });
  if (batch_stats_) {
    ok &= ExpectNear(context, "batch_mean", bm.data(), bm_ref.data(), C, nullptr,
                     [&](std::size_t c) { return tol_mean[c]; });
    ok &= ExpectNear(context, "batch_invstd", bi.data(), bi_ref.data(), C, nullptr,
                     [&](std::size_t c) { return invstd_rel_ * std::fabs(double(bi_ref[c])); });
  }
  if (running_) {
    ok &= ExpectNear(context, "running_mean", rm.data(), rm_ref.data(), C, nullptr,
                     [&](std::size_t c) { return RunningMeanTolerance(rm0[c], mean[c], momentum_, tol_mean[c]); });
    ok &= ExpectNear(context, "running_var", rv.data(), rv_ref.data(), C, nullptr, [&](std::size_t c) {
      return RunningVarTolerance(rv0[c], var[c], m, eps_, momentum_, invstd_rel_);
    });
  }
  if (!inplace_) ok &= ExpectUnchanged(context, "x (an input)", xin.data(), x.data(), count);
  ok &= ExpectGuardsIntact(context, "x/y", xin) && ExpectGuardsIntact(context, "y", yout);
  ok &= ExpectGuardsIntact(context, "batch_mean", bm) && ExpectGuardsIntact(context, "batch_invstd", bi);
  ok &= ExpectGuardsIntact(context, "running_mean", rm) && ExpectGuardsIntact(context, "running_var", rv);
  return ok;
}

// ---------------------------------------------------------------------------------------------------------------
// Inference forward.

std::string InferenceCheck::Describe() const {
  std::ostringstream os;
  os << "InferenceCheck " << ShapeString(MakeShape(n_, c_, spatial_, layout_)) << Flags(inplace_, relu_)
     << (gamma_beta_ ? " gamma_beta" : "") << " misalign=" << misalign_ << " eps=" << eps_ << " seed=" << seed_
     << " isa=" << CurrentIsa();
  return os.str();
}

bool InferenceCheck::Test() const {
  const simdnorm_shape shape = MakeShape(n_, c_, spatial_, layout_);
  const std::size_t count = Elements(shape);
  const std::size_t C = c_;
  const std::string context = Describe();
  Rng rng(MixSeed({seed_, n_, c_, spatial_, 0x1f}));

  std::vector<float> x(count);
  FillInput(rng, shape, InputDistribution{}, x.data());
  std::vector<float> gamma, beta, mean(C), var(C);
  MakeAffineParams(rng, C, gamma, beta);
  for (std::size_t c = 0; c < C; ++c) {
    mean[c] = static_cast<float>(rng.uniform(-3.0, 3.0));
    // Every seventh channel has zero variance: valid, eps alone keeps invstd finite.
    var[c] = c % 7 == 6 ? 0.0f : static_cast<float>(rng.uniform(0.25, 4.0));
  }
  const float* g = gamma_beta_ ? gamma.data() : nullptr;
  const float* b = gamma_beta_ ? beta.data() : nullptr;
  const unsigned flags = relu_ ? SIMDNORM_FUSE_RELU : 0u;

  std::vector<float> y_ref(count);
  if (!ExpectSuccess(context, "simdnorm_reference_forward_inference",
                     simdnorm_reference_forward_inference(&shape, x.data(), y_ref.data(), g, b, mean.data(), var.data(),
                                                          eps_, flags))) {
    return false;
  }
  GuardedBuffer xin(count, misalign_);
  xin.assign(x);
  GuardedBuffer yout(inplace_ ? 0 : count, misalign_);
  yout.fill(SentinelFloat());
  float* y = inplace_ ? xin.data() : yout.data();
  if (!ExpectSuccess(context, "simdnorm_forward_inference",
                     simdnorm_forward_inference(&shape, xin.data(), y, g, b, mean.data(), var.data(), eps_, flags))) {
    return false;
  }
  bool ok = ExpectNear(context, "y", y, y_ref.data(), count, &shape, [&](std::size_t i) {
    const std::size_t c = ChannelOf(shape, i);
    const double scale = (g ? g[c] : 1.0) / std::sqrt(double(var[c]) + double(eps_));
    const double shift = (b ? b[c] : 0.0) - double(mean[c]) * scale;
    return InferenceOutputTolerance(x[i], mean[c], scale, shift);
  });
  if (!inplace_) ok &= ExpectUnchanged(context, "x (an input)", xin.data(), x.data(), count);
  ok &= ExpectGuardsIntact(context, "x/y", xin) && ExpectGuardsIntact(context, "y", yout);
  return ok;
}

// ---------------------------------------------------------------------------------------------------------------
// Backward.

std::string BackwardCheck::Describe() const {
  std::ostringstream os;
  os << "BackwardCheck " << ShapeString(MakeShape(n_, c_, spatial_, layout_)) << (inplace_ ? " dx=dy" : " out-of-place")
     << (relu_ ? " relu" : "") << (gamma_beta_ ? " gamma_beta" : "") << " outputs=" << (want_dx_ ? "dx," : "")
     << (want_dgamma_ ? "dgamma," : "") << (want_dbeta_ ? "dbeta" : "") << " misalign=" << misalign_ << " eps=" << eps_
     << " seed=" << seed_ << " isa=" << CurrentIsa();
  return os.str();
}

bool BackwardCheck::Test() const {
  const simdnorm_shape shape = MakeShape(n_, c_, spatial_, layout_);
  const std::size_t count = Elements(shape);
  const std::size_t C = c_;
  const std::string context = Describe();
  Rng rng(MixSeed({seed_, n_, c_, spatial_, 0xbac}));

  std::vector<float> x(count), dy(count);
  const InputDistribution dist;
  FillInput(rng, shape, dist, x.data());
  std::vector<float> gamma, beta;
  MakeAffineParams(rng, C, gamma, beta);
  const float* g = gamma_beta_ ? gamma.data() : nullptr;
  const float* b = gamma_beta_ ? beta.data() : nullptr;
  if (relu_ && !SeparateFromReluKink(rng, shape, x.data(), g, gamma_beta_ ? beta.data() : nullptr, eps_, 1e-3)) {
    ADD_FAILURE() << context << "\n  could not generate data with every |bn(x)| >= 1e-3";
    return false;
  }
  for (float& v : dy) v = static_cast<float>(rng.normal());
  const unsigned flags = relu_ ? SIMDNORM_FUSE_RELU : 0u;

  // Both implementations differentiate the same forward pass: the statistics the reference forward saved.
  std::vector<float> bm(C), bi(C), y_fwd(count);
  if (!ExpectSuccess(context, "simdnorm_reference_forward_training",
                     simdnorm_reference_forward_training(&shape, x.data(), y_fwd.data(), g, b, eps_, bm.data(),
                                                         bi.data(), nullptr, nullptr, 0.0f, 0))) {
    return false;
  }
  std::vector<float> dx_ref(count), dg_ref(C), db_ref(C);
  if (!ExpectSuccess(context, "simdnorm_reference_backward",
                     simdnorm_reference_backward(&shape, x.data(), dy.data(), g, b, bm.data(), bi.data(), dx_ref.data(),
                                                 dg_ref.data(), db_ref.data(), flags))) {
    return false;
  }

  BackwardBuffers buffers(x, dy, C, misalign_, inplace_);
  GuardedBuffer &dg = buffers.dgamma, &db = buffers.dbeta;
  float* dx = buffers.dx(want_dx_);
  if (!ExpectSuccess(context, "simdnorm_backward",
                     simdnorm_backward(&shape, buffers.x.data(), buffers.dy.data(), g, b, bm.data(), bi.data(), dx,
                                       want_dgamma_ ? dg.data() : nullptr, want_dbeta_ ? db.data() : nullptr, flags))) {
    return false;
  }

  // The mask is the reference forward's: the data keep every |bn(x)| >= 1e-3, far beyond any rounding, so the
  // kernel's recomputed mask agrees with it.
  std::vector<float> dy_masked(dy);
  for (std::size_t i = 0; i < count; ++i) {
    if (relu_ && !(y_fwd[i] > 0.0f)) dy_masked[i] = 0.0f;
  }
  const BackwardBounds bounds(shape, x.data(), dy_masked.data(), g, bm.data(), bi.data());
  bool ok = true;
  if (want_dbeta_) {
    ok &= ExpectNear(context, "dbeta", db.data(), db_ref.data(), C, nullptr,
                     [&](std::size_t c) { return bounds.dbeta(c); });
  }
  if (want_dgamma_) {
    ok &= ExpectNear(context, "dgamma", dg.data(), dg_ref.data(), C, nullptr,
                     [&](std::size_t c) { return bounds.dgamma(c); });
  }
  if (want_dx_) {
    ok &= ExpectNear(context, "dx", dx, dx_ref.data(), count, &shape, [&](std::size_t i) {
      const std::size_t c = ChannelOf(shape, i);
      return bounds.dx(i, db_ref[c], dg_ref[c]);
    });
  }
  if (!want_dgamma_) ok &= ExpectGuardsIntact(context, "dgamma (not requested)", dg);
  if (!want_dbeta_) ok &= ExpectGuardsIntact(context, "dbeta (not requested)", db);
  ok &= buffers.ExpectIntact(context, x, dy, want_dx_);
  return ok;
}

// ---------------------------------------------------------------------------------------------------------------
// Affine.

std::string AffineCheck::Describe() const {
  std::ostringstream os;
  os << "AffineCheck " << ShapeString(MakeShape(n_, c_, spatial_, layout_)) << Flags(inplace_, relu_)
     << " misalign=" << misalign_ << " seed=" << seed_ << " isa=" << CurrentIsa();
  return os.str();
}

bool AffineCheck::Test() const {
  const simdnorm_shape shape = MakeShape(n_, c_, spatial_, layout_);
  const std::size_t count = Elements(shape);
  const std::size_t C = c_;
  const std::string context = Describe();
  Rng rng(MixSeed({seed_, n_, c_, spatial_, 0xaff}));

  std::vector<float> x(count), scale(C), shift(C);
  FillInput(rng, shape, InputDistribution{}, x.data());
  for (std::size_t c = 0; c < C; ++c) {
    scale[c] = static_cast<float>(rng.signed_uniform(0.25, 2.0));
    shift[c] = static_cast<float>(rng.uniform(-2.0, 2.0));
  }
  const unsigned flags = relu_ ? SIMDNORM_FUSE_RELU : 0u;
  std::vector<float> y_ref(count);
  if (!ExpectSuccess(context, "simdnorm_reference_affine",
                     simdnorm_reference_affine(&shape, x.data(), y_ref.data(), scale.data(), shift.data(), flags))) {
    return false;
  }
  GuardedBuffer xin(count, misalign_);
  xin.assign(x);
  GuardedBuffer yout(inplace_ ? 0 : count, misalign_);
  yout.fill(SentinelFloat());
  float* y = inplace_ ? xin.data() : yout.data();
  if (!ExpectSuccess(context, "simdnorm_affine",
                     simdnorm_affine(&shape, xin.data(), y, scale.data(), shift.data(), flags))) {
    return false;
  }
  bool ok = ExpectNear(context, "y", y, y_ref.data(), count, &shape, [&](std::size_t i) {
    const std::size_t c = ChannelOf(shape, i);
    return AffineOutputTolerance(x[i], scale[c], shift[c]);
  });
  if (!inplace_) ok &= ExpectUnchanged(context, "x (an input)", xin.data(), x.data(), count);
  ok &= ExpectGuardsIntact(context, "x/y", xin) && ExpectGuardsIntact(context, "y", yout);
  return ok;
}

// ---------------------------------------------------------------------------------------------------------------
// Fold.

std::string FoldCheck::Describe() const {
  std::ostringstream os;
  os << "FoldCheck c=" << c_ << (gamma_beta_ ? " gamma_beta" : "") << " eps=" << eps_ << " seed=" << seed_
     << " isa=" << CurrentIsa();
  return os.str();
}

bool FoldCheck::Test() const {
  const std::size_t C = c_;
  const std::string context = Describe();
  Rng rng(MixSeed({seed_, c_, 0xf01d}));
  std::vector<float> gamma, beta, mean(C), var(C);
  MakeAffineParams(rng, C, gamma, beta);
  for (std::size_t c = 0; c < C; ++c) {
    mean[c] = static_cast<float>(rng.uniform(-3.0, 3.0));
    var[c] = c % 5 == 4 ? 0.0f : static_cast<float>(rng.uniform(0.0, 4.0));
  }
  const float* g = gamma_beta_ ? gamma.data() : nullptr;
  const float* b = gamma_beta_ ? beta.data() : nullptr;
  std::vector<float> scale_ref(C), shift_ref(C);
  if (!ExpectSuccess(
          context, "simdnorm_reference_fold",
          simdnorm_reference_fold(C, g, b, mean.data(), var.data(), eps_, scale_ref.data(), shift_ref.data()))) {
    return false;
  }
  GuardedBuffer scale(C), shift(C);
  scale.fill(SentinelFloat());
  shift.fill(SentinelFloat());
  if (!ExpectSuccess(context, "simdnorm_fold",
                     simdnorm_fold(C, g, b, mean.data(), var.data(), eps_, scale.data(), shift.data()))) {
    return false;
  }
  // Both compute in double and round once, so they agree to the last bit, or one ulp where the two double
  // evaluations straddle a rounding boundary.
  bool ok = true;
  for (std::size_t c = 0; c < C; ++c) {
    const std::uint64_t d_scale = UlpDistance(scale[c], scale_ref[c]);
    const std::uint64_t d_shift = UlpDistance(shift[c], shift_ref[c]);
    if (d_scale > 1 || d_shift > 1) {
      // Name the two readings of "shift = beta - mean*scale" so a failure says which one each side implements.
      const double exact_scale = (g ? g[c] : 1.0) / std::sqrt(double(var[c]) + double(eps_));
      const double beta_c = b ? b[c] : 0.0;
      ADD_FAILURE() << context << "\n  channel " << c << " (gamma " << FloatString(g ? g[c] : 1.0f) << ", beta "
                    << FloatString(static_cast<float>(beta_c)) << ", mean " << FloatString(mean[c]) << ", var "
                    << FloatString(var[c]) << "): scale " << FloatString(scale[c]) << " vs reference "
                    << FloatString(scale_ref[c]) << " (" << d_scale << " ulp), shift " << FloatString(shift[c])
                    << " vs reference " << FloatString(shift_ref[c]) << " (" << d_shift
                    << " ulp); tolerance 1 ulp each. beta - mean*scale rounded once is "
                    << FloatString(static_cast<float>(beta_c - double(mean[c]) * exact_scale))
                    << " with the double scale, "
                    << FloatString(static_cast<float>(beta_c - double(mean[c]) * double(float(exact_scale))))
                    << " with the float scale";
      ok = false;
      break;
    }
  }
  ok &= ExpectGuardsIntact(context, "scale", scale) && ExpectGuardsIntact(context, "shift", shift);
  return ok;
}

}  // namespace simdnorm_test
