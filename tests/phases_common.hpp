// What the forward and backward split-phase tests share: the options a case runs with, and the loops over option
// sets and over the shape grid.
#ifndef SIMDNORM_TESTS_PHASES_COMMON_HPP_
#define SIMDNORM_TESTS_PHASES_COMMON_HPP_

#include <simdnorm/simdnorm.h>

#include <cstddef>
#include <cstdint>

#include "checkers.hpp"
#include "grids.hpp"

namespace simdnorm_test {

struct PhaseOptions {
  bool inplace = false, relu = false;
  std::size_t misalign = 0;
  unsigned flags() const { return relu ? SIMDNORM_FUSE_RELU : 0u; }
};

// Calls check(options, gamma_beta) for every combination of in place, ReLU and gamma/beta on one shape, until one
// fails; returns whether all passed. Past 2^18 values, only the four combinations with an even number of options on:
// each option on in two of them, each pair of options in all four states (the suite runs under ASan too).
template <class Check>
bool EveryOption(const simdnorm_shape& shape, std::uint64_t seed, const Check& check) {
  const bool large = Elements(shape) > (std::size_t{1} << 18);
  bool ok = true;
  for (unsigned bits = 0; bits < 8 && ok; ++bits) {
    if (large && __builtin_popcount(bits) % 2 != 0) continue;
    PhaseOptions o;
    o.inplace = bits & 1u;
    o.relu = bits & 2u;
    o.misalign = MixSeed({seed, bits}) % 4 == 0 ? 1 : 0;
    ok = check(o, (bits & 4u) != 0);
  }
  return ok;
}

// Calls check(shape, index) for every shape of the grid in `layout` (N*spatial >= 2), within a failure budget.
template <class Check>
void ForEachGridShape(simdnorm_layout layout, const Check& check) {
  FailureBudget budget;
  std::uint64_t index = 0;
  for (std::size_t n : kGridN) {
    for (std::size_t c : kGridC) {
      for (std::size_t s : kGridSpatial) {
        if (n * s < 2) continue;
        if (!budget.Record(check(MakeShape(n, c, s, layout), ++index))) return;
      }
    }
  }
}

}  // namespace simdnorm_test

#endif  // SIMDNORM_TESTS_PHASES_COMMON_HPP_
