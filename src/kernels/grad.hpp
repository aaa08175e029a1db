// The backward kernels: Σdy' and Σdy'(x − mean) in float blocks of U vectors, widened into double lanes once per
// block; the addition of chunk partials; dx.
// Part of Kernels<Arch> (kernels/kernels.hpp), which includes this file; per-ISA units instantiate it.
#ifndef SIMDNORM_SRC_KERNELS_GRAD_HPP_
#define SIMDNORM_SRC_KERNELS_GRAD_HPP_

#include "kernels/kernels.hpp"

namespace simdnorm {
namespace kernels {

template <class Arch>
template <bool Relu>
void Kernels<Arch>::grad_sums_run_impl(const float* x, const float* dy, const RunWalk& walk,
                                       const GradCoefficients& k, double* sum_dy, double* sum_dy_xc) {
  const F mean(k.mean), a(k.a), b(k.b);
  D s1_lo(0.0), s1_hi(0.0), s2_lo(0.0), s2_hi(0.0);
  for_each_run(walk, 0, [&](std::size_t start, std::size_t len, Ahead ahead) {
    const float* px = x + start;
    const float* pd = dy + start;
    if (ahead.span != 0) {
      prefetch_span(px + ahead.distance, ahead.span);
      prefetch_span(pd + ahead.distance, ahead.span);
    }
    std::size_t i = 0;
    for (; i + U * W <= len; i += U * W) {
      if (i < ahead.until) {
        prefetch_block(px + i + ahead.distance);
        prefetch_block(pd + i + ahead.distance);
      }
      F b1(0.0f), b2(0.0f);
      for (std::size_t u = 0; u < U; ++u) {
        const F vx = F::load_unaligned(px + i + u * W);
        const F g = masked_dy<Relu>(vx, F::load_unaligned(pd + i + u * W), a, b);
        b1 += g;
        b2 = Native::fma(g, vx - mean, b2);
      }
      add_widened(s1_lo, s1_hi, b1);
      add_widened(s2_lo, s2_hi, b2);
    }
    for (; i < len; i += W) {
      const std::size_t count = len - i < W ? len - i : W;
      // Masked lanes load x = dy = 0, so g = 0 there and they add 0 to both sums.
      const F vx = load_lanes(px + i, count);
      const F vd = load_lanes(pd + i, count);
      const F g = masked_dy<Relu>(vx, vd, a, b);
      add_widened(s1_lo, s1_hi, g);
      add_widened(s2_lo, s2_hi, g * (vx - mean));
    }
  });
  *sum_dy = xsimd::hadd(s1_lo + s1_hi);
  *sum_dy_xc = xsimd::hadd(s2_lo + s2_hi);
}

template <class Arch>
void Kernels<Arch>::grad_sums_run(const float* x, const float* dy, const RunWalk& walk, const GradCoefficients& k,
                                  bool relu, double* sum_dy, double* sum_dy_xc) {
  relu ? grad_sums_run_impl<true>(x, dy, walk, k, sum_dy, sum_dy_xc)
       : grad_sums_run_impl<false>(x, dy, walk, k, sum_dy, sum_dy_xc);
}

template <class Arch>
template <bool Relu>
void Kernels<Arch>::grad_sums_rows_impl(const float* x, const float* dy, const RowWalk& walk,
                                        const GradCoefficientArrays& k, double* sum_dy, double* sum_dy_xc) {
  const std::size_t whole = walk.c / W * W;
  const std::size_t tail = walk.c - whole;
  auto update = [&](std::size_t r, auto count) {
    constexpr std::size_t Count = decltype(count)::value;
    const float* xr = x + r * walk.row_stride;
    const float* dr = dy + r * walk.row_stride;
    const BlockPrefetch<Count> x_ahead(x, r, walk), dy_ahead(dy, r, walk);
    for (std::size_t j = 0; j < walk.c; j += W) {
      const std::size_t lanes = j < whole ? W : tail;
      const F mean = F::load_unaligned(k.mean + j), a = F::load_unaligned(k.a + j), b = F::load_unaligned(k.b + j);
      F b1(0.0f), b2(0.0f);
      for (std::size_t u = 0; u < Count; ++u) {
        const std::size_t at = u * walk.row_stride + j;
        x_ahead(j, u);
        dy_ahead(j, u);
        const F vx = load_lanes(xr + at, lanes);
        const F vd = load_lanes(dr + at, lanes);
        const F g = masked_dy<Relu>(vx, vd, a, b);
        b1 += g;
        b2 = Native::fma(g, vx - mean, b2);
      }
      // Lanes past c: dy = 0 so g = 0, and the padded per-channel arrays are finite, so nothing but 0 is added.
      add_widened(sum_dy + j, b1);
      add_widened(sum_dy_xc + j, b2);
    }
  };
  std::size_t r = 0;
  for (; r + U <= walk.rows; r += U) update(r, std::integral_constant<std::size_t, U>{});
  const std::size_t left = walk.rows - r;
  if (left & 4) update(r, std::integral_constant<std::size_t, 4>{}), r += 4;
  if (left & 2) update(r, std::integral_constant<std::size_t, 2>{}), r += 2;
  if (left & 1) update(r, std::integral_constant<std::size_t, 1>{});
}

template <class Arch>
void Kernels<Arch>::add_rows(double* sum_dy, double* sum_dy_xc, std::size_t parts, std::size_t part_stride,
                             std::size_t c) {
  if (parts < 2) return;  // nothing to add
  for (std::size_t j = 0; j < c; j += H) {
    D s1 = D::load_unaligned(sum_dy + j), s2 = D::load_unaligned(sum_dy_xc + j);
    for (std::size_t i = 1; i < parts; ++i) {
      s1 += D::load_unaligned(sum_dy + i * part_stride + j);
      s2 += D::load_unaligned(sum_dy_xc + i * part_stride + j);
    }
    s1.store_unaligned(sum_dy + j);
    s2.store_unaligned(sum_dy_xc + j);
  }
}

template <class Arch>
void Kernels<Arch>::grad_sums_rows(const float* x, const float* dy, const RowWalk& walk,
                                   const GradCoefficientArrays& k, bool relu, double* sum_dy, double* sum_dy_xc) {
  relu ? grad_sums_rows_impl<true>(x, dy, walk, k, sum_dy, sum_dy_xc)
       : grad_sums_rows_impl<false>(x, dy, walk, k, sum_dy, sum_dy_xc);
}

template <class Arch>
template <bool Relu, bool Stream>
void Kernels<Arch>::grad_input_run_impl(const float* x, const float* dy, float* dx, const RunWalk& walk,
                                        const GradCoefficients& k) {
  const F mean(k.mean), invstd(k.invstd), a(k.a), b(k.b), k_dy(k.k_dy), mean_dy(k.mean_dy),
      mean_dy_xhat(k.mean_dy_xhat), k_in(k.k_in);  // k_in = 1 (batch norm) leaves dy' exact
  for_each_run_in_order(walk, [&](std::size_t start, std::size_t len) {
    const float* xr = x + start;
    const float* dr = dy + start;
    store_span<Stream>(
        dx + start, len,
        [&](std::size_t i) {
          return grad_input<Relu>(F::load_unaligned(xr + i), F::load_unaligned(dr + i), mean, invstd, a, b, k_dy,
                                  mean_dy, mean_dy_xhat, k_in);
        },
        [&](std::size_t i, std::size_t count) {
          return grad_input<Relu>(Native::load_first(xr + i, count), Native::load_first(dr + i, count), mean, invstd,
                                  a, b, k_dy, mean_dy, mean_dy_xhat, k_in);
        });
  });
  if constexpr (Stream) _mm_sfence();
}

template <class Arch>
void Kernels<Arch>::grad_input_run(const float* x, const float* dy, float* dx, const RunWalk& walk,
                                   const GradCoefficients& k, bool relu, bool stream) {
  with_modes(relu, stream, [&](auto r, auto s) {
    grad_input_run_impl<decltype(r)::value, decltype(s)::value>(x, dy, dx, walk, k);
  });
}

template <class Arch>
template <bool Relu, bool Stream, bool Scaled>
void Kernels<Arch>::grad_input_rows_impl(const float* x, const float* dy, float* dx, const RowWalk& walk,
                                         const GradCoefficientArrays& coefficients) {
  auto coefficient = [](const float* array, std::size_t i) { return F::load_unaligned(array + i); };
  const GradCoefficientArrays k = coefficients;  // a local copy, for the reason the walk is one
  const std::size_t rows = walk.rows, stride = walk.row_stride, c = walk.c;  // locals: see affine_rows_impl
  const bool in_place = dx == dy || dx == x;
  const bool narrow = with_narrow_rows<Stream>(dx, stride, c, [&](auto vectors) {
    constexpr std::size_t V = decltype(vectors)::value;
    struct At {
      F mean, invstd, a, b, k_dy, mean_dy, mean_dy_xhat, k_in;
    };
    At co[V];
    for (std::size_t v = 0; v < V; ++v) {
      const std::size_t i = v * W;
      co[v] = At{coefficient(k.mean, i),   coefficient(k.invstd, i),  coefficient(k.a, i),
                 coefficient(k.b, i),      coefficient(k.k_dy, i),    coefficient(k.mean_dy, i),
                 coefficient(k.mean_dy_xhat, i), Scaled ? coefficient(k.k_in, i) : F(1.0f)};
    }
    auto value = [&](std::size_t r, std::size_t v, std::size_t count) SIMDNORM_INLINE {
      const At& q = co[v];
      const std::size_t at = r * stride + v * W;
      if constexpr (Scaled) {
        return grad_input<Relu>(load_lanes(x + at, count), load_lanes(dy + at, count), q.mean, q.invstd, q.a, q.b,
                                q.k_dy, q.mean_dy, q.mean_dy_xhat, q.k_in);
      } else {
        return grad_input<Relu>(load_lanes(x + at, count), load_lanes(dy + at, count), q.mean, q.invstd, q.a, q.b,
                                q.k_dy, q.mean_dy, q.mean_dy_xhat);
      }
    };
    store_narrow_rows<Stream, V>(dx, rows, stride, c, in_place, value);
  });
  auto value = [=](std::size_t r, std::size_t i, std::size_t count) SIMDNORM_INLINE {  // by value: see store_rows
    const std::size_t at = r * stride + i;
    if constexpr (Scaled) {
      return grad_input<Relu>(load_lanes(x + at, count), load_lanes(dy + at, count), coefficient(k.mean, i),
                              coefficient(k.invstd, i), coefficient(k.a, i), coefficient(k.b, i),
                              coefficient(k.k_dy, i), coefficient(k.mean_dy, i), coefficient(k.mean_dy_xhat, i),
                              coefficient(k.k_in, i));
    } else {
      return grad_input<Relu>(load_lanes(x + at, count), load_lanes(dy + at, count), coefficient(k.mean, i),
                              coefficient(k.invstd, i), coefficient(k.a, i), coefficient(k.b, i),
                              coefficient(k.k_dy, i), coefficient(k.mean_dy, i), coefficient(k.mean_dy_xhat, i));
    }
  };
  if (!narrow) store_rows<Stream>(dx, rows, stride, c, in_place, value);
  if constexpr (Stream) _mm_sfence();
}

template <class Arch>
void Kernels<Arch>::grad_input_rows(const float* x, const float* dy, float* dx, const RowWalk& walk,
                                    const GradCoefficientArrays& k, bool relu, bool stream) {
  with_modes(relu, stream, [&](auto r, auto s) {
    if (k.k_in != nullptr) {
      grad_input_rows_impl<decltype(r)::value, decltype(s)::value, true>(x, dy, dx, walk, k);
    } else {
      grad_input_rows_impl<decltype(r)::value, decltype(s)::value, false>(x, dy, dx, walk, k);
    }
  });
}

}  // namespace kernels
}  // namespace simdnorm

#endif  // SIMDNORM_SRC_KERNELS_GRAD_HPP_
