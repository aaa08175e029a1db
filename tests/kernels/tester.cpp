#include "tester.hpp"

#include <cfloat>
#include <cstring>
#include <sstream>

namespace simdnorm_test {
namespace kernel_test {

bool CpuSupports(const char* isa, std::string* missing) {
  const std::string name = isa;
  // The tests of dispatch.cpp: __builtin_cpu_supports also checks that the OS saves the wider registers.
  if (name == "avx512") {
    if (__builtin_cpu_supports("avx512f")) return true;
    *missing = "avx512f";
  } else if (name == "avx2") {
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return true;
    *missing = "avx2 and fma";
  } else if (name == "sse2") {
    return true;  // x86-64
  } else {
    *missing = "a kernel table named " + name;
  }
  return false;
}

void KernelTest::SetUp() {
  std::string missing;
  if (!CpuSupports(GetParam().name, &missing)) {
    GTEST_SKIP() << "the " << GetParam().name << " kernels need " << missing << ", which this CPU lacks";
  }
  ASSERT_STREQ(GetParam().table->name, GetParam().name);
}

std::string KernelTestName(const ::testing::TestParamInfo<IsaKernels>& info) { return info.param.name; }

bool SameBits(float a, float b) { return (std::isnan(a) && std::isnan(b)) || FloatBits(a) == FloatBits(b); }
bool SameBits(double a, double b) {
  std::uint64_t x, y;
  std::memcpy(&x, &a, sizeof x);
  std::memcpy(&y, &b, sizeof y);
  return (std::isnan(a) && std::isnan(b)) || x == y;
}

namespace {
std::string ValueString(float v) { return FloatString(v); }
std::string ValueString(double v) { return DoubleString(v); }
}  // namespace

template <class T>
bool ExpectBitwise(const std::string& context, const char* what, const T* got, const T* want, std::size_t count,
                   const WhereFn& where) {
  std::size_t bad = 0, first = 0;
  for (std::size_t i = 0; i < count; ++i) {
    if (!SameBits(got[i], want[i]) && bad++ == 0) first = i;
  }
  if (bad == 0) return true;
  ADD_FAILURE() << context << "\n  " << what << ": " << bad << " of " << count << " values differ in their bits; "
                << "first at " << where(first) << ": got " << ValueString(got[first]) << ", want "
                << ValueString(want[first]);
  return false;
}
template bool ExpectBitwise<float>(const std::string&, const char*, const float*, const float*, std::size_t,
                                   const WhereFn&);
template bool ExpectBitwise<double>(const std::string&, const char*, const double*, const double*, std::size_t,
                                    const WhereFn&);

bool ExpectWithin(const std::string& context, const char* what, const double* got, const double* want,
                  const double* tol, std::size_t count, const WhereFn& where) {
  std::size_t bad = 0, first = 0;
  for (std::size_t i = 0; i < count; ++i) {
    if (!(std::fabs(got[i] - want[i]) <= tol[i]) && bad++ == 0) first = i;  // NaN fails
  }
  if (bad == 0) return true;
  ADD_FAILURE() << context << "\n  " << what << ": " << bad << " of " << count << " values out of tolerance; first at "
                << where(first) << ": got " << DoubleString(got[first]) << ", reference " << DoubleString(want[first])
                << ", |diff| " << std::fabs(got[first] - want[first]) << ", tolerance " << tol[first];
  return false;
}

std::string ChannelWhere(std::ptrdiff_t i, std::size_t c, std::size_t padded) {
  if (i < 0 || static_cast<std::size_t>(i) >= padded) return "guard at " + std::to_string(i);
  const auto j = static_cast<std::size_t>(i);
  return (j < c ? "channel " : "padding ") + std::to_string(j);
}

std::string RunShape::Describe() const {
  std::ostringstream s;
  s << "runs=" << runs << " len=" << len << " stride=" << stride << " range=[" << begin << ", " << end << ")";
  return s.str();
}

std::string RunShape::Where(std::ptrdiff_t i) const {
  if (i < 0 || static_cast<std::size_t>(i) >= extent()) return "guard at " + std::to_string(i);
  const auto at = static_cast<std::size_t>(i);
  const std::size_t run = at / stride, o = at % stride;
  if (o >= len) return "gap after run " + std::to_string(run) + " at " + std::to_string(at);
  const std::size_t e = run * len + o;
  const std::string place = " (run " + std::to_string(run) + ", offset " + std::to_string(o) + ")";
  if (e < begin || e >= end) return "outside the walk" + place;
  return "element " + std::to_string(e) + place;
}

std::string RowShape::Describe() const {
  std::ostringstream s;
  s << "rows=" << rows << " c=" << c << " stride=" << stride;
  return s.str();
}

std::string RowShape::Where(std::ptrdiff_t i) const {
  if (i < 0 || static_cast<std::size_t>(i) >= extent()) return "guard at " + std::to_string(i);
  const auto at = static_cast<std::size_t>(i);
  const std::size_t r = at / stride, j = at % stride;
  if (j >= c) return "gap of row " + std::to_string(r) + " at " + std::to_string(j);
  return "row " + std::to_string(r) + ", channel " + std::to_string(j);
}

float LogUniform(Rng& rng, double lo, double hi) {
  const double m = std::pow(10.0, rng.uniform(lo, hi));
  return static_cast<float>(rng.coin() ? m : -m);
}

float SpecialFloat(Rng& rng) {
  static const float kSpecial[] = {0.0f,
                                   -0.0f,
                                   std::numeric_limits<float>::infinity(),
                                   -std::numeric_limits<float>::infinity(),
                                   std::numeric_limits<float>::quiet_NaN(),
                                   std::numeric_limits<float>::denorm_min(),
                                   -3.0e-39f,
                                   FLT_MAX,
                                   -FLT_MAX,
                                   FLT_MIN,
                                   1.0f + FLT_EPSILON,
                                   1.0f - FLT_EPSILON / 2};
  return kSpecial[rng.below(sizeof kSpecial / sizeof kSpecial[0])];
}

std::vector<std::size_t> ChannelCounts() {
  std::vector<std::size_t> counts;
  for (std::size_t c = 1; c <= 2 * simdnorm::kMaxLanes + 1; ++c) counts.push_back(c);
  for (std::size_t c : {48, 64, 100, 2048}) counts.push_back(c);
  return counts;
}

}  // namespace kernel_test
}  // namespace simdnorm_test
