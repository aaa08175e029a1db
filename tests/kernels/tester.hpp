// Shared machinery of the kernel-level tests (after XNNPACK's microkernel testers): each kernel family is called
// through the per-ISA KernelTable, below the public API and its drivers, once per ISA this CPU runs, and compared with
// a scalar reference. Per-channel arithmetic and element-wise kernels are compared bit for bit; reductions against
// double sums with tolerances in units of FLT_EPSILON times the sum of the magnitudes they add.
//
// Every buffer a kernel sees sits inside guard zones, and every position of it the kernel must not read holds a NaN
// (a value read by mistake poisons the result) while every position it must not write holds a sentinel: the
// comparison covers the whole storage, guards included, so a stray write is reported with its position.
#ifndef SIMDNORM_TESTS_KERNELS_TESTER_HPP_
#define SIMDNORM_TESTS_KERNELS_TESTER_HPP_

#include <gtest/gtest.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <limits>
#include <ostream>
#include <string>
#include <vector>

#include "checkers.hpp"
#include "kernels/table.hpp"

namespace simdnorm_test {
namespace kernel_test {

using simdnorm::KernelTable;

// ---------------------------------------------------------------------------------------------------------------
// One ISA's kernels. `fused`: the kernels' multiply-adds (xsimd::fma, xsimd::fnma) round once there: fma3 on avx2,
// and avx512, where xsimd 8.1 writes them as a multiply and an add that only the compiler's contraction fuses (GCC at
// -O2 without sanitizers; a build that does not contract fails the avx512 affine and dx tests). On sse2 they are a
// multiply, rounded, then an add.

struct IsaKernels {
  const char* name;
  const KernelTable* table;
  bool fused;
};

inline const IsaKernels kIsaKernels[] = {
    {"avx512", &simdnorm::kAvx512Kernels, true},
    {"avx2", &simdnorm::kAvx2Kernels, true},
    {"sse2", &simdnorm::kSse2Kernels, false},
};

// gtest prints the parameter by this (else as bytes) in failure messages.
inline void PrintTo(const IsaKernels& isa, std::ostream* os) { *os << isa.name; }

// Whether this CPU (and OS) runs the ISA, as dispatch.cpp decides it; else the name of what is missing.
bool CpuSupports(const char* isa, std::string* missing);

// The per-ISA fixture: named after the ISA, skipped where the CPU lacks it.
class KernelTest : public ::testing::TestWithParam<IsaKernels> {
 protected:
  void SetUp() override;
};

std::string KernelTestName(const ::testing::TestParamInfo<IsaKernels>& info);

#define SIMDNORM_INSTANTIATE_PER_KERNEL_ISA(suite)                                                     \
  INSTANTIATE_TEST_SUITE_P(Isa, suite, ::testing::ValuesIn(::simdnorm_test::kernel_test::kIsaKernels), \
                           ::simdnorm_test::kernel_test::KernelTestName)

// ---------------------------------------------------------------------------------------------------------------
// The float arithmetic of the kernels, in scalar. The test target is compiled with -ffp-contract=off, so a*x + b
// here is a multiply and an add whatever the compiler.

inline float MulAdd(bool fused, float a, float x, float b) { return fused ? std::fma(a, x, b) : a * x + b; }
// xsimd::fnma(x, y, z) = z - x*y.
inline float NegMulAdd(bool fused, float x, float y, float z) { return fused ? std::fma(-x, y, z) : -x * y + z; }
// ReLU as the kernels apply it: x <= 0 -> +0 (so -0 -> +0), NaN kept.
inline float Relu(float y) { return y <= 0.0f ? 0.0f : y; }

// ---------------------------------------------------------------------------------------------------------------
// Guarded buffers: `count` values of T at data(), misaligned by `misalign` elements from a 64-byte boundary, with
// kGuard elements on either side, all of it initialised to `fill`.

template <class T>
class Guarded {
 public:
  static constexpr std::size_t kGuard = 64;
  Guarded(std::size_t count, std::size_t misalign, T fill)
      : storage_(count + 2 * kGuard + misalign, fill), count_(count), first_(kGuard + misalign) {}
  T* data() { return storage_.data() + first_; }
  const T* data() const { return storage_.data() + first_; }
  T& operator[](std::size_t i) { return data()[i]; }
  std::size_t size() const { return count_; }
  // The whole storage, guards included, and where data()[0] lies in it.
  const std::vector<T, CacheLineAllocator<T>>& storage() const { return storage_; }
  std::vector<T, CacheLineAllocator<T>>& storage() { return storage_; }
  std::size_t first() const { return first_; }

