// Chan's parallel formula for merging Moments: the one place the merge arithmetic lives. It is a template on a tag
// so that each ISA's kernels and the baseline drivers get their own instantiation: an inline non-template function
// compiled into an AVX-512 unit could otherwise be the copy the linker keeps for baseline code.
#ifndef SIMDNORM_SRC_MOMENTS_HPP_
#define SIMDNORM_SRC_MOMENTS_HPP_

#include "kernel_table.hpp"

namespace simdnorm {

// Merges b into a. Both sums are relative to the same shift; counts may be 0.
template <class Tag>
inline void merge_moments(Moments& a, const Moments& b) {
  if (b.count == 0.0) return;
  if (a.count == 0.0) {
    a = b;
    return;
  }
  const double count = a.count + b.count;
  const double delta = b.sum / b.count - a.sum / a.count;
  a.m2 += b.m2 + delta * delta * (a.count * b.count / count);
  a.sum += b.sum;
  a.count = count;
}

}  // namespace simdnorm

#endif  // SIMDNORM_SRC_MOMENTS_HPP_
