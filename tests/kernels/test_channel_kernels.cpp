// The per-channel kernels (vectorised over channels) against the scalar formulas of core/channel_math.hpp, which the
// drivers use for channels they finish one at a time: bit for bit, on padded arrays, including magnitudes across the
// whole float range, zeros, infinities and NaN (where NaN matches any NaN: see SameBits).
#include <cfloat>
#include <cmath>
#include <iterator>
#include <limits>
#include <sstream>

#include "core/channel_math.hpp"
#include "tester.hpp"

namespace simdnorm_test {
namespace kernel_test {
namespace {

using simdnorm::padded_channels;

class ChannelTester {
 public:
  ChannelTester& c(std::size_t v) { return set(c_, v); }
  // Values per channel (m).
  ChannelTester& count(double v) { return set(m_, v); }
  ChannelTester& eps(float v) { return set(eps_, v); }
  ChannelTester& momentum(double v) { return set(momentum_, v); }
  // Magnitudes over the whole range of each quantity, and special values, instead of typical ones.
  ChannelTester& extreme(bool v = true) { return set(extreme_, v); }
  // Elements by which the per-channel arrays are offset from 64-byte alignment (the kernels load them unaligned).
  ChannelTester& misalign(std::size_t v) { return set(misalign_, v); }
  ChannelTester& seed(std::uint64_t v) { return set(seed_, v); }

  bool TestCenter(const IsaKernels& isa) const;
  bool TestStats(const IsaKernels& isa) const;
  bool TestFold(const IsaKernels& isa) const;
  bool TestFoldSaved(const IsaKernels& isa) const;
  bool TestGradFinish(const IsaKernels& isa) const;
  bool TestUpdateRunning(const IsaKernels& isa) const;

 private:
  template <class T, class V>
  ChannelTester& set(T& field, V value) {
    field = value;
    return *this;
  }
  std::string Context(const char* kernel, const IsaKernels& isa) const {
    std::ostringstream s;
    s << kernel << " [" << isa.name << "] c=" << c_ << " m=" << m_ << " eps=" << eps_ << " momentum=" << momentum_
      << (extreme_ ? " extreme" : " typical") << " misalign=" << misalign_ << " seed=" << seed_;
    return s.str();
  }
  // A value of random sign (nonnegative: its magnitude), 10^e with e uniform in [-1, 2] for typical data and in
  // [lo, hi] for extreme data, of which one in ten is 0, -0, an infinity or NaN.
  double Draw(Rng& rng, double lo, double hi, bool nonnegative = false) const {
    if (extreme_ && rng.below(10) == 0) {
      static const double kSpecial[] = {0.0, -0.0, std::numeric_limits<double>::infinity(),
                                        -std::numeric_limits<double>::infinity(),
                                        std::numeric_limits<double>::quiet_NaN()};
      const double v = kSpecial[rng.below(5)];
      return nonnegative ? std::fabs(v) : v;
    }
    const double v = std::pow(10.0, extreme_ ? rng.uniform(lo, hi) : rng.uniform(-1.0, 2.0));
    return nonnegative || rng.coin() ? v : -v;
  }
  float DrawFloat(Rng& rng, bool nonnegative = false) const {
    return static_cast<float>(Draw(rng, -46.0, 39.0, nonnegative));  // denormals to past FLT_MAX (inf)
  }
  // Padded input arrays of c values drawn by `draw`, padding 0.
  template <class T, class Draw>
  Guarded<T> Input(std::size_t misalign, const Draw& draw) const {
    Guarded<T> a = PaddedArray<T>(c_, misalign, T{0});
    for (std::size_t j = 0; j < c_; ++j) a[j] = static_cast<T>(draw());
    return a;
  }
  // Padded outputs, sentinels throughout: [0, c) is compared, the padding may be written, the guards may not.
  template <class T>
  Guarded<T> Output(std::size_t misalign) const {
    Guarded<T> a(padded_channels(c_), misalign, Sentinel<T>());
    return a;
  }
  template <class T>
  bool Expect(const std::string& context, const char* what, const Guarded<T>& got, const std::vector<T>& want) const {
    return ExpectBitwise(context, what, got.data(), want.data(), c_,
                         [](std::size_t j) { return "channel " + std::to_string(j); }) &&
           ExpectGuards(context, what, got, Sentinel<T>());
  }

