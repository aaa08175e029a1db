/*
 * simdnorm: SIMD batch normalisation for CPUs -- the C API.
 *
 * This header is the contract engines link against. It is C99, carries no SIMD or OpenMP types, and every entry
 * point returns a status instead of throwing. Every argument is validated before any memory is touched: a call that
 * returns SIMDNORM_INVALID_ARGUMENT or SIMDNORM_OUT_OF_MEMORY has written nothing, and simdnorm_last_error() names the
 * offending argument.
 *
 * Conventions (PyTorch's, so results compare directly):
 *   m       = n * spatial, the number of values per channel.
 *   mean    = sum(x) / m
 *   var     = sum((x - mean)^2) / m                      (biased; used to normalise)
 *   invstd  = 1 / sqrt(var + eps)
 *   y       = gamma * (x - mean) * invstd + beta         (computed as y = a*x + b with a = gamma*invstd,
 *                                                          b = beta - mean*a rounded to float per channel)
 *   running_mean = (1 - momentum) * running_mean + momentum * mean
 *   running_var  = (1 - momentum) * running_var  + momentum * sum((x - mean)^2) / (m - 1)   (unbiased)
 * Keras' momentum is the weight of the old value: pass momentum = 1 - keras_momentum.
 *
 * Aliasing: y may equal x exactly (in place) and dx may equal dy; any other overlap between an input and an output,
 * or a partial overlap, is undefined. Per-channel arrays have length c.
 *
 * Threads: the kernels use OpenMP (unless the library was built with SIMDNORM_OPENMP=OFF). Results are bitwise
 * identical for every thread count. The functions may be called concurrently from several threads on different
 * buffers, including from the threads of the application's own OpenMP parallel region (each call then runs in a
 * team of its own, of one thread unless nested parallelism is on); simdnorm_set_max_isa and
 * simdnorm_set_num_threads set process-wide state.
 */
#ifndef SIMDNORM_SIMDNORM_H_
#define SIMDNORM_SIMDNORM_H_

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SIMDNORM_VERSION_MAJOR 0
#define SIMDNORM_VERSION_MINOR 1
#define SIMDNORM_VERSION_PATCH 0

/* Marks the functions a shared libsimdnorm exports; everything else in it is hidden. The build defines
 * SIMDNORM_BUILDING_SHARED only while compiling the shared library, so consumers (and a static build) see an empty
 * macro and need no define of their own: ELF declarations default to visible anyway. */
#if defined(SIMDNORM_BUILDING_SHARED) && defined(__GNUC__)
#define SIMDNORM_API __attribute__((visibility("default")))
#else
#define SIMDNORM_API
#endif

typedef enum simdnorm_status {
  SIMDNORM_SUCCESS = 0,
  SIMDNORM_INVALID_ARGUMENT = 1, /* nothing was written */
  SIMDNORM_UNSUPPORTED = 2,      /* e.g. an ISA this machine or build cannot run */
  SIMDNORM_OUT_OF_MEMORY = 3,    /* nothing was written */
  SIMDNORM_NON_FINITE = 4        /* outputs written; see simdnorm_forward_training */
} simdnorm_status;

typedef enum simdnorm_layout {
  SIMDNORM_NCHW = 0, /* element (n, c, s) at (n*C + c)*S + s */
  SIMDNORM_NHWC = 1  /* element (n, c, s) at (n*S + s)*C + c */
} simdnorm_layout;

typedef struct simdnorm_shape {
  size_t n;       /* batch */
  size_t c;       /* channels */
  size_t spatial; /* H*W, D*H*W, L, or 1 for an N x C matrix */
  simdnorm_layout layout;
} simdnorm_shape;

/* y = max(0, bn(x)). In backward, dy is masked (treated as 0) where the forward output bn(x) <= 0; bn(x) is
 * recomputed from x, gamma, beta, batch_mean and batch_invstd with the very arithmetic forward training used, so
 * the mask matches the forward output bit for bit on the same ISA. */
#define SIMDNORM_FUSE_RELU 0x1u

/* "MAJOR.MINOR.PATCH" of the library that was linked. Never NULL. */
SIMDNORM_API const char* simdnorm_version(void);

/* The kernel path that runs now: "avx512", "avx2" or "sse2". Never NULL. The best path the CPU (and OS) supports is
 * chosen at the first call into the library, capped by the environment variable SIMDNORM_MAX_ISA when it is set to
 * one of the names above, and later by simdnorm_set_max_isa. */
