// The moments family: moments_run over run walks (the short-run path, blocked runs, partial ranges, strides),
// moments_rows over row walks, and merge_rows bit for bit against core/moments.hpp's chan_merge on the same numbers.
//
// Tolerances (u = FLT_EPSILON / 2). The kernels shift each value by K in float (one rounding), sum blocks of at most
// 16 vectors pairwise in float (4 roundings deep) and merge the blocks in double: |Δsum| <= 5u Σ|x − K|, allowed
// 8u. M2 is taken in float about each block's rounded mean, with the same depth, and merged with Chan's formula from
// the rounded block sums: allowed 32u Σ(|x − mean| + |x − K|)². On exact data (integers symmetric around an integer
// mean) every float step is exact: count and sum must match bit for bit, and M2 up to the rounding of the double
// merges (Chan's weights 1/n are inexact), 16 DBL_EPSILON of the same scale, far below the 1 that one misplaced
// value moves it by.
#include <algorithm>
#include <cfloat>
#include <cmath>
#include <iterator>
#include <sstream>

#include "core/moments.hpp"
#include "tester.hpp"

namespace simdnorm_test {
namespace kernel_test {
namespace {

constexpr double kSumUlps = 4.0;           // of FLT_EPSILON
constexpr double kM2Ulps = 16.0;           // of FLT_EPSILON
constexpr double kExactM2DoubleUlps = 16;  // of DBL_EPSILON

struct TestTag {};  // instantiation tag of core/moments.hpp in this test

// Double two-pass moments of a set of values about a shift, and the magnitudes the tolerances scale with.
struct ReferenceMoments {
  double sum = 0.0, m2 = 0.0;
  double abs_sum = 0.0;  // Σ|x − K|
  double spread = 0.0;   // Σ(|x − mean| + |x − K|)²
};
ReferenceMoments Reference(const std::vector<double>& v, float shift) {
  ReferenceMoments r;
  const double k = shift;
  for (double x : v) r.sum += x - k, r.abs_sum += std::fabs(x - k);
  const double mean = k + r.sum / static_cast<double>(v.size());
  for (double x : v) {
    r.m2 += (x - mean) * (x - mean);
    const double s = std::fabs(x - mean) + std::fabs(x - k);
    r.spread += s * s;
  }
  return r;
}

class MomentsTester {
 public:
  // Run walks.
  MomentsTester& runs(std::size_t v) { return set(shape_.runs, v); }
  MomentsTester& len(std::size_t v) { return set(shape_.len, v); }
  MomentsTester& gap(std::size_t v) { return set(gap_, v); }
  MomentsTester& range(std::size_t begin, std::size_t end) {
    begin_ = begin, end_ = end, whole_ = false;
    return *this;
  }
  MomentsTester& fetch(bool v) { return set(fetch_, v); }
  MomentsTester& fetch_floats(std::size_t v) { return set(fetch_floats_, v); }
  MomentsTester& fetch_end(std::size_t v) { return set(fetch_end_, v); }
  // Row walks.
  MomentsTester& rows(std::size_t v) { return set(rows_.rows, v); }
  MomentsTester& c(std::size_t v) { return set(rows_.c, v); }
  // Both: floats by which the tensor is offset from a 64-byte boundary.
  MomentsTester& misalign(std::size_t v) { return set(misalign_, v); }
  // Data: mean + stddev * N(0, 1) per value, or (exact) integers mean ± 1..8 in symmetric pairs.
  MomentsTester& scale(double mean, double stddev) {
    mean_ = mean, stddev_ = stddev;
    return *this;
  }
  MomentsTester& exact(bool v = true) { return set(exact_, v); }
  MomentsTester& seed(std::uint64_t v) { return set(seed_, v); }
  // merge_rows: counts of the two sets.
  MomentsTester& counts(double na, double nb) {
    na_ = na, nb_ = nb;
    return *this;
  }

  bool TestRun(const IsaKernels& isa) const;
  bool TestRows(const IsaKernels& isa) const;
  bool TestMerge(const IsaKernels& isa) const;

