// The row-norm kernels (LayerNorm, RMSNorm): a span of one row, with per-row scalars (mean, rstd) and per-column
// parameters (gamma, beta) read from the caller's arrays at the span's columns, masked at the tail. The moments of
// a row are moments_run's; the backward formula is grad_input's with k_in = gamma (kernels.hpp).
// Part of Kernels<Arch> (kernels/kernels.hpp), which includes this file; per-ISA units instantiate it.
#ifndef SIMDNORM_SRC_KERNELS_ROW_NORM_HPP_
#define SIMDNORM_SRC_KERNELS_ROW_NORM_HPP_

#include "kernels/kernels.hpp"

namespace simdnorm {
namespace kernels {

// The second pass over a row reads it from the cache, and the memory would idle while it runs: with ahead != 0 it
// touches the line `ahead` floats further on (the next row), into L2, once a cache line. (The forward pass reads
// the next row ahead in moments_run instead, through its walk.)
template <class Arch>
void Kernels<Arch>::fetch_ahead(const float* p, std::size_t ahead) {
  if (ahead != 0 && reinterpret_cast<std::uintptr_t>(p) % 64 < sizeof(F)) {
    _mm_prefetch(reinterpret_cast<const char*>(p + ahead), _MM_HINT_T1);
  }
}

template <class Arch>
template <bool Gamma, bool Beta, bool Stream>
void Kernels<Arch>::normalize_span_impl(const float* x, float* y, std::size_t len, const RowScalars& s,
                                        const float* gamma, const float* beta) {
  const F hi(s.mean), lo(s.mean_lo), rstd(s.rstd);
  // (x − hi) is exact for x within a factor of two of the mean, so the mean's double value (hi + lo) centres x
  // to float precision even where mean/std is 1e4 and more.
  auto value = [&](F v, F g, F b) SIMDNORM_INLINE {
    const F xhat = ((v - hi) - lo) * rstd;
    if constexpr (Beta) {
      return Native::fma(xhat, g, b);
    } else if constexpr (Gamma) {
      return xhat * g;
    } else {
      return xhat;
    }
  };
  store_span<Stream>(
      y, len,
      [&](std::size_t i) {
        return value(F::load_unaligned(x + i), Gamma ? F::load_unaligned(gamma + i) : F(1.0f),
                     Beta ? F::load_unaligned(beta + i) : F(0.0f));
      },
      [&](std::size_t i, std::size_t n) {
        return value(Native::load_first(x + i, n), Gamma ? Native::load_first(gamma + i, n) : F(1.0f),
                     Beta ? Native::load_first(beta + i, n) : F(0.0f));
      });
  if constexpr (Stream) _mm_sfence();
}

template <class Arch>
void Kernels<Arch>::normalize_span(const float* x, float* y, std::size_t len, const RowScalars& s,
                                   const float* gamma, const float* beta, bool stream) {
  with_modes(gamma != nullptr, stream, [&](auto g, auto st) {
    constexpr bool G = decltype(g)::value, S = decltype(st)::value;
    beta != nullptr ? normalize_span_impl<G, true, S>(x, y, len, s, gamma, beta)
                    : normalize_span_impl<G, false, S>(x, y, len, s, gamma, beta);
  });
}

template <class Arch>
template <bool Gamma, int Columns>
void Kernels<Arch>::row_grad_sums_impl(const float* x, const float* dy, std::size_t len, const RowScalars& s,
                                       const float* gamma, double* sums, float* col_dy, float* col_dy_xhat) {
  const F mean(s.mean), rstd(s.rstd);
  D s1_lo(0.0), s1_hi(0.0), s2_lo(0.0), s2_hi(0.0);
  // Masked lanes load x = dy = 0: g = 0 there, so they add 0 to the row's sums (and to the padding of the columns').
  auto step = [&](std::size_t i, F vx, F vd, F vg, F& b1, F& b2) SIMDNORM_INLINE {
    // g*xhat, not g*(x − mean) scaled afterwards: with |x| near 1e20 and a large dy, that product overflows float
    // where g*xhat does not.
    const F xhat = (vx - mean) * rstd;
    const F g = Gamma ? vd * vg : vd;
    b1 += g;
    b2 = Native::fma(g, xhat, b2);
    if constexpr (Columns == kAddColumns) {
      (F::load_unaligned(col_dy + i) + vd).store_unaligned(col_dy + i);
      Native::fma(vd, xhat, F::load_unaligned(col_dy_xhat + i)).store_unaligned(col_dy_xhat + i);
    } else if constexpr (Columns == kSetColumns) {
      vd.store_unaligned(col_dy + i);
      (vd * xhat).store_unaligned(col_dy_xhat + i);
    }
  };
  std::size_t i = 0;
  for (; i + U * W <= len; i += U * W) {
    F b1(0.0f), b2(0.0f);
    for (std::size_t u = 0; u < U; ++u) {
      const std::size_t j = i + u * W;
      step(j, F::load_unaligned(x + j), F::load_unaligned(dy + j), Gamma ? F::load_unaligned(gamma + j) : F(1.0f),
           b1, b2);
    }
    add_widened(s1_lo, s1_hi, b1);
    add_widened(s2_lo, s2_hi, b2);
  }
  F b1(0.0f), b2(0.0f);
  for (; i < len; i += W) {
    const std::size_t count = len - i < W ? len - i : W;
    step(i, load_lanes(x + i, count), load_lanes(dy + i, count), Gamma ? load_lanes(gamma + i, count) : F(1.0f), b1,
         b2);
  }
  add_widened(s1_lo, s1_hi, b1);
  add_widened(s2_lo, s2_hi, b2);
  sums[0] = xsimd::hadd(s1_lo + s1_hi);
  sums[1] = xsimd::hadd(s2_lo + s2_hi);
}

template <class Arch>
void Kernels<Arch>::row_grad_sums(const float* x, const float* dy, std::size_t len, const RowScalars& s,
                                  const float* gamma, double* sums, float* col_dy, float* col_dy_xhat,
                                  bool set_columns) {
  const int columns = col_dy == nullptr ? kNoColumns : (set_columns ? kSetColumns : kAddColumns);
  with_modes(gamma != nullptr, false, [&](auto g, auto /*unused*/) {
    constexpr bool G = decltype(g)::value;
    if (columns == kNoColumns) row_grad_sums_impl<G, kNoColumns>(x, dy, len, s, gamma, sums, col_dy, col_dy_xhat);
    if (columns == kAddColumns) row_grad_sums_impl<G, kAddColumns>(x, dy, len, s, gamma, sums, col_dy, col_dy_xhat);
    if (columns == kSetColumns) row_grad_sums_impl<G, kSetColumns>(x, dy, len, s, gamma, sums, col_dy, col_dy_xhat);
  });
}

template <class Arch>
template <bool Gamma, bool Stream>
void Kernels<Arch>::row_grad_input_impl(const float* x, const float* dy, float* dx, std::size_t len,
                                        const RowScalars& s, const float* gamma, std::size_t ahead) {
  const F mean(s.mean), rstd(s.rstd), mean_g(s.mean_g), mean_g_xhat(s.mean_g_xhat), zero(0.0f);
  store_span<Stream>(
      dx, len,
      [&](std::size_t i) {
        fetch_ahead(x + i, ahead);
        fetch_ahead(dy + i, ahead);
        return grad_input<false>(F::load_unaligned(x + i), F::load_unaligned(dy + i), mean, rstd, zero, zero, rstd,
                                 mean_g, mean_g_xhat, Gamma ? F::load_unaligned(gamma + i) : F(1.0f));
      },
      [&](std::size_t i, std::size_t n) {
        return grad_input<false>(Native::load_first(x + i, n), Native::load_first(dy + i, n), mean, rstd, zero, zero,
                                 rstd, mean_g, mean_g_xhat, Gamma ? Native::load_first(gamma + i, n) : F(1.0f));
      });
  if constexpr (Stream) _mm_sfence();
}

template <class Arch>
void Kernels<Arch>::row_grad_input(const float* x, const float* dy, float* dx, std::size_t len, const RowScalars& s,
                                   const float* gamma, std::size_t ahead, bool stream) {
  with_modes(gamma != nullptr, stream, [&](auto g, auto st) {
    row_grad_input_impl<decltype(g)::value, decltype(st)::value>(x, dy, dx, len, s, gamma, ahead);
  });
}

}  // namespace kernels
}  // namespace simdnorm

#endif  // SIMDNORM_SRC_KERNELS_ROW_NORM_HPP_
