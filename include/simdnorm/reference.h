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

simdnorm_status simdnorm_reference_forward_training(const simdnorm_shape* shape, const float* x, float* y,
                                                    const float* gamma, const float* beta, float eps,
                                                    float* batch_mean, float* batch_invstd, float* running_mean,
                                                    float* running_var, float momentum, unsigned flags);

simdnorm_status simdnorm_reference_forward_inference(const simdnorm_shape* shape, const float* x, float* y,
                                                     const float* gamma, const float* beta, const float* mean,
                                                     const float* var, float eps, unsigned flags);

simdnorm_status simdnorm_reference_backward(const simdnorm_shape* shape, const float* x, const float* dy,
                                            const float* gamma, const float* beta, const float* batch_mean,
                                            const float* batch_invstd, float* dx, float* dgamma, float* dbeta,
                                            unsigned flags);

simdnorm_status simdnorm_reference_fold(size_t c, const float* gamma, const float* beta, const float* mean,
                                        const float* var, float eps, float* scale, float* shift);

simdnorm_status simdnorm_reference_affine(const simdnorm_shape* shape, const float* x, float* y, const float* scale,
                                          const float* shift, unsigned flags);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* SIMDNORM_REFERENCE_H_ */