 private:
  template <class T, class V>
  MomentsTester& set(T& field, V value) {
    field = value;
    return *this;
  }
  RunShape run_shape() const {
    RunShape s = shape_;
    s.stride = s.len + gap_;
    s.begin = whole_ ? 0 : begin_;
    s.end = whole_ ? s.runs * s.len : end_;
    return s;
  }
  std::string DataString() const {
    std::ostringstream s;
    s << (exact_ ? "exact data around " : "data ") << mean_ << " ± " << stddev_ << ", misalign=" << misalign_
      << ", seed=" << seed_;
    return s.str();
  }
  // n values of the data distribution, and (exact data) a shift that keeps them exact.
  std::vector<float> Values(Rng& rng, std::size_t n, double mean) const {
    std::vector<float> v(n);
    if (!exact_) {
      for (float& x : v) x = static_cast<float>(mean + stddev_ * rng.normal());
      return v;
    }
    const double mu = std::round(mean);
    for (std::size_t i = 0; i + 1 < n; i += 2) {
      const double d = 1.0 + rng.below(8);
      v[i] = static_cast<float>(mu + d), v[i + 1] = static_cast<float>(mu - d);
    }
    if (n % 2 != 0) v[n - 1] = static_cast<float>(mu);
    for (std::size_t i = n; i > 1; --i) std::swap(v[i - 1], v[rng.below(static_cast<std::uint32_t>(i))]);
    return v;
  }
  float Shift(Rng& rng, double mean) const {
    return exact_ ? static_cast<float>(std::round(mean) + rng.below(17) - 8.0)
                  : static_cast<float>(mean + stddev_ * rng.normal());
  }
  // The checks of one channel's moments against the reference.
  bool Check(const std::string& context, const std::string& where, std::size_t n, double count, double sum, double m2,
             const ReferenceMoments& ref) const;

