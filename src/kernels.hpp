// The kernels, written once for every ISA as a class template on the xsimd architecture. Only the per-ISA units
// (kernels_<isa>.cpp, compiled with that ISA's flags) include this file; each instantiates Kernels<Arch> explicitly
// and publishes its KernelTable. Everything here is a template on Arch, so no function is emitted twice with
// different instruction sets under one name.
#ifndef SIMDNORM_SRC_KERNELS_HPP_
#define SIMDNORM_SRC_KERNELS_HPP_

#include <immintrin.h>

#include <cstddef>
#include <xsimd/xsimd.hpp>

#include "kernel_table.hpp"
#include "moments.hpp"

namespace simdnorm {
namespace kernels {

// What xsimd 8.1 lacks, per ISA: loads and stores of the first k < W lanes that never touch memory past them, and
// widening of a float vector into two double vectors.
template <class Arch>
struct Native;

#if XSIMD_WITH_AVX512F
template <>
struct Native<xsimd::avx512f> {
  using F = xsimd::batch<float, xsimd::avx512f>;
  using D = xsimd::batch<double, xsimd::avx512f>;
  static __mmask16 mask(std::size_t k) { return static_cast<__mmask16>((1u << k) - 1u); }
  static F load_first(const float* p, std::size_t k) { return _mm512_maskz_loadu_ps(mask(k), p); }
  static void store_first(float* p, F v, std::size_t k) { _mm512_mask_storeu_ps(p, mask(k), v); }
  static D widen_lo(F v) { return _mm512_cvtps_pd(_mm512_castps512_ps256(v)); }
  static D widen_hi(F v) {
    return _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
  }
};
#endif

#if XSIMD_WITH_FMA3_AVX2
template <>
struct Native<xsimd::fma3<xsimd::avx2>> {
  using F = xsimd::batch<float, xsimd::fma3<xsimd::avx2>>;
  using D = xsimd::batch<double, xsimd::fma3<xsimd::avx2>>;
  static __m256i mask(std::size_t k) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(k)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  }
  static F load_first(const float* p, std::size_t k) { return _mm256_maskload_ps(p, mask(k)); }
  static void store_first(float* p, F v, std::size_t k) { _mm256_maskstore_ps(p, mask(k), v); }
  static D widen_lo(F v) { return _mm256_cvtps_pd(_mm256_castps256_ps128(v)); }
  static D widen_hi(F v) { return _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)); }
};
#endif

#if XSIMD_WITH_SSE2
template <>
struct Native<xsimd::sse2> {
  using F = xsimd::batch<float, xsimd::sse2>;
  using D = xsimd::batch<double, xsimd::sse2>;
  // SSE2 has no masked moves: go through a register-sized buffer.
  static F load_first(const float* p, std::size_t k) {
    alignas(16) float lanes[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    for (std::size_t i = 0; i < k; ++i) lanes[i] = p[i];
    return _mm_load_ps(lanes);
  }
  static void store_first(float* p, F v, std::size_t k) {
    alignas(16) float lanes[4];
    _mm_store_ps(lanes, v);
    for (std::size_t i = 0; i < k; ++i) p[i] = lanes[i];
  }
  static D widen_lo(F v) { return _mm_cvtps_pd(v); }
  static D widen_hi(F v) { return _mm_cvtps_pd(_mm_movehl_ps(v, v)); }
};
#endif

template <class Arch>
struct Kernels {
  using F = xsimd::batch<float, Arch>;
  using D = xsimd::batch<double, Arch>;
  using Native = kernels::Native<Arch>;
  static constexpr std::size_t W = F::size;  // float lanes
  static constexpr std::size_t H = D::size;  // double lanes: W / 2
  // Vectors per lane block of the Welford recurrence: the block's mean and M2 are formed in registers (its mean
  // s/4 is exact), then merged into the double lane state with Chan's formula, one merge per 4*W values.
  static constexpr std::size_t U = 4;

