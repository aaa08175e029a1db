// The affine family: y = a*x + b (then ReLU) over a run walk, a row walk and consecutive NCHW planes, bit for bit
// against the scalar formula with the ISA's own multiply-add (fused where xsimd::fma is: avx2, avx512), with ReLU
// and without, in place and not, streaming and not, on every remainder; nothing outside the walk may be written.
#include <cmath>
#include <sstream>

#include "tester.hpp"

namespace simdnorm_test {
namespace kernel_test {
namespace {

class AffineTester {
 public:
  // Run walks (and the plane length of affine_planes).
  AffineTester& runs(std::size_t v) { return set(run_.runs, v); }
  AffineTester& len(std::size_t v) { return set(run_.len, v); }
  AffineTester& range(std::size_t begin, std::size_t end) {
    begin_ = begin, end_ = end, whole_ = false;
    return *this;
  }
  AffineTester& last_first(bool v = true) { return set(last_first_, v); }
  // Row walks.
  AffineTester& rows(std::size_t v) { return set(row_.rows, v); }
  AffineTester& c(std::size_t v) { return set(row_.c, v); }
  // Floats between runs, or between the end of a row's channels and the next row.
  AffineTester& gap(std::size_t v) { return set(gap_, v); }
  // affine_planes: `count` planes of len floats, the first of channel `first` of `channels`.
  AffineTester& planes(std::size_t count, std::size_t first, std::size_t channels) {
    planes_ = count, first_ = first, channels_ = channels;
    return *this;
  }
  AffineTester& inplace(bool v = true) { return set(inplace_, v); }
  AffineTester& relu(bool v = true) { return set(relu_, v); }
  AffineTester& stream(bool v = true) { return set(stream_, v); }
  // Floats by which x and y are offset from a 64-byte boundary (0: aligned, as streaming rows want them).
  AffineTester& misalign(std::size_t x, std::size_t y) {
    x_misalign_ = x, y_misalign_ = y;
    return *this;
  }
  AffineTester& seed(std::uint64_t v) { return set(seed_, v); }

  bool TestRun(const IsaKernels& isa) const;
  bool TestRows(const IsaKernels& isa) const;
  bool TestPlanes(const IsaKernels& isa) const;

 private:
  template <class T, class V>
  AffineTester& set(T& field, V value) {
    field = value;
    return *this;
  }
  std::string Flags() const {
    std::ostringstream s;
    s << (inplace_ ? " inplace" : " out-of-place") << (relu_ ? " relu" : "") << (stream_ ? " stream" : "")
      << " misalign=" << x_misalign_ << "/" << y_misalign_ << " seed=" << seed_;
    return s.str();
  }
  // x values: mostly normal at a random scale, one in eight a special value (zeros, infinities, NaN, denormals).
  static float X(Rng& rng) {
    return rng.below(8) == 0 ? SpecialFloat(rng) : static_cast<float>(rng.normal()) * LogUniform(rng, -3.0, 3.0);
  }
  // Finite coefficients, 0 and -0 among them (the special values come with x).
  static float A(Rng& rng) { return rng.below(16) == 0 ? 0.0f : LogUniform(rng, -3.0, 3.0); }
  static float B(Rng& rng) { return rng.below(16) == 0 ? -0.0f : LogUniform(rng, -3.0, 3.0); }
  float Affine(bool fused, float a, float x, float b) const {
    const float y = MulAdd(fused, a, x, b);
    return relu_ ? Relu(y) : y;
  }
  // Runs one call on x and y (x itself in place) of `extent` floats, whose positions `in_walk` are the walk's; every
  // other position must keep its value (NaN in x, which the kernel must not read; sentinels where it must not write).
  template <class Value, class Call>
  bool Run(const std::string& context, std::size_t extent, const std::vector<bool>& in_walk,
           const std::function<std::string(std::ptrdiff_t)>& where, const Value& value, const Call& call) const;

