// The backward family: the reductions Σdy' and Σdy'(x − mean) over run and row walks against double sums, add_rows
// bit for bit against sequential double additions in part order, and dx bit for bit against the kernels' formula in
// scalar float: dx = k_dy * fnma(xhat, mean_dy_xhat, dy' − mean_dy), xhat = (x − mean)*invstd, dy' = 0 where the
// forward's a*x + b <= 0 (ReLU), with the ISA's own multiply-adds (fused on avx2 and avx512).
//
// Tolerance of the sums (u = FLT_EPSILON / 2): blocks of 8 vectors are summed one after the other in float (7
// roundings; 8 for the multiply-adds, and one more for x − mean) before they are added in double: |Δ| <= 9u Σ|term|,
// allowed 16u.
#include <cfloat>
#include <cmath>
#include <sstream>

#include "tester.hpp"

namespace simdnorm_test {
namespace kernel_test {
namespace {

constexpr double kSumUlps = 8.0;  // of FLT_EPSILON

enum class Over { kNothing, kDy, kX };  // what dx is written over

class GradTester {
 public:
  GradTester& runs(std::size_t v) { return set(run_.runs, v); }
  GradTester& len(std::size_t v) { return set(run_.len, v); }
  GradTester& range(std::size_t begin, std::size_t end) {
    begin_ = begin, end_ = end, whole_ = false;
    return *this;
  }
  GradTester& last_first(bool v = true) { return set(last_first_, v); }
  GradTester& rows(std::size_t v) { return set(row_.rows, v); }
  GradTester& c(std::size_t v) { return set(row_.c, v); }
  GradTester& gap(std::size_t v) { return set(gap_, v); }
  GradTester& relu(bool v = true) { return set(relu_, v); }
  GradTester& stream(bool v = true) { return set(stream_, v); }
  GradTester& over(Over v) { return set(over_, v); }
  GradTester& fetch(bool v) { return set(fetch_, v); }
  // add_rows: parts of the sums, part_stride apart.
  GradTester& parts(std::size_t count, std::size_t stride) {
    parts_ = count, part_stride_ = stride;
    return *this;
  }
  // Special values (zeros, infinities, NaN, x equal to the mean, dy = -0) among the data of dx.
  GradTester& special(bool v = true) { return set(special_, v); }
  // Only signed zeros where they meet: x equal to the mean (xhat = +0), dy = ±0, mean_dy = 0.
  GradTester& zeros(bool v = true) { return set(zeros_, v); }
  GradTester& misalign(std::size_t v) { return set(misalign_, v); }
  GradTester& seed(std::uint64_t v) { return set(seed_, v); }

  bool TestSumsRun(const IsaKernels& isa) const;
  bool TestSumsRows(const IsaKernels& isa) const;
  bool TestAddRows(const IsaKernels& isa) const;
  bool TestInputRun(const IsaKernels& isa) const;
  bool TestInputRows(const IsaKernels& isa) const;