SIMDNORM_API const char* simdnorm_isa(void);

/* Caps the kernel path at `isa` ("avx512", "avx2" or "sse2"): the best supported path not above the cap runs.
 * Returns SIMDNORM_INVALID_ARGUMENT for NULL or an unknown name. Process-wide; not to be called while another thread
 * is inside a simdnorm call. */
SIMDNORM_API simdnorm_status simdnorm_set_max_isa(const char* isa);

/* Number of OpenMP threads the kernels use; 0 (or a negative value) restores OpenMP's default. Process-wide. Has no
 * effect in a build without OpenMP. Results do not depend on it. */
SIMDNORM_API void simdnorm_set_num_threads(int n);

/* Message describing the last failure (status other than SIMDNORM_SUCCESS) on the calling thread, or "" if there was
 * none. Valid until the next simdnorm call on this thread. Never NULL. */
SIMDNORM_API const char* simdnorm_last_error(void);

/* Training forward pass.
 *   x, y           required; y may equal x (in place).
 *   gamma, beta    each may be NULL, meaning all ones and all zeros.
 *   eps            finite and > 0.
 *   batch_mean, batch_invstd   outputs of length c, each may be NULL; they are what simdnorm_backward expects.
 *   running_mean, running_var  in/out, both or neither; updated with momentum in [0, 1] as in the conventions.
 *   flags          0 or SIMDNORM_FUSE_RELU.
 * Needs m >= 2. If a channel's statistics are not finite (NaN or Inf in its x), y is still written for every channel
 * (NaN propagates), batch_mean/batch_invstd are written, the running statistics of that channel are left unchanged,
 * the other channels are updated, and SIMDNORM_NON_FINITE is returned naming the first such channel. */
SIMDNORM_API simdnorm_status simdnorm_forward_training(const simdnorm_shape* shape, const float* x, float* y,
                                                       const float* gamma, const float* beta, float eps,
                                                       float* batch_mean, float* batch_invstd, float* running_mean,
                                                       float* running_var, float momentum, unsigned flags);

/* Inference forward pass with given statistics: y = gamma * (x - mean) / sqrt(var + eps) + beta, computed as
 * y = scale*x + shift with scale and shift folded as simdnorm_fold does.
 *   x, y, mean, var  required; y may equal x.  gamma, beta may be NULL (ones, zeros).  eps finite and > 0.
 * Non-finite data propagates; the call succeeds. */
SIMDNORM_API simdnorm_status simdnorm_forward_inference(const simdnorm_shape* shape, const float* x, float* y,
                                                        const float* gamma, const float* beta, const float* mean,
                                                        const float* var, float eps, unsigned flags);

/* Backward pass for a training forward pass.
 *   x, dy, batch_mean, batch_invstd  required (batch_* as written by simdnorm_forward_training).
 *   gamma, beta    may be NULL (ones, zeros); beta is read only with SIMDNORM_FUSE_RELU.
 *   dx, dgamma, dbeta  outputs, each may be NULL when not wanted; dx may equal dy.
 * With dy' = dy masked by the ReLU (or dy), xhat = (x - batch_mean) * batch_invstd:
 *   dbeta  = sum(dy')
 *   dgamma = sum(dy' * xhat)
 *   dx     = gamma * batch_invstd * (dy' - dbeta/m - xhat * dgamma/m)
 * Needs m >= 2, like the forward pass it differentiates. */
SIMDNORM_API simdnorm_status simdnorm_backward(const simdnorm_shape* shape, const float* x, const float* dy,
                                               const float* gamma, const float* beta, const float* batch_mean,
                                               const float* batch_invstd, float* dx, float* dgamma, float* dbeta,
                                               unsigned flags);

/* Inference folding for engines, per channel (computed in double, each output rounded once):
 *   scale = gamma / sqrt(var + eps),  shift = beta - mean * scale
 * where shift uses scale as returned (rounded to float), so that scale*x + shift = scale*(x - mean) + beta up to the
 * rounding of shift: the rounding of scale then costs ulps of |scale*(x - mean)|, not of |scale*x|.
 * Below the float range it costs up to 0.7e-45*|x - mean| absolutely: a scale under 1.4e-45 may round to zero, and
 * then y = beta.
 * gamma, beta may be NULL (ones, zeros); mean, var, scale, shift required; c > 0. scale and shift must not overlap
 * the inputs. */
