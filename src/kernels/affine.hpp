// The affine kernels: y = a*x + b (then ReLU) over a run walk, a row walk, or consecutive NCHW planes.
// Part of Kernels<Arch> (kernels/kernels.hpp), which includes this file; per-ISA units instantiate it.
#ifndef SIMDNORM_SRC_KERNELS_AFFINE_HPP_
#define SIMDNORM_SRC_KERNELS_AFFINE_HPP_

#include "kernels/kernels.hpp"

namespace simdnorm {
namespace kernels {

template <class Arch>
template <bool Relu, bool Stream>
void Kernels<Arch>::affine_run_impl(const float* x, float* y, const RunWalk& walk, float a, float b) {
  for_each_run_in_order(walk, [&](std::size_t start, std::size_t len) {
    affine_span<Relu, Stream>(x + start, y + start, len, F(a), F(b));
  });
  if constexpr (Stream) _mm_sfence();
}

template <class Arch>
void Kernels<Arch>::affine_run(const float* x, float* y, const RunWalk& walk, float a, float b, bool relu,
                               bool stream) {
  with_modes(relu, stream, [&](auto r, auto s) {
    affine_run_impl<decltype(r)::value, decltype(s)::value>(x, y, walk, a, b);
  });
}

template <class Arch>
void Kernels<Arch>::affine_planes(const float* x, float* y, std::size_t len, std::size_t count, std::size_t c,
                                  std::size_t channels, const float* a, const float* b, bool relu, bool stream) {
  with_modes(relu, stream, [&](auto r, auto s) {
    constexpr bool Relu = decltype(r)::value, Stream = decltype(s)::value;
    if (!Stream && x == y && len % W != 0 && len >= W) {
      // Planes one after the other in memory, each ending in a masked store that the next plane's first load would
      // wait on (see tails_last): whole vectors of kTailRows planes first, then their tails. In place, 8x512x7x7:
      // 0.5x the time.
      const std::size_t whole = len / W * W, tail = len - whole;
      auto channel_of = [&](std::size_t p) { return (c + p) % channels; };
      tails_last(
          count,
          [&](std::size_t p) {
            affine_span<Relu, false>(y + p * len, y + p * len, whole, F(a[channel_of(p)]), F(b[channel_of(p)]));
          },
          [&](std::size_t p) {
            float* yp = y + p * len + whole;
            affine_span<Relu, false>(yp, yp, tail, F(a[channel_of(p)]), F(b[channel_of(p)]));
          });
      return;
    }
    for (std::size_t p = 0; p < count; ++p, x += len, y += len) {
      affine_span<Relu, Stream>(x, y, len, F(a[c]), F(b[c]));
      if (++c == channels) c = 0;
    }
    if constexpr (Stream) _mm_sfence();
  });
}

template <class Arch>
template <bool Relu, bool Stream>
void Kernels<Arch>::affine_rows_impl(const float* x, float* y, const RowWalk& walk, const float* a, const float* b) {
  // The walk is copied into locals: the stores through y could otherwise alias it and reload it every row, and that
  // per-row overhead cost a quarter of the bandwidth on narrow rows (C = 64 is 4 vectors a row).
  const std::size_t rows = walk.rows, stride = walk.row_stride, c = walk.c;
  const bool narrow = with_narrow_rows<Stream>(y, stride, c, [&](auto vectors) {
    constexpr std::size_t V = decltype(vectors)::value;
    F va[V], vb[V];
    for (std::size_t v = 0; v < V; ++v) va[v] = F::load_unaligned(a + v * W), vb[v] = F::load_unaligned(b + v * W);
    auto value = [&](std::size_t r, std::size_t v, std::size_t count) SIMDNORM_INLINE {
      return activate<Relu>(Native::fma(va[v], load_lanes(x + r * stride + v * W, count), vb[v]));
    };
    store_narrow_rows<Stream, V>(y, rows, stride, c, x == y, value);
  });
  // Channel offsets i need not be vector-aligned (streaming peels y to alignment): the padded per-channel arrays are
  // read unaligned at the same offsets.
  auto value = [=](std::size_t r, std::size_t i, std::size_t count) SIMDNORM_INLINE {  // by value: see store_rows
    return activate<Relu>(
        Native::fma(F::load_unaligned(a + i), load_lanes(x + r * stride + i, count), F::load_unaligned(b + i)));
  };
  if (!narrow) store_rows<Stream>(y, rows, stride, c, x == y, value);
  if constexpr (Stream) _mm_sfence();
}

template <class Arch>
void Kernels<Arch>::affine_rows(const float* x, float* y, const RowWalk& walk, const float* a, const float* b,
                                bool relu, bool stream) {
  with_modes(relu, stream, [&](auto r, auto s) { affine_rows_impl<decltype(r)::value, decltype(s)::value>(x, y, walk, a, b); });
}

}  // namespace kernels
}  // namespace simdnorm

#endif  // SIMDNORM_SRC_KERNELS_AFFINE_HPP_
