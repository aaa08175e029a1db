/*
 * simdnorm reference implementation: plain scalar loops with double accumulation (two-pass mean then variance).
 *
 * Same signatures, validation, statuses and conventions as the functions of simdnorm.h, with every intermediate in
 * double and one rounding to float per output. It is slow on purpose and meant to be read: the yardstick of the
 * tests and the "naive" baseline of the benchmarks, exposed so that users can validate their own results too. It is
 * single-threaded and does not depend on the ISA.
 *
 * One deliberate difference in arithmetic: the reference computes y = gamma * (x - mean) * invstd + beta directly in
 * double, where the fast path rounds a = gamma*invstd and b = beta - mean*a to float first, so the two agree to a few
 * ulps of |a*x| + |b|, not of |y|.
 */
#ifndef SIMDNORM_REFERENCE_H_
#define SIMDNORM_REFERENCE_H_

#include <simdnorm/simdnorm.h>

#ifdef __cplusplus
extern "C" {
#endif

SIMDNORM_API simdnorm_status simdnorm_reference_forward_training(const simdnorm_shape* shape, const float* x, float* y,
                                                                 const float* gamma, const float* beta, float eps,
                                                                 float* batch_mean, float* batch_invstd,
                                                                 float* running_mean, float* running_var,
                                                                 float momentum, unsigned flags);

SIMDNORM_API simdnorm_status simdnorm_reference_forward_inference(const simdnorm_shape* shape, const float* x, float* y,
                                                                  const float* gamma, const float* beta,
                                                                  const float* mean, const float* var, float eps,
                                                                  unsigned flags);

SIMDNORM_API simdnorm_status simdnorm_reference_backward(const simdnorm_shape* shape, const float* x, const float* dy,
                                                         const float* gamma, const float* beta, const float* batch_mean,
                                                         const float* batch_invstd, float* dx, float* dgamma,
                                                         float* dbeta, unsigned flags);

SIMDNORM_API simdnorm_status simdnorm_reference_fold(size_t c, const float* gamma, const float* beta, const float* mean,
                                                     const float* var, float eps, float* scale, float* shift);

SIMDNORM_API simdnorm_status simdnorm_reference_affine(const simdnorm_shape* shape, const float* x, float* y,
                                                       const float* scale, const float* shift, unsigned flags);

/* The split phases. Merge groups Chan's formula as simdnorm_merge_moments does, mean = mean_a + delta*(nb/n) and
 * m2 = m2_a + m2_b + delta*delta*(na*nb/n), so that the two agree bitwise. Normalize computes y in double, as the
 * reference forward does, and so differs from simdnorm_normalize as described above. */
SIMDNORM_API simdnorm_status simdnorm_reference_moments(const simdnorm_shape* shape, const float* x, double* mean,
                                                        double* m2);

SIMDNORM_API simdnorm_status simdnorm_reference_merge_moments(size_t parts, size_t c, const double* counts,
                                                              const double* means, const double* m2s, double* mean,
                                                              double* m2, double* total);

SIMDNORM_API simdnorm_status simdnorm_reference_finish_moments(size_t c, double count, const double* mean,
                                                               const double* m2, float eps, float* batch_mean,
                                                               float* batch_invstd, float* running_mean,
                                                               float* running_var, float momentum);

SIMDNORM_API simdnorm_status simdnorm_reference_normalize(const simdnorm_shape* shape, const float* x, float* y,
                                                          const float* gamma, const float* beta,
                                                          const float* batch_mean, const float* batch_invstd,
                                                          unsigned flags);

SIMDNORM_API simdnorm_status simdnorm_reference_backward_reduce(const simdnorm_shape* shape, const float* x,
                                                                const float* dy, const float* gamma,
                                                                const float* beta, const float* batch_mean,
                                                                const float* batch_invstd, double* sum_dy,
                                                                double* sum_dy_xhat, unsigned flags);

SIMDNORM_API simdnorm_status simdnorm_reference_backward_apply(const simdnorm_shape* shape, const float* x,
                                                               const float* dy, const float* gamma,
                                                               const float* beta, const float* batch_mean,
                                                               const float* batch_invstd, const double* sum_dy,
                                                               const double* sum_dy_xhat, double count, float* dx,
                                                               unsigned flags);

/* LayerNorm, RMSNorm and GroupNorm: the same contracts as simdnorm.h's, two passes in double. */
SIMDNORM_API simdnorm_status simdnorm_reference_layer_norm_forward(size_t rows, size_t cols, const float* x, float* y,
                                                                   const float* gamma, const float* beta, float eps,
                                                                   float* mean, float* rstd, unsigned flags);
SIMDNORM_API simdnorm_status simdnorm_reference_layer_norm_backward(size_t rows, size_t cols, const float* x,
                                                                    const float* dy, const float* gamma,
                                                                    const float* mean, const float* rstd, float* dx,
                                                                    float* dgamma, float* dbeta, unsigned flags);
SIMDNORM_API simdnorm_status simdnorm_reference_rms_norm_forward(size_t rows, size_t cols, const float* x, float* y,
                                                                 const float* gamma, float eps, float* rstd,
                                                                 unsigned flags);
SIMDNORM_API simdnorm_status simdnorm_reference_rms_norm_backward(size_t rows, size_t cols, const float* x,
                                                                  const float* dy, const float* gamma,
                                                                  const float* rstd, float* dx, float* dgamma,
                                                                  unsigned flags);
SIMDNORM_API simdnorm_status simdnorm_reference_group_norm_forward(const simdnorm_shape* shape, size_t groups,
                                                                   const float* x, float* y, const float* gamma,
                                                                   const float* beta, float eps, float* mean,
                                                                   float* rstd, unsigned flags);
SIMDNORM_API simdnorm_status simdnorm_reference_group_norm_backward(const simdnorm_shape* shape, size_t groups,
                                                                    const float* x, const float* dy,
                                                                    const float* gamma, const float* beta,
                                                                    const float* mean, const float* rstd, float* dx,
                                                                    float* dgamma, float* dbeta, unsigned flags);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* SIMDNORM_REFERENCE_H_ */
