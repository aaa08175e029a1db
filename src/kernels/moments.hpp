// The moments kernels: Welford blocks of U vectors over a run walk (NCHW) or a row walk (NHWC).
// Part of Kernels<Arch> (kernels/kernels.hpp), which includes this file; per-ISA units instantiate it.
#ifndef SIMDNORM_SRC_KERNELS_MOMENTS_HPP_
#define SIMDNORM_SRC_KERNELS_MOMENTS_HPP_

#include "kernels/kernels.hpp"

namespace simdnorm {
namespace kernels {

template <class Arch>
Moments Kernels<Arch>::moments_run(const float* x, const RunWalk& walk, float shift) {
  const F k(shift);
  if (walk.begin == 0 && walk.end == walk.len && walk.len <= kShortVectors * W) {
    return moments_short_dispatch(x, walk.len, k, std::make_index_sequence<kShortVectors>{});
  }
  // Whole vectors feed `lanes` in blocks of U, read straight from memory where a run has U of them left and
  // otherwise collected across runs (short NCHW runs such as 7x7 = 49 floats have only 3). The partial vector that
  // ends each whole run always fills the same first `tail_len` lanes, so those are blocked across runs too, into
  // `tail_lanes`. Only the ragged ends of a chunk that starts or stops inside a run go through scalar updates.
  Lanes lanes{}, tail_lanes{};
  double n = 0.0, n_tail = 0.0;  // values per lane so far
  F pending[U], tail_pending[U];
  std::size_t pending_count = 0, tail_count = 0;
  const std::size_t tail_len = walk.len % W;
  Moments ragged{0.0, 0.0, 0.0};

  for_each_run(walk, kInRunAheadFloats, [&](std::size_t start, std::size_t len, Ahead ahead) {
    const float* p = x + start;
    if (ahead.span != 0) prefetch_span(p + ahead.distance, ahead.span);
    std::size_t i = 0;
    for (; i + U * W <= len; i += U * W) {
      if (i < ahead.until) prefetch_block(p + i + ahead.distance);
      F v[U];
      for (std::size_t u = 0; u < U; ++u) v[u] = F::load_unaligned(p + i + u * W) - k;
      merge_block<U>(lanes, n, v);
    }
    for (; i + W <= len; i += W) {
      pending[pending_count++] = F::load_unaligned(p + i) - k;
      if (pending_count == U) merge_block<U>(lanes, n, pending), pending_count = 0;
    }
    if (i == len) return;
    if (len == walk.len) {  // a whole run: its tail is lanes [0, tail_len)
      tail_pending[tail_count++] = Native::load_first(p + i, tail_len) - k;
      if (tail_count == U) merge_block<U>(tail_lanes, n_tail, tail_pending), tail_count = 0;
    } else {
      for (; i < len; ++i) merge_moments<Arch>(ragged, Moments{1.0, static_cast<double>(p[i] - shift), 0.0});
    }
  });
  merge_pending(lanes, n, pending, pending_count);
  merge_pending(tail_lanes, n_tail, tail_pending, tail_count);

  Moments total = lane_moments(lanes, n, W);
  merge_moments<Arch>(total, lane_moments(tail_lanes, n_tail, tail_len));
  merge_moments<Arch>(total, ragged);
  return total;
}

template <class Arch>
void Kernels<Arch>::moments_rows(const float* x, const RowWalk& walk, const float* shift, double* sum, double* m2) {
  const std::size_t whole = walk.c / W * W;
  const std::size_t tail = walk.c - whole;
  auto update = [&](std::size_t r, auto count) {
    constexpr std::size_t Count = decltype(count)::value;
    const BlockWeights bw(static_cast<double>(r), static_cast<double>(Count));
    const float* row = x + r * walk.row_stride;
    std::size_t j = 0;
    const BlockPrefetch<Count> ahead(x, r, walk);
    for (; j < whole; j += W) {
      const F k = F::load_unaligned(shift + j);
      F v[Count];
      for (std::size_t u = 0; u < Count; ++u) {
        ahead(j, u);
        v[u] = F::load_unaligned(row + u * walk.row_stride + j) - k;
      }
      F s, q;
      block_moments(v, s, q);
      merge_block(sum + j, m2 + j, bw, s, q);
    }
    if (tail != 0) {
      const F k = F::load_unaligned(shift + j);  // padded: lanes past c hold 0 and so do their values
      F v[Count];
      for (std::size_t u = 0; u < Count; ++u) v[u] = Native::load_first(row + u * walk.row_stride + j, tail) - k;
      F s, q;
      block_moments(v, s, q);
      merge_block(sum + j, m2 + j, bw, s, q);
    }
  };
  std::size_t r = 0;
  // Narrow rows (kNarrowVectors) in blocks of 2U rows where the registers allow (AVX-512): half the merges into the
  // double state, which cost more than the data on rows of a few vectors. Two threads, 103 MB of 64-channel rows:
  // 0.85-0.89x a read-write pass in blocks of 8 rows, 0.66-0.67x in blocks of 16 (a read-only pass: 0.61-0.63x);
  // 25.7 MB (in the last-level cache) 1.43-1.57x against 0.96-1.02x. Wider rows gained nothing (C = 128) or lost
  // (C = 2048: 0.74x -> 0.94x).
  if constexpr (sizeof(F) == 64) {
    if (walk.c <= kNarrowVectors * W) {
      for (; r + 2 * U <= walk.rows; r += 2 * U) update(r, std::integral_constant<std::size_t, 2 * U>{});
    }
  }
  for (; r + U <= walk.rows; r += U) update(r, std::integral_constant<std::size_t, U>{});
  const std::size_t left = walk.rows - r;
  if (left & 4) update(r, std::integral_constant<std::size_t, 4>{}), r += 4;
  if (left & 2) update(r, std::integral_constant<std::size_t, 2>{}), r += 2;
  if (left & 1) update(r, std::integral_constant<std::size_t, 1>{});
}

}  // namespace kernels
}  // namespace simdnorm

#endif  // SIMDNORM_SRC_KERNELS_MOMENTS_HPP_