 private:
  template <class T, class V>
  GradTester& set(T& field, V value) {
    field = value;
    return *this;
  }
  RunShape run_shape() const {
    RunShape s = run_;
    s.stride = s.len + gap_;
    s.begin = whole_ ? 0 : begin_, s.end = whole_ ? s.runs * s.len : end_;
    return s;
  }
  RowShape row_shape() const {
    RowShape s = row_;
    s.stride = s.c + gap_;
    return s;
  }
  std::string Flags() const {
    static const char* const kOver[] = {" out-of-place", " dx over dy", " dx over x"};
    std::ostringstream s;
    s << kOver[static_cast<int>(over_)] << (relu_ ? " relu" : "") << (stream_ ? " stream" : "")
      << (special_ ? " special" : "") << (zeros_ ? " zeros" : "") << " misalign=" << misalign_ << " seed=" << seed_;
    return s.str();
  }
  // One channel's coefficients; with special data, one channel in four has mean_dy = 0.
  simdnorm::GradCoefficients Coefficients(Rng& rng) const {
    simdnorm::GradCoefficients k;
    k.mean = static_cast<float>(2.0 * rng.normal());
    k.invstd = std::fabs(LogUniform(rng, -1.0, 1.0));
    k.a = static_cast<float>(rng.normal()), k.b = static_cast<float>(rng.normal());
    k.k_dy = static_cast<float>(rng.normal()), k.mean_dy = static_cast<float>(0.1 * rng.normal());
    k.mean_dy_xhat = static_cast<float>(0.1 * rng.normal());
    if ((special_ && rng.below(4) == 0) || zeros_) k.mean_dy = 0.0f;
    return k;
  }
  // x and dy of one element of a channel; with special data one in six holds a special value in x or in dy, x equal
  // to the mean (xhat = +0), or that and dy = -0.
  void Draw(Rng& rng, const simdnorm::GradCoefficients& k, float& x, float& dy) const {
    x = static_cast<float>(k.mean + 2.0 * rng.normal()), dy = static_cast<float>(rng.normal());
    if (zeros_) x = k.mean, dy = rng.coin() ? -0.0f : 0.0f;
    if (!special_ || rng.below(6) != 0) return;
    switch (rng.below(4)) {
      case 0:
        x = SpecialFloat(rng);
        break;
      case 1:
        dy = SpecialFloat(rng);
        break;
      case 2:
        x = k.mean;
        break;
      default:
        x = k.mean, dy = -0.0f;
        break;
    }
  }
  float MaskedDy(bool fused, float x, float dy, const simdnorm::GradCoefficients& k) const {
    return relu_ && MulAdd(fused, k.a, x, k.b) <= 0.0f ? 0.0f : dy;
  }
  float Dx(bool fused, float x, float dy, const simdnorm::GradCoefficients& k) const {
    const float xhat = (x - k.mean) * k.invstd;
    return k.k_dy * NegMulAdd(fused, xhat, k.mean_dy_xhat, MaskedDy(fused, x, dy, k) - k.mean_dy);
  }
  // The positions of a walk over `extent` floats, for channel(i) of position i (or none), with x, dy and dx laid
  // out for over_: one call of `call`, then dx everywhere and the inputs that dx is not written over.
  template <class Call>
  bool Input(const IsaKernels& isa, const std::string& context, std::size_t extent,
             const std::function<const simdnorm::GradCoefficients*(std::size_t)>& channel,
             const std::function<std::string(std::ptrdiff_t)>& where, const Call& call) const;