  RunShape shape_;
  std::size_t gap_ = 0, begin_ = 0, end_ = 0;
  bool whole_ = true, fetch_ = true;
  std::size_t fetch_floats_ = 0, fetch_end_ = 0;
  RowShape rows_;
  std::size_t misalign_ = 0;
  double mean_ = 0.0, stddev_ = 1.0;
  bool exact_ = false;
  std::uint64_t seed_ = 1;
  double na_ = 1.0, nb_ = 1.0;
};

bool MomentsTester::Check(const std::string& context, const std::string& where, std::size_t n, double count, double sum,
                          double m2, const ReferenceMoments& ref) const {
  const WhereFn at = [&](std::size_t) { return where; };
  const double want_count = static_cast<double>(n);
  bool ok = ExpectBitwise(context, "count", &count, &want_count, 1, at);
  if (exact_) {
    ok = ExpectBitwise(context, "sum (exact data)", &sum, &ref.sum, 1, at) && ok;
    const double tol = kExactM2DoubleUlps * DBL_EPSILON * ref.spread;
    return ExpectWithin(context, "m2 (exact data)", &m2, &ref.m2, &tol, 1, at) && ok;
  }
  const double sum_tol = kSumUlps * FLT_EPSILON * ref.abs_sum, m2_tol = kM2Ulps * FLT_EPSILON * ref.spread;
  ok = ExpectWithin(context, "sum", &sum, &ref.sum, &sum_tol, 1, at) && ok;
  return ExpectWithin(context, "m2", &m2, &ref.m2, &m2_tol, 1, at) && ok;
}

bool MomentsTester::TestRun(const IsaKernels& isa) const {
  const RunShape s = run_shape();
  std::ostringstream context;
  context << "moments_run [" << isa.name << "] " << s.Describe() << " fetch=" << fetch_
          << " fetch_floats=" << fetch_floats_ << " fetch_end=" << fetch_end_ << ", " << DataString();
  Rng rng(seed_);
  Guarded<float> x(s.extent(), misalign_, PoisonFloat());  // what the walk must not read stays NaN
  const std::vector<float> values = Values(rng, s.end - s.begin, mean_);
  for (std::size_t e = s.begin; e < s.end; ++e) x[s.offset(e)] = values[e - s.begin];
  // The drivers' shift is the channel's first value, outside a walk that starts later.
  const float shift = s.begin == 0 && !exact_ ? values[0] : Shift(rng, mean_);
  const simdnorm::RunWalk walk{s.stride, s.len, s.begin, s.end, fetch_end_, false, fetch_floats_, fetch_};
  const simdnorm::Moments got = isa.table->moments_run(x.data(), walk, shift);
  const ReferenceMoments ref = Reference(std::vector<double>(values.begin(), values.end()), shift);
  return Check(context.str(), "the walk", values.size(), got.count, got.sum, got.m2, ref);
}

bool MomentsTester::TestRows(const IsaKernels& isa) const {
  RowShape s = rows_;
  s.stride = s.c + gap_;
  const std::size_t c = s.c, padded = simdnorm::padded_channels(c);
  std::ostringstream context;
  context << "moments_rows [" << isa.name << "] " << s.Describe() << " fetch=" << fetch_ << ", " << DataString();
  Rng rng(seed_);
  Guarded<float> x(s.extent(), misalign_, PoisonFloat());
  std::vector<std::vector<float>> channels(c);
  for (std::size_t j = 0; j < c; ++j) {
    channels[j] = Values(rng, s.rows, mean_ + 4.0 * stddev_ * rng.normal());  // channels of different means
    for (std::size_t r = 0; r < s.rows; ++r) x[r * s.stride + j] = channels[j][r];
  }
  Guarded<float> shift = PaddedArray<float>(c, misalign_ % 2, PoisonFloat());
  for (std::size_t j = 0; j < c; ++j) shift[j] = x[j];  // the first row, as the drivers take it
  // The kernel writes (not adds) sum and m2: they start as NaN.
  Guarded<double> sum(padded, 0, Sentinel<double>()), m2(padded, 1, Sentinel<double>());
  std::fill(sum.data(), sum.data() + padded, PoisonDouble());
  std::fill(m2.data(), m2.data() + padded, PoisonDouble());
  const simdnorm::RowWalk walk{s.rows, s.stride, c, fetch_};
  isa.table->moments_rows(x.data(), walk, shift.data(), sum.data(), m2.data());
  bool ok = ExpectGuards(context.str(), "sum", sum, Sentinel<double>()) &&
            ExpectGuards(context.str(), "m2", m2, Sentinel<double>());
  for (std::size_t j = 0; j < c && ok; ++j) {
    const ReferenceMoments ref = Reference(std::vector<double>(channels[j].begin(), channels[j].end()), shift[j]);
    ok = Check(context.str(), "channel " + std::to_string(j), s.rows, static_cast<double>(s.rows), sum[j], m2[j], ref);
  }
  return ok;
}

bool MomentsTester::TestMerge(const IsaKernels& isa) const {
  const std::size_t c = rows_.c, padded = simdnorm::padded_channels(c);
  std::ostringstream context;
  context << "merge_rows [" << isa.name << "] c=" << c << " na=" << na_ << " nb=" << nb_ << ", " << DataString();
  Rng rng(seed_);
  // Sums relative to a common shift and M2 of sets of na and nb values: means and spreads over many magnitudes.
  auto draw = [&](Guarded<double>& s, Guarded<double>& q, double n) {
    for (std::size_t j = 0; j < c; ++j) {
      const double spread = std::fabs(static_cast<double>(LogUniform(rng, -6.0, 6.0)));
      s[j] = n * (mean_ + spread * rng.normal());
      q[j] = n * spread * spread * rng.uniform(0.1, 2.0);
    }
  };
  Guarded<double> sum = PaddedArray<double>(c, 0, Sentinel<double>()),
                  m2 = PaddedArray<double>(c, 1, Sentinel<double>());
  Guarded<double> sum_b = PaddedArray<double>(c, 1, Sentinel<double>()),
                  m2_b = PaddedArray<double>(c, 0, Sentinel<double>());
  draw(sum, m2, na_);
  draw(sum_b, m2_b, nb_);
  std::vector<double> want_sum(sum.data(), sum.data() + c), want_m2(m2.data(), m2.data() + c);
  const simdnorm::ChanWeights<TestTag> weights(na_, nb_);
  for (std::size_t j = 0; j < c; ++j) simdnorm::chan_merge(want_sum[j], want_m2[j], sum_b[j], m2_b[j], weights);
  const auto b_sum = sum_b.storage(), b_m2 = m2_b.storage();
  isa.table->merge_rows(sum.data(), m2.data(), sum_b.data(), m2_b.data(), c, na_, nb_);
  const WhereFn channel = [](std::size_t j) { return "channel " + std::to_string(j); };
  const auto in_padded = [&](std::ptrdiff_t i) { return ChannelWhere(i, c, padded); };
  return ExpectBitwise(context.str(), "sum vs chan_merge", sum.data(), want_sum.data(), c, channel) &&
         ExpectBitwise(context.str(), "m2 vs chan_merge", m2.data(), want_m2.data(), c, channel) &&
         ExpectGuards(context.str(), "sum", sum, Sentinel<double>()) &&
         ExpectGuards(context.str(), "m2", m2, Sentinel<double>()) &&
         ExpectStorage(context.str(), "sum_b (an input)", sum_b, b_sum, in_padded) &&
         ExpectStorage(context.str(), "m2_b (an input)", m2_b, b_m2, in_padded);
}

// ---------------------------------------------------------------------------------------------------------------

class MomentsKernels : public KernelTest {};

struct Scale {
  double mean, stddev;
};
constexpr Scale kScales[] = {{0.0, 1.0}, {1.0e4, 1.0e-2}, {-3.0e5, 10.0}, {1.0e-3, 1.0e-6}, {5.0, 1.0e3}};

// One whole run of every length up to and past the short-run path (16 vectors of the widest ISA), every scale.
TEST_P(MomentsKernels, WholeSingleRun) {
  FailureBudget budget;
  for (std::size_t len = 1; len <= 16 * simdnorm::kMaxLanes + 17; ++len) {
    for (std::size_t k = 0; k <= std::size(kScales); ++k) {
      const bool exact = k == std::size(kScales);
      const Scale sc = exact ? Scale{-37.0, 1.0} : kScales[k];
      if (!budget.Record(MomentsTester()
                             .len(len)
                             .scale(sc.mean, sc.stddev)
                             .exact(exact)
                             .misalign(len % 3)
                             .seed(MixSeed({len, k}))
                             .TestRun(GetParam()))) {
        return;
      }
    }
  }
}

// Several runs with and without gaps between them, whole and in part: ranges that start and end inside runs.
TEST_P(MomentsKernels, RunsAndRanges) {
  std::vector<std::size_t> lens;
  for (std::size_t len = 1; len <= 33; ++len) lens.push_back(len);
  for (std::size_t len : {49, 63, 64, 65, 127, 128, 129, 196, 255, 256, 257, 784}) lens.push_back(len);
  FailureBudget budget;
  for (std::size_t runs : {2, 3, 5, 17}) {
    for (std::size_t len : lens) {
      for (std::size_t gap : {0, 7}) {
        const std::size_t total = runs * len;
        Rng pick(MixSeed({runs, len, gap}));
        // whole; from inside the first run; to inside the last run; both; within one run; one run that is not the first
        const std::size_t b = 1 + pick.below(static_cast<std::uint32_t>(len)),
                          e = total - pick.below(static_cast<std::uint32_t>(len));
        const std::size_t one = (runs / 2) * len;
        const std::pair<std::size_t, std::size_t> ranges[] = {
            {0, total}, {b, total}, {0, e}, {b < e ? b : 0, e}, {one + len / 3, one + len - len / 4}, {one, one + len}};
        for (const auto& r : ranges) {
          if (r.first >= r.second) continue;
          CaseChoices pick({runs, len, gap, r.first, r.second});
          const Scale sc = kScales[pick.below(std::size(kScales))];
          MomentsTester t;
          t.runs(runs).len(len).gap(gap).range(r.first, r.second).misalign(pick.below(4)).seed(pick.below(1u << 30));
          t.scale(sc.mean, sc.stddev).exact(pick.one_in(3)).fetch(pick.one_in(2)).fetch_end(pick.one_in(4) ? total : 0);
          if (!budget.Record(t.TestRun(GetParam()))) return;
        }
      }
    }
  }
}

// Runs longer than 2^16 floats (by default, the longest whose walk prefetches the next run: longer ones prefetch
// within themselves), and short runs whose walk prefetches a block of adjacent channels' runs (RunWalk::fetch_floats).
TEST_P(MomentsKernels, LongRunsAndGroupFetch) {
  const std::size_t long_len = (std::size_t{1} << 16) + 4099;
  EXPECT_TRUE(MomentsTester().runs(2).len(long_len).gap(5).scale(3.0, 2.0).seed(1).TestRun(GetParam()));
  EXPECT_TRUE(
      MomentsTester().runs(2).len(long_len).range(11, 2 * long_len - 13).scale(-1.0, 0.5).seed(2).TestRun(GetParam()));
  EXPECT_TRUE(MomentsTester().runs(2).len(long_len).exact().scale(100.0, 1.0).seed(3).TestRun(GetParam()));
  for (std::size_t len : {49, 196}) {
    for (std::size_t floats : {len, 4 * len, 16 * len}) {
      EXPECT_TRUE(MomentsTester()
                      .runs(24)
                      .len(len)
                      .gap(15 * len)
                      .fetch_floats(floats)
                      .fetch_end(24 * len)
                      .seed(len + floats)
                      .TestRun(GetParam()));
      EXPECT_TRUE(MomentsTester()
                      .runs(24)
                      .len(len)
                      .gap(3)
                      .range(len / 2, 20 * len + 5)
                      .fetch_floats(floats)
                      .exact()
                      .scale(7.0, 1.0)
                      .seed(floats)
                      .TestRun(GetParam()));
    }
  }
}

TEST_P(MomentsKernels, Rows) {
  std::vector<std::size_t> row_counts;
  for (std::size_t rows = 1; rows <= 17; ++rows) row_counts.push_back(rows);
  for (std::size_t rows : {32, 33, 100}) row_counts.push_back(rows);
  FailureBudget budget;
  for (std::size_t c : ChannelCounts()) {
    for (std::size_t rows : row_counts) {
      if (c > 100 && rows % 8 != 1) continue;  // wide rows: 1, 9, 17 and 33 of them (narrower: every count)
      CaseChoices pick({c, rows});
      const Scale sc = kScales[pick.below(std::size(kScales))];
      MomentsTester t;
      t.rows(rows).c(c).gap(pick.one_in(3) ? 5 : 0).misalign(pick.below(4)).seed(pick.below(1u << 30));
      t.scale(sc.mean, sc.stddev).exact(pick.one_in(4)).fetch(pick.one_in(7));
      if (!budget.Record(t.TestRows(GetParam()))) return;
    }
  }
  // Enough rows that the prefetch of blocks ahead runs (RowWalk::fetch).
  for (std::size_t c : {16, 64, 100})
    EXPECT_TRUE(MomentsTester().rows(75).c(c).gap(3).fetch(true).seed(c).TestRows(GetParam()));
}

// merge_rows is chan_merge on channels side by side: the same numbers in, the same bits out.
TEST_P(MomentsKernels, MergeRows) {
  const std::pair<double, double> counts[] = {{1, 1}, {3, 5}, {8, 8}, {7, 1000}, {12345, 3}, {1048577, 1048575}};
  FailureBudget budget;
  for (std::size_t c : ChannelCounts()) {
    for (const auto& n : counts) {
      for (std::uint64_t k = 0; k < 3; ++k) {
        const double mean = k == 0 ? 0.0 : k == 1 ? -250.0 : 1.0e7;
        if (!budget.Record(MomentsTester()
                               .c(c)
                               .counts(n.first, n.second)
                               .scale(mean, 1.0)
                               .seed(MixSeed({c, static_cast<std::uint64_t>(n.first), k}))
                               .TestMerge(GetParam()))) {
          return;
        }
      }
    }
  }
}

SIMDNORM_INSTANTIATE_PER_KERNEL_ISA(MomentsKernels);

}  // namespace
}  // namespace kernel_test
}  // namespace simdnorm_test