SIMDNORM_API simdnorm_status simdnorm_fold(size_t c, const float* gamma, const float* beta, const float* mean,
                                           const float* var, float eps, float* scale, float* shift);

/* y = x * scale[c] + shift[c] (then max(0, .) with SIMDNORM_FUSE_RELU); y may equal x. All pointers required. */
SIMDNORM_API simdnorm_status simdnorm_affine(const simdnorm_shape* shape, const float* x, float* y, const float* scale,
                                             const float* shift, unsigned flags);

/* Split phases: simdnorm_forward_training and simdnorm_backward cut at their reductions, for callers that own the
 * reductions -- synchronised batch norm across processes that each hold part of the batch, or a framework that runs
 * its own all-reduce. Forward: simdnorm_moments on each part; the parts' counts and moments exchanged, then
 * simdnorm_merge_moments and simdnorm_finish_moments; then simdnorm_normalize on each part. Backward:
 * simdnorm_backward_reduce on each part; the sums added up over the parts; then simdnorm_backward_apply on each part.
 * Counts, moments and sums are exchanged in double, so that the exchange adds no float rounding. Arguments are
 * validated as in the one-call functions; besides, per-channel outputs must not overlap each other or the per-channel
 * inputs, except where a function allows it. */

/* Moments of this part of the batch, per channel, over m = n*spatial values (m >= 1):
 * mean = sum(x)/m and m2 = sum((x - mean)^2), in double. */
SIMDNORM_API simdnorm_status simdnorm_moments(const simdnorm_shape* shape, const float* x, double* mean, double* m2);

/* Merges `parts` sets of moments with Chan's formula, in the order given: the same parts in the same order give
 * bitwise the same result. counts[p] is part p's number of values per channel (0: the part is skipped);
 * means and m2s are parts x c arrays, row p for part p. Writes the merged mean and m2 (length c) and the total count.
 * mean/m2 may alias row 0 of means/m2s. If every part has count 0, mean = m2 = 0 and total = 0 (finish_moments then
 * refuses it). */
SIMDNORM_API simdnorm_status simdnorm_merge_moments(size_t parts, size_t c, const double* counts, const double* means,
                                                    const double* m2s, double* mean, double* m2, double* total);

/* From merged moments over `count` values (count >= 2): batch_mean and batch_invstd exactly as forward training
 * writes them (each may be NULL), and the running statistics (both or neither) updated as forward training does
 * (unbiased variance m2/(count - 1)). NON_FINITE as in forward training: that channel's running statistics are
 * left unchanged and the first such channel is named. */
SIMDNORM_API simdnorm_status simdnorm_finish_moments(size_t c, double count, const double* mean, const double* m2,
                                                     float eps, float* batch_mean, float* batch_invstd,
                                                     float* running_mean, float* running_var, float momentum);

/* The normalisation of forward training with given statistics: y = gamma*(x - batch_mean)*batch_invstd + beta with
 * exactly the arithmetic forward training uses (and max(0, .) with SIMDNORM_FUSE_RELU); y may equal x.
 * That arithmetic is y = a*x + b with a = gamma*batch_invstd and b = beta - batch_mean*a rounded to float: statistics
 * no training pass produces (|batch_mean*a| beyond the float range) give an infinite b, and y follows it. */
SIMDNORM_API simdnorm_status simdnorm_normalize(const simdnorm_shape* shape, const float* x, float* y,
                                                const float* gamma, const float* beta, const float* batch_mean,
                                                const float* batch_invstd, unsigned flags);

/* Backward reductions of this part, per channel, in double: sum_dy = sum(dy'), sum_dy_xhat = sum(dy' * xhat), with
 * xhat = (x - batch_mean)*batch_invstd and dy' = dy masked by the ReLU as simdnorm_backward masks it. Summed over
 * all parts they are dbeta and dgamma. */
SIMDNORM_API simdnorm_status simdnorm_backward_reduce(const simdnorm_shape* shape, const float* x, const float* dy,
                                                      const float* gamma, const float* beta, const float* batch_mean,
                                                      const float* batch_invstd, double* sum_dy, double* sum_dy_xhat,
                                                      unsigned flags);

/* dx of this part from the reductions summed over all parts and their total count (>= 2):
 * dx = gamma*batch_invstd*(dy' - sum_dy/count - xhat*sum_dy_xhat/count); dx may equal dy. */