 private:
  std::vector<T, CacheLineAllocator<T>> storage_;
  std::size_t count_, first_;
};

// What must never be read (quiet NaNs, the float one with a recognisable payload) and what must never be written.
inline float PoisonFloat() { return BitsToFloat(0x7FC0BADEu); }
inline double PoisonDouble() { return std::numeric_limits<double>::quiet_NaN(); }
template <class T>
T Sentinel();
template <>
inline float Sentinel<float>() {
  return SentinelFloat();
}
template <>
inline double Sentinel<double>() {
  return -0x1.DEADBEEFp+1000;
}

// A padded per-channel array of padded_channels(c) values, its padding 0 as the drivers clear it, in guards of
// `guard` values.
template <class T>
Guarded<T> PaddedArray(std::size_t c, std::size_t misalign, T guard) {
  Guarded<T> a(simdnorm::padded_channels(c), misalign, guard);
  for (std::size_t i = 0; i < a.size(); ++i) a[i] = T{0};
  return a;
}

// ---------------------------------------------------------------------------------------------------------------
// Comparisons. `where(i)` names position i of the compared range (a storage index where whole storages are
// compared). Each adds one gtest failure naming the first bad position, both values and how many were bad.

// Bit for bit, except that a NaN matches any NaN: which NaN comes out of an operation, and with which sign, depends
// on the order of its operands and on how a negation is done (a sign flip, or 0 - x as xsimd 8.1 does on avx512f),
// and is part of no contract. Signed zeros are compared.
bool SameBits(float a, float b);
bool SameBits(double a, double b);

using WhereFn = std::function<std::string(std::size_t)>;

template <class T>
bool ExpectBitwise(const std::string& context, const char* what, const T* got, const T* want, std::size_t count,
                   const WhereFn& where);

// |got - want| <= tol(i) for every i (NaN on either side fails).
bool ExpectWithin(const std::string& context, const char* what, const double* got, const double* want,
                  const double* tol, std::size_t count, const WhereFn& where);

// A whole guarded buffer against the storage it should hold; `where` gets data-relative indexes (negative: the guard
// before the data) and describes them.
template <class T>
bool ExpectStorage(const std::string& context, const char* what, const Guarded<T>& got,
                   const std::vector<T, CacheLineAllocator<T>>& want,
                   const std::function<std::string(std::ptrdiff_t)>& where) {
  return ExpectBitwise<T>(context, what, got.storage().data(), want.data(), want.size(), [&](std::size_t i) {
    return where(static_cast<std::ptrdiff_t>(i) - static_cast<std::ptrdiff_t>(got.first()));
  });
}

// The guards of a buffer still hold `guard` (nothing written before or after its data).
template <class T>
bool ExpectGuards(const std::string& context, const char* what, const Guarded<T>& got, T guard) {
  std::vector<T, CacheLineAllocator<T>> want = got.storage();
  for (std::size_t i = 0; i < got.first(); ++i) want[i] = guard;
  for (std::size_t i = got.first() + got.size(); i < want.size(); ++i) want[i] = guard;
  return ExpectStorage(context, what, got, want, [&](std::ptrdiff_t i) {
    return i < 0 ? "guard before the data at " + std::to_string(i) : "guard after the data at " + std::to_string(i);
  });
}

// "channel j", or "padding j" / "guard" for positions past c of a padded per-channel array.
std::string ChannelWhere(std::ptrdiff_t i, std::size_t c, std::size_t padded);

// ---------------------------------------------------------------------------------------------------------------
// Walk shapes: where each element of a walk lies in its buffer.

// A run walk: `runs` runs of `len` floats, `stride` apart from run 0, elements [begin, end) of their concatenation.
struct RunShape {
  std::size_t runs = 1, len = 1, stride = 1, begin = 0, end = 1;
  std::size_t extent() const { return (runs - 1) * stride + len; }  // floats from run 0 to the end of the last run
  std::size_t offset(std::size_t e) const { return e / len * stride + e % len; }
  std::string Describe() const;
  // "element e (run k, offset o)", "gap after run k", "outside the walk in run k", or "guard".
  std::string Where(std::ptrdiff_t i) const;
};

// A row walk: `rows` rows of `c` channels, `stride` apart.
struct RowShape {
  std::size_t rows = 1, c = 1, stride = 1;
  std::size_t extent() const { return (rows - 1) * stride + c; }
  std::string Describe() const;
  std::string Where(std::ptrdiff_t i) const;  // "row r, channel j", "gap of row r", or "guard"
};

// ---------------------------------------------------------------------------------------------------------------
// Data.

// A float of random sign whose magnitude is 10^e, e uniform in [lo, hi] (denormals below 1e-38).
float LogUniform(Rng& rng, double lo, double hi);
// One of the values that break kernels: ±0, ±inf, NaN, a denormal, FLT_MAX, FLT_MIN, 1 ulp around 1.
float SpecialFloat(Rng& rng);

// The options of one case of a grid, drawn from a hash of its coordinates: they vary independently of each other and
// of the order in which the loops enumerate the cases (a counter modulo small numbers ties them together).
class CaseChoices {
 public:
  explicit CaseChoices(std::initializer_list<std::uint64_t> key) : h_(MixSeed(key)) {}
  std::size_t below(std::size_t n) {
    h_ = MixSeed({h_});
    return static_cast<std::size_t>(h_ % n);
  }
  bool one_in(std::size_t n) { return below(n) == 0; }

 private:
  std::uint64_t h_;
};

// Channel counts of the per-channel and row tests: 1 to 2*16 + 1, and a few larger.
std::vector<std::size_t> ChannelCounts();

}  // namespace kernel_test
}  // namespace simdnorm_test

#endif  // SIMDNORM_TESTS_KERNELS_TESTER_HPP_
