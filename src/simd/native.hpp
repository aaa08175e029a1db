// What xsimd 8.1 lacks, per ISA: loads and stores of the first k < W lanes that never touch memory past them,
// non-temporal stores, widening of a float vector into two double vectors (and back), and a fused multiply-add on
// AVX-512 (xsimd 8.1 has none for avx512f: its generic fallback is a multiply and an add, which the library, built
// with -ffp-contract=off, would then round twice). The kernels call fma and fnma here, never xsimd's. Only per-ISA
// units include this file (through kernels/kernels.hpp); each specialisation exists only where its ISA is enabled.
#ifndef SIMDNORM_SRC_SIMD_NATIVE_HPP_
#define SIMDNORM_SRC_SIMD_NATIVE_HPP_

#include <immintrin.h>

#include <cstddef>
#include <xsimd/xsimd.hpp>

namespace simdnorm {
namespace kernels {

template <class Arch>
struct Native;

#if XSIMD_WITH_AVX512F
template <>
struct Native<xsimd::avx512f> {
  using F = xsimd::batch<float, xsimd::avx512f>;
  using D = xsimd::batch<double, xsimd::avx512f>;
  static __mmask16 mask(std::size_t k) { return static_cast<__mmask16>((1u << k) - 1u); }
  static F fma(F a, F b, F c) { return _mm512_fmadd_ps(a, b, c); }    // a*b + c, one rounding
  static F fnma(F a, F b, F c) { return _mm512_fnmadd_ps(a, b, c); }  // c - a*b, one rounding
  static F load_first(const float* p, std::size_t k) { return _mm512_maskz_loadu_ps(mask(k), p); }
  static void store_first(float* p, F v, std::size_t k) { _mm512_mask_storeu_ps(p, mask(k), v); }
  static void stream(float* p, F v) { _mm512_stream_ps(p, v); }
  static F narrow(D v) { return _mm512_castps256_ps512(_mm512_cvtpd_ps(v)); }  // into the low H lanes
  static F narrow2(D lo, D hi) {  // lo into the low H lanes, hi into the high ones
    return _mm512_castpd_ps(_mm512_insertf64x4(_mm512_castps_pd(narrow(lo)), _mm256_castps_pd(_mm512_cvtpd_ps(hi)), 1));
  }
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
  static F fma(F a, F b, F c) { return xsimd::fma(a, b, c); }  // fma3: fused
  static F fnma(F a, F b, F c) { return xsimd::fnma(a, b, c); }
  static __m256i mask(std::size_t k) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(k)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  }
  static F load_first(const float* p, std::size_t k) { return _mm256_maskload_ps(p, mask(k)); }
  static void store_first(float* p, F v, std::size_t k) { _mm256_maskstore_ps(p, mask(k), v); }
  static void stream(float* p, F v) { _mm256_stream_ps(p, v); }
  static F narrow(D v) { return _mm256_castps128_ps256(_mm256_cvtpd_ps(v)); }
  static F narrow2(D lo, D hi) { return _mm256_insertf128_ps(narrow(lo), _mm256_cvtpd_ps(hi), 1); }
  static D widen_lo(F v) { return _mm256_cvtps_pd(_mm256_castps256_ps128(v)); }
  static D widen_hi(F v) { return _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)); }
};
#endif

#if XSIMD_WITH_SSE2
template <>
struct Native<xsimd::sse2> {
  using F = xsimd::batch<float, xsimd::sse2>;
  using D = xsimd::batch<double, xsimd::sse2>;
  static F fma(F a, F b, F c) { return a * b + c; }  // no FMA on SSE2: two roundings
  static F fnma(F a, F b, F c) { return c - a * b; }
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
  static void stream(float* p, F v) { _mm_stream_ps(p, v); }
  static F narrow(D v) { return _mm_cvtpd_ps(v); }
  static F narrow2(D lo, D hi) { return _mm_movelh_ps(_mm_cvtpd_ps(lo), _mm_cvtpd_ps(hi)); }
  static D widen_lo(F v) { return _mm_cvtps_pd(v); }
  static D widen_hi(F v) { return _mm_cvtps_pd(_mm_movehl_ps(v, v)); }
};
#endif

}  // namespace kernels
}  // namespace simdnorm

#endif  // SIMDNORM_SRC_SIMD_NATIVE_HPP_