  static Moments moments_run(const float* x, const RunWalk& walk, float shift);
  static void moments_rows(const float* x, const RowWalk& walk, const float* shift, double* sum, double* m2);
  static void affine_run(const float* x, float* y, std::size_t len, float a, float b, bool relu);
  static void affine_rows(const float* x, float* y, const RowWalk& walk, const float* a, const float* b, bool relu);
  static void grad_sums_run(const float* x, const float* dy, const RunWalk& walk, const GradCoefficients& k,
                            bool relu, double* sum_dy, double* sum_dy_xc);
  static void grad_sums_rows(const float* x, const float* dy, const RowWalk& walk, const GradCoefficientArrays& k,
                             bool relu, double* sum_dy, double* sum_dy_xc);
  static void grad_input_run(const float* x, const float* dy, float* dx, std::size_t len, const GradCoefficients& k,
                             bool relu);
  static void grad_input_rows(const float* x, const float* dy, float* dx, const RowWalk& walk,
                              const GradCoefficientArrays& k, bool relu);

  static constexpr KernelTable table(const char* name) {
    return KernelTable{name,           &moments_run,    &moments_rows,   &affine_run,      &affine_rows,
                       &grad_sums_run, &grad_sums_rows, &grad_input_run, &grad_input_rows};
  }

 private:
  // ---- the arithmetic, once for both walks ----

  // Per lane: Σ(x − K) and M2 of the values seen so far, in double (lo and hi halves of the float lanes).
  struct Lanes {
    D sum_lo, sum_hi, m2_lo, m2_hi;
  };

  // Chan's weights for merging a block of u values per lane into a lane state holding n values per lane.
  struct BlockWeights {
    D inv_u, inv_n, w;
    bool first;
    BlockWeights(double n, double u)
        : inv_u(1.0 / u), inv_n(n > 0.0 ? 1.0 / n : 0.0), w(n * u / (n + u)), first(n == 0.0) {}
  };

  // Sum and M2 (about the block mean) of u shifted vectors, per lane, in float: the block is in registers, so its
  // M2 is taken about its own mean instead of accumulating squares.
  template <std::size_t Count>
  static void block_moments(const F (&v)[Count], F& s, F& q) {
    s = v[0];
    for (std::size_t i = 1; i < Count; ++i) s += v[i];
    const F mean = s * F(1.0f / static_cast<float>(Count));
    q = F(0.0f);
    for (std::size_t i = 0; i < Count; ++i) {
      const F d = v[i] - mean;
      q = xsimd::fma(d, d, q);
    }
  }

  static void merge_half(D& sum, D& m2, const BlockWeights& bw, D s, D q) {
    if (bw.first) {
      sum = s;
      m2 = q;
      return;
    }
    const D delta = s * bw.inv_u - sum * bw.inv_n;
    m2 = xsimd::fma(delta * bw.w, delta, m2 + q);
    sum += s;
  }

  static void merge_block(Lanes& st, const BlockWeights& bw, F s, F q) {
    merge_half(st.sum_lo, st.m2_lo, bw, Native::widen_lo(s), Native::widen_lo(q));
    merge_half(st.sum_hi, st.m2_hi, bw, Native::widen_hi(s), Native::widen_hi(q));
  }

  // The same merge for a state kept in memory (row walks: one state per channel vector).
  static void merge_block(double* sum, double* m2, const BlockWeights& bw, F s, F q) {
    D sum_lo = D::load_unaligned(sum), sum_hi = D::load_unaligned(sum + H);
    D m2_lo = D::load_unaligned(m2), m2_hi = D::load_unaligned(m2 + H);
    merge_half(sum_lo, m2_lo, bw, Native::widen_lo(s), Native::widen_lo(q));
    merge_half(sum_hi, m2_hi, bw, Native::widen_hi(s), Native::widen_hi(q));
    sum_lo.store_unaligned(sum);
    sum_hi.store_unaligned(sum + H);
    m2_lo.store_unaligned(m2);
    m2_hi.store_unaligned(m2 + H);
  }

  static void add_widened(D& lo, D& hi, F v) {
    lo += Native::widen_lo(v);
    hi += Native::widen_hi(v);
  }
  static void add_widened(double* p, F v) {
    (D::load_unaligned(p) + Native::widen_lo(v)).store_unaligned(p);
    (D::load_unaligned(p + H) + Native::widen_hi(v)).store_unaligned(p + H);
  }

  template <bool Relu>
  static F activate(F y) {
    if constexpr (Relu) {
      return xsimd::select(y <= F(0.0f), F(0.0f), y);  // NaN compares false and passes through
    } else {
      return y;
    }
  }

  // dy masked where the forward output a*x + b (the forward's own arithmetic) is <= 0.
  template <bool Relu>
  static F masked_dy(F x, F dy, F a, F b) {
    if constexpr (Relu) {
      return xsimd::select(xsimd::fma(a, x, b) <= F(0.0f), F(0.0f), dy);
    } else {
      (void)x, (void)a, (void)b;
      return dy;
    }
  }