  std::size_t c_ = 1, misalign_ = 0;
  double m_ = 49.0, momentum_ = 0.1;
  float eps_ = 1e-5f;
  bool extreme_ = false;
  std::uint64_t seed_ = 1;
};

bool ChannelTester::TestCenter(const IsaKernels& isa) const {
  Rng rng(seed_);
  const Guarded<double> sum = Input<double>(misalign_, [&] { return Draw(rng, -300.0, 300.0) * m_; });
  const Guarded<float> shift = Input<float>(misalign_ + 1, [&] { return DrawFloat(rng); });
  Guarded<double> mean = Output<double>(misalign_);
  isa.table->center_rows(sum.data(), shift.data(), c_, m_, mean.data());
  std::vector<double> want(c_);
  for (std::size_t j = 0; j < c_; ++j) want[j] = static_cast<double>(shift.data()[j]) + sum.data()[j] / m_;
  return Expect(Context("center_rows", isa), "mean (shift + sum/m)", mean, want);
}

bool ChannelTester::TestStats(const IsaKernels& isa) const {
  Rng rng(seed_);
  const Guarded<double> mean = Input<double>(misalign_, [&] { return Draw(rng, -50.0, 40.0); });
  const Guarded<double> m2 = Input<double>(misalign_ + 1, [&] { return Draw(rng, -90.0, 80.0, true) * m_; });
  const Guarded<float> gamma = Input<float>(misalign_, [&] { return DrawFloat(rng); });
  const Guarded<float> beta = Input<float>(misalign_ + 1, [&] { return DrawFloat(rng); });
  Guarded<float> mean_f = Output<float>(misalign_), invstd = Output<float>(misalign_ + 1);
  Guarded<float> a = Output<float>(misalign_), b = Output<float>(misalign_ + 2);
  isa.table->stats_rows(mean.data(), m2.data(), gamma.data(), beta.data(), c_, m_, static_cast<double>(eps_),
                        mean_f.data(), invstd.data(), a.data(), b.data());
  std::vector<float> want_mean(c_), want_invstd(c_), want_a(c_), want_b(c_);
  for (std::size_t j = 0; j < c_; ++j) {
    const simdnorm::RoundedStats st = simdnorm::round_stats(mean.data()[j], m2.data()[j], m_, eps_);
    const simdnorm::Coefficients co = simdnorm::fold_coefficients(gamma.data(), beta.data(), j, st.mean, st.invstd);
    want_mean[j] = st.mean, want_invstd[j] = st.invstd, want_a[j] = co.a, want_b[j] = co.b;
  }
  const std::string context = Context("stats_rows", isa);
  return Expect(context, "mean (round_stats)", mean_f, want_mean) &&
         Expect(context, "invstd (round_stats)", invstd, want_invstd) &&
         Expect(context, "a (fold_coefficients)", a, want_a) && Expect(context, "b (fold_coefficients)", b, want_b);
}

bool ChannelTester::TestFold(const IsaKernels& isa) const {
  Rng rng(seed_);
  const Guarded<float> mean = Input<float>(misalign_, [&] { return DrawFloat(rng); });
  const Guarded<float> var = Input<float>(misalign_ + 1, [&] { return DrawFloat(rng, true); });
  const Guarded<float> gamma = Input<float>(misalign_, [&] { return DrawFloat(rng); });
  const Guarded<float> beta = Input<float>(misalign_ + 1, [&] { return DrawFloat(rng); });
  Guarded<float> a = Output<float>(misalign_), b = Output<float>(misalign_ + 3);
  isa.table->fold_rows(mean.data(), var.data(), gamma.data(), beta.data(), c_, static_cast<double>(eps_), a.data(),
                       b.data());
  std::vector<float> want_a(c_), want_b(c_);
  for (std::size_t j = 0; j < c_; ++j) {
    const double invstd = 1.0 / std::sqrt(static_cast<double>(var.data()[j]) + static_cast<double>(eps_));
    const simdnorm::Coefficients co = simdnorm::fold_coefficients(gamma.data(), beta.data(), j, mean.data()[j], invstd);
    want_a[j] = co.a, want_b[j] = co.b;
  }
  const std::string context = Context("fold_rows", isa);
  return Expect(context, "a (fold_coefficients)", a, want_a) && Expect(context, "b (fold_coefficients)", b, want_b);
}

bool ChannelTester::TestFoldSaved(const IsaKernels& isa) const {
  Rng rng(seed_);
  const Guarded<float> mean = Input<float>(misalign_, [&] { return DrawFloat(rng); });
  const Guarded<float> invstd = Input<float>(misalign_ + 1, [&] { return DrawFloat(rng, true); });
  const Guarded<float> gamma = Input<float>(misalign_ + 2, [&] { return DrawFloat(rng); });
  const Guarded<float> beta = Input<float>(misalign_, [&] { return DrawFloat(rng); });
  Guarded<float> a = Output<float>(misalign_ + 1), b = Output<float>(misalign_);
  isa.table->fold_saved_rows(mean.data(), invstd.data(), gamma.data(), beta.data(), c_, a.data(), b.data());
  std::vector<float> want_a(c_), want_b(c_);
  for (std::size_t j = 0; j < c_; ++j) {
    const simdnorm::Coefficients co =
        simdnorm::fold_coefficients(gamma.data(), beta.data(), j, mean.data()[j], invstd.data()[j]);
    want_a[j] = co.a, want_b[j] = co.b;
  }
  const std::string context = Context("fold_saved_rows", isa);
  return Expect(context, "a (fold_coefficients)", a, want_a) && Expect(context, "b (fold_coefficients)", b, want_b);
}

bool ChannelTester::TestGradFinish(const IsaKernels& isa) const {
  Rng rng(seed_);
  const Guarded<double> sum_dy = Input<double>(misalign_, [&] { return Draw(rng, -300.0, 300.0) * m_; });
  const Guarded<double> sum_dy_xc = Input<double>(misalign_ + 1, [&] { return Draw(rng, -300.0, 300.0) * m_; });
  const Guarded<float> invstd = Input<float>(misalign_, [&] { return DrawFloat(rng, true); });
  const Guarded<float> gamma = Input<float>(misalign_ + 1, [&] { return DrawFloat(rng); });
  Guarded<float> dbeta = Output<float>(misalign_), dgamma = Output<float>(misalign_ + 1);
  Guarded<float> k_dy = Output<float>(misalign_ + 2), mean_dy = Output<float>(misalign_ + 3);
  Guarded<float> mean_dy_xhat = Output<float>(misalign_);
  isa.table->grad_finish_rows(sum_dy.data(), sum_dy_xc.data(), invstd.data(), gamma.data(), c_, m_, dbeta.data(),
                              dgamma.data(), k_dy.data(), mean_dy.data(), mean_dy_xhat.data());
  std::vector<float> want_dbeta(c_), want_dgamma(c_), want_k(c_), want_mean(c_), want_mean_xhat(c_);
  for (std::size_t j = 0; j < c_; ++j) {
    // Σdy'*xhat = Σdy'(x − mean) * invstd in double, as the drivers form it before grad_scalars.
    const double sum_dy_xhat = sum_dy_xc.data()[j] * static_cast<double>(invstd.data()[j]);
    const simdnorm::GradScalars gs =
        simdnorm::grad_scalars(gamma.data()[j], invstd.data()[j], sum_dy.data()[j], sum_dy_xhat, m_);
    want_dbeta[j] = static_cast<float>(sum_dy.data()[j]), want_dgamma[j] = static_cast<float>(sum_dy_xhat);
    want_k[j] = gs.k_dy, want_mean[j] = gs.mean_dy, want_mean_xhat[j] = gs.mean_dy_xhat;
  }
  const std::string context = Context("grad_finish_rows", isa);
  return Expect(context, "dbeta", dbeta, want_dbeta) && Expect(context, "dgamma", dgamma, want_dgamma) &&
         Expect(context, "k_dy (grad_scalars)", k_dy, want_k) &&
         Expect(context, "mean_dy (grad_scalars)", mean_dy, want_mean) &&
         Expect(context, "mean_dy_xhat (grad_scalars)", mean_dy_xhat, want_mean_xhat);
}

bool ChannelTester::TestUpdateRunning(const IsaKernels& isa) const {
  Rng rng(seed_);
  const double keep = 1.0 - momentum_;
  // running_mean and running_var hold exactly c floats: sentinels right after the c-th.
  Guarded<float> running_mean(c_, misalign_, Sentinel<float>()), running_var(c_, misalign_ + 1, Sentinel<float>());
  for (std::size_t j = 0; j < c_; ++j) running_mean[j] = DrawFloat(rng), running_var[j] = DrawFloat(rng, true);
  Guarded<double> mean = Input<double>(misalign_, [&] { return Draw(rng, -46.0, 39.0); });
  const Guarded<double> m2 = Input<double>(misalign_ + 1, [&] { return Draw(rng, -90.0, 80.0, true) * m_; });
  // One channel in four updates its mean by a nearly cancelling sum: the result is then sensitive to every rounding.
  for (std::size_t j = 0; j < c_; ++j) {
    if (rng.below(4) == 0 && momentum_ > 0.0) {
      mean[j] = -keep * running_mean[j] / momentum_ * (1.0 + rng.uniform(-1.0, 1.0) * std::ldexp(1.0, -25));
    }
  }
  std::vector<float> want_mean(running_mean.data(), running_mean.data() + c_);
  std::vector<float> want_var(running_var.data(), running_var.data() + c_);
  for (std::size_t j = 0; j < c_; ++j) {
    const double u = mean.data()[j], q = m2.data()[j];
    if (!std::isfinite(u) || !std::isfinite(q)) continue;  // keeps its running statistics
    want_mean[j] = static_cast<float>(keep * static_cast<double>(want_mean[j]) + momentum_ * u);
    want_var[j] = static_cast<float>(keep * static_cast<double>(want_var[j]) + momentum_ * (q / (m_ - 1.0)));
  }
  isa.table->update_running(mean.data(), m2.data(), c_, m_, momentum_, running_mean.data(), running_var.data());
  const std::string context = Context("update_running", isa);
  return Expect(context, "running_mean", running_mean, want_mean) &&
         Expect(context, "running_var", running_var, want_var);
}

// ---------------------------------------------------------------------------------------------------------------

class ChannelKernels : public KernelTest {};

constexpr double kCounts[] = {2.0, 49.0, 100352.0, 1.0e9 + 7.0};
constexpr float kEps[] = {1e-5f, 0.0f, 1e-3f};
constexpr double kMomentum[] = {0.1, 0.01, 0.5, 1.0, 0.0};

// Runs `test` on every channel count, typical and extreme data, a few counts, and eps, momentum and misalignment
// drawn for each case.
template <class Test>
void ForEachCase(const Test& test) {
  FailureBudget budget;
  for (std::size_t c : ChannelCounts()) {
    for (bool extreme : {false, true}) {
      for (std::size_t k = 0; k < std::size(kCounts); ++k) {
        CaseChoices pick({c, extreme, k});
        ChannelTester t;
        t.c(c).extreme(extreme).count(kCounts[k]).eps(kEps[pick.below(std::size(kEps))]).misalign(pick.below(3));
        t.momentum(kMomentum[pick.below(std::size(kMomentum))]).seed(pick.below(1u << 30));
        if (!budget.Record(test(t))) return;
      }
    }
  }
}

TEST_P(ChannelKernels, CenterRows) {
  ForEachCase([&](const ChannelTester& t) { return t.TestCenter(GetParam()); });
}
TEST_P(ChannelKernels, StatsRows) {
  ForEachCase([&](const ChannelTester& t) { return t.TestStats(GetParam()); });
}
TEST_P(ChannelKernels, FoldRows) {
  ForEachCase([&](const ChannelTester& t) { return t.TestFold(GetParam()); });
}
TEST_P(ChannelKernels, FoldSavedRows) {
  ForEachCase([&](const ChannelTester& t) { return t.TestFoldSaved(GetParam()); });
}
TEST_P(ChannelKernels, GradFinishRows) {
  ForEachCase([&](const ChannelTester& t) { return t.TestGradFinish(GetParam()); });
}
TEST_P(ChannelKernels, UpdateRunning) {
  ForEachCase([&](const ChannelTester& t) { return t.TestUpdateRunning(GetParam()); });
}

SIMDNORM_INSTANTIATE_PER_KERNEL_ISA(ChannelKernels);

}  // namespace
}  // namespace kernel_test
}  // namespace simdnorm_test
