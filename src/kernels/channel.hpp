// The per-channel kernels, vectorised over channels: Chan merge of chunk partials, mean, statistics and the fold
// to a*x + b, running statistics, backward coefficients.
// Part of Kernels<Arch> (kernels/kernels.hpp), which includes this file; per-ISA units instantiate it.
#ifndef SIMDNORM_SRC_KERNELS_CHANNEL_HPP_
#define SIMDNORM_SRC_KERNELS_CHANNEL_HPP_

#include "kernels/kernels.hpp"

namespace simdnorm {
namespace kernels {

// Per-channel arithmetic, vectorised over channels: padded arrays (whole vectors from any j < c stay within the
// padding; what the lanes past c compute is never used), W channels a step.

template <class Arch>
void Kernels<Arch>::merge_rows(double* sum, double* m2, const double* sum_b, const double* m2_b, std::size_t c,
                               double na, double nb) {
  const ChanWeights<Arch, D> weights(na, nb);
  for (std::size_t j = 0; j < c; j += H) {
    D s = D::load_unaligned(sum + j), q = D::load_unaligned(m2 + j);
    chan_merge(s, q, D::load_unaligned(sum_b + j), D::load_unaligned(m2_b + j), weights);
    s.store_unaligned(sum + j);
    q.store_unaligned(m2 + j);
  }
}

template <class Arch>
void Kernels<Arch>::fold_rows(const float* mean, const float* var, const float* gamma, const float* beta,
                              std::size_t c, double eps, float* a, float* b) {
  const D veps(eps), one(1.0);
  for (std::size_t j = 0; j < c; j += W) {
    const Wide invstd = each([&](D v) { return one / xsimd::sqrt(v + veps); }, widen(F::load_unaligned(var + j)));
    fold_wide(F::load_unaligned(mean + j), invstd, F::load_unaligned(gamma + j), F::load_unaligned(beta + j), a + j,
              b + j);
  }
}

template <class Arch>
void Kernels<Arch>::fold_saved_rows(const float* mean, const float* invstd, const float* gamma, const float* beta,
                                    std::size_t c, float* a, float* b) {
  for (std::size_t j = 0; j < c; j += W) {
    fold_wide(F::load_unaligned(mean + j), widen(F::load_unaligned(invstd + j)), F::load_unaligned(gamma + j),
              F::load_unaligned(beta + j), a + j, b + j);
  }
}

template <class Arch>
void Kernels<Arch>::center_rows(const double* sum, const float* shift, std::size_t c, double m, double* mean) {
  const D vm(m);
  for (std::size_t j = 0; j < c; j += W) {
    // A true division: on exactly representable data sum/m is then the exact offset of the mean from the shift.
    store_wide(mean + j, each([&](D k, D s) { return k + s / vm; }, widen(F::load_unaligned(shift + j)),
                              load_wide(sum + j)));
  }
}

template <class Arch>
void Kernels<Arch>::stats_rows(const double* mean, const double* m2, const float* gamma, const float* beta,
                               std::size_t c, double m, double eps, float* mean_f, float* invstd, float* a,
                               float* b) {
  const D vm(m), veps(eps), one(1.0);
  for (std::size_t j = 0; j < c; j += W) {
    const F mean_r = narrow(load_wide(mean + j));
    mean_r.store_unaligned(mean_f + j);
    const F invstd_r = narrow(each([&](D q) { return one / xsimd::sqrt(q / vm + veps); }, load_wide(m2 + j)));
    invstd_r.store_unaligned(invstd + j);
    fold_wide(mean_r, widen(invstd_r), F::load_unaligned(gamma + j), F::load_unaligned(beta + j), a + j, b + j);
  }
}

template <class Arch>
void Kernels<Arch>::update_running(const double* mean, const double* m2, std::size_t c, double m, double momentum,
                                   float* running_mean, float* running_var) {
  const D keep(1.0 - momentum), take(momentum), unbiased(m - 1.0);
  for (std::size_t j = 0; j < c; j += W) {
    // running_mean and running_var are the caller's arrays of exactly c floats: the last step is masked.
    const std::size_t n = c - j < W ? c - j : W;
    auto load = [&](const float* p) { return load_lanes(p, n); };
    auto store = [&](float* p, F v) { n == W ? v.store_unaligned(p) : Native::store_first(p, v, n); };
    const Wide mu = load_wide(mean + j), q = load_wide(m2 + j);
    const F rm = narrow(each(
        [&](D r, D u, D q2) { return xsimd::select(xsimd::isfinite(u) & xsimd::isfinite(q2), keep * r + take * u, r); },
        widen(load(running_mean + j)), mu, q));
    const F rv = narrow(each(
        [&](D r, D u, D q2) {
          return xsimd::select(xsimd::isfinite(u) & xsimd::isfinite(q2), keep * r + take * (q2 / unbiased), r);
        },
        widen(load(running_var + j)), mu, q));
    store(running_mean + j, rm);
    store(running_var + j, rv);
  }
}

template <class Arch>
void Kernels<Arch>::grad_finish_rows(const double* sum_dy, const double* sum_dy_xc, const float* invstd,
                                     const float* gamma, std::size_t c, double m, float* dbeta, float* dgamma,
                                     float* k_dy, float* mean_dy, float* mean_dy_xhat) {
  const D inv_m(1.0 / m);
  for (std::size_t j = 0; j < c; j += W) {
    const Wide s1 = load_wide(sum_dy + j), is = widen(F::load_unaligned(invstd + j));
    const Wide s2_is = each([](D s2, D i) { return s2 * i; }, load_wide(sum_dy_xc + j), is);
    narrow(s1).store_unaligned(dbeta + j);
    narrow(s2_is).store_unaligned(dgamma + j);
    narrow(each([](D g, D i) { return g * i; }, widen(F::load_unaligned(gamma + j)), is)).store_unaligned(k_dy + j);
    narrow(each([&](D s) { return s * inv_m; }, s1)).store_unaligned(mean_dy + j);
    narrow(each([&](D s) { return s * inv_m; }, s2_is)).store_unaligned(mean_dy_xhat + j);
  }
}

}  // namespace kernels
}  // namespace simdnorm

#endif  // SIMDNORM_SRC_KERNELS_CHANNEL_HPP_