  RunShape run_;
  RowShape row_;
  std::size_t begin_ = 0, end_ = 0, gap_ = 0;
  bool whole_ = true, last_first_ = false, relu_ = false, stream_ = false, fetch_ = true, special_ = false,
       zeros_ = false;
  Over over_ = Over::kNothing;
  std::size_t parts_ = 2, part_stride_ = 0, misalign_ = 0;
  std::uint64_t seed_ = 1;
};

// ---- the sums ----

struct Sums {
  double dy = 0.0, dy_xc = 0.0, abs_dy = 0.0, abs_dy_xc = 0.0;
};

bool GradTester::TestSumsRun(const IsaKernels& isa) const {
  const RunShape s = run_shape();
  Rng rng(seed_);
  const simdnorm::GradCoefficients k = Coefficients(rng);
  std::ostringstream context;
  context << "grad_sums_run [" << isa.name << "] " << s.Describe() << " fetch=" << fetch_ << Flags();
  Guarded<float> x(s.extent(), misalign_, PoisonFloat()), dy(s.extent(), (misalign_ + 1) % 4, PoisonFloat());
  Sums want;
  for (std::size_t e = s.begin; e < s.end; ++e) {
    const std::size_t i = s.offset(e);
    x[i] = static_cast<float>(k.mean + 2.0 * rng.normal()), dy[i] = static_cast<float>(rng.normal());
    const double g = MaskedDy(isa.fused, x[i], dy[i], k), xc = static_cast<double>(x[i]) - k.mean;
    want.dy += g, want.dy_xc += g * xc, want.abs_dy += std::fabs(g), want.abs_dy_xc += std::fabs(g * xc);
  }
  const simdnorm::RunWalk walk{s.stride, s.len, s.begin, s.end, 0, false, 0, fetch_};
  double got[2] = {PoisonDouble(), PoisonDouble()};
  isa.table->grad_sums_run(x.data(), dy.data(), walk, k, relu_, &got[0], &got[1]);
  const double wanted[2] = {want.dy, want.dy_xc};
  const double tol[2] = {kSumUlps * FLT_EPSILON * want.abs_dy, kSumUlps * FLT_EPSILON * want.abs_dy_xc};
  return ExpectWithin(context.str(), "sums", got, wanted, tol, 2,
                      [](std::size_t i) { return i == 0 ? "sum_dy" : "sum_dy_xc"; });
}

bool GradTester::TestSumsRows(const IsaKernels& isa) const {
  const RowShape s = row_shape();
  const std::size_t c = s.c;
  Rng rng(seed_);
  std::ostringstream context;
  context << "grad_sums_rows [" << isa.name << "] " << s.Describe() << " fetch=" << fetch_ << Flags();
  std::vector<simdnorm::GradCoefficients> k(c);
  Guarded<float> mean = PaddedArray<float>(c, 0, PoisonFloat()), a = PaddedArray<float>(c, 1, PoisonFloat());
  Guarded<float> b = PaddedArray<float>(c, 2, PoisonFloat());
  for (std::size_t j = 0; j < c; ++j) k[j] = Coefficients(rng), mean[j] = k[j].mean, a[j] = k[j].a, b[j] = k[j].b;
  Guarded<float> x(s.extent(), misalign_, PoisonFloat()), dy(s.extent(), (misalign_ + 2) % 4, PoisonFloat());
  // The kernel adds into the sums: they start from values of their own.
  Guarded<double> sum_dy = PaddedArray<double>(c, 0, Sentinel<double>());
  Guarded<double> sum_dy_xc = PaddedArray<double>(c, 1, Sentinel<double>());
  std::vector<Sums> want(c);
  for (std::size_t j = 0; j < c; ++j) {
    sum_dy[j] = want[j].dy = rng.normal(), sum_dy_xc[j] = want[j].dy_xc = rng.normal();
    want[j].abs_dy = std::fabs(want[j].dy), want[j].abs_dy_xc = std::fabs(want[j].dy_xc);
  }
  for (std::size_t r = 0; r < s.rows; ++r) {
    for (std::size_t j = 0; j < c; ++j) {
      const std::size_t i = r * s.stride + j;
      x[i] = static_cast<float>(k[j].mean + 2.0 * rng.normal()), dy[i] = static_cast<float>(rng.normal());
      const double g = MaskedDy(isa.fused, x[i], dy[i], k[j]), xc = static_cast<double>(x[i]) - k[j].mean;
      want[j].dy += g, want[j].dy_xc += g * xc, want[j].abs_dy += std::fabs(g), want[j].abs_dy_xc += std::fabs(g * xc);
    }
  }
  const float* none = nullptr;  // the reduction reads mean, a and b only
  const simdnorm::GradCoefficientArrays arrays{mean.data(), none, a.data(), b.data(), none, none, none};
  isa.table->grad_sums_rows(x.data(), dy.data(), simdnorm::RowWalk{s.rows, s.stride, c, fetch_}, arrays, relu_,
                            sum_dy.data(), sum_dy_xc.data());
  std::vector<double> got(2 * c), wanted(2 * c), tol(2 * c);
  for (std::size_t j = 0; j < c; ++j) {
    got[2 * j] = sum_dy[j], got[2 * j + 1] = sum_dy_xc[j];
    wanted[2 * j] = want[j].dy, wanted[2 * j + 1] = want[j].dy_xc;
    tol[2 * j] = kSumUlps * FLT_EPSILON * want[j].abs_dy, tol[2 * j + 1] = kSumUlps * FLT_EPSILON * want[j].abs_dy_xc;
  }
  return ExpectGuards(context.str(), "sum_dy", sum_dy, Sentinel<double>()) &&
         ExpectGuards(context.str(), "sum_dy_xc", sum_dy_xc, Sentinel<double>()) &&
         ExpectWithin(context.str(), "sums", got.data(), wanted.data(), tol.data(), 2 * c, [](std::size_t i) {
           return (i % 2 == 0 ? "sum_dy of channel " : "sum_dy_xc of channel ") + std::to_string(i / 2);
         });
}

bool GradTester::TestAddRows(const IsaKernels& isa) const {
  const std::size_t c = row_.c, padded = simdnorm::padded_channels(c), stride = part_stride_, extent = parts_ * stride;
  std::ostringstream context;
  context << "add_rows [" << isa.name << "] c=" << c << " parts=" << parts_ << " part_stride=" << stride << Flags();
  Rng rng(seed_);
  const auto where = [&](std::ptrdiff_t i) {
    if (i < 0 || static_cast<std::size_t>(i) >= extent) return "guard at " + std::to_string(i);
    const auto at = static_cast<std::size_t>(i);
    return "part " + std::to_string(at / stride) + ", " +
           ChannelWhere(static_cast<std::ptrdiff_t>(at % stride), c, padded);
  };
  bool ok = true;
  for (int pass = 0; pass < 2; ++pass) {
    const char* what = pass == 0 ? "sum_dy" : "sum_dy_xc";
    // Parts of padded arrays (padding 0), sentinels between them; magnitudes far apart, so the order matters.
    Guarded<double> sums(extent, misalign_, Sentinel<double>());
    for (std::size_t p = 0; p < parts_; ++p) {
      for (std::size_t j = 0; j < padded; ++j)
        sums[p * stride + j] = j < c ? static_cast<double>(LogUniform(rng, -8, 8)) : 0.0;
    }
    auto want = sums.storage();
    for (std::size_t j = 0; j < c && parts_ >= 2; ++j) {
      double total = sums[j];
      for (std::size_t p = 1; p < parts_; ++p) total += sums[p * stride + j];
      want[sums.first() + j] = total;
    }
    Guarded<double> other(extent, 0, Sentinel<double>());  // the other sum, checked on the other pass
    for (std::size_t p = 0; p < parts_; ++p)
      std::fill(other.data() + p * stride, other.data() + p * stride + padded, 0.0);
    isa.table->add_rows(pass == 0 ? sums.data() : other.data(), pass == 0 ? other.data() : sums.data(), parts_, stride,
                        c);
    ok = ExpectStorage(context.str(), what, sums, want, where) && ok;
  }
  return ok;
}

// ---- dx ----

template <class Call>
bool GradTester::Input(const IsaKernels& isa, const std::string& context, std::size_t extent,
                       const std::function<const simdnorm::GradCoefficients*(std::size_t)>& channel,
                       const std::function<std::string(std::ptrdiff_t)>& where, const Call& call) const {
  Rng rng(MixSeed({seed_, 7}));
  // What dx is written over holds sentinels outside the walk (a stray write of a NaN result would not show on a NaN).
  Guarded<float> x(extent, misalign_, over_ == Over::kX ? Sentinel<float>() : PoisonFloat());
  // misalign 0: all three aligned (the streaming narrow rows want dx so); else each offset differently.
  Guarded<float> dy(extent, misalign_ == 0 ? 0 : (misalign_ + 1) % 4,
                    over_ == Over::kDy ? Sentinel<float>() : PoisonFloat());
  Guarded<float> dx(over_ == Over::kNothing ? extent : 0, misalign_ == 0 ? 0 : (misalign_ + 3) % 4, Sentinel<float>());
  Guarded<float>& out = over_ == Over::kX ? x : over_ == Over::kDy ? dy : dx;
  std::vector<float, CacheLineAllocator<float>> want = out.storage();
  for (std::size_t i = 0; i < extent; ++i) {
    const simdnorm::GradCoefficients* k = channel(i);
    if (k == nullptr) continue;
    Draw(rng, *k, x[i], dy[i]);
    want[out.first() + i] = Dx(isa.fused, x[i], dy[i], *k);
  }
  const auto x_before = x.storage(), dy_before = dy.storage();
  call(x.data(), dy.data(), out.data());
  return ExpectStorage(context, "dx", out, want, where) &&
         (over_ == Over::kX || ExpectStorage(context, "x (an input)", x, x_before, where)) &&
         (over_ == Over::kDy || ExpectStorage(context, "dy (an input)", dy, dy_before, where));
}

bool GradTester::TestInputRun(const IsaKernels& isa) const {
  const RunShape s = run_shape();
  Rng rng(seed_);
  const simdnorm::GradCoefficients k = Coefficients(rng);
  std::ostringstream context;
  context << "grad_input_run [" << isa.name << "] " << s.Describe() << " last_first=" << last_first_
          << " mean=" << FloatString(k.mean) << " mean_dy=" << FloatString(k.mean_dy) << Flags();
  std::vector<bool> in_walk(s.extent(), false);
  for (std::size_t e = s.begin; e < s.end; ++e) in_walk[s.offset(e)] = true;
  const simdnorm::RunWalk walk{s.stride, s.len, s.begin, s.end, 0, last_first_, 0, true};
  return Input(
      isa, context.str(), s.extent(), [&](std::size_t i) { return in_walk[i] ? &k : nullptr; },
      [&](std::ptrdiff_t i) { return s.Where(i); },
      [&](const float* x, const float* dy, float* dx) {
        isa.table->grad_input_run(x, dy, dx, walk, k, relu_, stream_);
      });
}

bool GradTester::TestInputRows(const IsaKernels& isa) const {
  const RowShape s = row_shape();
  const std::size_t c = s.c;
  Rng rng(seed_);
  std::ostringstream context;
  context << "grad_input_rows [" << isa.name << "] " << s.Describe() << Flags();
  std::vector<simdnorm::GradCoefficients> k(c);
  std::vector<Guarded<float>> arrays;
  for (std::size_t i = 0; i < 7; ++i) arrays.push_back(PaddedArray<float>(c, (misalign_ + i) % 3, PoisonFloat()));
  for (std::size_t j = 0; j < c; ++j) {
    k[j] = Coefficients(rng);
    const float values[7] = {k[j].mean, k[j].invstd, k[j].a, k[j].b, k[j].k_dy, k[j].mean_dy, k[j].mean_dy_xhat};
    for (std::size_t i = 0; i < 7; ++i) arrays[i][j] = values[i];
  }
  const simdnorm::GradCoefficientArrays coefficients{arrays[0].data(), arrays[1].data(), arrays[2].data(),
                                                     arrays[3].data(), arrays[4].data(), arrays[5].data(),
                                                     arrays[6].data()};
  const simdnorm::RowWalk walk{s.rows, s.stride, c, false};
  return Input(
      isa, context.str(), s.extent(), [&](std::size_t i) { return i % s.stride < c ? &k[i % s.stride] : nullptr; },
      [&](std::ptrdiff_t i) { return s.Where(i); },
      [&](const float* x, const float* dy, float* dx) {
        isa.table->grad_input_rows(x, dy, dx, walk, coefficients, relu_, stream_);
      });
}

// ---------------------------------------------------------------------------------------------------------------

class GradKernels : public KernelTest {};

std::vector<std::size_t> RunLengths() {
  std::vector<std::size_t> lens;
  for (std::size_t len = 1; len <= 2 * simdnorm::kMaxLanes + 1; ++len) lens.push_back(len);
  for (std::size_t len : {49, 64, 127, 128, 129, 196, 257, 784}) lens.push_back(len);
  return lens;
}

TEST_P(GradKernels, SumsRun) {
  FailureBudget budget;
  for (std::size_t runs : {1, 2, 5}) {
    for (std::size_t len : RunLengths()) {
      const std::size_t total = runs * len;
      for (const auto& r : {std::make_pair(std::size_t{0}, total), std::make_pair(len / 2, total - len / 3)}) {
        for (bool relu : {false, true}) {
          CaseChoices pick({runs, len, r.first, relu});
          GradTester t;
          t.runs(runs).len(len).gap(pick.one_in(3) ? 0 : 6).range(r.first, r.second).relu(relu).fetch(pick.one_in(2));
          if (!budget.Record(t.misalign(pick.below(4)).seed(pick.below(1u << 30)).TestSumsRun(GetParam()))) return;
        }
      }
    }
  }
}

TEST_P(GradKernels, SumsRows) {
  FailureBudget budget;
  for (std::size_t c : ChannelCounts()) {
    for (std::size_t rows = 1; rows <= 17; ++rows) {
      if (c > 100 && rows % 4 != 1) continue;
      for (bool relu : {false, true}) {
        CaseChoices pick({c, rows, relu});
        GradTester t;
        t.rows(rows).c(c).gap(pick.one_in(3) ? 5 : 0).relu(relu).fetch(pick.one_in(5)).misalign(pick.below(4));
        if (!budget.Record(t.seed(pick.below(1u << 30)).TestSumsRows(GetParam()))) return;
      }
    }
  }
  EXPECT_TRUE(GradTester().rows(70).c(100).fetch(true).relu(true).TestSumsRows(GetParam()));
}

TEST_P(GradKernels, AddRows) {
  FailureBudget budget;
  for (std::size_t c : ChannelCounts()) {
    for (std::size_t parts : {1, 2, 3, 5, 9}) {
      for (std::size_t extra : {0, 16}) {
        const std::size_t stride = simdnorm::padded_channels(c) + extra;
        if (!budget.Record(GradTester()
                               .c(c)
                               .parts(parts, stride)
                               .misalign(parts % 3)
                               .seed(MixSeed({c, parts, extra}))
                               .TestAddRows(GetParam()))) {
          return;
        }
      }
    }
  }
}

TEST_P(GradKernels, InputRun) {
  FailureBudget budget;
  for (std::size_t runs : {1, 3}) {
    for (std::size_t len : RunLengths()) {
      const std::size_t total = runs * len;
      for (int mode = 0; mode < 12; ++mode) {  // relu, stream, and what dx is written over
        CaseChoices pick({runs, len, static_cast<std::uint64_t>(mode)});
        GradTester t;
        t.runs(runs).len(len).gap(pick.one_in(3) ? 0 : 5).relu(mode % 2 != 0).stream(mode / 2 % 2 != 0);
        t.over(static_cast<Over>(mode / 4)).last_first(pick.one_in(2)).special(!pick.one_in(3)).misalign(pick.below(4));
        if (pick.one_in(4)) t.range(len / 3, total - len / 4);
        if (!budget.Record(t.seed(pick.below(1u << 30)).TestInputRun(GetParam()))) return;
      }
    }
  }
  EXPECT_TRUE(GradTester().runs(2).len(100003).gap(3).stream(true).relu(true).special(true).TestInputRun(GetParam()));
  EXPECT_TRUE(GradTester().runs(2).len(100003).over(Over::kDy).stream(true).misalign(1).TestInputRun(GetParam()));
}

// dx = k_dy*((dy' − mean_dy) − xhat*mean_dy_xhat) at x = mean and dy = -0, mean_dy = 0: (-0 − 0) − (+0)*m = -0, so
// dx = -0 for k_dy > 0 (+0 for dy = +0); every remainder, both walks.
TEST_P(GradKernels, InputSignedZeros) {
  for (std::size_t len = 1; len <= simdnorm::kMaxLanes + 1; ++len) {
    EXPECT_TRUE(GradTester().len(len).zeros().seed(len).TestInputRun(GetParam()));
    EXPECT_TRUE(GradTester().rows(3).c(len).zeros().seed(len).TestInputRows(GetParam()));
  }
}

TEST_P(GradKernels, InputRows) {
  FailureBudget budget;
  for (std::size_t c : ChannelCounts()) {
    for (std::size_t rows = 1; rows <= 17; ++rows) {
      if (c > 100 && rows % 4 != 1) continue;
      for (int mode = 0; mode < 12; ++mode) {  // relu, stream, and what dx is written over
        CaseChoices pick({c, rows, static_cast<std::uint64_t>(mode)});
        // Gaps that keep rows on 64-byte boundaries (the streaming narrow-row path) or not; aligned tensors or not.
        const std::size_t gap =
            pick.one_in(3) ? 3 : (simdnorm::kMaxLanes - c % simdnorm::kMaxLanes) % simdnorm::kMaxLanes;
        GradTester t;
        t.rows(rows).c(c).gap(gap).relu(mode % 2 != 0).stream(mode / 2 % 2 != 0).over(static_cast<Over>(mode / 4));
        t.special(!pick.one_in(3)).misalign(pick.one_in(2) ? 0 : pick.below(4));
        if (!budget.Record(t.seed(pick.below(1u << 30)).TestInputRows(GetParam()))) return;
      }
    }
  }
}

SIMDNORM_INSTANTIATE_PER_KERNEL_ISA(GradKernels);

}  // namespace
}  // namespace kernel_test
}  // namespace simdnorm_test