  RunShape run_;
  RowShape row_;
  std::size_t begin_ = 0, end_ = 0, gap_ = 0;
  bool whole_ = true, last_first_ = false;
  std::size_t planes_ = 1, first_ = 0, channels_ = 1;
  bool inplace_ = false, relu_ = false, stream_ = false;
  std::size_t x_misalign_ = 0, y_misalign_ = 0;
  std::uint64_t seed_ = 1;
};

template <class Value, class Call>
bool AffineTester::Run(const std::string& context, std::size_t extent, const std::vector<bool>& in_walk,
                       const std::function<std::string(std::ptrdiff_t)>& where, const Value& value,
                       const Call& call) const {
  Rng rng(seed_);
  // In place, what lies outside the walk holds sentinels: a stray write of a*NaN + b would not show on a NaN.
  Guarded<float> x(extent, x_misalign_, inplace_ ? Sentinel<float>() : PoisonFloat());
  Guarded<float> y(inplace_ ? 0 : extent, y_misalign_, Sentinel<float>());
  for (std::size_t i = 0; i < extent; ++i) {
    if (in_walk[i]) x[i] = X(rng);
  }
  const auto x_before = x.storage();
  auto want = inplace_ ? x.storage() : y.storage();
  const std::size_t first = inplace_ ? x.first() : y.first();
  for (std::size_t i = 0; i < extent; ++i) {
    if (in_walk[i]) want[first + i] = value(i, x[i]);
  }
  Guarded<float>& out = inplace_ ? x : y;
  call(x.data(), out.data());
  return ExpectStorage(context, "y", out, want, where) &&
         (inplace_ || ExpectStorage(context, "x (an input)", x, x_before, where));
}

bool AffineTester::TestRun(const IsaKernels& isa) const {
  RunShape s = run_;
  s.stride = s.len + gap_;
  s.begin = whole_ ? 0 : begin_, s.end = whole_ ? s.runs * s.len : end_;
  Rng rng(MixSeed({seed_, 1}));
  const float a = A(rng), b = B(rng);
  std::ostringstream context;
  context << "affine_run [" << isa.name << "] " << s.Describe() << " last_first=" << last_first_
          << " a=" << FloatString(a) << " b=" << FloatString(b) << Flags();
  std::vector<bool> in_walk(s.extent(), false);
  for (std::size_t e = s.begin; e < s.end; ++e) in_walk[s.offset(e)] = true;
  const simdnorm::RunWalk walk{s.stride, s.len, s.begin, s.end, 0, last_first_, 0, true};
  return Run(
      context.str(), s.extent(), in_walk, [&](std::ptrdiff_t i) { return s.Where(i); },
      [&](std::size_t, float x) { return Affine(isa.fused, a, x, b); },
      [&](const float* x, float* y) { isa.table->affine_run(x, y, walk, a, b, relu_, stream_); });
}

bool AffineTester::TestRows(const IsaKernels& isa) const {
  RowShape s = row_;
  s.stride = s.c + gap_;
  std::ostringstream context;
  context << "affine_rows [" << isa.name << "] " << s.Describe() << Flags();
  Rng rng(MixSeed({seed_, 2}));
  Guarded<float> a = PaddedArray<float>(s.c, y_misalign_ % 3, PoisonFloat());
  Guarded<float> b = PaddedArray<float>(s.c, x_misalign_ % 3, PoisonFloat());
  for (std::size_t j = 0; j < s.c; ++j) a[j] = A(rng), b[j] = B(rng);
  std::vector<bool> in_walk(s.extent(), false);
  for (std::size_t i = 0; i < s.extent(); ++i) in_walk[i] = i % s.stride < s.c;
  const simdnorm::RowWalk walk{s.rows, s.stride, s.c, false};
  return Run(
      context.str(), s.extent(), in_walk, [&](std::ptrdiff_t i) { return s.Where(i); },
      [&](std::size_t i, float x) { return Affine(isa.fused, a[i % s.stride], x, b[i % s.stride]); },
      [&](const float* x, float* y) { isa.table->affine_rows(x, y, walk, a.data(), b.data(), relu_, stream_); });
}

bool AffineTester::TestPlanes(const IsaKernels& isa) const {
  const std::size_t len = run_.len, extent = planes_ * len;
  std::ostringstream context;
  context << "affine_planes [" << isa.name << "] len=" << len << " count=" << planes_ << " first channel=" << first_
          << " of " << channels_ << Flags();
  Rng rng(MixSeed({seed_, 3}));
  Guarded<float> a(channels_, 0, PoisonFloat()), b(channels_, 1, PoisonFloat());
  for (std::size_t j = 0; j < channels_; ++j) a[j] = A(rng), b[j] = B(rng);
  const std::vector<bool> in_walk(extent, true);
  const auto channel = [&](std::size_t i) { return (first_ + i / len) % channels_; };
  return Run(
      context.str(), extent, in_walk,
      [&](std::ptrdiff_t i) {
        if (i < 0 || static_cast<std::size_t>(i) >= extent) return "guard at " + std::to_string(i);
        const auto at = static_cast<std::size_t>(i);
        return "plane " + std::to_string(at / len) + " (channel " + std::to_string(channel(at)) + "), offset " +
               std::to_string(at % len);
      },
      [&](std::size_t i, float x) { return Affine(isa.fused, a[channel(i)], x, b[channel(i)]); },
      [&](const float* x, float* y) {
        isa.table->affine_planes(x, y, len, planes_, first_, channels_, a.data(), b.data(), relu_, stream_);
      });
}

// ---------------------------------------------------------------------------------------------------------------

class AffineKernels : public KernelTest {};

// Calls test(relu, stream, inplace) for the 8 combinations of the flags.
template <class Test>
bool ForEachMode(const Test& test) {
  for (int mode = 0; mode < 8; ++mode) {
    if (!test((mode & 1) != 0, (mode & 2) != 0, (mode & 4) != 0)) return false;
  }
  return true;
}

std::vector<std::size_t> Lengths() {
  std::vector<std::size_t> lens;
  for (std::size_t len = 1; len <= 2 * simdnorm::kMaxLanes + 1; ++len) lens.push_back(len);
  for (std::size_t len : {47, 64, 100, 255, 256, 257, 1000}) lens.push_back(len);
  return lens;
}

TEST_P(AffineKernels, Run) {
  FailureBudget budget;
  for (std::size_t runs : {1, 3}) {
    for (std::size_t len : Lengths()) {
      const std::size_t total = runs * len;
      // whole; from inside the first run to inside the last one (or within the one run)
      const std::pair<std::size_t, std::size_t> ranges[] = {{0, total}, {len / 3, total - len / 4}};
      for (const auto& r : ranges) {
        CaseChoices pick({runs, len, r.first});
        const std::size_t gap = pick.one_in(3) ? 0 : 5, x_misalign = pick.below(4), y_misalign = pick.below(4);
        const bool last_first = pick.one_in(2);
        const bool passed = ForEachMode([&](bool relu, bool stream, bool inplace) {
          AffineTester t;
          t.runs(runs).len(len).gap(gap).range(r.first, r.second).last_first(last_first).relu(relu).stream(stream);
          return t.inplace(inplace)
              .misalign(x_misalign, y_misalign)
              .seed(MixSeed({runs, len, r.first}))
              .TestRun(GetParam());
        });
        if (!budget.Record(passed)) return;
      }
    }
  }
  // Longer spans (the drivers stream only those; the kernels take any length), aligned and not.
  for (std::size_t misalign : {0, 1, 3}) {
    EXPECT_TRUE(ForEachMode([&](bool relu, bool stream, bool inplace) {
      return AffineTester()
          .runs(2)
          .len(4099)
          .gap(13)
          .last_first(misalign == 1)
          .relu(relu)
          .stream(stream)
          .inplace(inplace)
          .misalign(misalign, misalign)
          .seed(misalign)
          .TestRun(GetParam());
    }));
  }
}

TEST_P(AffineKernels, Rows) {
  FailureBudget budget;
  for (std::size_t c : ChannelCounts()) {
    for (std::size_t rows = 1; rows <= 18; ++rows) {
      if (c > 100 && rows % 4 != 1) continue;  // wide rows: a few row counts
      CaseChoices pick({c, rows});
      // Gaps that keep every row on a 64-byte boundary (the streaming narrow-row path) or not; aligned or not.
      const std::size_t gap =
          pick.one_in(3) ? 3 : (simdnorm::kMaxLanes - c % simdnorm::kMaxLanes) % simdnorm::kMaxLanes;
      const std::size_t x_misalign = pick.one_in(2) ? 0 : pick.below(4);
      const std::size_t y_misalign = pick.one_in(2) ? x_misalign : pick.below(4);
      const bool passed = ForEachMode([&](bool relu, bool stream, bool inplace) {
        AffineTester t;
        t.rows(rows).c(c).gap(gap).relu(relu).stream(stream).inplace(inplace).misalign(x_misalign, y_misalign);
        return t.seed(MixSeed({c, rows})).TestRows(GetParam());
      });
      if (!budget.Record(passed)) return;
    }
  }
}

TEST_P(AffineKernels, Planes) {
  FailureBudget budget;
  for (std::size_t len : Lengths()) {
    if (len > 257) continue;
    for (std::size_t count : {1, 2, 5, 9, 17}) {
      CaseChoices pick({len, count});
      const std::size_t channels = pick.one_in(2) ? 3 : 16, first = pick.below(channels);
      const std::size_t x_misalign = pick.below(4), y_misalign = pick.below(4);
      const bool passed = ForEachMode([&](bool relu, bool stream, bool inplace) {
        AffineTester t;
        t.len(len).planes(count, first, channels).relu(relu).stream(stream).inplace(inplace);
        return t.misalign(x_misalign, y_misalign).seed(MixSeed({len, count})).TestPlanes(GetParam());
      });
      if (!budget.Record(passed)) return;
    }
  }
}

SIMDNORM_INSTANTIATE_PER_KERNEL_ISA(AffineKernels);

}  // namespace
}  // namespace kernel_test
}  // namespace simdnorm_test