  // dx = k_dy*dy' + (k_xc*(x − mean) + k_0)
  template <bool Relu>
  static F grad_input(F x, F dy, F mean, F a, F b, F k_dy, F k_xc, F k_0) {
    return xsimd::fma(k_dy, masked_dy<Relu>(x, dy, a, b), xsimd::fma(k_xc, x - mean, k_0));
  }

  template <bool Relu>
  static void affine_run_impl(const float* x, float* y, std::size_t len, float a, float b);
  template <bool Relu>
  static void affine_rows_impl(const float* x, float* y, const RowWalk& walk, const float* a, const float* b);
  template <bool Relu>
  static void grad_sums_run_impl(const float* x, const float* dy, const RunWalk& walk, const GradCoefficients& k,
                                 double* sum_dy, double* sum_dy_xc);
  template <bool Relu>
  static void grad_sums_rows_impl(const float* x, const float* dy, const RowWalk& walk,
                                  const GradCoefficientArrays& k, double* sum_dy, double* sum_dy_xc);
  template <bool Relu>
  static void grad_input_run_impl(const float* x, const float* dy, float* dx, std::size_t len,
                                  const GradCoefficients& k);
  template <bool Relu>
  static void grad_input_rows_impl(const float* x, const float* dy, float* dx, const RowWalk& walk,
                                   const GradCoefficientArrays& k);