SIMDNORM_API simdnorm_status simdnorm_backward_apply(const simdnorm_shape* shape, const float* x, const float* dy,
                                                     const float* gamma, const float* beta, const float* batch_mean,
                                                     const float* batch_invstd, const double* sum_dy,
                                                     const double* sum_dy_xhat, double count, float* dx,
                                                     unsigned flags);

/* ---- LayerNorm, RMSNorm and GroupNorm ----
 * PyTorch's conventions (torch.nn.LayerNorm, RMSNorm, GroupNorm): biased variance, eps inside the square root,
 * statistics saved in float as mean and rstd = 1/sqrt(var + eps). Validation as above: every argument is checked
 * before anything is written. Non-finite data propagates and the call succeeds. flags must be 0 unless said
 * otherwise. In every backward, x, dy and the saved statistics are required. */

/* LayerNorm over the last dimension: x is rows x cols, row-major. Per row: mean = sum(x)/cols,
 * var = sum((x - mean)^2)/cols, rstd = 1/sqrt(var + eps), y = (x - mean)*rstd*gamma[j] + beta[j].
 * gamma, beta: length cols, each may be NULL (ones, zeros). mean, rstd: length rows, outputs, each may be NULL.
 * y may equal x. rows, cols >= 1. */
SIMDNORM_API simdnorm_status simdnorm_layer_norm_forward(size_t rows, size_t cols, const float* x, float* y,
                                                         const float* gamma, const float* beta, float eps,
                                                         float* mean, float* rstd, unsigned flags);

/* With xhat = (x - mean)*rstd from the saved statistics: dbeta[j] = sum over rows of dy, dgamma[j] = sum over rows
 * of dy*xhat, dx = rstd*(g - mean_j(g) - xhat*mean_j(g*xhat)) with g = dy*gamma[j]. dx, dgamma, dbeta each may be
 * NULL; dx may equal dy. */
SIMDNORM_API simdnorm_status simdnorm_layer_norm_backward(size_t rows, size_t cols, const float* x, const float* dy,
                                                          const float* gamma, const float* mean, const float* rstd,
                                                          float* dx, float* dgamma, float* dbeta, unsigned flags);

/* RMSNorm: per row rstd = 1/sqrt(sum(x^2)/cols + eps), y = x*rstd*gamma[j]; gamma may be NULL; rstd may be NULL.
 * Backward, with xhat = x*rstd and g = dy*gamma[j]: dx = rstd*(g - xhat*mean_j(g*xhat)), dgamma[j] = sum over rows
 * of dy*xhat. */
SIMDNORM_API simdnorm_status simdnorm_rms_norm_forward(size_t rows, size_t cols, const float* x, float* y,
                                                       const float* gamma, float eps, float* rstd, unsigned flags);
SIMDNORM_API simdnorm_status simdnorm_rms_norm_backward(size_t rows, size_t cols, const float* x, const float* dy,
                                                        const float* gamma, const float* rstd, float* dx,
                                                        float* dgamma, unsigned flags);

/* GroupNorm: the c channels of `shape` form `groups` groups of c/groups consecutive channels (c % groups == 0).
 * Per (image n, group g): mean and rstd over the (c/groups)*spatial values; y = (x - mean)*rstd*gamma[c] + beta[c]
 * (then max(0, .) with SIMDNORM_FUSE_RELU). gamma, beta: length c, may be NULL. mean, rstd: n x groups (row n),
 * outputs, may be NULL. Both layouts; y may equal x. groups == c is InstanceNorm, groups == 1 LayerNorm over
 * (c, spatial). */
SIMDNORM_API simdnorm_status simdnorm_group_norm_forward(const simdnorm_shape* shape, size_t groups, const float* x,
                                                         float* y, const float* gamma, const float* beta, float eps,
                                                         float* mean, float* rstd, unsigned flags);

/* dgamma[c], dbeta[c] summed over images and spatial positions; dx per group as for LayerNorm. With
 * SIMDNORM_FUSE_RELU, dy is masked where the forward output was <= 0, recomputed bit-exactly (beta is read then).
 * dx, dgamma, dbeta each may be NULL; dx may equal dy. */
SIMDNORM_API simdnorm_status simdnorm_group_norm_backward(const simdnorm_shape* shape, size_t groups, const float* x,
                                                          const float* dy, const float* gamma, const float* beta,
                                                          const float* mean, const float* rstd, float* dx,
                                                          float* dgamma, float* dbeta, unsigned flags);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* SIMDNORM_SIMDNORM_H_ */
