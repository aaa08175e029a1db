// Chan's parallel formula for merging moments: the one place the merge arithmetic lives, for single channels
// (Moments, doubles) and for channels side by side (batches of doubles with shared counts). Everything is a
// template on a tag, so that each ISA's kernels and the baseline drivers get their own instantiations: an inline
// function compiled into an AVX-512 unit could otherwise be the copy the linker keeps for baseline code.
#ifndef SIMDNORM_SRC_CORE_MOMENTS_HPP_
#define SIMDNORM_SRC_CORE_MOMENTS_HPP_

#include "kernels/table.hpp"

namespace simdnorm {

// Weights of merging a set of nb values into one of na values (both > 0): the reciprocals of the counts and
// na*nb/(na + nb). S is double, or a batch of doubles holding the same weight in every lane.
template <class Tag, class S = double>
struct ChanWeights {
  S inv_na, inv_nb, w;
  ChanWeights(double na, double nb) : inv_na(1.0 / na), inv_nb(1.0 / nb), w(na * nb / (na + nb)) {}
};

// (sum_a, m2_a) += (sum_b, m2_b): sums are relative to a common shift, m2 about each set's own mean.
template <class Tag, class T, class S>
inline void chan_merge(T& sum_a, T& m2_a, const T& sum_b, const T& m2_b, const ChanWeights<Tag, S>& k) {
  const T delta = sum_b * k.inv_nb - sum_a * k.inv_na;
  m2_a = m2_a + m2_b + delta * delta * k.w;
  sum_a = sum_a + sum_b;
}

// Merges b into a. Counts may be 0.
template <class Tag>
inline void merge_moments(Moments& a, const Moments& b) {
  if (b.count == 0.0) return;
  if (a.count == 0.0) {
    a = b;
    return;
  }
  chan_merge(a.sum, a.m2, b.sum, b.m2, ChanWeights<Tag>(a.count, b.count));
  a.count += b.count;
}

// The same merge on moments about each set's own mean (the split-phase API's exchange format): (mean_a, m2_a) over
// na values += (mean_b, m2_b) over nb values, both counts > 0.
template <class Tag>
inline void chan_merge_means(double& mean_a, double& m2_a, double na, double mean_b, double m2_b, double nb) {
  const double n = na + nb;
  const double delta = mean_b - mean_a;
  mean_a = mean_a + delta * (nb / n);
  m2_a = m2_a + m2_b + delta * delta * (na * nb / n);
}

// Moments of `used` sets of n values each (lanes of a vector state): the lanes' sums and M2 plus the spread of the
// lane means about their common mean, taken directly (two passes over the lane sums) rather than by used - 1
// pairwise merges.
template <class Tag>
inline Moments merge_equal_sets(const double* sum, const double* m2, std::size_t used, double n) {
  if (n == 0.0 || used == 0) return Moments{0.0, 0.0, 0.0};
  double total = 0.0, within = 0.0;
  for (std::size_t l = 0; l < used; ++l) {
    total += sum[l];
    within += m2[l];
  }
  const double mean_sum = total / static_cast<double>(used);
  double between = 0.0;
  for (std::size_t l = 0; l < used; ++l) between += (sum[l] - mean_sum) * (sum[l] - mean_sum);
  return Moments{n * static_cast<double>(used), total, within + between / n};
}

}  // namespace simdnorm

#endif  // SIMDNORM_SRC_CORE_MOMENTS_HPP_