  template <class Visit>
  static void for_each_run(const RunWalk& walk, Visit&& visit) {
    std::size_t e = walk.begin;
    while (e < walk.end) {
      const std::size_t run = e / walk.len;
      const std::size_t offset = e - run * walk.len;
      const std::size_t rest = walk.len - offset;
      const std::size_t take = rest < walk.end - e ? rest : walk.end - e;
      visit(run * walk.stride + offset, take);
      e += take;
    }
  }
};

// ---------------------------------------------------------------------------------------------------------------
// Forward statistics

template <class Arch>
Moments Kernels<Arch>::moments_run(const float* x, const RunWalk& walk, float shift) {
  const F k(shift);
  Lanes lanes{};
  double n = 0.0;  // values per lane so far (every lane sees the same number of whole vectors)
  Moments tail{0.0, 0.0, 0.0};  // values after the last whole vector of each run
  for_each_run(walk, [&](std::size_t start, std::size_t len) {
    const float* p = x + start;
    std::size_t i = 0;
    for (; i + U * W <= len; i += U * W) {
      F v[U];
      for (std::size_t u = 0; u < U; ++u) v[u] = F::load_unaligned(p + i + u * W) - k;
      F s, q;
      block_moments(v, s, q);
      merge_block(lanes, BlockWeights(n, U), s, q);
      n += U;
    }
    for (; i + W <= len; i += W) {
      merge_block(lanes, BlockWeights(n, 1.0), F::load_unaligned(p + i) - k, F(0.0f));
      n += 1.0;
    }
    for (; i < len; ++i) merge_moments<Arch>(tail, Moments{1.0, static_cast<double>(p[i] - shift), 0.0});
  });
  Moments total{0.0, 0.0, 0.0};
  if (n > 0.0) {
    alignas(64) double sum[W];
    alignas(64) double m2[W];
    lanes.sum_lo.store_unaligned(sum);
    lanes.sum_hi.store_unaligned(sum + H);
    lanes.m2_lo.store_unaligned(m2);
    lanes.m2_hi.store_unaligned(m2 + H);
    for (std::size_t l = 0; l < W; ++l) merge_moments<Arch>(total, Moments{n, sum[l], m2[l]});
  }
  merge_moments<Arch>(total, tail);
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
    for (; j < whole; j += W) {
      const F k = F::load_unaligned(shift + j);
      F v[Count];
      for (std::size_t u = 0; u < Count; ++u) v[u] = F::load_unaligned(row + u * walk.row_stride + j) - k;
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
  for (; r + U <= walk.rows; r += U) update(r, std::integral_constant<std::size_t, U>{});
  for (; r < walk.rows; ++r) update(r, std::integral_constant<std::size_t, 1>{});
}

// ---------------------------------------------------------------------------------------------------------------
// y = a*x + b

template <class Arch>
template <bool Relu>
void Kernels<Arch>::affine_run_impl(const float* x, float* y, std::size_t len, float a, float b) {
  const F va(a), vb(b);
  std::size_t i = 0;
  for (; i + 2 * W <= len; i += 2 * W) {
    const F y0 = activate<Relu>(xsimd::fma(va, F::load_unaligned(x + i), vb));
    const F y1 = activate<Relu>(xsimd::fma(va, F::load_unaligned(x + i + W), vb));
    y0.store_unaligned(y + i);
    y1.store_unaligned(y + i + W);
  }
  for (; i + W <= len; i += W) activate<Relu>(xsimd::fma(va, F::load_unaligned(x + i), vb)).store_unaligned(y + i);
  if (i < len) Native::store_first(y + i, activate<Relu>(xsimd::fma(va, Native::load_first(x + i, len - i), vb)), len - i);
}

template <class Arch>
void Kernels<Arch>::affine_run(const float* x, float* y, std::size_t len, float a, float b, bool relu) {
  relu ? affine_run_impl<true>(x, y, len, a, b) : affine_run_impl<false>(x, y, len, a, b);
}

template <class Arch>
template <bool Relu>
void Kernels<Arch>::affine_rows_impl(const float* x, float* y, const RowWalk& walk, const float* a, const float* b) {
  const std::size_t whole = walk.c / W * W;
  const std::size_t tail = walk.c - whole;
  for (std::size_t r = 0; r < walk.rows; ++r) {
    const float* xr = x + r * walk.row_stride;
    float* yr = y + r * walk.row_stride;
    std::size_t j = 0;
    for (; j < whole; j += W) {
      activate<Relu>(xsimd::fma(F::load_unaligned(a + j), F::load_unaligned(xr + j), F::load_unaligned(b + j)))
          .store_unaligned(yr + j);
    }
    if (tail != 0) {
      const F v = xsimd::fma(F::load_unaligned(a + j), Native::load_first(xr + j, tail), F::load_unaligned(b + j));
      Native::store_first(yr + j, activate<Relu>(v), tail);
    }
  }
}

template <class Arch>
void Kernels<Arch>::affine_rows(const float* x, float* y, const RowWalk& walk, const float* a, const float* b,
                                bool relu) {
  relu ? affine_rows_impl<true>(x, y, walk, a, b) : affine_rows_impl<false>(x, y, walk, a, b);
}

// ---------------------------------------------------------------------------------------------------------------
// Backward: Σdy' and Σdy'(x − mean) in float blocks of U vectors, widened into double lanes once per block.

template <class Arch>
template <bool Relu>
void Kernels<Arch>::grad_sums_run_impl(const float* x, const float* dy, const RunWalk& walk,
                                       const GradCoefficients& k, double* sum_dy, double* sum_dy_xc) {
  const F mean(k.mean), a(k.a), b(k.b);
  D s1_lo(0.0), s1_hi(0.0), s2_lo(0.0), s2_hi(0.0);
  for_each_run(walk, [&](std::size_t start, std::size_t len) {
    const float* px = x + start;
    const float* pd = dy + start;
    std::size_t i = 0;
    for (; i + U * W <= len; i += U * W) {
      F b1(0.0f), b2(0.0f);
      for (std::size_t u = 0; u < U; ++u) {
        const F vx = F::load_unaligned(px + i + u * W);
        const F g = masked_dy<Relu>(vx, F::load_unaligned(pd + i + u * W), a, b);
        b1 += g;
        b2 = xsimd::fma(g, vx - mean, b2);
      }
      add_widened(s1_lo, s1_hi, b1);
      add_widened(s2_lo, s2_hi, b2);
    }
    for (; i < len; i += W) {
      const std::size_t count = len - i < W ? len - i : W;
      // Masked lanes load x = dy = 0, so g = 0 there and they add 0 to both sums.
      const F vx = count == W ? F::load_unaligned(px + i) : Native::load_first(px + i, count);
      const F vd = count == W ? F::load_unaligned(pd + i) : Native::load_first(pd + i, count);
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
    for (std::size_t j = 0; j < walk.c; j += W) {
      const std::size_t lanes = j < whole ? W : tail;
      const F mean = F::load_unaligned(k.mean + j), a = F::load_unaligned(k.a + j), b = F::load_unaligned(k.b + j);
      F b1(0.0f), b2(0.0f);
      for (std::size_t u = 0; u < Count; ++u) {
        const std::size_t at = u * walk.row_stride + j;
        const F vx = lanes == W ? F::load_unaligned(xr + at) : Native::load_first(xr + at, lanes);
        const F vd = lanes == W ? F::load_unaligned(dr + at) : Native::load_first(dr + at, lanes);
        const F g = masked_dy<Relu>(vx, vd, a, b);
        b1 += g;
        b2 = xsimd::fma(g, vx - mean, b2);
      }
      // Lanes past c: dy = 0 so g = 0, and the padded per-channel arrays are finite, so nothing but 0 is added.
      add_widened(sum_dy + j, b1);
      add_widened(sum_dy_xc + j, b2);
    }
  };
  std::size_t r = 0;
  for (; r + U <= walk.rows; r += U) update(r, std::integral_constant<std::size_t, U>{});
  for (; r < walk.rows; ++r) update(r, std::integral_constant<std::size_t, 1>{});
}

template <class Arch>
void Kernels<Arch>::grad_sums_rows(const float* x, const float* dy, const RowWalk& walk,
                                   const GradCoefficientArrays& k, bool relu, double* sum_dy, double* sum_dy_xc) {
  relu ? grad_sums_rows_impl<true>(x, dy, walk, k, sum_dy, sum_dy_xc)
       : grad_sums_rows_impl<false>(x, dy, walk, k, sum_dy, sum_dy_xc);
}

template <class Arch>
template <bool Relu>
void Kernels<Arch>::grad_input_run_impl(const float* x, const float* dy, float* dx, std::size_t len,
                                        const GradCoefficients& k) {
  const F mean(k.mean), a(k.a), b(k.b), k_dy(k.k_dy), k_xc(k.k_xc), k_0(k.k_0);
  std::size_t i = 0;
  for (; i + W <= len; i += W) {
    grad_input<Relu>(F::load_unaligned(x + i), F::load_unaligned(dy + i), mean, a, b, k_dy, k_xc, k_0)
        .store_unaligned(dx + i);
  }
  if (i < len) {
    const std::size_t rest = len - i;
    const F v = grad_input<Relu>(Native::load_first(x + i, rest), Native::load_first(dy + i, rest), mean, a, b, k_dy,
                                 k_xc, k_0);
    Native::store_first(dx + i, v, rest);
  }
}

template <class Arch>
void Kernels<Arch>::grad_input_run(const float* x, const float* dy, float* dx, std::size_t len,
                                   const GradCoefficients& k, bool relu) {
  relu ? grad_input_run_impl<true>(x, dy, dx, len, k) : grad_input_run_impl<false>(x, dy, dx, len, k);
}

template <class Arch>
template <bool Relu>
void Kernels<Arch>::grad_input_rows_impl(const float* x, const float* dy, float* dx, const RowWalk& walk,
                                         const GradCoefficientArrays& k) {
  const std::size_t whole = walk.c / W * W;
  const std::size_t tail = walk.c - whole;
  for (std::size_t r = 0; r < walk.rows; ++r) {
    const std::size_t at = r * walk.row_stride;
    std::size_t j = 0;
    for (; j < whole; j += W) {
      grad_input<Relu>(F::load_unaligned(x + at + j), F::load_unaligned(dy + at + j), F::load_unaligned(k.mean + j),
                       F::load_unaligned(k.a + j), F::load_unaligned(k.b + j), F::load_unaligned(k.k_dy + j),
                       F::load_unaligned(k.k_xc + j), F::load_unaligned(k.k_0 + j))
          .store_unaligned(dx + at + j);
    }
    if (tail != 0) {
      const F v = grad_input<Relu>(Native::load_first(x + at + j, tail), Native::load_first(dy + at + j, tail),
                                   F::load_unaligned(k.mean + j), F::load_unaligned(k.a + j),
                                   F::load_unaligned(k.b + j), F::load_unaligned(k.k_dy + j),
                                   F::load_unaligned(k.k_xc + j), F::load_unaligned(k.k_0 + j));
      Native::store_first(dx + at + j, v, tail);
    }
  }
}

template <class Arch>
void Kernels<Arch>::grad_input_rows(const float* x, const float* dy, float* dx, const RowWalk& walk,
                                    const GradCoefficientArrays& k, bool relu) {
  relu ? grad_input_rows_impl<true>(x, dy, dx, walk, k) : grad_input_rows_impl<false>(x, dy, dx, walk, k);
}

}  // namespace kernels
}  // namespace simdnorm

#endif  // SIMDNORM_SRC_KERNELS_HPP_
